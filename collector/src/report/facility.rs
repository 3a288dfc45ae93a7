//! The facility report: per site → zone → row → rack over a period, from roll-up buckets,
//! with the ASHRAE envelope, cooling units, hot spots, stale and faulty sensors, open
//! incidents and problems and the trend against the previous period. Pure: the caller reads
//! the buckets and the incidents and passes the time; the HTTP API
//! (`GET /api/v1/report`, [`crate::history_api`]), the CLI and the benchmark share it.
//!
//! The JSON shape is [`FacilityReport`] (versioned by [`SCHEMA`]); the dashboard and other
//! clients read it as is. How each figure is made is in [`super::figures`]; the rules here:
//!
//! - **Inlet** figures use sensors of kind `inlet_temp`; a rack's figures merge its sensors, a
//!   zone's merge all of its inlet sensors. Rows and racks come from the sensors' locations
//!   ([`NO_ROW`], [`crate::report::NO_RACK`] when absent), in natural order.
//! - **Humidity** and **dew point** use sensors of kinds `humidity` and `dew_point` of the
//!   zone (no dew point is derived from temperature and humidity).
//! - **Cooling units** pair `supply_air_temp` and `return_air_temp` sensors by
//!   [`cooling_unit_name`]; ΔT is return minus supply (mean over the period, and latest).
//! - **Hot spots** are the inlet sensors whose maximum left the recommended band upwards,
//!   ranked by `p95` (upper bound), then maximum, then name; at most [`HOT_SPOTS`].
//! - **Stale** sensors: any sensor of the zone seen in this or the previous period whose
//!   latest summary ends more than `stale_after` before the period's end (a sensor seen only
//!   in the previous period is stale with its last value from there).
//! - **Faulty** sensors: the active sources of the zone's open incidents of category `device`
//!   (sensor faults and unreachable devices).
//! - **Trend**: inlet mean and maximum of the previous period of the same length, and the
//!   differences (this minus previous); absent where either side has no samples.

use super::ashrae::Envelope;
use super::figures::{Figures, SecsRange, Span, Stats};
use crate::incidents::{Incident, IncidentStatus};
use crate::problems::Problem;
use crate::report::{names_sensor, IncidentSummary, ProblemSummary, RackKey, ReportError};
use crate::rollup::{Level, Rollup};
use coldaisle_core::{Category, SensorKind, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// Version of the report's JSON shape; bumped on a change that is not an added field.
pub const SCHEMA: u32 = 1;

/// Most hot spots listed per zone.
pub const HOT_SPOTS: usize = 10;

/// Name of the row of the racks whose sensors name no row.
pub const NO_ROW: &str = "(no row)";

/// The report of a site (one zone or all of them) over a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FacilityReport {
    /// [`SCHEMA`] of this shape.
    pub schema: u32,
    /// The site.
    pub site: String,
    /// Start of the period.
    pub from: Timestamp,
    /// End of the period.
    pub to: Timestamp,
    /// Length of the period, in seconds.
    pub period_secs: u64,
    /// The roll-up level the figures were read from (it sets the p95 and time bounds).
    pub level: Level,
    /// The limits compared against.
    pub envelope: Envelope,
    /// One section per zone, in natural order.
    pub zones: Vec<ZoneSection>,
}

/// One zone of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneSection {
    /// The zone.
    pub zone: String,
    /// Inlet temperature over every inlet sensor of the zone.
    pub inlet: Figures,
    /// Inlet against the previous period.
    pub trend: Trend,
    /// Rows, in natural order, [`NO_ROW`] last.
    pub rows: Vec<RowSection>,
    /// Relative humidity (%), when the zone has humidity sensors.
    pub humidity: Option<Figures>,
    /// Dew point (°C), when the zone has dew-point sensors.
    pub dew_point: Option<Figures>,
    /// Cooling units, by name.
    pub cooling_units: Vec<CoolingUnit>,
    /// Hottest inlet sensors, worst first.
    pub hot_spots: Vec<HotSpot>,
    /// Sensors whose data stopped, by name.
    pub stale_sensors: Vec<StaleSensor>,
    /// Sources of open sensor-fault and unreachable-device incidents.
    pub faulty_sensors: Vec<FaultySource>,
    /// Incidents of the zone open now, oldest first.
    pub open_incidents: Vec<IncidentSummary>,
    /// Problems of the zone not resolved, oldest first.
    pub open_problems: Vec<ProblemSummary>,
    /// Sensors trending towards their limit (open forecasts, issue 15), by expected crossing;
    /// filled by [`super::forecasts::add_to_facility`] (empty from [`build`]).
    #[serde(default)]
    pub forecasts: Vec<super::forecasts::TrendingSensor>,
}

