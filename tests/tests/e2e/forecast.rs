//! Predictive warning end to end (issue 15, item 4): an inlet climbing slowly toward its 27 °C
//! limit, polled from snmpd by the agent, gives a `forecast` with its expected crossing that
//! reaches the collector over mosquitto and shows in the zone report, opens no incident and
//! pages nobody (a thermal route at `min_severity = "info"` to a recording webhook hears
//! nothing), and clears when the climb stops.

use crate::pagers::recording_webhook;
use crate::support::{
    collector_head, free_port, get_json, one_inlet_pdu, start_daemon, wait_for, INLET_TEMP_OID,
};
use anyhow::Result;
use coldaisle_core::Timestamp;
use coldaisle_testkit::peers::{Mosquitto, SnmpValue, Snmpd, SnmpdOptions};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

fn agent_config(dir: &Path, mqtt: u16, snmp: u16) -> String {
    format!(
        r#"agent_id = "fc-agent"
site = "lab1"
state_dir = "{state}"
summary_interval = "500ms"
resend_after = "1s"
[mqtt]
host = "127.0.0.1"
port = {mqtt}
username = "u"
password = "p"
[detection]
flap_window = "0s"
[detection.inlet_temp]
forecast_window = "10s"
forecast_horizon = "60s"
{devices}[devices.points.threshold]
high = 27.0
min_duration = "500ms"
"#,
        devices = one_inlet_pdu(snmp),
        state = dir.join("agent-state").display()
    )
}

fn collector_config(dir: &Path, mqtt: u16, http: u16, hook: &str) -> String {
    format!(
        r#"{head}[notify]
interval = "200ms"
[[notify.receivers]]
name = "hook"
kind = "webhook"
url = "{hook}"
secret_file = "{secret}"
[[notify.routes]]
receiver = "hook"
categories = ["thermal"]
min_severity = "info"
"#,
        head = collector_head("fc-collector", dir, mqtt, http, None),
        secret = dir.join("hook.secret").display(),
    )
}

fn forecasts(api: &str) -> Option<Vec<Value>> {
    let report = get_json(&format!("{api}/api/v1/zones/Z1/report")).ok()?;
    Some(report["forecasts"].as_array().cloned().unwrap_or_default())
}

fn thermal_incidents(api: &str) -> Result<usize> {
    let v = get_json(&format!("{api}/api/v1/incidents?zone=Z1"))?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["fingerprint"]["category"] == "thermal")
        .count())
}

#[test]
fn a_slow_climb_is_forecast_in_the_report_without_an_incident_or_a_page() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = Mosquitto::start(&[("u", "p"), ("collector", "collector-pass")])?;
    let snmpd = Snmpd::start(SnmpdOptions::default())?;
    let set = |celsius: f64| {
        snmpd.set_value(
            INLET_TEMP_OID,
            SnmpValue::Integer((celsius * 10.0).round() as i32),
        )
    };
    set(22.0)?;
    let (hook_url, hooks) = recording_webhook()?;
    std::fs::write(dir.path().join("hook.secret"), "s3cret\n")?;
    let http = free_port()?;
    let api = format!("http://127.0.0.1:{http}");
    let collector = collector_config(dir.path(), broker.port(), http, &hook_url);
    let _collector = start_daemon(dir.path(), "coldaisle-collector", "collector", &collector)?;
    let agent = agent_config(dir.path(), broker.port(), snmpd.port());
    let _agent = start_daemon(dir.path(), "coldaisle-agent", "agent", &agent)?;
    wait_for("zone report of Z1", Duration::from_secs(30), || {
        let r = get_json(&format!("{api}/api/v1/zones/Z1/report")).ok()?;
        (!r["racks"].as_array()?.is_empty()).then_some(())
    })?;
    // Steady for a few seconds, then +0.1 °C every 400 ms from 22 °C to 25 °C (0.25 °C/s:
    // 27 °C would be ~20 s after the top of the climb), watching the report while it climbs.
    std::thread::sleep(Duration::from_secs(2));
    let mut seen: Option<Value> = None;
    for step in 1..=30 {
        set(22.0 + 0.1 * f64::from(step))?;
        std::thread::sleep(Duration::from_millis(400));
        if seen.is_none() {
            seen = forecasts(&api).and_then(|f| f.first().cloned());
        }
    }
    let forecast = match seen {
        Some(f) => f,
        None => wait_for("an open forecast", Duration::from_secs(5), || {
            forecasts(&api)?.first().cloned()
        })?,
    };
    assert_eq!(forecast["sensor"], "r1-inlet", "{forecast}");
    assert_eq!(forecast["rack"], "R1", "{forecast}");
    assert_eq!(forecast["limit"], 27.0, "{forecast}");
    let raised = Timestamp(forecast["raised_at"].as_i64().unwrap_or_default());
    let crossing = Timestamp(forecast["expected_crossing"].as_i64().unwrap_or_default());
    let lead = crossing.since(raised);
    assert!(
        lead > Duration::ZERO && lead <= Duration::from_secs(60),
        "crossing within the 60 s horizon after the raise: {forecast}"
    );
    // The climb stopped at 25 °C: the trend turns flat and the forecast clears.
    wait_for("the forecast to clear", Duration::from_secs(30), || {
        forecasts(&api)?.is_empty().then_some(())
    })?;
    // Neither an incident nor a page, even on a route that takes info.
    assert_eq!(thermal_incidents(&api)?, 0, "a forecast opened an incident");
    std::thread::sleep(Duration::from_secs(1));
    let pages = hooks.lock().map(|h| h.len()).unwrap_or(usize::MAX);
    assert_eq!(pages, 0, "a forecast was paged");
    Ok(())
}
