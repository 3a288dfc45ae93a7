//! Zone reports: per-rack inlet temperatures, open and recently resolved incidents and the
//! problems of one zone, and the list of zones the collector knows.
//!
//! Pure: no I/O, no wall clock. The caller passes `now`; everything is computed from the
//! [`CollectorState`] it is given, and the rack figures from the roll-ups the caller read
//! ([`with_history`]), so the CLI, the HTTP API and tests get the same figures.
//!
//! Rules, in one place:
//! - **Known zones** are the `(site, zone)` pairs of the fleet directory (every sensor ever
//!   seen in a reading summary, [`crate::state::directory`]) and of every incident.
//! - **Racks** of a zone are the racks of every sensor of the zone in the directory (of any
//!   kind, however long ago it was seen), so a rack that stopped reporting still shows up,
//!   with no figures. Sensors without a rack form the row [`NO_RACK`]. `sensors` counts the
//!   distinct sensors (of any kind) of the rack.
//! - **Inlet figures** come from the stored roll-ups of the period ([`with_history`]; the
//!   caller reads them off the state lock): only sensors of kind `inlet_temp` with at least one
//!   sample in a bucket starting in the period (the bucket of `now - window` included, of the
//!   finest level serving it): `last` is the maximum over the rack's sensors of each sensor's
//!   latest `last`; `avg` is the sum of the sums over the sum of the counts; `max` is the
//!   maximum of the maxima. Each is `None` when no such roll-up exists, and [`zone_report`]
//!   alone leaves them all `None`.
//! - **Incident status** is evaluated at `max(now, state.latest_event)`: an agent whose clock runs
//!   ahead of the collector (or a replay of future-dated events) must not keep incidents open
//!   whose quiet period has already ended in event time. The window of summaries and of
//!   "recently resolved" incidents uses `now` itself.
//! - **Open incidents per rack** counts the zone's open incidents whose active sources or
//!   timeline texts name one of the rack's sensors. A name matches a whole word (split on
//!   whitespace, with `,;:()[]` trimmed), so `r1-inlet` does not match `r1-inlet-2`; a sensor id
//!   containing whitespace never matches. One incident may count for several racks.

pub mod ashrae;
pub mod facility;
pub mod figures;
pub mod forecasts;
pub mod formats;

use crate::actions::ProblemStatus;
use crate::incidents::{Incident, IncidentStatus};
use crate::problems::{Problem, ProblemTrigger};
use crate::state::CollectorState;
use coldaisle_core::{Category, ReadingSummary, SensorKind, Severity, Timestamp};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Name of the row that groups the sensors of a zone that have no rack.
pub const NO_RACK: &str = "(no rack)";

/// Why a zone report could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// No summary and no incident mentions the zone (in the given site, if any).
    #[error("{}", unknown_zone_message(zone, site.as_deref(), known))]
    UnknownZone {
        /// The zone asked for.
        zone: String,
        /// The site asked for, if any.
        site: Option<String>,
        /// Every known zone as `site/zone`, sorted.
        known: Vec<String>,
    },
    /// The zone exists in several sites and no site was given.
    #[error(
        "zone {zone} exists in several sites ({}); choose one with --site",
        sites.join(", ")
    )]
    AmbiguousZone {
        /// The zone asked for.
        zone: String,
        /// The sites that have a zone of that name, sorted.
        sites: Vec<String>,
    },
    /// A site-wide report was asked for a site that has no zone.
    #[error("unknown site {site}: no zone of it has reported")]
    UnknownSite {
        /// The site asked for.
        site: String,
    },
    /// Neither a site nor a zone was given and several sites report.
    #[error("several sites report ({}); choose one with --site", sites.join(", "))]
    SiteNeeded {
        /// The known sites, sorted.
        sites: Vec<String>,
    },
}

fn unknown_zone_message(zone: &str, site: Option<&str>, known: &[String]) -> String {
    let wanted = match site {
        Some(site) => format!("{site}/{zone}"),
        None => zone.to_string(),
    };
    if known.is_empty() {
        format!("unknown zone {wanted}: no zone has reported yet")
    } else {
        format!("unknown zone {wanted}; known zones: {}", known.join(", "))
    }
}

/// Inlet temperatures and open incidents of one rack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RackRow {
    /// Rack name, or [`NO_RACK`] for the sensors without one.
    pub rack: String,
    /// Distinct sensors (any kind) of the rack in the fleet directory.
    pub sensors: usize,
    /// Highest of the latest inlet values of the rack's sensors within the window (°C).
    pub inlet_last: Option<f64>,
    /// Mean of every inlet sample of the rack within the window (°C).
    pub inlet_avg: Option<f64>,
    /// Highest inlet sample of the rack within the window (°C).
    pub inlet_max: Option<f64>,
    /// Open incidents of the zone that name a sensor of this rack (see the module rules).
    pub open_incidents: usize,
}

/// An incident as listed in a report: the timeline left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentSummary {
    /// Incident id.
    pub id: String,
    /// Category of its fingerprint.
    pub category: Category,
    /// Highest severity raised.
    pub severity: Severity,
    /// Open or resolved.
    pub status: IncidentStatus,
    /// Event time of the raise that opened it.
    pub opened_at: Timestamp,
    /// When it resolved, if it did.
    pub resolved_at: Option<Timestamp>,
    /// Event time of its latest event.
    pub last_event_at: Timestamp,
    /// Sources still raised.
    pub active_sources: Vec<String>,
    /// Number of timeline entries.
    pub events: usize,
    /// Problem it is linked to, if any.
    pub problem: Option<String>,
}

