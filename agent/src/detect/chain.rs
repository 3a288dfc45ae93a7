//! All detectors of one sensor, in the order the daemon and `replay` run them:
//! impossible value (a bad sample goes no further) → fixed limits per level → rate of change
//! per window → stuck → learned band → learned baseline → step change; each detector's output
//! then passes its flap gate. Last, the predictive warning ([`super::forecast`], when the kind
//! has `forecast` on and the sensor an upper limit) judges the trend against the upper warning
//! limit; its own hysteresis (it clears only when the trend turns) replaces a flap gate.
//!
//! Settings come from `[detection.<kind>]` (presets) and the point's own `threshold`; the
//! state of every detector can be exported and restored by detector name.

use super::band::BandDetector;
use super::baseline::BaselineDetector;
use super::fault::{ImpossibleValue, Stale};
use super::flap::FlapGate;
use super::forecast::Forecaster;
use super::rate::RateDetector;
use super::step::StepDetector;
use super::stuck::StuckDetector;
use super::threshold::ThresholdDetector;
use super::Transition;
use coldaisle_config::detection::{KindDetection, LimitLevel};
use coldaisle_config::Threshold;
use coldaisle_core::{EventState, Severity, Timestamp, FORECAST_DETECTOR};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

mod settings;
pub use settings::ChainSettings;

/// A detector's transition with what the event needs besides the sensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    /// Detector name, e.g. `threshold`, `rate_of_change_15m`, `stuck`.
    pub detector: String,
    /// Severity.
    pub severity: Severity,
    /// True for sensor faults (category `device`, never thermal).
    pub fault: bool,
    /// The transition.
    pub transition: Transition,
    /// For a forecast raise: when the trend is expected to reach the limit.
    pub expected_crossing: Option<Timestamp>,
}

/// One detector of a slot. Every slot is as large as the largest variant, so a variant much
/// larger than the others is boxed (the baseline: 400 bytes with its recovery and likelihood
/// state, `size_of` on 2026-12-07 after the trimmed likelihood, was 344; the next 168), which
/// keeps a sensor's slots at about 1.7 KB instead of 2.9 KB (BENCHMARKS.md, "The agent at
/// fleet scale").
#[derive(Debug, Clone)]
enum Kind {
    Threshold(ThresholdDetector),
    Rate(RateDetector),
    Stuck(StuckDetector),
    Band(BandDetector),
    Baseline(Box<BaselineDetector>),
    Step(StepDetector),
}

/// One detector and its flap gate. Its name is not stored: [`Slot::name`] derives it from the
/// detector (issue 18: a `String` per slot was 24 bytes and an allocation, 7 per inlet).
#[derive(Debug, Clone)]
struct Slot {
    severity: Severity,
    fault: bool,
    detector: Kind,
    gate: FlapGate,
}

/// A slot's detector name, written without allocating (`threshold`, `rate_of_change_15m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotName {
    /// A fixed name.
    Fixed(&'static str),
    /// `rate_of_change_` and the window in humantime's form ([`RateDetector::name`]).
    Rate(Duration),
}

impl std::fmt::Display for SlotName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SlotName::Fixed(name) => f.write_str(name),
            SlotName::Rate(window) => {
                write!(f, "rate_of_change_{}", humantime::format_duration(*window))
            }
        }
    }
}

impl SlotName {
    /// The name as a string (allocates only for a rate).
    fn to_cow(self) -> std::borrow::Cow<'static, str> {
        match self {
            SlotName::Fixed(name) => name.into(),
            SlotName::Rate(_) => self.to_string().into(),
        }
    }
}

impl Slot {
    /// The detector's name (what events and the stored state call it).
    fn name(&self) -> SlotName {
        match &self.detector {
            Kind::Threshold(_) => SlotName::Fixed(level_name(self.severity)),
            Kind::Rate(d) => SlotName::Rate(d.window()),
            Kind::Stuck(_) => SlotName::Fixed("stuck"),
            Kind::Band(_) => SlotName::Fixed("learned_band"),
            Kind::Baseline(_) => SlotName::Fixed("learned_baseline"),
            Kind::Step(_) => SlotName::Fixed("step_change"),
        }
    }
}

/// Every detector of one sensor.
#[derive(Debug, Clone)]
pub struct SensorDetectors {
    /// Every gate's window (`flap_window`): one per sensor, not one per gate.
    flap_window: Duration,
    impossible: ImpossibleValue,
    impossible_gate: FlapGate,
    stale: Stale,
    slots: Vec<Slot>,
    /// Predictive warning against the upper warning limit (None: off or no upper limit).
    forecast: Option<Forecaster>,
}

