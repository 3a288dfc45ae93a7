//! Fixed limits with hysteresis and minimum duration: one detector per level (warning,
//! critical), each with an optional high and low limit.
//!
//! Raise when the value has stayed beyond a limit for at least `min_duration`; clear when it is
//! back inside by `hysteresis` (below `high - hysteresis`, above `low + hysteresis`). Values
//! inside the hysteresis band never change the state, so noise around a limit cannot make the
//! detector flap.

use super::Transition;
use coldaisle_config::detection::LimitLevel;
use coldaisle_core::Timestamp;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Which limit was crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Side {
    /// Above `high`.
    High,
    /// Below `low`.
    Low,
}

/// The detector's state (stored across restarts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub enum ThresholdState {
    /// Inside the limits (or cleared).
    #[default]
    Normal,
    /// Beyond a limit since `since`, not yet for `min_duration`.
    Pending {
        /// First sample beyond the limit.
        since: Timestamp,
        /// Which limit.
        side: Side,
    },
    /// Raised; the condition began at `since`.
    Raised {
        /// First sample beyond the limit.
        since: Timestamp,
        /// Which limit.
        side: Side,
    },
}

/// One level's threshold detector.
#[derive(Debug, Clone)]
pub struct ThresholdDetector {
    /// Shared with every sensor whose level is the same (issue 18).
    config: Arc<LimitLevel>,
    /// Current state.
    pub state: ThresholdState,
}

impl ThresholdDetector {
    /// A detector in the normal state.
    pub fn new(config: impl Into<LimitLevel>) -> Self {
        ThresholdDetector {
            config: Arc::new(config.into()),
            state: ThresholdState::Normal,
        }
    }