impl IncidentSummary {
    /// The summary of one incident.
    pub fn of(incident: &Incident) -> Self {
        IncidentSummary {
            id: incident.id.clone(),
            category: incident.fingerprint.category,
            severity: incident.severity,
            status: incident.status,
            opened_at: incident.opened_at,
            resolved_at: incident.resolved_at,
            last_event_at: incident.last_event_at,
            active_sources: incident.active_sources.clone(),
            events: incident.event_count(),
            problem: incident.problem.clone(),
        }
    }
}

/// A problem as listed in a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemSummary {
    /// Problem id.
    pub id: String,
    /// Category of its fingerprint.
    pub category: Category,
    /// Where it is in its lifecycle.
    pub status: ProblemStatus,
    /// When it opened (event time).
    pub opened_at: Timestamp,
    /// Which rule opened it.
    pub trigger: ProblemTrigger,
    /// Why, in words.
    pub reason: String,
    /// Ids of its linked incidents.
    pub incidents: Vec<String>,
    /// Its recurrence signature in lines ([`crate::problem_text::signature_lines`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signature: Vec<String>,
    /// Its fix verification in lines ([`crate::problem_text::verification_lines`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verification: Vec<String>,
}

impl ProblemSummary {
    /// The summary of one problem.
    pub fn of(problem: &Problem) -> Self {
        ProblemSummary {
            id: problem.id.clone(),
            category: problem.fingerprint.category,
            status: problem.status,
            opened_at: problem.opened_at,
            trigger: problem.trigger,
            reason: problem.reason.clone(),
            incidents: problem.incidents.clone(),
            signature: crate::problem_text::signature_lines(problem),
            verification: crate::problem_text::verification_lines(problem),
        }
    }
}

/// The report of one zone over a window ending at `generated_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneReport {
    /// Site of the zone.
    pub site: String,
    /// The zone.
    pub zone: String,
    /// The `now` the report was made for (end of the window).
    pub generated_at: Timestamp,
    /// Length of the window, in seconds.
    pub window_secs: u64,
    /// One row per rack, in natural order (`R2` before `R10`), [`NO_RACK`] last.
    pub racks: Vec<RackRow>,
    /// Incidents of the zone open now, oldest first.
    pub open_incidents: Vec<IncidentSummary>,
    /// Incidents of the zone resolved within the window, oldest first.
    pub recent_incidents: Vec<IncidentSummary>,
    /// Every problem of the zone, oldest first.
    pub problems: Vec<ProblemSummary>,
    /// The roll-up level the rack figures come from ([`with_history`]); absent when the report
    /// has no figures (made without a store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollup_level: Option<crate::rollup::Level>,
    /// Predictive warnings of the zone open now ([`forecasts`]): never incidents, shown here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forecasts: Vec<forecasts::OpenForecast>,
}

/// One line of the list of zones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneSummary {
    /// Site of the zone.
    pub site: String,
    /// The zone.
    pub zone: String,
    /// Distinct named racks of the zone in the fleet directory.
    pub racks: usize,
    /// Incidents of the zone open now.
    pub open_incidents: usize,
    /// Problems of the zone not resolved.
    pub open_problems: usize,
}

/// The time incident status is evaluated at for a report made at `now` (see the module rules).
pub fn incident_time(state: &CollectorState, now: Timestamp) -> Timestamp {
    now.max(state.latest_event)
}

/// Every zone of the directory or of an incident, sorted by site then zone.
pub fn zones(state: &CollectorState, now: Timestamp) -> Vec<ZoneSummary> {
    let incidents = state.analysis.incidents(incident_time(state, now));
    let problems = state.analysis.problems();
    let mut by_zone: BTreeMap<(String, String), ZoneSummary> = BTreeMap::new();
    for key in known_zone_keys(state, &incidents) {
        let summary = ZoneSummary {
            racks: state.directory.rack_count(&key.0, &key.1),
            site: key.0.clone(),
            zone: key.1.clone(),
            open_incidents: 0,
            open_problems: 0,
        };
        by_zone.insert(key, summary);
    }
    for incident in incidents
        .iter()
        .filter(|i| i.status == IncidentStatus::Open)
    {
        let key = (
            incident.fingerprint.site.clone(),
            incident.fingerprint.zone.clone(),
        );
        if let Some(z) = by_zone.get_mut(&key) {
            z.open_incidents += 1;
        }
    }
    for problem in problems.iter().filter(|p| p.status.is_open()) {
        let key = (
            problem.fingerprint.site.clone(),
            problem.fingerprint.zone.clone(),
        );
        if let Some(z) = by_zone.get_mut(&key) {
            z.open_problems += 1;
        }
    }
    by_zone.into_values().collect()
}

/// `(site, zone)` of every zone of the directory and every incident, sorted and
/// deduplicated.
fn known_zone_keys(state: &CollectorState, incidents: &[Incident]) -> BTreeSet<(String, String)> {
    let mut keys = BTreeSet::new();
    for (site, zone) in state.directory.zones() {
        keys.insert((site.to_string(), zone.to_string()));
    }
    for i in incidents {
        keys.insert((i.fingerprint.site.clone(), i.fingerprint.zone.clone()));
    }
    keys
}

