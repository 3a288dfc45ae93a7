//! Running as a service: the systemd units' hardening score (`systemd-analyze security
//! --offline=true`), `--version` and `check-config` exit codes, and the real binaries under
//! signals — SIGHUP applies a changed device list without touching the unchanged device and
//! rejects a bad config while the old one keeps running; SIGTERM drains the outbox and exits 0.
//! The agent's retained status carries its config hash and poll statistics (the new hash right
//! after a reload); the collector applies changed incident/problem rules on SIGHUP and lists an
//! agent killed with SIGKILL as silent, with the broker's `offline` will.
//! Logs go to a file here, so `--log-format auto` writes JSON lines; the test parses them.

use super::support::{binary, free_port, get_json, wait_for, Daemon};
use anyhow::{bail, Context, Result};
use coldaisle_testkit::peers::{Mosquitto, SnmpValue, Snmpd, SnmpdOptions};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const TEMP: &str = "1.3.6.1.4.1.318.1.1.26.10.2.2.1.8";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf()
}

/// `Overall exposure level for x.service: 1.1 OK` → 1.1.
fn exposure(output: &str) -> Option<f64> {
    let line = output
        .lines()
        .find(|l| l.contains("Overall exposure level"))?;
    line.split(':')
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
fn systemd_units_are_hardened_notify_services() -> Result<()> {
    for name in ["coldaisle-agent", "coldaisle-collector"] {
        let unit = workspace().join(format!("deploy/systemd/{name}.service"));
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(&unit)
            .output()
            .context("running systemd-analyze (Debian package `systemd`; ./test.sh installs it)")?;
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        let score = exposure(&text).with_context(|| format!("no exposure line:\n{text}"))?;
        assert!(score <= 1.5, "{name}: exposure {score} > 1.5\n{text}");
        let unit_text = std::fs::read_to_string(&unit)?;
        for line in [
            "Type=notify",
            "WatchdogSec=",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "RestartPreventExitStatus=78",
            "LoadCredential=mqtt.pass:",
            &format!("StateDirectory={name}"),
            &format!("ExecStartPre=/usr/bin/{name} check-config"),
        ] {
            assert!(
                unit_text.lines().any(|l| l.starts_with(line)),
                "{name}: missing `{line}`"
            );
        }
    }
    Ok(())
}

#[test]
fn version_names_the_git_revision_and_check_config_exit_codes() -> Result<()> {
    let dir = tempfile::tempdir()?;
    for name in ["coldaisle-agent", "coldaisle-collector"] {
        let out = Command::new(binary(name)?).arg("--version").output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("(git "), "{text}");
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "agent_id = \"a\"\nno_such_key = 1\n")?;
        let out = Command::new(binary(name)?)
            .args(["check-config", "--config"])
            .arg(&bad)
            .output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{name}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains("bad.toml"),
            "{err}"
        );
    }
    Ok(())
}

fn device(id: &str, index: u32, snmp: u16, interval: &str) -> String {
    format!(
        r#"
[[devices]]
id = "{id}"
protocol = "snmp"
address = "127.0.0.1:{snmp}"
zone = "Z1"
poll_interval = "{interval}"
timeout = "100ms"
[[devices.points]]
sensor = "r{index}-inlet"
kind = "inlet_temp"
rack = "R{index}"
oid = "{TEMP}.{index}"
scale = 0.1
"#
    )
}

fn agent_config(dir: &Path, mqtt: u16, log_level: &str, devices: &str) -> String {
    format!(
        r#"agent_id = "svc-agent"
site = "svc"
state_dir = "{state}"
summary_interval = "300ms"
status_every = "300ms"
log_level = "{log_level}"
[mqtt]
host = "127.0.0.1"
port = {mqtt}
username = "u"
password = "p"
{devices}"#,
        state = dir.join("agent-state").display()
    )
}

