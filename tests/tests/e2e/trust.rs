//! What the collector trusts (issue 14, ingest side), black-box on real mosquitto: unbounded
//! claims and forged sites or zones are refused and counted while an honest agent is still
//! acked; trust on first use survives a restart; the ACL generated from the agents list
//! confines each agent to its site; an agent whose state directory was lost restarts its
//! seqs and is stored, not dropped as duplicates.

use super::support::{binary, free_port, get_json, publish_batch, publish_on, wait_for, Daemon};
use anyhow::{bail, Context, Result};
use coldaisle_core::wire::{Batch, Payload, Record, SeqRange, SCHEMA_VERSION};
use coldaisle_core::{DeviceEvent, EventState, Location, Timestamp};
use coldaisle_testkit::peers::{Mosquitto, SnmpValue, Snmpd, SnmpdOptions};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const USER: &str = "collector";
const PASS: &str = "collector-pass";

/// A collector config on `broker` with its API on `http` and `extra` TOML appended.
fn collector_toml(dir: &Path, broker: u16, http: u16, extra: &str) -> String {
    format!(
        "collector_id = \"trust\"\nstate_dir = \"{}\"\n{extra}\n[mqtt]\nhost = \"127.0.0.1\"\n\
         port = {broker}\nusername = \"{USER}\"\npassword = \"{PASS}\"\n[http]\n\
         listen = \"127.0.0.1:{http}\"\n",
        dir.join("collector-state").display()
    )
}

fn start_collector(dir: &Path, broker: u16, extra: &str) -> Result<(Daemon, String)> {
    let http = free_port()?;
    let toml = dir.join("collector.toml");
    std::fs::write(&toml, collector_toml(dir, broker, http, extra))?;
    let connects_before = std::fs::read_to_string(dir.join("collector.log"))
        .map_or(0, |t| t.matches("mqtt connected").count());
    let daemon = Daemon::start("coldaisle-collector", &toml, &dir.join("collector.log"))?;
    // Messages published before the collector subscribes reach nobody.
    let log = dir.join("collector.log");
    wait_for(
        "the collector's broker connection",
        Duration::from_secs(20),
        || {
            let text = std::fs::read_to_string(&log).ok()?;
            (text.matches("mqtt connected").count() > connects_before).then_some(())
        },
    )
    .with_context(|| daemon.log_tail())?;
    std::thread::sleep(Duration::from_millis(500));
    Ok((daemon, format!("http://127.0.0.1:{http}")))
}

fn event(site: &str, zone: &str, seq: u64) -> Payload {
    Payload::DeviceEvent(DeviceEvent {
        device: format!("pdu-{zone}"),
        location: Location {
            site: site.into(),
            zone: zone.into(),
            row: None,
            rack: None,
        },
        state: EventState::Raised,
        reason: "timeout".into(),
        ts: Timestamp::now().minus(Duration::from_secs(60 - seq)),
    })
}

/// A batch of `agent` on `site` with one record per seq, its events in `zone`.
fn batch(agent: &str, site: &str, zone: &str, floor: u64, seqs: &[u64]) -> Batch {
    Batch {
        schema: SCHEMA_VERSION,
        agent: agent.into(),
        site: site.into(),
        floor,
        records: seqs
            .iter()
            .map(|seq| Record {
                schema: SCHEMA_VERSION,
                agent: agent.into(),
                site: site.into(),
                seq: *seq,
                payload: event(site, zone, *seq),
                instance: None,
            })
            .collect(),
        dropped: Vec::new(),
        instance: None,
    }
}

/// A status payload naming `agent`.
fn status_of(agent: &str) -> String {
    serde_json::json!({
        "state": "online", "agent": agent, "version": "t", "config_hash": "h",
        "ts": Timestamp::now(),
    })
    .to_string()
}

fn agents(api: &str) -> Option<serde_json::Value> {
    get_json(&format!("{api}/api/v1/agents")).ok()
}