fn level_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Warning => "threshold",
        Severity::Critical => "threshold_critical",
        Severity::Info => "threshold_info",
    }
}

impl SensorDetectors {
    /// The detectors for a sensor of a kind with settings `kind`; `point` is the point's own
    /// threshold (it replaces the upper limit of the level of its severity). The chain has its
    /// own settings: to share them between sensors, use [`SensorDetectors::with_settings`].
    pub fn new(
        kind: &KindDetection,
        point: Option<&Threshold>,
        flap_window: Duration,
        stale_after: Duration,
    ) -> Self {
        Self::with_settings(&ChainSettings::new(kind), point, flap_window, stale_after)
    }

    /// The detectors for a sensor whose kind's settings are `settings` (shared, not copied:
    /// the chain holds pointers to them); `point` as in [`SensorDetectors::new`].
    pub fn with_settings(
        settings: &ChainSettings,
        point: Option<&Threshold>,
        flap_window: Duration,
        stale_after: Duration,
    ) -> Self {
        let levels = settings.levels_with(point);
        let slot = |severity, fault, detector| Slot {
            severity,
            fault,
            detector,
            gate: FlapGate::new(),
        };
        let mut slots = Vec::new();
        for level in levels {
            slots.push(slot(
                level.severity,
                false,
                Kind::Threshold(ThresholdDetector::shared(level)),
            ));
        }
        for rate in &settings.rates {
            let d = RateDetector::new(Arc::clone(rate));
            slots.push(slot(Severity::Warning, false, Kind::Rate(d)));
        }
        if let Some(stuck) = &settings.stuck {
            slots.push(slot(
                Severity::Warning,
                true,
                Kind::Stuck(StuckDetector::new(Arc::clone(stuck))),
            ));
        }
        if let Some(band) = &settings.band {
            slots.push(slot(
                band.severity,
                false,
                Kind::Band(BandDetector::new(Arc::clone(band))),
            ));
        }
        if let Some(baseline) = &settings.baseline {
            slots.push(slot(
                baseline.severity,
                false,
                Kind::Baseline(Box::new(BaselineDetector::new(Arc::clone(baseline)))),
            ));
        }
        if let Some(step) = &settings.step {
            // A level shift is a density change, not an alarm: always `info`.
            slots.push(slot(
                Severity::Info,
                false,
                Kind::Step(StepDetector::new(Arc::clone(step))),
            ));
        }
        let forecast = settings
            .forecast
            .as_ref()
            .zip(forecast_limit(&slots))
            .map(|(settings, limit)| Forecaster::new(Arc::clone(settings), limit));
        // Held for the agent's lifetime, one per sensor: no spare capacity.
        slots.shrink_to_fit();
        SensorDetectors {
            flap_window,
            impossible: ImpossibleValue::new(settings.valid_range, Arc::clone(&settings.sentinels)),
            impossible_gate: FlapGate::new(),
            stale: Stale::new(stale_after),
            slots,
            forecast,
        }
    }

    /// Names of the detectors that run, in order.
    pub fn detector_names(&self) -> Vec<String> {
        let mut names = vec!["impossible_value".to_string()];
        names.extend(self.slots.iter().map(|s| s.name().to_string()));
        if self.forecast.is_some() {
            names.push(FORECAST_DETECTOR.to_string());
        }
        names.push("stale".to_string());
        names
    }

    /// The fixed-limit levels the chain judges, in order (the point's own threshold merged in).
    pub fn threshold_levels(&self) -> impl Iterator<Item = &LimitLevel> {
        self.slots.iter().filter_map(|s| match &s.detector {
            Kind::Threshold(d) => Some(d.config()),
            _ => None,
        })
    }

    /// The raw sentinels the impossible-value detector rejects (shared per kind).
    pub fn impossible_sentinels(&self) -> &[f64] {
        self.impossible.sentinels()
    }

    /// Whether a sample is physically possible (not a sentinel, inside the valid range).
    pub fn is_possible(&self, raw: f64, value: f64) -> bool {
        self.impossible.check(raw, value).is_ok()
    }

