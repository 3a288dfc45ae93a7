//! Threshold with hysteresis and minimum duration.
//!
//! Raise when the value has stayed above `high` for at least `min_duration`; clear when it
//! falls below `high - hysteresis`. Values inside the hysteresis band never change the state,
//! so noise around the limit cannot make the detector flap.

use coldaisle_config::Threshold;
use coldaisle_core::{EventState, Timestamp};

/// A transition produced by a detector.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// Raised or cleared.
    pub state: EventState,
    /// The sample value that caused it.
    pub value: f64,
    /// The limit it was compared with.
    pub limit: f64,
    /// When the condition began (first sample above `high`).
    pub first_ts: Timestamp,
    /// The sample that caused the transition.
    pub ts: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// At or below `high` (or cleared).
    Normal,
    /// Above `high` since `since`, not yet for `min_duration`.
    Pending { since: Timestamp },
    /// Raised; the condition began at `since`.
    Raised { since: Timestamp },
}

/// One sensor's threshold detector.
#[derive(Debug, Clone)]
pub struct ThresholdDetector {
    config: Threshold,
    state: State,
}

impl ThresholdDetector {
    /// A detector in the normal state.
    pub fn new(config: Threshold) -> Self {
        ThresholdDetector {
            config,
            state: State::Normal,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Threshold {
        &self.config
    }

    /// True while raised.
    pub fn is_raised(&self) -> bool {
        matches!(self.state, State::Raised { .. })
    }

    /// Feeds one sample (samples arrive in time order per sensor).
    pub fn observe(&mut self, ts: Timestamp, value: f64) -> Option<Transition> {
        let high = self.config.high;
        match self.state {
            State::Normal | State::Pending { .. } if value <= high => {
                self.state = State::Normal;
                None
            }
            State::Normal => {
                self.state = State::Pending { since: ts };
                self.raise_if_due(ts, value)
            }
            State::Pending { .. } => self.raise_if_due(ts, value),
            State::Raised { since } => {
                let clear_below = high - self.config.hysteresis;
                if value < clear_below {
                    self.state = State::Normal;
                    Some(Transition {
                        state: EventState::Cleared,
                        value,
                        limit: clear_below,
                        first_ts: since,
                        ts,
                    })
                } else {
                    None
                }
            }
        }
    }

    fn raise_if_due(&mut self, ts: Timestamp, value: f64) -> Option<Transition> {
        let State::Pending { since } = self.state else {
            return None;
        };
        if ts.since(since) < self.config.min_duration {
            return None;
        }
        self.state = State::Raised { since };
        Some(Transition {
            state: EventState::Raised,
            value,
            limit: self.config.high,
            first_ts: since,
            ts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldaisle_core::Severity;
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
            (Timestamp(0), Timestamp(60_000), 27.0)
        );
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
}