#[test]
fn unbounded_claims_and_forged_sites_are_refused_while_an_honest_agent_is_acked() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = Mosquitto::start(&[(USER, PASS)])?;
    let list = "[[agents]]\nid = \"a1\"\nsite = \"s1\"\nzones = [\"Z1\"]\n\
                [[agents]]\nid = \"a2\"\nsite = \"s1\"\n";
    let (collector, api) = start_collector(dir.path(), broker.port(), list)?;
    let as_user = (USER, PASS);
    // The issue's attack: a range to u64::MAX used to stall ingest for every agent.
    let mut everything = batch("a1", "s1", "Z1", 1, &[1]);
    everything.dropped = vec![SeqRange {
        from: 2,
        to: u64::MAX,
    }];
    publish_batch(broker.port(), as_user, &everything)?;
    // A floor of u64::MAX used to make the collector ack everything.
    publish_batch(
        broker.port(),
        as_user,
        &batch("a1", "s1", "Z1", u64::MAX, &[1]),
    )?;
    publish_batch(broker.port(), as_user, &batch("a1", "s1", "Z2", 1, &[1]))?;
    publish_batch(broker.port(), as_user, &batch("a1", "s2", "Z1", 1, &[1]))?;
    publish_batch(
        broker.port(),
        as_user,
        &batch("stranger", "s1", "Z1", 1, &[1]),
    )?;
    publish_batch(broker.port(), as_user, &batch("a2", "s1", "Z9", 1, &[1, 2]))?;
    let all = wait_for(
        "a2 acked and a1 refused 4 times",
        Duration::from_secs(20),
        || {
            let all = agents(&api)?;
            let refused: u64 = all["a1"]["refused"]
                .as_object()?
                .values()
                .filter_map(|v| v.as_u64())
                .sum();
            (all["a2"]["acked_upto"].as_u64()? == 2 && refused == 4).then_some(all)
        },
    )
    .with_context(|| collector.log_tail())?;
    let a1 = &all["a1"];
    for reason in [
        "dropped_out_of_range",
        "floor_beyond_produced",
        "wrong_zone",
        "wrong_site",
    ] {
        assert_eq!(a1["refused"][reason], 1, "{reason}: {a1}");
    }
    assert_eq!(a1["acked_upto"], 0, "nothing of a1 is acked: {a1}");
    assert_eq!(a1["records"], 0, "nothing of a1 is stored: {a1}");
    assert_eq!(all["stranger"]["refused"]["unknown_agent"], 1, "{all}");
    assert_eq!(all["a2"]["records"], 2);
    let stats = get_json(&format!("{api}/api/v1/stats"))?;
    assert_eq!(stats["ingest"]["refused"]["wrong_site"], 1, "{stats}");
    assert_eq!(stats["ingest"]["stored"], 2, "{stats}");
    // Four refusals of a1 within a minute: one log line.
    let log = collector.log();
    let a1_lines = log
        .lines()
        .filter(|l| l.contains("message refused") && l.contains("\"a1\""))
        .count();
    assert_eq!(a1_lines, 1, "{log}");
    Ok(())
}

#[test]
fn a_status_on_another_site_or_naming_another_agent_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = Mosquitto::start(&[(USER, PASS)])?;
    let list = "[[agents]]\nid = \"a1\"\nsite = \"s1\"\n\
                [[agents]]\nid = \"a2\"\nsite = \"s1\"\n";
    let (collector, api) = start_collector(dir.path(), broker.port(), list)?;
    let (port, as_user) = (broker.port(), (USER, PASS));
    publish_on(port, as_user, "coldaisle/v1/s2/a1/status", &status_of("a1"))?;
    publish_on(port, as_user, "coldaisle/v1/s1/a1/status", &status_of("a2"))?;
    publish_on(port, as_user, "coldaisle/v1/s1/a2/status", &status_of("a2"))?;
    let all = wait_for(
        "a2's status and a1's two refusals",
        Duration::from_secs(20),
        || {
            let all = agents(&api)?;
            let refused = all["a1"]["refused"].as_object()?.len();
            (all["a2"]["status"]["state"] == "online" && refused == 2).then_some(all)
        },
    )
    .with_context(|| collector.log_tail())?;
    let a1 = &all["a1"];
    assert_eq!(a1["refused"]["wrong_site"], 1, "{a1}");
    assert_eq!(a1["refused"]["other_agents_status"], 1, "{a1}");
    assert!(
        a1["status"].is_null(),
        "a refused status is not applied: {a1}"
    );
    assert_ne!(
        a1["site"], "s2",
        "a refused claim is not the agent's site: {a1}"
    );
    Ok(())
}