    /// Feeds one sample: `raw` as the device sent it (for sentinels), `value` normalised.
    pub fn observe(&mut self, ts: Timestamp, raw: f64, value: f64) -> Vec<Fired> {
        let mut out = Vec::new();
        if let Some(t) = self.stale.observe(ts, true, value) {
            out.push(fault("stale", t));
        }
        let window = self.flap_window;
        let (valid, t) = self.impossible.observe(ts, raw, value);
        if let Some(t) = t.and_then(|t| self.impossible_gate.filter(t, window)) {
            out.push(fault("impossible_value", t));
        }
        if let Some(t) = self.impossible_gate.tick(ts, value, window) {
            out.push(fault("impossible_value", t));
        }
        if !valid {
            return out;
        }
        // A confirmed step (level after − before): the learned band re-learns at the new level.
        let mut step = None;
        for slot in &mut self.slots {
            let t = match &mut slot.detector {
                Kind::Threshold(d) => d.observe(ts, value),
                Kind::Rate(d) => d.observe(ts, value),
                Kind::Stuck(d) => d.observe(ts, value),
                Kind::Band(d) => d.observe(ts, value),
                Kind::Baseline(d) => d.observe(ts, value),
                Kind::Step(d) => {
                    let t = d.observe(ts, value);
                    step = t
                        .as_ref()
                        .filter(|t| t.state == EventState::Raised)
                        .and_then(|t| t.limit.map(|before| t.value - before));
                    t
                }
            };
            let passed = t.and_then(|t| slot.gate.filter(t, window));
            for t in passed.into_iter().chain(slot.gate.tick(ts, value, window)) {
                out.push(Fired {
                    detector: slot.name().to_string(),
                    severity: slot.severity,
                    fault: slot.fault,
                    transition: t,
                    expected_crossing: None,
                });
            }
        }
        if let Some(shift) = step {
            self.relearn_band(shift, ts, value, &mut out);
        }
        if let Some(f) = &mut self.forecast {
            if let Some(t) = f.observe(ts, value) {
                let expected_crossing = match t.state {
                    EventState::Raised => f.expected_crossing(),
                    EventState::Cleared => None,
                };
                out.push(Fired {
                    detector: FORECAST_DETECTOR.to_string(),
                    severity: Severity::Warning,
                    fault: false,
                    transition: t,
                    expected_crossing,
                });
            }
        }
        out
    }

    /// Moves the learned band to the level a step change confirmed (the slot order runs the
    /// band before the step detector, so it judged this sample at the old level); an open band
    /// raise clears through its gate.
    fn relearn_band(&mut self, shift: f64, ts: Timestamp, value: f64, out: &mut Vec<Fired>) {
        let window = self.flap_window;
        for slot in &mut self.slots {
            let Kind::Band(band) = &mut slot.detector else {
                continue;
            };
            let cleared = band.shift_level(shift, ts, value);
            if let Some(t) = cleared.and_then(|t| slot.gate.filter(t, window)) {
                out.push(Fired {
                    detector: slot.name().to_string(),
                    severity: slot.severity,
                    fault: slot.fault,
                    transition: t,
                    expected_crossing: None,
                });
            }
        }
    }

    /// Records a poll in which the sensor gave no reading (the point failed).
    pub fn missing(&mut self, ts: Timestamp) -> Vec<Fired> {
        self.stale
            .observe(ts, false, f64::NAN)
            .map(|t| fault("stale", t))
            .into_iter()
            .collect()
    }

    /// Flaps counted so far over all detectors.
    pub fn flaps(&self) -> u64 {
        self.impossible_gate.state.flaps
            + self.slots.iter().map(|s| s.gate.state.flaps).sum::<u64>()
    }

    /// The state of every detector, by name (what survives a restart).
    pub fn export(&self) -> BTreeMap<String, Value> {
        let mut map = BTreeMap::new();
        let mut put = |name: &str, v: Result<Value, serde_json::Error>| {
            if let Ok(v) = v {
                map.insert(name.to_string(), v);
            }
        };
        put(
            "impossible_value",
            serde_json::to_value(&self.impossible.state),
        );
        put(
            "impossible_value.flap",
            serde_json::to_value(&self.impossible_gate.state),
        );
        put("stale", serde_json::to_value(&self.stale.state));
        if let Some(f) = &self.forecast {
            put(FORECAST_DETECTOR, serde_json::to_value(&f.state));
        }
        for s in &self.slots {
            let v = match &s.detector {
                Kind::Threshold(d) => serde_json::to_value(d.state),
                Kind::Rate(d) => serde_json::to_value(&d.state),
                Kind::Stuck(d) => serde_json::to_value(&d.state),
                Kind::Band(d) => serde_json::to_value(&d.state),
                Kind::Baseline(d) => serde_json::to_value(&d.state),
                Kind::Step(d) => serde_json::to_value(&d.state),
            };
            let name = s.name();
            put(&name.to_cow(), v);
            put(&format!("{name}.flap"), serde_json::to_value(&s.gate.state));
        }
        map
    }

