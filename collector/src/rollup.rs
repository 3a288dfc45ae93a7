//! Roll-ups of reading summaries: pure arithmetic and key encoding, no I/O.
//!
//! Every stored summary is folded into one bucket per [`Level`] (1 minute, 1 hour, 1 day).
//! A bucket keeps count, sum, min, max and last, which merge exactly and in any order, so a
//! coarser level equals the merge of the finer buckets it covers. p95 is left out: the agents'
//! summaries carry no sketch, and a percentile cannot be recovered honestly from
//! count/sum/min/max.
//!
//! Invariants:
//! - A summary belongs to the bucket holding its `from` (the first sample), at every level.
//! - Merging is commutative and associative: `last` is the value with the greatest `last_at`,
//!   ties broken by the greater value, so the result never depends on arrival order.
//! - A level's tree holds one value per zone and bucket with every sensor of the zone
//!   ([`zone_value`], key `site 0x00 zone 0x00 start(8 bytes, big-endian, sign flipped)`), so
//!   all of a zone over a time range is one ordered scan of one value per bucket. Site and
//!   zone ids contain no `0x00` (they are printable identifiers).
//! - Stores written by earlier collectors also hold one bucket per sensor, keyed
//!   `… start rack 0x00 sensor` ([`Rollup::key`]) with a [`codec`] value (binary, or JSON
//!   before that); they are read beside the zone values and never written again.

use coldaisle_core::{Location, ReadingSummary, SensorKind, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub mod codec;
pub mod series;
pub mod zone_value;

/// A roll-up resolution; each has its own store tree and retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// One-minute buckets.
    Minute,
    /// One-hour buckets.
    Hour,
    /// One-day buckets (UTC days).
    Day,
}

impl Level {
    /// Every level, finest first.
    pub const ALL: [Level; 3] = [Level::Minute, Level::Hour, Level::Day];

    /// Length of one bucket in milliseconds.
    pub fn bucket_ms(self) -> i64 {
        match self {
            Level::Minute => 60_000,
            Level::Hour => 3_600_000,
            Level::Day => 86_400_000,
        }
    }

    /// The level's name in the API (`minute`, `hour`, `day`).
    pub fn name(self) -> &'static str {
        match self {
            Level::Minute => "minute",
            Level::Hour => "hour",
            Level::Day => "day",
        }
    }

    /// The store tree of this level.
    pub fn tree(self) -> &'static str {
        match self {
            Level::Minute => "rollup_1m",
            Level::Hour => "rollup_1h",
            Level::Day => "rollup_1d",
        }
    }

    /// Start of the bucket holding `t` (floor, also for times before the epoch).
    pub fn bucket_start(self, t: Timestamp) -> Timestamp {
        Timestamp(t.0.div_euclid(self.bucket_ms()) * self.bucket_ms())
    }
}

/// One sensor's readings over one bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollup {
    /// Sensor id.
    pub sensor: String,
    /// What the sensor measures.
    pub kind: SensorKind,
    /// Where the sensor is.
    pub location: Location,
    /// Start of the bucket (or of the period, for a merge over a period).
    pub start: Timestamp,
    /// Good samples.
    pub count: u64,
    /// Sum of the values.
    pub sum: f64,
    /// Minimum value.
    pub min: f64,
    /// Maximum value.
    pub max: f64,
    /// Value of the latest summary.
    pub last: f64,
    /// End of the latest summary (orders `last`).
    pub last_at: Timestamp,
    /// Summaries folded in.
    pub summaries: u64,
}

impl Rollup {
    /// The bucket of `level` made of one summary; `None` for a summary without samples.
    pub fn of_summary(summary: &ReadingSummary, level: Level) -> Option<Self> {
        (summary.count > 0).then(|| Rollup {
            sensor: summary.sensor.clone(),
            kind: summary.kind,
            location: summary.location.clone(),
            start: level.bucket_start(summary.from),
            count: u64::from(summary.count),
            sum: summary.sum,
            min: summary.min,
            max: summary.max,
            last: summary.last,
            last_at: summary.to,
            summaries: 1,
        })
    }

    /// Folds `other` (same sensor) into `self`. Commutative and associative; `start` becomes
    /// the earlier of the two.
    pub fn merge(&mut self, other: &Rollup) {
        self.start = self.start.min(other.start);
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        let later = other.last_at > self.last_at
            || (other.last_at == self.last_at && other.last.total_cmp(&self.last).is_gt());
        if later {
            self.last = other.last;
            self.last_at = other.last_at;
        }
        self.summaries += other.summaries;
    }

    /// Mean value (`NaN` without samples).
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.sum / self.count as f64
        }
    }

    /// The store key of this bucket (see the module invariants).
    pub fn key(&self) -> Vec<u8> {
        let mut key = zone_prefix(&self.location.site, &self.location.zone);
        key.extend_from_slice(&time_bytes(self.start));
        key.extend_from_slice(self.location.rack.as_deref().unwrap_or("").as_bytes());
        key.push(0);
        key.extend_from_slice(self.sensor.as_bytes());
        key
    }
}

