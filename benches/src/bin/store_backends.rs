//! The collector's store on sled and on PostgreSQL, in one run (issue 17), on a fleet like the
//! bounded-state benchmarks': [`AGENTS`] agents × [`SENSORS`] inlet sensors, one 1-minute
//! reading summary per sensor and minute (so the roll-up trees are written too), plus
//! threshold events (each agent raises one sensor every [`EVENT_EVERY`](coldaisle_benches::store_fleet::EVENT_EVERY) minutes and clears it
//! five minutes later). Each agent sends one batch per [`BATCH_MINUTES`] minutes.
//!
//! Per size (records stored) and backend it measures:
//! - **ingest**: records/s through the collector's own `CollectorStore::store_claimed`
//!   (duplicate check, records, ledger, roll-ups) and `flush`, as the ingest loop does before
//!   it acks;
//! - **restart**: open the store and load the state as `RunningCollector::start` does
//!   (`daemon::load_state`): on sled from the durable checkpoint written after ingest (its
//!   tail is empty), and, for reference, sled's full rebuild (every record); on PostgreSQL
//!   in a cluster, where checkpoints are off (`[cluster]`: each partition numbers its own
//!   positions), so a restart is always the full rebuild;
//! - **refresh** (PostgreSQL): a standby's view brought up to date after K new records
//!   (`cluster::follow`: the settled id, the pages of changes, applied to the state), for two
//!   values of K, next to what the full rebuild would cost. The refreshed view is checked
//!   against a full rebuild (same events, directory of sensors and ledgers), so the figure is of a
//!   correct refresh.
//!
//! PostgreSQL is a local PostgreSQL 15 started by the test kit (`./test.sh` installs it), over
//! TCP on loopback, default settings (`synchronous_commit = on`, fsync on).
//!
//! Run: `cargo build --release -p coldaisle-benches --bin store_backends &&
//! target/release/store_backends [--sizes 20000,100000,300000] [--refresh 1000,10000]`

use anyhow::{Context, Result};
use coldaisle_benches::store_fleet::{Shape, SITE};
use coldaisle_collector::cluster::follow::{self, Follower};
use coldaisle_collector::state::CollectorState;
use coldaisle_collector::store::{Claims, CollectorStore};
use coldaisle_config::CollectorConfig;
use coldaisle_core::wire::{Record, SCHEMA_VERSION};
use coldaisle_store::{KvStore, SledStore};
use coldaisle_store_pg::{PgOptions, PgStore, TailStep};
use coldaisle_testkit::postgres::Postgres;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Agents in the fleet.
const AGENTS: u64 = 200;
/// Inlet sensors per agent.
const SENSORS: u64 = 8;
/// Minutes of summaries per batch.
const BATCH_MINUTES: u64 = 10;
/// Zones of the site (agent `a` is in zone `a % ZONES`).
const ZONES: u64 = 20;
/// The fleet's layout.
const SHAPE: Shape = Shape {
    sensors: SENSORS,
    zones: ZONES,
};

/// The fleet's records in the order the agents send them, as batches.
struct Fleet {
    /// The next window of [`BATCH_MINUTES`] minutes.
    window: u64,
    /// Each agent's next seq.
    next_seq: Vec<u64>,
    /// The current window's batches not handed out yet (last first).
    pending: Vec<(String, Vec<Record>)>,
}

impl Fleet {
    fn new() -> Fleet {
        Fleet {
            window: 0,
            next_seq: vec![1; AGENTS as usize],
            pending: Vec::new(),
        }
    }

    /// The next batch, as `(agent id, records)`: agent after agent, window after window.
    fn next_batch(&mut self) -> (String, Vec<Record>) {
        if self.pending.is_empty() {
            self.pending = self.next_window();
            self.pending.reverse();
        }
        self.pending.pop().unwrap_or_default()
    }

