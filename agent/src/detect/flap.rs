//! Flap suppression for one detector of one sensor.
//!
//! A raise that comes within `window` after the same detector's forwarded clear is a *flap*:
//! it is counted and held back, and so is the clear that ends it. A held-back raise that is
//! still raised `window` after it began is forwarded then (a real condition that follows a
//! flap still gets through, at most `window` late). Outside flapping every transition passes
//! unchanged; a zero window turns suppression off. The forwarded stream always alternates
//! raise/clear.
//!
//! The window is the chain's (`flap_window`, the same for every detector of a sensor), so a
//! gate holds only its state and is given the window on each call (issue 18: one copy per
//! sensor instead of one per detector).

use super::Transition;
use coldaisle_core::{EventState, Timestamp};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The gate's state (stored across restarts).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FlapState {
    /// Whether the last forwarded transition was a raise.
    forwarded_raised: bool,
    /// Time of the last forwarded clear, or of the end of the last suppressed flap.
    last_clear: Option<Timestamp>,
    /// A raise held back: since, limit.
    held: Option<(Timestamp, Option<f64>)>,
    /// Flaps counted so far.
    pub flaps: u64,
}

/// One detector's flap gate; its window is passed in by the chain (zero: pass everything).
#[derive(Debug, Clone, Default)]
pub struct FlapGate {
    /// Current state.
    pub state: FlapState,
}

impl FlapGate {
    /// A gate that has seen nothing.
    pub fn new() -> Self {
        FlapGate::default()
    }

    /// Passes (or holds back) a detector's transition.
    pub fn filter(&mut self, t: Transition, window: Duration) -> Option<Transition> {
        let s = &mut self.state;
        match t.state {
            EventState::Raised => {
                let flapping = !window.is_zero()
                    && !s.forwarded_raised
                    && s.last_clear.is_some_and(|c| t.ts.since(c) < window);
                if flapping {
                    s.flaps += 1;
                    s.held = Some((t.first_ts, t.limit));
                    tracing::debug!(flaps = s.flaps, "flap held back");
                    return None;
                }
                s.forwarded_raised = true;
                Some(t)
            }
            EventState::Cleared => {
                if s.held.take().is_some() {
                    s.last_clear = Some(t.ts);
                    return None;
                }
                if !s.forwarded_raised {
                    return None;
                }
                s.forwarded_raised = false;
                s.last_clear = Some(t.ts);
                Some(t)
            }
        }
    }

    /// Called with every sample: forwards a held-back raise that has lasted `window`.
    pub fn tick(&mut self, ts: Timestamp, value: f64, window: Duration) -> Option<Transition> {
        let (since, limit) = self.state.held?;
        if ts.since(since) < window {
            return None;
        }
        self.state.held = None;
        self.state.forwarded_raised = true;
        Some(Transition::raised(value, limit, since, ts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(state: EventState, s: i64) -> Transition {
        Transition {
            state,
            value: 1.0,
            limit: Some(0.0),
            first_ts: Timestamp(s * 1000),
            ts: Timestamp(s * 1000),
        }
    }

    #[test]
    fn raise_clear_raise_is_counted_not_forwarded() {
        let mut g = FlapGate::new();
        let w = Duration::from_secs(600);
        use EventState::{Cleared, Raised};
        assert!(g.filter(t(Raised, 0), w).is_some());
        assert!(g.filter(t(Cleared, 100), w).is_some());
        assert!(g.filter(t(Raised, 200), w).is_none(), "flap");
        assert!(g.filter(t(Cleared, 250), w).is_none(), "its clear too");
        assert!(g.filter(t(Raised, 300), w).is_none(), "still flapping");
        assert_eq!(g.state.flaps, 2);
        // The last raise lasts a whole window: it goes out, late.
        assert!(g.tick(Timestamp(800_000), 1.0, w).is_none());
        let late = g.tick(Timestamp(900_000), 1.0, w).expect("forwarded");
        assert_eq!((late.state, late.first_ts), (Raised, Timestamp(300_000)));
        assert!(g.filter(t(Cleared, 1000), w).is_some());
        // Quiet for a window: the next raise passes at once.
        assert!(g.filter(t(Raised, 1700), w).is_some());
    }

    #[test]
    fn zero_window_passes_everything() {
        let mut g = FlapGate::new();
        for i in 0..10 {
            let state = if i % 2 == 0 {
                EventState::Raised
            } else {
                EventState::Cleared
            };
            assert!(g.filter(t(state, i), Duration::ZERO).is_some());
        }
    }

    proptest! {
        /// Whatever the detector does, the forwarded stream alternates and starts with a raise.
        #[test]
        fn forwarded_stream_alternates(gaps in proptest::collection::vec(1i64..2000, 1..60)) {
            let mut g = FlapGate::new();
            let w = Duration::from_secs(600);
            let mut now = 0;
            let mut expected = EventState::Raised;
            for (i, gap) in gaps.iter().enumerate() {
                now += gap;
                let state = if i % 2 == 0 { EventState::Raised } else { EventState::Cleared };
                let out = g.tick(Timestamp(now * 1000), 1.0, w).into_iter()
                    .chain(g.filter(t(state, now), w));
                for o in out {
                    prop_assert_eq!(o.state, expected);
                    expected = if expected == EventState::Raised { EventState::Cleared } else { EventState::Raised };
                }
            }
        }
    }
}
