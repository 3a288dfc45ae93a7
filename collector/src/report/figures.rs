//! Figures of one measure (one sensor, or the sensors of a rack or a zone) over a period, from
//! roll-up buckets: pure arithmetic, no I/O, time passed in.
//!
//! Buckets come from one [`Level`]; each holds count, sum, min, max and the latest value of
//! one sensor over one bucket. What follows from that:
//!
//! - **current** is the highest of the sensors' latest values (the worst case for heat), with
//!   the time of the latest of them; **avg** is the sample-weighted mean; **min**/**max** are
//!   exact.
//! - **p95 is approximated.** The samples themselves are gone; each bucket says only that its
//!   `count` samples lie between its `min` and its `max`. Replacing every sample by its
//!   bucket's max gives values at least as large as the real ones, sample by sample, and a
//!   nearest-rank quantile is monotone in every sample, so the p95 of the bucket maxima
//!   (weighted by count) is an **upper bound** of the true p95; the same over the minima is a
//!   lower bound. `p95` is that upper bound (conservative for heat), `p95_low` the lower one:
//!   the true p95 lies in `[p95_low, p95]`, so the error is at most `p95 − p95_low`. With
//!   one-minute buckets (periods up to a few hours) that is the spread within a minute, a few
//!   tenths of a degree; with hour or day buckets (periods of days) it grows to the spread
//!   within an hour or a day, and the report says which level it used.
//! - **Time outside a band** is bounded the same way: a bucket is surely above a limit when
//!   the min of one of the sensors' buckets at that time exceeds it, and possibly when a max
//!   does; `at_least` sums the first, `at_most` the second, each bucket counted for its length
//!   clipped to the period. Below the low limit mirrors it.
//! - **Gaps**: a bucket without a summary counts for nothing, neither inside nor outside the
//!   band; `covered_secs` says how much of the period had data. Figures over no buckets are
//!   absent (`None`) and the times zero.
//! - The first bucket starts at or before `from` (buckets are aligned); its figures count
//!   whole, only its length is clipped.

use super::ashrae::{Limits, Standing};
use crate::rollup::{Level, Rollup};
use coldaisle_core::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A period `[from, to]` read at one roll-up level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Start of the period.
    pub from: Timestamp,
    /// End of the period.
    pub to: Timestamp,
    /// Level of the buckets.
    pub level: Level,
}

impl Span {
    /// Milliseconds of the bucket starting at `start` that lie inside the period.
    fn clipped_ms(&self, start: Timestamp) -> i64 {
        let end = start
            .0
            .saturating_add(self.level.bucket_ms())
            .min(self.to.0);
        (end - start.0.max(self.from.0)).max(0)
    }
}

/// Plain statistics of a measure over the period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Good samples in the period.
    pub samples: u64,
    /// Highest of the sensors' latest values.
    pub current: Option<f64>,
    /// When the latest of those values was taken (end of its summary).
    pub current_at: Option<Timestamp>,
    /// Sample-weighted mean.
    pub avg: Option<f64>,
    /// Lowest sample.
    pub min: Option<f64>,
    /// Highest sample.
    pub max: Option<f64>,
}

impl Stats {
    /// The statistics of `buckets` (any sensors, any order).
    pub fn of<'a>(buckets: impl IntoIterator<Item = &'a Rollup>) -> Stats {
        let mut latest: BTreeMap<&str, (Timestamp, f64)> = BTreeMap::new();
        let (mut samples, mut sum) = (0u64, 0.0);
        let (mut min, mut max): (Option<f64>, Option<f64>) = (None, None);
        for b in buckets.into_iter().filter(|b| b.count > 0) {
            samples += b.count;
            sum += b.sum;
            min = Some(min.map_or(b.min, |m| m.min(b.min)));
            max = Some(max.map_or(b.max, |m| m.max(b.max)));
            let entry = latest
                .entry(b.sensor.as_str())
                .or_insert((b.last_at, b.last));
            if b.last_at > entry.0 || (b.last_at == entry.0 && b.last > entry.1) {
                *entry = (b.last_at, b.last);
            }
        }
        let current = latest
            .values()
            .map(|&(_, v)| v)
            .fold(None, |acc: Option<f64>, v| {
                Some(acc.map_or(v, |a| a.max(v)))
            });
        // Sample totals stay far below 2^53, so the cast is exact.
        Stats {
            samples,
            current,
            current_at: latest.values().map(|&(t, _)| t).max(),
            avg: (samples > 0).then(|| sum / samples as f64),
            min,
            max,
        }
    }
}

