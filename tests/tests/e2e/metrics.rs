//! `/metrics` of both real daemons (the agent polling snmpd, the collector fed through
//! mosquitto), each body checked by Debian's `promtool check metrics` (any complaint fails),
//! with values that move; and the collector's OpenAPI document requested path by path.

use super::support::{collector_head, free_port, get_json, start_daemon, wait_for};
use anyhow::{bail, Context, Result};
use coldaisle_testkit::peers::{Mosquitto, SnmpValue, Snmpd, SnmpdOptions};
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const TEMP: &str = super::support::INLET_TEMP_OID;

fn agent_config(dir: &Path, mqtt: u16, snmp: u16, metrics: u16) -> String {
    format!(
        r#"agent_id = "metrics-agent"
site = "lab1"
state_dir = "{state}"
summary_interval = "300ms"
[detection]
flap_window = "0s"
[metrics]
listen = "127.0.0.1:{metrics}"
[mqtt]
host = "127.0.0.1"
port = {mqtt}
username = "metrics-agent"
password = "agent-pass"
{devices}[devices.points.threshold]
high = 27.0
min_duration = "300ms"
"#,
        devices = super::support::one_inlet_pdu(snmp),
        state = dir.join("agent-state").display()
    )
}

fn collector_config(dir: &Path, mqtt: u16, http: u16) -> String {
    format!(
        "{}[problems]\nmin_incidents = 1\n",
        collector_head("metrics-collector", dir, mqtt, http, None)
    )
}

/// GET `url` as text, with its status and content type (errors only on transport).
fn get(url: &str) -> Result<(u16, String, String)> {
    let mut response = ureq::get(url)
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .with_context(|| format!("GET {url}"))?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Ok((status, content_type, response.body_mut().read_to_string()?))
}

/// Scrapes `url` and fails unless `promtool check metrics` accepts the body without a word.
fn scrape_checked(url: &str) -> Result<String> {
    let (status, content_type, body) = get(url)?;
    if status != 200 {
        bail!("GET {url}: {status}: {body}");
    }
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{url}: content type {content_type}"
    );
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running promtool (apt-get install prometheus)")?;
    child
        .stdin
        .take()
        .context("promtool stdin")?
        .write_all(body.as_bytes())?;
    let out = child.wait_with_output()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() || !said.trim().is_empty() {
        bail!(
            "promtool check metrics on {url} ({}): {said}\n{body}",
            out.status
        );
    }
    Ok(body)
}