/// One row of racks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowSection {
    /// Row name, or [`NO_ROW`].
    pub row: String,
    /// Racks, in natural order, [`crate::report::NO_RACK`] last.
    pub racks: Vec<RackSection>,
}

/// One rack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RackSection {
    /// Rack name, or [`crate::report::NO_RACK`].
    pub rack: String,
    /// Distinct sensors (any kind) of the rack in this and the previous period.
    pub sensors: usize,
    /// Inlet temperature of the rack's inlet sensors.
    pub inlet: Figures,
    /// Inlet against the previous period.
    pub trend: Trend,
    /// Open incidents naming a sensor of the rack (see [`crate::report`]).
    pub open_incidents: usize,
}

/// A measure against the previous period of the same length.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// Mean over the previous period.
    pub previous_avg: Option<f64>,
    /// Maximum over the previous period.
    pub previous_max: Option<f64>,
    /// Mean now minus mean then.
    pub avg_delta: Option<f64>,
    /// Maximum now minus maximum then.
    pub max_delta: Option<f64>,
}

impl Trend {
    /// The trend from `before` to `now`.
    pub fn between(now: &Stats, before: &Stats) -> Trend {
        let delta = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a - b);
        Trend {
            previous_avg: before.avg,
            previous_max: before.max,
            avg_delta: delta(now.avg, before.avg),
            max_delta: delta(now.max, before.max),
        }
    }
}

/// One cooling unit: supply and return air and their difference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoolingUnit {
    /// The unit ([`cooling_unit_name`]).
    pub unit: String,
    /// Supply air (°C).
    pub supply: Stats,
    /// Return air (°C).
    #[serde(rename = "return")]
    pub return_air: Stats,
    /// Mean return minus mean supply.
    pub delta_t_avg: Option<f64>,
    /// Latest return minus latest supply.
    pub delta_t_current: Option<f64>,
}

/// An inlet sensor above the recommended band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HotSpot {
    /// Sensor id.
    pub sensor: String,
    /// Its row, or [`NO_ROW`].
    pub row: String,
    /// Its rack, or [`crate::report::NO_RACK`].
    pub rack: String,
    /// Latest value.
    pub current: Option<f64>,
    /// Highest sample.
    pub max: Option<f64>,
    /// Upper bound of the p95.
    pub p95: Option<f64>,
    /// Time above the recommended band.
    pub above_recommended: SecsRange,
    /// Time above the allowable band.
    pub above_allowable: SecsRange,
}

/// A sensor whose data stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaleSensor {
    /// Sensor id.
    pub sensor: String,
    /// What it measures.
    pub kind: SensorKind,
    /// Its rack, or [`crate::report::NO_RACK`].
    pub rack: String,
    /// End of its latest summary.
    pub last_at: Timestamp,
    /// Its latest value.
    pub last: f64,
}

/// A source of an open sensor-fault or unreachable-device incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultySource {
    /// The sensor or device id.
    pub name: String,
    /// `sensor` or `device`.
    pub source_kind: String,
    /// The detector that raised it (sensors only).
    pub detector: Option<String>,
    /// The incident it belongs to.
    pub incident: String,
    /// When that incident opened.
    pub since: Timestamp,
}

