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
//! - the restart from a durable checkpoint instead: the copy of the analysis the collector takes
//!   under the state's lock, the snapshot encoded to JSON from it (what the collector writes,
//!   off the lock), its size, and its decoding and restoring (what start-up does
//!   before the tail; reading the chunks from the store is not included);
//! - RSS after the in-order ingest (each size runs in its own process), and the events the
//!   analysis still holds then (it forgets what is past its horizon, `analysis/horizon.rs`).
//!
//! Run: `cargo run --release -p coldaisle-benches --bin analysis [-- [--backlog-one-by-one]
//! [--window-hours H] [--never-resolving] [--skip-replays] SIZE ...]` (default sizes 100000
//! 300000 1000000; the one-by-one backlog is slow: minutes at 100 k).
//! - `--window-hours H`: problem window, verification window and density look-back of H hours
//!   instead of the defaults (30 days, 14 days, 28 days), so that the horizon (the longest
//!   rule + 1 day) is shorter than the history and pruning shows at these sizes.
//! - `--never-resolving`: the fleet before issue 13 part 4, where each thermal zone's raises
//!   come back within the quiet period, so its one incident never closes (and keeps every
//!   event); by default each zone rests 2000 s per cycle and its incident resolves.
//! - `--late-hours H`: the late events arrive H hours late instead of 1 (e.g. 120: five days,
//!   beyond the checkpoints' one-day span); the size must cover more than H hours.
//! - `--skip-replays`: no restart rebuild and no backlogs (they read the whole history again,
//!   which is what the checkpoint avoids; at 3 M they take most of the run).
//! - `--hot-hours H`: the analysis keeps event bodies for H hours only (the daemon runs with
//!   24, `analysis::hot`) and reads older ones from a real store: every event is first
//!   written to a sled `CollectorStore` in a temporary directory (records and scope index, in
//!   per-agent batches, before the in-order ingest: the daemon stores a record before it
//!   applies it), and each late event is stored before it is ingested. The store write is
//!   timed apart (stderr) and not in the ingest rate; the RSS includes sled's page cache,
//!   bounded to 64 MB. Implies `--skip-replays`.
//! - `--late-count N`: N late events per set instead of 200 (deep late events cost seconds
//!   before issue 13 part 13).
//! - `--then-late-hours H`: after the measured late events, a second set H hours late (e.g.
//!   1 then 120: one store write for both), reported on stderr only. Each set's stderr line
//!   also gives what the history reads (the store's scope index: scan and decode) took of it.

use anyhow::{Context, Result};
use coldaisle_collector::analysis::history::{HistoryError, ScopeHistory, ScopeSelector};
use coldaisle_collector::analysis::hot::NoHistory;
use coldaisle_collector::analysis::{Analysis, Snapshot, StoredEvent};
use coldaisle_collector::incidents::IncidentRules;
use coldaisle_collector::model::OrderKey;
use coldaisle_collector::problems::ProblemRules;
use coldaisle_collector::store::CollectorStore;
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

/// How the benchmark runs.
#[derive(Debug, Clone, Copy)]
struct Options {
    /// Problem window, verification window and density look-back, hours (`None`: defaults).
    window_hours: Option<u64>,
    /// The old fleet, whose thermal incidents never resolve.
    never_resolving: bool,
    /// Skip the restart rebuild and the backlogs.
    skip_replays: bool,
    /// Measure the backlog one by one too.
    backlog_one_by_one: bool,
    /// How late the measured late events are, hours.
    late_hours: u64,
    /// Hot span in hours, with a sled store as the history (`None`: every event held).
    hot_hours: Option<u64>,
    /// Late events measured per set.
    late_count: usize,
    /// A second set of late events, this many hours late, measured after the first (stderr
    /// only).
    then_late_hours: Option<u64>,
}

impl Options {
    /// The options as arguments for a child run.
    fn args(self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(hours) = self.window_hours {
            args.extend(["--window-hours".to_string(), hours.to_string()]);
        }
        args.extend(["--late-hours".to_string(), self.late_hours.to_string()]);
        if let Some(hours) = self.hot_hours {
            args.extend(["--hot-hours".to_string(), hours.to_string()]);
        }
        args.extend(["--late-count".to_string(), self.late_count.to_string()]);
        if let Some(hours) = self.then_late_hours {
            args.extend(["--then-late-hours".to_string(), hours.to_string()]);
        }
        let flags = [
            (self.never_resolving, "--never-resolving"),
            (self.skip_replays, "--skip-replays"),
            (self.backlog_one_by_one, "--backlog-one-by-one"),
        ];
        args.extend(
            flags
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, f)| f.to_string()),
        );
        args
    }
}

