//! Modbus settings of one device (`[devices.modbus]`): transport (TCP, RTU over a serial line,
//! RTU framed over TCP for serial gateways), serial line settings, request planning limits
//! (maximum gap and span of a merged read, holes that must never be read), bus pacing and the
//! per-request timeout.
//!
//! ```toml
//! [devices.modbus]
//! transport = "rtu"            # "tcp" (default), "rtu" (address = serial device), "rtu-over-tcp"
//! max_gap = 4                  # registers (bits) read and discarded to merge two points; default 0
//! max_span = 125               # largest read in registers (bits for coils); capped at 125 (2000)
//! pause = "20ms"               # silence on the bus before each request; default 0 (RTU: 3.5 chars)
//! request_timeout = "500ms"    # deadline of one request; default min(1s, device timeout)
//! holes = [{ table = "holding", start = 100, end = 109 }]   # inclusive, never read
//! [devices.modbus.serial]
//! baud = 9600
//! parity = "N"                 # N, E or O
//! data_bits = 8
//! stop_bits = 1
//! ```

use crate::agent::{Device, Protocol, RegisterTable, Sensor, SensorSource};
use crate::error::{KeyPath, Problem};
use coldaisle_core::registers::RegisterType;
use serde::Deserialize;
use std::time::Duration;

/// Registers one Modbus read (function codes 3 and 4) may carry.
pub const MAX_REGISTERS_PER_READ: u16 = 125;
/// Bits one Modbus read (function codes 1 and 2) may carry.
pub const MAX_BITS_PER_READ: u16 = 2000;

/// How Modbus frames reach the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Transport {
    /// Modbus TCP (MBAP header) to `address` = `host:port`.
    #[default]
    #[serde(rename = "tcp")]
    Tcp,
    /// Modbus RTU on a serial line; `address` is the serial device, e.g. `/dev/ttyUSB0`.
    #[serde(rename = "rtu")]
    Rtu,
    /// Modbus RTU frames (with CRC) carried over a TCP connection to a serial gateway.
    #[serde(rename = "rtu-over-tcp")]
    RtuOverTcp,
}

impl Transport {
    /// Whether the device is on a local serial line (its address is a device path).
    #[must_use]
    pub fn is_serial(self) -> bool {
        self == Transport::Rtu
    }

    /// The name used in configuration files.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Rtu => "rtu",
            Transport::RtuOverTcp => "rtu-over-tcp",
        }
    }
}

/// Parity of a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Parity {
    /// No parity bit.
    #[default]
    #[serde(rename = "N", alias = "none")]
    None,
    /// Even parity.
    #[serde(rename = "E", alias = "even")]
    Even,
    /// Odd parity.
    #[serde(rename = "O", alias = "odd")]
    Odd,
}

/// Serial line settings as written.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawSerial {
    /// Bits per second; default 9600.
    #[serde(default)]
    pub baud: Option<u32>,
    /// Parity; default none.
    #[serde(default)]
    pub parity: Option<Parity>,
    /// Data bits (5..=8); default 8.
    #[serde(default)]
    pub data_bits: Option<u8>,
    /// Stop bits (1 or 2); default 1.
    #[serde(default)]
    pub stop_bits: Option<u8>,
}

/// Validated serial line settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SerialSettings {
    /// Bits per second.
    pub baud: u32,
    /// Parity.
    pub parity: Parity,
    /// Data bits, 5..=8.
    pub data_bits: u8,
    /// Stop bits, 1 or 2.
    pub stop_bits: u8,
}

impl Default for SerialSettings {
    fn default() -> Self {
        SerialSettings {
            baud: 9600,
            parity: Parity::None,
            data_bits: 8,
            stop_bits: 1,
        }
    }
}

impl SerialSettings {
    /// The RTU inter-frame silence: 3.5 character times (a character is start + data + parity
    /// + stop bits), fixed at 1.75 ms above 19200 baud as the Modbus serial line spec says.
    #[must_use]
    pub fn frame_gap(&self) -> Duration {
        if self.baud > 19_200 {
            return Duration::from_micros(1750);
        }
        let parity = u64::from(self.parity != Parity::None);
        let bits = 1 + u64::from(self.data_bits) + parity + u64::from(self.stop_bits);
        Duration::from_micros(bits * 3_500_000 / u64::from(self.baud.max(1)))
    }
}