/// The JSON log lines whose `message` contains `text`.
fn messages(log: &str, text: &str) -> Result<Vec<Value>> {
    let mut found = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("a log line is not JSON (auto format): {line}"))?;
        if v["message"].as_str().is_some_and(|m| m.contains(text)) {
            found.push(v);
        }
    }
    Ok(found)
}

fn wait_log(daemon: &Daemon, text: &str) -> Result<Vec<Value>> {
    wait_for(&format!("log `{text}`"), Duration::from_secs(15), || {
        messages(&daemon.log(), text).ok().filter(|m| !m.is_empty())
    })
    .with_context(|| daemon.log_tail())
}

fn acked(api: &str) -> Option<u64> {
    get_json(&format!("{api}/api/v1/agents")).ok()?["svc-agent"]["acked_upto"].as_u64()
}

/// The agent's last status as the collector shows it.
fn agent_status(api: &str) -> Option<Value> {
    let status = get_json(&format!("{api}/api/v1/agents")).ok()?["svc-agent"]["status"].clone();
    status.is_object().then_some(status)
}

fn collector_config(dir: &Path, mqtt: u16, http: u16, extra: &str) -> String {
    format!(
        "collector_id = \"svc-collector\"\nstate_dir = \"{}\"\nlog_level = \"info\"\n{extra}\n[mqtt]\nhost = \"127.0.0.1\"\nport = {mqtt}\nusername = \"u\"\npassword = \"p\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n",
        dir.join("collector-state").display(),
    )
}

