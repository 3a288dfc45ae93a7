//! Raw-record retention benchmark (issue 13, part 5): on a sled store holding N records (a
//! fleet of 200 agents, one-minute reading summaries spread evenly over the last 90 days of
//! event time, stored in batches of 250 per agent as ingest stores them), measures
//! - the compaction pass that deletes everything older than 45 days (about half), with the
//!   roll-up compaction before it, as the daemon runs it;
//! - the store's ingest rate (batches of 250 new summaries through `CollectorStore`, each
//!   flushed) while that pass runs, and for as long again with nothing else running;
//! - the latency of `GET /api/v1/stats` and `GET /metrics` (served by the collector's router
//!   on loopback) before and after compaction, and that the tree counts they show equal a
//!   recount by scan; and how long that scan of the five trees `/api/v1/stats` used to read
//!   on every request takes (records, agents, roll-ups).
//!
//! Run: `cargo run --release -p coldaisle-benches --bin retention [-- N ...]` (default sizes
//! 100000 300000 1000000).

use anyhow::{ensure, Context, Result};
use coldaisle_collector::retention::{compact, record_cutoff, RetentionPolicy};
use coldaisle_collector::rollup_store::RollupStore;
use coldaisle_collector::store::CollectorStore;
use coldaisle_collector::tree_sizes;
use coldaisle_core::wire::{Payload, Record, SCHEMA_VERSION};
use coldaisle_core::{Location, ReadingSummary, SensorKind, Timestamp};
use coldaisle_store::{KvStore, SledStore};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const AGENTS: u64 = 200;
const BATCH: u64 = 250;
const DAY: i64 = 86_400_000;
const SPAN_DAYS: i64 = 90;
const KEEP: Duration = Duration::from_secs(45 * 86_400);
const REQUESTS: usize = 50;

fn summary(agent: u64, at: i64) -> Payload {
    let v = 20.0 + (agent % 13) as f64 * 0.5;
    Payload::ReadingSummary(ReadingSummary {
        sensor: format!("a{agent:03}-inlet"),
        kind: SensorKind::InletTemp,
        location: Location {
            site: "dc1".into(),
            zone: format!("Z{:02}", agent % 20),
            row: None,
            rack: Some(format!("R{agent:03}")),
        },
        from: Timestamp(at - 60_000),
        to: Timestamp(at),
        count: 6,
        min: v - 1.0,
        max: v + 1.0,
        sum: v * 6.0,
        last: v,
    })
}

fn record(agent: u64, seq: u64, at: i64) -> Record {
    Record {
        schema: SCHEMA_VERSION,
        agent: format!("a{agent:03}"),
        site: "dc1".into(),
        seq,
        payload: summary(agent, at),
        instance: None,
    }
}

/// Stores `n` records over the `SPAN_DAYS` before `now`: per block of `BATCH` time slots, one
/// batch per agent. Returns the next seq of each agent.
fn fill(store: &CollectorStore, n: u64, now: i64) -> Result<Vec<u64>> {
    let slots = n / AGENTS;
    let step = SPAN_DAYS * DAY / slots as i64;
    let start = now - SPAN_DAYS * DAY;
    let mut seqs = vec![1_u64; AGENTS as usize];
    let mut slot = 0;
    while slot < slots {
        let end = (slot + BATCH).min(slots);
        for agent in 0..AGENTS {
            let seq = &mut seqs[agent as usize];
            let records: Vec<Record> = (slot..end)
                .map(|s| {
                    let r = record(agent, *seq, start + s as i64 * step);
                    *seq += 1;
                    r
                })
                .collect();
            store
                .store_batch(&format!("a{agent:03}"), "dc1", 1, &[], records)
                .context("fill")?;
        }
        slot = end;
    }
    Ok(seqs)
}

/// Stores batches of new records (recent times) until `stop`, or `limit` records; returns
/// records stored and the time taken.
fn ingest(
    store: &CollectorStore,
    seqs: &mut [u64],
    now: i64,
    stop: &AtomicBool,
    limit: u64,
) -> Result<(u64, Duration)> {
    let started = Instant::now();
    let mut stored = 0;
    let mut agent = 0;
    while !stop.load(Ordering::Relaxed) && stored < limit {
        let seq = &mut seqs[agent as usize];
        let records: Vec<Record> = (0..BATCH)
            .map(|i| {
                let r = record(agent, *seq, now + i as i64 * 1000);
                *seq += 1;
                r
            })
            .collect();
        let s = store
            .store_batch(&format!("a{agent:03}"), "dc1", 1, &[], records)
            .context("ingest")?;
        stored += s.new.len() as u64;
        agent = (agent + 1) % AGENTS;
    }
    Ok((stored, started.elapsed()))
}

