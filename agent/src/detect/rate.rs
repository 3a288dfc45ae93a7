//! Rate of change: at most `max_change` within any `window` (ASHRAE: 5 °C in 15 minutes,
//! 20 °C in an hour).
//!
//! Method: samples first pass a median-of-3 filter (one glitch sample cannot fire the
//! detector); the filtered value is compared with the minimum and maximum of the last `window`
//! (monotonic deques, O(1) amortised per sample). The event's `value` is the change found,
//! its `limit` the allowed change. A rate is only judged once the sensor has been observed
//! without a gap longer than `window` for a whole window, so start-up and the first samples
//! after an outage never page. It clears when the change within the window is back below
//! 80 % of the limit.

use super::Transition;
use coldaisle_config::detection::RateLimit;
use coldaisle_core::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;

/// Share of the limit the change must fall below to clear.
const CLEAR_RATIO: f64 = 0.8;

/// The detector's state (stored across restarts).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RateState {
    /// Last up to 3 raw samples (median filter).
    recent: VecDeque<f64>,
    /// Start of the current gap-free observation.
    observed_since: Option<Timestamp>,
    /// Previous sample time.
    last_ts: Option<Timestamp>,
    /// Candidates for the window's minimum (increasing values).
    min_q: VecDeque<(Timestamp, f64)>,
    /// Candidates for the window's maximum (decreasing values).
    max_q: VecDeque<(Timestamp, f64)>,
    /// When the open raise began.
    raised_since: Option<Timestamp>,
}

/// One window's rate-of-change detector.
#[derive(Debug, Clone)]
pub struct RateDetector {
    /// Shared with every sensor of the same settings (issue 18).
    config: Arc<RateLimit>,
    /// Current state.
    pub state: RateState,
}

impl RateDetector {
    /// A detector with no history.
    pub fn new(config: impl Into<Arc<RateLimit>>) -> Self {
        RateDetector {
            config: config.into(),
            state: RateState::default(),
        }
    }

    /// The detector's name, e.g. `rate_of_change_15m`.
    pub fn name(&self) -> String {
        format!(
            "rate_of_change_{}",
            humantime::format_duration(self.config.window)
        )
    }

    /// The window the change is judged over.
    pub fn window(&self) -> std::time::Duration {
        self.config.window
    }

    /// Feeds one sample (time order per sensor).
    pub fn observe(&mut self, ts: Timestamp, value: f64) -> Option<Transition> {
        let window = self.config.window;
        let s = &mut self.state;
        if s.last_ts.is_none_or(|last| ts.since(last) > window) {
            s.observed_since = Some(ts);
            s.min_q.clear();
            s.max_q.clear();
            s.recent.clear();
        }
        s.last_ts = Some(ts);
        s.recent.push_back(value);
        if s.recent.len() > 3 {
            s.recent.pop_front();
        }
        if s.recent.len() < 3 {
            return None;
        }
        let filtered = median3(s.recent[0], s.recent[1], s.recent[2]);
        let oldest = ts.minus(window);
        while s.min_q.back().is_some_and(|&(_, v)| v >= filtered) {
            s.min_q.pop_back();
        }
        s.min_q.push_back((ts, filtered));
        while s.max_q.back().is_some_and(|&(_, v)| v <= filtered) {
            s.max_q.pop_back();
        }
        s.max_q.push_back((ts, filtered));
        while s.min_q.front().is_some_and(|&(t, _)| t < oldest) {
            s.min_q.pop_front();
        }
        while s.max_q.front().is_some_and(|&(t, _)| t < oldest) {
            s.max_q.pop_front();
        }
        let lo = s.min_q.front().map_or(filtered, |&(_, v)| v);
        let hi = s.max_q.front().map_or(filtered, |&(_, v)| v);
        let change = (filtered - lo).max(hi - filtered);
        let limit = self.config.max_change;
        match s.raised_since {
            None => {
                let judged = s.observed_since.is_some_and(|o| ts.since(o) >= window);
                if judged && change > limit {
                    // The condition began at the older end of the change.
                    let since = if filtered - lo >= hi - filtered {
                        s.min_q.front().map_or(ts, |&(t, _)| t)
                    } else {
                        s.max_q.front().map_or(ts, |&(t, _)| t)
                    };
                    s.raised_since = Some(since);
                    return Some(Transition::raised(change, Some(limit), since, ts));
                }
                None
            }
            Some(since) => {
                if change < limit * CLEAR_RATIO {
                    s.raised_since = None;
                    return Some(Transition::cleared(
                        change,
                        Some(limit * CLEAR_RATIO),
                        since,
                        ts,
                    ));
                }
                None
            }
        }
    }
}