#[test]
fn sighup_reloads_devices_and_sigterm_drains() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = Mosquitto::start(&[("u", "p")])?;
    let snmpd = Snmpd::start(SnmpdOptions::default())?;
    for index in [1, 2] {
        snmpd.set_value(&format!("{TEMP}.{index}"), SnmpValue::Integer(221))?;
    }
    let http = free_port()?;
    let api = format!("http://127.0.0.1:{http}");
    let collector_toml = dir.path().join("collector.toml");
    std::fs::write(
        &collector_toml,
        format!(
            "collector_id = \"svc-collector\"\nstate_dir = \"{}\"\nlog_level = \"info\"\n[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nusername = \"u\"\npassword = \"p\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n",
            dir.path().join("collector-state").display(),
            broker.port()
        ),
    )?;
    let mut collector = Daemon::start(
        "coldaisle-collector",
        &collector_toml,
        &dir.path().join("collector.log"),
    )?;
    let agent_toml = dir.path().join("agent.toml");
    let pdu1 = device("pdu1", 1, snmpd.port(), "100ms");
    std::fs::write(
        &agent_toml,
        agent_config(dir.path(), broker.port(), "info", &pdu1),
    )?;
    let mut agent = Daemon::start(
        "coldaisle-agent",
        &agent_toml,
        &dir.path().join("agent.log"),
    )?;
    wait_for("first acks", Duration::from_secs(20), || {
        acked(&api).filter(|&a| a >= 3)
    })
    .with_context(|| agent.log_tail() + "\n---\n" + &collector.log_tail())?;
    // The retained status: version, config hash and poll statistics (republished every 300 ms).
    let first = wait_for("a status with polls", Duration::from_secs(10), || {
        agent_status(&api).filter(|s| s["stats"]["polls_ok"].as_u64() > Some(2))
    })?;
    assert_eq!(first["state"], "online");
    assert_eq!(first["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(first["stats"]["devices"], 1);
    assert_eq!(first["stats"]["devices_unreachable"], 0);
    assert_eq!(first["stats"]["dropped_events"], 0);
    let first_hash = first["config_hash"]
        .as_str()
        .context("config_hash")?
        .to_string();

    // A bad config is rejected as a whole; the agent keeps running the old one.
    std::fs::write(
        &agent_toml,
        agent_config(
            dir.path(),
            broker.port(),
            "info",
            &(pdu1.clone() + "bogus = 1\n"),
        ),
    )?;
    agent.signal("HUP")?;
    let rejected = wait_log(&agent, "config reload rejected")?;
    let error = rejected[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("agent.toml") && error.contains("bogus"),
        "{error}"
    );
    let before = acked(&api).context("acked")?;
    wait_for(
        "acks after the rejected reload",
        Duration::from_secs(10),
        || acked(&api).filter(|&a| a > before + 2),
    )?;
    agent.check_alive()?;

    // A second device and a new log level: pdu2 starts, pdu1 keeps polling untouched.
    let both = pdu1.clone() + &device("pdu2", 2, snmpd.port(), "100ms");
    std::fs::write(
        &agent_toml,
        agent_config(dir.path(), broker.port(), "debug", &both),
    )?;
    agent.signal("HUP")?;
    let reloaded = wait_log(&agent, "config reloaded")?;
    assert_eq!(
        reloaded[0]["changes"].as_str(),
        Some("devices: 1 added, 0 removed, 0 restarted, 1 kept"),
        "{}",
        reloaded[0]
    );
    assert_eq!(reloaded[0]["log_level"].as_str(), Some("debug"));
    wait_for(
        "rack R2 in the zone report",
        Duration::from_secs(20),
        || {
            let r = get_json(&format!("{api}/api/v1/zones/Z1/report")).ok()?;
            r["racks"]
                .as_array()?
                .iter()
                .any(|rack| rack["rack"] == "R2" && rack["inlet_last"].is_number())
                .then_some(())
        },
    )
    .with_context(|| agent.log_tail())?;
    let stopped = messages(&agent.log(), "device task stopped")?;
    assert!(stopped.is_empty(), "pdu1 was restarted: {stopped:?}");
    // The status says so at once: the new config hash and two devices.
    let reloaded = wait_for(
        "the status of the new config",
        Duration::from_secs(10),
        || agent_status(&api).filter(|s| s["config_hash"] != first_hash.as_str()),
    )?;
    assert_eq!(reloaded["stats"]["devices"], 2, "{reloaded}");
    // The debug level is in force: per-ack debug lines appear after the reload.
    wait_log(&agent, "ack applied")?;

    // Collector: SIGHUP applies changed incident/problem rules (the analysis is rebuilt from
    // the store); a bad config is rejected and the collector keeps running the old one.
    std::fs::write(
        &collector_toml,
        collector_config(
            dir.path(),
            broker.port(),
            http,
            "[problems]\nmin_incidents = 2",
        ),
    )?;
    collector.signal("HUP")?;
    let reloaded = wait_log(&collector, "config reloaded")?;
    assert_eq!(
        reloaded[0]["changes"].as_str(),
        Some("log level, incidents/problems"),
        "{}",
        reloaded[0]
    );
    wait_log(
        &collector,
        "analysis rebuilt with the new incident and problem rules",
    )?;
    std::fs::write(
        &collector_toml,
        collector_config(
            dir.path(),
            broker.port(),
            http,
            "[problems]\nmin_incidents = 0",
        ),
    )?;
    collector.signal("HUP")?;
    let rejected = wait_log(&collector, "config reload rejected")?;
    let error = rejected[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("min_incidents"), "{error}");
    collector.check_alive()?;
    let before = acked(&api).context("acked")?;
    wait_for(
        "acks after the rejected collector reload",
        Duration::from_secs(10),
        || acked(&api).filter(|&a| a > before),
    )?;

    // SIGTERM: stop polling, send the rest, wait for the acks, exit 0.
    agent.terminate()?;
    let drained = messages(&agent.log(), "outbox drained")?;
    let stopped = messages(&agent.log(), "agent stopped")?;
    if drained.is_empty() || stopped.last().map(|s| s["pending"].as_u64()) != Some(Some(0)) {
        bail!("agent stopped without draining:\n{}", agent.log_tail());
    }
    collector.terminate()?;
    wait_log(&collector, "collector stopped")?;
    Ok(())
}

#[test]
fn killed_agent_is_listed_silent_with_its_offline_will() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = Mosquitto::start(&[("u", "p")])?;
    let http = free_port()?;
    let api = format!("http://127.0.0.1:{http}");
    let collector_toml = dir.path().join("collector.toml");
    std::fs::write(
        &collector_toml,
        collector_config(
            dir.path(),
            broker.port(),
            http,
            "agent_silence = \"1500ms\"",
        ),
    )?;
    let mut collector = Daemon::start(
        "coldaisle-collector",
        &collector_toml,
        &dir.path().join("collector.log"),
    )?;
    let agent_toml = dir.path().join("agent.toml");
    std::fs::write(
        &agent_toml,
        agent_config(dir.path(), broker.port(), "info", ""),
    )?;
    let mut agent = Daemon::start(
        "coldaisle-agent",
        &agent_toml,
        &dir.path().join("agent.log"),
    )?;
    wait_for("the agent online", Duration::from_secs(15), || {
        agent_status(&api).filter(|s| s["state"] == "online")
    })
    .with_context(|| agent.log_tail() + "\n---\n" + &collector.log_tail())?;
    // The status every 300 ms keeps an agent without devices (no batches) from going silent.
    std::thread::sleep(Duration::from_millis(2500));
    let agents = get_json(&format!("{api}/api/v1/agents"))?;
    assert_eq!(agents["svc-agent"]["silent"], false, "{agents}");
    let silent = get_json(&format!("{api}/api/v1/agents?silent=true"))?;
    assert_eq!(silent, serde_json::json!({}));

    agent.kill();
    let listed = wait_for("the agent listed silent", Duration::from_secs(15), || {
        let silent = get_json(&format!("{api}/api/v1/agents?silent=true")).ok()?;
        silent.get("svc-agent").cloned()
    })
    .with_context(|| collector.log_tail())?;
    assert_eq!(
        listed["status"]["state"], "offline",
        "the broker published the will: {listed}"
    );
    assert!(listed["last_activity"].is_number(), "{listed}");
    let logged = wait_log(&collector, "agent silent")?;
    assert_eq!(logged[0]["agent"], "svc-agent");

    // Back: a restarted agent is live again and the collector says so.
    let mut agent = Daemon::start(
        "coldaisle-agent",
        &agent_toml,
        &dir.path().join("agent2.log"),
    )?;
    wait_log(&collector, "agent heard from again")?;
    let live = get_json(&format!("{api}/api/v1/agents?silent=false"))?;
    assert_eq!(live["svc-agent"]["status"]["state"], "online", "{live}");
    agent.terminate()?;
    collector.terminate()?;
    Ok(())
}