/// A register range that must never be read (the device answers an exception or misbehaves).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hole {
    /// Table of the hole.
    pub table: RegisterTable,
    /// First address of the hole.
    pub start: u16,
    /// Last address of the hole (inclusive).
    pub end: u16,
}

impl Hole {
    /// Whether the hole overlaps `[start, start + count)` of `table`.
    #[must_use]
    pub fn overlaps(&self, table: RegisterTable, start: u16, count: u16) -> bool {
        let end = u32::from(start) + u32::from(count);
        self.table == table
            && u32::from(self.start) < end
            && u32::from(self.end) >= u32::from(start)
    }
}

/// `[devices.modbus]` as written.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawModbusSettings {
    /// Transport; default TCP.
    #[serde(default)]
    pub transport: Option<Transport>,
    /// Serial line settings (transport `rtu`).
    #[serde(default)]
    pub serial: Option<RawSerial>,
    /// Unused registers (bits) one merged read may span between two points.
    #[serde(default)]
    pub max_gap: Option<u16>,
    /// Largest read, in registers (bits for coils and discrete inputs).
    #[serde(default)]
    pub max_span: Option<u16>,
    /// Silence on the bus before each request.
    #[serde(default, with = "humantime_serde")]
    pub pause: Option<Duration>,
    /// Deadline of one request.
    #[serde(default, with = "humantime_serde")]
    pub request_timeout: Option<Duration>,
    /// Ranges never to read.
    #[serde(default)]
    pub holes: Vec<Hole>,
}

/// Validated Modbus settings of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct ModbusSettings {
    /// How frames reach the device.
    pub transport: Transport,
    /// Serial line settings (transport `rtu`; defaults otherwise, unused).
    pub serial: SerialSettings,
    /// Unused registers (bits) a merged read may span between two points.
    pub max_gap: u16,
    /// Largest read in registers (bits for bit tables), before the protocol caps.
    pub max_span: u16,
    /// Silence on the bus before each request (RTU: at least the 3.5 character frame gap).
    pub pause: Duration,
    /// Deadline of one request.
    pub request_timeout: Duration,
    /// Ranges never read.
    pub holes: Vec<Hole>,
}

impl ModbusSettings {
    /// The defaults for a device whose whole poll has `device_timeout`.
    #[must_use]
    pub fn defaults(device_timeout: Duration) -> ModbusSettings {
        ModbusSettings {
            transport: Transport::Tcp,
            serial: SerialSettings::default(),
            max_gap: 0,
            max_span: MAX_BITS_PER_READ,
            pause: Duration::ZERO,
            request_timeout: device_timeout.min(Duration::from_secs(1)),
            holes: Vec::new(),
        }
    }

    /// The key that names the bus the device is on: devices with the same key share one
    /// connection (serial line or gateway socket) and take turns on it.
    #[must_use]
    pub fn bus_key(&self, address: &str) -> String {
        format!("{}:{address}", self.transport.name())
    }
}

