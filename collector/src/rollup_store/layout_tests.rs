//! Zone values ([`crate::rollup::zone_value`]) against the per-sensor layout they replace:
//! under random batches (late writes included), a store written with zone values, one written
//! per sensor as older collectors did, and one written per sensor first and with zone values
//! after (an upgraded collector) give the same buckets, histories and facility reports.

use super::*;
use crate::report::ashrae::{AshraeClass, Envelope};
use crate::report::facility::{build, BucketParts, FacilityReport, Inputs};
use crate::rollup::codec;
use coldaisle_core::{Location, SensorKind};
use coldaisle_store::MemoryStore;
use proptest::prelude::*;
use std::time::Duration;

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
/// "Now" of every case: data lie in the 45 days before it.
const NOW: i64 = 300 * DAY + 5 * HOUR;

/// The clock of these tests' stores (other tests write on the process's clock).
static CLOCK: WriteClock = WriteClock::new();

fn summary(zone: u8, sensor: u8, at: i64, value: i32) -> ReadingSummary {
    // Whole values: sums are exact whatever order buckets merge in.
    let value = f64::from(value);
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
            row: (sensor != 4).then(|| format!("R{}", sensor % 2)),
            // Sensor 4 has no rack, 0 and 1 share one.
            rack: (sensor != 4).then(|| format!("K{}", sensor.max(1))),
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

/// What collectors before zone values did: one read, merge and write per sensor and bucket.
fn add_per_sensor(kv: &dyn KvStore, summaries: &[ReadingSummary]) {
    for level in Level::ALL {
        let mut batch = WriteBatch::default();
        for (key, mut bucket) in fold(summaries, level) {
            if let Some(old) = kv.get(level.tree(), &key).expect("get") {
                bucket.merge(&codec::decode(&key, &old).expect("decode"));
            }
            batch.insert(key, codec::encode(&bucket).expect("encode"));
        }
        kv.apply(level.tree(), batch).expect("apply");
    }
}

fn report(zones: &[String], q: &HistoryQuery, level: Level, buckets: &[Rollup]) -> FacilityReport {
    build(&Inputs {
        site: "dc1",
        zones,
        from: q.from,
        to: q.to,
        level,
        buckets: BucketParts::whole(buckets),
        previous_level: level,
        previous: &[],
        incidents: &[],
        problems: &[],
        envelope: Envelope::of(AshraeClass::A1),
        stale_after: Duration::from_secs(600),
    })
}

/// Every query shape the API asks: a zone or the site, by rack and by sensor, over periods
/// served by each level.
fn queries() -> Vec<HistoryQuery> {
    let mut out = Vec::new();
    for length in [6 * HOUR, 3 * DAY, 40 * DAY] {
        for zone in [Some("Z0"), None] {
            for (rack, sensor) in [(None, None), (Some("K1"), None), (None, Some("z1-s4"))] {
                out.push(HistoryQuery {
                    site: "dc1".into(),
                    zone: zone.map(str::to_string),
                    rack: rack.map(str::to_string),
                    sensor: sensor.map(str::to_string),
                    from: Timestamp(NOW - length),
                    to: Timestamp(NOW),
                });
            }
        }
    }
    out
}

/// Checks that `stores` answer every query alike (the first is the reference).
fn agree(stores: &[(&str, RollupStore)]) {
    let zones = ["Z0".to_string(), "Z1".to_string()];
    let now = Timestamp(NOW);
    for q in queries() {
        let (_, reference) = &stores[0];
        let (level, from, expected) = reference.buckets(&q, now).expect("buckets");
        let history = reference.history(&q, now).expect("history");
        let reported: &[String] = if q.zone.is_some() {
            &zones[..1]
        } else {
            &zones
        };
        let expected_report = report(reported, &q, level, &expected);
        for (name, store) in &stores[1..] {
            let got = store.buckets(&q, now).expect("buckets");
            assert_eq!(got, (level, from, expected.clone()), "{name}: {q:?}");
            let h = store.history(&q, now).expect("history");
            assert_eq!(h.sensors, history.sensors, "{name}: {q:?}");
            assert_eq!(h.buckets, history.buckets, "{name}: {q:?}");
            assert_eq!(report(reported, &q, level, &got.2), expected_report);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn zone_values_read_as_per_sensor_buckets(
        batches in prop::collection::vec(
            prop::collection::vec((0u8..2, 0u8..5, 0..45 * 24 * 60i64, 10..40i32), 1..12),
            1..8,
        ),
        upgrade_after in 0usize..8,
    ) {
        let per_sensor: Arc<dyn KvStore> = Arc::new(MemoryStore::default());
        let zoned: Arc<dyn KvStore> = Arc::new(MemoryStore::default());
        let upgraded: Arc<dyn KvStore> = Arc::new(MemoryStore::default());
        for (i, batch) in batches.iter().enumerate() {
            let summaries: Vec<ReadingSummary> = batch
                .iter()
                .map(|&(zone, sensor, minutes_ago, value)| {
                    summary(zone, sensor, NOW - minutes_ago * MIN, value)
                })
                .collect();
            let refs: Vec<&ReadingSummary> = summaries.iter().collect();
            add_per_sensor(per_sensor.as_ref(), &summaries);
            add_on_clock(zoned.as_ref(), &refs, &CLOCK).expect("add");
            if i < upgrade_after {
                add_per_sensor(upgraded.as_ref(), &summaries);
            } else {
                add_on_clock(upgraded.as_ref(), &refs, &CLOCK).expect("add");
            }
        }
        let store = |kv: &Arc<dyn KvStore>| RollupStore::new(kv.clone(), RetentionPolicy::default());
        agree(&[
            ("per-sensor", store(&per_sensor)),
            ("zone values", store(&zoned)),
            ("upgraded", store(&upgraded)),
        ]);
        // A zone value per zone and bucket: never more entries than per-sensor buckets.
        for level in Level::ALL {
            let zone_entries = zoned.len(level.tree()).expect("len");
            prop_assert!(zone_entries <= per_sensor.len(level.tree()).expect("len"));
        }
    }
}
