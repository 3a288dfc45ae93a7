//! Facility report benchmark (issue 16 item 7): latency of `GET /api/v1/report`'s work for one
//! zone over the last 30 days — reading the buckets of the period and of the previous 30 days
//! (`history_api::read_periods`), building the report (`report::facility::build`) and
//! encoding it as JSON — on a sled store holding the roll-ups of a fleet.
//!
//! Fleet sizes are agents × sensors, one agent per zone, 10 sensors per rack (7 inlet, one
//! humidity, a cooling unit's supply and return). The largest is the bounded-state issue's
//! fleet, 200 agents × 500 sensors. A 30-day report and its previous period are served from
//! the day tree (`rollup::serving_level`), so the store holds 61 days of day buckets for every
//! sensor, each the fold of 24 hourly summaries of 60 one-minute samples (1440 per day); the
//! minute and hour trees, which a 30-day report never reads, are left empty to keep the store
//! to what fits on the build machine. The incidents and problems side is the analysis
//! benchmark's (the report gets none here).
//!
//! Each size is measured three ways, 50 reports each on rotating zones: **cold** (a new
//! `RollupStore` per report, so nothing is cached: both periods read, at once, as
//! `read_periods` does), **warm** (one `RollupStore`, as the collector keeps one, after one
//! report of every zone: the previous period's per-sensor merge and the current period's
//! closed days come from its cache, only the last two days from the store) and
//! **sequential**
//! (cold, the two periods read one after the other, as before `read_periods` used a second
//! thread).
//!
//! Before measuring, each size checks that a warm report's JSON equals a sequential one's
//! (the cache changes no figure).
//!
//! Run: `cargo run --release -p coldaisle-benches --bin report [-- [--json] AGENTSxSENSORS ...]`
//! (default `20x25 40x500 200x500`). By default the store holds one value per zone and day
//! (`rollup::zone_value`, what the collector writes); `--per-sensor` stores one binary value
//! per sensor and day (`rollup::codec`) and `--json` one JSON value per sensor and day, as
//! older collectors wrote them, which the collector still reads. `--sled-cache-mb N` opens
//! the store with sled's page cache bounded to N MiB (as the collector's `[store]
//! sled_cache_mb`; without it, sled's default of 1 GiB) and, after writing, closes and opens
//! it again, so that the reports start from an empty sled cache as after a collector start.

use anyhow::{Context, Result};
use coldaisle_benches::rollup_fixture::{percentile, write_buckets_as, Encoding, DAY, HOUR, NOW};
use coldaisle_collector::history_api::{read_periods, MergedPeriod};
use coldaisle_collector::report::ashrae::{AshraeClass, Envelope};
use coldaisle_collector::report::facility::{build, BucketParts, Inputs};
use coldaisle_collector::retention::RetentionPolicy;
use coldaisle_collector::rollup::Level;
use coldaisle_collector::rollup_store::{HistoryQuery, PeriodBuckets, RollupStore};
use coldaisle_core::{Location, ReadingSummary, SensorKind, Timestamp};
use coldaisle_store::{KvStore, SledStore};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reports measured per fleet size.
const REPORTS: usize = 50;
/// Days of day buckets stored: the period, the previous period and the day in progress.
const DAYS: i64 = 61;

/// Kind and name of sensor `i` of rack `rack` in zone `zone`.
fn sensor(zone: u64, rack: u64, i: u64) -> (SensorKind, String) {
    match i {
        7 => (SensorKind::Humidity, format!("z{zone}-r{rack}-rh")),
        8 => (
            SensorKind::SupplyAirTemp,
            format!("z{zone}-crac{rack}-supply"),
        ),
        9 => (
            SensorKind::ReturnAirTemp,
            format!("z{zone}-crac{rack}-return"),
        ),
        _ => (SensorKind::InletTemp, format!("z{zone}-r{rack}-in{i}")),
    }
}

/// One hour of one-minute summaries of one sensor, folded: 60 samples.
fn summary(zone: u64, index: u64, hour: i64) -> ReadingSummary {
    let (rack, i) = (index / 10, index % 10);
    let (kind, name) = sensor(zone, rack, i);
    let base = match kind {
        SensorKind::Humidity => 45.0,
        SensorKind::SupplyAirTemp => 18.0,
        SensorKind::ReturnAirTemp => 30.0,
        _ => 21.0,
    };
    let v = base + ((hour as u64 + index * 7 + zone) % 17) as f64 * 0.5;
    ReadingSummary {
        sensor: name,
        kind,
        location: Location {
            site: "dc1".into(),
            zone: format!("Z{zone:03}"),
            row: Some(format!("row{}", rack / 10)),
            rack: Some(format!("R{rack:02}")),
        },
        from: Timestamp(hour * HOUR),
        to: Timestamp(hour * HOUR + HOUR - 1000),
        count: 60,
        min: v - 1.5,
        max: v + 1.5,
        sum: v * 60.0,
        last: v,
    }
}

