//! Collector failover on one PostgreSQL (`[cluster]`): two real collector processes, a real
//! agent polling snmpd through mosquitto, a PostgreSQL 15 of the test's own and a recording
//! webhook pager. The active collector is killed with SIGKILL; the standby takes the lease,
//! rebuilds from the database, ingests and pages. Every page is delivered once, and every
//! record the agent produced is stored once.

use super::pagers::{recording_webhook, Hook};
use super::support::{
    acked_upto, free_port, get_json, start_daemon, wait_for, z1_incident_ids, Daemon,
};
use anyhow::{Context, Result};
use coldaisle_testkit::peers::{Mosquitto, SnmpValue, Snmpd, SnmpdOptions};
use coldaisle_testkit::postgres::Postgres;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const TEMP: &str = super::support::INLET_TEMP_OID;
const AGENT: &str = "agent-fo";
/// The failover bound of issue 17.
const TAKEOVER_LIMIT: Duration = Duration::from_secs(15);

fn collector(dir: &Path, id: &str, mqtt: u16, http: u16, pg: &Postgres, hook: &str) -> String {
    format!(
        r#"collector_id = "{id}"
state_dir = "{state}"
{tables}[cluster]
lease = "ams"
check_every = "500ms"
refresh_every = "2s"
[notify]
interval = "200ms"
repeat_interval = "1h"
[[notify.receivers]]
name = "hook"
kind = "webhook"
url = "{hook}"
secret_file = "{secret}"
[[notify.routes]]
receiver = "hook"
"#,
        state = dir.join(format!("{id}-state")).display(),
        tables = super::support::pg_collector_tables(mqtt, ("u", "p"), http, pg, "coldaisle"),
        secret = dir.join("hook.secret").display(),
    )
}

fn stats(api: &str) -> Option<Value> {
    get_json(&format!("{api}/api/v1/stats")).ok()
}

fn role(api: &str) -> Option<String> {
    Some(stats(api)?["cluster"]["role"].as_str()?.to_string())
}

/// How many times each (subject, phase) was delivered to the webhook.
fn deliveries(seen: &Mutex<Vec<Hook>>) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    if let Ok(hooks) = seen.lock() {
        for n in hooks.iter().flat_map(|h| {
            h.body["notifications"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        }) {
            let key = n["subject"]["key"].as_str().unwrap_or_default().to_string();
            let phase = n["phase"].as_str().unwrap_or_default().to_string();
            *out.entry((key, phase)).or_insert(0) += 1;
        }
    }
    out
}

fn has_phase(seen: &Mutex<Vec<Hook>>, phase: &str) -> bool {
    deliveries(seen).keys().any(|(_, p)| p == phase)
}

