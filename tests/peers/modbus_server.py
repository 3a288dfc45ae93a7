#!/usr/bin/env python3
"""Modbus server (pymodbus 3.16 simulator API) whose registers a test changes at run time.

Usage (started by `coldaisle_testkit::peers::PyModbus`, with the repo's .venv python):

    modbus_server.py --port PORT --values VALUES_JSON --units 1,2 [--framer rtu]
    modbus_server.py --serial /tmp/pty-a --baud 19200 --values VALUES_JSON --units 1,2

`--framer rtu` speaks RTU frames over TCP (a serial gateway); `--serial` serves Modbus RTU on a
serial device (one end of a socat pty pair). Once serving it prints a line with "serving".

VALUES_JSON, re-read on every request (the test rewrites it atomically via rename):

    {"units": {"1": {"holding": {"92": 720, "93": 0},
                     "input": {"0": 215},
                     "delay_ms": 0,
                     "exceptions": {"holding": {"94": 4}, "input": {}}}}}

Semantics, per unit id listed in --units:
  - read holding (fc 3) / read input (fc 4): every requested address must be in the
    table, else exception 2 (illegal data address), like a real device's register map;
  - "exceptions": a listed address answers that exception code (1..11) instead;
  - "delay_ms": the answer is delayed (slow device / timeout tests);
  - a unit missing from the file answers exception 11 (gateway target failed to respond);
  - read coils (fc 1) / discrete inputs (fc 2): tables "coils" / "discrete" hold 0/1 per bit
    address (0..1023); absent bits read 0; an exception listed at the first bit address of the
    request answers that exception;
  - writes answer exception 1 (illegal function): read-only device.
Unit ids not in --units also answer exception 11 (catch-all device 0).

pymodbus 3.16: `SimDevice(id, simdata=(coils, discrete, holding, input), action=...)`
makes separate tables; the runtime rejects addresses flagged invalid *before* calling
`action`, so every table is declared as one valid block 0..65535 and `action` decides.
"""

import argparse
import asyncio
import functools
import json
import logging
import sys

from pymodbus.constants import ExcCodes
from pymodbus import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

LOG = logging.getLogger("modbus_server")

READ_TABLES = {1: "coils", 2: "discrete", 3: "holding", 4: "input"}


def load_unit(values_path, unit_id):
    """Return the unit's dict from the values file, or None."""
    try:
        with open(values_path, "r", encoding="utf-8") as handle:
            raw = json.load(handle)
    except (OSError, ValueError) as exc:
        LOG.error("cannot read values file %s: %s", values_path, exc)
        return None
    units = raw.get("units") if isinstance(raw, dict) else None
    if not isinstance(units, dict):
        LOG.error("values file %s: missing {\"units\": {...}}", values_path)
        return None
    unit = units.get(str(unit_id))
    return unit if isinstance(unit, dict) else None


def exception_code(code):
    try:
        return ExcCodes(int(code))
    except (TypeError, ValueError):
        LOG.error("unknown exception code %r, answering device failure", code)
        return ExcCodes.DEVICE_FAILURE


async def action(
    values_path,
    unit_id,
    function_code,
    start_address,
    address,
    count,
    current_registers,
    set_values,
):
    """pymodbus SimDevice action: fill current_registers from the values file."""
    table_name = READ_TABLES.get(function_code)
    if set_values is not None or table_name is None:
        return ExcCodes.ILLEGAL_FUNCTION
    unit = load_unit(values_path, unit_id)
    if unit is None:
        return ExcCodes.GATEWAY_NO_RESPONSE
    delay_ms = unit.get("delay_ms", 0)
    if isinstance(delay_ms, (int, float)) and delay_ms > 0:
        await asyncio.sleep(delay_ms / 1000.0)
    table = unit.get(table_name) or {}
    exceptions = (unit.get("exceptions") or {}).get(table_name) or {}
    if function_code in (1, 2):
        # Bit tables (bit addressing): `count` registers of 16 bits each, bit 0 = LSB, from
        # register address // 16; current_registers[0] is register start_address.
        if str(address) in exceptions:
            return exception_code(exceptions[str(address)])
        first = address // 16
        for reg in range(first, first + count):
            word = 0
            for bit in range(16):
                if table.get(str(reg * 16 + bit)):
                    word |= 1 << bit
            current_registers[reg - start_address] = word
        return None
    for reg in range(address, address + count):
        if str(reg) in exceptions:
            return exception_code(exceptions[str(reg)])
        value = table.get(str(reg))
        if not isinstance(value, int):
            return ExcCodes.ILLEGAL_ADDRESS
        current_registers[reg - start_address] = value & 0xFFFF
    return None


async def catch_all(*_args):
    """Device 0 answers for every unit id that was not started."""
    return ExcCodes.GATEWAY_NO_RESPONSE


def whole_table():
    return [SimData(address=0, count=65536, values=0, datatype=DataType.REGISTERS)]


def bits_table():
    return [SimData(address=0, count=64, values=0, datatype=DataType.BITS)]


def device(unit_id, unit_action):
    return SimDevice(
        id=unit_id,
        simdata=(bits_table(), bits_table(), whole_table(), whole_table()),
        action=unit_action,
    )


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, help="TCP port on 127.0.0.1")
    parser.add_argument("--framer", choices=["socket", "rtu"], default="socket")
    parser.add_argument("--serial", help="serial device: serve Modbus RTU on it instead of TCP")
    parser.add_argument("--baud", type=int, default=19200)
    parser.add_argument("--values", required=True)
    parser.add_argument("--units", required=True, help="comma-separated unit ids, 1..247")
    args = parser.parse_args()

    unit_ids = sorted({int(u) for u in args.units.split(",") if u.strip()})
    if not unit_ids or any(not 1 <= u <= 255 for u in unit_ids):
        parser.error("--units must list ids in 1..255")
    devices = [device(0, catch_all)]
    devices += [
        device(u, functools.partial(action, args.values, u)) for u in unit_ids
    ]
    if args.serial:
        server = ModbusSerialServer(
            devices, framer=FramerType.RTU, port=args.serial, baudrate=args.baud
        )
        where = "%s (RTU, %d baud)" % (args.serial, args.baud)
    elif args.port:
        framer = FramerType.RTU if args.framer == "rtu" else FramerType.SOCKET
        server = ModbusTcpServer(devices, framer=framer, address=("127.0.0.1", args.port))
        where = "127.0.0.1:%d (%s framer)" % (args.port, args.framer)
    else:
        parser.error("give --port or --serial")
    task = asyncio.create_task(server.serve_forever())
    await asyncio.sleep(0.3)
    if task.done():
        task.result()
    print("modbus_server.py: serving units %s on %s" % (unit_ids, where), flush=True)
    await task


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(main())