/// `site 0x00 zone 0x00`: the prefix of every key of one zone.
pub fn zone_prefix(site: &str, zone: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(site.len() + zone.len() + 2);
    key.extend_from_slice(site.as_bytes());
    key.push(0);
    key.extend_from_slice(zone.as_bytes());
    key.push(0);
    key
}

/// The first key of a zone at or after `t` (a scan from here is the zone's time range).
pub fn zone_time_key(site: &str, zone: &str, t: Timestamp) -> Vec<u8> {
    let mut key = zone_prefix(site, zone);
    key.extend_from_slice(&time_bytes(t));
    key
}

/// The bucket start encoded in a key; `None` if the key is not a roll-up key.
pub fn key_time(key: &[u8]) -> Option<Timestamp> {
    let first = key.iter().position(|&b| b == 0)?;
    let second = first + 1 + key.get(first + 1..)?.iter().position(|&b| b == 0)?;
    let bytes: [u8; 8] = key.get(second + 1..second + 9)?.try_into().ok()?;
    Some(Timestamp((u64::from_be_bytes(bytes) ^ (1 << 63)) as i64))
}

/// Big-endian with the sign bit flipped, so byte order equals numeric order for any `i64`.
fn time_bytes(t: Timestamp) -> [u8; 8] {
    ((t.0 as u64) ^ (1 << 63)).to_be_bytes()
}

/// Folds summaries into buckets of `level`, one per (sensor key, bucket), merged.
pub fn fold<'a>(
    summaries: impl IntoIterator<Item = &'a ReadingSummary>,
    level: Level,
) -> BTreeMap<Vec<u8>, Rollup> {
    let mut out: BTreeMap<Vec<u8>, Rollup> = BTreeMap::new();
    for rollup in summaries
        .into_iter()
        .filter_map(|s| Rollup::of_summary(s, level))
    {
        match out.entry(rollup.key()) {
            std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().merge(&rollup),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(rollup);
            }
        }
    }
    out
}

/// Merges buckets per sensor (site, zone, rack, sensor) over a whole period, sorted by key.
pub fn per_sensor<'a>(buckets: impl IntoIterator<Item = &'a Rollup>) -> Vec<Rollup> {
    let mut out: BTreeMap<(&str, Option<&str>, &str), Rollup> = BTreeMap::new();
    for b in buckets {
        let key = (
            b.location.zone.as_str(),
            b.location.rack.as_deref(),
            b.sensor.as_str(),
        );
        match out.entry(key) {
            std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().merge(b),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(b.clone());
            }
        }
    }
    out.into_values().collect()
}

/// Most buckets per sensor a history answer should read: above this a coarser level is used.
/// 200 keeps a report over any period to a few thousand buckets per zone (minutes up to 3 h,
/// hours up to 8 days, days beyond; measured in BENCHMARKS.md, "History").
pub const MAX_BUCKETS: i64 = 200;