/// What a report is made from.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The site.
    pub site: &'a str,
    /// The zones to report, as [`resolve_zones`] gives them.
    pub zones: &'a [String],
    /// Start of the period.
    pub from: Timestamp,
    /// End of the period.
    pub to: Timestamp,
    /// Level of `buckets`.
    pub level: Level,
    /// Buckets of the period (any zones of the site; others are ignored).
    pub buckets: BucketParts<'a>,
    /// Level of `previous`.
    pub previous_level: Level,
    /// Buckets of the previous period of the same length.
    pub previous: &'a [Rollup],
    /// Incidents (open ones of the zones are used), at incident time.
    pub incidents: &'a [Incident],
    /// Problems (open ones of the zones are used).
    pub problems: &'a [Problem],
    /// The limits.
    pub envelope: Envelope,
    /// When a sensor counts as stale.
    pub stale_after: Duration,
}

/// A period's buckets held in two slices, read as one: the buckets a cache shares, then the
/// ones read fresh ([`crate::rollup_store::RollupStore::period`]), so neither is copied into
/// one vector. Figures depend on the order of a zone's buckets (sums are added in it), so
/// within a zone the two slices must be in the order the whole period would be read.
#[derive(Debug, Clone, Copy, Default)]
pub struct BucketParts<'a> {
    /// The first buckets.
    pub closed: &'a [Rollup],
    /// The buckets after them.
    pub tail: &'a [Rollup],
}

impl<'a> BucketParts<'a> {
    /// All of `buckets` in one slice.
    pub fn whole(buckets: &'a [Rollup]) -> Self {
        BucketParts {
            closed: buckets,
            tail: &[],
        }
    }

    /// Every bucket: `closed`, then `tail`.
    pub fn iter(&self) -> impl Iterator<Item = &'a Rollup> {
        self.closed.iter().chain(self.tail.iter())
    }
}

/// How reports judge values: the envelope and when a sensor is stale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReportSettings {
    /// The limits (from `[report] ashrae_class`).
    pub envelope: Envelope,
    /// When a sensor counts as stale (`[report] stale_after`).
    pub stale_after: Duration,
}

impl Default for ReportSettings {
    /// Class A1, stale after 10 minutes (the config's defaults).
    fn default() -> Self {
        ReportSettings::from_config(&coldaisle_config::collector::ReportConfig::default())
    }
}

impl ReportSettings {
    /// The settings of a validated `[report]` section.
    pub fn from_config(config: &coldaisle_config::collector::ReportConfig) -> Self {
        ReportSettings {
            envelope: Envelope::of(config.class()),
            stale_after: config.stale_after,
        }
    }
}

/// The site a report is for: `site` when given; else the one site with a zone named `zone`;
/// else the only site known. `known` holds every `(site, zone)` the collector knows.
pub fn resolve_site(
    site: Option<&str>,
    zone: Option<&str>,
    known: &BTreeSet<(String, String)>,
) -> Result<String, ReportError> {
    if let Some(site) = site {
        return Ok(site.to_string());
    }
    let sites: BTreeSet<&str> = known
        .iter()
        .filter(|(_, z)| zone.is_none_or(|wanted| wanted == z))
        .map(|(s, _)| s.as_str())
        .collect();
    let mut sites: Vec<&str> = sites.into_iter().collect();
    match (sites.len(), zone) {
        (1, _) => Ok(sites.remove(0).to_string()),
        (0, Some(zone)) => Err(ReportError::UnknownZone {
            zone: zone.to_string(),
            site: None,
            known: known.iter().map(|(s, z)| format!("{s}/{z}")).collect(),
        }),
        (_, Some(zone)) => Err(ReportError::AmbiguousZone {
            zone: zone.to_string(),
            sites: sites.iter().map(|s| s.to_string()).collect(),
        }),
        (_, None) => Err(ReportError::SiteNeeded {
            sites: sites.iter().map(|s| s.to_string()).collect(),
        }),
    }
}