#[test]
fn trust_on_first_use_pins_an_agent_to_its_first_site_across_restarts() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = Mosquitto::start(&[(USER, PASS)])?;
    let (mut collector, api) = start_collector(dir.path(), broker.port(), "")?;
    let as_user = (USER, PASS);
    publish_batch(broker.port(), as_user, &batch("a1", "s1", "Z1", 1, &[1]))?;
    wait_for("a1 acked", Duration::from_secs(20), || {
        (agents(&api)?["a1"]["acked_upto"].as_u64()? == 1).then_some(())
    })
    .with_context(|| collector.log_tail())?;
    assert!(collector.log().contains("agent seen for the first time"));
    publish_batch(broker.port(), as_user, &batch("a1", "s2", "Z1", 1, &[2]))?;
    wait_for("a1 refused on s2", Duration::from_secs(20), || {
        (agents(&api)?["a1"]["refused"]["wrong_site"].as_u64()? == 1).then_some(())
    })
    .with_context(|| collector.log_tail())?;
    collector.terminate()?;
    drop(collector);
    let (collector, api) = start_collector(dir.path(), broker.port(), "")?;
    publish_batch(broker.port(), as_user, &batch("a1", "s2", "Z1", 1, &[2]))?;
    publish_batch(broker.port(), as_user, &batch("a1", "s1", "Z1", 1, &[2]))?;
    let all = wait_for("a1 acked on s1 again", Duration::from_secs(20), || {
        let all = agents(&api)?;
        (all["a1"]["acked_upto"].as_u64()? == 2).then_some(all)
    })
    .with_context(|| collector.log_tail())?;
    assert_eq!(
        all["a1"]["refused"]["wrong_site"], 1,
        "the recorded site survived: {all}"
    );
    assert_eq!(all["a1"]["records"], 2, "{all}");
    Ok(())
}