/// The level that serves `[from, to]`: the finest whose retention still covers `from`
/// (`oldest[level]` is the oldest bucket start it keeps) and that needs at most
/// [`MAX_BUCKETS`] buckets per sensor; the day level when none qualifies.
pub fn serving_level(from: Timestamp, to: Timestamp, oldest: impl Fn(Level) -> Timestamp) -> Level {
    let span = to.0.saturating_sub(from.0).max(0);
    Level::ALL
        .into_iter()
        .find(|&level| span / level.bucket_ms() <= MAX_BUCKETS && from >= oldest(level))
        .unwrap_or(Level::Day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(sensor: &str, rack: &str, from: i64, values: &[f64]) -> ReadingSummary {
        ReadingSummary {
            sensor: sensor.into(),
            kind: SensorKind::InletTemp,
            location: Location {
                site: "par1".into(),
                zone: "hall-a".into(),
                row: None,
                rack: Some(rack.into()),
            },
            from: Timestamp(from),
            to: Timestamp(from + 50_000),
            count: values.len() as u32,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            sum: values.iter().sum(),
            last: values.last().copied().unwrap_or(f64::NAN),
        }
    }

    #[test]
    fn bucket_start_floors_also_before_the_epoch() {
        assert_eq!(
            Level::Hour.bucket_start(Timestamp(3_600_000 + 5)).0,
            3_600_000
        );
        assert_eq!(Level::Minute.bucket_start(Timestamp(-1)).0, -60_000);
        assert_eq!(
            Level::Day.bucket_start(Timestamp(86_400_000 * 3 - 1)).0,
            86_400_000 * 2
        );
    }

    #[test]
    fn hour_bucket_equals_merge_of_its_minutes_in_any_order() {
        let minutes: Vec<ReadingSummary> = (0..60)
            .map(|m| {
                summary(
                    "t1",
                    "r1",
                    m * 60_000,
                    &[20.0 + (m % 10) as f64 * 0.1, 19.0, 21.5],
                )
            })
            .collect();
        let hour = fold(&minutes, Level::Hour);
        assert_eq!(hour.len(), 1);
        let h = hour.values().next().cloned().expect("one bucket");
        assert_eq!(h.count, 180);
        assert_eq!(h.summaries, 60);
        assert_eq!(h.min, 19.0);
        assert_eq!(h.max, 21.5);
        assert_eq!(h.last, 21.5);
        assert_eq!(h.last_at, Timestamp(59 * 60_000 + 50_000));
        // Minutes then hour, reversed: the same bucket.
        let mut from_minutes: Vec<Rollup> = fold(&minutes, Level::Minute).into_values().collect();
        assert_eq!(from_minutes.len(), 60);
        from_minutes.reverse();
        let mut merged = from_minutes[0].clone();
        for m in &from_minutes[1..] {
            merged.merge(m);
        }
        assert_eq!(merged.count, h.count);
        assert_eq!(merged.min, h.min);
        assert_eq!(merged.max, h.max);
        assert_eq!((merged.last, merged.last_at), (h.last, h.last_at));
        assert!((merged.sum - h.sum).abs() < 1e-9);
        assert_eq!(merged.start, h.start);
    }

    #[test]
    fn last_is_the_latest_whatever_the_order() {
        let early = Rollup::of_summary(&summary("t", "r", 0, &[30.0]), Level::Hour);
        let late = Rollup::of_summary(&summary("t", "r", 60_000, &[10.0]), Level::Hour);
        let (Some(early), Some(late)) = (early, late) else {
            panic!("summaries with samples roll up");
        };
        let mut a = early.clone();
        a.merge(&late);
        let mut b = late.clone();
        b.merge(&early);
        assert_eq!(a, b);
        assert_eq!(a.last, 10.0);
        assert_eq!(a.mean(), 20.0);
    }

    #[test]
    fn empty_summaries_do_not_roll_up() {
        assert!(Rollup::of_summary(&summary("t", "r", 0, &[]), Level::Minute).is_none());
    }

    #[test]
    fn keys_order_a_zone_by_time_and_decode_their_time() {
        let a = Rollup::of_summary(&summary("z9", "r9", -120_000, &[1.0]), Level::Minute);
        let b = Rollup::of_summary(&summary("a1", "r1", 60_000, &[1.0]), Level::Minute);
        let (Some(a), Some(b)) = (a, b) else {
            panic!("summaries with samples roll up");
        };
        assert!(
            a.key() < b.key(),
            "earlier bucket sorts first across sensors"
        );
        assert_eq!(key_time(&a.key()), Some(Timestamp(-120_000)));
        assert_eq!(key_time(&b.key()), Some(Timestamp(60_000)));
        assert!(b.key().starts_with(&zone_prefix("par1", "hall-a")));
        assert!(zone_time_key("par1", "hall-a", Timestamp(0)) <= b.key());
        assert!(zone_time_key("par1", "hall-a", Timestamp(0)) > a.key());
        assert_eq!(key_time(b"no-separators"), None);
    }

    #[test]
    fn per_sensor_merges_buckets_of_each_sensor() {
        let s = [
            summary("t1", "r1", 0, &[20.0]),
            summary("t1", "r1", 3_600_000, &[22.0]),
            summary("t2", "r2", 0, &[25.0]),
        ];
        let buckets = fold(&s, Level::Hour);
        let rows = per_sensor(buckets.values());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].sensor, "t1");
        assert_eq!((rows[0].count, rows[0].min, rows[0].max), (2, 20.0, 22.0));
        assert_eq!(rows[0].start, Timestamp(0));
        assert_eq!(rows[1].sensor, "t2");
    }

    #[test]
    fn serving_level_is_fine_for_short_recent_periods_and_coarse_otherwise() {
        let day = 86_400_000;
        let hour = 3_600_000;
        let now = Timestamp(1000 * day);
        let oldest = |level: Level| match level {
            Level::Minute => now.minus(std::time::Duration::from_secs(7 * 86_400)),
            Level::Hour => now.minus(std::time::Duration::from_secs(90 * 86_400)),
            Level::Day => Timestamp(i64::MIN),
        };
        let ago = |ms: i64| Timestamp(now.0 - ms);
        assert_eq!(serving_level(ago(hour), now, oldest), Level::Minute);
        assert_eq!(serving_level(ago(3 * hour), now, oldest), Level::Minute);
        // Within minute retention, but a day of minutes is too many buckets.
        assert_eq!(serving_level(ago(day), now, oldest), Level::Hour);
        assert_eq!(serving_level(ago(8 * day), now, oldest), Level::Hour);
        // 30 days: days.
        assert_eq!(serving_level(ago(30 * day), now, oldest), Level::Day);
        // A short period older than the minute retention: hours.
        assert_eq!(
            serving_level(ago(20 * day), ago(20 * day - hour), oldest),
            Level::Hour
        );
        // Older than the hour retention: days, however short.
        assert_eq!(
            serving_level(ago(200 * day), ago(200 * day - hour), oldest),
            Level::Day
        );
    }
}
