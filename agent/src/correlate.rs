//! Zone correlation (pure, time passed in): sensors of one zone and category raised within a
//! window become one zone event listing its evidence.
//!
//! Rules: a sensor counts as raised while any of its detectors of the category is raised
//! (several detectors of one sensor are one piece of evidence). A zone event is raised when at
//! least `min_sensors` sensors of the zone and category are raised and their raises lie within
//! `window` of the newest (`min_sensors = 1`: a single sensor makes a zone event); it clears
//! when the last of the zone's raised sensors clears (not when the count dips below the
//! minimum, which would flap). Flapping detectors are held back before they get here
//! ([`crate::detect::flap`]). Device faults never reach the correlator.

use coldaisle_core::{Category, EventState, Evidence, Severity, Timestamp, ZoneEvent};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// A sensor transition as the correlator needs it.
#[derive(Debug, Clone)]
pub struct SensorTransition {
    /// Sensor id.
    pub sensor: String,
    /// Detector that made the transition.
    pub detector: String,
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

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Raised {
    rack: Option<String>,
    value: f64,
    severity: Severity,
    ts: Timestamp,
    /// Detectors of this sensor currently raised.
    #[serde(default)]
    detectors: BTreeSet<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct ZoneState {
    /// Raised sensors by id (ordered for deterministic evidence).
    raised: BTreeMap<String, Raised>,
    /// Whether the zone event is raised.
    active: bool,
}

/// The correlator's state, for storage across restarts.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct CorrelatorState {
    zones: Vec<(String, Category, ZoneState)>,
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

    /// The state to store (zones sorted, so equal states serialise equally).
    pub fn export(&self) -> CorrelatorState {
        let mut zones: Vec<_> = self
            .zones
            .iter()
            .filter(|(_, z)| z.active || !z.raised.is_empty())
            .map(|((zone, category), z)| (zone.clone(), *category, z.clone()))
            .collect();
        zones.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        CorrelatorState { zones }
    }

    /// Restores a stored state (replacing the current one).
    pub fn restore(&mut self, state: CorrelatorState) {
        self.zones = state
            .zones
            .into_iter()
            .map(|(zone, category, z)| ((zone, category), z))
            .collect();
    }

    /// Feeds one sensor transition; returns a zone event when the zone's state changes.
    pub fn observe(&mut self, t: &SensorTransition) -> Option<ZoneEvent> {
        let zone = self.zones.entry((t.zone.clone(), t.category)).or_default();
        match t.state {
            EventState::Raised => {
                match zone.raised.get_mut(&t.sensor) {
                    Some(r) => {
                        r.detectors.insert(t.detector.clone());
                        r.severity = r.severity.max(t.severity);
                    }
                    None => {
                        zone.raised.insert(
                            t.sensor.clone(),
                            Raised {
                                rack: t.rack.clone(),
                                value: t.value,
                                severity: t.severity,
                                ts: t.ts,
                                detectors: BTreeSet::from([t.detector.clone()]),
                            },
                        );
                    }
                }
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
                if let Some(r) = zone.raised.get_mut(&t.sensor) {
                    r.detectors.remove(&t.detector);
                    if !r.detectors.is_empty() {
                        return None;
                    }
                }
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
            detector: "threshold".into(),
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
    fn min_sensors_one_lets_a_single_sensor_make_a_zone_event() {
        let mut c = ZoneCorrelator::new("s1", Duration::from_secs(300), 1);
        let raised = c
            .observe(&t("a", "Z1", EventState::Raised, 0))
            .expect("one sensor is enough");
        assert_eq!(raised.evidence.len(), 1);
        let cleared = c
            .observe(&t("a", "Z1", EventState::Cleared, 10))
            .expect("clear");
        assert_eq!(cleared.state, EventState::Cleared);
    }

    #[test]
    fn several_detectors_of_one_sensor_are_one_piece_of_evidence() {
        let mut c = ZoneCorrelator::new("s1", Duration::from_secs(300), 2);
        let mut rate = t("a", "Z1", EventState::Raised, 0);
        rate.detector = "rate_of_change_15m".into();
        assert!(c.observe(&rate).is_none());
        assert!(
            c.observe(&t("a", "Z1", EventState::Raised, 10)).is_none(),
            "same sensor, second detector: still one sensor"
        );
        assert!(c.observe(&t("b", "Z1", EventState::Raised, 20)).is_some());
        assert!(c.observe(&t("a", "Z1", EventState::Cleared, 30)).is_none());
        assert!(
            c.observe(&t("b", "Z1", EventState::Cleared, 40)).is_none(),
            "a's rate is still raised"
        );
        rate.state = EventState::Cleared;
        rate.ts = Timestamp(50_000);
        assert!(c
            .observe(&rate)
            .is_some_and(|z| z.state == EventState::Cleared));
    }

    #[test]
    fn export_restore_round_trip_keeps_the_open_zone_event() {
        let mut c = ZoneCorrelator::new("s1", Duration::from_secs(300), 1);
        c.observe(&t("a", "Z1", EventState::Raised, 0));
        let json = serde_json::to_string(&c.export()).expect("json");
        let mut d = ZoneCorrelator::new("s1", Duration::from_secs(300), 1);
        d.restore(serde_json::from_str(&json).expect("json"));
        assert!(
            d.observe(&t("b", "Z1", EventState::Raised, 5)).is_none(),
            "already active"
        );
        assert!(d.observe(&t("a", "Z1", EventState::Cleared, 6)).is_none());
        assert!(d.observe(&t("b", "Z1", EventState::Cleared, 7)).is_some());
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
