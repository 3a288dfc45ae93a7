//! Rack power profiles against the simulated devices: the built-in profile points of an APC
//! rPDU2, a Raritan PX2 inlet, ENTITY-SENSOR-MIB rows and a UPS-MIB output, polled through the
//! agent's SNMP poller, give kW and A after the MIBs' scales, decimal digits and SI prefixes.

use anyhow::{Context, Result};
use coldaisle_agent::snmp::poll::SnmpPoller;
use coldaisle_config::AgentConfig;
use coldaisle_core::SensorKind;
use coldaisle_testkit::snmp_sim::SnmpSim;
use std::path::Path;

/// One device of `profile` at `addr` with the given `(sensor, profile_point, extra)` points.
fn device(
    id: &str,
    profile: &str,
    addr: std::net::SocketAddr,
    points: &[(&str, &str, &str)],
) -> String {
    let mut text = format!(
        "[[devices]]\nid = \"{id}\"\nprotocol = \"snmp\"\naddress = \"{addr}\"\nzone = \"Z1\"\n\
         rack = \"R07\"\nprofile = \"{profile}\"\ntimeout = \"2s\"\n"
    );
    for (sensor, point, extra) in points {
        text.push_str(&format!(
            "[[devices.points]]\nsensor = \"{sensor}\"\nprofile_point = \"{point}\"\n{extra}"
        ));
    }
    text
}

fn close(got: &Result<f64, String>, want: f64) -> bool {
    got.as_ref().is_ok_and(|v| (v - want).abs() < 1e-9)
}

#[tokio::test]
async fn rack_power_profiles_read_kilowatts_and_amperes_from_the_simulators() -> Result<()> {
    let apc = SnmpSim::start("public").await?;
    let px2 = SnmpSim::start("public").await?;
    let ent = SnmpSim::start("public").await?;
    let ups = SnmpSim::start("public").await?;
    let err = |e: coldaisle_testkit::snmp_sim::BadOid| anyhow::anyhow!("{e:?}");
    apc.set_rpdu2_power(4.37, 18.6).map_err(err)?;
    px2.set_px2_inlet_power(6.125, 9.873).map_err(err)?;
    ent.set_entity_power_rows(2001, "R07", 3.2105, 14.25)
        .map_err(err)?;
    ups.set_ups_output(12.5, 54.3).map_err(err)?;
    let mut text = String::from(
        "agent_id = \"p\"\nsite = \"lab\"\nstate_dir = \"/tmp/unused\"\n[mqtt]\nhost = \"h\"\n",
    );
    text.push_str(&device(
        "pdu-apc",
        "apc-rpdu2",
        apc.addr(),
        &[
            ("apc-kw", "device_power", ""),
            ("apc-l1-kw", "phase1_power", ""),
            ("apc-l1-a", "phase1_current", ""),
        ],
    ));
    text.push_str(&device(
        "pdu-px2",
        "raritan-px2",
        px2.addr(),
        &[
            ("px2-kw", "inlet_power", ""),
            ("px2-a", "inlet_current", ""),
        ],
    ));
    text.push_str(&device(
        "pdu-ent",
        "entity-sensor",
        ent.addr(),
        &[
            ("ent-kw", "power", "snmp = { row_name = \"R07-power\" }\n"),
            (
                "ent-a",
                "current",
                "snmp = { row_name = \"R07-current\" }\n",
            ),
        ],
    ));
    text.push_str(&device(
        "ups-1",
        "ups-mib",
        ups.addr(),
        &[
            ("ups-kw", "output_power", ""),
            ("ups-a", "output_current", ""),
        ],
    ));
    let config = AgentConfig::from_str(&text, Path::new("power.toml")).context("power config")?;
    let want: [&[(SensorKind, f64)]; 4] = [
        &[
            (SensorKind::RackPower, 4.37),
            (SensorKind::RackPower, 4.37),
            (SensorKind::RackCurrent, 18.6),
        ],
        &[
            (SensorKind::RackPower, 6.125),
            (SensorKind::RackCurrent, 9.873),
        ],
        &[
            (SensorKind::RackPower, 3.2105),
            (SensorKind::RackCurrent, 14.25),
        ],
        &[
            (SensorKind::RackPower, 12.5),
            (SensorKind::RackCurrent, 54.3),
        ],
    ];
    for (device, want) in config.devices.iter().zip(want) {
        let kinds: Vec<SensorKind> = device.sensors.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            want.iter().map(|w| w.0).collect::<Vec<_>>(),
            "{}",
            device.id
        );
        let mut poller = SnmpPoller::new(device)?;
        let raw = poller.poll().await?;
        let readings: Vec<Result<f64, String>> = raw
            .iter()
            .zip(&device.sensors)
            .map(|(r, s)| r.clone().map(|v| s.normalise(v)))
            .collect();
        assert_eq!(readings.len(), want.len(), "{}", device.id);
        for ((got, (_, value)), sensor) in readings.iter().zip(want).zip(&device.sensors) {
            assert!(close(got, *value), "{}: {got:?}, want {value}", sensor.id);
        }
    }
    // An rPDU2 that does not support power answers −1: below the valid range, a sensor fault.
    apc.set_rpdu2_power(-0.01, 0.0).map_err(err)?;
    let range = coldaisle_config::detection::DetectionConfig::default()
        .for_kind(SensorKind::RackPower)
        .valid_range;
    assert!(range.0 > -0.01, "−1 hundredths of kW is outside {range:?}");
    Ok(())
}