/// Validates `[devices.modbus]` of a device (`at` is the device's key path).
pub(crate) fn resolve(
    raw: Option<&RawModbusSettings>,
    protocol: Protocol,
    device_timeout: Duration,
    at: &KeyPath,
) -> Result<ModbusSettings, Problem> {
    let mut settings = ModbusSettings::defaults(device_timeout);
    let Some(raw) = raw else {
        return Ok(settings);
    };
    let at = at.key("modbus");
    if protocol != Protocol::Modbus {
        return Err(Problem::new(at, "only Modbus devices have Modbus settings"));
    }
    settings.transport = raw.transport.unwrap_or_default();
    if let Some(serial) = &raw.serial {
        let at = at.key("serial");
        if !settings.transport.is_serial() {
            return Err(Problem::new(
                at,
                "serial settings need `transport = \"rtu\"` (a gateway sets its own line)",
            ));
        }
        let d = SerialSettings::default();
        let resolved = SerialSettings {
            baud: serial.baud.unwrap_or(d.baud),
            parity: serial.parity.unwrap_or(d.parity),
            data_bits: serial.data_bits.unwrap_or(d.data_bits),
            stop_bits: serial.stop_bits.unwrap_or(d.stop_bits),
        };
        if !(300..=4_000_000).contains(&resolved.baud) {
            return Err(Problem::new(at.key("baud"), "must be 300..=4000000"));
        }
        if !(5..=8).contains(&resolved.data_bits) {
            return Err(Problem::new(at.key("data_bits"), "must be 5, 6, 7 or 8"));
        }
        if !(1..=2).contains(&resolved.stop_bits) {
            return Err(Problem::new(at.key("stop_bits"), "must be 1 or 2"));
        }
        settings.serial = resolved;
    }
    if let Some(gap) = raw.max_gap {
        if gap > MAX_BITS_PER_READ {
            return Err(Problem::new(
                at.key("max_gap"),
                format!("must be at most {MAX_BITS_PER_READ}"),
            ));
        }
        settings.max_gap = gap;
    }
    if let Some(span) = raw.max_span {
        if span == 0 || span > MAX_BITS_PER_READ {
            return Err(Problem::new(
                at.key("max_span"),
                format!(
                    "must be 1..={MAX_BITS_PER_READ} (reads of registers are also capped at \
                     {MAX_REGISTERS_PER_READ})"
                ),
            ));
        }
        settings.max_span = span;
    }
    if let Some(timeout) = raw.request_timeout {
        if timeout.is_zero() || timeout > device_timeout {
            return Err(Problem::new(
                at.key("request_timeout"),
                format!(
                    "must be above zero and at most the device's timeout ({})",
                    humantime::format_duration(device_timeout)
                ),
            ));
        }
        settings.request_timeout = timeout;
    }
    settings.pause = raw.pause.unwrap_or(Duration::ZERO);
    if settings.transport.is_serial() {
        settings.pause = settings.pause.max(settings.serial.frame_gap());
    }
    for (i, hole) in raw.holes.iter().enumerate() {
        if hole.end < hole.start {
            return Err(Problem::new(
                at.key("holes").index(i).key("end"),
                format!("must be at least start ({})", hole.start),
            ));
        }
    }
    settings.holes = raw.holes.clone();
    Ok(settings)
}

/// Checks that no point of a device reads inside one of its holes (`at` is the device's path).
pub(crate) fn check_points(
    settings: &ModbusSettings,
    sensors: &[Sensor],
    at: &KeyPath,
) -> Result<(), Problem> {
    for (j, sensor) in sensors.iter().enumerate() {
        let SensorSource::Modbus {
            table,
            register,
            data_type,
            bit,
            ..
        } = sensor.source
        else {
            continue;
        };
        if let Some(bit) = bit {
            let width = 16 * data_type.register_count();
            let integer = matches!(
                data_type,
                RegisterType::Int16
                    | RegisterType::Uint16
                    | RegisterType::Int32
                    | RegisterType::Uint32
            );
            if table.is_bits() || !integer || u16::from(bit) >= width {
                return Err(Problem::new(
                    at.key("points").index(j).key("bit"),
                    format!(
                        "a bit of a 16- or 32-bit integer register value: 0..={} for {data_type} \
                         (coils and discrete inputs are bits already)",
                        width.min(32) - 1
                    ),
                ));
            }
        }
        let count = if table.is_bits() {
            1
        } else {
            data_type.register_count()
        };
        if u32::from(register) + u32::from(count) > 65_536 {
            return Err(Problem::new(
                at.key("points").index(j).key("register"),
                format!("register {register} + {count} runs past address 65535"),
            ));
        }
        if let Some(hole) = settings
            .holes
            .iter()
            .find(|h| h.overlaps(table, register, count))
        {
            return Err(Problem::new(
                at.key("points").index(j).key("register"),
                format!(
                    "sensor {} reads {table:?} {register}..{} inside the configured hole {}..={}",
                    sensor.id,
                    u32::from(register) + u32::from(count) - 1,
                    hole.start,
                    hole.end
                ),
            ));
        }
    }
    Ok(())
}