#[tokio::test]
async fn generated_acl_confines_each_agent_to_its_own_site() -> Result<()> {
    use coldaisle_mqtt::{LinkEvent, LinkOptions, MqttLink, Qos};
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("collector.toml");
    let list = "[[agents]]\nid = \"a1\"\nsite = \"s1\"\n[[agents]]\nid = \"a2\"\nsite = \"s2\"\n";
    std::fs::write(&config, collector_toml(dir.path(), 1883, 8080, list))?;
    let out = Command::new(binary("coldaisle-collector")?)
        .args(["acl", "--config"])
        .arg(&config)
        .output()?;
    if !out.status.success() {
        bail!("acl failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let acl = dir.path().join("generated.acl");
    std::fs::write(&acl, &out.stdout)?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    std::fs::set_permissions(&acl, std::fs::Permissions::from_mode(0o644))?;
    let broker = Mosquitto::start_with(
        &[("a1", "p1"), ("a2", "p2"), (USER, PASS)],
        &format!("acl_file {}\n", acl.display()),
        false,
    )?;
    let config: coldaisle_config::MqttConfig = toml::from_str(&format!(
        "host = \"127.0.0.1\"\nport = {}\nusername = \"{USER}\"\n",
        broker.port()
    ))?;
    let mut link = MqttLink::open(LinkOptions {
        client_id: "acl-collector".into(),
        config,
        password: Some(PASS.to_string().into()),
        will: None,
        tls: None,
    });
    match tokio::time::timeout(Duration::from_secs(10), link.events.recv()).await {
        Ok(Some(LinkEvent::Connected)) => {}
        other => bail!("not connected: {other:?}"),
    }
    link.client
        .subscribe("coldaisle/v1/#", Qos::AtLeastOnce)
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let port = broker.port();
    tokio::task::spawn_blocking(move || -> Result<()> {
        publish_batch(port, ("a1", "p1"), &batch("a1", "s1", "Z1", 1, &[1]))?;
        publish_batch(port, ("a1", "p1"), &batch("a1", "s2", "Z1", 1, &[1]))?;
        publish_batch(port, ("a1", "p1"), &batch("a2", "s2", "Z1", 1, &[1]))?;
        publish_batch(port, ("a2", "p2"), &batch("a2", "s2", "Z1", 1, &[1]))?;
        publish_batch(port, ("a2", "p2"), &batch("a2", "s1", "Z1", 1, &[1]))?;
        Ok(())
    })
    .await??;
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Some(e)) = tokio::time::timeout_at(deadline, link.events.recv()).await {
        if let LinkEvent::Message { topic, .. } = e {
            seen.push(topic);
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            "coldaisle/v1/s1/a1/events".to_string(),
            "coldaisle/v1/s2/a2/events".to_string()
        ],
        "each agent reaches the collector only on its own site's topic"
    );
    Ok(())
}

const TEMP: &str = super::support::INLET_TEMP_OID;

fn agent_toml(state: &Path, mqtt: u16, snmp: u16) -> String {
    format!(
        r#"agent_id = "agent-ams1"
site = "ams1"
state_dir = "{state}"
summary_interval = "200ms"
status_every = "1s"
[mqtt]
host = "127.0.0.1"
port = {mqtt}
username = "{USER}"
password = "{PASS}"
{devices}"#,
        devices = super::support::one_inlet_pdu(snmp),
        state = state.display()
    )
}

#[test]
fn an_agent_that_lost_its_state_directory_is_stored_as_a_new_instance() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = Mosquitto::start(&[(USER, PASS)])?;
    let snmpd = Snmpd::start(SnmpdOptions::default())?;
    snmpd.set_value(TEMP, SnmpValue::Integer(221))?;
    let (collector, api) = start_collector(dir.path(), broker.port(), "")?;
    let state = dir.path().join("agent-state");
    let toml = dir.path().join("agent.toml");
    std::fs::write(&toml, agent_toml(&state, broker.port(), snmpd.port()))?;
    let mut agent = Daemon::start("coldaisle-agent", &toml, &dir.path().join("agent1.log"))?;
    let first = wait_for(
        "the first instance acked past seq 5",
        Duration::from_secs(30),
        || {
            let a = agents(&api)?["agent-ams1"].clone();
            (a["acked_upto"].as_u64()? >= 5).then_some(a)
        },
    )
    .with_context(|| format!("{}\n---\n{}", collector.log_tail(), agent.log_tail()))?;
    let first_instance = first["instance"]
        .as_str()
        .context("instance shown")?
        .to_string();
    agent.terminate()?;
    drop(agent);
    let stopped = agents(&api).context("agents")?["agent-ams1"].clone();
    let before = stopped["records"].as_u64().context("records")?;
    // The first instance may have resent a record whose ack was late (at least once, under
    // load): that duplicate is its own, counted before the new instance starts.
    let duplicates_before = stopped["duplicates"].as_u64().context("duplicates")?;
    std::fs::remove_dir_all(&state)?;
    let agent = Daemon::start("coldaisle-agent", &toml, &dir.path().join("agent2.log"))?;
    let second = wait_for("the new instance stored", Duration::from_secs(30), || {
        let a = agents(&api)?["agent-ams1"].clone();
        (a["restarts"].as_u64()? == 1 && a["acked_upto"].as_u64()? >= 3).then_some(a)
    })
    .with_context(|| format!("{}\n---\n{}", collector.log_tail(), agent.log_tail()))?;
    assert_ne!(second["instance"].as_str(), Some(first_instance.as_str()));
    assert!(
        second["records"].as_u64().context("records")? >= before + 3,
        "the new instance's seqs 1.. are new records: {second}"
    );
    assert_eq!(
        second["duplicates"].as_u64(),
        Some(duplicates_before),
        "nothing of the new instance taken for a duplicate: {second}"
    );
    assert!(collector
        .log()
        .contains("agent restarted with a new state directory"));
    // The agent reports its own clock skew, estimated from the collector's time in the acks.
    let skew = wait_for(
        "the agent's skew in its status",
        Duration::from_secs(10),
        || agents(&api)?["agent-ams1"]["status"]["stats"]["clock_skew_ms"].as_i64(),
    )
    .with_context(|| agent.log_tail())?;
    assert!(skew.abs() < 5_000, "one machine, one clock: {skew} ms");
    Ok(())
}

