//! Benchmark binaries of coldaisle (see BENCHMARKS.md for results and the commands). Each
//! binary in `src/bin/` measures one part and prints its figures; none of them asserts timings.

pub mod child;
pub mod eval;
pub mod outbox_event;
pub mod proc_self;
pub mod rollup_fixture;
pub mod store_fleet;
