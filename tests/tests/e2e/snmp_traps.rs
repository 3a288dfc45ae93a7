//! SNMP traps by their built-in vendor meaning and from devices configured by host name: an
//! APC SNMPv1 TRAP-TYPE sent with net-snmp's `snmptrap` maps through the built-in
//! PowerNet-MIB table (no `[[snmp_traps.map]]`) to an event of the device configured as
//! `localhost`, in process and through the agent binary, mosquitto and the collector to an
//! incident in the API, which the trap's clear counterpart resolves.

use anyhow::{Context, Result};
use coldaisle_config::AgentConfig;
use std::path::Path;
use std::time::Duration;

/// emsProbeStatusProbeHumidity.1 (PowerNet-MIB: whole %RH), a varbind of
/// envHighHumidityThresholdViolation (.318.0.257) and its clear (.318.0.258).
const EMS_HUMIDITY: &str = "1.3.6.1.4.1.318.1.1.10.3.13.1.1.6.1";
/// The polled point: rPDU2SensorTempHumidityStatusTempC.1 (tenths °C).
const TEMP: &str = "1.3.6.1.4.1.318.1.1.26.10.2.2.1.8.1";

/// Sends an APC enterprise-specific SNMPv1 trap (agent-addr 127.0.0.1) with net-snmp.
fn apc_v1_trap(to: &str, specific: u32, varbinds: &str) -> Result<()> {
    let line =
        format!("snmptrap -v 1 -c public {to} 1.3.6.1.4.1.318 127.0.0.1 6 {specific} 0 {varbinds}");
    anyhow::ensure!(super::support::net_snmp(&line)?, "{line} failed");
    Ok(())
}

#[tokio::test]
async fn apc_v1_trap_from_a_device_named_localhost_maps_by_the_builtin_table() -> Result<()> {
    use coldaisle_agent::snmp::trap::{listen, TrapContext};
    use coldaisle_agent::snmp::trap_map::to_payload;
    use coldaisle_agent::snmp::trap_sources::{resolve_sources, RESOLVE_TIMEOUT};
    use coldaisle_config::snmp_traps::{builtin_mappings, SnmpTraps};
    use coldaisle_core::wire::Payload;
    use coldaisle_core::{Category, EventState, Timestamp};
    use tokio::sync::{mpsc, watch};

    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let to = format!("127.0.0.1:{}", socket.local_addr()?.port());
    let text =
        "agent_id = \"t\"\nsite = \"lab\"\nstate_dir = \"/tmp/unused\"\n[mqtt]\nhost = \"h\"\n\
        [[devices]]\nid = \"ems-9\"\nprotocol = \"snmp\"\naddress = \"localhost\"\nzone = \"Z9\"\n\
        [[devices.points]]\nsensor = \"t9\"\nkind = \"inlet_temp\"\noid = \"{TEMP}\"\n"
            .replace("{TEMP}", TEMP);
    let config = AgentConfig::from_str(&text, Path::new("traps.toml"))?;
    let sources = resolve_sources(&config.devices, None, RESOLVE_TIMEOUT).await;
    assert!(sources.unresolved().is_empty(), "{sources:?}");
    let (tx, mut rx) = mpsc::channel(8);
    let (stop, stopped) = watch::channel(false);
    let (_context, context) = watch::channel(std::sync::Arc::new(TrapContext {
        sources,
        devices: config.devices.clone(),
        communities: vec!["public".into()],
        v3: Default::default(),
    }));
    let listener = tokio::spawn(listen(socket, context, tx, stopped));

    // envHighHumidityThresholdViolation with the probe's humidity, 83 %RH.
    let send = to.clone();
    tokio::task::spawn_blocking(move || apc_v1_trap(&send, 257, &format!("{EMS_HUMIDITY} i 83")))
        .await??;
    let event = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await?
        .context("trap event")?;
    assert_eq!(event.device, "ems-9");
    assert_eq!(event.location.zone, "Z9");
    let traps = SnmpTraps {
        mappings: builtin_mappings(),
        ..SnmpTraps::default()
    };
    let Some(Payload::SensorEvent(s)) = to_payload(&event, &traps, Timestamp(1)) else {
        panic!("no built-in mapping for {:?}", event.notification.trap_oid);
    };
    assert_eq!(s.sensor, "ems-9.trap.env_humidity_high");
    assert_eq!(s.category, Category::Humidity);
    assert_eq!(s.state, EventState::Raised);
    assert_eq!(s.value, 83.0);

    stop.send(true)?;
    listener.await?;
    Ok(())
}

