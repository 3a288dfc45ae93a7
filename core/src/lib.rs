//! Shared vocabulary of coldaisle: where a sensor is, what an event says, and how agents and the
//! collector talk over MQTT (wire contract v1 of `shared/DESIGN.md`).
//!
//! Invariant: this crate does no I/O. Everything here is plain data, (de)serialisation and small
//! pure functions, so the agent, the collector, the simulators and replays agree on one model.

pub mod event;
pub mod location;
pub mod prom_text;
pub mod registers;
pub mod time;
pub mod wire;

pub use event::{
    DeviceEvent, EventState, Evidence, ReadingSummary, SensorEvent, Severity, ZoneEvent,
    FORECAST_DETECTOR,
};
pub use location::{Category, Fingerprint, Location, SensorKind};
pub use time::Timestamp;