/// One `GET path` on `addr` (HTTP/1.1, connection closed by the server); the time it took.
fn get(addr: std::net::SocketAddr, path: &str) -> Result<Duration> {
    let started = Instant::now();
    let mut stream = std::net::TcpStream::connect(addr)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    ensure!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{path} did not answer 200"
    );
    Ok(started.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// p50 and p99 of `REQUESTS` GETs of `path`.
fn latency(addr: std::net::SocketAddr, path: &str) -> Result<(Duration, Duration)> {
    let mut times = (0..REQUESTS)
        .map(|_| get(addr, path))
        .collect::<Result<Vec<_>>>()?;
    times.sort();
    Ok((percentile(&times, 0.5), percentile(&times, 0.99)))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Serves the collector's API over `kv` on loopback; returns its address.
fn serve(rt: &tokio::runtime::Runtime, kv: Arc<dyn KvStore>) -> Result<std::net::SocketAddr> {
    let config = coldaisle_config::CollectorConfig::from_str(
        "collector_id = \"bench\"\nstate_dir = \"/tmp/unused\"\n[mqtt]\nhost = \"127.0.0.1\"\n",
        std::path::Path::new("bench.toml"),
    )?;
    let mut state = coldaisle_collector::daemon::empty_state(&config);
    state.rollups = Some(RollupStore::new(kv, RetentionPolicy::default()));
    let state = Arc::new(tokio::sync::RwLock::new(state));
    let app = coldaisle_collector::http::router(coldaisle_collector::http::ApiOptions::new(
        state,
        Arc::new(Timestamp::now),
    ));
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    rt.spawn(async move {
        let _ =
            coldaisle_collector::http::serve_api(listener, None, app, std::future::pending()).await;
    });
    Ok(addr)
}

fn run(n: u64, rt: &tokio::runtime::Runtime) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let kv: Arc<dyn KvStore> = Arc::new(SledStore::open(dir.path())?);
    let store = CollectorStore::new(kv.clone());
    let now = Timestamp::now().0;
    let started = Instant::now();
    let mut seqs = fill(&store, n, now)?;
    let fill_time = started.elapsed();
    let addr = serve(rt, kv.clone())?;
    let (stats_before, _) = latency(addr, "/api/v1/stats")?;
    let (metrics_before, _) = latency(addr, "/metrics")?;

    // Compaction with ingest running beside it.
    let stop = Arc::new(AtomicBool::new(false));
    let pass = {
        let (kv, store, stop) = (kv.clone(), store.clone(), stop.clone());
        std::thread::spawn(move || -> Result<(Duration, u64, u64)> {
            let started = Instant::now();
            let now = Timestamp::now();
            let rollups = compact(kv.as_ref(), &RetentionPolicy::default(), now, &|| false)?;
            let cutoff = record_cutoff(now, KEEP, None);
            let deleted = store.delete_records_before(cutoff, &|| false)?;
            let took = started.elapsed();
            stop.store(true, Ordering::Relaxed);
            Ok((took, deleted.records, rollups.removed.iter().sum()))
        })
    };
    let (during, during_time) = ingest(&store, &mut seqs, now, &stop, u64::MAX)?;
    let (took, deleted, rollups_deleted) = pass
        .join()
        .map_err(|_| anyhow::anyhow!("compaction thread panicked"))??;
    // The same ingest alone, for as long.
    let alone_stop = AtomicBool::new(false);
    let alone = {
        let deadline = Instant::now() + during_time;
        let mut stored = 0;
        let started = Instant::now();
        while Instant::now() < deadline {
            let (s, _) = ingest(&store, &mut seqs, now + DAY, &alone_stop, BATCH)?;
            stored += s;
        }
        (stored, started.elapsed())
    };
    let (stats_p50, stats_p99) = latency(addr, "/api/v1/stats")?;
    let (metrics_p50, metrics_p99) = latency(addr, "/metrics")?;
    // What `/api/v1/stats` did before the counts: scan these trees on every request.
    let started = Instant::now();
    for tree in ["records", "agents", "rollup_1m", "rollup_1h", "rollup_1d"] {
        tree_sizes::scan(kv.as_ref(), tree)?;
    }
    let old_scan = started.elapsed();
    // The counts served equal a recount.
    for size in tree_sizes::read(kv.as_ref())? {
        let scanned = tree_sizes::scan(kv.as_ref(), &size.tree)?;
        ensure!(
            (scanned.entries, scanned.bytes) == (size.entries, size.bytes),
            "tree {}: counted {:?}, scanned {:?}",
            size.tree,
            (size.entries, size.bytes),
            scanned
        );
    }
    let rate = |(stored, time): (u64, Duration)| stored as f64 / time.as_secs_f64();
    println!(
        "| {n} | {:.1} s | {deleted} | {rollups_deleted} | {:.1} s | {:.0}/s | {:.0}/s | {} → {} | {} / {} | {} → {} | {} / {} | {} |",
        fill_time.as_secs_f64(),
        took.as_secs_f64(),
        rate((during, during_time)),
        rate(alone),
        ms(stats_before),
        ms(stats_p50),
        ms(stats_p50),
        ms(stats_p99),
        ms(metrics_before),
        ms(metrics_p50),
        ms(metrics_p50),
        ms(metrics_p99),
        ms(old_scan),
    );
    Ok(())
}

fn main() -> Result<()> {
    let sizes: Vec<u64> = match std::env::args().skip(1).map(|a| a.parse()).collect() {
        Ok(v) if !Vec::<u64>::is_empty(&v) => v,
        Ok(_) => vec![100_000, 300_000, 1_000_000],
        Err(e) => anyhow::bail!("sizes must be numbers: {e}"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    println!("| records stored | fill | records deleted | roll-up buckets deleted | compaction | ingest during compaction | ingest alone | stats p50 before → after | stats p50 / p99 after | metrics p50 before → after | metrics p50 / p99 after | trees scan (old stats) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for n in sizes {
        run(n, &rt)?;
    }
    Ok(())
}