/// Writes DAYS days of day buckets ending at NOW for every sensor of the fleet, one zone-day
/// per batch.
fn fill(kv: &dyn KvStore, agents: u64, sensors: u64, encoding: Encoding) -> Result<()> {
    let first_hour = (NOW - (DAYS - 1) * DAY) / HOUR;
    for zone in 0..agents {
        for day in 0..DAYS {
            let mut summaries = Vec::with_capacity(24 * sensors as usize);
            for h in 0..24 {
                for index in 0..sensors {
                    summaries.push(summary(zone, index, first_hour + day * 24 + h));
                }
            }
            write_buckets_as(kv, Level::Day, &summaries, encoding)?;
        }
    }
    kv.flush()?;
    Ok(())
}

/// What one report took and gave.
struct Measured {
    /// Reading both periods' buckets.
    read: Duration,
    /// Read, build and JSON.
    total: Duration,
    /// Buckets read.
    buckets: usize,
    /// The report as JSON.
    json: Vec<u8>,
    /// Level read.
    level: Level,
}

/// How the reports of one run read the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A new `RollupStore` per report: no cache, both periods at once.
    Cold,
    /// One `RollupStore` for every report: the previous period's merge cached.
    Warm,
    /// Cold, and the two periods read one after the other.
    Sequential,
}

/// The work of `read_periods` with the two reads one after the other (no second thread).
fn read_sequentially(
    store: &RollupStore,
    query: HistoryQuery,
    now: Timestamp,
) -> Result<(PeriodBuckets, MergedPeriod)> {
    let length = query.to.0 - query.from.0;
    let previous = HistoryQuery {
        from: Timestamp(query.from.0 - length),
        to: Timestamp(query.from.0 - 1),
        ..query.clone()
    };
    let (level, from, buckets) = store.buckets(&query, now)?;
    let current = PeriodBuckets {
        level,
        from,
        closed: Arc::default(),
        tail: buckets,
    };
    Ok((current, store.merged(&previous, now)?))
}

/// One report of `zone` over the 30 days before NOW, encoded as JSON.
fn report(store: &RollupStore, zone: &str, mode: Mode) -> Result<Measured> {
    let started = Instant::now();
    let (from, to) = (Timestamp(NOW - 30 * DAY), Timestamp(NOW));
    let query = HistoryQuery {
        site: "dc1".into(),
        zone: Some(zone.to_string()),
        rack: None,
        sensor: None,
        from,
        to,
    };
    let (current, previous) = match mode {
        Mode::Sequential => read_sequentially(store, query, to)?,
        Mode::Cold | Mode::Warm => read_periods(store, query, to)?,
    };
    let read = started.elapsed();
    let zones = [zone.to_string()];
    let report = build(&Inputs {
        site: "dc1",
        zones: &zones,
        from,
        to,
        level: current.level,
        buckets: BucketParts {
            closed: &current.closed,
            tail: &current.tail,
        },
        previous_level: previous.0,
        previous: &previous.2,
        incidents: &[],
        problems: &[],
        envelope: Envelope::of(AshraeClass::A1),
        stale_after: Duration::from_secs(600),
    });
    let json = serde_json::to_vec(&report)?;
    Ok(Measured {
        read,
        total: started.elapsed(),
        buckets: current.closed.len() + current.tail.len(),
        json,
        level: current.level,
    })
}

/// Opens the sled store in `dir`, its page cache bounded to `cache_mb` MiB if given.
fn open(dir: &std::path::Path, cache_mb: Option<u64>) -> Result<Arc<dyn KvStore>> {
    let store = match cache_mb {
        Some(mb) => SledStore::open_with_cache(dir, mb * 1024 * 1024),
        None => SledStore::open(dir),
    };
    Ok(Arc::new(store.context("opening sled")?))
}

