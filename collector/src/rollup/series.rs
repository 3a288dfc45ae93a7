//! Time series of roll-up buckets: one point per sensor and bucket, grouped by sensor. Pure.
//!
//! `GET /api/v1/history/series` answers with these, so a chart over a period is one request
//! (the dashboard's rack page draws 24 hourly points per inlet sensor from one answer).

use super::{Level, Rollup};
use coldaisle_core::{Location, SensorKind, Timestamp};
use serde::Serialize;
use std::collections::BTreeMap;

/// Most buckets per sensor one series answer may hold (a week of minutes is 10,080: use hours).
pub const MAX_POINTS: i64 = 2000;

/// One bucket of one sensor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// Start of the bucket.
    pub start: Timestamp,
    /// Good samples.
    pub count: u64,
    /// Sum of the values (the mean is `sum / count`; sums merge across sensors, means do not).
    pub sum: f64,
    /// Lowest value.
    pub min: f64,
    /// Highest value.
    pub max: f64,
    /// Latest value.
    pub last: f64,
    /// End of the summary that gave `last`.
    pub last_at: Timestamp,
}

/// The points of one sensor, in time order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SensorSeries {
    /// Sensor id.
    pub sensor: String,
    /// What it measures.
    pub kind: SensorKind,
    /// Where it is.
    pub location: Location,
    /// Its buckets, oldest first.
    pub points: Vec<Point>,
}

/// A series answer: the level read, the period and the series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// Level of every point.
    pub level: Level,
    /// Start of the first bucket of the period.
    pub from: Timestamp,
    /// End of the period.
    pub to: Timestamp,
    /// One series per sensor, sorted by zone, rack and sensor.
    pub series: Vec<SensorSeries>,
}

/// Buckets per sensor that `[from, to]` spans at `level` (at least one).
pub fn points_per_sensor(from: Timestamp, to: Timestamp, level: Level) -> i64 {
    let first = level.bucket_start(from).0;
    to.0.saturating_sub(first).max(0) / level.bucket_ms() + 1
}

/// Groups `buckets` (any order) into one series per sensor (zone, rack, sensor), each in time
/// order.
pub fn group(buckets: impl IntoIterator<Item = Rollup>) -> Vec<SensorSeries> {
    let mut by_sensor: BTreeMap<(String, Option<String>, String), SensorSeries> = BTreeMap::new();
    for b in buckets {
        let point = Point {
            start: b.start,
            count: b.count,
            sum: b.sum,
            min: b.min,
            max: b.max,
            last: b.last,
            last_at: b.last_at,
        };
        let key = (
            b.location.zone.clone(),
            b.location.rack.clone(),
            b.sensor.clone(),
        );
        by_sensor
            .entry(key)
            .or_insert_with(|| SensorSeries {
                sensor: b.sensor,
                kind: b.kind,
                location: b.location,
                points: Vec::new(),
            })
            .points
            .push(point);
    }
    let mut out: Vec<SensorSeries> = by_sensor.into_values().collect();
    for s in &mut out {
        s.points.sort_by_key(|p| p.start);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(sensor: &str, rack: &str, start: i64, value: f64) -> Rollup {
        Rollup {
            sensor: sensor.into(),
            kind: SensorKind::InletTemp,
            location: Location {
                site: "s".into(),
                zone: "z".into(),
                row: None,
                rack: Some(rack.into()),
            },
            start: Timestamp(start),
            count: 2,
            sum: 2.0 * value,
            min: value - 1.0,
            max: value + 1.0,
            last: value,
            last_at: Timestamp(start + 10),
            summaries: 1,
        }
    }

    #[test]
    fn buckets_group_by_sensor_in_time_order() {
        let h = 3_600_000;
        let series = group([
            bucket("b", "R2", h, 30.0),
            bucket("a", "R1", 2 * h, 22.0),
            bucket("a", "R1", 0, 20.0),
            bucket("b", "R2", 0, 28.0),
        ]);
        let names: Vec<&str> = series.iter().map(|s| s.sensor.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let starts: Vec<i64> = series[0].points.iter().map(|p| p.start.0).collect();
        assert_eq!(starts, [0, 2 * h]);
        assert_eq!(series[0].points[1].sum, 44.0);
        assert_eq!(series[1].points[0].max, 29.0);
    }

    #[test]
    fn points_per_sensor_counts_aligned_buckets() {
        let h = 3_600_000;
        assert_eq!(
            points_per_sensor(Timestamp(0), Timestamp(24 * h - 1), Level::Hour),
            24
        );
        // A period starting mid-bucket reads that bucket too.
        assert_eq!(
            points_per_sensor(Timestamp(h / 2), Timestamp(2 * h), Level::Hour),
            3
        );
        assert_eq!(
            points_per_sensor(Timestamp(5), Timestamp(5), Level::Minute),
            1
        );
    }
}
