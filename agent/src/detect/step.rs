//! Step change: a sustained shift of a sensor's level, e.g. a rack whose power draw rises by
//! 2 kW and stays there (a density change). It is a fact worth recording, not an alarm: the
//! chain reports it at `info` severity, and the collector quotes it as evidence.
//!
//! Method: a two-window median test, O(n log n) per sample over the samples of the last
//! `reference + min_duration` (a few hundred at most). At every sample time `t` the *after*
//! window is `(t − min_duration, t]` and the *before* window is the `reference` before it. With
//! `m₀`, `m₁` the medians of the windows and `σ₀` the robust spread of the before window
//! (1.4826 × its median absolute deviation), a step is reported when
//!
//! - `|m₁ − m₀| ≥ max(min_change, K · σ₀)` — the shift is large and beyond the old noise; and
//! - at least 90 % of the after window lies beyond the midpoint `(m₀ + m₁) / 2` on the new side,
//!   so the new level has held for about `min_duration` (a short spike moves neither the median
//!   nor that share: a 5-minute spike in a 30-minute window is a sixth of it).
//!
//! The test runs at most once per `min_duration / 30` (one minute with the defaults), however
//! fast the sensor is polled, which bounds its cost per sample (BENCHMARKS.md); a step is
//! reported at most that much later.
//!
//! Each window must be covered: the before window by samples spanning at least half of
//! `reference`, each window by at least [`MIN_SAMPLES`]; a gap in the data therefore delays a
//! judgement instead of comparing unrelated levels.
//!
//! A step is a point event: the detector raises it (value = the new level `m₁`, limit = the
//! old level `m₀`, first time = the first sample of the after window) and clears it on the next
//! sample with the same figures. After a step the history before it is forgotten, so the new
//! level becomes the reference and one step is reported exactly once.

use super::Transition;
use coldaisle_config::detection::StepSettings;
use coldaisle_core::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;

/// Shift must exceed this many robust standard deviations of the before window.
const K: f64 = 4.0;
/// Share of the after window that must lie on the new side of the midpoint.
const HOLD_SHARE: f64 = 0.9;
/// Fewest samples each window needs before a judgement.
pub const MIN_SAMPLES: usize = 3;
/// The test runs at most once per `min_duration / JUDGE_RATIO`.
const JUDGE_RATIO: i64 = 30;
/// Most samples kept (bounds memory whatever the poll interval; oldest dropped first).
const MAX_SAMPLES: usize = 4096;
/// Scale from the median absolute deviation to a standard deviation under normal noise.
const MAD_TO_SIGMA: f64 = 1.4826;

/// One stored sample: (time in ms, value).
type Sample = (i64, f64);

/// A reported step, kept until its clear is emitted on the next sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// First sample of the new level's window.
    pub first_ts: Timestamp,
    /// Level before the step (median of the before window).
    pub before: f64,
    /// Level after the step (median of the after window).
    pub after: f64,
}

/// The detector's state (stored across restarts).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepState {
    /// Samples of the last `reference + min_duration`, in time order: (ms, value).
    samples: VecDeque<Sample>,
    /// A step raised on the previous sample whose clear is still due.
    pending_clear: Option<Step>,
    /// When the two-window test last ran (ms).
    #[serde(default)]
    last_judged: Option<i64>,
}

/// One sensor's step-change detector.
#[derive(Debug, Clone)]
pub struct StepDetector {
    /// Shared with every sensor of the same settings (issue 18).
    config: Arc<StepSettings>,
    /// Current state.
    pub state: StepState,
}

impl StepDetector {
    /// A detector with no history.
    pub fn new(config: impl Into<Arc<StepSettings>>) -> Self {
        StepDetector {
            config: config.into(),
            state: StepState::default(),
        }
    }