/// The zones a report covers: `zone` if it is known, else every known zone (natural order).
/// `known` holds the site's zones from memory and from the buckets read.
pub fn resolve_zones(
    site: &str,
    zone: Option<&str>,
    known: &BTreeSet<String>,
) -> Result<Vec<String>, ReportError> {
    let unknown = |zone: &str| ReportError::UnknownZone {
        zone: zone.to_string(),
        site: Some(site.to_string()),
        known: known.iter().map(|z| format!("{site}/{z}")).collect(),
    };
    match zone {
        Some(zone) if known.contains(zone) => Ok(vec![zone.to_string()]),
        Some(zone) => Err(unknown(zone)),
        None if known.is_empty() => Err(ReportError::UnknownSite {
            site: site.to_string(),
        }),
        None => {
            let mut zones: Vec<String> = known.iter().cloned().collect();
            zones.sort_by(|a, b| crate::report::natural_cmp(a, b).then_with(|| a.cmp(b)));
            Ok(zones)
        }
    }
}

/// The report of `inputs` (see the module rules).
pub fn build(inputs: &Inputs<'_>) -> FacilityReport {
    let span = Span {
        from: inputs.from,
        to: inputs.to,
        level: inputs.level,
    };
    FacilityReport {
        schema: SCHEMA,
        site: inputs.site.to_string(),
        from: inputs.from,
        to: inputs.to,
        period_secs: u64::try_from(inputs.to.0.saturating_sub(inputs.from.0) / 1000).unwrap_or(0),
        level: inputs.level,
        envelope: inputs.envelope,
        zones: inputs
            .zones
            .iter()
            .map(|zone| zone_section(inputs, span, zone))
            .collect(),
    }
}

/// The buckets of `kind` among `buckets`.
fn of_kind<'a>(buckets: &[&'a Rollup], kind: SensorKind) -> Vec<&'a Rollup> {
    buckets.iter().copied().filter(|b| b.kind == kind).collect()
}

fn zone_section(inputs: &Inputs<'_>, span: Span, zone: &str) -> ZoneSection {
    let in_zone = |b: &&Rollup| b.location.site == inputs.site && b.location.zone == zone;
    let now: Vec<&Rollup> = inputs.buckets.iter().filter(in_zone).collect();
    let before: Vec<&Rollup> = inputs.previous.iter().filter(in_zone).collect();
    let inlet_now = of_kind(&now, SensorKind::InletTemp);
    let inlet_before = of_kind(&before, SensorKind::InletTemp);
    let env = inputs.envelope;
    let open: Vec<&Incident> = inputs
        .incidents
        .iter()
        .filter(|i| {
            i.status == IncidentStatus::Open
                && i.fingerprint.site == inputs.site
                && i.fingerprint.zone == zone
        })
        .collect();
    let measure = |kind: SensorKind, limits| {
        let buckets = of_kind(&now, kind);
        let known = !buckets.is_empty() || before.iter().any(|b| b.kind == kind);
        known.then(|| Figures::of(&buckets, span, limits))
    };
    ZoneSection {
        zone: zone.to_string(),
        inlet: Figures::of(&inlet_now, span, &env.temperature),
        trend: Trend::between(
            &Stats::of(inlet_now.iter().copied()),
            &Stats::of(inlet_before.iter().copied()),
        ),
        rows: rows(&now, &before, span, &env, &open),
        humidity: measure(SensorKind::Humidity, &env.humidity),
        dew_point: measure(SensorKind::DewPoint, &env.dew_point),
        cooling_units: cooling_units(&now),
        hot_spots: hot_spots(&inlet_now, span, &env),
        stale_sensors: stale_sensors(&now, &before, inputs.to, inputs.stale_after),
        faulty_sensors: faulty(&open),
        open_incidents: open.iter().map(|i| IncidentSummary::of(i)).collect(),
        open_problems: inputs
            .problems
            .iter()
            .filter(|p| {
                p.status.is_open()
                    && p.fingerprint.site == inputs.site
                    && p.fingerprint.zone == zone
            })
            .map(ProblemSummary::of)
            .collect(),
        forecasts: Vec::new(),
    }
}

/// Row sort key: named rows in natural order, then [`NO_ROW`].
fn row_key(row: Option<&str>) -> RackKey {
    RackKey::of(row)
}

