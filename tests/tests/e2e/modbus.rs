//! Modbus against a real pymodbus 3.16.1 server: Modbus TCP, RTU on a socat pty pair and RTU
//! framed over TCP; every type and word order round-trips against values set on the server;
//! exceptions fail only their points (a refused merged read falls back to point reads); several
//! unit ids share one serial line; a slow unit times out without harming the others; the
//! `modbus read` CLI and the plan in `check-config --verbose`.

use anyhow::{Context, Result};
use coldaisle_agent::modbus::poll::ModbusPoller;
use coldaisle_agent::poller::PollError;
use coldaisle_config::AgentConfig;
use coldaisle_core::registers::{encode, RegisterType, WordOrder};
use coldaisle_testkit::peers::{ModbusBits, ModbusTable, PyModbus, PyModbusLink};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// One point of a test device.
struct Point {
    sensor: String,
    table: &'static str,
    register: u16,
    ty: RegisterType,
    order: WordOrder,
    /// One bit of the value (alarm word states).
    bit: Option<u8>,
}

/// A value of `ty` that uses its whole range (sign, high words, fractions).
fn sample(ty: RegisterType) -> f64 {
    match ty {
        RegisterType::Int16 => -1234.0,
        RegisterType::Uint16 => 54_321.0,
        RegisterType::Int32 => -123_456_789.0,
        RegisterType::Uint32 => 3_000_000_000.0,
        RegisterType::Float32 => 23.5,
        RegisterType::Int64 => -1_234_567_890_123.0,
        RegisterType::Uint64 => 9_007_199_254_740_991.0,
        RegisterType::Float64 => -0.000_123_456_789,
    }
}

/// An agent config with one Modbus device at `address` (unit `unit`), `[devices.modbus]`
/// settings `modbus` and `points`.
fn device_config(address: &str, unit: u8, modbus: &str, points: &[Point]) -> Result<AgentConfig> {
    let mut text = format!(
        r#"agent_id = "mb-test"
site = "lab"
state_dir = "/tmp/unused"
[mqtt]
host = "127.0.0.1"
username = "u"
password = "p"
[[devices]]
id = "dev-{unit}"
protocol = "modbus"
address = "{address}"
zone = "Z1"
unit_id = {unit}
poll_interval = "5s"
timeout = "3s"
[devices.modbus]
{modbus}
"#
    );
    for p in points {
        text.push_str(&format!(
            "[[devices.points]]\nsensor = \"{}\"\nkind = \"supply_air_temp\"\ntable = \"{}\"\nregister = {}\ntype = \"{}\"\norder = \"{}\"\n",
            p.sensor, p.table, p.register, p.ty, p.order
        ));
        if let Some(bit) = p.bit {
            text.push_str(&format!("bit = {bit}\n"));
        }
    }
    AgentConfig::from_str(&text, Path::new("modbus-test.toml")).context("test config")
}

/// Points for every type and order, packed back to back from holding register 0, with their
/// values set on the server.
fn every_type_and_order(server: &PyModbus, unit: u8) -> Result<(Vec<Point>, Vec<f64>)> {
    let mut points = Vec::new();
    let mut values = Vec::new();
    let mut register = 0u16;
    for ty in RegisterType::ALL {
        for order in WordOrder::ALL {
            server.set_holding(unit, register, &encode(sample(ty), ty, order))?;
            points.push(Point {
                sensor: format!("u{unit}-{ty}-{order}").to_lowercase(),
                table: "holding",
                register,
                ty,
                order,
                bit: None,
            });
            values.push(if ty == RegisterType::Float32 {
                f64::from(sample(ty) as f32)
            } else {
                sample(ty)
            });
            register += ty.register_count();
        }
    }
    Ok((points, values))
}

/// Polls `poller` and asserts every point reads `expected`.
async fn assert_reads(poller: &mut ModbusPoller, points: &[Point], expected: &[f64]) -> Result<()> {
    let readings = poller.poll().await?;
    assert_eq!(readings.len(), points.len());
    for ((reading, point), want) in readings.iter().zip(points).zip(expected) {
        assert_eq!(
            reading.as_ref().ok(),
            Some(want),
            "{}: {reading:?}",
            point.sensor
        );
    }
    Ok(())
}

/// Every type and order, merged into one read and then one read per point; `settings` is the
/// body of `[devices.modbus]`.
async fn round_trip_every_type(server: &PyModbus, address: &str, settings: &str) -> Result<()> {
    let (points, values) = every_type_and_order(server, 1)?;
    // Merged: 32 points in 74 contiguous registers are one read.
    let config = device_config(address, 1, settings, &points)?;
    let mut merged = ModbusPoller::new(&config.devices[0])?;
    assert_eq!(merged.requests_per_poll(), 1);
    assert_reads(&mut merged, &points, &values).await?;
    // One read per point gives the same values.
    let config = device_config(address, 1, &format!("max_span = 1\n{settings}"), &points)?;
    let mut single = ModbusPoller::new(&config.devices[0])?;
    assert_eq!(single.requests_per_poll(), points.len());
    assert_reads(&mut single, &points, &values).await
}