    /// Feeds one valid sample (time order per sensor; an out-of-order sample is ignored).
    pub fn observe(&mut self, ts: Timestamp, value: f64) -> Option<Transition> {
        let now = ts.millis();
        if self.state.samples.back().is_some_and(|&(t, _)| t >= now) || !value.is_finite() {
            return None;
        }
        self.state.samples.push_back((now, value));
        let horizon = now - millis(self.config.reference) - millis(self.config.min_duration);
        while self.state.samples.len() > MAX_SAMPLES
            || self
                .state
                .samples
                .front()
                .is_some_and(|&(t, _)| t <= horizon)
        {
            self.state.samples.pop_front();
        }
        if let Some(step) = self.state.pending_clear.take() {
            return Some(Transition::cleared(
                step.after,
                Some(step.before),
                step.first_ts,
                ts,
            ));
        }
        let every = millis(self.config.min_duration) / JUDGE_RATIO;
        if self.state.last_judged.is_some_and(|t| now - t < every) {
            return None;
        }
        self.state.last_judged = Some(now);
        let step = self.judge(now)?;
        // The new level is the reference from now on: forget what came before it.
        let start = step.first_ts.millis();
        self.state.samples.retain(|&(t, _)| t >= start);
        self.state.pending_clear = Some(step);
        Some(Transition::raised(
            step.after,
            Some(step.before),
            step.first_ts,
            ts,
        ))
    }

    /// The two-window test at time `now` (ms) over the stored samples.
    fn judge(&self, now: i64) -> Option<Step> {
        let cut = now - millis(self.config.min_duration);
        let (before, after): (Vec<Sample>, Vec<Sample>) =
            self.state.samples.iter().partition(|&&(t, _)| t <= cut);
        let first_before = before.first()?.0;
        let first_after = after.first()?.0;
        if before.len() < MIN_SAMPLES
            || after.len() < MIN_SAMPLES
            || cut - first_before < millis(self.config.reference) / 2
        {
            return None;
        }
        let old: Vec<f64> = before.iter().map(|s| s.1).collect();
        let new: Vec<f64> = after.iter().map(|s| s.1).collect();
        let m0 = median(&old)?;
        let m1 = median(&new)?;
        let deviations: Vec<f64> = old.iter().map(|v| (v - m0).abs()).collect();
        let sigma = MAD_TO_SIGMA * median(&deviations)?;
        let shift = m1 - m0;
        if shift.abs() < self.config.min_change.max(K * sigma) {
            return None;
        }
        let mid = m0 + shift / 2.0;
        let held = new
            .iter()
            .filter(|&&v| (v - mid) * shift.signum() > 0.0)
            .count();
        (held as f64 >= HOLD_SHARE * new.len() as f64).then_some(Step {
            first_ts: Timestamp(first_after),
            before: m0,
            after: m1,
        })
    }
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Median of a non-empty slice (NaN-free input); `None` when empty.
fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldaisle_core::EventState;
    use std::time::Duration;

    const MIN_MS: i64 = 60_000;

    fn detector() -> StepDetector {
        StepDetector::new(StepSettings {
            min_change: 1.0,
            min_duration: Duration::from_secs(30 * 60),
            reference: Duration::from_secs(60 * 60),
        })
    }

    /// Feeds one sample a minute from minute 0 with `level(minute)`; returns the transitions.
    fn run(d: &mut StepDetector, minutes: i64, level: impl Fn(i64) -> f64) -> Vec<Transition> {
        (0..minutes)
            .filter_map(|m| d.observe(Timestamp(m * MIN_MS), level(m)))
            .collect()
    }

    /// A little deterministic noise (±0.15 kW).
    fn noise(m: i64) -> f64 {
        ((m * 37 % 7) as f64 - 3.0) * 0.05
    }

    #[test]
    fn a_sustained_step_raises_once_with_both_levels_then_clears() {
        let mut d = detector();
        let out = run(&mut d, 300, |m| {
            if m >= 120 {
                6.0 + noise(m)
            } else {
                4.0 + noise(m)
            }
        });
        assert_eq!(out.len(), 2, "{out:?}");
        let (raise, clear) = (&out[0], &out[1]);
        assert_eq!(raise.state, EventState::Raised);
        assert_eq!(clear.state, EventState::Cleared);
        assert!(
            (raise.value - 6.0).abs() < 0.2,
            "after level {}",
            raise.value
        );
        let before = raise.limit.expect("before level");
        assert!((before - 4.0).abs() < 0.2, "before level {before}");
        let at = raise.ts.millis() / MIN_MS;
        assert!((145..=150).contains(&at), "reported at minute {at}");
        assert!(raise.first_ts.millis() / MIN_MS <= 120 + 1);
        assert_eq!(clear.ts.millis(), raise.ts.millis() + MIN_MS);
        assert_eq!((clear.value, clear.limit), (raise.value, raise.limit));
    }