/// Bounds of a duration, in seconds (see the module rules).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecsRange {
    /// Time that was surely spent so.
    pub at_least: u64,
    /// Time that may have been spent so.
    pub at_most: u64,
}

/// Time above and below one band.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BandTime {
    /// Above the band's high limit.
    pub above: SecsRange,
    /// Below the band's low limit.
    pub below: SecsRange,
}

/// A measure against its limits: statistics, p95 bounds, standing and time outside each band.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Plain statistics.
    #[serde(flatten)]
    pub stats: Stats,
    /// Upper bound of the 95th percentile (see the module rules).
    pub p95: Option<f64>,
    /// Lower bound of the 95th percentile; the error of `p95` is at most `p95 - p95_low`.
    pub p95_low: Option<f64>,
    /// Where `current` stands.
    pub standing: Option<Standing>,
    /// The worst standing of `min` and `max` over the period.
    pub worst: Option<Standing>,
    /// Time outside the recommended band.
    pub recommended: BandTime,
    /// Time outside the allowable band.
    pub allowable: BandTime,
    /// Time of the period with at least one bucket (seconds).
    pub covered_secs: u64,
}

impl Figures {
    /// The figures of `buckets` (one or several sensors of one measure) over `span`.
    pub fn of(buckets: &[&Rollup], span: Span, limits: &Limits) -> Figures {
        let stats = Stats::of(buckets.iter().copied());
        let with_samples = || buckets.iter().filter(|b| b.count > 0);
        let p95 = weighted_quantile(with_samples().map(|b| (b.max, b.count)).collect(), 0.95);
        let p95_low = weighted_quantile(with_samples().map(|b| (b.min, b.count)).collect(), 0.95);
        let worst = match (stats.min, stats.max) {
            (Some(lo), Some(hi)) => Some(limits.standing(lo).max(limits.standing(hi))),
            _ => None,
        };
        Figures {
            standing: stats.current.map(|v| limits.standing(v)),
            worst,
            p95,
            p95_low,
            recommended: band_time(
                buckets,
                span,
                limits.recommended.low,
                limits.recommended.high,
            ),
            allowable: band_time(buckets, span, limits.allowable.low, limits.allowable.high),
            covered_secs: covered_secs(buckets, span),
            stats,
        }
    }
}

/// Nearest-rank `q` quantile of values weighted by counts: the smallest value such that at
/// least `q` of the total weight lies at or below it. `None` without weight.
pub fn weighted_quantile(mut values: Vec<(f64, u64)>, q: f64) -> Option<f64> {
    let total: u64 = values.iter().map(|&(_, w)| w).sum();
    if total == 0 {
        return None;
    }
    values.sort_by(|a, b| a.0.total_cmp(&b.0));
    // total < 2^53: exact; the rank is at least 1.
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    values.into_iter().find_map(|(v, w)| {
        seen += w;
        (seen >= rank).then_some(v)
    })
}

/// Time above `high` and below `low` (see the module rules).
fn band_time(buckets: &[&Rollup], span: Span, low: f64, high: f64) -> BandTime {
    // Per bucket start: (surely above, possibly above, surely below, possibly below).
    let mut at: BTreeMap<Timestamp, [bool; 4]> = BTreeMap::new();
    for b in buckets.iter().filter(|b| b.count > 0) {
        let flags = at.entry(b.start).or_default();
        flags[0] |= b.min > high;
        flags[1] |= b.max > high;
        flags[2] |= b.max < low;
        flags[3] |= b.min < low;
    }
    let mut ms = [0i64; 4];
    for (start, flags) in at {
        let len = span.clipped_ms(start);
        for (total, flag) in ms.iter_mut().zip(flags) {
            if flag {
                *total += len;
            }
        }
    }
    let secs = |ms: i64| u64::try_from(ms / 1000).unwrap_or(0);
    BandTime {
        above: SecsRange {
            at_least: secs(ms[0]),
            at_most: secs(ms[1]),
        },
        below: SecsRange {
            at_least: secs(ms[2]),
            at_most: secs(ms[3]),
        },
    }
}