#[test]
fn a_record_stamped_in_the_future_never_moves_incident_time() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = Mosquitto::start(&[(USER, PASS)])?;
    let (collector, api) = start_collector(dir.path(), broker.port(), "")?;
    let mut fast = batch("fast", "s1", "Z1", 1, &[1]);
    let hour_ahead = Timestamp::now().plus(Duration::from_secs(3600));
    if let Payload::DeviceEvent(e) = &mut fast.records[0].payload {
        e.ts = hour_ahead;
    }
    publish_batch(broker.port(), (USER, PASS), &fast)?;
    let all = wait_for("the future record stored", Duration::from_secs(20), || {
        let all = agents(&api)?;
        (all["fast"]["acked_upto"].as_u64()? == 1).then_some(all)
    })
    .with_context(|| collector.log_tail())?;
    assert_eq!(all["fast"]["records_ahead"], 1, "flagged: {all}");
    let ahead = all["fast"]["clock_ahead_ms"]
        .as_i64()
        .context("skew shown")?;
    assert!(ahead > 3_500_000, "the agent's skew is shown: {ahead}");
    let stats = get_json(&format!("{api}/api/v1/stats"))?;
    assert_eq!(stats["ingest"]["ahead_of_clock"], 1, "{stats}");
    let latest = stats["latest_event"].as_i64().context("latest_event")?;
    let bound = Timestamp::now().plus(Duration::from_secs(125)).0;
    assert!(
        latest <= bound,
        "event time stays within our clock + max_clock_skew: {latest} > {bound}"
    );
    let incidents = get_json(&format!("{api}/api/v1/incidents"))?;
    let opened = incidents[0]["opened_at"]
        .as_i64()
        .context("incident opened")?;
    assert!(
        opened <= bound,
        "the incident opens at the moved time: {incidents}"
    );
    Ok(())
}

#[test]
fn an_agents_file_is_read_again_on_sighup() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = Mosquitto::start(&[(USER, PASS)])?;
    let file = dir.path().join("agents.toml");
    std::fs::write(&file, "[[agents]]\nid = \"a1\"\nsite = \"s1\"\n")?;
    let extra = format!("agents_file = \"{}\"", file.display());
    let (collector, api) = start_collector(dir.path(), broker.port(), &extra)?;
    publish_batch(
        broker.port(),
        (USER, PASS),
        &batch("a3", "s1", "Z1", 1, &[1]),
    )?;
    wait_for("a3 refused as unknown", Duration::from_secs(20), || {
        (agents(&api)?["a3"]["refused"]["unknown_agent"].as_u64()? == 1).then_some(())
    })
    .with_context(|| collector.log_tail())?;
    std::fs::write(
        &file,
        "[[agents]]\nid = \"a1\"\nsite = \"s1\"\n[[agents]]\nid = \"a3\"\nsite = \"s1\"\n",
    )?;
    collector.signal("HUP")?;
    wait_for("the reload", Duration::from_secs(20), || {
        collector.log().contains("ingest and agents").then_some(())
    })
    .with_context(|| collector.log_tail())?;
    publish_batch(
        broker.port(),
        (USER, PASS),
        &batch("a3", "s1", "Z1", 1, &[1]),
    )?;
    wait_for("a3 acked after the reload", Duration::from_secs(20), || {
        (agents(&api)?["a3"]["acked_upto"].as_u64()? == 1).then_some(())
    })
    .with_context(|| collector.log_tail())?;
    Ok(())
}
