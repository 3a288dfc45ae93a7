//! From poll outcomes to outbox payloads (pure: time comes with each outcome).
//!
//! For each device: reachability; for each sensor: normalisation, the reading summariser and
//! its detector chain ([`crate::detect::chain`]: impossible value, fixed limits, rate of
//! change, stuck, learned band, stale, each behind a flap gate); then derived signals (dew
//! point of a rack from its humidity and temperature, ΔT of a cooler, a rack inlet's excess
//! over its zone's cooling supply air) through the detectors of
//! their kind; a derived signal counts as its base sensor in zone correlation. Sensor transitions that are not sensor faults go through the zone correlator.
//! The output is the list of records to append to the outbox, in the order they happened.
//!
//! The detectors' state can be exported and restored ([`Pipeline::export_state`]) so that
//! learned bands and open raises survive a restart.

use crate::correlate::{CorrelatorState, SensorTransition, ZoneCorrelator};
use crate::detect::chain::{ChainSettings, Fired, SensorDetectors};
use crate::detect::derived::{dew_point, LastValue};
use crate::detect::reachability::Reachability;
use crate::detect::summary::Summariser;
use crate::poller::PollOutcome;
use coldaisle_config::detection::DetectionConfig;
use coldaisle_config::{AgentConfig, Device};
use coldaisle_core::wire::Payload;
use coldaisle_core::{
    Category, DeviceEvent, EventState, Location, ReadingSummary, SensorEvent, SensorKind, Timestamp,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
struct SensorState {
    detectors: SensorDetectors,
    summary: Summariser,
    /// Whether the last reading failed (to log a failing point once, not on every poll).
    failing: bool,
    /// Last valid value (for derived signals).
    last: LastValue,
}

#[derive(Debug)]
struct DeviceState {
    /// Shared with the device's task in the daemon (one copy of its settings, issue 18).
    device: Arc<Device>,
    reachability: Reachability,
    sensors: Vec<SensorState>,
}

/// A sensor by (device index, sensor index).
type SensorRef = (usize, usize);

#[derive(Debug, Clone, Copy)]
enum Derivation {
    /// Dew point from a temperature and a relative humidity.
    DewPoint {
        temp: SensorRef,
        humidity: SensorRef,
    },
    /// Return minus supply air of one cooler.
    DeltaT { supply: SensorRef, ret: SensorRef },
    /// A rack inlet minus its zone's cooling supply air.
    InletOverSupply { supply: SensorRef, inlet: SensorRef },
}

#[derive(Debug)]
struct DerivedSignal {
    id: String,
    /// The real sensor it counts as in zone correlation (one rack is one piece of evidence,
    /// however many signals are derived from it).
    evidence: String,
    kind: SensorKind,
    location: Location,
    inputs: Derivation,
    detectors: SensorDetectors,
}

/// What is stored across restarts: every detector's state by sensor id and detector name,
/// device reachability and the zone correlator.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineState {
    /// Detector states by sensor id (derived signals included), then detector name.
    pub sensors: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// Devices down since, by device id.
    pub devices: BTreeMap<String, Reachability>,
    /// The zone correlator (as JSON, so a stored state never fails to load as a whole).
    pub correlator: serde_json::Value,
}

/// The agent's detection pipeline.
#[derive(Debug)]
pub struct Pipeline {
    devices: Vec<DeviceState>,
    derived: Vec<DerivedSignal>,
    correlator: ZoneCorrelator,
    summary_interval: Duration,
    pair_max_age: Duration,
}

/// The threshold written on point `j` of device `i` in the config file, if any: only a
/// threshold written in the file replaces the kind's level (used by the daemon and `replay`).
#[must_use]
pub fn point_threshold(
    config: &AgentConfig,
    i: usize,
    j: usize,
) -> Option<coldaisle_config::Threshold> {
    let explicit = config
        .raw
        .devices
        .get(i)
        .and_then(|d| d.points.get(j))
        .is_some_and(|p| p.threshold.is_some());
    config
        .devices
        .get(i)?
        .sensors
        .get(j)?
        .threshold
        .clone()
        .filter(|_| explicit)
}

/// The detectors of sensor `j` of device `i` of `config`, in their initial state (also what
/// `check-config --verbose` lists).
///
/// # Panics
/// Never for indexes of `config.devices[i].sensors`; others panic.
#[must_use]
pub fn sensor_detectors(config: &AgentConfig, i: usize, j: usize) -> SensorDetectors {
    sensor_detectors_shared(config, i, j, &mut BTreeMap::new())
}