    /// The batches of the next window (one per agent), as `(agent id, records)`.
    fn next_window(&mut self) -> Vec<(String, Vec<Record>)> {
        let first = self.window * BATCH_MINUTES;
        self.window += 1;
        (0..AGENTS)
            .map(|a| {
                let agent = format!("agent-{a:03}");
                let seq = &mut self.next_seq[a as usize];
                let records = (first..first + BATCH_MINUTES)
                    .flat_map(|m| SHAPE.minute(a, m))
                    .map(|payload| {
                        let record = Record {
                            schema: SCHEMA_VERSION,
                            agent: agent.clone(),
                            site: SITE.into(),
                            seq: *seq,
                            payload,
                            instance: None,
                        };
                        *seq += 1;
                        record
                    })
                    .collect();
                (agent, records)
            })
            .collect()
    }
}

/// Stores batches until at least `total` records are stored; returns (records, elapsed).
fn ingest(kv: &Arc<dyn KvStore>, fleet: &mut Fleet, total: u64) -> Result<(u64, Duration)> {
    let store = CollectorStore::new(kv.clone());
    let started = Instant::now();
    let mut stored = 0;
    while stored < total {
        let (agent, records) = fleet.next_batch();
        let last = records.last().map_or(0, |r| r.seq);
        stored += records.len() as u64;
        let claims = Claims {
            floor: 1,
            dropped: &[],
            instance: None,
            max_dropped_span: u64::MAX,
            clock: None,
        };
        let out = store
            .store_claimed(&agent, SITE, &claims, records)
            .context("storing a batch")?;
        anyhow::ensure!(out.ledger.acked_upto == last, "ack did not reach the end");
        kv.flush().context("flush")?;
    }
    Ok((stored, started.elapsed()))
}

/// A collector config on `store` (TOML lines), clustered or not.
fn config(dir: &Path, store: &str, clustered: bool) -> Result<CollectorConfig> {
    let cluster = if clustered {
        "[cluster]\nlease = \"bench\"\n"
    } else {
        ""
    };
    let text = format!(
        "collector_id = \"bench\"\nstate_dir = \"{}\"\n[mqtt]\nhost = \"127.0.0.1\"\n\
         [http]\nlisten = \"127.0.0.1:0\"\n[store]\n{store}\n{cluster}",
        dir.join("state").display()
    );
    Ok(CollectorConfig::from_str(
        &text,
        Path::new("bench-collector.toml"),
    )?)
}

/// Opens with `open` and loads the state as start-up does; returns it (it holds the store),
/// the store, the elapsed time and the records replayed.
fn restart(
    config: &CollectorConfig,
    open: &dyn Fn() -> Result<Arc<dyn KvStore>>,
) -> Result<(CollectorState, Arc<dyn KvStore>, Duration, u64)> {
    let started = Instant::now();
    let kv = open()?;
    let (state, loaded) = coldaisle_collector::daemon::load_state(config, &kv)?;
    Ok((state, kv, started.elapsed(), loaded.replayed))
}

/// What a view holds, to compare a refreshed view with a full rebuild.
fn fingerprint(state: &CollectorState) -> (usize, usize, usize, Vec<(String, u64, u64)>) {
    (
        state.analysis.event_count(),
        state.directory.len(),
        state.analysis.incidents(state.latest_event).len(),
        state
            .agents
            .iter()
            .map(|(a, i)| (a.clone(), i.acked_upto, i.records))
            .collect(),
    )
}

/// Brings `state` up to date from `follower`; returns (changes read, elapsed).
fn refresh(follower: &mut Follower, state: &mut CollectorState) -> Result<(u64, Duration)> {
    let started = Instant::now();
    let store = follower.store();
    let settled = store.settled_ingest_id()?;
    let TailStep::Read { mut after, upto } = follower.plan(settled) else {
        anyhow::bail!("expected changes to read");
    };
    let mut read = 0;
    while after < upto {
        let (page, delta) = follow::read_page(&store, after, upto)?;
        read += (delta.records.len() + delta.actions.len() + delta.ledgers.len()) as u64;
        follow::apply(state, delta, None, follower.overlap_until());
        follower.advance(&page);
        after = page.end;
    }
    Ok((read, started.elapsed()))
}

