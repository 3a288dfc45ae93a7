//! Probable cause of an incident or a problem, explained from the evidence.
//!
//! Pure: decides from the events of the incident (their sensor kinds, locations, values, limits
//! and times), never from the clock.

mod tally;
pub use tally::CauseTally;

use serde::{Deserialize, Serialize};

/// The kinds of cause the collector can tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CauseKind {
    /// The zone's cooling could not keep up: supply air rose first, or the cooling ΔT collapsed.
    CoolingCapacity,
    /// Airflow or containment: inlets of neighbouring racks rose while cooling looked normal.
    Airflow,
    /// One rack alone ran hot: its own load density.
    RackDensity,
    /// A sensor or device fault, not a real condition.
    SensorFault,
    /// The evidence does not point anywhere.
    Unknown,
}

/// A probable cause with the readings that support it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbableCause {
    /// The cause.
    pub kind: CauseKind,
    /// One sentence saying why.
    pub summary: String,
    /// The readings that support it, one line each.
    pub evidence: Vec<String>,
}

use crate::model::StoredEvent;
use coldaisle_core::wire::Payload;
use coldaisle_core::{Category, EventState, SensorEvent, SensorKind, Timestamp};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How long before an incident's first raise a cooling event still counts as its cause.
pub const COOLING_LEAD: Duration = Duration::from_secs(30 * 60);

/// Detector names that report a broken sensor rather than a real condition.
const FAULT_DETECTORS: [&str; 4] = ["stuck", "impossible_value", "stale", "fault"];

/// Raised or cleared, for the payloads that have a state.
fn state_of(payload: &Payload) -> Option<EventState> {
    match payload {
        Payload::SensorEvent(e) => Some(e.state),
        Payload::ZoneEvent(e) => Some(e.state),
        Payload::DeviceEvent(e) => Some(e.state),
        Payload::ReadingSummary(_) => None,
    }
}

fn is_fault(e: &SensorEvent) -> bool {
    e.category == Category::Device || FAULT_DETECTORS.contains(&e.detector.as_str())
}

fn is_delta_t(e: &SensorEvent) -> bool {
    e.sensor.ends_with(".delta_t")
}

fn describe(e: &SensorEvent) -> String {
    let limit = e
        .limit
        .map(|l| format!(" (limit {l:.1})"))
        .unwrap_or_default();
    let rack = e
        .location
        .rack
        .as_deref()
        .map(|r| format!(" rack {r}"))
        .unwrap_or_default();
    format!(
        "{} {} {}{rack}{}: {:.1} {}{limit} by {} at {}",
        e.kind.as_str(),
        e.sensor,
        match e.state {
            EventState::Raised => "raised",
            EventState::Cleared => "cleared",
        },
        e.location
            .row
            .as_deref()
            .map(|r| format!(" row {r}"))
            .unwrap_or_default(),
        e.value,
        e.kind.unit(),
        e.detector,
        e.ts.to_rfc3339()
    )
}

