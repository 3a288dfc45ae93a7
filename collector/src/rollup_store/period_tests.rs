//! [`RollupStore::period`] against [`RollupStore::buckets`]: the cached closed buckets plus the
//! fresh tail are the buckets a plain read gives, and the facility report built from them is
//! the same, under random writes (late ones included) between reads.

use super::*;
use crate::report::ashrae::{AshraeClass, Envelope};
use crate::report::facility::{build, BucketParts, FacilityReport, Inputs};
use coldaisle_core::{Location, SensorKind};
use coldaisle_store::MemoryStore;
use proptest::prelude::*;
use std::time::Duration;

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
/// "Now" of every case: data lie in the 45 days before it.
const NOW: i64 = 200 * DAY + 7 * HOUR;

/// The clock of these tests' stores (other tests write on the process's clock).
static CLOCK: WriteClock = WriteClock::new();

fn summary(zone: u8, sensor: u8, at: i64, value: f64) -> ReadingSummary {
    ReadingSummary {
        sensor: format!("z{zone}-s{sensor}"),
        kind: if sensor == 3 {
            SensorKind::Humidity
        } else {
            SensorKind::InletTemp
        },
        location: Location {
            site: "dc1".into(),
            zone: format!("Z{zone}"),
            row: Some(format!("R{}", sensor % 2)),
            rack: Some(format!("K{sensor}")),
        },
        from: Timestamp(at),
        to: Timestamp(at + 50_000),
        count: 1,
        min: value,
        max: value,
        sum: value,
        last: value,
    }
}

fn query(zone: Option<&str>, length: i64) -> HistoryQuery {
    HistoryQuery {
        site: "dc1".into(),
        zone: zone.map(str::to_string),
        rack: None,
        sensor: None,
        from: Timestamp(NOW - length),
        to: Timestamp(NOW),
    }
}

fn report(zones: &[String], length: i64, level: Level, buckets: BucketParts<'_>) -> FacilityReport {
    build(&Inputs {
        site: "dc1",
        zones,
        from: Timestamp(NOW - length),
        to: Timestamp(NOW),
        level,
        buckets,
        previous_level: level,
        previous: &[],
        incidents: &[],
        problems: &[],
        envelope: Envelope::of(AshraeClass::A1),
        stale_after: Duration::from_secs(600),
    })
}

/// `zone`'s buckets among `buckets`, in their order.
fn of_zone<'a>(buckets: impl Iterator<Item = &'a Rollup>, zone: &str) -> Vec<&'a Rollup> {
    buckets.filter(|b| b.location.zone == zone).collect()
}

/// Checks `store`'s period reads of every shape against plain reads.
fn period_matches_plain_read(store: &RollupStore) {
    let zones = ["Z0".to_string(), "Z1".to_string()];
    for length in [6 * HOUR, 3 * DAY, 40 * DAY] {
        for zone in [Some("Z0"), None] {
            let q = query(zone, length);
            let (level, from, plain) = store.buckets(&q, Timestamp(NOW)).expect("buckets");
            let period = store.period(&q, Timestamp(NOW)).expect("period");
            assert_eq!((period.level, period.from), (level, from));
            let reported: &[String] = if zone.is_some() { &zones[..1] } else { &zones };
            for z in reported {
                assert_eq!(
                    of_zone(period.iter(), z),
                    of_zone(plain.iter(), z),
                    "{z} over {length} ms"
                );
            }
            if zone.is_some() {
                assert_eq!(
                    period.iter().collect::<Vec<_>>(),
                    plain.iter().collect::<Vec<_>>()
                );
            }
            let parts = BucketParts {
                closed: &period.closed,
                tail: &period.tail,
            };
            assert_eq!(
                report(reported, length, level, parts),
                report(reported, length, level, BucketParts::whole(&plain))
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn cached_and_plain_reads_agree_under_late_writes(
        batches in prop::collection::vec(
            prop::collection::vec((0u8..2, 0u8..4, 0..45 * 24 * 60i64, 10.0..40.0f64), 1..12),
            1..8,
        )
    ) {
        let kv: Arc<dyn KvStore> = Arc::new(MemoryStore::default());
        let store = RollupStore::with_clock(kv.clone(), RetentionPolicy::default(), &CLOCK);
        for batch in batches {
            let summaries: Vec<ReadingSummary> = batch
                .iter()
                .map(|&(zone, sensor, minutes_ago, value)| {
                    summary(zone, sensor, NOW - minutes_ago * MIN, value)
                })
                .collect();
            let refs: Vec<&ReadingSummary> = summaries.iter().collect();
            add_on_clock(kv.as_ref(), &refs, &CLOCK).expect("add");
            // Twice: the second read is served from the cache where the first kept it.
            period_matches_plain_read(&store);
            period_matches_plain_read(&store);
        }
    }
}

#[test]
fn closed_buckets_come_from_the_cache_until_a_late_write() {
    static OWN: WriteClock = WriteClock::new();
    let kv: Arc<dyn KvStore> = Arc::new(MemoryStore::default());
    let store = RollupStore::with_clock(kv.clone(), RetentionPolicy::default(), &OWN);
    let days: Vec<ReadingSummary> = (0..31)
        .map(|d| summary(0, 0, NOW - d * DAY, 20.0 + d as f64))
        .collect();
    add_on_clock(kv.as_ref(), &days.iter().collect::<Vec<_>>(), &OWN).expect("add");
    let q = query(Some("Z0"), 30 * DAY);
    let first = store.period(&q, Timestamp(NOW)).expect("period");
    assert_eq!(first.level, Level::Day);
    // 31 day buckets: all but the newest two closed.
    assert_eq!((first.closed.len(), first.tail.len()), (29, 2));
    assert_eq!(store.cache_hits(), 0);
    let again = store.period(&q, Timestamp(NOW)).expect("period");
    assert_eq!(store.cache_hits(), 1, "served from the cache");
    assert_eq!(again.closed, first.closed);
    // A write to today leaves the closed days cached; the tail sees it.
    let today = summary(0, 0, NOW, 99.0);
    add_on_clock(kv.as_ref(), &[&today], &OWN).expect("add");
    let after = store.period(&q, Timestamp(NOW)).expect("period");
    assert_eq!(store.cache_hits(), 2);
    assert_eq!(after.closed, first.closed);
    assert_eq!(after.tail.last().map(|b| b.max), Some(99.0));
    // A late summary, 20 days back: the closed days are read again and hold it.
    let late = summary(0, 0, NOW - 20 * DAY, 98.0);
    add_on_clock(kv.as_ref(), &[&late], &OWN).expect("add");
    let reread = store.period(&q, Timestamp(NOW)).expect("period");
    assert_eq!(store.cache_hits(), 2, "read again");
    assert!(reread.closed.iter().any(|b| b.max == 98.0));
}