/// Checks that Modbus devices sharing one serial line agree on its settings (`root` is the
/// document's root path; the error names the later device's key).
pub(crate) fn check_shared_lines(devices: &[Device], root: &KeyPath) -> Result<(), Problem> {
    for (i, device) in devices.iter().enumerate() {
        if device.protocol != Protocol::Modbus || !device.modbus.transport.is_serial() {
            continue;
        }
        let first = devices[..i].iter().find(|d| {
            d.protocol == Protocol::Modbus
                && d.modbus.transport.is_serial()
                && d.address == device.address
        });
        if let Some(first) = first {
            if first.modbus.serial != device.modbus.serial {
                return Err(Problem::new(
                    root.key("devices").index(i).key("modbus").key("serial"),
                    format!(
                        "serial line {} is also used by device {} with other settings \
                         ({:?}); devices on one line must agree",
                        device.address, first.id, first.modbus.serial
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::AgentConfig;
    use std::path::Path;

    /// An agent config with one Modbus device whose `[devices.modbus]` body is `modbus`.
    fn config(address: &str, modbus: &str) -> Result<AgentConfig, crate::ConfigError> {
        let text = format!(
            "agent_id = \"a\"\nsite = \"s\"\nstate_dir = \"/tmp/x\"\n\
             [mqtt]\nhost = \"h\"\nusername = \"u\"\npassword = \"p\"\n\
             [[devices]]\nid = \"crac\"\nprotocol = \"modbus\"\naddress = \"{address}\"\n\
             zone = \"Z1\"\ntimeout = \"2s\"\n\
             [[devices.points]]\nsensor = \"t\"\nkind = \"supply_air_temp\"\nregister = 10\n\
             [devices.modbus]\n{modbus}\n"
        );
        AgentConfig::from_str(&text, Path::new("agent.toml"))
    }

    #[test]
    fn rtu_device_keeps_its_serial_path_and_line_settings() {
        let c = config(
            "/dev/ttyUSB0",
            "transport = \"rtu\"\nmax_gap = 4\npause = \"20ms\"\n\
             holes = [{ table = \"holding\", start = 100, end = 109 }]\n\
             [devices.modbus.serial]\nbaud = 19200\nparity = \"E\"\nstop_bits = 1",
        )
        .unwrap();
        let d = &c.devices[0];
        assert_eq!(d.address, "/dev/ttyUSB0");
        assert_eq!(d.modbus.transport, Transport::Rtu);
        assert_eq!(d.modbus.serial.baud, 19200);
        assert_eq!(d.modbus.serial.parity, Parity::Even);
        assert_eq!(d.modbus.max_gap, 4);
        assert_eq!(d.modbus.pause, Duration::from_millis(20));
        assert_eq!(d.modbus.request_timeout, Duration::from_secs(1));
        assert_eq!(d.modbus.holes.len(), 1);
        assert_eq!(d.modbus.bus_key(&d.address), "rtu:/dev/ttyUSB0");
        // A TCP device keeps the default port; the frame gap is the minimum pause on RTU.
        let c = config("10.0.0.5", "transport = \"rtu-over-tcp\"").unwrap();
        assert_eq!(c.devices[0].address, "10.0.0.5:502");
        let c = config("/dev/ttyS1", "transport = \"rtu\"").unwrap();
        assert_eq!(c.devices[0].modbus.pause, Duration::from_micros(3645));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("max_span = 0", "devices[0].modbus.max_span"),
            ("max_gap = 5000", "devices[0].modbus.max_gap"),
            (
                "request_timeout = \"5s\"",
                "devices[0].modbus.request_timeout",
            ),
            (
                "transport = \"tcp\"\n[devices.modbus.serial]\nbaud = 9600",
                "devices[0].modbus.serial",
            ),
            (
                "transport = \"rtu\"\n[devices.modbus.serial]\ndata_bits = 9",
                "devices[0].modbus.serial.data_bits",
            ),
            (
                "holes = [{ table = \"holding\", start = 9, end = 3 }]",
                "devices[0].modbus.holes[0].end",
            ),
            (
                "holes = [{ table = \"holding\", start = 10, end = 10 }]",
                "devices[0].points[0].register",
            ),
            ("max_gap = 1\n[[devices.points]]\nsensor = \"b\"\nkind = \"cooling_state\"\nregister = 1\nbit = 16", "devices[0].points[1].bit"),
            ("max_gap = 1\n[[devices.points]]\nsensor = \"b\"\nkind = \"cooling_state\"\nregister = 1\ntype = \"float32\"\nbit = 1", "devices[0].points[1].bit"),
        ];
        for (body, key) in cases {
            let err = config("127.0.0.1", body).unwrap_err();
            assert_eq!(err.key(), Some(key), "{body}: {err}");
        }
        // Two devices on one serial line must agree on its settings.
        let line = "transport = \"rtu\"\n[devices.modbus.serial]\nbaud = 9600";
        let two = |second_baud: u32| {
            let text = format!(
                "agent_id = \"a\"\nsite = \"s\"\nstate_dir = \"/tmp/x\"\n\
                 [mqtt]\nhost = \"h\"\nusername = \"u\"\npassword = \"p\"\n\
                 [[devices]]\nid = \"d1\"\nprotocol = \"modbus\"\naddress = \"/dev/ttyS0\"\nzone = \"Z1\"\n\
                 [[devices.points]]\nsensor = \"t1\"\nkind = \"temperature\"\nregister = 1\n\
                 [devices.modbus]\n{line}\n\
                 [[devices]]\nid = \"d2\"\nprotocol = \"modbus\"\naddress = \"/dev/ttyS0\"\nzone = \"Z1\"\nunit_id = 2\n\
                 [[devices.points]]\nsensor = \"t2\"\nkind = \"temperature\"\nregister = 1\n\
                 [devices.modbus]\ntransport = \"rtu\"\n[devices.modbus.serial]\nbaud = {second_baud}\n"
            );
            AgentConfig::from_str(&text, Path::new("agent.toml"))
        };
        two(9600).unwrap();
        let err = two(19200).unwrap_err();
        assert_eq!(err.key(), Some("devices[1].modbus.serial"), "{err}");
        // A misspelt transport is a parse error at its line, listing the accepted names.
        let err = config("127.0.0.1", "transport = \"udp\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("agent.toml:19") && err.contains("rtu-over-tcp"),
            "{err}"
        );
        // A point that does not hit the hole is fine, and so is one in another table.
        config(
            "127.0.0.1",
            "holes = [{ table = \"holding\", start = 12, end = 20 }]",
        )
        .unwrap();
        config(
            "127.0.0.1",
            "holes = [{ table = \"input\", start = 10, end = 10 }]",
        )
        .unwrap();
    }

    #[test]
    fn frame_gap_is_three_and_a_half_characters() {
        let s = SerialSettings::default();
        // 10 bits per character at 9600 baud: 3.5 * 10 / 9600 s = 3.645 ms.
        assert_eq!(s.frame_gap(), Duration::from_micros(3645));
        let fast = SerialSettings { baud: 115_200, ..s };
        assert_eq!(fast.frame_gap(), Duration::from_micros(1750));
    }

    #[test]
    fn holes_overlap_inclusively() {
        let hole = Hole {
            table: RegisterTable::Holding,
            start: 10,
            end: 12,
        };
        assert!(hole.overlaps(RegisterTable::Holding, 12, 1));
        assert!(hole.overlaps(RegisterTable::Holding, 8, 3));
        assert!(!hole.overlaps(RegisterTable::Holding, 8, 2));
        assert!(!hole.overlaps(RegisterTable::Holding, 13, 5));
        assert!(!hole.overlaps(RegisterTable::Input, 10, 1));
        assert!(hole.overlaps(RegisterTable::Holding, 0, 65535));
    }
}
