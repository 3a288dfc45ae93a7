//! Open forecasts of a zone: the predictive warnings (detector
//! [`coldaisle_core::FORECAST_DETECTOR`]) whose latest event is a raise. A forecast is kept out of
//! incidents and paging (`crate::incidents` gives it no fingerprint); this is where it shows.
//!
//! Pure: folds the stored events it is given; a sensor's forecast is open while its last
//! forecast event (in event order) is a raise, whatever the time now.

use crate::model::StoredEvent;
use coldaisle_core::wire::Payload;
use coldaisle_core::{EventState, SensorEvent, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One open predictive warning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenForecast {
    /// The sensor whose trend reaches its limit.
    pub sensor: String,
    /// Its rack, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    /// The trend's value when the forecast was raised (normalised unit).
    pub value: f64,
    /// The limit the trend reaches.
    pub limit: Option<f64>,
    /// When the forecast was raised.
    pub raised_at: Timestamp,
    /// When the trend was expected to reach the limit, as of the raise.
    pub expected_crossing: Option<Timestamp>,
}

/// The open forecasts of `(site, zone)` among `events` (any order), by expected crossing then
/// sensor.
pub fn open_forecasts<'a>(
    events: impl IntoIterator<Item = &'a StoredEvent>,
    site: &str,
    zone: &str,
) -> Vec<OpenForecast> {
    let mut last: BTreeMap<&str, (crate::model::OrderKey, &SensorEvent)> = BTreeMap::new();
    for ev in events {
        let Payload::SensorEvent(e) = &ev.payload else {
            continue;
        };
        if !e.is_forecast() || e.location.site != site || e.location.zone != zone {
            continue;
        }
        let key = ev.order_key();
        match last.get(e.sensor.as_str()) {
            Some((seen, _)) if *seen > key => {}
            _ => {
                last.insert(&e.sensor, (key, e));
            }
        }
    }
    let mut open: Vec<OpenForecast> = last
        .into_values()
        .filter(|(_, e)| e.state == EventState::Raised)
        .map(|(_, e)| OpenForecast {
            sensor: e.sensor.clone(),
            rack: e.location.rack.clone(),
            value: e.value,
            limit: e.limit,
            raised_at: e.ts,
            expected_crossing: e.expected_crossing,
        })
        .collect();
    open.sort_by(|a, b| (a.expected_crossing, &a.sensor).cmp(&(b.expected_crossing, &b.sensor)));
    open
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldaisle_core::{Category, Location, SensorKind, Severity, FORECAST_DETECTOR};

    fn forecast(seq: u64, sensor: &str, zone: &str, state: EventState, at: i64) -> StoredEvent {
        StoredEvent {
            agent: "a1".into(),
            seq,
            payload: Payload::SensorEvent(SensorEvent {
                sensor: sensor.into(),
                kind: SensorKind::InletTemp,
                location: Location {
                    site: "s1".into(),
                    zone: zone.into(),
                    row: None,
                    rack: Some(format!("rack-{sensor}")),
                },
                category: Category::Thermal,
                detector: FORECAST_DETECTOR.into(),
                state,
                severity: Severity::Warning,
                value: 25.0,
                limit: Some(27.0),
                first_ts: Timestamp(at),
                ts: Timestamp(at),
                expected_crossing: (state == EventState::Raised).then_some(Timestamp(at + 900_000)),
            }),
        }
    }

    #[test]
    fn a_forecast_is_open_until_its_sensor_clears_it() {
        let events = [
            forecast(1, "r1", "Z1", EventState::Raised, 1_000),
            forecast(2, "r2", "Z1", EventState::Raised, 2_000),
            forecast(3, "r1", "Z1", EventState::Cleared, 3_000),
            forecast(4, "r3", "Z2", EventState::Raised, 3_000),
            // Arrives last but happened first: r2 stays open.
            forecast(5, "r2", "Z1", EventState::Cleared, 500),
        ];
        let open = open_forecasts(&events, "s1", "Z1");
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!(open[0].sensor, "r2");
        assert_eq!(open[0].rack.as_deref(), Some("rack-r2"));
        assert_eq!(open[0].raised_at, Timestamp(2_000));
        assert_eq!(open[0].expected_crossing, Some(Timestamp(902_000)));
        assert!(open_forecasts(&events, "s2", "Z1").is_empty());
        assert_eq!(open_forecasts(&events, "s1", "Z2").len(), 1);
    }
}
