//! Helpers of the end-to-end tests (shared with the chaos runner: `coldaisle_testkit::procs`).

pub use coldaisle_testkit::procs::*;
