//! Device reachability: one raise when polls start failing, one clear when they succeed again.

use coldaisle_core::{EventState, Timestamp};
use serde::{Deserialize, Serialize};

/// Tracks whether a device answers (stored across restarts: an open unreachable event).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reachability {
    down_since: Option<Timestamp>,
}

impl Reachability {
    /// Records a poll outcome; returns a transition when reachability changes.
    pub fn observe(&mut self, ts: Timestamp, answered: bool) -> Option<EventState> {
        match (self.down_since, answered) {
            (None, false) => {
                self.down_since = Some(ts);
                Some(EventState::Raised)
            }
            (Some(_), true) => {
                self.down_since = None;
                Some(EventState::Cleared)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_change() {
        let mut r = Reachability::default();
        let seq: Vec<_> = [true, false, false, true, true, false]
            .iter()
            .enumerate()
            .filter_map(|(i, &ok)| r.observe(Timestamp(i as i64), ok))
            .collect();
        assert_eq!(
            seq,
            vec![EventState::Raised, EventState::Cleared, EventState::Raised]
        );
    }
}