/// The probable cause of one incident.
///
/// `own` are the incident's events (its timeline); `zone` are every event of the same site and
/// zone, any category, from [`COOLING_LEAD`] before the incident's first raise to its last
/// event. Rules, first match wins:
/// 1. **sensor fault**: every raise of the incident comes from a fault detector (stuck,
///    impossible value, stale) or is a device event;
/// 2. **cooling capacity**: a cooling sensor of the zone (supply air, return air, ΔT, fan,
///    cooling state) raised before or at the incident's first raise, within [`COOLING_LEAD`];
/// 3. **airflow / containment**: inlets of two or more racks raised while no cooling sensor of
///    the zone did;
/// 4. **single rack density**: the raised inlets are all in one rack;
/// 5. otherwise unknown.
pub fn explain(own: &[&StoredEvent], zone: &[&StoredEvent]) -> ProbableCause {
    let sensor = |e: &&StoredEvent| match &e.payload {
        Payload::SensorEvent(s) => Some(s.clone()),
        _ => None,
    };
    let own_raises: Vec<&StoredEvent> = own
        .iter()
        .copied()
        .filter(|e| state_of(&e.payload) == Some(EventState::Raised))
        .collect();
    let first_raise = own_raises.iter().map(|e| e.payload.ts()).min();
    let own_sensor_raises: Vec<SensorEvent> = own_raises.iter().filter_map(sensor).collect();
    let devices = own_raises
        .iter()
        .filter(|e| matches!(e.payload, Payload::DeviceEvent(_)))
        .count();
    if !own_raises.is_empty()
        && own_sensor_raises.len() + devices == own_raises.len()
        && own_sensor_raises.iter().all(is_fault)
    {
        let mut evidence: Vec<String> = own_sensor_raises.iter().map(describe).collect();
        evidence.extend(own_raises.iter().filter_map(|e| match &e.payload {
            Payload::DeviceEvent(d) => Some(format!(
                "device {} unreachable at {}: {}",
                d.device,
                d.ts.to_rfc3339(),
                d.reason
            )),
            _ => None,
        }));
        return ProbableCause {
            kind: CauseKind::SensorFault,
            summary: "sensor or device fault: the readings are not trustworthy (stuck, impossible or stale values, or an unreachable device), not a thermal condition".to_string(),
            evidence,
        };
    }
    let Some(first) = first_raise else {
        return unknown("no raised event in the incident");
    };
    let cooling: Vec<SensorEvent> = zone
        .iter()
        .filter_map(sensor)
        .filter(|s| s.state == EventState::Raised && s.category == Category::Cooling)
        // A forecast is a warning about the trend, not a cooling failure.
        .filter(|s| !s.is_forecast())
        .filter(|s| s.ts <= first && s.ts >= first.minus(COOLING_LEAD))
        .collect();
    if !cooling.is_empty() {
        let delta_t = cooling.iter().any(is_delta_t);
        let supply = cooling.iter().any(|s| s.kind == SensorKind::SupplyAirTemp);
        let why = match (supply, delta_t) {
            (true, _) => "the zone's cooling supply air rose first",
            (false, true) => "the cooling ΔT collapsed first",
            (false, false) => "a cooling unit of the zone failed first",
        };
        let mut evidence: Vec<String> = cooling.iter().map(describe).collect();
        evidence.extend(own_sensor_raises.iter().take(3).map(describe));
        return ProbableCause {
            kind: CauseKind::CoolingCapacity,
            summary: format!("cooling capacity: {why}, then the inlets followed"),
            evidence,
        };
    }
    let inlets: Vec<&SensorEvent> = own_sensor_raises
        .iter()
        .filter(|s| !is_fault(s) && s.category == Category::Thermal)
        .collect();
    let mut racks: BTreeMap<String, Vec<&SensorEvent>> = BTreeMap::new();
    for s in &inlets {
        let rack = s.location.rack.clone().unwrap_or_else(|| s.sensor.clone());
        racks.entry(rack).or_default().push(s);
    }
    let mut zone_racks: BTreeSet<String> = BTreeSet::new();
    for e in own_raises.iter() {
        if let Payload::ZoneEvent(z) = &e.payload {
            zone_racks.extend(z.evidence.iter().filter_map(|ev| ev.rack.clone()));
        }
    }
    zone_racks.extend(racks.keys().cloned());
    if zone_racks.len() >= 2 {
        let rows: BTreeSet<&str> = inlets
            .iter()
            .filter_map(|s| s.location.row.as_deref())
            .collect();
        let place = match rows.len() {
            1 => format!(
                " in row {}",
                rows.iter().next().copied().unwrap_or_default()
            ),
            _ => String::new(),
        };
        let names: Vec<&str> = zone_racks.iter().map(String::as_str).collect();
        let mut evidence: Vec<String> = inlets.iter().map(|s| describe(s)).collect();
        evidence.push("no cooling sensor of the zone raised before the inlets".to_string());
        return ProbableCause {
            kind: CauseKind::Airflow,
            summary: format!(
                "airflow or containment: inlets of {} neighbouring racks{place} ({}) rose while cooling was normal",
                names.len(),
                names.join(", ")
            ),
            evidence,
        };
    }
    if let Some((rack, events)) = racks.iter().next() {
        return ProbableCause {
            kind: CauseKind::RackDensity,
            summary: format!(
                "single rack density: only rack {rack} ran hot while its neighbours and cooling stayed normal"
            ),
            evidence: events.iter().map(|s| describe(s)).collect(),
        };
    }
    unknown("the raised events name no inlet and no cooling sensor")
}

fn unknown(why: &str) -> ProbableCause {
    ProbableCause {
        kind: CauseKind::Unknown,
        summary: format!("unknown: {why}"),
        evidence: Vec::new(),
    }
}

/// The probable cause of a problem: the most frequent cause of its incidents (ties: the first
/// in [`CauseKind`] order of appearance), with the count as evidence.
pub fn of_problem(causes: &[ProbableCause]) -> Option<ProbableCause> {
    let mut tally = CauseTally::default();
    causes.iter().for_each(|c| tally.add(c));
    tally.problem_cause()
}