/// [`sensor_detectors`], its settings taken from `shared` (one [`ChainSettings`] per sensor
/// kind, made the first time a kind is met): every chain of a kind points at the same
/// settings instead of holding a copy (issue 18).
fn sensor_detectors_shared(
    config: &AgentConfig,
    i: usize,
    j: usize,
    shared: &mut BTreeMap<SensorKind, ChainSettings>,
) -> SensorDetectors {
    let detection = &config.detection;
    let kind = config.devices[i].sensors[j].kind;
    let settings = shared
        .entry(kind)
        .or_insert_with(|| ChainSettings::new(detection.for_kind(kind)));
    SensorDetectors::with_settings(
        settings,
        point_threshold(config, i, j).as_ref(),
        detection.flap_window,
        detection.stale_after,
    )
}

impl Pipeline {
    /// A pipeline for every device of `config`, all detectors in their initial state.
    pub fn new(config: &AgentConfig) -> Pipeline {
        Pipeline::with_devices(config, &crate::devices::share(&config.devices, &[]))
    }

    /// Same as [`Pipeline::new`], holding `devices` instead of a copy of each device's
    /// settings: `devices` is [`crate::devices::share`] of `config.devices` (the daemon shares
    /// them with the device tasks).
    ///
    /// # Panics
    /// When `devices` is not `config.devices` (another length or another device at an index).
    pub fn with_devices(config: &AgentConfig, devices: &[Arc<Device>]) -> Pipeline {
        assert!(
            devices.len() == config.devices.len()
                && devices
                    .iter()
                    .zip(&config.devices)
                    .all(|(a, b)| a.id == b.id),
            "the shared devices are not the config's"
        );
        let detection = &config.detection;
        let mut shared = BTreeMap::new();
        let devices: Vec<DeviceState> = devices
            .iter()
            .enumerate()
            .map(|(i, device)| DeviceState {
                device: Arc::clone(device),
                reachability: Reachability::default(),
                sensors: device
                    .sensors
                    .iter()
                    .enumerate()
                    .map(|(j, _)| SensorState {
                        detectors: sensor_detectors_shared(config, i, j, &mut shared),
                        summary: Summariser::default(),
                        failing: false,
                        last: LastValue::default(),
                    })
                    .collect(),
            })
            .collect();
        let derived = derived_signals(config, detection);
        Pipeline {
            devices,
            derived,
            correlator: ZoneCorrelator::new(
                &config.site,
                config.correlation.window,
                config.correlation.min_sensors,
            ),
            summary_interval: config.summary_interval,
            pair_max_age: detection.pair_max_age,
        }
    }

    /// Ids of the derived signals (dew points, cooler ΔTs), in evaluation order.
    pub fn derived_ids(&self) -> Vec<&str> {
        self.derived.iter().map(|d| d.id.as_str()).collect()
    }

    /// Flaps held back so far (over every detector of every sensor).
    pub fn flaps(&self) -> u64 {
        let sensors: u64 = self
            .devices
            .iter()
            .flat_map(|d| d.sensors.iter())
            .map(|s| s.detectors.flaps())
            .sum();
        sensors
            + self
                .derived
                .iter()
                .map(|d| d.detectors.flaps())
                .sum::<u64>()
    }

