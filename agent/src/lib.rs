//! The coldaisle agent: polls SNMP and Modbus devices, normalises readings to located sensors,
//! detects anomalies, correlates them per zone and forwards events through a durable outbox
//! over MQTT.
//!
//! Pure parts (no I/O, time passed in): [`detect`], [`correlate`], [`pipeline`],
//! [`snmp::value`], register decoding in `coldaisle_core::registers`. I/O parts: [`poller`]
//! and the protocol pollers, [`outbox`] (storage), [`publisher`] (MQTT), [`daemon`] (wiring).

pub mod correlate;
pub mod daemon;
pub mod detect;
pub mod detector_state;
pub mod devices;
pub mod instance;
pub mod metrics_http;
pub mod modbus;
pub mod outbox;
pub mod outbox_retry;
pub mod pipeline;
pub mod poll_metrics;
pub mod poller;
pub mod publisher;
pub mod reload;
pub mod replay;
pub mod service;
pub mod snmp;
pub mod status;
pub mod traps;

pub use daemon::RunningAgent;