#[test]
fn systemd_notify_ready_watchdog_reload_stopping() -> Result<()> {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir()?;
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path)?;
    socket.set_read_timeout(Some(Duration::from_secs(10)))?;
    let broker = Mosquitto::start(&[("u", "p")])?;
    let http = free_port()?;
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "collector_id = \"n\"\nstate_dir = \"{}\"\n[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nusername = \"u\"\npassword = \"p\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n",
            dir.path().join("state").display(),
            broker.port()
        ),
    )?;
    let child = Command::new(binary("coldaisle-collector")?)
        .args(["run", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID")
        .stderr(std::fs::File::create(dir.path().join("collector.log"))?)
        .spawn()?;
    let mut child = KillOnDrop(child);
    let pid = child.0.id().to_string();
    let recv = || -> Result<String> {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
    };
    let first = recv()?;
    assert!(first.starts_with("READY=1"), "{first}");
    // The API answers once READY was sent: the store was open and the state rebuilt.
    get_json(&format!("http://127.0.0.1:{http}/api/v1/stats"))?;
    let mut pings = 0;
    while pings < 3 {
        let m = recv()?;
        assert_eq!(m, "WATCHDOG=1");
        pings += 1;
    }
    Command::new("kill").args(["-HUP", &pid]).status()?;
    let mut seen = Vec::new();
    while !seen.iter().any(|m: &String| m.starts_with("READY=1")) {
        seen.push(recv()?);
    }
    assert!(
        seen.iter().any(|m| m.starts_with("RELOADING=1")),
        "{seen:?}"
    );
    Command::new("kill").args(["-TERM", &pid]).status()?;
    let mut seen = Vec::new();
    while !seen.iter().any(|m: &String| m.starts_with("STOPPING=1")) {
        seen.push(recv()?);
    }
    let status = child.0.wait()?;
    assert!(status.success(), "{status}");
    let log = std::fs::read_to_string(dir.path().join("collector.log"))?;
    assert!(
        messages(&log, "health check")?.is_empty(),
        "every watchdog tick found the collector healthy:\n{log}"
    );
    Ok(())
}

/// A child process killed when the test ends early (a failed assertion).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn shipped_acl_confines_each_agent() -> Result<()> {
    use coldaisle_mqtt::{LinkOptions, MqttLink, Qos};
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir()?;
    let acl = dir.path().join("coldaisle.acl");
    std::fs::copy(workspace().join("deploy/mosquitto/coldaisle.acl"), &acl)?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    std::fs::set_permissions(&acl, std::fs::Permissions::from_mode(0o644))?;
    let broker = Mosquitto::start_with(
        &[("ams1-agent1", "a1"), ("collector-central", "c")],
        &format!("acl_file {}\n", acl.display()),
        false,
    )?;
    let open = |user: &str, password: &str| {
        let config: coldaisle_config::MqttConfig = toml::from_str(&format!(
            "host = \"127.0.0.1\"\nport = {}\nusername = \"{user}\"\n",
            broker.port()
        ))
        .expect("valid mqtt table");
        MqttLink::open(LinkOptions {
            client_id: format!("acl-{user}"),
            config,
            password: Some(password.to_string().into()),
            will: None,
            tls: None,
        })
    };
    let mut collector = open("collector-central", "c");
    connected(&mut collector.events).await?;
    collector
        .client
        .subscribe("coldaisle/v1/#", Qos::AtLeastOnce)
        .await?;
    let mut agent = open("ams1-agent1", "a1");
    connected(&mut agent.events).await?;
    agent
        .client
        .subscribe("coldaisle/v1/#", Qos::AtLeastOnce)
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for topic in [
        "coldaisle/v1/ams1/ams1-agent1/events",
        "coldaisle/v1/ams1/ams1-agent2/events",
        "coldaisle/v1/ams1/ams1-agent1/ack",
    ] {
        agent
            .client
            .publish(topic, Qos::AtLeastOnce, false, b"x".to_vec())
            .await?;
    }
    for topic in [
        "coldaisle/v1/ams1/ams1-agent1/ack",
        "coldaisle/v1/ams1/ams1-agent2/ack",
    ] {
        collector
            .client
            .publish(topic, Qos::AtLeastOnce, false, b"{}".to_vec())
            .await?;
    }
    let (by_collector, by_agent) =
        tokio::join!(drain(&mut collector.events), drain(&mut agent.events));
    assert_eq!(
        by_collector,
        vec!["coldaisle/v1/ams1/ams1-agent1/events".to_string()],
        "the collector sees only the agent's own events (no forged events, no forged acks)"
    );
    assert_eq!(
        by_agent,
        vec!["coldaisle/v1/ams1/ams1-agent1/ack".to_string()],
        "the agent reads only its own acks"
    );
    Ok(())
}

