//! History benchmark (issue 13 item 5, zone report over 30 days): the roll-up side of the zone
//! report — `RollupStore::history` for one zone over the last 30 days plus
//! `report::with_history` — on a sled store holding D days of roll-ups for a synthetic fleet of
//! 20 zones × 25 sensors (500 sensors), one summary per sensor per hour. Hour and day trees hold
//! all D days, the minute tree the last 7 days (what retention keeps). Reports p50/p99 of 200
//! reports on random zones, the entries per tree and the time to write them.
//!
//! Run: `cargo run --release -p coldaisle-benches --bin history [-- DAYS ...]` (default sizes
//! 30 90 365 days).

use anyhow::{Context, Result};
use coldaisle_benches::rollup_fixture::{percentile, write_buckets, DAY, HOUR, NOW};
use coldaisle_collector::report::{with_history, ZoneReport};
use coldaisle_collector::retention::RetentionPolicy;
use coldaisle_collector::rollup::Level;
use coldaisle_collector::rollup_store::{tree_sizes, HistoryQuery, RollupStore};
use coldaisle_core::{Location, ReadingSummary, SensorKind, Timestamp};
use coldaisle_store::{KvStore, SledStore};
use std::sync::Arc;
use std::time::Instant;

const ZONES: u64 = 20;
const SENSORS_PER_ZONE: u64 = 25;
const REPORTS: usize = 200;

fn summary(zone: u64, sensor: u64, hour: i64) -> ReadingSummary {
    let v = 20.0 + ((hour as u64 + sensor * 7 + zone) % 13) as f64 * 0.5;
    ReadingSummary {
        sensor: format!("z{zone:02}-s{sensor:02}"),
        kind: SensorKind::InletTemp,
        location: Location {
            site: "dc1".into(),
            zone: format!("Z{zone:02}"),
            row: None,
            rack: Some(format!("R{:02}", sensor / 5)),
        },
        from: Timestamp(hour * HOUR),
        to: Timestamp(hour * HOUR + HOUR - 1000),
        count: 60,
        min: v - 1.0,
        max: v + 1.0,
        sum: v * 60.0,
        last: v,
    }
}

/// Writes `days` days of roll-ups ending at NOW, one day per batch (buckets of different days
/// never collide, so no read-merge is needed).
fn fill(kv: &dyn KvStore, days: i64) -> Result<()> {
    let first_hour = (NOW - days * DAY) / HOUR;
    let minute_from = NOW - 7 * DAY;
    for day in 0..days {
        let mut summaries = Vec::new();
        for h in 0..24 {
            let hour = first_hour + day * 24 + h;
            for zone in 0..ZONES {
                for sensor in 0..SENSORS_PER_ZONE {
                    summaries.push(summary(zone, sensor, hour));
                }
            }
        }
        for level in Level::ALL {
            if level == Level::Minute && (first_hour + day * 24) * HOUR < minute_from {
                continue;
            }
            write_buckets(kv, level, &summaries)?;
        }
    }
    kv.flush()?;
    Ok(())
}

fn empty_report(zone: &str) -> ZoneReport {
    ZoneReport {
        site: "dc1".into(),
        zone: zone.into(),
        generated_at: Timestamp(NOW),
        window_secs: 30 * 86_400,
        racks: Vec::new(),
        open_incidents: Vec::new(),
        recent_incidents: Vec::new(),
        problems: Vec::new(),
        rollup_level: None,
        forecasts: Vec::new(),
    }
}

fn run(days: i64) -> Result<()> {
    let dir = tempfile::tempdir().context("temp dir")?;
    let kv: Arc<dyn KvStore> = Arc::new(SledStore::open(dir.path()).context("opening sled")?);
    let started = Instant::now();
    fill(kv.as_ref(), days)?;
    let fill_time = started.elapsed();
    let sizes = tree_sizes(kv.as_ref(), &Level::ALL.map(Level::tree))?;
    let store = RollupStore::new(kv, RetentionPolicy::default());
    let mut times = Vec::with_capacity(REPORTS);
    let mut level = None;
    let mut racks = 0;
    let mut buckets = 0;
    for i in 0..REPORTS {
        let zone = format!("Z{:02}", (i as u64 * 7) % ZONES);
        let t = Instant::now();
        let query = HistoryQuery {
            site: "dc1".into(),
            zone: Some(zone.clone()),
            rack: None,
            sensor: None,
            from: Timestamp(NOW - 30 * DAY),
            to: Timestamp(NOW),
        };
        let history = store.history(&query, Timestamp(NOW))?;
        let report = with_history(empty_report(&zone), &history);
        times.push(t.elapsed());
        level = report.rollup_level;
        racks = report.racks.len();
        buckets = history.buckets;
        let samples: u64 = history.sensors.iter().map(|s| s.count).sum();
        anyhow::ensure!(
            samples == SENSORS_PER_ZONE * 30 * 24 * 60,
            "samples read: {samples}"
        );
    }
    times.sort();
    let entries: Vec<String> = sizes
        .iter()
        .map(|s| format!("{}={}", s.tree, s.entries))
        .collect();
    let mb: u64 = sizes.iter().map(|s| s.bytes).sum::<u64>() / 1_000_000;
    println!(
        "| {days} d | {} | {mb} MB | {:.1} s | {:?} | {buckets} | {racks} | {:.2} ms | {:.2} ms |",
        entries.join(", "),
        fill_time.as_secs_f64(),
        level,
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
    );
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<i64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().with_context(|| format!("days: {a}")))
        .collect::<Result<_>>()?;
    let sizes = if args.is_empty() {
        vec![30, 90, 365]
    } else {
        args
    };
    println!(
        "| history | entries per tree | key+value bytes | write time | level | buckets read | racks | p50 | p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for days in sizes {
        run(days)?;
    }
    Ok(())
}
