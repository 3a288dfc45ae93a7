//! The collector on PostgreSQL (`[store] kind = "postgres"`): a real collector process, a real
//! agent and mosquitto, a PostgreSQL 15 of the test's own. While the database is down the
//! collector stays up and acks nothing; once it is back, the agent's resends are stored and
//! acked. The records and the incident survive a SIGKILL of the collector, because they are in
//! the database (the state dir holds no store).

use super::support::{
    acked_upto, free_port, start_daemon, wait_for, z1_incident_ids, Daemon, DaemonFiles,
};
use anyhow::{Context, Result};
use coldaisle_testkit::peers::{Mosquitto, SnmpValue, Snmpd, SnmpdOptions};
use coldaisle_testkit::postgres::Postgres;
use std::path::Path;
use std::time::Duration;

const TEMP: &str = super::support::INLET_TEMP_OID;
const AGENT: &str = "agent-pg";

fn collector(dir: &Path, mqtt: u16, http: u16, pg: &Postgres) -> String {
    format!(
        r#"collector_id = "collector-pg"
state_dir = "{state}"
{tables}"#,
        state = dir.join("collector-state").display(),
        tables = super::support::pg_collector_tables(mqtt, ("u", "p"), http, pg, "coldaisle"),
    )
}

#[test]
fn records_and_incidents_survive_a_collector_sigkill_on_postgres() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut pg = Postgres::start()?;
    pg.create_database("coldaisle")?;
    let broker = Mosquitto::start(&[("u", "p")])?;
    let snmpd = Snmpd::start(SnmpdOptions::default())?;
    snmpd.set_value(TEMP, SnmpValue::Integer(310))?;
    let http = free_port()?;
    let collector_files = DaemonFiles::write(
        dir.path(),
        "coldaisle-collector",
        "collector",
        &collector(dir.path(), broker.port(), http, &pg),
    )?;
    let mut collector = collector_files.start()?;
    let agent = super::support::threshold_agent(AGENT, dir.path(), broker.port(), snmpd.port());
    let mut agent = start_daemon(dir.path(), "coldaisle-agent", "agent", &agent)?;
    let api = format!("http://127.0.0.1:{http}");
    let logs = |c: &Daemon, a: &Daemon| format!("{}\n---\n{}", c.log_tail(), a.log_tail());

    wait_for(
        "an incident and acked records",
        Duration::from_secs(30),
        || {
            let ids = z1_incident_ids(&api)?;
            (!ids.is_empty() && acked_upto(&api, AGENT)? >= 5).then_some(())
        },
    )
    .with_context(|| logs(&collector, &agent))?;

    // The database goes away: the collector stays up, stores and acks nothing meanwhile.
    pg.stop();
    std::thread::sleep(Duration::from_secs(2));
    let acked_down = acked_upto(&api, AGENT).context("acked_upto")?;
    std::thread::sleep(Duration::from_secs(3));
    collector.check_alive()?;
    assert_eq!(
        acked_upto(&api, AGENT),
        Some(acked_down),
        "nothing acked without the database"
    );
    assert!(
        collector.log().contains("not acked") || collector.log().contains("refused"),
        "the store errors are logged: {}",
        collector.log_tail()
    );
    assert!(
        !collector.log().contains(Postgres::PASSWORD),
        "the password never reaches the log"
    );
    // It comes back: the agent's resends are stored and acked.
    pg.restart()?;
    wait_for(
        "acks after the database is back",
        Duration::from_secs(30),
        || (acked_upto(&api, AGENT)? > acked_down + 5).then_some(()),
    )
    .with_context(|| logs(&collector, &agent))?;

    // A steady state: the agent stops (its last batches acked), then the collector dies hard.
    agent.terminate()?;
    std::thread::sleep(Duration::from_secs(1));
    let acked_before = acked_upto(&api, AGENT).context("acked_upto")?;
    let incidents_before = z1_incident_ids(&api).context("incidents")?;
    let rows_before: u64 = pg
        .psql(
            "coldaisle",
            &format!("SELECT count(*) FROM records WHERE agent = '{AGENT}'"),
        )?
        .parse()?;
    assert!(
        rows_before >= acked_before,
        "every acked seq is a row: {rows_before} rows, acked {acked_before}"
    );
    collector.kill();
    assert!(
        !dir.path().join("collector-state").join("store").exists(),
        "no sled store in the state dir"
    );
    assert!(
        collector.log().contains("store: postgres"),
        "{}",
        collector.log_tail()
    );

    let collector = collector_files.start()?;
    let after = wait_for(
        "the restarted collector's API",
        Duration::from_secs(30),
        || Some((acked_upto(&api, AGENT)?, z1_incident_ids(&api)?)),
    )
    .with_context(|| collector.log_tail())?;
    assert_eq!(
        after,
        (acked_before, incidents_before),
        "the ledger and the incidents come back from PostgreSQL"
    );
    let rows_after: u64 = pg
        .psql(
            "coldaisle",
            &format!("SELECT count(*) FROM records WHERE agent = '{AGENT}'"),
        )?
        .parse()?;
    assert_eq!(rows_after, rows_before, "no record lost or added");
    Ok(())
}
