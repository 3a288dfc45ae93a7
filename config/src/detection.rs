//! Detector settings per sensor kind: the `[detection]` table of the agent config.
//!
//! Every kind starts from a built-in preset (ASHRAE TC 9.9, 2021 thermal guidelines for air
//! temperatures, humidity and dew point; common vendor practice for batteries and coolers) and
//! `[detection.<kind>]` overrides single keys of it:
//!
//! ```toml
//! [detection]
//! ashrae_class = "A1"       # allowable envelope for the critical level: A1 (default) .. A4
//! flap_window = "10m"       # a raise this soon after a clear is a flap: counted, not forwarded
//! # derived signals: derived_dew_point, derived_delta_t, derived_inlet_over_supply (all true)
//!
//! [detection.inlet_temp]
//! warning_high = 26.0       # recommended envelope (warning level)
//! critical_high = 30.0      # allowable envelope (critical level)
//! min_duration = "2m"
//! rate_per_15m = 3.0
//! ```
//!
//! `[detection.delta_t]` and `[detection.inlet_over_supply]` tune the derived cooler ΔT and the
//! rack inlet's excess over its cooling supply the same way.
//!
//! A point's own `threshold` table still wins for the level of its `severity` (upper limit).
//!
//! The generic `temperature` kind (placement unknown: a machine, a pipe, outdoor air) gets no
//! room-air physics: no limits, no rate limits, a valid range of −50…150 °C, and a learned
//! seasonal baseline with change points instead of the band (`learned_baseline`,
//! `baseline_k`, `baseline_spike_k`, `baseline_min_width`, `baseline_min_duration`,
//! `baseline_warmup`; any kind can turn it on with `learned_baseline = true`).
//!
//! Predictive warning (`forecast`, `forecast_horizon`, `forecast_window`): a robust trend of
//! the last `forecast_window` (30 min) raises a `forecast` event when it reaches the sensor's
//! upper warning limit within `forecast_horizon` (30 min). On by default for `inlet_temp`
//! while it has an upper limit; `forecast = true` turns it on for any kind with an upper limit
//! (the kind's or the point's own `threshold`).
//!
//! The rack power kinds `rack_power` (kW) and `rack_current` (A) have no ASHRAE limits: the
//! learned band judges them, and a step-change detector reports a sustained level shift as an
//! `info` event with the levels before and after (a density change, not an alarm):
//! `step_change`, `step_min_change`, `step_min_duration`, `step_reference`.

use crate::error::{KeyPath, Problem};
use coldaisle_core::{SensorKind, Severity};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// ASHRAE equipment class: chooses the allowable (critical) envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum AshraeClass {
    /// A1: 15–32 °C, 8–80 %RH, dew point ≤ 17 °C (enterprise servers; the default).
    #[default]
    A1,
    /// A2: 10–35 °C, 8–80 %RH, dew point ≤ 21 °C.
    A2,
    /// A3: 5–40 °C, 8–85 %RH, dew point ≤ 24 °C.
    A3,
    /// A4: 5–45 °C, 8–90 %RH, dew point ≤ 24 °C.
    A4,
}

impl AshraeClass {
    /// Allowable inlet temperature range (°C).
    fn inlet(self) -> (f64, f64) {
        match self {
            AshraeClass::A1 => (15.0, 32.0),
            AshraeClass::A2 => (10.0, 35.0),
            AshraeClass::A3 => (5.0, 40.0),
            AshraeClass::A4 => (5.0, 45.0),
        }
    }
    /// Allowable relative humidity range (%RH).
    fn humidity(self) -> (f64, f64) {
        match self {
            AshraeClass::A1 | AshraeClass::A2 => (8.0, 80.0),
            AshraeClass::A3 => (8.0, 85.0),
            AshraeClass::A4 => (8.0, 90.0),
        }
    }
    /// Allowable dew point range (°C).
    fn dew_point(self) -> (f64, f64) {
        match self {
            AshraeClass::A1 => (-12.0, 17.0),
            AshraeClass::A2 => (-12.0, 21.0),
            AshraeClass::A3 | AshraeClass::A4 => (-12.0, 24.0),
        }
    }
}