#[tokio::test]
async fn tcp_every_type_and_order_round_trips() -> Result<()> {
    let server = PyModbus::start(&[1])?;
    round_trip_every_type(&server, &server.addr().to_string(), "transport = \"tcp\"").await
}

#[tokio::test]
async fn rtu_over_tcp_round_trips_registers_and_bits() -> Result<()> {
    let server = PyModbus::start_with(&[1], PyModbusLink::RtuOverTcp)?;
    let address = server.addr().to_string();
    round_trip_every_type(&server, &address, "transport = \"rtu-over-tcp\"").await?;
    server.set_bits(1, ModbusBits::Coils, 0, &[true, false, true])?;
    server.set_bits(1, ModbusBits::Discrete, 17, &[true])?;
    let bit = |sensor: &str, table, register| Point {
        sensor: sensor.to_string(),
        table,
        register,
        ty: RegisterType::Uint16,
        order: WordOrder::Abcd,
        bit: None,
    };
    let points = [
        bit("coil0", "coil", 0),
        bit("coil1", "coil", 1),
        bit("coil2", "coil", 2),
        bit("di16", "discrete", 16),
        bit("di17", "discrete", 17),
    ];
    let config = device_config(&address, 1, "transport = \"rtu-over-tcp\"", &points)?;
    let mut poller = ModbusPoller::new(&config.devices[0])?;
    assert_eq!(poller.requests_per_poll(), 2, "one fc1 and one fc2 read");
    assert_reads(&mut poller, &points, &[1.0, 0.0, 1.0, 0.0, 1.0]).await
}

#[tokio::test]
async fn exceptions_fail_only_their_points_and_split_a_refused_merged_read() -> Result<()> {
    let server = PyModbus::start(&[1])?;
    server.set_holding(1, 10, &[100, 0, 120])?;
    server.set_exception(1, ModbusTable::Holding, 11, Some(2))?;
    server.set_holding(1, 20, &[200])?;
    server.set_exception(1, ModbusTable::Holding, 20, Some(6))?;
    server.set_input(1, 0, &[7])?;
    let point = |sensor: &str, table, register| Point {
        sensor: sensor.to_string(),
        table,
        register,
        ty: RegisterType::Uint16,
        order: WordOrder::Abcd,
        bit: None,
    };
    let points = [
        point("a", "holding", 10),
        point("bad", "holding", 11),
        point("c", "holding", 12),
        point("busy", "holding", 20),
        point("in", "input", 0),
        Point {
            bit: Some(0),
            ..point("alarm-high-temp", "holding", 30)
        },
        Point {
            bit: Some(3),
            ..point("alarm-fan", "holding", 30)
        },
    ];
    // An alarm word: bit 0 (high temperature) set, bit 3 (fan failure) clear.
    server.set_holding(1, 30, &[0b0000_0001])?;
    let config = device_config(&server.addr().to_string(), 1, "max_gap = 0", &points)?;
    let mut poller = ModbusPoller::new(&config.devices[0])?;
    assert_eq!(poller.requests_per_poll(), 4);
    for round in 0..2 {
        let readings = poller.poll().await?;
        assert_eq!(readings[0], Ok(100.0), "round {round}");
        let bad = readings[1].as_ref().unwrap_err();
        assert!(
            bad.contains("illegal data address") && bad.contains("Holding 11"),
            "{bad}"
        );
        assert_eq!(readings[2], Ok(120.0));
        let busy = readings[3].as_ref().unwrap_err();
        assert!(busy.contains("6 (server device busy"), "{busy}");
        assert_eq!(readings[4], Ok(7.0));
        assert_eq!(readings[5..], [Ok(1.0), Ok(0.0)], "alarm word states");
        // The refused read 10..=12 is now read point by point: 3 + busy + alarm word + input.
        assert_eq!(poller.requests_per_poll(), 6);
    }
    // A unit id nobody answers for behind the server answers exception 11 per point.
    let config = device_config(&server.addr().to_string(), 9, "", &points[..1])?;
    let readings = ModbusPoller::new(&config.devices[0])?.poll().await?;
    let gone = readings[0].as_ref().unwrap_err();
    assert!(gone.contains("11 (gateway target"), "{gone}");
    Ok(())
}