    /// Feeds one poll outcome; returns the payloads it produced.
    pub fn observe(&mut self, outcome: &PollOutcome) -> Vec<Payload> {
        let mut out = Vec::new();
        let Some(state) = self.devices.get_mut(outcome.device) else {
            return out;
        };
        let answered = outcome.result.is_ok();
        if let Some(transition) = state.reachability.observe(outcome.ts, answered) {
            let reason = match &outcome.result {
                Err(e) => e.to_string(),
                Ok(_) => String::new(),
            };
            out.push(Payload::DeviceEvent(DeviceEvent {
                device: state.device.id.clone(),
                location: state.device.location.clone(),
                state: transition,
                reason,
                ts: outcome.ts,
            }));
        }
        let Ok(readings) = &outcome.result else {
            return out;
        };
        let ts = outcome.ts;
        for ((sensor, sensor_state), reading) in state
            .device
            .sensors
            .iter()
            .zip(state.sensors.iter_mut())
            .zip(readings)
        {
            let fired = match reading {
                Ok(raw) => {
                    let value = sensor.normalise(*raw);
                    sensor_state.failing = false;
                    if sensor_state.detectors.is_possible(*raw, value) {
                        sensor_state.last = LastValue(Some((ts, value)));
                        if let Some(window) =
                            sensor_state
                                .summary
                                .observe(ts, value, self.summary_interval)
                        {
                            out.push(Payload::ReadingSummary(ReadingSummary {
                                sensor: sensor.id.clone(),
                                kind: sensor.kind,
                                location: sensor.location.clone(),
                                from: window.from,
                                to: window.to,
                                count: window.count,
                                min: window.min,
                                max: window.max,
                                sum: window.sum,
                                last: window.last,
                            }));
                        }
                    }
                    sensor_state.detectors.observe(ts, *raw, value)
                }
                Err(reason) => {
                    if !sensor_state.failing {
                        tracing::warn!(device = %state.device.id, sensor = %sensor.id, %reason, "point unreadable");
                    }
                    sensor_state.failing = true;
                    sensor_state.detectors.missing(ts)
                }
            };
            for f in fired {
                emit(
                    &mut out,
                    &mut self.correlator,
                    EventSource {
                        sensor: &sensor.id,
                        evidence: &sensor.id,
                        kind: sensor.kind,
                        location: &sensor.location,
                        decimals: readable::precision(sensor.scale, sensor.unit),
                    },
                    f,
                    ts,
                );
            }
        }
        // Derived signals with an input on this device.
        let device = outcome.device;
        for d in &mut self.derived {
            let (a, b) = match d.inputs {
                Derivation::DewPoint { temp, humidity } => (temp, humidity),
                Derivation::DeltaT { supply, ret } => (supply, ret),
                Derivation::InletOverSupply { supply, inlet } => (supply, inlet),
            };
            if a.0 != device && b.0 != device {
                continue;
            }
            let last = |r: SensorRef| {
                self.devices
                    .get(r.0)
                    .and_then(|dev| dev.sensors.get(r.1))
                    .and_then(|s| s.last.fresh(ts, self.pair_max_age))
            };
            let (Some(x), Some(y)) = (last(a), last(b)) else {
                continue;
            };
            let value = match d.inputs {
                Derivation::DewPoint { .. } => dew_point(x, y),
                Derivation::DeltaT { .. } | Derivation::InletOverSupply { .. } => Some(y - x),
            };
            let Some(value) = value else { continue };
            for f in d.detectors.observe(ts, value, value) {
                emit(
                    &mut out,
                    &mut self.correlator,
                    EventSource {
                        sensor: &d.id,
                        evidence: &d.evidence,
                        kind: d.kind,
                        location: &d.location,
                        decimals: readable::DERIVED_DECIMALS,
                    },
                    f,
                    ts,
                );
            }
        }
        out
    }

    /// Every detector's state, for storage.
    pub fn export_state(&self) -> PipelineState {
        let mut sensors = BTreeMap::new();
        let mut devices = BTreeMap::new();
        for d in &self.devices {
            devices.insert(d.device.id.clone(), d.reachability.clone());
            for (s, state) in d.device.sensors.iter().zip(&d.sensors) {
                sensors.insert(s.id.clone(), state.detectors.export());
            }
        }
        for d in &self.derived {
            sensors.insert(d.id.clone(), d.detectors.export());
        }
        PipelineState {
            sensors,
            devices,
            correlator: serde_json::to_value(self.correlator.export())
                .unwrap_or(serde_json::Value::Null),
        }
    }

    /// Writes [`Pipeline::export_state`]'s JSON to `out` without building it: each sensor's
    /// detector states are serialised in place ([`SensorDetectors::export_view`]), so the
    /// transient is the output bytes, not a `serde_json::Value` tree of every sensor. What it
    /// writes decodes as a [`PipelineState`] equal to `export_state()`.
    ///
    /// # Errors
    /// A state that fails to serialise, or `out` failing.
    pub fn write_state<W: std::io::Write>(&self, out: W) -> serde_json::Result<()> {
        serde::Serialize::serialize(&StateView(self), &mut serde_json::Serializer::new(out))
    }

