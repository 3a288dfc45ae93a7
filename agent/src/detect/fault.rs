//! Impossible values and stale sensors: sensor faults (category `device`), never thermal.
//!
//! - [`ImpossibleValue`]: a raw value that is a vendor sentinel (-999, 0x7FFF, ...), a
//!   normalised value outside the physically possible range, or not a number. The sample is
//!   not given to any other detector. Clears after 3 valid samples in a row (a sensor that
//!   alternates does not flap).
//! - [`Stale`]: no reading at all for `after` while the device answers (the point keeps
//!   failing). Clears on the next reading.

use super::Transition;
use coldaisle_core::Timestamp;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Valid samples in a row before an impossible-value event clears.
const CLEAR_AFTER_VALID: u32 = 3;

/// State of [`ImpossibleValue`] (stored across restarts).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImpossibleState {
    /// When the open raise began.
    raised_since: Option<Timestamp>,
    /// Valid samples since the last invalid one.
    valid_run: u32,
}

/// The impossible-value detector of one sensor.
#[derive(Debug, Clone)]
pub struct ImpossibleValue {
    range: (f64, f64),
    /// Shared with every sensor of the kind (issue 18).
    sentinels: Arc<[f64]>,
    /// Current state.
    pub state: ImpossibleState,
}

impl ImpossibleValue {
    /// A detector for the physically possible `range` and raw `sentinels`.
    pub fn new(range: (f64, f64), sentinels: impl Into<Arc<[f64]>>) -> Self {
        ImpossibleValue {
            range,
            sentinels: sentinels.into(),
            state: ImpossibleState::default(),
        }
    }

    /// The raw sentinels (shared by every sensor of the kind).
    pub fn sentinels(&self) -> &[f64] {
        &self.sentinels
    }

    /// Whether a sample is possible; and the limit it broke if not.
    pub fn check(&self, raw: f64, value: f64) -> Result<(), Option<f64>> {
        if !value.is_finite() || self.sentinels.contains(&raw) {
            Err(None)
        } else if value < self.range.0 {
            Err(Some(self.range.0))
        } else if value > self.range.1 {
            Err(Some(self.range.1))
        } else {
            Ok(())
        }
    }

    /// Feeds one sample; returns whether it is valid, and a transition if any.
    pub fn observe(&mut self, ts: Timestamp, raw: f64, value: f64) -> (bool, Option<Transition>) {
        let shown = if value.is_finite() { value } else { raw };
        match self.check(raw, value) {
            Err(limit) => {
                self.state.valid_run = 0;
                if self.state.raised_since.is_some() {
                    return (false, None);
                }
                self.state.raised_since = Some(ts);
                (false, Some(Transition::raised(shown, limit, ts, ts)))
            }
            Ok(()) => {
                let Some(since) = self.state.raised_since else {
                    return (true, None);
                };
                self.state.valid_run += 1;
                if self.state.valid_run < CLEAR_AFTER_VALID {
                    return (true, None);
                }
                self.state.raised_since = None;
                (true, Some(Transition::cleared(value, None, since, ts)))
            }
        }
    }
}

/// State of [`Stale`] (stored across restarts).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StaleState {
    /// Last reading (or the first poll, before any reading).
    last_reading: Option<Timestamp>,
    /// Whether the raise is open.
    raised: bool,
}

/// The stale detector of one sensor.
#[derive(Debug, Clone)]
pub struct Stale {
    after: Duration,
    /// Current state.
    pub state: StaleState,
}

impl Stale {
    /// A detector that raises after `after` without a reading.
    pub fn new(after: Duration) -> Self {
        Stale {
            after,
            state: StaleState::default(),
        }
    }

    /// Records a poll of the sensor's device: `read` is whether the point gave a value.
    pub fn observe(&mut self, ts: Timestamp, read: bool, value: f64) -> Option<Transition> {
        let last = *self.state.last_reading.get_or_insert(ts);
        if read {
            self.state.last_reading = Some(ts);
            if self.state.raised {
                self.state.raised = false;
                return Some(Transition::cleared(value, None, last, ts));
            }
            return None;
        }
        if !self.state.raised && ts.since(last) >= self.after {
            self.state.raised = true;
            return Some(Transition::raised(f64::NAN, None, last, ts));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldaisle_core::EventState;

    #[test]
    fn sentinels_and_out_of_range_raise_once_and_clear_after_valid_run() {
        let mut d = ImpossibleValue::new((-40.0, 85.0), vec![-999.0, 32767.0]);
        let samples = [
            (22.0, 22.0),
            (32767.0, 3276.7),
            (-999.0, -99.9),
            (22.0, 22.0),
            (150.0, 150.0),
            (22.0, 22.0),
            (22.1, 22.1),
            (22.0, 22.0),
        ];
        let mut out = Vec::new();
        for (i, (raw, v)) in samples.iter().enumerate() {
            let (valid, t) = d.observe(Timestamp(i as i64), *raw, *v);
            assert_eq!(valid, (-40.0..=85.0).contains(v), "sample {i}");
            out.extend(t.map(|t| (i, t.state)));
        }
        assert_eq!(out, vec![(1, EventState::Raised), (7, EventState::Cleared)]);
        assert_eq!(d.check(1.0, f64::NAN), Err(None));
    }

    #[test]
    fn stale_after_no_reading() {
        let mut d = Stale::new(Duration::from_secs(60));
        let polls = [
            (0, true),
            (30, false),
            (60, false),
            (90, false),
            (120, true),
        ];
        let out: Vec<_> = polls
            .iter()
            .filter_map(|&(s, ok)| {
                d.observe(Timestamp(s * 1000), ok, 1.0)
                    .map(|t| (s, t.state))
            })
            .collect();
        assert_eq!(
            out,
            vec![(60, EventState::Raised), (120, EventState::Cleared)]
        );
    }
}