#[tokio::test]
async fn rtu_line_shared_by_units_with_a_slow_one() -> Result<()> {
    let server = PyModbus::start_with(&[1, 2, 3], PyModbusLink::Serial { baud: 38_400 })?;
    let line = server
        .serial_path()
        .context("serial link")?
        .display()
        .to_string();
    let serial = "transport = \"rtu\"\nrequest_timeout = \"300ms\"\n[devices.modbus.serial]\nbaud = 38400\nparity = \"N\"";
    round_trip_every_type(&server, &line, serial).await?;
    let point = |unit: u8| Point {
        sensor: format!("unit{unit}"),
        table: "input",
        register: 5,
        ty: RegisterType::Float32,
        order: WordOrder::Cdab,
        bit: None,
    };
    let mut pollers = Vec::new();
    for unit in [1u8, 2, 3] {
        server.set_input(
            unit,
            5,
            &encode(
                20.0 + f64::from(unit),
                RegisterType::Float32,
                WordOrder::Cdab,
            ),
        )?;
        let config = device_config(&line, unit, serial, &[point(unit)])?;
        pollers.push(ModbusPoller::new(&config.devices[0])?);
    }
    server.set_delay(3, Duration::from_millis(1500))?;
    let [p1, p2, p3] = &mut pollers[..] else {
        unreachable!()
    };
    // Three devices poll the one line at the same time: the bus lock keeps frames apart.
    for _ in 0..3 {
        let (r1, r2, r3) = tokio::join!(p1.poll(), p2.poll(), p3.poll());
        assert_eq!(r1?, vec![Ok(21.0)]);
        assert_eq!(r2?, vec![Ok(22.0)]);
        assert!(matches!(r3, Err(PollError::Timeout(_))), "{r3:?}");
    }
    // The slow unit recovers once it answers in time again.
    server.set_delay(3, Duration::ZERO)?;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(p3.poll().await?, vec![Ok(23.0)]);
    assert_eq!(p1.poll().await?, vec![Ok(21.0)]);
    // The commissioning CLI on the same line.
    drop(pollers);
    let out = Command::new(crate::support::binary("coldaisle-agent")?)
        .args([
            "modbus", "read", "--serial", &line, "--baud", "38400", "--parity", "N",
        ])
        .args([
            "--unit", "2", "--input", "5", "--type", "float32", "--order", "CDAB",
        ])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("input 5 float32 CDAB = 22 "), "{stdout}");
    Ok(())
}

#[test]
fn cli_reads_and_check_config_shows_the_plan() -> Result<()> {
    let server = PyModbus::start(&[1])?;
    for (i, tenths_f) in [720.0, 750.0, 680.0].iter().enumerate() {
        server.set_holding(
            1,
            92 + 2 * i as u16,
            &encode(*tenths_f, RegisterType::Int32, WordOrder::Abcd),
        )?;
    }
    let agent = crate::support::binary("coldaisle-agent")?;
    let out = Command::new(&agent)
        .args(["modbus", "read", "--address", &server.addr().to_string()])
        .args([
            "--unit",
            "1",
            "--holding",
            "92",
            "--type",
            "int32",
            "--order",
            "ABCD",
            "--count",
            "3",
            "--scale",
            "0.1",
        ])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("holding 92 int32 ABCD = 720 (scaled 72) [0x0000 0x02D0]"),
        "{stdout}"
    );
    assert!(stdout.contains("holding 96 int32 ABCD = 680"), "{stdout}");
    // A model name: five registers of ASCII, NUL padded.
    server.set_holding(1, 200, &[0x4143, 0x5243, 0x3630, 0x3200, 0x0000])?;
    let out = Command::new(&agent)
        .args(["modbus", "read", "--address", &server.addr().to_string()])
        .args(["--holding", "200", "--type", "string", "--count", "5"])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("holding 200 string[5] = \"ACRC602\""),
        "{stdout}"
    );
    // A missing register: the exception and its meaning, and a failing exit status.
    let out = Command::new(&agent)
        .args([
            "modbus",
            "read",
            "--address",
            &server.addr().to_string(),
            "--holding",
            "500",
        ])
        .output()?;
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("holding 500: exception 2 (illegal data address"),
        "{stdout}"
    );

    let dir = tempfile::tempdir()?;
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "agent_id = \"a\"\nsite = \"s\"\nstate_dir = \"/tmp/x\"\n[mqtt]\nhost = \"h\"\nusername = \"u\"\npassword = \"p\"\n\
             [[devices]]\nid = \"inrow\"\nprotocol = \"modbus\"\naddress = \"{}\"\nzone = \"Z1\"\nprofile = \"apc-inrow-modbus\"\n\
             [[devices.points]]\nsensor = \"s1\"\nprofile_point = \"supply_air\"\n\
             [[devices.points]]\nsensor = \"s2\"\nprofile_point = \"return_air\"\n\
             [[devices.points]]\nsensor = \"s3\"\nprofile_point = \"rack_inlet\"\n",
            server.addr()
        ),
    )?;
    let out = Command::new(&agent)
        .args(["check-config", "--verbose", "--config"])
        .arg(&config)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("read fc3 Holding 92..=97 (6 registers): s3@92 s1@94 s2@96"),
        "{stdout}"
    );
    // Each sensor lists the detectors that will run on it: a rack inlet gets the ASHRAE
    // levels, rates and staleness; the impossible-value guard comes first.
    let inlet = stdout
        .split("sensor s3 ")
        .nth(1)
        .and_then(|rest| rest.lines().nth(1))
        .unwrap_or_default();
    assert!(
        inlet.starts_with("    detectors impossible_value, threshold, threshold_critical")
            && inlet.ends_with(", stale"),
        "{stdout}"
    );
    Ok(())
}
