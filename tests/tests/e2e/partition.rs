//! Scale-out: two collectors on one mosquitto, each serving its own site. Each stores and acks
//! only its own site's agent, and both agents are fully acknowledged. A collector that comes
//! back after its agent (whose resends meanwhile reached nobody) gets the backlog at once.

use super::support::{free_port, get_json, wait_for, Daemon};
use anyhow::{Context, Result};
use coldaisle_testkit::peers::{Mosquitto, SnmpValue, Snmpd, SnmpdOptions};
use std::path::Path;
use std::time::Duration;

const TEMP: &str = super::support::INLET_TEMP_OID;

fn agent(dir: &Path, site: &str, mqtt: u16, snmp: u16) -> String {
    format!(
        r#"agent_id = "agent-{site}"
site = "{site}"
state_dir = "{state}"
summary_interval = "300ms"
[mqtt]
host = "127.0.0.1"
port = {mqtt}
username = "u"
password = "p"
{devices}"#,
        devices = super::support::one_inlet_pdu(snmp),
        state = dir.join(format!("agent-{site}")).display()
    )
}

fn collector(dir: &Path, site: &str, mqtt: u16, http: u16) -> String {
    format!(
        r#"collector_id = "collector-{site}"
state_dir = "{state}"
sites = ["{site}"]
[mqtt]
host = "127.0.0.1"
port = {mqtt}
username = "u"
password = "p"
[http]
listen = "127.0.0.1:{http}"
"#,
        state = dir.join(format!("collector-{site}")).display()
    )
}

#[test]
fn two_collectors_split_sites_and_ack_only_their_own() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = Mosquitto::start(&[("u", "p")])?;
    let snmpd = Snmpd::start(SnmpdOptions::default())?;
    snmpd.set_value(TEMP, SnmpValue::Integer(221))?;
    let mut daemons = Vec::new();
    let mut apis = Vec::new();
    for site in ["ams1", "fra1"] {
        let http = free_port()?;
        let c = dir.path().join(format!("collector-{site}.toml"));
        std::fs::write(&c, collector(dir.path(), site, broker.port(), http))?;
        let a = dir.path().join(format!("agent-{site}.toml"));
        std::fs::write(&a, agent(dir.path(), site, broker.port(), snmpd.port()))?;
        daemons.push(Daemon::start(
            "coldaisle-collector",
            &c,
            &dir.path().join(format!("c-{site}.log")),
        )?);
        daemons.push(Daemon::start(
            "coldaisle-agent",
            &a,
            &dir.path().join(format!("a-{site}.log")),
        )?);
        apis.push((site, format!("http://127.0.0.1:{http}")));
    }
    for (site, api) in &apis {
        let mine = format!("agent-{site}");
        let agents = wait_for(
            &format!("{site}'s collector to ack its agent"),
            Duration::from_secs(20),
            || {
                let agents = get_json(&format!("{api}/api/v1/agents")).ok()?;
                (agents.get(&mine)?["acked_upto"].as_u64()? >= 5).then_some(agents)
            },
        )
        .with_context(|| {
            daemons
                .iter()
                .map(|d| d.log_tail())
                .collect::<Vec<_>>()
                .join("\n---\n")
        })?;
        let ids: Vec<&String> = agents
            .as_object()
            .context("agents object")?
            .keys()
            .collect();
        assert_eq!(
            ids,
            vec![&mine],
            "collector of {site} sees only its own site's agent"
        );
        let zones = get_json(&format!("{api}/api/v1/zones"))?;
        let text = zones.to_string();
        assert!(text.contains(site), "{text}");
        let other = if *site == "ams1" { "fra1" } else { "ams1" };
        assert!(
            !text.contains(other),
            "{site}'s collector holds {other}'s zones: {text}"
        );
    }
    Ok(())
}

#[test]
fn a_collector_that_comes_back_gets_the_backlog_at_once() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = Mosquitto::start(&[("u", "p")])?;
    let snmpd = Snmpd::start(SnmpdOptions::default())?;
    snmpd.set_value(TEMP, SnmpValue::Integer(221))?;
    // resend_after far beyond the test: only the collector's hello can trigger the resend.
    let a = dir.path().join("agent.toml");
    std::fs::write(
        &a,
        agent(dir.path(), "ams1", broker.port(), snmpd.port()).replace(
            "summary_interval = \"300ms\"",
            "summary_interval = \"300ms\"\nresend_after = \"300s\"",
        ),
    )?;
    let agent = Daemon::start("coldaisle-agent", &a, &dir.path().join("agent.log"))?;
    // The agent connects and sends its first summaries to nobody.
    wait_for("the agent to connect", Duration::from_secs(20), || {
        agent.log().contains("mqtt connected").then_some(())
    })
    .with_context(|| agent.log_tail())?;
    std::thread::sleep(Duration::from_secs(2));
    let http = free_port()?;
    let c = dir.path().join("collector.toml");
    std::fs::write(&c, collector(dir.path(), "ams1", broker.port(), http))?;
    let collector = Daemon::start("coldaisle-collector", &c, &dir.path().join("c.log"))?;
    let api = format!("http://127.0.0.1:{http}");
    // The early records are acked (contiguously) long before resend_after.
    wait_for("the backlog to be acked", Duration::from_secs(15), || {
        let agents = get_json(&format!("{api}/api/v1/agents")).ok()?;
        (agents.get("agent-ams1")?["acked_upto"].as_u64()? >= 5).then_some(())
    })
    .with_context(|| format!("{}\n---\n{}", agent.log_tail(), collector.log_tail()))?;
    assert!(
        agent.log().contains("collector is here; resending"),
        "{}",
        agent.log_tail()
    );
    Ok(())
}