/// Overrides of one kind's detector settings, as written (every key optional).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKindDetection {
    /// `false` turns the fixed limits off.
    #[serde(default)]
    pub limits: Option<bool>,
    /// Warning above this.
    #[serde(default)]
    pub warning_high: Option<f64>,
    /// Warning below this.
    #[serde(default)]
    pub warning_low: Option<f64>,
    /// Critical above this.
    #[serde(default)]
    pub critical_high: Option<f64>,
    /// Critical below this.
    #[serde(default)]
    pub critical_low: Option<f64>,
    /// Distance back inside a limit before its event clears.
    #[serde(default)]
    pub hysteresis: Option<f64>,
    /// How long a limit must be crossed before its event is raised.
    #[serde(default, with = "humantime_serde")]
    pub min_duration: Option<Duration>,
    /// `false` turns the rate-of-change detector off.
    #[serde(default)]
    pub rate: Option<bool>,
    /// Largest change allowed within any 15 minutes.
    #[serde(default)]
    pub rate_per_15m: Option<f64>,
    /// Largest change allowed within any hour.
    #[serde(default)]
    pub rate_per_hour: Option<f64>,
    /// `false` turns the stuck (flat-line) detector off.
    #[serde(default)]
    pub stuck: Option<bool>,
    /// A value that has not changed (beyond `stuck_tolerance`) this long is stuck.
    #[serde(default, with = "humantime_serde")]
    pub stuck_after: Option<Duration>,
    /// Changes up to this size count as "no change" for the stuck detector.
    #[serde(default)]
    pub stuck_tolerance: Option<f64>,
    /// Lowest physically possible value (normalised unit); below is a sensor fault.
    #[serde(default)]
    pub valid_min: Option<f64>,
    /// Highest physically possible value (normalised unit); above is a sensor fault.
    #[serde(default)]
    pub valid_max: Option<f64>,
    /// Raw device values that mean "no reading" (vendor sentinels), e.g. -999 or 32767.
    #[serde(default)]
    pub sentinels: Option<Vec<f64>>,
    /// `false` turns the learned band off.
    #[serde(default)]
    pub learned_band: Option<bool>,
    /// Band half-width in robust spreads (mean absolute deviations) around the learned centre.
    #[serde(default)]
    pub band_k: Option<f64>,
    /// Smallest band half-width (normalised unit), for sensors that barely move.
    #[serde(default)]
    pub band_min_width: Option<f64>,
    /// How long a value must stay outside the band before its event is raised.
    #[serde(default, with = "humantime_serde")]
    pub band_min_duration: Option<Duration>,
    /// Samples an hour-of-day bucket must have learned before it judges anything.
    #[serde(default)]
    pub band_warmup: Option<u32>,
    /// Severity of learned-band and learned-baseline events.
    #[serde(default)]
    pub band_severity: Option<Severity>,
    /// `false` turns the learned baseline off (`true` turns it on for any kind).
    #[serde(default)]
    pub learned_baseline: Option<bool>,
    /// Baseline: a value this many robust standard deviations from the learned baseline is
    /// outside.
    #[serde(default)]
    pub baseline_k: Option<f64>,
    /// Baseline: a value this many robust standard deviations away is raised at once (a spike
    /// far beyond any noise); `0` turns immediate raises off.
    #[serde(default)]
    pub baseline_spike_k: Option<f64>,
    /// Baseline: smallest distance from the baseline that counts as outside (normalised unit).
    #[serde(default)]
    pub baseline_min_width: Option<f64>,
    /// Baseline: how long a value must stay outside before its event is raised.
    #[serde(default, with = "humantime_serde")]
    pub baseline_min_duration: Option<Duration>,
    /// Baseline: how long the baseline learns before it judges anything.
    #[serde(default, with = "humantime_serde")]
    pub baseline_warmup: Option<Duration>,
    /// `false` turns the step-change detector off (`true` turns it on for any kind).
    #[serde(default)]
    pub step_change: Option<bool>,
    /// Step change: smallest shift of the level (normalised unit) that counts.
    #[serde(default)]
    pub step_min_change: Option<f64>,
    /// Step change: how long the new level must hold before the step is reported.
    #[serde(default, with = "humantime_serde")]
    pub step_min_duration: Option<Duration>,
    /// Step change: length of the reference window before the step (the old level).
    #[serde(default, with = "humantime_serde")]
    pub step_reference: Option<Duration>,
    /// `false` turns the predictive warning off (`true` turns it on for any kind with an
    /// upper limit).
    #[serde(default)]
    pub forecast: Option<bool>,
    /// Forecast: raise when the trend reaches the upper limit within this.
    #[serde(default, with = "humantime_serde")]
    pub forecast_horizon: Option<Duration>,
    /// Forecast: the trend is fitted over the samples of this last window.
    #[serde(default, with = "humantime_serde")]
    pub forecast_window: Option<Duration>,
}

/// The `[detection]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDetection {
    /// ASHRAE class of the equipment (allowable envelope = critical level).
    #[serde(default)]
    pub ashrae_class: AshraeClass,
    /// Flap window: a raise within this time after the same detector cleared is counted, not
    /// forwarded, unless the condition then lasts this long. `0s` turns suppression off.
    #[serde(default, with = "humantime_serde")]
    pub flap_window: Option<Duration>,
    /// Readings older than this are not combined into derived signals.
    #[serde(default, with = "humantime_serde")]
    pub pair_max_age: Option<Duration>,
    /// A sensor without a valid reading for this long (while its device answers) is stale.
    #[serde(default, with = "humantime_serde")]
    pub stale_after: Option<Duration>,
    /// Derive a dew point from humidity and temperature of the same rack.
    #[serde(default = "yes")]
    pub derived_dew_point: bool,
    /// Derive the supply/return ΔT of each cooler that reports both.
    #[serde(default = "yes")]
    pub derived_delta_t: bool,
    /// Derive each rack inlet's excess over its zone's cooling supply air.
    #[serde(default = "yes")]
    pub derived_inlet_over_supply: bool,
    /// Rack inlet temperature.
    #[serde(default)]
    pub inlet_temp: Option<RawKindDetection>,
    /// Rack exhaust temperature.
    #[serde(default)]
    pub outlet_temp: Option<RawKindDetection>,
    /// Cooler supply air.
    #[serde(default)]
    pub supply_air_temp: Option<RawKindDetection>,
    /// Cooler return air.
    #[serde(default)]
    pub return_air_temp: Option<RawKindDetection>,
    /// Relative humidity.
    #[serde(default)]
    pub humidity: Option<RawKindDetection>,
    /// Dew point (measured or derived).
    #[serde(default)]
    pub dew_point: Option<RawKindDetection>,
    /// UPS battery temperature.
    #[serde(default)]
    pub battery_temp: Option<RawKindDetection>,
    /// Fan speed.
    #[serde(default)]
    pub fan_speed: Option<RawKindDetection>,
    /// Cooling state.
    #[serde(default)]
    pub cooling_state: Option<RawKindDetection>,
    /// Temperature of unknown placement.
    #[serde(default)]
    pub temperature: Option<RawKindDetection>,
    /// Rack active power (kW).
    #[serde(default)]
    pub rack_power: Option<RawKindDetection>,
    /// Rack current (A).
    #[serde(default)]
    pub rack_current: Option<RawKindDetection>,
    /// Derived supply/return ΔT of a cooler.
    #[serde(default)]
    pub delta_t: Option<RawKindDetection>,
    /// Derived rack inlet minus cooling supply air.
    #[serde(default)]
    pub inlet_over_supply: Option<RawKindDetection>,
}

