//! Analysis benchmark (issue 13): the collector's incident/problem analysis alone, on a synthetic
//! fleet of 200 agents with one incident-relevant event per second across the fleet, event times
//! interleaved across agents. At each size (events held) it measures:
//! - in-order ingest rate (events/s);
//! - the cost of one event that arrives one hour late (median and p99 of 200 such events);
//! - a fleet-wide backlog: the same events delivered agent after agent (each agent's whole
//!   history, then the next), one by one (if asked), in batches of 500 (one MQTT batch per
//!   bulk, as the ingest path applies them when no other batch waits) and in bulks of 20,000
//!   (what the ingest path's coalescing gives while a backlog drains: `COALESCE_RECORDS`);
//! - the restart rebuild: every record read in store order `(agent, seq)` and loaded in bulk;
//! - the restart from a durable checkpoint instead: the analysis snapshot encoded to JSON (what
//!   the collector writes), its size, and its decoding and restoring (what start-up does
//!   before the tail; reading the chunks from the store is not included);
//! - RSS after the analysis holds everything (each size runs in its own process).
//!
//! Run: `cargo run --release -p coldaisle-benches --bin analysis [-- [--backlog-one-by-one]
//! SIZE ...]` (default sizes 100000 300000 1000000; the one-by-one backlog is slow: minutes at
//! 100 k).

use anyhow::{Context, Result};
use coldaisle_collector::analysis::{Analysis, Snapshot, StoredEvent};
use coldaisle_collector::incidents::IncidentRules;
use coldaisle_collector::problems::ProblemRules;
use coldaisle_core::wire::Payload;
use coldaisle_core::{
    Category, DeviceEvent, EventState, Location, SensorEvent, SensorKind, Severity, Timestamp,
};
use std::process::Command;
use std::time::{Duration, Instant};

/// Agents in the fleet.
const AGENTS: u64 = 200;
/// Zones of the site; agent `a` watches zone `a % ZONES`.
const ZONES: u64 = 20;
/// 2025-11-25T12:00:00Z.
const T0: i64 = 1_764_072_000_000;
/// Late events measured per size.
const LATE: usize = 200;
/// Records per MQTT batch in the ingest path (the publisher packs up to 500).
const BATCH: usize = 500;
/// Records per bulk while a backlog drains (the collector's `COALESCE_RECORDS`).
const COALESCED: usize = 20_000;

/// Event `n` of the fleet: second `n`, agent `n % 200`. Each agent raises its five sensors one
/// per 200 s round, then clears them (a zone is raised about 1000 s, quiet about 1000 s, so
/// incidents open and close and recur into problems). Some agents also watch humidity, some
/// report a flaky device, so a zone has several categories.
fn event(n: u64) -> StoredEvent {
    let agent = n % AGENTS;
    let round = n / AGENTS;
    let ts = Timestamp(T0 + n as i64 * 1000);
    let state = if round % 10 < 5 {
        EventState::Raised
    } else {
        EventState::Cleared
    };
    let location = Location {
        site: "dc1".into(),
        zone: format!("Z{:02}", agent % ZONES),
        row: Some(format!("R{}", agent % 4)),
        rack: Some(format!("A{agent:03}")),
    };
    let payload = if agent % 11 == 0 && round % 3 == 0 {
        Payload::DeviceEvent(DeviceEvent {
            device: format!("pdu-{agent}"),
            location,
            state,
            reason: "no answer".into(),
            ts,
        })
    } else {
        let humidity = agent % 7 == 0;
        Payload::SensorEvent(SensorEvent {
            sensor: format!("a{agent}-s{}", round % 5),
            kind: if humidity {
                SensorKind::Humidity
            } else {
                SensorKind::InletTemp
            },
            location,
            category: if humidity {
                Category::Humidity
            } else {
                Category::Thermal
            },
            detector: "threshold".into(),
            state,
            severity: if round % 97 == 0 {
                Severity::Critical
            } else {
                Severity::Warning
            },
            value: 29.0,
            limit: Some(27.0),
            first_ts: ts,
            ts,
            expected_crossing: None,
        })
    };
    StoredEvent {
        agent: format!("agent-{agent:03}"),
        seq: round + 1,
        payload,
    }
}

fn analysis() -> Analysis {
    Analysis::new(IncidentRules::default(), ProblemRules::default())
}

/// Resident and peak resident memory of this process, in MB.
fn rss_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

/// Ingests `events` one by one; returns events/s.
fn ingest_one_by_one(a: &mut Analysis, events: impl Iterator<Item = StoredEvent>) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    for e in events {
        a.ingest(e);
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Ingests `events` in bulks of `batch` records, as the ingest path does; returns events/s.
fn ingest_batched(
    a: &mut Analysis,
    events: impl Iterator<Item = StoredEvent>,
    batch: usize,
) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    a.begin_bulk();
    for e in events {
        a.ingest(e);
        n += 1;
        if n % batch as u64 == 0 {
            a.end_bulk();
            a.begin_bulk();
        }
    }
    a.end_bulk();
    n as f64 / start.elapsed().as_secs_f64()
}

