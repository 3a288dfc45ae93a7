//! The collector's store on sled and on PostgreSQL, in one run (issue 17): ingest rate through
//! the collector's own `CollectorStore::store_claimed` (batches of 100 records, 10 agents, as
//! the ingest loop stores them, flushed each batch), and the restart cost: open the store and
//! read every record back as `RunningCollector::start` does (`for_each_record`).
//!
//! PostgreSQL is a local PostgreSQL 15 started by the test kit (`./test.sh` installs it), over
//! TCP on loopback, default settings (`synchronous_commit = on`, fsync on).
//!
//! Run: `cargo run -p coldaisle-benches --bin store_backends [-- --sizes 1000,5000,20000]`

use anyhow::{Context, Result};
use coldaisle_collector::store::{Claims, CollectorStore};
use coldaisle_core::wire::{Payload, Record, SCHEMA_VERSION};
use coldaisle_core::{DeviceEvent, EventState, Location, Timestamp};
use coldaisle_store::{KvStore, SledStore};
use coldaisle_store_pg::{PgOptions, PgStore};
use coldaisle_testkit::postgres::Postgres;
use std::sync::Arc;
use std::time::{Duration, Instant};

const AGENTS: u64 = 10;
const BATCH: u64 = 100;

fn record(agent: &str, seq: u64) -> Record {
    Record {
        schema: SCHEMA_VERSION,
        agent: agent.into(),
        site: "s1".into(),
        seq,
        payload: Payload::DeviceEvent(DeviceEvent {
            device: "pdu".into(),
            location: Location {
                site: "s1".into(),
                zone: "Z1".into(),
                row: None,
                rack: None,
            },
            state: if seq % 2 == 0 {
                EventState::Cleared
            } else {
                EventState::Raised
            },
            reason: "timeout".into(),
            ts: Timestamp(1_700_000_000_000 + seq as i64),
        }),
        instance: None,
    }
}

/// Stores `total` records (round-robin over the agents, batches of [`BATCH`]); returns the
/// elapsed time.
fn ingest(kv: Arc<dyn KvStore>, total: u64) -> Result<Duration> {
    let store = CollectorStore::new(kv.clone());
    let per_agent = total / AGENTS;
    let started = Instant::now();
    let mut next = 1;
    while next <= per_agent {
        let last = (next + BATCH - 1).min(per_agent);
        for a in 0..AGENTS {
            let agent = format!("agent-{a:02}");
            let batch: Vec<Record> = (next..=last).map(|s| record(&agent, s)).collect();
            let claims = Claims {
                floor: 1,
                dropped: &[],
                instance: None,
                max_dropped_span: u64::MAX,
                clock: None,
            };
            let stored = store
                .store_claimed(&agent, "s1", &claims, batch)
                .context("storing a batch")?;
            anyhow::ensure!(
                stored.ledger.acked_upto == last,
                "ack did not reach the end"
            );
            kv.flush().context("flush")?;
        }
        next = last + 1;
    }
    Ok(started.elapsed())
}

/// Opens with `open` and reads every record back; returns (elapsed, records read).
fn restart(open: &dyn Fn() -> Result<Arc<dyn KvStore>>) -> Result<(Duration, u64)> {
    let started = Instant::now();
    let store = CollectorStore::new(open()?);
    let mut n = 0;
    store.for_each_record(|_| n += 1).context("reading back")?;
    Ok((started.elapsed(), n))
}

fn main() -> Result<()> {
    let sizes: Vec<u64> = std::env::args()
        .skip_while(|a| a != "--sizes")
        .nth(1)
        .unwrap_or_else(|| "1000,5000,20000".into())
        .split(',')
        .map(|s| s.parse::<u64>().context("--sizes takes numbers"))
        .collect::<Result<_>>()?;
    let pg = Postgres::start()?;
    println!("| backend | records | ingest (records/s) | restart: open + read all |");
    println!("|---|---|---|---|");
    for (i, &size) in sizes.iter().enumerate() {
        let dir = tempfile::tempdir()?;
        let sled_dir = dir.path().join("store");
        let open_sled = || -> Result<Arc<dyn KvStore>> {
            Ok(Arc::new(SledStore::open(&sled_dir).context("sled")?))
        };
        let database = format!("bench{i}");
        pg.create_database(&database)?;
        let options = PgOptions {
            url: pg.url(&database),
            password: Some(Postgres::PASSWORD.into()),
            ca_file: None,
        };
        let open_pg = || -> Result<Arc<dyn KvStore>> {
            Ok(Arc::new(
                PgStore::open(options.clone()).context("postgres")?,
            ))
        };
        for (name, open) in [
            ("sled", &open_sled as &dyn Fn() -> Result<Arc<dyn KvStore>>),
            ("postgres", &open_pg),
        ] {
            let took = ingest(open()?, size)?;
            let (restart_took, read) = restart(open)?;
            anyhow::ensure!(read == size, "{name}: read {read} of {size}");
            println!(
                "| {name} | {size} | {:.0} | {restart_took:.2?} |",
                size as f64 / took.as_secs_f64()
            );
        }
    }
    Ok(())
}