fn row_name(key: &RackKey) -> String {
    match key {
        RackKey::Named(name) => name.clone(),
        RackKey::None => NO_ROW.to_string(),
    }
}

/// Buckets of one rack, split by period.
#[derive(Default)]
struct RackBuckets<'a> {
    sensors: BTreeSet<&'a str>,
    inlet_now: Vec<&'a Rollup>,
    inlet_before: Vec<&'a Rollup>,
}

fn rows(
    now: &[&Rollup],
    before: &[&Rollup],
    span: Span,
    env: &Envelope,
    open: &[&Incident],
) -> Vec<RowSection> {
    // Grouped by the names as they are first (a hash per bucket), ordered once per rack.
    let mut by_name: HashMap<(Option<&str>, Option<&str>), RackBuckets<'_>> = HashMap::new();
    for (b, current) in now
        .iter()
        .map(|b| (*b, true))
        .chain(before.iter().map(|b| (*b, false)))
    {
        let rack = by_name
            .entry((b.location.row.as_deref(), b.location.rack.as_deref()))
            .or_default();
        rack.sensors.insert(b.sensor.as_str());
        if b.kind == SensorKind::InletTemp {
            if current {
                rack.inlet_now.push(b);
            } else {
                rack.inlet_before.push(b);
            }
        }
    }
    let mut racks: BTreeMap<RackKey, BTreeMap<RackKey, RackBuckets<'_>>> = BTreeMap::new();
    for ((row, rack), buckets) in by_name {
        racks
            .entry(row_key(row))
            .or_default()
            .insert(RackKey::of(rack), buckets);
    }
    racks
        .into_iter()
        .map(|(row, racks)| RowSection {
            row: row_name(&row),
            racks: racks
                .into_iter()
                .map(|(rack, buckets)| RackSection {
                    rack: rack.name(),
                    sensors: buckets.sensors.len(),
                    inlet: Figures::of(&buckets.inlet_now, span, &env.temperature),
                    trend: Trend::between(
                        &Stats::of(buckets.inlet_now.iter().copied()),
                        &Stats::of(buckets.inlet_before.iter().copied()),
                    ),
                    open_incidents: open
                        .iter()
                        .filter(|i| buckets.sensors.iter().any(|s| names_sensor(i, s)))
                        .count(),
                })
                .collect(),
        })
        .collect()
}

/// The cooling unit a supply or return sensor belongs to: the sensor id without a trailing
/// `-supply`, `-return`, `-supply_air`, `-return_air` (or with `_`), case-insensitive; a
/// sensor id without such a suffix is its own unit, so supply and return then stay unpaired.
pub fn cooling_unit_name(sensor: &str) -> String {
    const SUFFIXES: [&str; 4] = ["supply_air", "return_air", "supply", "return"];
    let lower = sensor.to_ascii_lowercase();
    for suffix in SUFFIXES {
        for sep in ['-', '_'] {
            let tail = format!("{sep}{suffix}");
            if lower.ends_with(&tail) && lower.len() > tail.len() {
                return sensor[..sensor.len() - tail.len()].to_string();
            }
        }
    }
    sensor.to_string()
}

fn cooling_units(now: &[&Rollup]) -> Vec<CoolingUnit> {
    // Buckets per sensor first: the unit's name is made once per sensor, not once per bucket.
    // (A BTreeMap keeps the order, so the sums, hence the figures, are the same every time.)
    let mut by_sensor: BTreeMap<(&str, bool), Vec<&Rollup>> = BTreeMap::new();
    for b in now {
        let supply = match b.kind {
            SensorKind::SupplyAirTemp => true,
            SensorKind::ReturnAirTemp => false,
            _ => continue,
        };
        by_sensor
            .entry((b.sensor.as_str(), supply))
            .or_default()
            .push(b);
    }
    let mut units: BTreeMap<String, (Vec<&Rollup>, Vec<&Rollup>)> = BTreeMap::new();
    for ((sensor, supply), buckets) in by_sensor {
        let unit = units.entry(cooling_unit_name(sensor)).or_default();
        if supply {
            unit.0.extend(buckets);
        } else {
            unit.1.extend(buckets);
        }
    }
    units
        .into_iter()
        .map(|(unit, (supply, ret))| {
            let supply = Stats::of(supply);
            let return_air = Stats::of(ret);
            let delta = |r: Option<f64>, s: Option<f64>| r.zip(s).map(|(r, s)| r - s);
            CoolingUnit {
                unit,
                delta_t_avg: delta(return_air.avg, supply.avg),
                delta_t_current: delta(return_air.current, supply.current),
                supply,
                return_air,
            }
        })
        .collect()
}

