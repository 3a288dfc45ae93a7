//! Open forecasts of a zone: the predictive warnings (detector
//! [`coldaisle_core::FORECAST_DETECTOR`]) whose latest event is a raise. A forecast is kept out of
//! incidents and paging (`crate::incidents` gives it no fingerprint); this is where it shows:
//! the zone report's `forecasts`, and each zone's "trending towards the limit" list of the
//! facility report ([`add_to_facility`], with the sensor's current value from the roll-ups),
//! which the CLI `report` and the dashboard's zone page show.
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
    open_by_zone(events, site, Some(zone))
        .remove(zone)
        .unwrap_or_default()
}

/// The open forecasts of `site` among `events` (any order) by zone (only `zone` when given),
/// each zone's by expected crossing then sensor: one pass for a whole facility report.
pub fn open_by_zone<'a>(
    events: impl IntoIterator<Item = &'a StoredEvent>,
    site: &str,
    zone: Option<&str>,
) -> BTreeMap<String, Vec<OpenForecast>> {
    type Latest<'e> = (crate::model::OrderKey, &'e SensorEvent);
    let mut last: BTreeMap<(&str, &str), Latest<'a>> = BTreeMap::new();
    for ev in events {
        let Payload::SensorEvent(e) = &ev.payload else {
            continue;
        };
        if !e.is_forecast() || e.location.site != site || zone.is_some_and(|z| e.location.zone != z)
        {
            continue;
        }
        let key = ev.order_key();
        let at = (e.location.zone.as_str(), e.sensor.as_str());
        match last.get(&at) {
            Some((seen, _)) if *seen > key => {}
            _ => {
                last.insert(at, (key, e));
            }
        }
    }
    let mut by_zone: BTreeMap<String, Vec<OpenForecast>> = BTreeMap::new();
    for ((zone, _), (_, e)) in last {
        if e.state != EventState::Raised {
            continue;
        }
        by_zone
            .entry(zone.to_string())
            .or_default()
            .push(OpenForecast {
                sensor: e.sensor.clone(),
                rack: e.location.rack.clone(),
                value: e.value,
                limit: e.limit,
                raised_at: e.ts,
                expected_crossing: e.expected_crossing,
            });
    }
    for open in by_zone.values_mut() {
        open.sort_by(|a, b| {
            (a.expected_crossing, &a.sensor).cmp(&(b.expected_crossing, &b.sensor))
        });
    }
    by_zone
}

/// One line of a facility report's "trending towards the limit" list: an open forecast with
/// the sensor's current value from the period's roll-ups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendingSensor {
    /// The sensor whose trend reaches its limit.
    pub sensor: String,
    /// Its rack, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    /// Its latest value in the report's period (the last reading of its newest bucket);
    /// `None` when the period holds none.
    pub current: Option<f64>,
    /// The trend's value when the forecast was raised.
    pub value_at_raise: f64,
    /// The limit the trend reaches.
    pub limit: Option<f64>,
    /// When the forecast was raised.
    pub raised_at: Timestamp,
    /// When the trend was expected to reach the limit, as of the raise.
    pub expected_crossing: Option<Timestamp>,
}

/// Fills each zone's `forecasts` of `report` from `open` (by zone, as [`open_by_zone`] gives
/// them), with each sensor's current value from `buckets` (the report's period).
pub fn add_to_facility(
    report: &mut super::facility::FacilityReport,
    mut open: BTreeMap<String, Vec<OpenForecast>>,
    buckets: super::facility::BucketParts<'_>,
) {
    // The newest bucket of each forecast sensor in the period.
    let wanted: std::collections::BTreeSet<(&str, &str)> = open
        .iter()
        .flat_map(|(zone, list)| list.iter().map(move |f| (zone.as_str(), f.sensor.as_str())))
        .collect();
    let mut newest: BTreeMap<(&str, &str), (Timestamp, f64)> = BTreeMap::new();
    for b in buckets.iter() {
        let at = (b.location.zone.as_str(), b.sensor.as_str());
        if b.count == 0 || !wanted.contains(&at) {
            continue;
        }
        let entry = newest.entry(at).or_insert((b.last_at, b.last));
        if b.last_at >= entry.0 {
            *entry = (b.last_at, b.last);
        }
    }
    for zone in &mut report.zones {
        let Some(list) = open.remove(&zone.zone) else {
            continue;
        };
        zone.forecasts = list
            .into_iter()
            .map(|f| TrendingSensor {
                current: newest
                    .get(&(zone.zone.as_str(), f.sensor.as_str()))
                    .map(|(_, v)| *v),
                sensor: f.sensor,
                rack: f.rack,
                value_at_raise: f.value,
                limit: f.limit,
                raised_at: f.raised_at,
                expected_crossing: f.expected_crossing,
            })
            .collect();
    }
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
        let all = open_by_zone(&events, "s1", None);
        assert_eq!(all.keys().collect::<Vec<_>>(), ["Z1", "Z2"]);
    }

    #[test]
    fn the_facility_report_lists_each_zones_forecasts_with_the_current_value() {
        use crate::report::ashrae::{AshraeClass, Envelope};
        use crate::report::facility::{build, BucketParts, Inputs};
        use crate::rollup::{Level, Rollup};
        let bucket = |sensor: &str, zone: &str, start: i64, last: f64| Rollup {
            sensor: sensor.into(),
            kind: SensorKind::InletTemp,
            location: Location {
                site: "s1".into(),
                zone: zone.into(),
                row: None,
                rack: Some(format!("rack-{sensor}")),
            },
            start: Timestamp(start),
            count: 2,
            sum: 2.0 * last,
            min: last,
            max: last,
            last,
            last_at: Timestamp(start + 30_000),
            summaries: 1,
        };
        let buckets = [
            bucket("r2", "Z1", 0, 25.0),
            bucket("r2", "Z1", 60_000, 25.6),
            bucket("r1", "Z1", 60_000, 24.0),
            bucket("r3", "Z2", 60_000, 26.0),
        ];
        let zones = ["Z1".to_string(), "Z2".to_string()];
        let mut report = build(&Inputs {
            site: "s1",
            zones: &zones,
            from: Timestamp(0),
            to: Timestamp(120_000),
            level: Level::Minute,
            buckets: BucketParts::whole(&buckets),
            previous_level: Level::Minute,
            previous: &[],
            incidents: &[],
            problems: &[],
            envelope: Envelope::of(AshraeClass::A1),
            stale_after: std::time::Duration::from_secs(600),
        });
        assert!(report.zones.iter().all(|z| z.forecasts.is_empty()));
        let events = [
            forecast(1, "r2", "Z1", EventState::Raised, 1_000),
            forecast(2, "r3", "Z2", EventState::Raised, 2_000),
            forecast(3, "r3", "Z2", EventState::Cleared, 3_000),
        ];
        add_to_facility(
            &mut report,
            open_by_zone(&events, "s1", None),
            BucketParts::whole(&buckets),
        );
        let z1 = &report.zones[0].forecasts;
        assert_eq!(z1.len(), 1, "{z1:?}");
        assert_eq!(z1[0].sensor, "r2");
        assert_eq!(z1[0].rack.as_deref(), Some("rack-r2"));
        // The newest bucket's last value, not the value at the raise.
        assert_eq!(z1[0].current, Some(25.6));
        assert_eq!(z1[0].value_at_raise, 25.0);
        assert_eq!(z1[0].limit, Some(27.0));
        assert_eq!(z1[0].expected_crossing, Some(Timestamp(901_000)));
        assert!(report.zones[1].forecasts.is_empty(), "r3 was cleared");
    }
}
