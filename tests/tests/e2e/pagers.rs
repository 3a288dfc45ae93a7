//! Pagers end to end: a collector process fed over mosquitto pages a real Prometheus
//! Alertmanager and a recording webhook; operator actions and silences go through the CLI; a
//! collector restart sends no duplicate trigger.

use crate::support::{
    binary, collector_head, free_port, get_json, publish_batch, wait_for, DaemonFiles,
};
use anyhow::{bail, Context, Result};
use coldaisle_core::wire::{Batch, Payload, Record, SCHEMA_VERSION};
use coldaisle_core::{
    Category, EventState, Location, SensorEvent, SensorKind, Severity, Timestamp,
};
use coldaisle_testkit::peers::{Alertmanager, Mosquitto};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the recording webhook received.
#[derive(Debug, Clone)]
pub(crate) struct Hook {
    pub(crate) signature: String,
    pub(crate) body: Value,
}

/// A tiny HTTP/1.1 server on loopback that records every POST and answers 200.
pub(crate) fn recording_webhook() -> Result<(String, Arc<Mutex<Vec<Hook>>>)> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the webhook")?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(match stream.try_clone() {
                Ok(s) => s,
                Err(_) => continue,
            });
            let (mut length, mut signature) = (0usize, String::new());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("x-coldaisle-signature:") {
                    signature = line["x-coldaisle-signature:".len()..].trim().to_string();
                }
                if line == "\r\n" {
                    break;
                }
                line.clear();
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                if let Ok(body) = serde_json::from_slice(&body) {
                    if let Ok(mut seen) = out.lock() {
                        seen.push(Hook { signature, body });
                    }
                }
            }
            let mut stream = stream;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    Ok((url, seen))
}

fn collector_config(dir: &Path, mqtt_port: u16, http_port: u16, am: &str, hook: &str) -> String {
    format!(
        r#"{head}
[notify]
interval = "200ms"
repeat_interval = "1h"

[[notify.receivers]]
name = "am"
kind = "alertmanager"
url = "{am}"

[[notify.receivers]]
name = "hook"
kind = "webhook"
url = "{hook}"
secret_file = "{secret}"

[[notify.routes]]
receiver = "am"

[[notify.routes]]
receiver = "hook"
problems = true
"#,
        head = collector_head("pagers-collector", dir, mqtt_port, http_port, None),
        secret = dir.join("hook.secret").display(),
    )
}

/// Publishes one event batch as agent `a1` of site `lab1` with mosquitto_pub (QoS 1).
fn publish(port: u16, seq: u64, zone: &str, state: EventState, severity: Severity) -> Result<()> {
    publish_as(port, ("lab1", "a1"), seq, zone, state, severity)
}

/// Publishes one event batch as agent `agent` of site `site` with mosquitto_pub (QoS 1, user
/// `collector`).
pub(crate) fn publish_as(
    port: u16,
    (site, agent): (&str, &str),
    seq: u64,
    zone: &str,
    state: EventState,
    severity: Severity,
) -> Result<()> {
    let ts = Timestamp::now();
    let event = SensorEvent {
        sensor: format!("{zone}-r1-inlet"),
        kind: SensorKind::InletTemp,
        location: Location {
            site: site.into(),
            zone: zone.into(),
            row: None,
            rack: Some("R1".into()),
        },
        category: Category::Thermal,
        detector: "threshold".into(),
        state,
        severity,
        value: if state == EventState::Raised {
            33.0
        } else {
            24.0
        },
        limit: Some(27.0),
        first_ts: ts,
        ts,
        expected_crossing: None,
    };
    let batch = Batch {
        schema: SCHEMA_VERSION,
        agent: agent.into(),
        site: site.into(),
        floor: 1,
        records: vec![Record {
            schema: SCHEMA_VERSION,
            agent: agent.into(),
            site: site.into(),
            seq,
            payload: Payload::SensorEvent(event),
            instance: None,
        }],
        dropped: Vec::new(),
        instance: None,
    };
    publish_batch(port, ("collector", "collector-pass"), &batch)
}