/// The value of the sample written exactly as `series` (name and labels) in `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn both_daemons_serve_metrics_promtool_accepts_and_values_move() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = Mosquitto::start(&[
        ("metrics-agent", "agent-pass"),
        ("collector", "collector-pass"),
    ])?;
    let snmpd = Snmpd::start(SnmpdOptions::default())?;
    snmpd.set_value(TEMP, SnmpValue::Integer(221))?;
    let (http, metrics) = (free_port()?, free_port()?);
    let api = format!("http://127.0.0.1:{http}");
    let agent_metrics = format!("http://127.0.0.1:{metrics}/metrics");
    let c = collector_config(dir.path(), broker.port(), http);
    let mut collector = start_daemon(dir.path(), "coldaisle-collector", "collector", &c)?;
    let a = agent_config(dir.path(), broker.port(), snmpd.port(), metrics);
    let mut agent = start_daemon(dir.path(), "coldaisle-agent", "agent", &a)?;

    // The agent: polls counted per device, connected, promtool-clean; the count grows.
    let polls = "coldaisle_agent_polls_total{device=\"pdu\"}";
    let first = wait_for("agent metrics with polls", Duration::from_secs(20), || {
        let text = scrape_checked(&agent_metrics).ok()?;
        (value(&text, polls)? >= 3.0 && value(&text, "coldaisle_agent_mqtt_up")? == 1.0)
            .then_some(text)
    })
    .with_context(|| agent.log_tail())?;
    let before = value(&first, polls).context("polls")?;
    assert_eq!(
        value(&first, "coldaisle_agent_devices"),
        Some(1.0),
        "{first}"
    );
    assert!(
        first.contains("coldaisle_agent_poll_duration_seconds_bucket{device=\"pdu\",le=\"+Inf\"}"),
        "{first}"
    );
    std::thread::sleep(Duration::from_millis(600));
    let later = scrape_checked(&agent_metrics)?;
    let after = value(&later, polls).context("polls")?;
    assert!(
        after > before,
        "polls_total did not grow: {before} → {after}"
    );

    // The collector: records stored, then an overheat opens an incident and a problem.
    let stored = "coldaisle_collector_records_total{outcome=\"stored\"}";
    wait_for(
        "collector to store records",
        Duration::from_secs(20),
        || (value(&scrape_checked(&format!("{api}/metrics")).ok()?, stored)? > 0.0).then_some(()),
    )
    .with_context(|| collector.log_tail())?;
    snmpd.set_value(TEMP, SnmpValue::Integer(315))?;
    let hot = wait_for(
        "a thermal incident on /metrics",
        Duration::from_secs(20),
        || {
            let text = scrape_checked(&format!("{api}/metrics")).ok()?;
            (value(
                &text,
                "coldaisle_collector_incidents_open{category=\"thermal\"}",
            )? >= 1.0
                && value(
                    &text,
                    "coldaisle_collector_problems_open{category=\"thermal\"}",
                )? >= 1.0)
                .then_some(text)
        },
    )
    .with_context(|| collector.log_tail())?;
    assert!(value(&hot, stored).context("stored")? > 0.0);
    // Once more outside the wait, so a promtool complaint is reported as such.
    scrape_checked(&format!("{api}/metrics"))?;
    assert!(
        value(&hot, "coldaisle_collector_analysis_lag_seconds").is_some(),
        "{hot}"
    );

    // OpenAPI: every documented GET path answers 200 on the real collector.
    let doc = get_json(&format!("{api}/api/v1/openapi.json"))?;
    let incident = get_json(&format!("{api}/api/v1/incidents"))?[0]["id"]
        .as_str()
        .context("an incident id")?
        .to_string();
    let problem = get_json(&format!("{api}/api/v1/problems"))?[0]["id"]
        .as_str()
        .context("a problem id")?
        .to_string();
    let paths = doc["paths"].as_object().context("paths")?;
    let mut checked = 0;
    for (path, item) in paths {
        if item.get("get").is_none() {
            continue;
        }
        let id = if path.starts_with("/api/v1/problems/") {
            &problem
        } else {
            &incident
        };
        let mut url = format!("{api}{}", path.replace("{zone}", "Z1").replace("{id}", id));
        if path == "/api/v1/history" || path == "/api/v1/history/series" {
            url.push_str("?site=lab1&zone=Z1&since=1h");
        }
        let (status, _, body) = get(&url)?;
        assert_eq!(status, 200, "GET {url}: {body}");
        checked += 1;
    }
    assert!(checked >= 14, "only {checked} GET paths documented: {doc}");
    // The agents' view (what the `status` command summarises) has only documented fields.
    let view = &doc["components"]["schemas"]["AgentView"]["properties"];
    let agents = get_json(&format!("{api}/api/v1/agents"))?;
    let ours = &agents["metrics-agent"];
    for (key, value) in ours.as_object().context("our agent")? {
        assert!(
            view.get(key).is_some(),
            "AgentView lacks field {key}: {ours}"
        );
        if key == "status" {
            for (stat, _) in value["stats"].as_object().context("stats")? {
                assert!(
                    view["status"]["properties"]["stats"]["properties"]
                        .get(stat)
                        .is_some(),
                    "AgentView lacks status.stats.{stat}"
                );
            }
        }
    }
    let (status, _, _) = get(&format!("{api}/api/v1/nothing-here"))?;
    assert_eq!(status, 404, "an undocumented path is not served");

    agent.terminate()?;
    collector.check_alive()?;
    collector.terminate()?;
    Ok(())
}