/// The report of `zone` (in `site`, needed only when several sites have a zone of that name)
/// over the `window` ending at `now`, without rack figures: the caller adds them from the
/// roll-ups of the period ([`with_history`]). See the module documentation for the rules.
pub fn zone_report(
    state: &CollectorState,
    site: Option<&str>,
    zone: &str,
    now: Timestamp,
    window: Duration,
) -> Result<ZoneReport, ReportError> {
    let incidents = state.analysis.incidents(incident_time(state, now));
    let keys = known_zone_keys(state, &incidents);
    let sites: Vec<&str> = keys
        .iter()
        .filter(|(s, z)| z == zone && site.is_none_or(|wanted| wanted == s))
        .map(|(s, _)| s.as_str())
        .collect();
    let site = match sites.as_slice() {
        [one] => (*one).to_string(),
        [] => {
            return Err(ReportError::UnknownZone {
                zone: zone.to_string(),
                site: site.map(str::to_string),
                known: keys.iter().map(|(s, z)| format!("{s}/{z}")).collect(),
            })
        }
        _ => {
            return Err(ReportError::AmbiguousZone {
                zone: zone.to_string(),
                sites: sites.iter().map(|s| (*s).to_string()).collect(),
            })
        }
    };

    let start = now.minus(window);
    let in_zone: Vec<&Incident> = incidents
        .iter()
        .filter(|i| i.fingerprint.site == site && i.fingerprint.zone == zone)
        .collect();
    let open: Vec<&Incident> = in_zone
        .iter()
        .copied()
        .filter(|i| i.status == IncidentStatus::Open)
        .collect();
    let recent: Vec<&Incident> = in_zone
        .iter()
        .copied()
        .filter(|i| {
            i.status == IncidentStatus::Resolved && i.resolved_at.is_some_and(|r| r >= start)
        })
        .collect();

    let mut racks: BTreeMap<RackKey, RackAccumulator> = BTreeMap::new();
    for ((rack, sensor), _) in state.directory.zone(&site, zone) {
        let acc = racks.entry(RackKey::of(rack.as_deref())).or_default();
        acc.sensors.insert(sensor.as_str());
    }
    let rows = racks
        .into_iter()
        .map(|(key, acc)| {
            let open_incidents = open
                .iter()
                .filter(|i| acc.sensors.iter().any(|sensor| names_sensor(i, sensor)))
                .count();
            acc.row(key.name(), open_incidents)
        })
        .collect();

    let problems = state
        .analysis
        .problems()
        .iter()
        .filter(|p| p.fingerprint.site == site && p.fingerprint.zone == zone)
        .map(ProblemSummary::of)
        .collect();

    let forecasts = forecasts::open_forecasts(state.analysis.events(), &site, zone);
    Ok(ZoneReport {
        site,
        zone: zone.to_string(),
        generated_at: now,
        window_secs: window.as_secs(),
        racks: rows,
        open_incidents: open.into_iter().map(IncidentSummary::of).collect(),
        recent_incidents: recent.into_iter().map(IncidentSummary::of).collect(),
        problems,
        rollup_level: None,
        forecasts,
    })
}

/// `report` (made by [`zone_report`] over `(from, to)`) with its rack figures read from the
/// stored roll-ups of its zone over that period ([`with_history`]). Blocking (a store read):
/// the API calls it off the runtime.
pub fn with_stored_figures(
    report: ZoneReport,
    rollups: &crate::rollup_store::RollupStore,
    (from, to): (Timestamp, Timestamp),
    now: Timestamp,
) -> Result<ZoneReport, coldaisle_store::StoreError> {
    let query = crate::rollup_store::HistoryQuery {
        site: report.site.clone(),
        zone: Some(report.zone.clone()),
        rack: None,
        sensor: None,
        from,
        to,
    };
    let history = rollups.history(&query, now)?;
    Ok(with_history(report, &history))
}

