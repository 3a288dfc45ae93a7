//! Site partitions on one PostgreSQL (`[cluster]` with different leases): two real collector
//! processes each own one site and both are active. Each stores only its own site's batches;
//! both answer the fleet-wide read API from the database.

use super::pagers::publish_as;
use super::support::{free_port, get_json, wait_for, Daemon};
use anyhow::{Context, Result};
use coldaisle_core::{EventState, Severity};
use coldaisle_testkit::peers::Mosquitto;
use coldaisle_testkit::postgres::Postgres;
use std::path::Path;
use std::time::Duration;

fn collector(dir: &Path, site: &str, mqtt: u16, http: u16, pg: &Postgres) -> String {
    format!(
        r#"collector_id = "collector-{site}"
state_dir = "{state}"
sites = ["{site}"]
{tables}[cluster]
lease = "{site}"
check_every = "500ms"
refresh_every = "1s"
"#,
        state = dir.join(format!("{site}-state")).display(),
        tables = super::support::pg_collector_tables(
            mqtt,
            ("collector", "collector-pass"),
            http,
            pg,
            "fleet"
        ),
    )
}

/// The sites of the incidents a collector's API lists.
fn incident_sites(api: &str) -> Option<Vec<String>> {
    let incidents = get_json(&format!("{api}/api/v1/incidents")).ok()?;
    let mut sites: Vec<String> = incidents
        .as_array()?
        .iter()
        .filter_map(|i| i["fingerprint"]["site"].as_str().map(str::to_string))
        .collect();
    sites.sort();
    sites.dedup();
    Some(sites)
}

fn rows(pg: &Postgres, agent: &str) -> Result<u64> {
    Ok(pg
        .psql(
            "fleet",
            &format!("SELECT count(*) FROM records WHERE agent = '{agent}'"),
        )?
        .parse()?)
}

#[test]
fn two_partitions_each_ingest_their_site_and_both_show_the_fleet() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pg = Postgres::start()?;
    pg.create_database("fleet")?;
    let broker = Mosquitto::start(&[("collector", "collector-pass")])?;
    let mut apis = Vec::new();
    let mut daemons = Vec::new();
    for site in ["s1", "s2"] {
        let http = free_port()?;
        let path = dir.path().join(format!("{site}.toml"));
        std::fs::write(&path, collector(dir.path(), site, broker.port(), http, &pg))?;
        daemons.push(Daemon::start(
            "coldaisle-collector",
            &path,
            &dir.path().join(format!("{site}.log")),
        )?);
        apis.push(format!("http://127.0.0.1:{http}"));
    }
    let logs = |d: &[Daemon]| format!("{}\n--- s2\n{}", d[0].log_tail(), d[1].log_tail());
    for api in &apis {
        wait_for("an active partition", Duration::from_secs(30), || {
            let stats = get_json(&format!("{api}/api/v1/stats")).ok()?;
            (stats["cluster"]["role"] == "active").then_some(())
        })
        .with_context(|| logs(&daemons))?;
    }
    // One raised event per site, published until its partition has stored it.
    for (site, agent, zone) in [("s1", "a1", "Z1"), ("s2", "b1", "Z2")] {
        wait_for(
            "the event stored by its partition",
            Duration::from_secs(30),
            || {
                let _ = publish_as(
                    broker.port(),
                    (site, agent),
                    1,
                    zone,
                    EventState::Raised,
                    Severity::Critical,
                );
                (rows(&pg, agent).ok()? == 1).then_some(())
            },
        )
        .with_context(|| logs(&daemons))?;
    }
    // Each collector answers for the whole fleet (its view is rebuilt from the database).
    for api in &apis {
        wait_for(
            "both sites' incidents on every collector",
            Duration::from_secs(20),
            || (incident_sites(api)? == ["s1", "s2"]).then_some(()),
        )
        .with_context(|| logs(&daemons))?;
    }
    // An operator acknowledges s2's incident on s1's collector: it is stored there and reaches
    // s2's collector (the incident's owner) at its next refresh, which reads only the changes.
    let s2_incident = |api: &str| -> Option<serde_json::Value> {
        let incidents = get_json(&format!("{api}/api/v1/incidents")).ok()?;
        incidents
            .as_array()?
            .iter()
            .find(|i| i["fingerprint"]["site"] == "s2")
            .cloned()
    };
    let id = s2_incident(&apis[0])
        .and_then(|i| i["id"].as_str().map(str::to_string))
        .context("s2's incident on s1's collector")?;
    ureq::post(&format!("{}/api/v1/incidents/{id}/ack", apis[0]))
        .header("content-type", "application/json")
        .send(r#"{"actor":"e2e-oncall"}"#)
        .with_context(|| format!("acknowledging {id} on s1's collector"))?;
    wait_for(
        "the acknowledgement on s2's collector",
        Duration::from_secs(20),
        || {
            let incident = s2_incident(&apis[1])?;
            (incident["acknowledged"]["actor"] == "e2e-oncall").then_some(())
        },
    )
    .with_context(|| logs(&daemons))?;
    // A silence added on each collector, the second before it has seen the first: the ids
    // are claimed in the database, so neither overwrites the other, and each collector takes
    // the other's silence at its next refresh (not at a restart).
    for (api, site) in apis.iter().zip(["s1", "s2"]) {
        ureq::post(&format!("{api}/api/v1/silences"))
            .header("content-type", "application/json")
            .send(format!(
                r#"{{"created_by":"e2e-{site}","site":"{site}","duration":"1h"}}"#
            ))
            .with_context(|| format!("adding a silence on {api}"))?;
    }
    for api in &apis {
        wait_for(
            "both silences, ids 1 and 2, on every collector",
            Duration::from_secs(20),
            || {
                let list = get_json(&format!("{api}/api/v1/silences")).ok()?;
                let seen: Vec<(u64, String)> = list
                    .as_array()?
                    .iter()
                    .filter_map(|s| {
                        Some((s["id"].as_u64()?, s["created_by"].as_str()?.to_string()))
                    })
                    .collect();
                (seen == [(1, "e2e-s1".to_string()), (2, "e2e-s2".to_string())]).then_some(())
            },
        )
        .with_context(|| logs(&daemons))?;
    }
    let refresh =
        get_json(&format!("{}/api/v1/stats", apis[1]))?["cluster"]["last_refresh"].clone();
    assert_eq!(
        refresh["full"], false,
        "after the first, refreshes read only the changes: {refresh}"
    );
    // s2's collector stops: s1's collector does not ingest s2's batches.
    daemons[1].terminate()?;
    publish_as(
        broker.port(),
        ("s2", "b1"),
        2,
        "Z2",
        EventState::Cleared,
        Severity::Critical,
    )?;
    publish_as(
        broker.port(),
        ("s1", "a1"),
        2,
        "Z1",
        EventState::Cleared,
        Severity::Critical,
    )?;
    wait_for("s1's second record stored", Duration::from_secs(20), || {
        (rows(&pg, "a1").ok()? == 2).then_some(())
    })
    .with_context(|| logs(&daemons))?;
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        rows(&pg, "b1")?,
        1,
        "a site's batches are stored only by its own partition"
    );
    let stats = get_json(&format!("{}/api/v1/stats", apis[0]))?;
    assert_eq!(stats["cluster"]["sites"], serde_json::json!(["s1"]));
    assert_eq!(stats["cluster"]["holder"], "collector-s1");
    Ok(())
}