/// Seconds of the period covered by at least one bucket with samples.
fn covered_secs(buckets: &[&Rollup], span: Span) -> u64 {
    let starts: std::collections::BTreeSet<Timestamp> = buckets
        .iter()
        .filter(|b| b.count > 0)
        .map(|b| b.start)
        .collect();
    let ms: i64 = starts.into_iter().map(|s| span.clipped_ms(s)).sum();
    u64::try_from(ms / 1000).unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::ashrae::{AshraeClass, Envelope};
    use coldaisle_core::{Location, SensorKind};

    pub const MIN: i64 = 60_000;

    /// A bucket of `sensor` in rack `rack` of dc1/Z1 at `start` with `count` samples.
    pub fn bucket(
        sensor: &str,
        kind: SensorKind,
        rack: Option<&str>,
        start: i64,
        count: u64,
        (min, avg, max): (f64, f64, f64),
    ) -> Rollup {
        Rollup {
            sensor: sensor.into(),
            kind,
            location: Location {
                site: "dc1".into(),
                zone: "Z1".into(),
                row: Some("A".into()),
                rack: rack.map(str::to_string),
            },
            start: Timestamp(start),
            count,
            sum: avg * count as f64,
            min,
            max,
            last: avg,
            last_at: Timestamp(start + 50_000),
            summaries: 1,
        }
    }

    fn inlet(start: i64, count: u64, min_avg_max: (f64, f64, f64)) -> Rollup {
        bucket(
            "s1",
            SensorKind::InletTemp,
            Some("R1"),
            start,
            count,
            min_avg_max,
        )
    }

    fn span(minutes: i64) -> Span {
        Span {
            from: Timestamp(0),
            to: Timestamp(minutes * MIN),
            level: Level::Minute,
        }
    }

    fn limits() -> Limits {
        Envelope::of(AshraeClass::A1).temperature
    }

    #[test]
    fn quantile_is_nearest_rank_by_weight() {
        assert_eq!(weighted_quantile(vec![], 0.95), None);
        assert_eq!(weighted_quantile(vec![(5.0, 0)], 0.95), None);
        // 19 samples at 1, one at 100: rank 19 of 20 is still 1.
        assert_eq!(
            weighted_quantile(vec![(100.0, 1), (1.0, 19)], 0.95),
            Some(1.0)
        );
        // 18 at 1, two at 100: rank 19 is 100.
        assert_eq!(
            weighted_quantile(vec![(100.0, 2), (1.0, 18)], 0.95),
            Some(100.0)
        );
        assert_eq!(weighted_quantile(vec![(3.0, 1)], 0.95), Some(3.0));
    }

    #[test]
    fn p95_bounds_enclose_the_true_percentile() {
        // 100 minutes of 6 samples each: samples spread ±0.5 around a value rising 0.1/min.
        let mut samples = Vec::new();
        let buckets: Vec<Rollup> = (0..100)
            .map(|m| {
                let base = 20.0 + m as f64 * 0.1;
                let values: Vec<f64> = (0..6).map(|i| base - 0.5 + i as f64 * 0.2).collect();
                samples.extend(values.iter().copied());
                let (lo, hi) = (values[0], values[5]);
                inlet(m * MIN, 6, (lo, values.iter().sum::<f64>() / 6.0, hi))
            })
            .collect();
        let refs: Vec<&Rollup> = buckets.iter().collect();
        let f = Figures::of(&refs, span(100), &limits());
        let truth =
            weighted_quantile(samples.iter().map(|&v| (v, 1)).collect(), 0.95).expect("p95");
        let (hi, lo) = (f.p95.expect("p95"), f.p95_low.expect("p95_low"));
        assert!(lo <= truth && truth <= hi, "{lo} <= {truth} <= {hi}");
        // The bound is the in-minute spread (1.0) at most.
        assert!(hi - lo <= 1.0 + 1e-9, "{hi} - {lo}");
        assert_eq!(f.stats.samples, 600);
        assert_eq!(f.stats.max, Some(20.0 + 9.9 + 0.5));
    }

    #[test]
    fn time_above_counts_sure_and_possible_minutes() {
        // 10 minutes: 3 wholly above 27 (min 28), 2 straddling (min 26, max 29), 5 below.
        let mut buckets = Vec::new();
        for m in 0..10 {
            let triple = match m {
                0..=2 => (28.0, 29.0, 30.0),
                3..=4 => (26.0, 27.5, 29.0),
                _ => (22.0, 23.0, 24.0),
            };
            buckets.push(inlet(m * MIN, 6, triple));
        }
        let refs: Vec<&Rollup> = buckets.iter().collect();
        let f = Figures::of(&refs, span(10), &limits());
        assert_eq!(
            f.recommended.above,
            SecsRange {
                at_least: 180,
                at_most: 300
            }
        );
        assert_eq!(f.allowable.above, SecsRange::default());
        assert_eq!(f.recommended.below, SecsRange::default());
        assert_eq!(f.covered_secs, 600);
        assert_eq!(f.standing, Some(Standing::Recommended)); // latest value 23
        assert_eq!(f.worst, Some(Standing::Allowable));
    }

    #[test]
    fn gaps_count_neither_inside_nor_outside() {
        // Minutes 0-1 and 8-9 only, all above the allowable limit; minutes 2-7 missing.
        let buckets: Vec<Rollup> = [0, 1, 8, 9]
            .into_iter()
            .map(|m| inlet(m * MIN, 6, (33.0, 34.0, 35.0)))
            .collect();
        let refs: Vec<&Rollup> = buckets.iter().collect();
        let f = Figures::of(&refs, span(10), &limits());
        assert_eq!(f.covered_secs, 240);
        assert_eq!(
            f.allowable.above,
            SecsRange {
                at_least: 240,
                at_most: 240
            }
        );
        assert_eq!(f.standing, Some(Standing::OutsideAllowable));
    }

    #[test]
    fn empty_period_has_no_figures_and_zero_time() {
        let f = Figures::of(&[], span(60), &limits());
        assert_eq!(f.stats, Stats::default());
        assert_eq!(
            (f.p95, f.p95_low, f.standing, f.worst),
            (None, None, None, None)
        );
        assert_eq!(f.recommended, BandTime::default());
        assert_eq!(f.covered_secs, 0);
        // A bucket without samples is no data either.
        let empty = inlet(0, 0, (0.0, 0.0, 0.0));
        let f = Figures::of(&[&empty], span(60), &limits());
        assert_eq!(f.stats.samples, 0);
        assert_eq!(f.covered_secs, 0);
        assert_eq!(f.p95, None);
    }

    #[test]
    fn buckets_are_clipped_to_the_period_and_sensors_merge_per_start() {
        // Hour buckets, period from 00:30 to 02:00: the first hour counts 30 minutes.
        let hour = 60 * MIN;
        let two_sensors = [
            inlet(0, 60, (10.0, 12.0, 14.0)),
            bucket(
                "s2",
                SensorKind::InletTemp,
                Some("R1"),
                0,
                60,
                (13.0, 14.0, 15.0),
            ),
            inlet(hour, 60, (20.0, 21.0, 22.0)),
        ];
        let refs: Vec<&Rollup> = two_sensors.iter().collect();
        let span = Span {
            from: Timestamp(30 * MIN),
            to: Timestamp(2 * hour),
            level: Level::Hour,
        };
        let f = Figures::of(&refs, span, &limits());
        assert_eq!(f.covered_secs, 90 * 60);
        // Both sensors below 18 in the first hour: one clipped half hour, counted once.
        assert_eq!(
            f.recommended.below,
            SecsRange {
                at_least: 1800,
                at_most: 1800
            }
        );
        // s1's latest is 21 (second hour), s2's 14: current is the highest latest value.
        assert_eq!(f.stats.current, Some(21.0));
        assert_eq!(f.stats.current_at, Some(Timestamp(hour + 50_000)));
        assert_eq!(
            f.stats.avg,
            Some((12.0 * 60.0 + 14.0 * 60.0 + 21.0 * 60.0) / 180.0)
        );
        assert_eq!(f.stats.min, Some(10.0));
    }
}