impl CauseKind {
    /// Rank used to break ties deterministically (lower wins).
    fn cmp_rank(self) -> u8 {
        match self {
            CauseKind::CoolingCapacity => 0,
            CauseKind::Airflow => 1,
            CauseKind::RackDensity => 2,
            CauseKind::SensorFault => 3,
            CauseKind::Unknown => 4,
        }
    }
}

/// How far before a problem opens a step-up of rack power in its zone still counts as
/// density evidence (default of `[problems] density_lookback`): four weeks.
pub const DEFAULT_DENSITY_LOOKBACK: Duration = Duration::from_secs(28 * 86_400);

/// The detector name of a step change (`agent/src/detect/step.rs`).
const STEP_DETECTOR: &str = "step_change";

/// True if [`density_steps`] can count `event` (a step change of rack power or current): the
/// analysis keeps these past its horizon for `density_lookback` (see `analysis/horizon.rs`).
pub fn is_density_evidence(event: &StoredEvent) -> bool {
    matches!(&event.payload, Payload::SensorEvent(s)
        if s.detector == STEP_DETECTOR
            && matches!(s.kind, SensorKind::RackPower | SensorKind::RackCurrent))
}

/// A rack's net rise of power (or current) over the look-back, from its step-change events.
#[derive(Debug, Clone, PartialEq)]
pub struct DensityStep {
    /// The rack (or the sensor, when the event names no rack).
    pub rack: String,
    /// Net change of the level over the look-back (after − before, summed over its steps).
    pub change: f64,
    /// Unit of the change (`kW` or `A`).
    pub unit: &'static str,
    /// When its first step-up happened.
    pub since: Timestamp,
}

impl DensityStep {
    /// The evidence line, e.g. `Z1-R07 +2.1 kW since 2026-11-12`.
    pub fn text(&self) -> String {
        let date = self.since.to_rfc3339();
        format!(
            "{} {:+.1} {} since {}",
            self.rack,
            self.change,
            self.unit,
            date.get(..10).unwrap_or(&date)
        )
    }
}

/// The density changes among `zone` (events of the problem's zone): step-change events of
/// rack power or current, raised with `value` = the level after and `limit` = the level
/// before. Each sensor's steps add up; sensors whose net change is a rise are kept, per rack
/// the rack-power sensor first (kW says density; amperes only when no power is metered),
/// largest rise first. The caller picks the look-back window.
pub fn density_steps(zone: &[&StoredEvent]) -> Vec<DensityStep> {
    // Per sensor: rack, unit, kind, net change, first step-up.
    let mut by_sensor: BTreeMap<&str, (DensityStep, SensorKind, Option<Timestamp>)> =
        BTreeMap::new();
    for event in zone {
        let Payload::SensorEvent(s) = &event.payload else {
            continue;
        };
        let power = matches!(s.kind, SensorKind::RackPower | SensorKind::RackCurrent);
        if !power || s.detector != STEP_DETECTOR || s.state != EventState::Raised {
            continue;
        }
        let Some(change) = s.limit.map(|before| s.value - before) else {
            continue;
        };
        if !change.is_finite() {
            continue;
        }
        let entry = by_sensor.entry(&s.sensor).or_insert_with(|| {
            let rack = s.location.rack.clone().unwrap_or_else(|| s.sensor.clone());
            let step = DensityStep {
                rack,
                change: 0.0,
                unit: s.kind.unit(),
                since: s.ts,
            };
            (step, s.kind, None)
        });
        entry.0.change += change;
        if change > 0.0 {
            entry.2 = Some(entry.2.map_or(s.ts, |t| t.min(s.ts)));
        }
    }
    let rises = by_sensor.into_values().filter_map(|(mut step, kind, up)| {
        step.since = up?;
        (step.change > 0.0).then_some((step, kind))
    });
    let mut per_rack: BTreeMap<String, (DensityStep, SensorKind)> = BTreeMap::new();
    for (step, kind) in rises {
        let better = |old: &(DensityStep, SensorKind)| {
            (kind == SensorKind::RackPower && old.1 != SensorKind::RackPower)
                || (kind == old.1 && step.change > old.0.change)
        };
        match per_rack.get(&step.rack) {
            Some(old) if !better(old) => {}
            _ => {
                per_rack.insert(step.rack.clone(), (step, kind));
            }
        }
    }
    let mut steps: Vec<DensityStep> = per_rack.into_values().map(|(s, _)| s).collect();
    steps.sort_by(|a, b| {
        (a.unit != "kW")
            .cmp(&(b.unit != "kW"))
            .then(b.change.total_cmp(&a.change))
            .then(a.rack.cmp(&b.rack))
    });
    steps
}