fn cli(api: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(binary("coldaisle-collector")?)
        .args(args)
        .args(["--url", api, "--actor", "e2e-oncall"])
        .output()?;
    if !out.status.success() {
        bail!(
            "coldaisle-collector {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The alerts Alertmanager holds for incident `id`.
fn am_alerts(am: &str, id: &str) -> Vec<Value> {
    get_json(&format!("{am}/api/v2/alerts"))
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["labels"]["id"] == id)
        .collect()
}

fn hook_phases(seen: &Mutex<Vec<Hook>>, key: &str) -> Vec<String> {
    seen.lock()
        .map(|s| {
            s.iter()
                .flat_map(|h| {
                    h.body["notifications"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                })
                .filter(|n| n["subject"]["key"] == key)
                .map(|n| n["phase"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn incidents_page_alertmanager_and_a_webhook_without_duplicates_across_restarts() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = Mosquitto::start(&[("collector", "collector-pass")])?;
    let am = Alertmanager::start()?;
    let (hook_url, hooks) = recording_webhook()?;
    std::fs::write(dir.path().join("hook.secret"), "hook-secret\n")?;
    let http_port = free_port()?;
    let api = format!("http://127.0.0.1:{http_port}");
    let files = DaemonFiles::write(
        dir.path(),
        "coldaisle-collector",
        "collector",
        &collector_config(dir.path(), broker.port(), http_port, &am.url(), &hook_url),
    )?;
    let mut collector = files.start()?;
    wait_for("collector API", Duration::from_secs(20), || {
        get_json(&format!("{api}/api/v1/stats")).ok()
    })?;
    // The collector subscribes once connected: publish until the incident shows up.
    let incident = wait_for("the incident", Duration::from_secs(20), || {
        let _ = publish(
            broker.port(),
            1,
            "Z1",
            EventState::Raised,
            Severity::Critical,
        );
        get_json(&format!("{api}/api/v1/incidents?zone=Z1"))
            .ok()
            .and_then(|v| v.as_array().and_then(|a| a.first().cloned()))
    })?;
    let id = incident["id"].as_str().context("incident id")?.to_string();

    // Alertmanager holds the alert with our labels.
    let alert = wait_for("the alert in Alertmanager", Duration::from_secs(20), || {
        am_alerts(&am.url(), &id).into_iter().next()
    })
    .with_context(|| collector.log_tail())?;
    assert_eq!(alert["labels"]["site"], "lab1");
    assert_eq!(alert["labels"]["zone"], "Z1");
    assert_eq!(alert["labels"]["category"], "thermal");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["status"]["state"], "active");
    // The webhook got the trigger, signed; the SLA problem too (problems route).
    wait_for("webhook trigger", Duration::from_secs(10), || {
        (hook_phases(&hooks, &id) == ["firing"]).then_some(())
    })?;
    let signature = hooks
        .lock()
        .map(|h| h[0].signature.clone())
        .unwrap_or_default();
    assert!(
        signature.starts_with("sha256=") && signature.len() == 7 + 64,
        "{signature}"
    );

    // Acknowledge through the CLI: the webhook hears it, the chronicle shows both.
    let acked = cli(&api, &["incident", "ack", &id])?;
    assert!(acked.contains("\"actor\": \"e2e-oncall\""), "{acked}");
    wait_for("webhook ack", Duration::from_secs(10), || {
        (hook_phases(&hooks, &id) == ["firing", "acknowledged"]).then_some(())
    })?;
    let postmortem = cli(&api, &["incident", "postmortem", &id])?;
    assert!(
        postmortem.contains("| e2e-oncall | operator | acknowledged |"),
        "{postmortem}"
    );
    assert!(
        postmortem.contains("| pager am | notification | trigger notification delivered |"),
        "{postmortem}"
    );

    // Restart: the ledger says everything was sent; nothing is sent again.
    collector.terminate()?;
    let mut collector = files.start()?;
    wait_for(
        "collector API after restart",
        Duration::from_secs(20),
        || get_json(&format!("{api}/api/v1/stats")).ok(),
    )?;
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(hook_phases(&hooks, &id), ["firing", "acknowledged"]);

    // A silence on Z2, then a Z2 incident: not paged.
    let silence = cli(
        &api,
        &[
            "silence",
            "add",
            "--site",
            "lab1",
            "--zone",
            "Z2",
            "--duration",
            "1h",
            "--comment",
            "maintenance",
        ],
    )?;
    assert!(silence.contains("\"zone\": \"Z2\""), "{silence}");
    publish(
        broker.port(),
        2,
        "Z2",
        EventState::Raised,
        Severity::Warning,
    )?;
    let z2 = wait_for("the Z2 incident", Duration::from_secs(20), || {
        get_json(&format!("{api}/api/v1/incidents?zone=Z2"))
            .ok()
            .and_then(|v| v.as_array().and_then(|a| a.first().cloned()))
    })?;
    let z2 = z2["id"].as_str().context("Z2 incident id")?.to_string();

    // Clear Z1: after the quiet period the resolution reaches both pagers.
    publish(
        broker.port(),
        3,
        "Z1",
        EventState::Cleared,
        Severity::Critical,
    )?;
    wait_for("webhook resolve", Duration::from_secs(20), || {
        (hook_phases(&hooks, &id) == ["firing", "acknowledged", "resolved"]).then_some(())
    })
    .with_context(|| collector.log_tail())?;
    wait_for(
        "Alertmanager to resolve the alert",
        Duration::from_secs(20),
        || am_alerts(&am.url(), &id).is_empty().then_some(()),
    )?;
    assert!(hook_phases(&hooks, &z2).is_empty(), "silenced Z2 was paged");
    assert!(
        am_alerts(&am.url(), &z2).is_empty(),
        "silenced Z2 reached Alertmanager"
    );
    collector.check_alive()?;
    collector.terminate()?;
    Ok(())
}