fn yes() -> bool {
    true
}

impl Default for RawDetection {
    /// What an absent `[detection]` table means: presets only, derived signals on.
    fn default() -> Self {
        RawDetection {
            ashrae_class: AshraeClass::A1,
            flap_window: None,
            pair_max_age: None,
            stale_after: None,
            derived_dew_point: true,
            derived_delta_t: true,
            derived_inlet_over_supply: true,
            inlet_temp: None,
            outlet_temp: None,
            supply_air_temp: None,
            return_air_temp: None,
            humidity: None,
            dew_point: None,
            battery_temp: None,
            fan_speed: None,
            cooling_state: None,
            temperature: None,
            rack_power: None,
            rack_current: None,
            delta_t: None,
            inlet_over_supply: None,
        }
    }
}

/// One fixed-limit level (warning or critical): a band with hysteresis and minimum duration.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitLevel {
    /// Severity of this level's events.
    pub severity: Severity,
    /// Raise above this.
    pub high: Option<f64>,
    /// Raise below this.
    pub low: Option<f64>,
    /// Clear only once back inside by this much.
    pub hysteresis: f64,
    /// The limit must be crossed this long before the raise.
    pub min_duration: Duration,
}

impl From<crate::agent::Threshold> for LimitLevel {
    /// A point's `threshold` table as a level with an upper limit only.
    fn from(t: crate::agent::Threshold) -> LimitLevel {
        LimitLevel {
            severity: t.severity,
            high: Some(t.high),
            low: None,
            hysteresis: t.hysteresis,
            min_duration: t.min_duration,
        }
    }
}

/// A rate-of-change limit: at most `max_change` within any `window`.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    /// The window.
    pub window: Duration,
    /// Largest change allowed within it.
    pub max_change: f64,
}

/// Stuck (flat-line) detector settings.
#[derive(Debug, Clone, PartialEq)]
pub struct StuckSettings {
    /// No change for this long means stuck.
    pub after: Duration,
    /// Changes up to this size count as no change.
    pub tolerance: f64,
}

/// Learned-band settings (see `coldaisle_agent::detect::band` for the method).
#[derive(Debug, Clone, PartialEq)]
pub struct BandSettings {
    /// Half-width in robust spreads.
    pub k: f64,
    /// Smallest half-width.
    pub min_width: f64,
    /// Time outside the band before a raise.
    pub min_duration: Duration,
    /// Samples per hour-of-day bucket before it judges.
    pub warmup: u32,
    /// Severity of band events.
    pub severity: Severity,
}

/// Learned-baseline settings (see `coldaisle_agent::detect::baseline` for the method).
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineSettings {
    /// Outside when further than `k` robust standard deviations from the baseline.
    pub k: f64,
    /// Raised at once beyond this many robust standard deviations (0: never at once).
    pub spike_k: f64,
    /// Smallest distance that counts as outside.
    pub min_width: f64,
    /// Time outside before a raise.
    pub min_duration: Duration,
    /// Learning time before the first judgement.
    pub warmup: Duration,
    /// Severity of baseline events.
    pub severity: Severity,
}

/// Step-change settings (see `coldaisle_agent::detect::step` for the method).
#[derive(Debug, Clone, PartialEq)]
pub struct StepSettings {
    /// Smallest shift between the old and the new level (normalised unit).
    pub min_change: f64,
    /// The new level must hold this long before the step is reported.
    pub min_duration: Duration,
    /// Length of the reference window that gives the old level.
    pub reference: Duration,
}

/// Predictive-warning settings (see `coldaisle_agent::detect::forecast` for the method).
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastSettings {
    /// Samples of the last `window` make the trend.
    pub window: Duration,
    /// Raise when the crossing is expected within this.
    pub horizon: Duration,
}

impl Default for ForecastSettings {
    fn default() -> Self {
        ForecastSettings {
            window: Duration::from_secs(FORECAST_MIN * MIN),
            horizon: Duration::from_secs(FORECAST_MIN * MIN),
        }
    }
}

/// The resolved detector settings of one sensor kind.
#[derive(Debug, Clone, PartialEq)]
pub struct KindDetection {
    /// Fixed-limit levels (empty: no fixed limits).
    pub levels: Vec<LimitLevel>,
    /// Rate-of-change limits (empty: off).
    pub rates: Vec<RateLimit>,
    /// Stuck detector (None: off).
    pub stuck: Option<StuckSettings>,
    /// Physically possible range (normalised unit).
    pub valid_range: (f64, f64),
    /// Raw vendor sentinel values.
    pub sentinels: Vec<f64>,
    /// Learned band (None: off).
    pub band: Option<BandSettings>,
    /// Learned seasonal baseline with change points (None: off).
    pub baseline: Option<BaselineSettings>,
    /// Step-change detector (None: off).
    pub step: Option<StepSettings>,
    /// Predictive warning against the upper warning limit (None: off; it also needs an upper
    /// limit, the kind's or the point's).
    pub forecast: Option<ForecastSettings>,
}

