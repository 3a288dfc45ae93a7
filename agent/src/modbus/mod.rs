//! Modbus support for the agent. Register decoding is pure and shared with the simulators, so it
//! lives in `coldaisle_core::registers`; the poller that talks to devices lives here.

pub mod poll;
