//! Modbus support for the agent. Register decoding is pure and shared with the simulators, so it
//! lives in `coldaisle_core::registers`; here are the request planner (`plan`, pure), the shared
//! buses with their transports, pacing and deadlines (`bus`), and the device poller (`poll`).

pub mod bus;
pub mod plan;
pub mod poll;
