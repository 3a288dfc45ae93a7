//! Learned band: each sensor's own normal, per hour of day, for sensors without fixed limits
//! and to catch departures inside them.
//!
//! Method (robust, online, O(1) per sample): 24 buckets, one per UTC hour of day, so the daily
//! cycle is learned rather than flagged. Each bucket keeps a centre `c` and a spread `s` (mean
//! absolute deviation). A sample `x` in bucket `b` is judged against `c ± w` with
//! `w = max(k · s, min_width)`, then learned with an EWMA `c += α·r`, `s += α·(|r| - s)` of
//! the residual `r = x - c`; a sample outside the band is *winsorised* (`r` clipped to `±w`)
//! and does not update the spread, so a spike, a fault or a long excursion moves the band by at
//! most `α·w` per sample and never widens it (a Huber-type M-estimate). `α = max(1/n, Δt / 3 days-of-bucket-time)`:
//! a running mean while the bucket is young, then a memory of about three days of that hour,
//! whatever the poll interval. A bucket judges only after `warmup` samples. A raise needs the
//! value outside the band for `min_duration` (one spike never fires); it clears once the
//! value is back inside 80 % of the band.

use super::threshold::Side;
use super::Transition;
use coldaisle_config::detection::BandSettings;
use coldaisle_core::Timestamp;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Memory of a bucket, in seconds of that bucket's own time (3 days × 1 hour).
const MEMORY_SECS: f64 = 3.0 * 3600.0;
/// Longest gap between samples that still counts as learning time.
const MAX_STEP_SECS: f64 = 600.0;
/// Share of the band the value must be back inside to clear.
const CLEAR_RATIO: f64 = 0.8;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// One hour-of-day bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Learned centre.
    pub center: f64,
    /// Learned spread (mean absolute deviation).
    pub spread: f64,
    /// Samples learned.
    pub n: u32,
}

/// The detector's state (stored across restarts: this is what took days to learn).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandState {
    /// One bucket per UTC hour.
    pub buckets: Vec<Bucket>,
    /// Previous sample time.
    last_ts: Option<Timestamp>,
    /// Outside the band since, and on which side.
    pending: Option<(Timestamp, Side)>,
    /// Open raise: since, side.
    raised: Option<(Timestamp, Side)>,
}

impl Default for BandState {
    fn default() -> Self {
        BandState {
            buckets: vec![Bucket::default(); 24],
            last_ts: None,
            pending: None,
            raised: None,
        }
    }
}

/// One sensor's learned-band detector.
#[derive(Debug, Clone)]
pub struct BandDetector {
    /// Shared with every sensor of the same settings (issue 18).
    config: Arc<BandSettings>,
    /// Current state.
    pub state: BandState,
}

impl BandDetector {
    /// A detector that has learned nothing yet.
    pub fn new(config: impl Into<Arc<BandSettings>>) -> Self {
        BandDetector {
            config: config.into(),
            state: BandState::default(),
        }
    }

    /// The band `(low, high)` that applies at `ts`, once its bucket has warmed up.
    pub fn band_at(&self, ts: Timestamp) -> Option<(f64, f64)> {
        let b = self.state.buckets.get(bucket_of(ts))?;
        (b.n >= self.config.warmup).then(|| {
            let w = self.width(b);
            (b.center - w, b.center + w)
        })
    }

    fn width(&self, b: &Bucket) -> f64 {
        (self.config.k * b.spread).max(self.config.min_width)
    }

    /// Re-learns at a new level that another detector confirmed (a step change: the sensor's
    /// normal moved by `shift`): every learned centre moves by `shift`, keeping the daily
    /// shape and spreads, and an excursion in progress is forgotten. An open raise clears at
    /// `ts` with `value`.
    pub fn shift_level(&mut self, shift: f64, ts: Timestamp, value: f64) -> Option<Transition> {
        if !shift.is_finite() {
            return None;
        }
        for b in self.state.buckets.iter_mut().filter(|b| b.n > 0) {
            b.center += shift;
        }
        self.state.pending = None;
        self.state
            .raised
            .take()
            .map(|(since, _)| Transition::cleared(value, None, since, ts))
    }