/// `report` (made by [`zone_report`] over the same period) with its rack figures read from the
/// roll-ups of that period (pure). Each sensor's merged
/// roll-up counts as one summary under the module rules: `inlet_last` is the highest of the
/// sensors' latest values, `inlet_avg` the sum over the count, `inlet_max` the highest
/// maximum. Racks seen only in the roll-ups are added (with no open incidents, as no incident
/// named them in the directory); racks without roll-ups keep their row with no figures.
pub fn with_history(mut report: ZoneReport, history: &crate::rollup_store::History) -> ZoneReport {
    let mut racks: BTreeMap<RackKey, (Option<usize>, RackAccumulator<'_>)> = report
        .racks
        .iter()
        .map(|row| {
            let key = RackKey::of(Some(row.rack.as_str()).filter(|r| *r != NO_RACK));
            (key, (Some(row.open_incidents), RackAccumulator::default()))
        })
        .collect();
    let summaries: Vec<ReadingSummary> = history
        .sensors
        .iter()
        .filter(|r| r.location.site == report.site && r.location.zone == report.zone)
        .map(|r| ReadingSummary {
            sensor: r.sensor.clone(),
            kind: r.kind,
            location: r.location.clone(),
            from: r.start,
            to: r.last_at,
            count: u32::try_from(r.count).unwrap_or(u32::MAX),
            min: r.min,
            max: r.max,
            sum: r.sum,
            last: r.last,
        })
        .collect();
    for s in &summaries {
        let (_, acc) = racks
            .entry(RackKey::of(s.location.rack.as_deref()))
            .or_insert((None, RackAccumulator::default()));
        acc.sensors.insert(s.sensor.as_str());
        if s.kind == SensorKind::InletTemp && s.count > 0 {
            acc.add_inlet(s);
        }
    }
    let rows = racks
        .into_iter()
        .map(|(key, (open, acc))| {
            let mut row = acc.row(key.name(), open.unwrap_or(0));
            if let Some(old) = report.racks.iter().find(|r| r.rack == row.rack) {
                row.sensors = row.sensors.max(old.sensors);
            }
            row
        })
        .collect();
    report.racks = rows;
    report.rollup_level = Some(history.level);
    report
}

/// True if an incident's active sources or timeline texts name `sensor` as a whole word.
pub(crate) fn names_sensor(incident: &Incident, sensor: &str) -> bool {
    let in_sources = incident.active_sources.iter().any(|source| {
        source
            .strip_prefix("sensor:")
            .and_then(|rest| rest.rsplit_once(':'))
            .is_some_and(|(name, _detector)| name == sensor)
    });
    in_sources || incident.names_word(sensor)
}

/// Rack sort key: named racks in natural order, then the sensors without a rack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RackKey {
    /// A named rack.
    Named(String),
    /// Sensors without a rack.
    None,
}

impl RackKey {
    pub(crate) fn of(rack: Option<&str>) -> Self {
        match rack {
            Some(name) => RackKey::Named(name.to_string()),
            None => RackKey::None,
        }
    }

    pub(crate) fn name(&self) -> String {
        match self {
            RackKey::Named(name) => name.clone(),
            RackKey::None => NO_RACK.to_string(),
        }
    }
}

impl Ord for RackKey {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (RackKey::Named(a), RackKey::Named(b)) => natural_cmp(a, b).then_with(|| a.cmp(b)),
            (RackKey::Named(_), RackKey::None) => Ordering::Less,
            (RackKey::None, RackKey::Named(_)) => Ordering::Greater,
            (RackKey::None, RackKey::None) => Ordering::Equal,
        }
    }
}

impl PartialOrd for RackKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Compares names so that runs of digits compare as numbers: `R2 < R10`, `A-9 < A-10`.
pub(crate) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        match (a.chars().next(), b.chars().next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let (da, ra) = split_digits(a);
                let (db, rb) = split_digits(b);
                let (na, nb) = (da.trim_start_matches('0'), db.trim_start_matches('0'));
                let order = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if order != Ordering::Equal {
                    return order;
                }
                a = ra;
                b = rb;
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(&y);
                }
                a = &a[x.len_utf8()..];
                b = &b[y.len_utf8()..];
            }
        }
    }
}

/// Splits the leading ASCII digits off `s`.
fn split_digits(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}

/// Figures of one rack while summaries are scanned.
#[derive(Debug, Default)]
struct RackAccumulator<'a> {
    /// Distinct sensors of the rack (any kind, any age).
    sensors: BTreeSet<&'a str>,
    /// Latest in-window inlet summary of each sensor: `(to, last)`.
    latest: BTreeMap<&'a str, (Timestamp, f64)>,
    /// Sum of the in-window inlet sums.
    sum: f64,
    /// Sum of the in-window inlet counts.
    count: u64,
    /// Highest in-window inlet maximum.
    max: Option<f64>,
}

impl<'a> RackAccumulator<'a> {
    fn add_inlet(&mut self, s: &'a ReadingSummary) {
        let latest = self
            .latest
            .entry(s.sensor.as_str())
            .or_insert((s.to, s.last));
        if s.to >= latest.0 {
            *latest = (s.to, s.last);
        }
        self.sum += s.sum;
        self.count += u64::from(s.count);
        self.max = Some(self.max.map_or(s.max, |m| m.max(s.max)));
    }

