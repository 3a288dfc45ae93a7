//! The coldaisle collector: ingests agents' events idempotently, keeps incidents with their
//! timelines, turns recurring zone incidents into problem records and serves zone reports.
//!
//! Pure parts (no I/O, time passed in): [`incidents`], [`problems`], [`analysis`], [`report`],
//! [`render`]. I/O parts: [`store`] (durable records), [`ingest`] (MQTT messages → store → ack),
//! [`http`] (API), [`daemon`] (wiring).

pub mod analysis;
pub mod daemon;
pub mod http;
pub mod incidents;
pub mod ingest;
pub mod problems;
pub mod render;
pub mod report;
pub mod state;
pub mod store;

pub use daemon::RunningCollector;