fn hot_spots(inlet: &[&Rollup], span: Span, env: &Envelope) -> Vec<HotSpot> {
    let mut by_sensor: BTreeMap<&str, Vec<&Rollup>> = BTreeMap::new();
    for b in inlet {
        by_sensor.entry(b.sensor.as_str()).or_default().push(b);
    }
    let mut spots: Vec<HotSpot> = by_sensor
        .into_iter()
        .filter_map(|(sensor, buckets)| {
            let f = Figures::of(&buckets, span, &env.temperature);
            let hot = f.stats.max? > env.temperature.recommended.high;
            let location = &buckets.first()?.location;
            hot.then(|| HotSpot {
                sensor: sensor.to_string(),
                row: row_name(&row_key(location.row.as_deref())),
                rack: RackKey::of(location.rack.as_deref()).name(),
                current: f.stats.current,
                max: f.stats.max,
                p95: f.p95,
                above_recommended: f.recommended.above,
                above_allowable: f.allowable.above,
            })
        })
        .collect();
    let key = |v: Option<f64>| v.unwrap_or(f64::NEG_INFINITY);
    spots.sort_by(|a, b| {
        key(b.p95)
            .total_cmp(&key(a.p95))
            .then_with(|| key(b.max).total_cmp(&key(a.max)))
            .then_with(|| a.sensor.cmp(&b.sensor))
    });
    spots.truncate(HOT_SPOTS);
    spots
}

fn stale_sensors(
    now: &[&Rollup],
    before: &[&Rollup],
    to: Timestamp,
    stale_after: Duration,
) -> Vec<StaleSensor> {
    let mut latest: BTreeMap<&str, &Rollup> = BTreeMap::new();
    for b in before.iter().chain(now.iter()).filter(|b| b.count > 0) {
        let entry = latest.entry(b.sensor.as_str()).or_insert(b);
        if b.last_at > entry.last_at {
            *entry = b;
        }
    }
    let limit = to.minus(stale_after);
    latest
        .into_iter()
        .filter(|(_, b)| b.last_at < limit)
        .map(|(sensor, b)| StaleSensor {
            sensor: sensor.to_string(),
            kind: b.kind,
            rack: RackKey::of(b.location.rack.as_deref()).name(),
            last_at: b.last_at,
            last: b.last,
        })
        .collect()
}

fn faulty(open: &[&Incident]) -> Vec<FaultySource> {
    let mut out = Vec::new();
    for incident in open
        .iter()
        .filter(|i| i.fingerprint.category == Category::Device)
    {
        for source in &incident.active_sources {
            let (source_kind, name, detector) = if let Some(rest) = source.strip_prefix("sensor:") {
                match rest.rsplit_once(':') {
                    Some((name, detector)) => ("sensor", name, Some(detector.to_string())),
                    None => ("sensor", rest, None),
                }
            } else if let Some(device) = source.strip_prefix("device:") {
                ("device", device, None)
            } else {
                continue;
            };
            out.push(FaultySource {
                name: name.to_string(),
                source_kind: source_kind.to_string(),
                detector,
                incident: incident.id.clone(),
                since: incident.opened_at,
            });
        }
    }
    out.sort_by(|a, b| (&a.name, &a.detector).cmp(&(&b.name, &b.detector)));
    out
}

#[cfg(test)]
#[path = "facility_tests.rs"]
mod tests;
