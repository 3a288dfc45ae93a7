//! Detectors: pure per-sensor (or per-device) state machines with time passed in. They turn
//! samples into raise/clear transitions; they do no I/O and never read the clock.
//!
//! Every detector keeps its settings apart from its state; the state is serde-serialisable so
//! the pipeline can store it ([`crate::detector_state`]) and restore it after a restart.

pub mod band;
pub mod baseline;
pub mod chain;
pub mod derived;
pub mod fault;
pub mod flap;
pub mod forecast;
pub mod likelihood;
pub mod rate;
pub mod reachability;
#[cfg(test)]
mod scenarios;
pub mod step;
pub mod stuck;
pub mod summary;
pub mod threshold;

use coldaisle_core::{EventState, Timestamp};

/// A transition produced by a detector.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// Raised or cleared.
    pub state: EventState,
    /// The value that caused it (for rate detectors: the change within the window).
    pub value: f64,
    /// The limit it was compared with, if the detector has one.
    pub limit: Option<f64>,
    /// When the condition began.
    pub first_ts: Timestamp,
    /// The sample that caused the transition.
    pub ts: Timestamp,
}

impl Transition {
    /// A raise.
    pub fn raised(value: f64, limit: Option<f64>, first_ts: Timestamp, ts: Timestamp) -> Self {
        Transition {
            state: EventState::Raised,
            value,
            limit,
            first_ts,
            ts,
        }
    }

    /// A clear.
    pub fn cleared(value: f64, limit: Option<f64>, first_ts: Timestamp, ts: Timestamp) -> Self {
        Transition {
            state: EventState::Cleared,
            value,
            limit,
            first_ts,
            ts,
        }
    }
}