/// Event `n` of the fleet: second `n`, agent `n % 200`. Each agent raises its five sensors one
/// per 200 s round, then clears them; with `never_resolving` the next cycle starts at once
/// (the raises come back 200 s after the last clear, within the 15-minute quiet period, so a
/// zone's incident never closes), otherwise the agent clears them once more over 10 rounds
/// (2000 s; clears of clear sensors change nothing but the timeline) and its zone's incident
/// resolves before the next cycle. Some agents also watch humidity, some report a flaky
/// device, so a zone has several categories; incidents recur into problems.
fn event(n: u64, never_resolving: bool) -> StoredEvent {
    let agent = n % AGENTS;
    let round = n / AGENTS;
    let ts = Timestamp(T0 + n as i64 * 1000);
    let cycle = if never_resolving { 10 } else { 20 };
    let state = if round % cycle < 5 {
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

fn problem_rules(options: Options) -> ProblemRules {
    match options.window_hours {
        Some(hours) => {
            let span = Duration::from_secs(hours * 3600);
            ProblemRules {
                window: span,
                verification_window: span,
                density_lookback: span,
                ..ProblemRules::default()
            }
        }
        None => ProblemRules::default(),
    }
}

fn analysis(options: Options) -> Analysis {
    Analysis::new(IncidentRules::default(), problem_rules(options))
        .with_hot_span(options.hot_hours.map(|h| Duration::from_secs(h * 3600)))
}

/// sled's page cache in the hot runs: the collector's memory goal is 200 MB in all.
const SLED_CACHE: u64 = 64 << 20;

/// A sled store in `dir` holding the fleet's first `size` events, written agent by agent in
/// batches of up to 5,000 records (one flush each); prints the time it took on stderr.
fn stored_fleet(dir: &std::path::Path, size: u64, never_resolving: bool) -> Result<CollectorStore> {
    let kv =
        coldaisle_store::SledStore::open_with_cache(dir, SLED_CACHE).context("opening sled")?;
    let store = CollectorStore::new(std::sync::Arc::new(kv));
    let start = Instant::now();
    for agent in 0..AGENTS {
        let events: Vec<u64> = (agent..size).step_by(AGENTS as usize).collect();
        for chunk in events.chunks(5_000) {
            let records = chunk
                .iter()
                .map(|&n| event(n, never_resolving).into_record("dc1"))
                .collect();
            store
                .store_batch(&format!("agent-{agent:03}"), "dc1", 1, &[], records)
                .map_err(|e| anyhow::anyhow!("storing the fleet: {e}"))?;
        }
    }
    eprintln!(
        "stored {size} events in sled (records and scope index) in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(store)
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

/// Ingests `events` one by one; returns events/s. Prints the rate of every 250,000 events on
/// stderr (to see whether it falls with history).
fn ingest_one_by_one(
    a: &mut Analysis,
    events: impl Iterator<Item = StoredEvent>,
    history: &dyn ScopeHistory,
) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    let mut lap = Instant::now();
    for e in events {
        a.ingest_with_history(e, history);
        n += 1;
        if n % 250_000 == 0 {
            eprintln!(
                "{n} events: {:.0}/s over the last 250,000, {} held",
                250_000.0 / lap.elapsed().as_secs_f64(),
                a.event_count()
            );
            lap = Instant::now();
        }
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
fn by_agent(size: u64, never_resolving: bool) -> impl Iterator<Item = StoredEvent> {
    (0..AGENTS).flat_map(move |agent| {
        (agent..size)
            .step_by(AGENTS as usize)
            .map(move |n| event(n, never_resolving))
    })
}

/// What the analysis holds after `size` events, part by part, as one line on stderr (to see
/// which part grows with history; `Analysis::footprint`).
fn print_footprint(size: u64, a: &Analysis) {
    let Some(now) = a.latest_event_time() else {
        return;
    };
    let f = a.footprint(now);
    let mb = |bytes: usize| bytes as f64 / 1e6;
    eprintln!(
        "footprint at {size}: events {} (evidence {}), seen keys {}, archived summaries {} ({:.1} MB JSON), problems {} with {} incident ids and {} history entries ({:.1} MB JSON), incidents {} with {} timeline entries held and {} stored ({:.1} MB JSON), scopes whole {:.1} MB JSON, notifications {}, actions {}",
        f.events,
        f.evidence,
        f.seen,
        f.archived,
        mb(f.archived_bytes),
        f.problems,
        f.problem_incidents,
        f.problem_history,
        mb(f.problem_bytes),
        f.incidents,
        f.timeline_entries,
        f.stored_timeline_entries,
        mb(f.incident_bytes),
        mb(f.shard_bytes),
        f.notifications,
        f.actions,
    );
}

/// One size, in this process: prints one Markdown table row.
fn run_one(size: u64, options: Options) -> Result<()> {
    let old = options.never_resolving;
    let dir = tempfile::tempdir().context("temporary directory")?;
    let store = match options.hot_hours {
        Some(_) => Some(stored_fleet(dir.path(), size, old)?),
        None => None,
    };
    let history: &dyn ScopeHistory = match &store {
        Some(store) => store,
        None => &NoHistory,
    };
    let mut a = analysis(options);
    let in_order = ingest_one_by_one(&mut a, (0..size).map(|n| event(n, old)), history);
    let (rss, _) = rss_mb();
    let held = a.event_count();
    print_footprint(size, &a);

    let latest = a.latest_event_time().context("no events")?;
    let late = LateSet {
        hours: options.late_hours,
        count: options.late_count,
        first_seq: 10_000_000,
    };
    let costs = measure_late(&mut a, store.as_ref(), history, size, late, old)?;
    if let Some(hours) = options.then_late_hours {
        let then = LateSet {
            hours,
            first_seq: 20_000_000,
            ..late
        };
        measure_late(&mut a, store.as_ref(), history, size, then, old)?;
    }
    let replays = a.rebuilds();
    let scopes_now = a.incidents(latest).len();

    // Checkpoint: the copy taken under the state's lock, the encoding (off the lock), then
    // decode and restore (at start-up).
    let start = Instant::now();
    let copy = a.clone();
    let copy_ms = start.elapsed().as_secs_f64() * 1e3;
    drop(copy);
    let start = Instant::now();
    let written = serde_json::to_vec(&a.snapshot().context("snapshot")?)?;
    let encode = start.elapsed();
    let expected = a.incidents(latest).len();
    drop(a);
    let start = Instant::now();
    let snapshot: Snapshot = serde_json::from_slice(&written)?;
    let restored = Analysis::restore(snapshot, &IncidentRules::default(), &problem_rules(options))
        .context("restore")?
        .with_hot_span(options.hot_hours.map(|h| Duration::from_secs(h * 3600)));
    let restore = start.elapsed();
    anyhow::ensure!(
        restored.incidents(latest).len() == expected,
        "restored differs"
    );
    drop(restored);
    let checkpoint_mb = written.len() as f64 / 1e6;
    drop(written);

    let encode_ms = encode.as_secs_f64() * 1e3;
    let restore_ms = restore.as_secs_f64() * 1e3;
    let (_, peak_before_replays) = rss_mb();
    if options.skip_replays || options.hot_hours.is_some() {
        println!(
            "| {size} | {held} | {in_order:.0} | {:.2} ms | {:.2} ms | not run | not run | not run | not run | {copy_ms:.1} ms | {encode_ms:.1} ms | {checkpoint_mb:.1} MB | {restore_ms:.1} ms | {rss:.0} MB | {peak_before_replays:.0} MB | {replays} | {scopes_now} | - |",
            percentile(&costs, 0.5).as_secs_f64() * 1e3,
            percentile(&costs, 0.99).as_secs_f64() * 1e3,
        );
        return Ok(());
    }

    // Restart: store order, loaded in bulk.
    let start = Instant::now();
    let mut restarted = analysis(options);
    restarted.begin_bulk();
    for e in by_agent(size, old) {
        restarted.ingest(e);
    }
    restarted.end_bulk();
    let restart = start.elapsed();
    drop(restarted);

    // Fleet-wide backlog, agent after agent, in batches of 500 (the ingest path) and, if asked,
    // one by one. Events before the floor are refused as too late: counted in the last column.
    let mut batched = analysis(options);
    let backlog_batched = ingest_batched(&mut batched, by_agent(size, old), BATCH);
    let too_late = batched.too_late();
    drop(batched);
    let backlog_coalesced = ingest_batched(&mut analysis(options), by_agent(size, old), COALESCED);
    let backlog_single = if options.backlog_one_by_one {
        format!(
            "{:.0}",
            ingest_one_by_one(&mut analysis(options), by_agent(size, old), &NoHistory)
        )
    } else {
        "not run".to_string()
    };
    let (_, peak) = rss_mb();
    println!(
        "| {size} | {held} | {in_order:.0} | {:.2} ms | {:.2} ms | {backlog_single} | {backlog_batched:.0} | {backlog_coalesced:.0} | {:.2} s | {copy_ms:.1} ms | {encode_ms:.1} ms | {checkpoint_mb:.1} MB | {restore_ms:.1} ms | {rss:.0} MB | {peak:.0} MB | {replays} | {scopes_now} | {too_late} |",
        percentile(&costs, 0.5).as_secs_f64() * 1e3,
        percentile(&costs, 0.99).as_secs_f64() * 1e3,
        restart.as_secs_f64(),
    );
    Ok(())
}

/// One set of measured late events: `count` raises of sensors never seen, `hours` late.
#[derive(Debug, Clone, Copy)]
struct LateSet {
    /// How late, hours.
    hours: u64,
    /// How many.
    count: usize,
    /// The seq of the first (each set its own seqs).
    first_seq: u64,
}

/// A history that times its reads: what the late events spend reading the store (sled scans
/// and decoding), apart from the rest of their cost (replay in the engines, summaries).
struct TimedHistory<'a> {
    /// The history read.
    inner: &'a dyn ScopeHistory,
    /// Time spent in reads since the last [`TimedHistory::take`].
    spent: std::cell::Cell<Duration>,
    /// Events answered since the last take.
    events: std::cell::Cell<u64>,
    /// Reads since the last take.
    reads: std::cell::Cell<u64>,
    /// While set, each read is printed (stderr): scope, span read, events, time.
    trace: std::cell::Cell<bool>,
}

impl TimedHistory<'_> {
    /// The time, events and reads since the last call, then zero.
    fn take(&self) -> (Duration, u64, u64) {
        (self.spent.take(), self.events.take(), self.reads.take())
    }
}

impl ScopeHistory for TimedHistory<'_> {
    fn events(
        &self,
        scope: &ScopeSelector,
        from: &OrderKey,
        to: &OrderKey,
    ) -> Result<Vec<StoredEvent>, HistoryError> {
        let start = Instant::now();
        let out = self.inner.events(scope, from, to);
        self.spent.set(self.spent.get() + start.elapsed());
        self.reads.set(self.reads.get() + 1);
        if let Ok(events) = &out {
            self.events.set(self.events.get() + events.len() as u64);
            if self.trace.get() {
                eprintln!(
                    "  read {}: {:.1} h of event time ({} .. {}), {} events, {:.2} ms",
                    scope.name(),
                    to.0 .0.saturating_sub(from.0 .0) as f64 / 3.6e6,
                    from.0 .0,
                    to.0 .0,
                    events.len(),
                    start.elapsed().as_secs_f64() * 1e3
                );
            }
        }
        out
    }
}

/// Ingests the late events of `set` one at a time (each stored first when there is a store, as
/// the daemon does; not timed) and returns the sorted cost of each `ingest`; prints the median,
/// p99 and max, and what the history reads took of it (stderr).
fn measure_late(
    a: &mut Analysis,
    store: Option<&CollectorStore>,
    history: &dyn ScopeHistory,
    size: u64,
    set: LateSet,
    old: bool,
) -> Result<Vec<Duration>> {
    // `hours` late: a raise of a sensor never seen, at the latest time minus that (one event
    // per second: event n is at second n).
    let latest = a.latest_event_time().context("no events")?;
    let late_s = set.hours * 3600;
    anyhow::ensure!(
        size > late_s,
        "size {size} covers less than --late-hours {}",
        set.hours
    );
    let timed = TimedHistory {
        inner: history,
        spent: Default::default(),
        events: Default::default(),
        reads: Default::default(),
        trace: Default::default(),
    };
    let mut costs = Vec::with_capacity(set.count);
    let (mut reading, mut read_events, mut reads) = (Vec::new(), 0, 0);
    for k in 0..set.count as u64 {
        let mut late = event(size - late_s + k * 7, old);
        late.seq = set.first_seq + k;
        if let Payload::SensorEvent(e) = &mut late.payload {
            e.sensor = format!("late-{}-{k}", set.hours);
        }
        debug_assert!(late.payload.ts() < latest);
        if let Some(store) = store {
            // Stored (and indexed) before it is applied, as the daemon does; not timed.
            store
                .store_batch(
                    &late.agent,
                    "dc1",
                    1,
                    &[],
                    vec![late.clone().into_record("dc1")],
                )
                .map_err(|e| anyhow::anyhow!("storing a late event: {e}"))?;
        }
        // The reads of the first late event of the set, one by one.
        timed.trace.set(k == 0);
        if k == 0 {
            eprintln!(
                "the reads of the first late event {} h late at {size}:",
                set.hours
            );
        }
        let start = Instant::now();
        a.ingest_with_history(late, &timed);
        costs.push(start.elapsed());
        let (spent, events, n) = timed.take();
        reading.push(spent);
        read_events += events;
        reads += n;
    }
    costs.sort();
    reading.sort();
    anyhow::ensure!(
        a.history_errors() == 0,
        "{} history reads failed",
        a.history_errors()
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let total: Duration = costs.iter().sum();
    let read_total: Duration = reading.iter().sum();
    eprintln!(
        "late events at {size}, {} h late: median {:.2} ms, p99 {:.2} ms, max {:.2} ms; \
         history reads: median {:.2} ms, p99 {:.2} ms, {:.0} % of the total, {} reads and {} events read per late event; {} events held after them",
        set.hours,
        ms(percentile(&costs, 0.5)),
        ms(percentile(&costs, 0.99)),
        ms(costs.last().copied().unwrap_or_default()),
        ms(percentile(&reading, 0.5)),
        ms(percentile(&reading, 0.99)),
        100.0 * read_total.as_secs_f64() / total.as_secs_f64().max(1e-9),
        reads / set.count.max(1) as u64,
        read_events / set.count.max(1) as u64,
        a.event_count()
    );
    Ok(costs)
}

/// The options among `args`, and the sizes (the other arguments).
fn parse(args: &[String]) -> Result<(Options, Vec<u64>)> {
    let mut options = Options {
        window_hours: None,
        never_resolving: false,
        skip_replays: false,
        backlog_one_by_one: false,
        late_hours: 1,
        hot_hours: None,
        late_count: LATE,
        then_late_hours: None,
    };
    let mut sizes = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--window-hours" => {
                let hours = args.next().context("--window-hours needs a number")?;
                options.window_hours = Some(hours.parse().context("--window-hours")?);
            }
            "--late-hours" => {
                let hours = args.next().context("--late-hours needs a number")?;
                options.late_hours = hours.parse().context("--late-hours")?;
            }
            "--hot-hours" => {
                let hours = args.next().context("--hot-hours needs a number")?;
                options.hot_hours = Some(hours.parse().context("--hot-hours")?);
            }
            "--late-count" => {
                let count = args.next().context("--late-count needs a number")?;
                options.late_count = count.parse().context("--late-count")?;
            }
            "--then-late-hours" => {
                let hours = args.next().context("--then-late-hours needs a number")?;
                options.then_late_hours = Some(hours.parse().context("--then-late-hours")?);
            }
            "--never-resolving" => options.never_resolving = true,
            "--skip-replays" => options.skip_replays = true,
            "--backlog-one-by-one" => options.backlog_one_by_one = true,
            size => sizes.push(size.parse().with_context(|| format!("size {size}"))?),
        }
    }
    Ok((options, sizes))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--one") {
        let (options, sizes) = parse(&args[1..])?;
        return run_one(*sizes.first().context("--one needs a size")?, options);
    }
    let (options, mut sizes) = parse(&args)?;
    if sizes.is_empty() {
        sizes = vec![100_000, 300_000, 1_000_000];
    }
    let flags = options.args();
    println!("| events ingested | events held | in-order ingest (events/s) | one late event ({} h late), median | p99 | backlog agent by agent, one by one (events/s) | backlog in batches of {BATCH} (events/s) | backlog in bulks of {COALESCED} (events/s) | restart rebuild (bulk) | copy under the lock | checkpoint encode | checkpoint size | restart from checkpoint (decode + restore) | RSS held | peak RSS | scope replays | incidents held | backlog events too late |", options.late_hours);
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let me = std::env::current_exe().context("finding this binary")?;
    for size in sizes {
        let mut cmd = Command::new(&me);
        cmd.arg("--one").arg(size.to_string());
        cmd.args(&flags);
        let status = cmd.status().context("running one size")?;
        anyhow::ensure!(status.success(), "size {size} failed: {status}");
    }
    Ok(())
}