fn list(flag: &str, default: &str) -> Result<Vec<u64>> {
    std::env::args()
        .skip_while(|a| a != flag)
        .nth(1)
        .unwrap_or_else(|| default.into())
        .split(',')
        .map(|s| {
            s.parse::<u64>()
                .with_context(|| format!("{flag} takes numbers"))
        })
        .collect()
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn main() -> Result<()> {
    let sizes = list("--sizes", "20000,100000,300000")?;
    let refreshes = list("--refresh", "1000,10000")?;
    let pg = Postgres::start()?;
    println!(
        "fleet: {AGENTS} agents × {SENSORS} sensors, 1-minute summaries + events, one batch per \
         agent per {BATCH_MINUTES} min"
    );
    println!(
        "| backend | records | ingest (records/s) | restart: open + load state | full rebuild |"
    );
    println!("|---|---|---|---|---|");
    let mut refresh_rows = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let dir = tempfile::tempdir()?;

        // sled: ingest, a checkpoint as the running collector writes it, then the restart.
        let sled_dir = dir.path().join("store");
        let open_sled = || -> Result<Arc<dyn KvStore>> {
            Ok(Arc::new(SledStore::open(&sled_dir).context("sled")?))
        };
        let sled_config = config(dir.path(), "kind = \"sled\"", false)?;
        let (stored, took) = ingest(&open_sled()?, &mut Fleet::new(), size)?;
        let (state, kv, rebuild_took, replayed) = restart(&sled_config, &open_sled)?;
        anyhow::ensure!(
            replayed == stored,
            "sled rebuild read {replayed} of {stored}"
        );
        let position = CollectorStore::new(kv.clone()).position()?;
        let body = coldaisle_collector::checkpoint::encode(&state)?;
        coldaisle_collector::checkpoint::write(kv.as_ref(), position, &body)?;
        kv.flush()?;
        drop((state, kv));
        let (_, _, restart_took, replayed) = restart(&sled_config, &open_sled)?;
        anyhow::ensure!(replayed == 0, "the checkpoint covers every record");
        println!(
            "| sled (checkpoint) | {stored} | {:.0} | {} | {} |",
            stored as f64 / took.as_secs_f64(),
            ms(restart_took),
            ms(rebuild_took)
        );

        // PostgreSQL in a cluster: no checkpoint, the restart is the full rebuild.
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
        let pg_config = config(
            dir.path(),
            &format!(
                "kind = \"postgres\"\nurl = \"{}\"\npassword_file = \"{}\"",
                options.url,
                pg.password_file().display()
            ),
            true,
        )?;
        let mut fleet = Fleet::new();
        let kv = open_pg()?;
        let (stored, took) = ingest(&kv, &mut fleet, size)?;
        let mut follower = Follower::open(options.clone())?;
        let before = follower.store().settled_ingest_id()?;
        let (mut state, _, restart_took, replayed) = restart(&pg_config, &open_pg)?;
        anyhow::ensure!(
            replayed == stored,
            "postgres rebuild read {replayed} of {stored}"
        );
        follower.rebuilt(before, follower.store().settled_ingest_id()?);
        println!(
            "| postgres (cluster) | {stored} | {:.0} | {} | {} |",
            stored as f64 / took.as_secs_f64(),
            ms(restart_took),
            ms(restart_took)
        );

        // A standby's refresh after K more records, checked against a full rebuild.
        let mut history = stored;
        for &k in &refreshes {
            let (added, _) = ingest(&kv, &mut fleet, k)?;
            history += added;
            let (changes, took) = refresh(&mut follower, &mut state)?;
            let (rebuilt, _, rebuild_took, _) = restart(&pg_config, &open_pg)?;
            anyhow::ensure!(
                fingerprint(&state) == fingerprint(&rebuilt),
                "the refreshed view differs from a full rebuild"
            );
            refresh_rows.push((size, history, added, changes, took, rebuild_took));
        }
    }
    println!();
    println!("| history before | records stored then | new records K | changes read | refresh (changes only) | full rebuild instead |");
    println!("|---|---|---|---|---|---|");
    for (size, history, added, changes, took, rebuild) in refresh_rows {
        println!(
            "| {size} | {history} | {added} | {changes} | {} | {} |",
            ms(took),
            ms(rebuild)
        );
    }
    Ok(())
}