    /// A detector in the normal state holding `config` shared, not copied.
    pub fn shared(config: Arc<LimitLevel>) -> Self {
        ThresholdDetector {
            config,
            state: ThresholdState::Normal,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LimitLevel {
        &self.config
    }

    /// True while raised.
    pub fn is_raised(&self) -> bool {
        matches!(self.state, ThresholdState::Raised { .. })
    }

    fn crossing(&self, value: f64) -> Option<Side> {
        if self.config.high.is_some_and(|h| value > h) {
            Some(Side::High)
        } else if self.config.low.is_some_and(|l| value < l) {
            Some(Side::Low)
        } else {
            None
        }
    }

    fn limit(&self, side: Side) -> Option<f64> {
        match side {
            Side::High => self.config.high,
            Side::Low => self.config.low,
        }
    }

    /// Feeds one sample (samples arrive in time order per sensor).
    pub fn observe(&mut self, ts: Timestamp, value: f64) -> Option<Transition> {
        match self.state {
            ThresholdState::Normal | ThresholdState::Pending { .. } => {
                let Some(side) = self.crossing(value) else {
                    self.state = ThresholdState::Normal;
                    return None;
                };
                let since = match self.state {
                    ThresholdState::Pending { since, side: s } if s == side => since,
                    _ => ts,
                };
                if ts.since(since) < self.config.min_duration {
                    self.state = ThresholdState::Pending { since, side };
                    return None;
                }
                self.state = ThresholdState::Raised { since, side };
                Some(Transition::raised(value, self.limit(side), since, ts))
            }
            ThresholdState::Raised { since, side } => {
                let h = self.config.hysteresis;
                let clear_at = self.limit(side).map(|l| match side {
                    Side::High => l - h,
                    Side::Low => l + h,
                });
                let back = match (side, clear_at) {
                    (Side::High, Some(c)) => value < c,
                    (Side::Low, Some(c)) => value > c,
                    (_, None) => true,
                };
                if !back {
                    return None;
                }
                self.state = ThresholdState::Normal;
                Some(Transition::cleared(value, clear_at, since, ts))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldaisle_config::Threshold;
    use coldaisle_core::{EventState, Severity};
    use proptest::prelude::*;
    use std::time::Duration;

    fn detector(min_secs: u64) -> ThresholdDetector {
        ThresholdDetector::new(Threshold {
            high: 27.0,
            hysteresis: 1.0,
            min_duration: Duration::from_secs(min_secs),
            severity: Severity::Warning,
        })
    }

    fn feed(d: &mut ThresholdDetector, samples: &[(i64, f64)]) -> Vec<(i64, EventState)> {
        samples
            .iter()
            .filter_map(|&(s, v)| d.observe(Timestamp(s * 1000), v).map(|t| (s, t.state)))
            .collect()
    }

    #[test]
    fn raises_after_min_duration_and_clears_below_hysteresis() {
        let mut d = detector(60);
        let out = feed(
            &mut d,
            &[
                (0, 26.0),
                (10, 28.0),
                (40, 28.5),
                (70, 28.1),
                (80, 26.5),
                (90, 25.9),
            ],
        );
        assert_eq!(
            out,
            vec![(70, EventState::Raised), (90, EventState::Cleared)]
        );
    }

    #[test]
    fn short_excursion_does_not_raise() {
        let mut d = detector(60);
        let out = feed(
            &mut d,
            &[(0, 28.0), (30, 29.0), (50, 26.0), (70, 28.0), (100, 28.0)],
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn raise_reports_first_crossing_time() {
        let mut d = detector(60);
        let t = [(0, 28.0), (60, 29.0)]
            .iter()
            .find_map(|&(s, v)| d.observe(Timestamp(s * 1000), v))
            .expect("raised");
        assert_eq!(
            (t.first_ts, t.ts, t.limit),
            (Timestamp(0), Timestamp(60_000), Some(27.0))
        );
    }

    #[test]
    fn low_limit_raises_and_clears_above_low_plus_hysteresis() {
        let mut d = ThresholdDetector::new(LimitLevel {
            severity: Severity::Warning,
            high: Some(27.0),
            low: Some(18.0),
            hysteresis: 1.0,
            min_duration: Duration::ZERO,
        });
        let out = feed(&mut d, &[(0, 20.0), (1, 17.5), (2, 18.5), (3, 19.1)]);
        assert_eq!(out, vec![(1, EventState::Raised), (3, EventState::Cleared)]);
    }

    #[test]
    fn noise_inside_the_band_never_flaps() {
        // A deterministic pseudo-random walk inside [high - hysteresis, high + 3]: after the
        // first raise, no sample is below the clear level, so nothing else may happen.
        let mut d = detector(0);
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut transitions = 0;
        for i in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let noise = (x % 4000) as f64 / 1000.0; // 0.0 ..< 4.0
            let value = 26.0 + noise; // 26.0 ..< 30.0, clear level is 26.0 (exclusive)
            if d.observe(Timestamp(i * 1000), value).is_some() {
                transitions += 1;
            }
        }
        assert_eq!(transitions, 1, "only the first raise");
        assert!(d.is_raised());
    }

    proptest! {
        /// Once raised, any noise that stays inside [high - hysteresis, ∞) never clears, and
        /// transitions always alternate raise/clear.
        #[test]
        fn hysteresis_never_flaps_and_transitions_alternate(
            noise in proptest::collection::vec(0.0f64..1.0, 1..300),
            level in 26.0f64..40.0,
            hyst in 0.1f64..3.0,
        ) {
            let mut d = ThresholdDetector::new(LimitLevel {
                severity: Severity::Warning,
                high: Some(27.0),
                low: None,
                hysteresis: hyst,
                min_duration: Duration::ZERO,
            });
            d.observe(Timestamp(0), 30.0);
            prop_assert!(d.is_raised());
            let floor = (27.0 - hyst).max(level - hyst);
            for (i, n) in noise.iter().enumerate() {
                let v = floor + n * hyst;
                prop_assert!(d.observe(Timestamp(1 + i as i64), v).is_none());
            }
            // and alternation on arbitrary input
            let mut last = EventState::Raised;
            for (i, n) in noise.iter().enumerate() {
                if let Some(t) = d.observe(Timestamp(10_000 + i as i64), 20.0 + n * 15.0) {
                    prop_assert_ne!(t.state, last);
                    last = t.state;
                }
            }
        }
    }
}