/// The resolved `[detection]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionConfig {
    /// ASHRAE class used for the presets.
    pub ashrae_class: AshraeClass,
    /// Flap window (zero: off).
    pub flap_window: Duration,
    /// Maximum age of a reading used in a derived signal.
    pub pair_max_age: Duration,
    /// No valid reading for this long: stale.
    pub stale_after: Duration,
    /// Derive dew points.
    pub derived_dew_point: bool,
    /// Derive cooler ΔT.
    pub derived_delta_t: bool,
    /// Derive inlet-over-supply.
    pub derived_inlet_over_supply: bool,
    /// Settings per kind.
    pub kinds: BTreeMap<SensorKind, KindDetection>,
    /// Settings of the derived cooler ΔT.
    pub delta_t: KindDetection,
    /// Settings of the derived inlet-over-supply.
    pub inlet_over_supply: KindDetection,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        // The presets always validate; an error here would be a bug in the table below.
        resolve_detection(&RawDetection::default())
            .unwrap_or_else(|p| panic!("built-in detection presets are invalid: {}", p.message))
    }
}

impl DetectionConfig {
    /// The settings of a kind.
    pub fn for_kind(&self, kind: SensorKind) -> &KindDetection {
        // Every kind is filled by `resolve_detection`.
        self.kinds.get(&kind).unwrap_or(&self.delta_t)
    }
}

/// All sensor kinds, in a fixed order.
pub const ALL_KINDS: [SensorKind; 12] = [
    SensorKind::InletTemp,
    SensorKind::OutletTemp,
    SensorKind::SupplyAirTemp,
    SensorKind::ReturnAirTemp,
    SensorKind::Humidity,
    SensorKind::DewPoint,
    SensorKind::BatteryTemp,
    SensorKind::FanSpeed,
    SensorKind::CoolingState,
    SensorKind::Temperature,
    SensorKind::RackPower,
    SensorKind::RackCurrent,
];

/// The preset as raw settings (so overrides and presets go through the same resolution).
struct Preset {
    warning: (Option<f64>, Option<f64>),
    critical: (Option<f64>, Option<f64>),
    hysteresis: f64,
    min_duration: Duration,
    rate: Option<(f64, f64)>,
    stuck_after: Option<Duration>,
    valid: (f64, f64),
    band: bool,
    band_min_width: f64,
    /// Learned seasonal baseline (kinds without room-air physics).
    baseline: bool,
    /// Step-change detector with this smallest shift (None: off).
    step_min_change: Option<f64>,
    /// Predictive warning while the kind has an upper limit.
    forecast: bool,
}

const MIN: u64 = 60;
/// What every preset starts from: no limits, no rate limit, no fault rules, no learned
/// detector, a valid range wide enough for any reading; each kind states what it adds.
const UNLIMITED: Preset = Preset {
    warning: (None, None),
    critical: (None, None),
    hysteresis: 0.0,
    min_duration: Duration::from_secs(5 * MIN),
    rate: None,
    stuck_after: None,
    valid: (-1e9, 1e9),
    band: false,
    band_min_width: 1.0,
    baseline: false,
    step_min_change: None,
    forecast: false,
};
/// Forecast: default window and horizon, in minutes.
const FORECAST_MIN: u64 = 30;
/// Learned baseline: outside beyond this many robust standard deviations.
const BASELINE_K: f64 = 6.0;
/// Learned baseline: raised at once beyond this many.
const BASELINE_SPIKE_K: f64 = 12.0;
/// Learned baseline: learning time before judging, in minutes.
const BASELINE_WARMUP_MIN: u64 = 24 * 60;
/// Sentinels seen in the wild: -999/-9999 "no probe", 0x7FFF / 0x8000 / 0xFFFF as 16-bit
/// "not available", i32::MAX.
const SENTINELS: [f64; 6] = [-999.0, -9999.0, 32767.0, -32768.0, 65535.0, 2147483647.0];

fn preset(kind: SensorKind, class: AshraeClass) -> Preset {
    let temp = |warning, critical, rate, band| Preset {
        warning,
        critical,
        hysteresis: 1.0,
        min_duration: Duration::from_secs(5 * MIN),
        rate,
        stuck_after: Some(Duration::from_secs(240 * MIN)),
        valid: (-40.0, 85.0),
        band,
        band_min_width: 1.0,
        baseline: false,
        step_min_change: None,
        forecast: false,
    };
    let ashrae_rate = Some((5.0, 20.0));
    match kind {
        SensorKind::InletTemp => {
            let (lo, hi) = class.inlet();
            Preset {
                forecast: true,
                ..temp(
                    (Some(18.0), Some(27.0)),
                    (Some(lo), Some(hi)),
                    ashrae_rate,
                    true,
                )
            }
        }
        SensorKind::SupplyAirTemp => temp((None, None), (None, None), ashrae_rate, true),
        // Placement unknown (a process, a pipe, a machine, outdoor air): no room-air physics.
        // No limits, no rate limits, a wide valid range; its own learned seasonal baseline
        // judges it (the method: `coldaisle_agent::detect::baseline`).
        SensorKind::Temperature => Preset {
            valid: (-50.0, 150.0),
            band: false,
            baseline: true,
            ..temp((None, None), (None, None), None, false)
        },
        SensorKind::OutletTemp | SensorKind::ReturnAirTemp => {
            temp((None, None), (None, None), None, true)
        }
        SensorKind::BatteryTemp => temp((None, Some(30.0)), (None, Some(40.0)), ashrae_rate, true),
        SensorKind::Humidity => {
            let (lo, hi) = class.humidity();
            Preset {
                warning: (None, Some(70.0)),
                critical: (Some(lo), Some(hi)),
                hysteresis: 2.0,
                stuck_after: Some(Duration::from_secs(720 * MIN)),
                valid: (0.0, 100.0),
                band: true,
                band_min_width: 5.0,
                ..UNLIMITED
            }
        }
        SensorKind::DewPoint => {
            let (lo, hi) = class.dew_point();
            Preset {
                warning: (Some(-9.0), Some(15.0)),
                critical: (Some(lo), Some(hi)),
                hysteresis: 1.0,
                valid: (-60.0, 60.0),
                ..UNLIMITED
            }
        }
        SensorKind::FanSpeed => Preset {
            valid: (0.0, 30000.0),
            band: true,
            band_min_width: 200.0,
            ..UNLIMITED
        },
        SensorKind::CoolingState => UNLIMITED,
        // Rack power and current: no ASHRAE limits. The learned band judges the daily shape;
        // the step-change detector reports a sustained shift (1 kW, 4 A) as a density change.
        // Valid ranges cover the largest rack feeds (a 3-phase 63 A / 415 V feed is ~45 kW).
        SensorKind::RackPower => Preset {
            valid: (0.0, 200.0),
            band: true,
            band_min_width: 0.5,
            step_min_change: Some(1.0),
            ..UNLIMITED
        },
        SensorKind::RackCurrent => Preset {
            valid: (0.0, 1000.0),
            band: true,
            band_min_width: 2.0,
            step_min_change: Some(4.0),
            ..UNLIMITED
        },
    }
}