    /// Restores a stored state: detectors found by sensor id and name take their stored state,
    /// the rest start fresh. Returns how many detector states were restored.
    pub fn restore_state(&mut self, state: &PipelineState) -> usize {
        let mut restored = 0;
        for d in &mut self.devices {
            if let Some(r) = state.devices.get(&d.device.id) {
                d.reachability = r.clone();
            }
            for (s, sensor_state) in d.device.sensors.iter().zip(&mut d.sensors) {
                if let Some(map) = state.sensors.get(&s.id) {
                    restored += sensor_state.detectors.restore(map);
                }
            }
        }
        for d in &mut self.derived {
            if let Some(map) = state.sensors.get(&d.id) {
                restored += d.detectors.restore(map);
            }
        }
        if let Ok(c) = serde_json::from_value::<CorrelatorState>(state.correlator.clone()) {
            self.correlator.restore(c);
        }
        restored
    }
}

/// [`PipelineState`]'s JSON object, written from the pipeline's own fields (see
/// [`Pipeline::write_state`]). Sensor ids appear in config order rather than sorted; a
/// duplicate id is written twice and the last one wins on load, as it did in the map.
struct StateView<'a>(&'a Pipeline);

/// The `sensors` member of [`StateView`].
struct SensorsView<'a>(&'a Pipeline);

/// The `devices` member of [`StateView`].
struct DevicesView<'a>(&'a Pipeline);

impl Serialize for StateView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = serializer.serialize_struct("PipelineState", 3)?;
        st.serialize_field("sensors", &SensorsView(self.0))?;
        st.serialize_field("devices", &DevicesView(self.0))?;
        st.serialize_field("correlator", &self.0.correlator.export())?;
        st.end()
    }
}

impl Serialize for SensorsView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let devices = self.0.devices.iter().flat_map(|d| {
            d.device
                .sensors
                .iter()
                .zip(&d.sensors)
                .map(|(s, state)| (&s.id, state.detectors.export_view()))
        });
        let derived = (self.0.derived.iter()).map(|d| (&d.id, d.detectors.export_view()));
        serializer.collect_map(devices.chain(derived))
    }
}

impl Serialize for DevicesView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map((self.0.devices.iter()).map(|d| (&d.device.id, &d.reachability)))
    }
}

/// Pairs sensors into derived signals.
fn derived_signals(config: &AgentConfig, detection: &DetectionConfig) -> Vec<DerivedSignal> {
    let mut out = Vec::new();
    let sensors: Vec<(SensorRef, &coldaisle_config::Sensor)> = config
        .devices
        .iter()
        .enumerate()
        .flat_map(|(i, d)| d.sensors.iter().enumerate().map(move |(j, s)| ((i, j), s)))
        .collect();
    let new_detectors = |kind: &coldaisle_config::detection::KindDetection| {
        SensorDetectors::new(kind, None, detection.flap_window, detection.stale_after)
    };
    if detection.derived_dew_point {
        for &(h_ref, h) in sensors
            .iter()
            .filter(|(_, s)| s.kind == SensorKind::Humidity)
        {
            if h.location.rack.is_none() {
                continue;
            }
            let same_place = |s: &&(SensorRef, &coldaisle_config::Sensor)| {
                matches!(s.1.kind, SensorKind::InletTemp | SensorKind::Temperature)
                    && s.1.location.zone == h.location.zone
                    && s.1.location.rack == h.location.rack
            };
            // Prefer a temperature of the same device (the same probe, usually).
            let temp = sensors
                .iter()
                .filter(same_place)
                .find(|s| s.0 .0 == h_ref.0)
                .or_else(|| sensors.iter().find(same_place));
            if let Some(&(t_ref, _)) = temp {
                out.push(DerivedSignal {
                    id: format!("{}.dew_point", h.id),
                    evidence: h.id.clone(),
                    kind: SensorKind::DewPoint,
                    location: h.location.clone(),
                    inputs: Derivation::DewPoint {
                        temp: t_ref,
                        humidity: h_ref,
                    },
                    detectors: new_detectors(detection.for_kind(SensorKind::DewPoint)),
                });
            }
        }
    }
    if detection.derived_delta_t {
        for (i, device) in config.devices.iter().enumerate() {
            let find = |kind| device.sensors.iter().position(|s| s.kind == kind);
            if let (Some(s), Some(r)) = (
                find(SensorKind::SupplyAirTemp),
                find(SensorKind::ReturnAirTemp),
            ) {
                out.push(DerivedSignal {
                    id: format!("{}.delta_t", device.id),
                    evidence: device.sensors[r].id.clone(),
                    kind: SensorKind::ReturnAirTemp,
                    location: device.sensors[r].location.clone(),
                    inputs: Derivation::DeltaT {
                        supply: (i, s),
                        ret: (i, r),
                    },
                    detectors: new_detectors(&detection.delta_t),
                });
            }
        }
    }
    if detection.derived_inlet_over_supply {
        let supplies: Vec<_> = sensors
            .iter()
            .filter(|(_, s)| s.kind == SensorKind::SupplyAirTemp)
            .collect();
        for &(i_ref, inlet) in sensors
            .iter()
            .filter(|(_, s)| s.kind == SensorKind::InletTemp)
        {
            let same_zone = |s: &&&(SensorRef, &coldaisle_config::Sensor)| {
                s.1.location.zone == inlet.location.zone
            };
            // Prefer the cooler of the same row; a cooler's own inlet probe is not a rack's.
            let supply = supplies
                .iter()
                .filter(same_zone)
                .filter(|s| s.0 .0 != i_ref.0)
                .find(|s| inlet.location.row.is_some() && s.1.location.row == inlet.location.row)
                .or_else(|| {
                    supplies
                        .iter()
                        .filter(same_zone)
                        .find(|s| s.0 .0 != i_ref.0)
                });
            if let Some(&&(s_ref, _)) = supply {
                out.push(DerivedSignal {
                    id: format!("{}.over_supply", inlet.id),
                    evidence: inlet.id.clone(),
                    kind: SensorKind::InletTemp,
                    location: inlet.location.clone(),
                    inputs: Derivation::InletOverSupply {
                        supply: s_ref,
                        inlet: i_ref,
                    },
                    detectors: new_detectors(&detection.inlet_over_supply),
                });
            }
        }
    }
    out
}