/// `cause` with the density changes quoted as evidence: the summary then names a rack
/// density increase on top of the airflow or cooling cause (an unknown cause becomes
/// [`CauseKind::RackDensity`]). Without steps, `cause` as it is.
pub fn with_density(cause: ProbableCause, steps: &[DensityStep]) -> ProbableCause {
    if steps.is_empty() {
        return cause;
    }
    let racks: Vec<String> = steps.iter().map(DensityStep::text).collect();
    let increase = format!(
        "rack density increase in the weeks before ({})",
        racks.join(", ")
    );
    let (kind, summary) = match cause.kind {
        CauseKind::Unknown | CauseKind::SensorFault => (
            CauseKind::RackDensity,
            format!("{increase}; {}", cause.summary),
        ),
        kind => (
            kind,
            format!("{}, compounded by a {increase}", cause.summary),
        ),
    };
    let mut evidence: Vec<String> = racks
        .into_iter()
        .map(|r| format!("density change: {r}"))
        .collect();
    evidence.extend(cause.evidence);
    ProbableCause {
        kind,
        summary,
        evidence,
    }
}

/// Time window of zone events relevant to an incident that opened at `first` and last changed
/// at `last`.
pub fn zone_window(first: Timestamp, last: Timestamp) -> (Timestamp, Timestamp) {
    (first.minus(COOLING_LEAD), last)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use coldaisle_core::{DeviceEvent, Location, Severity, ZoneEvent};

    const T0: i64 = 1_764_072_000_000;
    const MIN: i64 = 60_000;

    fn ev(seq: u64, payload: Payload) -> StoredEvent {
        StoredEvent {
            agent: "a1".into(),
            seq,
            payload,
        }
    }

    /// A raise on `sensor` of `kind` in rack `rack` (row R1) of zone Z1.
    #[allow(clippy::too_many_arguments)]
    fn raise(
        seq: u64,
        sensor: &str,
        kind: SensorKind,
        rack: &str,
        detector: &str,
        value: f64,
        limit: f64,
        ts: i64,
    ) -> StoredEvent {
        let category = if FAULT_DETECTORS.contains(&detector) {
            Category::Device
        } else {
            kind.category()
        };
        ev(
            seq,
            Payload::SensorEvent(SensorEvent {
                sensor: sensor.into(),
                kind,
                location: Location {
                    site: "dc1".into(),
                    zone: "Z1".into(),
                    row: Some("R1".into()),
                    rack: Some(rack.into()),
                },
                category,
                detector: detector.into(),
                state: EventState::Raised,
                severity: Severity::Warning,
                value,
                limit: Some(limit),
                first_ts: Timestamp(ts),
                ts: Timestamp(ts),
                expected_crossing: None,
            }),
        )
    }

    fn inlet(seq: u64, rack: &str, ts: i64) -> StoredEvent {
        raise(
            seq,
            &format!("{rack}-inlet"),
            SensorKind::InletTemp,
            rack,
            "threshold",
            28.4,
            27.0,
            ts,
        )
    }

    fn refs(v: &[StoredEvent]) -> Vec<&StoredEvent> {
        v.iter().collect()
    }

    #[test]
    fn supply_air_rising_first_is_cooling_capacity() {
        let supply = raise(
            1,
            "crac1-supply",
            SensorKind::SupplyAirTemp,
            "CRAC1",
            "threshold",
            21.5,
            18.0,
            T0,
        );
        let own = vec![inlet(2, "A1", T0 + 4 * MIN), inlet(3, "A2", T0 + 5 * MIN)];
        let mut zone = vec![supply];
        zone.extend(own.iter().cloned());
        let cause = explain(&refs(&own), &refs(&zone));
        assert_eq!(cause.kind, CauseKind::CoolingCapacity);
        assert!(
            cause.summary.contains("supply air rose first"),
            "{}",
            cause.summary
        );
        assert!(
            cause.evidence[0].starts_with("supply_air_temp crac1-supply raised"),
            "{:?}",
            cause.evidence
        );
        assert!(cause.evidence[0].contains("21.5 °C (limit 18.0)"));
    }

    #[test]
    fn delta_t_collapse_is_cooling_capacity_but_a_late_or_old_one_is_not() {
        let dt = |ts| {
            raise(
                1,
                "crac1.delta_t",
                SensorKind::ReturnAirTemp,
                "CRAC1",
                "threshold",
                2.0,
                8.0,
                ts,
            )
        };
        let own = vec![inlet(2, "A1", T0), inlet(3, "A2", T0 + MIN)];
        let cause = explain(&refs(&own), &[&dt(T0 - 10 * MIN), &own[0], &own[1]]);
        assert_eq!(cause.kind, CauseKind::CoolingCapacity);
        assert!(cause.summary.contains("ΔT collapsed"));
        // After the inlets rose: a consequence, not the cause.
        let late = dt(T0 + 2 * MIN);
        assert_eq!(
            explain(&refs(&own), &[&own[0], &late]).kind,
            CauseKind::Airflow
        );
        // Longer before than the lead: unrelated.
        let old = dt(T0 - 31 * MIN);
        assert_eq!(explain(&refs(&own), &[&old]).kind, CauseKind::Airflow);
    }

    #[test]
    fn neighbouring_inlets_with_normal_cooling_is_airflow() {
        let own = vec![
            inlet(1, "A1", T0),
            inlet(2, "A2", T0 + MIN),
            inlet(3, "A3", T0 + 2 * MIN),
        ];
        let cause = explain(&refs(&own), &refs(&own));
        assert_eq!(cause.kind, CauseKind::Airflow);
        assert_eq!(
            cause.summary,
            "airflow or containment: inlets of 3 neighbouring racks in row R1 (A1, A2, A3) rose while cooling was normal"
        );
        assert_eq!(cause.evidence.len(), 4);
    }

    #[test]
    fn zone_event_evidence_counts_racks() {
        let zone_raise = ev(
            2,
            Payload::ZoneEvent(ZoneEvent {
                site: "dc1".into(),
                zone: "Z1".into(),
                category: Category::Thermal,
                state: EventState::Raised,
                severity: Severity::Warning,
                evidence: ["A1", "B7"]
                    .iter()
                    .map(|r| coldaisle_core::Evidence {
                        sensor: format!("{r}-inlet"),
                        rack: Some((*r).into()),
                        value: 28.0,
                        ts: Timestamp(T0),
                    })
                    .collect(),
                ts: Timestamp(T0),
            }),
        );
        let own = vec![inlet(1, "A1", T0), zone_raise];
        assert_eq!(explain(&refs(&own), &refs(&own)).kind, CauseKind::Airflow);
    }

    #[test]
    fn one_hot_rack_is_rack_density() {
        let own = vec![
            inlet(1, "A4", T0),
            raise(
                2,
                "A4-inlet-top",
                SensorKind::InletTemp,
                "A4",
                "threshold",
                29.0,
                27.0,
                T0 + MIN,
            ),
        ];
        let cause = explain(&refs(&own), &refs(&own));
        assert_eq!(cause.kind, CauseKind::RackDensity);
        assert!(cause.summary.contains("only rack A4"));
        assert_eq!(cause.evidence.len(), 2);
    }

    #[test]
    fn stuck_and_impossible_values_or_unreachable_devices_are_sensor_faults() {
        let own = vec![
            raise(
                1,
                "A1-inlet",
                SensorKind::InletTemp,
                "A1",
                "stuck",
                24.0,
                0.0,
                T0,
            ),
            raise(
                2,
                "A2-inlet",
                SensorKind::InletTemp,
                "A2",
                "impossible_value",
                -127.0,
                -40.0,
                T0,
            ),
            ev(
                3,
                Payload::DeviceEvent(DeviceEvent {
                    device: "pdu-1".into(),
                    location: Location {
                        site: "dc1".into(),
                        zone: "Z1".into(),
                        row: None,
                        rack: None,
                    },
                    state: EventState::Raised,
                    reason: "timeout".into(),
                    ts: Timestamp(T0),
                }),
            ),
        ];
        let cause = explain(&refs(&own), &refs(&own));
        assert_eq!(cause.kind, CauseKind::SensorFault);
        assert_eq!(cause.evidence.len(), 3);
        assert!(cause.evidence[2].contains("pdu-1 unreachable"));
        // One real inlet raise among the faults: not a sensor fault any more.
        let mut mixed = own.clone();
        mixed.push(inlet(4, "A3", T0 + MIN));
        assert_ne!(
            explain(&refs(&mixed), &refs(&mixed)).kind,
            CauseKind::SensorFault
        );
    }

    #[test]
    fn problem_cause_is_the_most_frequent_known_cause() {
        let c = |kind| ProbableCause {
            kind,
            summary: format!("{kind:?}"),
            evidence: vec!["x".into()],
        };
        let p = of_problem(&[
            c(CauseKind::Unknown),
            c(CauseKind::Airflow),
            c(CauseKind::RackDensity),
            c(CauseKind::Airflow),
        ])
        .unwrap();
        assert_eq!(p.kind, CauseKind::Airflow);
        assert_eq!(p.evidence[0], "2 of 4 linked incidents point to this cause");
        // Tie: the deterministic rank decides.
        let p = of_problem(&[c(CauseKind::RackDensity), c(CauseKind::CoolingCapacity)]).unwrap();
        assert_eq!(p.kind, CauseKind::CoolingCapacity);
        assert_eq!(of_problem(&[]), None);
    }

    /// A step-change event of rack `rack`'s power sensor: the level went `before` → `after`.
    fn step(
        seq: u64,
        rack: &str,
        kind: SensorKind,
        before: f64,
        after: f64,
        ts: i64,
    ) -> StoredEvent {
        let sensor = format!("{rack}-{}", kind.as_str());
        raise(seq, &sensor, kind, rack, "step_change", after, before, ts)
    }

    const DAY: i64 = 86_400_000;

    #[test]
    fn rack_power_step_ups_are_density_evidence_with_their_date() {
        let events = [
            // R07: +2.1 kW on 2025-11-12, a small dip later: net +1.8 kW since the 12th.
            step(1, "Z1-R07", SensorKind::RackPower, 4.0, 6.1, T0 - 13 * DAY),
            step(2, "Z1-R07", SensorKind::RackPower, 6.1, 5.8, T0 - 5 * DAY),
            // R03: +8 A and +1.2 kW: the kW line wins for the rack.
            step(
                3,
                "Z1-R03",
                SensorKind::RackCurrent,
                10.0,
                18.0,
                T0 - 3 * DAY,
            ),
            step(4, "Z1-R03", SensorKind::RackPower, 3.0, 4.2, T0 - 3 * DAY),
            // R09: only amperes metered.
            step(
                5,
                "Z1-R09",
                SensorKind::RackCurrent,
                10.0,
                14.0,
                T0 - 2 * DAY,
            ),
            // R01 went down: no density increase.
            step(6, "Z1-R01", SensorKind::RackPower, 5.0, 3.0, T0 - 2 * DAY),
            // An inlet raise and a learned-band event on power are not steps.
            inlet(7, "Z1-R07", T0),
            raise(
                8,
                "Z1-R02-power",
                SensorKind::RackPower,
                "Z1-R02",
                "learned_band",
                9.0,
                5.0,
                T0,
            ),
        ];
        let steps = density_steps(&refs(&events));
        let lines: Vec<String> = steps.iter().map(DensityStep::text).collect();
        assert_eq!(
            lines,
            [
                "Z1-R07 +1.8 kW since 2025-11-12",
                "Z1-R03 +1.2 kW since 2025-11-22",
                "Z1-R09 +4.0 A since 2025-11-23",
            ]
        );
    }

    #[test]
    fn density_is_named_on_top_of_airflow_and_replaces_an_unknown_cause() {
        let events = [inlet(1, "R01", T0), inlet(2, "R02", T0 + MIN)];
        let airflow = explain(&refs(&events), &refs(&events));
        assert_eq!(airflow.kind, CauseKind::Airflow);
        let steps = density_steps(&refs(&[step(
            3,
            "Z1-R07",
            SensorKind::RackPower,
            4.0,
            6.1,
            T0 - 13 * DAY,
        )]));
        let cause = with_density(airflow.clone(), &steps);
        assert_eq!(cause.kind, CauseKind::Airflow);
        assert!(
            cause.summary.starts_with(&airflow.summary)
                && cause.summary.ends_with(
                    ", compounded by a rack density increase in the weeks before (Z1-R07 +2.1 kW since 2025-11-12)"
                ),
            "{}",
            cause.summary
        );
        assert_eq!(
            cause.evidence[0],
            "density change: Z1-R07 +2.1 kW since 2025-11-12"
        );
        assert_eq!(cause.evidence[1..], airflow.evidence[..]);
        let unknown = with_density(unknown("nothing"), &steps);
        assert_eq!(unknown.kind, CauseKind::RackDensity);
        assert_eq!(with_density(airflow.clone(), &[]), airflow);
    }
}