/// The ΔT preset: below 3 °C for 10 minutes means the cooler no longer removes heat.
fn delta_t_preset() -> Preset {
    Preset {
        warning: (Some(3.0), None),
        hysteresis: 1.0,
        min_duration: Duration::from_secs(10 * MIN),
        valid: (-50.0, 50.0),
        band: true,
        band_min_width: 2.0,
        ..UNLIMITED
    }
}

/// The inlet-over-supply preset: a rack inlet more than 8 °C above its cooler's supply air for
/// 10 minutes breathes recirculated exhaust (bypass, missing blanking panels, open doors), often
/// long before it reaches 27 °C.
fn inlet_over_supply_preset() -> Preset {
    Preset {
        warning: (None, Some(8.0)),
        hysteresis: 1.0,
        min_duration: Duration::from_secs(10 * MIN),
        valid: (-50.0, 50.0),
        ..UNLIMITED
    }
}

/// Validates `[detection]` and merges it over the presets.
pub fn resolve_detection(raw: &RawDetection) -> Result<DetectionConfig, Problem> {
    let at = KeyPath::default().key("detection");
    let class = raw.ashrae_class;
    let overrides: [(SensorKind, &Option<RawKindDetection>); 12] = [
        (SensorKind::InletTemp, &raw.inlet_temp),
        (SensorKind::OutletTemp, &raw.outlet_temp),
        (SensorKind::SupplyAirTemp, &raw.supply_air_temp),
        (SensorKind::ReturnAirTemp, &raw.return_air_temp),
        (SensorKind::Humidity, &raw.humidity),
        (SensorKind::DewPoint, &raw.dew_point),
        (SensorKind::BatteryTemp, &raw.battery_temp),
        (SensorKind::FanSpeed, &raw.fan_speed),
        (SensorKind::CoolingState, &raw.cooling_state),
        (SensorKind::Temperature, &raw.temperature),
        (SensorKind::RackPower, &raw.rack_power),
        (SensorKind::RackCurrent, &raw.rack_current),
    ];
    let empty = RawKindDetection::default();
    let mut kinds = BTreeMap::new();
    for (kind, over) in overrides {
        let settings = resolve_kind(
            preset(kind, class),
            over.as_ref().unwrap_or(&empty),
            &at.key(kind.as_str()),
        )?;
        kinds.insert(kind, settings);
    }
    let delta_t = resolve_kind(
        delta_t_preset(),
        raw.delta_t.as_ref().unwrap_or(&empty),
        &at.key("delta_t"),
    )?;
    let inlet_over_supply = resolve_kind(
        inlet_over_supply_preset(),
        raw.inlet_over_supply.as_ref().unwrap_or(&empty),
        &at.key("inlet_over_supply"),
    )?;
    let positive = |d: Option<Duration>, default: u64, key: &str| match d {
        Some(d) if d.is_zero() => Err(Problem::new(at.key(key), "must be above zero")),
        Some(d) => Ok(d),
        None => Ok(Duration::from_secs(default)),
    };
    Ok(DetectionConfig {
        ashrae_class: class,
        flap_window: raw.flap_window.unwrap_or(Duration::from_secs(10 * MIN)),
        pair_max_age: positive(raw.pair_max_age, 5 * MIN, "pair_max_age")?,
        stale_after: positive(raw.stale_after, 10 * MIN, "stale_after")?,
        derived_dew_point: raw.derived_dew_point,
        derived_delta_t: raw.derived_delta_t,
        derived_inlet_over_supply: raw.derived_inlet_over_supply,
        kinds,
        delta_t,
        inlet_over_supply,
    })
}

fn finite(value: Option<f64>, at: &KeyPath, key: &str) -> Result<Option<f64>, Problem> {
    match value {
        Some(v) if !v.is_finite() => Err(Problem::new(at.key(key), "must be a finite number")),
        other => Ok(other),
    }
}

fn non_negative(value: Option<f64>, at: &KeyPath, key: &str) -> Result<Option<f64>, Problem> {
    match value {
        Some(v) if !v.is_finite() || v < 0.0 => Err(Problem::new(
            at.key(key),
            "must be zero or a positive number",
        )),
        other => Ok(other),
    }
}

fn positive_f(value: Option<f64>, at: &KeyPath, key: &str) -> Result<Option<f64>, Problem> {
    match value {
        Some(v) if !v.is_finite() || v <= 0.0 => {
            Err(Problem::new(at.key(key), "must be a positive number"))
        }
        other => Ok(other),
    }
}