/// The sensor (or derived signal) an event is about.
struct EventSource<'a> {
    /// Its id.
    sensor: &'a str,
    /// The sensor it counts as in zone correlation (itself, or a derived signal's base).
    evidence: &'a str,
    kind: SensorKind,
    location: &'a Location,
    /// Decimals its values keep ([`readable::precision`]).
    decimals: u32,
}

/// Turns a fired detector into a sensor event (and a zone event through the correlator);
/// value and limit are rounded to `decimals`, the sensor's precision.
fn emit(
    out: &mut Vec<Payload>,
    correlator: &mut ZoneCorrelator,
    source: EventSource<'_>,
    f: Fired,
    ts: Timestamp,
) {
    let EventSource {
        sensor,
        evidence,
        kind,
        location,
        decimals,
    } = source;
    let category = if f.fault {
        Category::Device
    } else {
        kind.category()
    };
    let t = &f.transition;
    let event = SensorEvent {
        sensor: sensor.to_string(),
        kind,
        location: location.clone(),
        category,
        detector: f.detector.clone(),
        state: t.state,
        severity: f.severity,
        value: if t.value.is_finite() {
            readable::round_to(t.value, decimals)
        } else {
            0.0
        },
        limit: t.limit.map(|l| readable::round_to(l, decimals)),
        first_ts: t.first_ts,
        ts,
        expected_crossing: f.expected_crossing,
    };
    // Faults are not thermal conditions and forecasts are not conditions yet: neither makes
    // zone evidence.
    let zone_event = (category != Category::Device && !event.is_forecast())
        .then(|| {
            correlator.observe(&SensorTransition {
                sensor: evidence.to_string(),
                detector: if evidence == sensor {
                    f.detector
                } else {
                    format!("{sensor}:{}", f.detector)
                },
                zone: location.zone.clone(),
                rack: location.rack.clone(),
                category,
                state: event.state,
                severity: f.severity,
                value: event.value,
                ts,
            })
        })
        .flatten();
    out.push(Payload::SensorEvent(event));
    out.extend(zone_event.map(Payload::ZoneEvent));
}

/// True if the payload is a raised event of any kind (for progress logs).
pub fn is_raise(payload: &Payload) -> bool {
    match payload {
        Payload::SensorEvent(e) => e.state == EventState::Raised,
        Payload::ZoneEvent(e) => e.state == EventState::Raised,
        Payload::DeviceEvent(e) => e.state == EventState::Raised,
        Payload::ReadingSummary(_) => false,
    }
}

pub mod readable;
#[cfg(test)]
mod tests;