    #[test]
    fn a_step_down_is_reported_too() {
        let mut d = detector();
        let out = run(&mut d, 240, |m| if m >= 100 { 3.0 } else { 5.5 });
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!((out[0].value, out[0].limit), (3.0, Some(5.5)));
    }

    #[test]
    fn a_short_spike_or_a_small_shift_raises_nothing() {
        let mut spike = detector();
        let out = run(&mut spike, 300, |m| {
            if (120..125).contains(&m) {
                9.0
            } else {
                4.0 + noise(m)
            }
        });
        assert!(out.is_empty(), "5-minute spike: {out:?}");
        let mut small = detector();
        let out = run(&mut small, 300, |m| if m >= 120 { 4.6 } else { 4.0 });
        assert!(out.is_empty(), "below min_change: {out:?}");
        let mut half = detector();
        let out = run(&mut half, 300, |m| {
            if (120..134).contains(&m) {
                7.0
            } else {
                4.0
            }
        });
        assert!(out.is_empty(), "14 minutes is not sustained: {out:?}");
    }

    #[test]
    fn a_shift_inside_the_old_noise_is_not_a_step() {
        // Noise of ±2 kW around 4 kW: a 1.2 kW shift is inside it.
        let mut d = detector();
        let out = run(&mut d, 300, |m| {
            let n = if m % 2 == 0 { 2.0 } else { -2.0 };
            if m >= 120 {
                5.2 + n
            } else {
                4.0 + n
            }
        });
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_gap_delays_judgement_instead_of_comparing_across_it() {
        let mut d = detector();
        // Ten minutes of data, a three-hour gap, then a new level: no reference to compare.
        let mut out = run(&mut d, 10, |_| 4.0);
        for m in 190..215 {
            out.extend(d.observe(Timestamp(m * MIN_MS), 7.0));
        }
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn two_steps_are_two_events_and_state_survives_a_restart() {
        let mut d = detector();
        let mut out = run(&mut d, 200, |m| if m >= 100 { 6.0 } else { 4.0 });
        let stored = serde_json::to_value(&d.state).expect("serialise");
        let mut restarted = detector();
        restarted.state = serde_json::from_value(stored).expect("restore");
        for m in 200..400 {
            out.extend(restarted.observe(Timestamp(m * MIN_MS), if m >= 280 { 8.5 } else { 6.0 }));
        }
        let raises: Vec<_> = out
            .iter()
            .filter(|t| t.state == EventState::Raised)
            .map(|t| (t.limit, t.value))
            .collect();
        assert_eq!(raises, vec![(Some(4.0), 6.0), (Some(6.0), 8.5)]);
    }

    #[test]
    fn fast_polling_is_judged_once_a_minute_and_still_finds_the_step() {
        let mut d = detector();
        let mut out = Vec::new();
        // One sample a second for 3 hours, +2 kW from 02:00.
        for s in 0..3 * 3600 {
            let v = if s >= 2 * 3600 { 6.0 } else { 4.0 };
            out.extend(d.observe(Timestamp(s * 1000), v));
        }
        assert_eq!(out.len(), 2, "{out:?}");
        let at = out[0].ts.millis() / 1000 - 2 * 3600;
        // 90 % of the 30-minute window (27 min) plus at most one minute of throttling.
        assert!(
            (27 * 60..=28 * 60 + 1).contains(&at),
            "reported {at} s after the step"
        );
        assert_eq!((out[0].limit, out[0].value), (Some(4.0), 6.0));
    }

    #[test]
    fn out_of_order_and_non_finite_samples_are_ignored() {
        let mut d = detector();
        assert!(d.observe(Timestamp(10 * MIN_MS), 4.0).is_none());
        assert!(d.observe(Timestamp(5 * MIN_MS), 9.0).is_none());
        assert!(d.observe(Timestamp(11 * MIN_MS), f64::NAN).is_none());
        assert_eq!(d.state.samples.len(), 1);
    }
}