    fn row(self, rack: String, open_incidents: usize) -> RackRow {
        let inlet_last = self
            .latest
            .values()
            .map(|&(_, last)| last)
            .fold(None, |acc: Option<f64>, v| {
                Some(acc.map_or(v, |a| a.max(v)))
            });
        // Counts are u32 per summary; their total stays far below 2^53, so the cast is exact.
        let inlet_avg = (self.count > 0).then(|| self.sum / self.count as f64);
        RackRow {
            rack,
            sensors: self.sensors.len(),
            inlet_last,
            inlet_avg,
            inlet_max: self.max,
            open_incidents,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use crate::analysis::{Analysis, StoredEvent};
    use crate::incidents::IncidentRules;
    use crate::problems::ProblemRules;
    use crate::state::{Directory, IngestStats};
    use coldaisle_core::wire::Payload;
    use coldaisle_core::{EventState, Location, SensorEvent};
    use std::collections::BTreeMap;

    /// 2025-11-25T12:00:00Z.
    pub const T0: i64 = 1_764_072_000_000;
    pub const MIN: i64 = 60_000;
    pub const HOUR: i64 = 60 * MIN;

    pub fn location(site: &str, zone: &str, rack: Option<&str>) -> Location {
        Location {
            site: site.into(),
            zone: zone.into(),
            row: None,
            rack: rack.map(str::to_string),
        }
    }

    /// A one-minute summary ending at `to` with the given samples.
    pub fn summary(
        loc: Location,
        sensor: &str,
        kind: SensorKind,
        to: i64,
        samples: &[f64],
    ) -> ReadingSummary {
        ReadingSummary {
            sensor: sensor.into(),
            kind,
            location: loc,
            from: Timestamp(to - MIN),
            to: Timestamp(to),
            count: samples.len() as u32,
            min: samples.iter().copied().fold(f64::INFINITY, f64::min),
            max: samples.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            sum: samples.iter().sum(),
            last: samples.last().copied().unwrap_or(f64::NAN),
        }
    }

    /// A threshold event on an inlet sensor.
    pub fn inlet_event(
        seq: u64,
        loc: Location,
        sensor: &str,
        state: EventState,
        severity: Severity,
        ts: i64,
    ) -> StoredEvent {
        StoredEvent {
            agent: "a1".into(),
            seq,
            payload: Payload::SensorEvent(SensorEvent {
                sensor: sensor.into(),
                kind: SensorKind::InletTemp,
                location: loc,
                category: Category::Thermal,
                detector: "threshold".into(),
                state,
                severity,
                value: 29.0,
                limit: Some(27.0),
                first_ts: Timestamp(ts),
                ts: Timestamp(ts),
                expected_crossing: None,
            }),
        }
    }

    /// A state holding `events` in its analysis, and `summaries` in its directory and in
    /// roll-ups on a `MemoryStore` (as ingest stores them).
    pub fn state(summaries: Vec<ReadingSummary>, events: Vec<StoredEvent>) -> CollectorState {
        let mut analysis = Analysis::new(IncidentRules::default(), ProblemRules::default());
        let mut latest = Timestamp(0);
        for e in events {
            latest = latest.max(e.payload.ts());
            analysis.ingest(e);
        }
        CollectorState {
            analysis,
            directory: Directory::default(),
            rollups: None,
            agents: BTreeMap::new(),
            stats: IngestStats::default(),
            notify: Default::default(),
            latest_event: latest,
            history: None,
        }
        .with_summaries(summaries)
    }

    /// Roll-ups on a fresh `MemoryStore` holding `summaries`.
    pub fn memory_rollups(summaries: &[ReadingSummary]) -> crate::rollup_store::RollupStore {
        let kv: std::sync::Arc<dyn coldaisle_store::KvStore> =
            std::sync::Arc::new(coldaisle_store::MemoryStore::new());
        let refs: Vec<&ReadingSummary> = summaries.iter().collect();
        crate::rollup_store::add(kv.as_ref(), &refs).unwrap();
        crate::rollup_store::RollupStore::new(kv, Default::default())
    }

    impl CollectorState {
        /// Adds `summaries` as ingest does: to the directory and (a test store on a
        /// `MemoryStore` if the state has none) to the roll-ups; moves `latest_event`.
        pub fn with_summaries(mut self, summaries: Vec<ReadingSummary>) -> Self {
            let store = self.rollups.get_or_insert_with(|| memory_rollups(&[]));
            let refs: Vec<&ReadingSummary> = summaries.iter().collect();
            crate::rollup_store::add(store.kv().as_ref(), &refs).unwrap();
            for s in &summaries {
                self.latest_event = self.latest_event.max(s.to);
                self.directory.note(s);
            }
            self
        }
    }

    /// The report of `zone` with its rack figures from the state's roll-ups, as the API
    /// makes it ([`zone_report`], then [`with_history`] over the same period).
    pub fn report_at(
        st: &CollectorState,
        site: Option<&str>,
        zone: &str,
        now: Timestamp,
        window: Duration,
    ) -> Result<ZoneReport, ReportError> {
        let report = zone_report(st, site, zone, now, window)?;
        let Some(store) = &st.rollups else {
            return Ok(report);
        };
        Ok(with_stored_figures(report, store, (now.minus(window), now), now).unwrap())
    }

    /// Zone Z1 of dc1: racks R2 (two inlet sensors) and R10 (one inlet, one outlet), a CRAC
    /// supply sensor without a rack, an old summary outside the window; zone Z2 of dc1 and a
    /// zone Z1 of dc2; an open incident on r2-a and a resolved one on r10-a.
    pub fn sample() -> CollectorState {
        let z1 = |rack: Option<&str>| location("dc1", "Z1", rack);
        let now = T0 + 24 * HOUR;
        let summaries = vec![
            // Outside a 1h window (but inside 24h): 35.0 max.
            summary(
                z1(Some("R2")),
                "r2-a",
                SensorKind::InletTemp,
                now - 2 * HOUR,
                &[35.0, 30.0],
            ),
            summary(
                z1(Some("R2")),
                "r2-a",
                SensorKind::InletTemp,
                now - 30 * MIN,
                &[22.0, 24.0],
            ),
            summary(
                z1(Some("R2")),
                "r2-a",
                SensorKind::InletTemp,
                now - 10 * MIN,
                &[23.0, 21.0],
            ),
            summary(
                z1(Some("R2")),
                "r2-b",
                SensorKind::InletTemp,
                now - 20 * MIN,
                &[25.0, 26.0, 27.0],
            ),
            summary(
                z1(Some("R10")),
                "r10-a",
                SensorKind::InletTemp,
                now - 5 * MIN,
                &[20.0],
            ),
            summary(
                z1(Some("R10")),
                "r10-out",
                SensorKind::OutletTemp,
                now - 5 * MIN,
                &[40.0],
            ),
            summary(
                z1(None),
                "crac-1-supply",
                SensorKind::SupplyAirTemp,
                now - 5 * MIN,
                &[18.0],
            ),
            // In a bucket starting after `now` (minutes and hours): not in the window.
            summary(
                z1(Some("R10")),
                "r10-a",
                SensorKind::InletTemp,
                now + 2 * HOUR,
                &[50.0],
            ),
            summary(
                location("dc1", "Z2", Some("R1")),
                "z2-r1",
                SensorKind::InletTemp,
                now - MIN,
                &[21.0],
            ),
            summary(
                location("dc2", "Z1", Some("R1")),
                "dc2-r1",
                SensorKind::InletTemp,
                now - MIN,
                &[21.0],
            ),
        ];
        let events = vec![
            inlet_event(
                1,
                z1(Some("R10")),
                "r10-a",
                EventState::Raised,
                Severity::Warning,
                now - 3 * HOUR,
            ),
            inlet_event(
                2,
                z1(Some("R10")),
                "r10-a",
                EventState::Cleared,
                Severity::Warning,
                now - 3 * HOUR + 10 * MIN,
            ),
            inlet_event(
                3,
                z1(Some("R2")),
                "r2-a",
                EventState::Raised,
                Severity::Critical,
                now - 15 * MIN,
            ),
        ];
        state(summaries, events)
    }

    const NOW: Timestamp = Timestamp(T0 + 24 * HOUR);

    fn row<'a>(report: &'a ZoneReport, rack: &str) -> &'a RackRow {
        report.racks.iter().find(|r| r.rack == rack).unwrap()
    }