fn median3(a: f64, b: f64, c: f64) -> f64 {
    a.max(b).min(a.min(b).max(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldaisle_core::EventState;
    use proptest::prelude::*;
    use std::time::Duration;

    fn detector() -> RateDetector {
        RateDetector::new(RateLimit {
            window: Duration::from_secs(900),
            max_change: 5.0,
        })
    }

    /// Feeds one sample per minute; returns (minute, state, value).
    fn feed(d: &mut RateDetector, values: &[f64]) -> Vec<(usize, EventState, f64)> {
        values
            .iter()
            .enumerate()
            .filter_map(|(i, &v)| {
                d.observe(Timestamp(i as i64 * 60_000), v)
                    .map(|t| (i, t.state, t.value))
            })
            .collect()
    }

    #[test]
    fn median3_is_the_middle() {
        assert_eq!(median3(1.0, 5.0, 3.0), 3.0);
        assert_eq!(median3(5.0, 1.0, 3.0), 3.0);
        assert_eq!(median3(3.0, 3.0, 9.0), 3.0);
    }

    #[test]
    fn fast_rise_raises_and_clears_once_the_window_has_passed() {
        let mut d = detector();
        let mut v = vec![22.0; 20];
        v.extend((0..6).map(|i| 23.0 + f64::from(i))); // +6 °C in 6 minutes
        v.extend(vec![28.0; 30]);
        let out = feed(&mut d, &v);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].1, EventState::Raised);
        assert!(out[0].2 > 5.0);
        assert_eq!(out[1].1, EventState::Cleared);
        assert!(out[1].0 > 25 + 10, "clears when the rise leaves the window");
        assert_eq!(d.name(), "rate_of_change_15m");
    }

    #[test]
    fn single_glitch_does_not_raise() {
        let mut d = detector();
        let mut v = vec![22.0; 60];
        v[40] = 45.0;
        assert!(feed(&mut d, &v).is_empty());
    }

    #[test]
    fn nothing_is_judged_before_a_whole_window_of_observation() {
        let mut d = detector();
        // A step right at start-up and again after an outage longer than the window.
        let mut v = vec![10.0, 10.0, 30.0, 30.0, 30.0];
        v.extend(vec![30.0; 9]);
        assert!(feed(&mut d, &v).is_empty());
        let after_gap: Vec<_> = [5.0, 5.0, 25.0, 25.0, 25.0]
            .iter()
            .enumerate()
            .filter_map(|(i, &x)| d.observe(Timestamp((100 + i as i64) * 60_000), x))
            .collect();
        assert!(after_gap.is_empty());
    }

    proptest! {
        /// Slow changes (less than the limit per window) never raise, whatever the noise
        /// inside ±0.5.
        #[test]
        fn slow_drift_never_raises(
            slope in -0.2f64..0.2, // °C per minute → at most 3 °C per 15 min
            noise in proptest::collection::vec(-0.5f64..0.5, 60..400),
        ) {
            let mut d = detector();
            for (i, n) in noise.iter().enumerate() {
                let v = 22.0 + slope * i as f64 + n;
                prop_assert!(d.observe(Timestamp(i as i64 * 60_000), v).is_none());
            }
        }
    }
}
