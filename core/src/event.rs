//! The event model of `shared/DESIGN.md`: sensor events, zone events, device events and reading
//! summaries. These are what agents send and the collector stores.

use crate::location::{Category, Location, SensorKind};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// How serious an event is. Ordered: `Info < Warning < Critical`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth recording, not worth waking anyone.
    Info,
    /// Needs attention during working hours.
    #[default]
    Warning,
    /// Needs attention now.
    Critical,
}

impl Severity {
    /// The snake_case name used in configuration and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Whether a condition started or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventState {
    /// The condition started.
    Raised,
    /// The condition ended.
    Cleared,
}

/// A detector raised or cleared a condition on one sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorEvent {
    /// Sensor id, unique within its site.
    pub sensor: String,
    /// What the sensor measures.
    pub kind: SensorKind,
    /// Where the sensor is.
    pub location: Location,
    /// Category (derived from the kind, or `device` for sensor faults).
    pub category: Category,
    /// Detector that fired, e.g. `threshold`.
    pub detector: String,
    /// Raised or cleared.
    pub state: EventState,
    /// Severity of the condition.
    pub severity: Severity,
    /// Value of the sample that caused the transition (normalised unit).
    pub value: f64,
    /// The limit the value was compared with, if the detector has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<f64>,
    /// Time of the first sample of the condition (for a raise: when it first crossed).
    pub first_ts: Timestamp,
    /// Time of the sample that caused this transition: the event's time.
    pub ts: Timestamp,
}

/// One sensor's contribution to a zone event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Sensor id.
    pub sensor: String,
    /// Rack of the sensor, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    /// Value when the sensor raised.
    pub value: f64,
    /// When the sensor raised.
    pub ts: Timestamp,
}

/// The agent's local correlation: several sensors of one zone and category raised together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneEvent {
    /// Site of the zone.
    pub site: String,
    /// The zone.
    pub zone: String,
    /// Category shared by the evidence.
    pub category: Category,
    /// Raised or cleared.
    pub state: EventState,
    /// Highest severity among the evidence.
    pub severity: Severity,
    /// The sensors that made the zone event (at raise time) or that were last to clear.
    pub evidence: Vec<Evidence>,
    /// Event time: the sample that caused this transition.
    pub ts: Timestamp,
}

/// A device stopped or resumed answering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceEvent {
    /// Device id from the agent's configuration.
    pub device: String,
    /// Where the device is (zone at least).
    pub location: Location,
    /// Raised: unreachable. Cleared: answering again.
    pub state: EventState,
    /// Why the poll failed (timeout, connection refused, ...); empty when cleared.
    #[serde(default)]
    pub reason: String,
    /// Event time: when the failed (or first successful) poll started.
    pub ts: Timestamp,
}

/// Summary of one sensor's readings over an interval, sent so the collector can report
/// last/average/maximum per rack without receiving every sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadingSummary {
    /// Sensor id.
    pub sensor: String,
    /// What the sensor measures.
    pub kind: SensorKind,
    /// Where the sensor is.
    pub location: Location,
    /// Start of the interval (first sample).
    pub from: Timestamp,
    /// End of the interval (last sample).
    pub to: Timestamp,
    /// Number of good samples.
    pub count: u32,
    /// Minimum value.
    pub min: f64,
    /// Maximum value.
    pub max: f64,
    /// Sum of the values (average = sum / count), kept so summaries can be merged exactly.
    pub sum: f64,
    /// Last value of the interval.
    pub last: f64,
}

impl ReadingSummary {
    /// Mean value over the interval.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.sum / f64::from(self.count)
        }
    }
}