    #[test]
    fn rack_figures_follow_the_rules() {
        let st = sample();
        let report = report_at(&st, Some("dc1"), "Z1", NOW, Duration::from_secs(3600)).unwrap();
        assert_eq!(report.site, "dc1");
        assert_eq!(report.window_secs, 3600);
        let names: Vec<&str> = report.racks.iter().map(|r| r.rack.as_str()).collect();
        assert_eq!(names, vec!["R2", "R10", NO_RACK]);

        let r2 = row(&report, "R2");
        assert_eq!(r2.sensors, 2);
        // Latest of r2-a is 21.0 (at -10 min), of r2-b 27.0: last is the max of the two.
        assert_eq!(r2.inlet_last, Some(27.0));
        // (22 + 24 + 23 + 21 + 25 + 26 + 27) / 7; the 2h-old summary is outside the window.
        assert!((r2.inlet_avg.unwrap() - 168.0 / 7.0).abs() < 1e-9);
        assert_eq!(r2.inlet_max, Some(27.0));
        assert_eq!(r2.open_incidents, 1);

        let r10 = row(&report, "R10");
        assert_eq!(r10.sensors, 2);
        // The outlet sensor counts as a sensor but not in the inlet figures; the future summary
        // (50.0) is outside the window.
        assert_eq!(
            (r10.inlet_last, r10.inlet_avg, r10.inlet_max),
            (Some(20.0), Some(20.0), Some(20.0))
        );
        assert_eq!(r10.open_incidents, 0);

        let none = row(&report, NO_RACK);
        assert_eq!(none.sensors, 1);
        assert_eq!(none.inlet_last, None);
        assert_eq!(none.inlet_avg, None);
        assert_eq!(none.open_incidents, 0);
    }

    #[test]
    fn window_cut_off_includes_both_ends() {
        let st = sample();
        let day = report_at(&st, Some("dc1"), "Z1", NOW, Duration::from_secs(24 * 3600)).unwrap();
        assert_eq!(row(&day, "R2").inlet_max, Some(35.0));
        // The 35.0 summary runs from now - 2h 1m: a window starting exactly there has it ...
        let two = report_at(
            &st,
            Some("dc1"),
            "Z1",
            NOW,
            Duration::from_secs(2 * 3600 + 60),
        )
        .unwrap();
        assert_eq!(row(&two, "R2").inlet_max, Some(35.0));
        // ... and so does one starting within its minute bucket (the bucket of the start is in) ...
        let within = report_at(
            &st,
            Some("dc1"),
            "Z1",
            NOW,
            Duration::from_secs(2 * 3600 + 59),
        )
        .unwrap();
        assert_eq!(row(&within, "R2").inlet_max, Some(35.0));
        // ... but not one starting at the next bucket.
        let less = report_at(&st, Some("dc1"), "Z1", NOW, Duration::from_secs(2 * 3600)).unwrap();
        assert_eq!(row(&less, "R2").inlet_max, Some(27.0));
        // A window that ends before every summary: racks still listed, with no figures.
        let early = report_at(
            &st,
            Some("dc1"),
            "Z1",
            Timestamp(T0),
            Duration::from_secs(3600),
        )
        .unwrap();
        assert_eq!(early.racks.len(), 3);
        assert!(early.racks.iter().all(|r| r.inlet_last.is_none()));
    }