/// The events in store order: agent after agent, each in seq order.
fn by_agent(size: u64) -> impl Iterator<Item = StoredEvent> {
    (0..AGENTS).flat_map(move |agent| (agent..size).step_by(AGENTS as usize).map(event))
}

/// One size, in this process: prints one Markdown table row.
fn run_one(size: u64, backlog_one_by_one: bool) -> Result<()> {
    let mut a = analysis();
    let in_order = ingest_one_by_one(&mut a, (0..size).map(event));
    let (rss, _) = rss_mb();

    // One hour late: a raise of a sensor never seen, at the latest time minus 3600 s.
    let latest = a.latest_event_time().context("no events")?;
    let mut costs = Vec::with_capacity(LATE);
    for k in 0..LATE as u64 {
        let mut late = event(size - 3600 + k * 7);
        late.seq = 10_000_000 + k;
        if let Payload::SensorEvent(e) = &mut late.payload {
            e.sensor = format!("late-{k}");
        }
        debug_assert!(late.payload.ts() < latest);
        let start = Instant::now();
        a.ingest(late);
        costs.push(start.elapsed());
    }
    costs.sort();
    let replays = a.rebuilds();
    let scopes_now = a.incidents(latest).len();

    // Checkpoint: encode (at a checkpoint), then decode and restore (at start-up).
    let start = Instant::now();
    let written = serde_json::to_vec(&a.snapshot().context("snapshot")?)?;
    let encode = start.elapsed();
    let expected = a.incidents(latest).len();
    drop(a);
    let start = Instant::now();
    let snapshot: Snapshot = serde_json::from_slice(&written)?;
    let restored = Analysis::restore(
        snapshot,
        &IncidentRules::default(),
        &ProblemRules::default(),
    )
    .context("restore")?;
    let restore = start.elapsed();
    anyhow::ensure!(
        restored.incidents(latest).len() == expected,
        "restored differs"
    );
    drop(restored);
    let checkpoint_mb = written.len() as f64 / 1e6;
    drop(written);

    // Restart: store order, loaded in bulk.
    let start = Instant::now();
    let mut restarted = analysis();
    restarted.begin_bulk();
    for e in by_agent(size) {
        restarted.ingest(e);
    }
    restarted.end_bulk();
    let restart = start.elapsed();
    drop(restarted);

    // Fleet-wide backlog, agent after agent, in batches of 500 (the ingest path) and, if asked,
    // one by one.
    let backlog_batched = ingest_batched(&mut analysis(), by_agent(size), BATCH);
    let backlog_coalesced = ingest_batched(&mut analysis(), by_agent(size), COALESCED);
    let backlog_single = if backlog_one_by_one {
        format!("{:.0}", ingest_one_by_one(&mut analysis(), by_agent(size)))
    } else {
        "not run".to_string()
    };
    let (_, peak) = rss_mb();
    println!(
        "| {size} | {in_order:.0} | {:.2} ms | {:.2} ms | {backlog_single} | {backlog_batched:.0} | {backlog_coalesced:.0} | {:.2} s | {:.2} s | {checkpoint_mb:.0} MB | {:.2} s | {rss:.0} MB | {peak:.0} MB | {replays} | {scopes_now} |",
        percentile(&costs, 0.5).as_secs_f64() * 1e3,
        percentile(&costs, 0.99).as_secs_f64() * 1e3,
        restart.as_secs_f64(),
        encode.as_secs_f64(),
        restore.as_secs_f64(),
    );
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--one") {
        let size: u64 = args
            .get(1)
            .context("--one needs a size")?
            .parse()
            .context("size")?;
        let single = args.get(2).map(String::as_str) == Some("--backlog-one-by-one");
        return run_one(size, single);
    }
    let one_by_one = args.iter().any(|a| a == "--backlog-one-by-one");
    let args: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let sizes: Vec<u64> = if args.is_empty() {
        vec![100_000, 300_000, 1_000_000]
    } else {
        args.iter()
            .map(|s| s.parse().with_context(|| format!("size {s}")))
            .collect::<Result<_>>()?
    };
    println!("| events held | in-order ingest (events/s) | one late event, median | p99 | backlog agent by agent, one by one (events/s) | backlog in batches of {BATCH} (events/s) | backlog in bulks of {COALESCED} (events/s) | restart rebuild (bulk) | checkpoint encode | checkpoint size | restart from checkpoint (decode + restore) | RSS held | peak RSS | scope replays | incidents |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let me = std::env::current_exe().context("finding this binary")?;
    for size in sizes {
        let mut cmd = Command::new(&me);
        cmd.arg("--one").arg(size.to_string());
        if one_by_one {
            cmd.arg("--backlog-one-by-one");
        }
        let status = cmd.status().context("running one size")?;
        anyhow::ensure!(status.success(), "size {size} failed: {status}");
    }
    Ok(())
}
