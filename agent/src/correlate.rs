//! Zone correlation (pure, time passed in): sensors of one zone and category raised within a
//! window become one zone event listing its evidence.
//!
//! Rules: a zone event is raised when at least `min_sensors` sensors of the zone and category
//! are raised and their raises lie within `window` of the newest; it clears when the last of
//! the zone's raised sensors clears (not when the count dips below the minimum, which would
//! flap). Device faults never reach the correlator.

use coldaisle_core::{Category, EventState, Evidence, Severity, Timestamp, ZoneEvent};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// A sensor transition as the correlator needs it.
#[derive(Debug, Clone)]
pub struct SensorTransition {
    /// Sensor id.
    pub sensor: String,
    /// Zone of the sensor.
    pub zone: String,
    /// Rack of the sensor.
    pub rack: Option<String>,
    /// Category of the sensor's event.
    pub category: Category,
    /// Raised or cleared.
    pub state: EventState,
    /// Severity.
    pub severity: Severity,
    /// Value.
    pub value: f64,
    /// Event time.
    pub ts: Timestamp,
}

#[derive(Debug, Clone)]
struct Raised {
    rack: Option<String>,
    value: f64,
    severity: Severity,
    ts: Timestamp,
}

#[derive(Debug, Default)]
struct ZoneState {
    /// Raised sensors by id (ordered for deterministic evidence).
    raised: BTreeMap<String, Raised>,
    /// Whether the zone event is raised.
    active: bool,
}

/// The correlator of one agent (one site).
#[derive(Debug)]
pub struct ZoneCorrelator {
    site: String,
    window: Duration,
    min_sensors: usize,
    zones: HashMap<(String, Category), ZoneState>,
}

impl ZoneCorrelator {
    /// A correlator for `site`.
    pub fn new(site: &str, window: Duration, min_sensors: usize) -> Self {
        ZoneCorrelator {
            site: site.to_string(),
            window,
            min_sensors: min_sensors.max(1),
            zones: HashMap::new(),
        }
    }

    /// Feeds one sensor transition; returns a zone event when the zone's state changes.
    pub fn observe(&mut self, t: &SensorTransition) -> Option<ZoneEvent> {
        let zone = self.zones.entry((t.zone.clone(), t.category)).or_default();
        match t.state {
            EventState::Raised => {
                zone.raised.insert(
                    t.sensor.clone(),
                    Raised {
                        rack: t.rack.clone(),
                        value: t.value,
                        severity: t.severity,
                        ts: t.ts,
                    },
                );
                if zone.active {
                    return None;
                }
                let since = t.ts.minus(self.window);
                let recent: Vec<(&String, &Raised)> =
                    zone.raised.iter().filter(|(_, r)| r.ts >= since).collect();
                if recent.len() < self.min_sensors {
                    return None;
                }
                zone.active = true;
                Some(ZoneEvent {
                    site: self.site.clone(),
                    zone: t.zone.clone(),
                    category: t.category,
                    state: EventState::Raised,
                    severity: recent
                        .iter()
                        .map(|(_, r)| r.severity)
                        .max()
                        .unwrap_or(t.severity),
                    evidence: recent
                        .iter()
                        .map(|(sensor, r)| Evidence {
                            sensor: (*sensor).clone(),
                            rack: r.rack.clone(),
                            value: r.value,
                            ts: r.ts,
                        })
                        .collect(),
                    ts: t.ts,
                })
            }
            EventState::Cleared => {
                let removed = zone.raised.remove(&t.sensor);
                if !zone.active || !zone.raised.is_empty() {
                    return None;
                }
                zone.active = false;
                Some(ZoneEvent {
                    site: self.site.clone(),
                    zone: t.zone.clone(),
                    category: t.category,
                    state: EventState::Cleared,
                    severity: removed.map(|r| r.severity).unwrap_or(t.severity),
                    evidence: vec![Evidence {
                        sensor: t.sensor.clone(),
                        rack: t.rack.clone(),
                        value: t.value,
                        ts: t.ts,
                    }],
                    ts: t.ts,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(sensor: &str, zone: &str, state: EventState, secs: i64) -> SensorTransition {
        SensorTransition {
            sensor: sensor.into(),
            zone: zone.into(),
            rack: Some(format!("rack-{sensor}")),
            category: Category::Thermal,
            state,
            severity: Severity::Warning,
            value: 29.0,
            ts: Timestamp(secs * 1000),
        }
    }

    #[test]
    fn two_sensors_in_window_make_one_zone_event() {
        let mut c = ZoneCorrelator::new("s1", Duration::from_secs(300), 2);
        assert!(c.observe(&t("a", "Z1", EventState::Raised, 0)).is_none());
        let raised = c
            .observe(&t("b", "Z1", EventState::Raised, 60))
            .expect("zone event");
        assert_eq!(raised.evidence.len(), 2);
        assert_eq!(raised.state, EventState::Raised);
        assert!(
            c.observe(&t("c", "Z1", EventState::Raised, 90)).is_none(),
            "already raised"
        );
        assert!(c.observe(&t("a", "Z1", EventState::Cleared, 120)).is_none());
        assert!(c.observe(&t("b", "Z1", EventState::Cleared, 130)).is_none());
        let cleared = c
            .observe(&t("c", "Z1", EventState::Cleared, 140))
            .expect("clear when the last sensor clears");
        assert_eq!(cleared.state, EventState::Cleared);
    }

    #[test]
    fn single_sensor_or_far_apart_raises_do_not_correlate() {
        let mut c = ZoneCorrelator::new("s1", Duration::from_secs(300), 2);
        assert!(c.observe(&t("a", "Z1", EventState::Raised, 0)).is_none());
        assert!(
            c.observe(&t("b", "Z2", EventState::Raised, 10)).is_none(),
            "other zone"
        );
        assert!(
            c.observe(&t("c", "Z1", EventState::Raised, 400)).is_none(),
            "outside window"
        );
        assert!(c.observe(&t("a", "Z1", EventState::Cleared, 500)).is_none());
    }
}