    /// The directory keeps every sensor: a zone whose last summaries are weeks old (older than
    /// the 8 days memory once kept) still lists its racks and sensors, with no figures in a
    /// recent window and its figures over a period that covers them.
    #[test]
    fn a_zone_seen_long_ago_still_lists_its_racks_and_sensors() {
        let old = T0 - 30 * 24 * HOUR;
        let z9 = |rack: Option<&str>| location("dc1", "Z9", rack);
        let st = state(
            vec![
                summary(z9(Some("R1")), "r1-a", SensorKind::InletTemp, old, &[22.0]),
                summary(z9(Some("R1")), "r1-b", SensorKind::InletTemp, old, &[24.0]),
                summary(z9(Some("R2")), "r2-a", SensorKind::OutletTemp, old, &[35.0]),
                summary(z9(None), "crac", SensorKind::SupplyAirTemp, old, &[17.0]),
            ],
            Vec::new(),
        );
        let now = Timestamp(T0);
        let list = zones(&st, now);
        assert_eq!(
            list.iter()
                .map(|z| (z.zone.as_str(), z.racks))
                .collect::<Vec<_>>(),
            vec![("Z9", 2)]
        );
        let report = report_at(&st, None, "Z9", now, Duration::from_secs(3600)).unwrap();
        let rows: Vec<(&str, usize, Option<f64>)> = report
            .racks
            .iter()
            .map(|r| (r.rack.as_str(), r.sensors, r.inlet_max))
            .collect();
        assert_eq!(
            rows,
            vec![("R1", 2, None), ("R2", 1, None), (NO_RACK, 1, None)]
        );
        let month = report_at(&st, None, "Z9", now, Duration::from_secs(31 * 24 * 3600)).unwrap();
        assert_eq!(row(&month, "R1").inlet_max, Some(24.0));
        assert_eq!(row(&month, "R1").sensors, 2);
    }

    #[test]
    fn incidents_open_recent_and_problems() {
        let st = sample();
        let report =
            report_at(&st, Some("dc1"), "Z1", NOW, Duration::from_secs(24 * 3600)).unwrap();
        assert_eq!(report.open_incidents.len(), 1);
        let open = &report.open_incidents[0];
        assert_eq!(open.severity, Severity::Critical);
        assert_eq!(open.active_sources, vec!["sensor:r2-a:threshold"]);
        assert_eq!(report.recent_incidents.len(), 1);
        assert_eq!(report.recent_incidents[0].status, IncidentStatus::Resolved);
        // The critical incident opened an SLA problem.
        assert_eq!(report.problems.len(), 1);
        assert_eq!(report.problems[0].trigger, ProblemTrigger::Sla);
        assert_eq!(report.problems[0].incidents, vec![open.id.clone()]);
        assert_eq!(
            open.problem.as_deref(),
            Some(report.problems[0].id.as_str())
        );
        // A 1h window no longer shows the incident resolved 2h 35m ago.
        let hour = report_at(&st, Some("dc1"), "Z1", NOW, Duration::from_secs(3600)).unwrap();
        assert!(hour.recent_incidents.is_empty());
        assert_eq!(hour.open_incidents.len(), 1);
    }

    #[test]
    fn zone_lookup_errors_name_the_known_zones() {
        let st = sample();
        let err = report_at(&st, None, "Z9", NOW, Duration::from_secs(60)).unwrap_err();
        assert_eq!(
            err,
            ReportError::UnknownZone {
                zone: "Z9".into(),
                site: None,
                known: vec!["dc1/Z1".into(), "dc1/Z2".into(), "dc2/Z1".into()],
            }
        );
        assert_eq!(
            err.to_string(),
            "unknown zone Z9; known zones: dc1/Z1, dc1/Z2, dc2/Z1"
        );
        let err = report_at(&st, Some("dc2"), "Z2", NOW, Duration::from_secs(60)).unwrap_err();
        assert!(err.to_string().starts_with("unknown zone dc2/Z2; known"));
        let err = report_at(&st, None, "Z1", NOW, Duration::from_secs(60)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "zone Z1 exists in several sites (dc1, dc2); choose one with --site"
        );
        // Unique without a site.
        let z2 = report_at(&st, None, "Z2", NOW, Duration::from_secs(60)).unwrap();
        assert_eq!(z2.site, "dc1");
        let empty = state(Vec::new(), Vec::new());
        let err = report_at(&empty, None, "Z1", NOW, Duration::from_secs(60)).unwrap_err();
        assert_eq!(err.to_string(), "unknown zone Z1: no zone has reported yet");
    }

    #[test]
    fn zones_lists_every_zone_with_counts() {
        let st = sample();
        let list = zones(&st, NOW);
        let keys: Vec<(&str, &str, usize, usize, usize)> = list
            .iter()
            .map(|z| {
                (
                    z.site.as_str(),
                    z.zone.as_str(),
                    z.racks,
                    z.open_incidents,
                    z.open_problems,
                )
            })
            .collect();
        assert_eq!(
            keys,
            vec![
                ("dc1", "Z1", 2, 1, 1),
                ("dc1", "Z2", 1, 0, 0),
                ("dc2", "Z1", 1, 0, 0)
            ]
        );
        // A zone known only from an incident.
        let only_event = state(
            Vec::new(),
            vec![inlet_event(
                1,
                location("dc3", "Z7", None),
                "x",
                EventState::Raised,
                Severity::Warning,
                T0,
            )],
        );
        let list = zones(&only_event, Timestamp(T0));
        assert_eq!(list.len(), 1);
        assert_eq!((list[0].racks, list[0].open_incidents), (0, 1));
    }