fn resolve_kind(p: Preset, raw: &RawKindDetection, at: &KeyPath) -> Result<KindDetection, Problem> {
    let pick = |over: Option<f64>, preset: Option<f64>| over.or(preset);
    let warning_high = pick(finite(raw.warning_high, at, "warning_high")?, p.warning.1);
    let warning_low = pick(finite(raw.warning_low, at, "warning_low")?, p.warning.0);
    let critical_high = pick(
        finite(raw.critical_high, at, "critical_high")?,
        p.critical.1,
    );
    let critical_low = pick(finite(raw.critical_low, at, "critical_low")?, p.critical.0);
    let hysteresis = non_negative(raw.hysteresis, at, "hysteresis")?.unwrap_or(p.hysteresis);
    let min_duration = raw.min_duration.unwrap_or(p.min_duration);
    for (lo, hi, key) in [
        (warning_low, warning_high, "warning_low"),
        (critical_low, critical_high, "critical_low"),
    ] {
        if let (Some(lo), Some(hi)) = (lo, hi) {
            if lo >= hi {
                return Err(Problem::new(
                    at.key(key),
                    format!("must be below the matching high limit ({hi})"),
                ));
            }
        }
    }
    let mut levels = Vec::new();
    if raw.limits.unwrap_or(true) {
        for (severity, low, high) in [
            (Severity::Warning, warning_low, warning_high),
            (Severity::Critical, critical_low, critical_high),
        ] {
            if low.is_some() || high.is_some() {
                levels.push(LimitLevel {
                    severity,
                    high,
                    low,
                    hysteresis,
                    min_duration,
                });
            }
        }
    }
    let rate_15 = positive_f(raw.rate_per_15m, at, "rate_per_15m")?;
    let rate_hour = positive_f(raw.rate_per_hour, at, "rate_per_hour")?;
    let rate_on = raw
        .rate
        .unwrap_or(p.rate.is_some() || rate_15.is_some() || rate_hour.is_some());
    let mut rates = Vec::new();
    if rate_on {
        let (d15, dh) = p.rate.unwrap_or((5.0, 20.0));
        rates.push(RateLimit {
            window: Duration::from_secs(15 * MIN),
            max_change: rate_15.unwrap_or(d15),
        });
        rates.push(RateLimit {
            window: Duration::from_secs(60 * MIN),
            max_change: rate_hour.unwrap_or(dh),
        });
    }
    let tolerance = non_negative(raw.stuck_tolerance, at, "stuck_tolerance")?.unwrap_or(0.0);
    if raw.stuck_after.is_some_and(|d| d.is_zero()) {
        return Err(Problem::new(at.key("stuck_after"), "must be above zero"));
    }
    let stuck_after = raw.stuck_after.or(p.stuck_after);
    let stuck = match (raw.stuck.unwrap_or(stuck_after.is_some()), stuck_after) {
        (true, Some(after)) => Some(StuckSettings { after, tolerance }),
        (true, None) => Some(StuckSettings {
            after: Duration::from_secs(240 * MIN),
            tolerance,
        }),
        (false, _) => None,
    };
    let valid_min = finite(raw.valid_min, at, "valid_min")?.unwrap_or(p.valid.0);
    let valid_max = finite(raw.valid_max, at, "valid_max")?.unwrap_or(p.valid.1);
    if valid_min >= valid_max {
        return Err(Problem::new(
            at.key("valid_min"),
            format!("must be below valid_max ({valid_max})"),
        ));
    }
    if let Some(list) = &raw.sentinels {
        if list.iter().any(|v| !v.is_finite()) {
            return Err(Problem::new(
                at.key("sentinels"),
                "must be a list of finite numbers",
            ));
        }
    }
    let band_k = positive_f(raw.band_k, at, "band_k")?.unwrap_or(5.0);
    let band_min_width =
        non_negative(raw.band_min_width, at, "band_min_width")?.unwrap_or(p.band_min_width);
    let band_warmup = raw.band_warmup.unwrap_or(60);
    if band_warmup == 0 {
        return Err(Problem::new(at.key("band_warmup"), "must be at least 1"));
    }
    let step = resolve_step(&p, raw, at)?;
    // With a step detector, the band waits longer than a step takes to be confirmed (its
    // new-level window + 15 minutes): a level shift is then reported once as a step and the
    // band re-learns at the new level (agent `detect/chain.rs`) instead of raising for it.
    let band_wait = step.as_ref().map_or(Duration::from_secs(10 * MIN), |s| {
        s.min_duration + Duration::from_secs(15 * MIN)
    });
    let band = raw.learned_band.unwrap_or(p.band).then(|| BandSettings {
        k: band_k,
        min_width: band_min_width,
        min_duration: raw.band_min_duration.unwrap_or(band_wait),
        warmup: band_warmup,
        severity: raw.band_severity.unwrap_or(Severity::Info),
    });
    let baseline = resolve_baseline(&p, raw, at)?;
    let has_upper = levels.iter().any(|l| l.high.is_some());
    let forecast = resolve_forecast(&p, raw, at, has_upper)?;
    Ok(KindDetection {
        levels,
        rates,
        stuck,
        valid_range: (valid_min, valid_max),
        sentinels: raw.sentinels.clone().unwrap_or_else(|| SENTINELS.to_vec()),
        band,
        baseline,
        step,
        forecast,
    })
}

/// The predictive warning's settings: on by preset (`inlet_temp`) while the kind has an upper
/// limit, or by `forecast = true` (the point's own threshold may then give the limit).
fn resolve_forecast(
    p: &Preset,
    raw: &RawKindDetection,
    at: &KeyPath,
    has_upper: bool,
) -> Result<Option<ForecastSettings>, Problem> {
    for (d, key) in [
        (raw.forecast_horizon, "forecast_horizon"),
        (raw.forecast_window, "forecast_window"),
    ] {
        if d.is_some_and(|d| d.is_zero()) {
            return Err(Problem::new(at.key(key), "must be above zero"));
        }
    }
    let defaults = ForecastSettings::default();
    Ok(raw
        .forecast
        .unwrap_or(p.forecast && has_upper)
        .then(|| ForecastSettings {
            window: raw.forecast_window.unwrap_or(defaults.window),
            horizon: raw.forecast_horizon.unwrap_or(defaults.horizon),
        }))
}

