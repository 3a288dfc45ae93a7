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
    /// For a [`FORECAST_DETECTOR`] event: when the sensor's trend is expected to reach
    /// `limit`. Optional on the wire (absent for every other detector), so agents and
    /// collectors older than this field read and write events the same as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_crossing: Option<Timestamp>,
}

/// Detector name of a predictive warning: the trend of the sensor reaches its limit within a
/// horizon ([`SensorEvent::expected_crossing`]). A forecast is a warning about the future, not
/// a condition: the collector stores and reports it but never opens an incident or pages for
/// it.
pub const FORECAST_DETECTOR: &str = "forecast";

impl SensorEvent {
    /// Whether this is a predictive warning ([`FORECAST_DETECTOR`]) rather than a condition.
    pub fn is_forecast(&self) -> bool {
        self.detector == FORECAST_DETECTOR
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::location::Location;

    fn event(expected_crossing: Option<Timestamp>) -> SensorEvent {
        SensorEvent {
            sensor: "z1-r01-inlet".into(),
            kind: SensorKind::InletTemp,
            location: Location {
                site: "s".into(),
                zone: "z1".into(),
                row: None,
                rack: Some("r01".into()),
            },
            category: Category::Thermal,
            detector: FORECAST_DETECTOR.into(),
            state: EventState::Raised,
            severity: Severity::Warning,
            value: 25.0,
            limit: Some(27.0),
            first_ts: Timestamp(1_000),
            ts: Timestamp(1_000),
            expected_crossing,
        }
    }

    /// The event as an agent without `expected_crossing` writes and reads it.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct OldSensorEvent {
        sensor: String,
        kind: SensorKind,
        location: Location,
        category: Category,
        detector: String,
        state: EventState,
        severity: Severity,
        value: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<f64>,
        first_ts: Timestamp,
        ts: Timestamp,
    }

    #[test]
    fn an_old_agents_event_decodes_without_an_expected_crossing() {
        let old = serde_json::to_value(OldSensorEvent {
            sensor: "a".into(),
            kind: SensorKind::InletTemp,
            location: event(None).location,
            category: Category::Thermal,
            detector: "threshold".into(),
            state: EventState::Raised,
            severity: Severity::Warning,
            value: 28.0,
            limit: Some(27.0),
            first_ts: Timestamp(5),
            ts: Timestamp(6),
        })
        .expect("encode");
        let new: SensorEvent = serde_json::from_value(old).expect("decode");
        assert_eq!(new.expected_crossing, None);
        assert!(!new.is_forecast());
        assert_eq!(new.value, 28.0);
    }

    #[test]
    fn an_event_without_a_crossing_is_written_as_before() {
        // An old reader that refuses unknown fields still reads it: the field is left out.
        let json = serde_json::to_value(event(None)).expect("encode");
        assert!(json.get("expected_crossing").is_none(), "{json}");
        let old: OldSensorEvent = serde_json::from_value(json).expect("old reader");
        assert_eq!(old.detector, FORECAST_DETECTOR);
    }

    #[test]
    fn a_forecast_round_trips_with_its_crossing() {
        let e = event(Some(Timestamp(1_800_000)));
        let json = serde_json::to_value(&e).expect("encode");
        assert_eq!(json["expected_crossing"], serde_json::json!(1_800_000));
        let back: SensorEvent = serde_json::from_value(json).expect("decode");
        assert_eq!(back, e);
        assert!(back.is_forecast());
    }
}