type LinkEvents = tokio::sync::mpsc::Receiver<coldaisle_mqtt::LinkEvent>;

async fn connected(events: &mut LinkEvents) -> Result<()> {
    match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
        Ok(Some(coldaisle_mqtt::LinkEvent::Connected)) => Ok(()),
        other => bail!("not connected: {other:?}"),
    }
}

/// Topics of the messages received within 2 s, sorted.
async fn drain(events: &mut LinkEvents) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Some(e)) = tokio::time::timeout_at(deadline, events.recv()).await {
        if let coldaisle_mqtt::LinkEvent::Message { topic, .. } = e {
            seen.push(topic);
        }
    }
    seen.sort();
    seen
}

/// Records written straight into the store of `config` for the long start-up below.
const STARTUP_RECORDS: u64 = 200_000;

/// Fills the collector's store with `count` device events of one agent (many zones, so the
/// start-up analysis has many scopes), in batches as ingest would store them.
fn fill_store(config: &coldaisle_config::CollectorConfig, count: u64) -> Result<()> {
    use coldaisle_core::wire::{Payload, Record, SCHEMA_VERSION};
    use coldaisle_core::{DeviceEvent, EventState, Location, Timestamp};
    let kv = coldaisle_collector::store_backend::open(config)?;
    let store = coldaisle_collector::store::CollectorStore::new(kv);
    let record = |seq: u64| Record {
        schema: SCHEMA_VERSION,
        agent: "big-agent".into(),
        site: "big".into(),
        seq,
        payload: Payload::DeviceEvent(DeviceEvent {
            device: format!("crac-{}", seq % 7),
            location: Location {
                site: "big".into(),
                zone: format!("Z{}", seq % 97),
                row: None,
                rack: None,
            },
            state: if seq % 2 == 0 {
                EventState::Cleared
            } else {
                EventState::Raised
            },
            reason: String::new(),
            ts: Timestamp(1_764_072_000_000 + seq as i64 * 1_000),
        }),
        instance: None,
    };
    for start in (1..=count).step_by(5_000) {
        let batch = (start..(start + 5_000).min(count + 1))
            .map(record)
            .collect();
        store
            .store_batch("big-agent", "big", 1, &[], batch)
            .context("filling the store")?;
    }
    Ok(())
}