/// The step-change detector's settings: on by preset (rack power kinds) or by
/// `step_change = true`. Defaults: the new level holds 30 minutes, against a 1-hour reference.
fn resolve_step(
    p: &Preset,
    raw: &RawKindDetection,
    at: &KeyPath,
) -> Result<Option<StepSettings>, Problem> {
    let min_change = positive_f(raw.step_min_change, at, "step_min_change")?
        .or(p.step_min_change)
        .unwrap_or(p.band_min_width * 2.0);
    for (d, key) in [
        (raw.step_min_duration, "step_min_duration"),
        (raw.step_reference, "step_reference"),
    ] {
        if d.is_some_and(|d| d.is_zero()) {
            return Err(Problem::new(at.key(key), "must be above zero"));
        }
    }
    Ok(raw
        .step_change
        .unwrap_or(p.step_min_change.is_some())
        .then(|| StepSettings {
            min_change,
            min_duration: raw
                .step_min_duration
                .unwrap_or(Duration::from_secs(30 * MIN)),
            reference: raw.step_reference.unwrap_or(Duration::from_secs(60 * MIN)),
        }))
}

/// The learned baseline's settings: on by preset (kinds without room-air physics) or by
/// `learned_baseline = true`.
fn resolve_baseline(
    p: &Preset,
    raw: &RawKindDetection,
    at: &KeyPath,
) -> Result<Option<BaselineSettings>, Problem> {
    let k = positive_f(raw.baseline_k, at, "baseline_k")?.unwrap_or(BASELINE_K);
    let spike_k =
        non_negative(raw.baseline_spike_k, at, "baseline_spike_k")?.unwrap_or(BASELINE_SPIKE_K);
    if spike_k > 0.0 && spike_k < k {
        return Err(Problem::new(
            at.key("baseline_spike_k"),
            format!("must be 0 (off) or at least baseline_k ({k})"),
        ));
    }
    let min_width = non_negative(raw.baseline_min_width, at, "baseline_min_width")?
        .unwrap_or(p.band_min_width / 2.0);
    let warmup = raw
        .baseline_warmup
        .unwrap_or(Duration::from_secs(BASELINE_WARMUP_MIN * MIN));
    Ok(raw
        .learned_baseline
        .unwrap_or(p.baseline)
        .then(|| BaselineSettings {
            k,
            spike_k,
            min_width,
            min_duration: raw
                .baseline_min_duration
                .unwrap_or(Duration::from_secs(10 * MIN)),
            warmup,
            severity: raw.band_severity.unwrap_or(Severity::Info),
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DetectionConfig, Problem> {
        let raw: RawDetection = toml::from_str(text).expect("toml");
        resolve_detection(&raw)
    }

    #[test]
    fn presets_follow_ashrae() {
        let d = DetectionConfig::default();
        let inlet = d.for_kind(SensorKind::InletTemp);
        assert_eq!(inlet.levels.len(), 2);
        assert_eq!(
            (inlet.levels[0].low, inlet.levels[0].high),
            (Some(18.0), Some(27.0))
        );
        assert_eq!(inlet.levels[1].severity, Severity::Critical);
        assert_eq!(
            (inlet.levels[1].low, inlet.levels[1].high),
            (Some(15.0), Some(32.0))
        );
        assert_eq!(inlet.rates[0].max_change, 5.0);
        assert_eq!(inlet.rates[1].max_change, 20.0);
        let generic = d.for_kind(SensorKind::Temperature);
        assert!(
            generic.levels.is_empty(),
            "no fixed limits when placement is unknown"
        );
        assert!(
            generic.rates.is_empty() && generic.band.is_none(),
            "no room-air physics when placement is unknown"
        );
        assert!(generic.baseline.is_some() && generic.stuck.is_some());
        assert_eq!(generic.valid_range, (-50.0, 150.0));
        let inlet_band = inlet.band.as_ref().map(|b| b.k);
        assert_eq!(inlet_band, Some(5.0), "room-air kinds keep their band");
        assert!(inlet.baseline.is_none());
        let dp = d.for_kind(SensorKind::DewPoint);
        assert_eq!(dp.levels[1].high, Some(17.0));
        let a3 = parse("ashrae_class = \"A3\"").expect("valid");
        assert_eq!(
            a3.for_kind(SensorKind::InletTemp).levels[1].high,
            Some(40.0)
        );
        assert_eq!(d.delta_t.levels[0].low, Some(3.0));
        assert_eq!(d.inlet_over_supply.levels[0].high, Some(8.0));
    }

    #[test]
    fn overrides_replace_single_keys() {
        let d = parse(
            "flap_window = \"0s\"\n[inlet_temp]\nwarning_high = 25.0\nrate = false\n[humidity]\nlimits = false\n",
        )
        .expect("valid");
        let inlet = d.for_kind(SensorKind::InletTemp);
        assert_eq!(inlet.levels[0].high, Some(25.0));
        assert_eq!(inlet.levels[0].low, Some(18.0));
        assert!(inlet.rates.is_empty());
        assert!(d.for_kind(SensorKind::Humidity).levels.is_empty());
        assert_eq!(d.flap_window, Duration::ZERO);
    }

    #[test]
    fn the_learned_baseline_is_tunable_and_validated() {
        let d = parse(
            "[temperature]\nbaseline_k = 4.0\nbaseline_spike_k = 0.0\nbaseline_warmup = \"2h\"\n[outlet_temp]\nlearned_baseline = true\n",
        )
        .expect("valid");
        let b = d
            .for_kind(SensorKind::Temperature)
            .baseline
            .clone()
            .expect("on");
        assert_eq!((b.k, b.spike_k), (4.0, 0.0));
        assert_eq!(b.warmup, Duration::from_secs(7200));
        assert!(d.for_kind(SensorKind::OutletTemp).baseline.is_some());
        let off = parse("[temperature]\nlearned_baseline = false\n").expect("valid");
        assert!(off.for_kind(SensorKind::Temperature).baseline.is_none());
        let e = parse("[temperature]\nbaseline_spike_k = 3.0\n").expect_err("below k");
        assert_eq!(e.path.to_string(), "detection.temperature.baseline_spike_k");
        let e = parse("[temperature]\nbaseline_k = 0.0\n").expect_err("zero");
        assert_eq!(e.path.to_string(), "detection.temperature.baseline_k");
    }

    #[test]
    fn rack_power_kinds_have_no_limits_and_a_step_detector() {
        let d = DetectionConfig::default();
        for kind in [SensorKind::RackPower, SensorKind::RackCurrent] {
            let k = d.for_kind(kind);
            assert!(k.levels.is_empty(), "no ASHRAE limits for {kind:?}");
            assert!(k.rates.is_empty() && k.baseline.is_none());
            assert!(k.band.is_some(), "the learned band judges {kind:?}");
            assert_eq!(
                k.band.as_ref().map(|b| b.min_duration),
                Some(Duration::from_secs(45 * 60)),
                "the band waits longer than a step takes to confirm ({kind:?})"
            );
            let step = k.step.clone().expect("step detector on");
            assert_eq!(step.min_duration, Duration::from_secs(30 * 60));
            assert_eq!(step.reference, Duration::from_secs(60 * 60));
        }
        let power = d.for_kind(SensorKind::RackPower).step.clone();
        assert_eq!(power.map(|s| s.min_change), Some(1.0));
        assert!(
            d.for_kind(SensorKind::InletTemp).step.is_none(),
            "air temperatures have no step detector"
        );
        let tuned = parse(
            "[rack_power]\nstep_min_change = 0.5\nstep_min_duration = \"1h\"\n[inlet_temp]\nstep_change = true\n",
        )
        .expect("valid");
        let s = tuned
            .for_kind(SensorKind::RackPower)
            .step
            .clone()
            .expect("on");
        assert_eq!(
            (s.min_change, s.min_duration),
            (0.5, Duration::from_secs(3600))
        );
        assert!(tuned.for_kind(SensorKind::InletTemp).step.is_some());
        let off = parse("[rack_current]\nstep_change = false\n").expect("valid");
        assert!(off.for_kind(SensorKind::RackCurrent).step.is_none());
        let e = parse("[rack_power]\nstep_min_change = 0.0\n").expect_err("zero");
        assert_eq!(e.path.to_string(), "detection.rack_power.step_min_change");
        let e = parse("[rack_power]\nstep_reference = \"0s\"\n").expect_err("zero");
        assert_eq!(e.path.to_string(), "detection.rack_power.step_reference");
    }

    #[test]
    fn the_forecast_is_on_for_inlets_with_a_limit_and_tunable() {
        let d = parse("").expect("valid");
        let inlet = d.for_kind(SensorKind::InletTemp);
        assert_eq!(inlet.forecast, Some(ForecastSettings::default()));
        assert_eq!(
            inlet.forecast.as_ref().map(|f| f.horizon.as_secs()),
            Some(1800)
        );
        for k in [
            SensorKind::Temperature,
            SensorKind::Humidity,
            SensorKind::RackPower,
        ] {
            assert!(d.for_kind(k).forecast.is_none(), "{k:?}");
        }
        assert!(d.delta_t.forecast.is_none() && d.inlet_over_supply.forecast.is_none());
        let no_limit = parse("[inlet_temp]\nlimits = false\n").expect("valid");
        assert!(no_limit.for_kind(SensorKind::InletTemp).forecast.is_none());
        let tuned = parse(
            "[inlet_temp]\nforecast_horizon = \"1h\"\nforecast_window = \"20m\"\n[outlet_temp]\nforecast = true\n",
        )
        .expect("valid");
        let f = tuned.for_kind(SensorKind::InletTemp).forecast.clone();
        assert_eq!(
            f,
            Some(ForecastSettings {
                window: Duration::from_secs(1200),
                horizon: Duration::from_secs(3600),
            })
        );
        assert!(tuned.for_kind(SensorKind::OutletTemp).forecast.is_some());
        let off = parse("[inlet_temp]\nforecast = false\n").expect("valid");
        assert!(off.for_kind(SensorKind::InletTemp).forecast.is_none());
        let e = parse("[inlet_temp]\nforecast_horizon = \"0s\"\n").expect_err("zero");
        assert_eq!(e.path.to_string(), "detection.inlet_temp.forecast_horizon");
        let e = parse("[inlet_temp]\nforecast_window = \"0s\"\n").expect_err("zero");
        assert_eq!(e.path.to_string(), "detection.inlet_temp.forecast_window");
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse("[inlet_temp]\nwarning_low = 30.0\n").expect_err("low above high");
        assert_eq!(e.path.to_string(), "detection.inlet_temp.warning_low");
        let e = parse("[humidity]\nhysteresis = -1.0\n").expect_err("negative");
        assert_eq!(e.path.to_string(), "detection.humidity.hysteresis");
        let e = parse("[delta_t]\nrate_per_15m = 0.0\n").expect_err("zero rate");
        assert_eq!(e.path.to_string(), "detection.delta_t.rate_per_15m");
        let e = parse("stale_after = \"0s\"").expect_err("zero");
        assert_eq!(e.path.to_string(), "detection.stale_after");
    }
}