    /// Feeds one valid sample (time order per sensor).
    pub fn observe(&mut self, ts: Timestamp, value: f64) -> Option<Transition> {
        if self.state.buckets.len() != 24 {
            self.state.buckets = vec![Bucket::default(); 24];
        }
        let step = self
            .state
            .last_ts
            .map_or(0.0, |l| (ts.since(l).as_secs_f64()).min(MAX_STEP_SECS));
        self.state.last_ts = Some(ts);
        let index = bucket_of(ts);
        let bucket = self.state.buckets[index];
        let judged = bucket.n >= self.config.warmup;
        let width = self.width(&bucket);
        let residual = value - bucket.center;
        // Learn.
        let b = &mut self.state.buckets[index];
        if b.n == 0 {
            b.center = value;
            b.spread = 0.0;
        } else {
            let alpha = (1.0 / f64::from(b.n + 1)).max(step / MEMORY_SECS).min(1.0);
            if judged && residual.abs() > width {
                // An outlier: it may move the centre by at most α·w and never widens the
                // band (otherwise a long excursion would teach the band to include itself).
                b.center += alpha * residual.clamp(-width, width);
            } else {
                b.center += alpha * residual;
                b.spread += alpha * (residual.abs() - b.spread);
            }
        }
        b.n = b.n.saturating_add(1);
        if !judged {
            return None;
        }
        // Judge.
        let side = if residual > width {
            Some(Side::High)
        } else if residual < -width {
            Some(Side::Low)
        } else {
            None
        };
        let edge = |side: Side, w: f64| match side {
            Side::High => bucket.center + w,
            Side::Low => bucket.center - w,
        };
        if let Some((since, raised_side)) = self.state.raised {
            let back = match raised_side {
                Side::High => residual < width * CLEAR_RATIO,
                Side::Low => residual > -width * CLEAR_RATIO,
            };
            if back {
                self.state.raised = None;
                self.state.pending = None;
                let limit = edge(raised_side, width * CLEAR_RATIO);
                return Some(Transition::cleared(value, Some(limit), since, ts));
            }
            return None;
        }
        let Some(side) = side else {
            self.state.pending = None;
            return None;
        };
        let since = match self.state.pending {
            Some((since, s)) if s == side => since,
            _ => ts,
        };
        self.state.pending = Some((since, side));
        if ts.since(since) < self.config.min_duration {
            return None;
        }
        self.state.raised = Some((since, side));
        Some(Transition::raised(
            value,
            Some(edge(side, width)),
            since,
            ts,
        ))
    }
}

fn bucket_of(ts: Timestamp) -> usize {
    usize::try_from(ts.millis().rem_euclid(DAY_MS) / HOUR_MS).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldaisle_core::{EventState, Severity};
    use std::time::Duration;

    fn settings() -> BandSettings {
        BandSettings {
            k: 5.0,
            min_width: 1.0,
            min_duration: Duration::from_secs(600),
            warmup: 60,
            severity: Severity::Info,
        }
    }

    /// A daily cycle of ±3 °C around 24 °C with ±0.3 noise, one sample a minute.
    fn normal(minute: i64) -> f64 {
        let day = (minute as f64) / 1440.0 * std::f64::consts::TAU;
        let noise = (((minute * 7919) % 61) as f64 / 60.0 - 0.5) * 0.6;
        24.0 + 3.0 * day.sin() + noise
    }

    #[test]
    fn learns_the_daily_cycle_and_catches_a_departure_inside_it() {
        let mut d = BandDetector::new(settings());
        let minutes = 6 * 1440;
        let mut out = Vec::new();
        for m in 0..minutes {
            // Day 5, 10:00–11:30: +3 °C (still well inside 18–27 most of the time).
            let anomaly = (4 * 1440 + 600..4 * 1440 + 690).contains(&m);
            let v = normal(m) + if anomaly { 3.0 } else { 0.0 };
            out.extend(d.observe(Timestamp(m * 60_000), v).map(|t| (m, t.state)));
        }
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].1, EventState::Raised);
        assert!(
            (4 * 1440 + 610..4 * 1440 + 625).contains(&out[0].0),
            "{out:?}"
        );
        assert_eq!(out[1].1, EventState::Cleared);
        assert!(
            (4 * 1440 + 690..4 * 1440 + 700).contains(&out[1].0),
            "{out:?}"
        );
    }

    proptest::proptest! {
        /// A stationary sensor (any level, noise up to ±0.4 around it, any poll interval)
        /// never leaves its learned band.
        #[test]
        fn stationary_noise_never_raises(
            level in -10.0f64..60.0,
            step_secs in 10i64..300,
            noise in proptest::collection::vec(-0.4f64..0.4, 200..400),
        ) {
            let mut d = BandDetector::new(BandSettings { warmup: 20, ..settings() });
            let mut ts = 0;
            for _ in 0..8 {
                for n in &noise {
                    ts += step_secs * 1000;
                    proptest::prop_assert!(d.observe(Timestamp(ts), level + n).is_none());
                }
            }
        }
    }

    #[test]
    fn spikes_do_not_fire_or_move_the_band() {
        let mut d = BandDetector::new(settings());
        for m in 0..3 * 1440 {
            let v = if m % 97 == 0 {
                normal(m) + 15.0
            } else {
                normal(m)
            };
            assert!(d.observe(Timestamp(m * 60_000), v).is_none(), "minute {m}");
        }
        let (lo, hi) = d.band_at(Timestamp(3 * 1440 * 60_000)).expect("warm");
        assert!(hi - lo < 6.0, "band stays narrow: {lo}..{hi}");
    }
}