fn run(agents: u64, sensors: u64, encoding: Encoding, cache_mb: Option<u64>) -> Result<()> {
    let dir = tempfile::tempdir().context("temp dir")?;
    let mut kv = open(dir.path(), cache_mb)?;
    let started = Instant::now();
    fill(kv.as_ref(), agents, sensors, encoding)?;
    let fill_time = started.elapsed();
    if cache_mb.is_some() {
        // Closed (the only handle dropped) and opened again: the sled cache starts empty.
        kv.flush()?;
        drop(kv);
        kv = open(dir.path(), cache_mb)?;
    }
    let (entries, bytes_stored) = tree_size(kv.as_ref())?;
    let shared = RollupStore::new(kv.clone(), RetentionPolicy::default());
    // The cache changes no figure: a report read twice through it (the second from the
    // cache) equals one read without it.
    let fresh = RollupStore::new(kv.clone(), RetentionPolicy::default());
    let plain = report(&fresh, "Z000", Mode::Sequential)?.json;
    report(&shared, "Z000", Mode::Warm)?;
    anyhow::ensure!(
        report(&shared, "Z000", Mode::Warm)?.json == plain,
        "a report through the cache differs from one read without it"
    );
    for mode in [Mode::Sequential, Mode::Cold, Mode::Warm] {
        if mode == Mode::Warm {
            // One report per zone first, as a collector serving reports all day has done.
            for zone in 0..agents.min(REPORTS as u64 * 7) {
                report(&shared, &format!("Z{zone:03}"), mode)?;
            }
        }
        let mut times = Vec::with_capacity(REPORTS);
        let mut reads = Vec::with_capacity(REPORTS);
        let (mut buckets, mut bytes, mut level) = (0, 0, Level::Minute);
        let hits_before = shared.cache_hits();
        let cpu_before = process_cpu()?;
        for i in 0..REPORTS {
            let zone = format!("Z{:03}", (i as u64 * 7) % agents);
            let fresh;
            let store = if mode == Mode::Warm {
                &shared
            } else {
                fresh = RollupStore::new(kv.clone(), RetentionPolicy::default());
                &fresh
            };
            let m = report(store, &zone, mode)?;
            (buckets, bytes, level) = (m.buckets, m.json.len(), m.level);
            times.push(m.total);
            reads.push(m.read);
        }
        let cpu = (process_cpu()? - cpu_before) / REPORTS as u32;
        // Cache reads served over the run (two per warm report when both periods hit).
        let hits = shared.cache_hits() - hits_before;
        // The period's 31 day buckets per sensor (its end, NOW, starts a bucket).
        anyhow::ensure!(
            buckets as u64 == sensors * 31,
            "buckets read: {buckets}, expected 31 per sensor"
        );
        times.sort();
        reads.sort();
        println!(
            "| {agents} × {sensors} | {encoding:?} | {entries} | {:.0} MB | {:.1} s | {mode:?} | {level:?} | {} kB | {hits} | {:.1} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
            bytes_stored as f64 / 1e6,
            fill_time.as_secs_f64(),
            bytes / 1000,
            cpu.as_secs_f64() * 1e3,
            percentile(&reads, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3,
        );
    }
    Ok(())
}

/// CPU time (user + system, every thread, ended ones included) of this process so far, from
/// `/proc/self/stat` in clock ticks of 10 ms: the machine is shared, so wall time alone says
/// more about the neighbours than about the report.
fn process_cpu() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    // Fields after the command name (which is in parentheses and may hold spaces): state is
    // the first, utime the 12th, stime the 13th.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("/proc/self/stat without a command name")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("/proc/self/stat field {i}"))
    };
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

/// Entries (zone values, or per-sensor buckets) and key+value bytes of the day tree.
fn tree_size(kv: &dyn KvStore) -> Result<(u64, u64)> {
    let sizes = coldaisle_collector::rollup_store::tree_sizes(kv, &[Level::Day.tree()])?;
    Ok(sizes
        .first()
        .map_or((0, 0), |size| (size.entries, size.bytes)))
}

fn parse_size(text: &str) -> Result<(u64, u64)> {
    let (a, s) = text
        .split_once('x')
        .with_context(|| format!("size {text:?}: expected AGENTSxSENSORS, e.g. 200x500"))?;
    Ok((
        a.parse().with_context(|| format!("agents in {text:?}"))?,
        s.parse().with_context(|| format!("sensors in {text:?}"))?,
    ))
}

fn main() -> Result<()> {
    let mut encoding = Encoding::Binary;
    let mut args = Vec::new();
    let mut cache_mb = None;
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        if arg == "--sled-cache-mb" {
            let mb = argv.next().context("--sled-cache-mb takes a number")?;
            cache_mb = Some(mb.parse().context("--sled-cache-mb takes a number")?);
        } else if arg == "--json" {
            encoding = Encoding::LegacyJson;
        } else if arg == "--per-sensor" {
            encoding = Encoding::PerSensor;
        } else {
            args.push(parse_size(&arg)?);
        }
    }
    let sizes = if args.is_empty() {
        vec![(20, 25), (40, 500), (200, 500)]
    } else {
        args
    };
    println!(
        "| agents × sensors | values | entries stored | key+value bytes | write time | reads | level | report JSON | cache hits | CPU per report | read p50 | p50 | p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (agents, sensors) in sizes {
        run(agents, sensors, encoding, cache_mb)?;
    }
    Ok(())
}