/// Agent config: one environmental monitor polled on snmpd and addressed as `localhost`, the
/// listener on `trap_port`, built-in mappings only.
fn agent_config(
    dir: &Path,
    mqtt_port: u16,
    snmp_port: u16,
    community: &str,
    trap_port: u16,
) -> String {
    format!(
        r#"agent_id = "apc-agent"
site = "lab"
state_dir = "{state}"
resend_after = "2s"

[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
username = "apc-agent"
password = "agent-pass"

[snmp_traps]
listen = "127.0.0.1:{trap_port}"
communities = ["public"]

[[devices]]
id = "ems-9"
protocol = "snmp"
address = "localhost:{snmp_port}"
zone = "Z9"
rack = "R1"
community = "{community}"
poll_interval = "1s"
timeout = "500ms"

[[devices.points]]
sensor = "ems-9-inlet"
kind = "inlet_temp"
oid = "{TEMP}"
scale = 0.1
"#,
        state = dir.join("agent-state").display(),
    )
}

#[test]
fn apc_trap_through_the_agent_binary_opens_and_its_clear_resolves_an_incident() -> Result<()> {
    use super::support::{free_udp_port, get_json, start_collector, wait_for, Daemon};
    use coldaisle_testkit::peers::{Mosquitto, SnmpValue, Snmpd, SnmpdOptions};

    let dir = tempfile::tempdir()?;
    let broker = Mosquitto::start(&[("apc-agent", "agent-pass"), ("collector", "collector-pass")])?;
    let snmpd = Snmpd::start(SnmpdOptions::default())?;
    snmpd.set_value(TEMP, SnmpValue::Integer(221))?;
    let (collector, api) = start_collector(dir.path(), "apc-collector", broker.port())?;
    let trap_port = free_udp_port()?;
    let agent_toml = dir.path().join("agent.toml");
    std::fs::write(
        &agent_toml,
        agent_config(
            dir.path(),
            broker.port(),
            snmpd.port(),
            snmpd.community(),
            trap_port,
        ),
    )?;
    let agent = Daemon::start(
        "coldaisle-agent",
        &agent_toml,
        &dir.path().join("agent.log"),
    )?;
    let logs = || {
        format!(
            "agent log:\n{}\ncollector log:\n{}",
            agent.log_tail(),
            collector.log_tail()
        )
    };
    let trap_incident = |status: &str| -> Option<serde_json::Value> {
        get_json(&format!("{api}/api/v1/incidents?zone=Z9"))
            .ok()?
            .as_array()?
            .iter()
            .find(|i| {
                i["status"] == status && i.to_string().contains("ems-9.trap.env_humidity_high")
            })
            .cloned()
    };
    // "localhost" resolved: the device's notifications are accepted from now on.
    wait_for(
        "the device host name to resolve",
        Duration::from_secs(20),
        || {
            agent
                .log()
                .contains("SNMP notification sources updated")
                .then_some(())
        },
    )
    .with_context(logs)?;

    // envHighHumidityThresholdViolation (83 %RH) → an open humidity incident of Z9.
    let to = format!("127.0.0.1:{trap_port}");
    apc_v1_trap(&to, 257, &format!("{EMS_HUMIDITY} i 83"))?;
    let open = wait_for(
        "the APC trap incident to open",
        Duration::from_secs(20),
        || trap_incident("open"),
    )
    .with_context(logs)?;
    let text = open.to_string();
    assert!(
        text.contains("humidity") && text.contains("critical") && text.contains("83"),
        "{text}"
    );

    // envHighHumidityThresholdViolationCleared ends it.
    apc_v1_trap(&to, 258, &format!("{EMS_HUMIDITY} i 55"))?;
    wait_for(
        "the APC trap incident to resolve",
        Duration::from_secs(20),
        || trap_incident("resolved"),
    )
    .with_context(logs)?;
    Ok(())
}
