//! Stuck (flat-line) sensors: a value that has not moved by more than `tolerance` for `after`
//! is a sensor fault (category `device`), never a thermal event. It clears on the first
//! sample that moves.

use super::Transition;
use coldaisle_config::detection::StuckSettings;
use coldaisle_core::Timestamp;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Fewest samples of a flat run before it can count as stuck.
const MIN_SAMPLES: u32 = 5;

/// The detector's state (stored across restarts).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StuckState {
    /// Start of the flat run and its value.
    anchor: Option<(Timestamp, f64)>,
    /// Samples in the flat run.
    samples: u32,
    /// Whether the raise is open.
    raised: bool,
}

/// One sensor's stuck detector.
#[derive(Debug, Clone)]
pub struct StuckDetector {
    /// Shared with every sensor of the same settings (issue 18).
    config: Arc<StuckSettings>,
    /// Current state.
    pub state: StuckState,
}

impl StuckDetector {
    /// A detector with no history.
    pub fn new(config: impl Into<Arc<StuckSettings>>) -> Self {
        StuckDetector {
            config: config.into(),
            state: StuckState::default(),
        }
    }

    /// Feeds one valid sample.
    pub fn observe(&mut self, ts: Timestamp, value: f64) -> Option<Transition> {
        let s = &mut self.state;
        let Some((since, anchor)) = s.anchor else {
            s.anchor = Some((ts, value));
            s.samples = 1;
            return None;
        };
        if (value - anchor).abs() > self.config.tolerance {
            s.anchor = Some((ts, value));
            s.samples = 1;
            if s.raised {
                s.raised = false;
                return Some(Transition::cleared(value, None, since, ts));
            }
            return None;
        }
        s.samples = s.samples.saturating_add(1);
        if !s.raised && s.samples >= MIN_SAMPLES && ts.since(since) >= self.config.after {
            s.raised = true;
            return Some(Transition::raised(value, None, since, ts));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldaisle_core::EventState;
    use std::time::Duration;

    #[test]
    fn flat_line_raises_after_the_duration_and_clears_on_movement() {
        let mut d = StuckDetector::new(StuckSettings {
            after: Duration::from_secs(3600),
            tolerance: 0.05,
        });
        let mut out = Vec::new();
        for i in 0..200i64 {
            let v = if i < 150 {
                21.3 + (i % 2) as f64 * 0.01
            } else {
                22.0 + i as f64 * 0.1
            };
            out.extend(d.observe(Timestamp(i * 60_000), v).map(|t| (i, t.state)));
        }
        assert_eq!(
            out,
            vec![(60, EventState::Raised), (150, EventState::Cleared)]
        );
    }

    proptest::proptest! {
        /// A sensor that moves by more than the tolerance at least once per `after` is never
        /// stuck, whatever it does in between.
        #[test]
        fn moving_at_least_once_per_period_is_never_stuck(
            steps in proptest::collection::vec((1i64..59, 0.0f64..0.05, proptest::bool::ANY), 1..400),
        ) {
            let mut d = StuckDetector::new(StuckSettings {
                after: Duration::from_secs(3600),
                tolerance: 0.1,
            });
            let mut minute = 0;
            let mut base = 20.0;
            for (gap, wiggle, up) in steps {
                minute += gap; // < 60 minutes between real moves
                base += if up { 0.5 } else { -0.5 };
                proptest::prop_assert!(d.observe(Timestamp(minute * 60_000), base + wiggle).is_none());
            }
        }
    }

    #[test]
    fn a_moving_sensor_is_never_stuck() {
        let mut d = StuckDetector::new(StuckSettings {
            after: Duration::from_secs(600),
            tolerance: 0.0,
        });
        for i in 0..1000i64 {
            let v = 20.0 + ((i * 7919) % 13) as f64 / 10.0;
            let v = if i % 13 == 0 { v + 0.05 } else { v };
            assert!(d.observe(Timestamp(i * 60_000), v).is_none() || i == 0);
        }
    }
}