/// Stored records of the collector's store (the collector must not run).
fn stored_records(config: &coldaisle_config::CollectorConfig) -> Result<u64> {
    let kv = coldaisle_collector::store_backend::open(config)?;
    let store = coldaisle_collector::store::CollectorStore::new(kv);
    let mut n = 0;
    store.for_each_record(|_| n += 1)?;
    Ok(n)
}

#[test]
fn sigterm_during_a_long_start_up_stops_within_the_grace_period() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // Nobody listens on the MQTT port: start-up reads the store before connecting anyway.
    let (mqtt, http) = (free_port()?, free_port()?);
    let toml = dir.path().join("collector.toml");
    let text = collector_config(dir.path(), mqtt, http, "");
    std::fs::write(&toml, &text)?;
    let config = coldaisle_config::CollectorConfig::from_str(&text, &toml)?;
    fill_store(&config, STARTUP_RECORDS)?;
    let mut collector = Daemon::start(
        "coldaisle-collector",
        &toml,
        &dir.path().join("collector.log"),
    )?;
    wait_log(&collector, "loading the state from the store")?;
    let sent = std::time::Instant::now();
    // `terminate` sends SIGTERM and waits for a clean exit (status 0).
    collector.terminate()?;
    let took = sent.elapsed();
    let log = collector.log();
    // The signal came mid-analysis: start-up never finished.
    assert!(
        messages(&log, "state rebuilt from the store")?.is_empty(),
        "start-up finished before SIGTERM; make the store larger:\n{log}"
    );
    assert!(
        !messages(&log, "stopped during start-up")?.is_empty(),
        "{log}"
    );
    // The default drain grace is 5 s.
    assert!(
        took < Duration::from_secs(5),
        "exit took {took:?}, beyond the 5 s grace"
    );
    assert_eq!(stored_records(&config)?, STARTUP_RECORDS);
    Ok(())
}
