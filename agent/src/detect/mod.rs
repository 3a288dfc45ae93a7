//! Detectors: pure per-sensor (or per-device) state machines with time passed in. They turn
//! samples into raise/clear transitions; they do no I/O and never read the clock.

pub mod reachability;
pub mod summary;
pub mod threshold;