#[test]
fn the_standby_takes_over_after_a_sigkill_without_double_pages_or_lost_records() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pg = Postgres::start()?;
    pg.create_database("coldaisle")?;
    let broker = Mosquitto::start(&[("u", "p")])?;
    let snmpd = Snmpd::start(SnmpdOptions::default())?;
    snmpd.set_value(TEMP, SnmpValue::Integer(310))?;
    let (hook_url, hooks) = recording_webhook()?;
    std::fs::write(dir.path().join("hook.secret"), "hook-secret\n")?;
    let (http_a, http_b) = (free_port()?, free_port()?);
    let (api_a, api_b) = (
        format!("http://127.0.0.1:{http_a}"),
        format!("http://127.0.0.1:{http_b}"),
    );
    let start = |id: &str, http: u16| {
        let toml = collector(dir.path(), id, broker.port(), http, &pg, &hook_url);
        start_daemon(dir.path(), "coldaisle-collector", id, &toml)
    };
    let mut a = start("collector-a", http_a)?;
    wait_for("collector a active", Duration::from_secs(30), || {
        (role(&api_a)? == "active").then_some(())
    })
    .with_context(|| a.log_tail())?;
    let b = start("collector-b", http_b)?;
    let standby = wait_for("collector b standing by", Duration::from_secs(30), || {
        stats(&api_b).filter(|s| s["cluster"]["role"] == "standby")
    })
    .with_context(|| b.log_tail())?;
    assert_eq!(
        standby["cluster"]["holder"], "collector-a",
        "the standby names the holder"
    );

    let agent = super::support::threshold_agent(AGENT, dir.path(), broker.port(), snmpd.port());
    let mut agent = start_daemon(dir.path(), "coldaisle-agent", "agent", &agent)?;
    let logs = |c: &Daemon, b: &Daemon, g: &Daemon| {
        format!(
            "{}\n--- b\n{}\n--- agent\n{}",
            c.log_tail(),
            b.log_tail(),
            g.log_tail()
        )
    };
    wait_for(
        "an incident paged by the active collector",
        Duration::from_secs(40),
        || (has_phase(&hooks, "firing") && acked_upto(&api_a, AGENT)? >= 5).then_some(()),
    )
    .with_context(|| logs(&a, &b, &agent))?;
    let incidents = z1_incident_ids(&api_a).context("incidents on a")?;
    assert!(!incidents.is_empty());
    // The standby serves the read API from the database (its view is rebuilt every 2 s).
    wait_for(
        "the incident on the standby's API",
        Duration::from_secs(20),
        || (z1_incident_ids(&api_b)? == incidents).then_some(()),
    )
    .with_context(|| logs(&a, &b, &agent))?;
    assert_eq!(role(&api_b).as_deref(), Some("standby"));
    assert!(
        !b.log().contains("notification delivered"),
        "a standby pages nothing"
    );
    let acked_before = acked_upto(&api_a, AGENT).context("acked on a")?;

    // kill -9 the active collector: the standby takes the lease and goes on.
    let killed = Instant::now();
    a.kill();
    wait_for("collector b active", TAKEOVER_LIMIT, || {
        (role(&api_b)? == "active").then_some(())
    })
    .with_context(|| logs(&a, &b, &agent))?;
    let takeover = killed.elapsed();
    println!(
        "failover: standby active {} ms after the SIGKILL of the active collector",
        takeover.as_millis()
    );
    let after = stats(&api_b).context("stats on b")?;
    assert_eq!(after["cluster"]["holder"], "collector-b");
    wait_for(
        "records acked by the new active collector",
        Duration::from_secs(30),
        || (acked_upto(&api_b, AGENT)? >= acked_before + 5).then_some(()),
    )
    .with_context(|| logs(&a, &b, &agent))?;

    // The incident clears: the new active collector pages the resolution.
    snmpd.set_value(TEMP, SnmpValue::Integer(220))?;
    wait_for("the resolution paged", Duration::from_secs(40), || {
        has_phase(&hooks, "resolved").then_some(())
    })
    .with_context(|| logs(&a, &b, &agent))?;

    // The agent stops once its records are acked; then every seq it produced is a row, once.
    agent.terminate()?;
    std::thread::sleep(Duration::from_secs(2));
    let acked_end = acked_upto(&api_b, AGENT).context("acked on b")?;
    let row = pg.psql(
        "coldaisle",
        &format!(
            "SELECT count(*) || ' ' || min(seq) || ' ' || max(seq) FROM records \
             WHERE agent = '{AGENT}'"
        ),
    )?;
    let numbers: Vec<u64> = row
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("count/min/max: {row:?}"))?;
    let [count, min, max] = numbers[..] else {
        anyhow::bail!("count/min/max: {row:?}");
    };
    assert_eq!(min, 1, "the first record is stored");
    assert_eq!(count, max, "no seq missing between 1 and {max}");
    assert!(
        max >= acked_end && acked_end > acked_before,
        "acked {acked_before} before the kill, {acked_end} at the end, {max} stored"
    );

    // Every page once: the trigger by a, the resolution by b, nothing twice.
    std::thread::sleep(Duration::from_secs(1));
    let delivered = deliveries(&hooks);
    assert!(
        delivered.values().all(|n| *n == 1),
        "a page delivered twice: {delivered:?}"
    );
    assert!(
        b.log().contains("took over"),
        "the takeover is logged: {}",
        b.log_tail()
    );
    Ok(())
}
