//! The coldaisle collector: ingests agents' events idempotently, keeps incidents with their
//! timelines, turns recurring zone incidents into problem records and serves zone reports.
//!
//! Pure parts (no I/O, time passed in): [`incidents`], [`problems`], [`analysis`], [`report`],
//! [`render`]. I/O parts: [`store`] (durable records), [`ingest`] (MQTT messages → store → ack),
//! [`http`] (API), [`daemon`] (wiring).

pub mod acl;
pub mod action_log;
pub mod actions;
pub mod analysis;
pub mod api_tls;
pub mod auth;
pub mod cause;
pub mod checkpoint;
pub mod chronicle;
pub mod cluster;
pub mod cooling_cause;
pub mod daemon;
pub mod dashboard;
pub mod fix_figures;
pub mod history_api;
pub mod http;
pub mod identity;
pub mod incidents;
pub mod ingest;
pub mod metrics;
pub mod migrate;
pub mod model;
pub mod notifier;
pub mod notify_plan;
pub mod openapi;
pub mod operator_api;
pub mod pager_tls;
pub mod pagers;
pub mod postmortem;
pub mod problem_text;
pub mod problems;
pub mod prom;
pub mod recurrence;
pub mod refusal;
pub mod render;
pub mod report;
pub mod retention;
pub mod rollup;
pub mod rollup_store;
pub mod rules_reload;
pub mod service;
pub mod silence;
pub mod start_up;
pub mod state;
pub mod store;
pub mod store_backend;
pub mod stream_rebuild;
pub mod tree_sizes;
pub mod trust;
pub mod verification;

#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod pager_tests;
#[cfg(test)]
mod story_tests;

pub use daemon::RunningCollector;