    #[test]
    fn incident_status_uses_the_latest_event_time_when_it_is_later() {
        let loc = location("dc1", "Z1", Some("R1"));
        let mut st = state(
            vec![summary(
                loc.clone(),
                "r1-inlet",
                SensorKind::InletTemp,
                T0,
                &[20.0],
            )],
            vec![
                inlet_event(
                    1,
                    loc.clone(),
                    "r1-inlet",
                    EventState::Raised,
                    Severity::Warning,
                    T0,
                ),
                inlet_event(
                    2,
                    loc,
                    "r1-inlet",
                    EventState::Cleared,
                    Severity::Warning,
                    T0 + MIN,
                ),
            ],
        );
        // The quiet period (15 min) ends at T0 + 16 min. Asked at T0 + 5 min with no later
        // event time, the incident is still open ...
        let early = Timestamp(T0 + 5 * MIN);
        let report = report_at(&st, None, "Z1", early, Duration::from_secs(3600)).unwrap();
        assert_eq!(report.open_incidents.len(), 1);
        assert!(report.open_incidents[0].active_sources.is_empty());
        assert_eq!(row(&report, "R1").open_incidents, 1);
        // ... but once an event at T0 + 20 min has been seen, event time says it resolved, and
        // it counts as resolved within the window that ends at `now`.
        st.latest_event = Timestamp(T0 + 20 * MIN);
        let report = report_at(&st, None, "Z1", early, Duration::from_secs(3600)).unwrap();
        assert!(report.open_incidents.is_empty());
        assert_eq!(report.recent_incidents.len(), 1);
        assert_eq!(report.generated_at, early);
        assert_eq!(zones(&st, early)[0].open_incidents, 0);
    }

    #[test]
    fn sensor_names_match_whole_words_only() {
        let loc = location("dc1", "Z1", Some("R1"));
        let st = state(
            vec![
                summary(loc.clone(), "r1-inlet", SensorKind::InletTemp, T0, &[20.0]),
                summary(
                    location("dc1", "Z1", Some("R2")),
                    "r1-inlet-2",
                    SensorKind::InletTemp,
                    T0,
                    &[20.0],
                ),
            ],
            vec![inlet_event(
                1,
                loc,
                "r1-inlet-2",
                EventState::Raised,
                Severity::Warning,
                T0,
            )],
        );
        let report = report_at(&st, None, "Z1", Timestamp(T0), Duration::from_secs(60)).unwrap();
        assert_eq!(row(&report, "R1").open_incidents, 0);
        assert_eq!(row(&report, "R2").open_incidents, 1);
    }

    #[test]
    fn natural_order_of_racks() {
        let mut names = vec!["R10", "R2", "R1", "B", "A-10", "A-9", "R02"];
        names.sort_by(|a, b| natural_cmp(a, b).then_with(|| a.cmp(b)));
        assert_eq!(names, vec!["A-9", "A-10", "B", "R1", "R02", "R2", "R10"]);
    }

    /// Two racks' forecasts in a zone: no incident opens, the report lists the one still open
    /// with its expected crossing, and its text rendering has a forecasts section.
    #[test]
    fn forecasts_open_no_incident_and_show_in_the_zone_report() {
        let forecast = |seq, rack: &str, state, ts: i64| {
            let mut e = inlet_event(
                seq,
                location("dc1", "Z1", Some(rack)),
                &format!("{rack}-inlet"),
                state,
                Severity::Warning,
                ts,
            );
            if let Payload::SensorEvent(s) = &mut e.payload {
                s.detector = coldaisle_core::FORECAST_DETECTOR.into();
                s.value = 25.2;
                s.expected_crossing =
                    (state == EventState::Raised).then_some(Timestamp(ts + 20 * MIN));
            }
            e
        };
        let st = state(
            vec![summary(
                location("dc1", "Z1", Some("R1")),
                "R1-inlet",
                SensorKind::InletTemp,
                T0,
                &[25.0],
            )],
            vec![
                forecast(1, "R1", EventState::Raised, T0 - 10 * MIN),
                forecast(2, "R2", EventState::Raised, T0 - 9 * MIN),
                forecast(3, "R2", EventState::Cleared, T0 - 2 * MIN),
            ],
        );
        assert!(st.analysis.incidents(Timestamp(T0)).is_empty());
        let report = report_at(&st, None, "Z1", Timestamp(T0), Duration::from_secs(3600)).unwrap();
        assert!(report.open_incidents.is_empty());
        assert_eq!(report.forecasts.len(), 1, "{:?}", report.forecasts);
        let f = &report.forecasts[0];
        assert_eq!(
            (f.sensor.as_str(), f.rack.as_deref()),
            ("R1-inlet", Some("R1"))
        );
        assert_eq!(f.expected_crossing, Some(Timestamp(T0 + 10 * MIN)));
        let text = crate::render::render_zone_report(&report);
        assert!(
            text.contains("Forecasts: trend reaches the limit soon (1):"),
            "{text}"
        );
        assert!(text.contains("2025-11-25T12:10:00.000Z"), "{text}");
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["forecasts"][0]["limit"], 27.0);
    }
}