    /// The same state as [`SensorDetectors::export`], serialised in place: writing it gives
    /// the same JSON object without building a [`Value`] tree (the periodic save of every
    /// sensor's state would otherwise hold a tree of the whole fleet at once).
    #[must_use]
    pub fn export_view(&self) -> ExportView<'_> {
        ExportView(self)
    }

    /// Restores what [`SensorDetectors::export`] produced; detectors missing from `map` or
    /// whose stored state no longer fits keep their fresh state. Returns how many restored.
    pub fn restore(&mut self, map: &BTreeMap<String, Value>) -> usize {
        fn load<T: serde::de::DeserializeOwned>(
            map: &BTreeMap<String, Value>,
            name: &str,
            into: &mut T,
        ) -> usize {
            match map.get(name).map(|v| serde_json::from_value(v.clone())) {
                Some(Ok(v)) => {
                    *into = v;
                    1
                }
                _ => 0,
            }
        }
        let mut n = load(map, "impossible_value", &mut self.impossible.state)
            + load(
                map,
                "impossible_value.flap",
                &mut self.impossible_gate.state,
            )
            + load(map, "stale", &mut self.stale.state)
            + self
                .forecast
                .as_mut()
                .map_or(0, |f| load(map, FORECAST_DETECTOR, &mut f.state));
        for s in &mut self.slots {
            let name = s.name();
            let key = name.to_cow();
            n += match &mut s.detector {
                Kind::Threshold(d) => load(map, &key, &mut d.state),
                Kind::Rate(d) => load(map, &key, &mut d.state),
                Kind::Stuck(d) => load(map, &key, &mut d.state),
                Kind::Band(d) => load(map, &key, &mut d.state),
                Kind::Baseline(d) => load(map, &key, &mut d.state),
                Kind::Step(d) => load(map, &key, &mut d.state),
            };
            n += load(map, &format!("{name}.flap"), &mut s.gate.state);
        }
        n
    }
}

/// A sensor's detector states as one JSON object, keyed like [`SensorDetectors::export`]
/// (built by [`SensorDetectors::export_view`]). Unlike `export`, a state that fails to
/// serialise fails the whole write instead of being left out.
#[derive(Debug, Clone, Copy)]
pub struct ExportView<'a>(&'a SensorDetectors);

impl serde::Serialize for ExportView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let d = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("impossible_value", &d.impossible.state)?;
        map.serialize_entry("impossible_value.flap", &d.impossible_gate.state)?;
        map.serialize_entry("stale", &d.stale.state)?;
        if let Some(f) = &d.forecast {
            map.serialize_entry(FORECAST_DETECTOR, &f.state)?;
        }
        for s in &d.slots {
            let name = s.name().to_cow();
            match &s.detector {
                Kind::Threshold(x) => map.serialize_entry(&name, &x.state)?,
                Kind::Rate(x) => map.serialize_entry(&name, &x.state)?,
                Kind::Stuck(x) => map.serialize_entry(&name, &x.state)?,
                Kind::Band(x) => map.serialize_entry(&name, &x.state)?,
                Kind::Baseline(x) => map.serialize_entry(&name, &x.state)?,
                Kind::Step(x) => map.serialize_entry(&name, &x.state)?,
            }
            map.serialize_entry(&format_args!("{name}.flap"), &s.gate.state)?;
        }
        map.end()
    }
}

fn fault(name: &str, transition: Transition) -> Fired {
    Fired {
        detector: name.to_string(),
        severity: Severity::Warning,
        fault: true,
        transition,
        expected_crossing: None,
    }
}

/// The limit a forecast aims at: the upper limit of the warning level (the point's own
/// threshold already merged in), else the lowest upper limit of any level.
fn forecast_limit(slots: &[Slot]) -> Option<f64> {
    let uppers = || {
        slots.iter().filter_map(|s| match &s.detector {
            Kind::Threshold(d) => d.config().high.map(|h| (s.severity, h)),
            _ => None,
        })
    };
    uppers()
        .find(|(severity, _)| *severity == Severity::Warning)
        .or_else(|| uppers().min_by(|a, b| a.1.total_cmp(&b.1)))
        .map(|(_, h)| h)
}

#[cfg(test)]
mod tests;
