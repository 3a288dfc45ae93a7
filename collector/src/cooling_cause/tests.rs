use super::*;
use coldaisle_core::{EventState, Location, SensorEvent, Severity};

const MIN: i64 = 60_000;
/// 2026-12-07T10:00:00Z: the incident opens at minute 60 of the series.
const T0: i64 = 1_796_637_600_000;
const OPENED: i64 = T0 + 60 * MIN;

fn loc(rack: Option<&str>) -> Location {
    Location {
        site: "ams1".into(),
        zone: "Z1".into(),
        row: None,
        rack: rack.map(str::to_string),
    }
}

/// One-minute summaries of a sensor over minutes 0..75, value `f(minute)`.
fn series(
    sensor: &str,
    kind: SensorKind,
    rack: Option<&str>,
    f: impl Fn(i64) -> f64,
) -> Vec<ReadingSummary> {
    (0..75)
        .map(|m| {
            let v = f(m);
            ReadingSummary {
                sensor: sensor.into(),
                kind,
                location: loc(rack),
                from: Timestamp(T0 + m * MIN),
                to: Timestamp(T0 + (m + 1) * MIN),
                count: 2,
                min: v,
                max: v,
                sum: 2.0 * v,
                last: v,
            }
        })
        .collect()
}

/// Flat at `base` until minute 50, then `to` from minute 55 on (a ramp between).
fn rise(base: f64, to: f64) -> impl Fn(i64) -> f64 + Copy {
    move |m| match m {
        ..=50 => base,
        51..=54 => base + (to - base) * (m - 50) as f64 / 5.0,
        _ => to,
    }
}

fn inlets(racks: &[&str], f: impl Fn(i64) -> f64 + Copy) -> Vec<ReadingSummary> {
    racks
        .iter()
        .flat_map(|r| series(&format!("{r}-inlet"), SensorKind::InletTemp, Some(r), f))
        .collect()
}

fn judge(all: &[ReadingSummary], faulty: &[&str]) -> Option<ProbableCause> {
    let refs: Vec<&ReadingSummary> = all.iter().collect();
    let faulty: BTreeSet<String> = faulty.iter().map(|s| s.to_string()).collect();
    explain(&refs, Timestamp(OPENED), Windows::default(), &faulty)
}

#[test]
fn supply_air_rising_with_the_inlets_is_cooling_capacity_with_values_and_times() {
    let mut all = inlets(&["R01", "R02", "R03"], rise(22.0, 28.5));
    all.extend(series(
        "crac1-supply",
        SensorKind::SupplyAirTemp,
        None,
        rise(18.0, 24.0),
    ));
    all.extend(series(
        "crac1-return",
        SensorKind::ReturnAirTemp,
        None,
        rise(30.0, 34.0),
    ));
    let cause = judge(&all, &[]).expect("decided");
    assert_eq!(cause.kind, CauseKind::CoolingCapacity, "{cause:?}");
    assert!(
        cause.summary.contains("supply air rose"),
        "{}",
        cause.summary
    );
    let first = &cause.evidence[0];
    assert!(
        first.starts_with(
            "supply_air_temp crac1-supply: 18.0 °C on average 2026-12-07T10:00:00.000Z–"
        ),
        "{first}"
    );
    assert!(first.contains("24.0 °C at 2026-12-07T"), "{first}");
    assert!(first.ends_with("(+6.0)"), "{first}");
    assert!(
        cause
            .evidence
            .iter()
            .any(|l| l.starts_with("inlet_temp R01-inlet rack R01: 22.0 °C")),
        "{cause:?}"
    );
}

#[test]
fn a_collapsing_delta_t_or_a_stopped_unit_is_cooling_capacity_without_a_supply_rise() {
    let mut all = inlets(&["R01", "R02"], rise(22.0, 27.5));
    all.extend(series(
        "crac1-supply",
        SensorKind::SupplyAirTemp,
        None,
        |_| 18.0,
    ));
    all.extend(series(
        "crac1-return",
        SensorKind::ReturnAirTemp,
        None,
        rise(30.0, 20.0),
    ));
    let cause = judge(&all, &[]).expect("decided");
    assert_eq!(cause.kind, CauseKind::CoolingCapacity, "{cause:?}");
    assert!(
        cause.evidence[0].starts_with("cooling unit crac1: ΔT 12.0 °C"),
        "{cause:?}"
    );

    let mut stopped = inlets(&["R01", "R02"], rise(22.0, 27.5));
    stopped.extend(series(
        "crac1-supply",
        SensorKind::SupplyAirTemp,
        None,
        |_| 18.0,
    ));
    stopped.extend(series(
        "crac1-state",
        SensorKind::CoolingState,
        None,
        rise(1.0, 0.0),
    ));
    let cause = judge(&stopped, &[]).expect("decided");
    assert_eq!(cause.kind, CauseKind::CoolingCapacity, "{cause:?}");
    assert!(
        cause.evidence[0].starts_with("cooling_state crac1-state: 1.0"),
        "{cause:?}"
    );
}

#[test]
fn inlets_of_several_racks_rising_with_the_supply_steady_is_airflow() {
    let mut all = inlets(&["R01", "R02", "R03"], rise(22.0, 29.0));
    all.extend(series(
        "crac1-supply",
        SensorKind::SupplyAirTemp,
        None,
        |m| 18.0 + (m % 2) as f64 * 0.3,
    ));
    let cause = judge(&all, &[]).expect("decided");
    assert_eq!(cause.kind, CauseKind::Airflow, "{cause:?}");
    assert!(
        cause.summary.contains("racks R01, R02, R03"),
        "{}",
        cause.summary
    );
    assert!(cause.evidence[0].ends_with("(steady)"), "{cause:?}");
    assert!(cause.evidence[0].contains("crac1-supply"), "{cause:?}");
}

#[test]
fn one_rack_alone_is_that_rack() {
    let mut all = inlets(&["R02"], rise(22.0, 29.0));
    all.extend(inlets(&["R01", "R03"], |_| 22.0));
    all.extend(series(
        "crac1-supply",
        SensorKind::SupplyAirTemp,
        None,
        |_| 18.0,
    ));
    let cause = judge(&all, &[]).expect("decided");
    assert_eq!(cause.kind, CauseKind::RackDensity, "{cause:?}");
    assert!(cause.summary.contains("rack R02"), "{}", cause.summary);
    assert!(
        cause
            .evidence
            .iter()
            .any(|l| l.starts_with("2 other inlet sensor(s)")),
        "{cause:?}"
    );
}

#[test]
fn a_faulty_supply_probe_is_left_out_and_nothing_rising_gives_no_opinion() {
    let mut all = inlets(&["R01", "R02"], rise(22.0, 29.0));
    // The supply probe reads nonsense (a stuck/impossible sensor): not capacity.
    all.extend(series(
        "crac1-supply",
        SensorKind::SupplyAirTemp,
        None,
        rise(18.0, 85.0),
    ));
    all.extend(series(
        "crac2-supply",
        SensorKind::SupplyAirTemp,
        None,
        |_| 18.0,
    ));
    let cause = judge(&all, &["crac1-supply"]).expect("decided");
    assert_eq!(cause.kind, CauseKind::Airflow, "{cause:?}");
    assert!(
        cause.evidence.iter().all(|l| !l.contains("crac1-supply")),
        "{cause:?}"
    );
    // Without the fault it would have been capacity.
    assert_eq!(
        judge(&all, &[]).map(|c| c.kind),
        Some(CauseKind::CoolingCapacity)
    );
    // Nothing rose: the readings say nothing; several racks without a supply: nothing either.
    let calm = inlets(&["R01", "R02"], |_| 22.0);
    assert_eq!(judge(&calm, &[]), None);
    assert_eq!(judge(&inlets(&["R01", "R02"], rise(22.0, 29.0)), &[]), None);
}

#[test]
fn fault_events_name_the_untrusted_sensors() {
    let event = |sensor: &str, detector: &str, category, at: i64| StoredEvent {
        agent: "a".into(),
        seq: at as u64,
        payload: Payload::SensorEvent(SensorEvent {
            sensor: sensor.into(),
            kind: SensorKind::SupplyAirTemp,
            location: loc(None),
            category,
            detector: detector.into(),
            state: EventState::Raised,
            severity: Severity::Warning,
            value: 85.0,
            limit: None,
            first_ts: Timestamp(at),
            ts: Timestamp(at),
            expected_crossing: None,
        }),
    };
    let events = [
        event("crac1-supply", "impossible_value", Category::Device, OPENED),
        event("crac2-supply", "stuck", Category::Cooling, OPENED),
        event("crac3-supply", "threshold", Category::Cooling, OPENED),
        event(
            "crac4-supply",
            "stale",
            Category::Device,
            OPENED - 120 * MIN,
        ),
    ];
    let faulty = faulty_sensors(
        &events,
        "ams1",
        "Z1",
        Timestamp(OPENED - 60 * MIN),
        Timestamp(OPENED + 15 * MIN),
    );
    let names: Vec<&str> = faulty.iter().map(String::as_str).collect();
    assert_eq!(names, ["crac1-supply", "crac2-supply"]);

    // The same events read from a store's scope index (the analysis holding none of them),
    // with one of another zone and one just past the window.
    let mut history = crate::analysis::history::MemoryHistory::default();
    for (n, mut e) in events.into_iter().enumerate() {
        e.seq = n as u64; // distinct order keys: three share a time
        history.add(e);
    }
    let mut other_zone = event("z2-supply", "stuck", Category::Cooling, OPENED);
    let mut late = event(
        "crac5-supply",
        "stuck",
        Category::Cooling,
        OPENED + 15 * MIN + 1,
    );
    if let Payload::SensorEvent(s) = &mut other_zone.payload {
        s.location.zone = "Z2".into();
    }
    (other_zone.seq, late.seq) = (10, 11);
    history.add(other_zone);
    history.add(late);
    let stored = read::stored_faulty(
        &history,
        "ams1",
        "Z1",
        Timestamp(OPENED - 60 * MIN),
        Timestamp(OPENED + 15 * MIN),
    )
    .unwrap();
    assert_eq!(stored, faulty);
}

#[test]
fn merge_lets_the_readings_decide_unless_the_events_found_a_fault() {
    let cause = |kind, summary: &str| ProbableCause {
        kind,
        summary: summary.into(),
        evidence: vec![format!("event evidence of {summary}")],
    };
    let events = cause(CauseKind::Airflow, "airflow");
    let readings = cause(CauseKind::CoolingCapacity, "capacity");
    let merged = merge(events.clone(), Some(readings));
    assert_eq!(merged.kind, CauseKind::CoolingCapacity);
    assert_eq!(
        merged.evidence,
        [
            "event evidence of capacity",
            "the raised events alone suggested: airflow",
            "event evidence of airflow"
        ]
    );
    assert_eq!(merge(events.clone(), None), events);
    let fault = cause(CauseKind::SensorFault, "fault");
    assert_eq!(
        merge(fault.clone(), Some(cause(CauseKind::CoolingCapacity, "c"))),
        fault
    );
}

/// The site: the zone's supply air rose ~6 °C with its inlets, no cooling sensor
/// raised. The events alone say airflow; the incident refined with the readings says cooling
/// capacity and keeps the event evidence after its own.
#[test]
fn an_incident_whose_supply_rose_without_raising_is_refined_to_cooling_capacity() {
    use crate::analysis::Analysis;
    use crate::incidents::IncidentRules;
    use crate::problems::ProblemRules;
    let raise = |seq: u64, rack: &str| StoredEvent {
        agent: "a".into(),
        seq,
        payload: Payload::SensorEvent(SensorEvent {
            sensor: format!("{rack}-inlet"),
            kind: SensorKind::InletTemp,
            location: loc(Some(rack)),
            category: Category::Thermal,
            detector: "threshold".into(),
            state: EventState::Raised,
            severity: Severity::Warning,
            value: 28.5,
            limit: Some(27.0),
            first_ts: Timestamp(OPENED),
            ts: Timestamp(OPENED + seq as i64 * 1000),
            expected_crossing: None,
        }),
    };
    let mut analysis = Analysis::new(IncidentRules::default(), ProblemRules::default());
    analysis.ingest(raise(0, "R01"));
    analysis.ingest(raise(1, "R02"));
    let mut incidents = analysis.incidents(Timestamp(OPENED + 2 * MIN));
    assert_eq!(incidents.len(), 1);
    let incident = &mut incidents[0];
    assert_eq!(
        incident.probable_cause.as_ref().map(|c| c.kind),
        Some(CauseKind::Airflow),
        "the events alone"
    );
    let mut summaries = inlets(&["R01", "R02"], rise(22.0, 28.5));
    summaries.extend(series(
        "crac1-supply",
        SensorKind::SupplyAirTemp,
        None,
        rise(18.0, 24.0),
    ));
    // Another zone's summaries are not read.
    summaries.extend(
        series("crac9-supply", SensorKind::SupplyAirTemp, None, |_| 18.0)
            .into_iter()
            .map(|mut s| {
                s.location.zone = "Z9".into();
                s
            }),
    );
    refine_incident(incident, &summaries, analysis.events(), Windows::default());
    let cause = incident.probable_cause.as_ref().expect("cause");
    assert_eq!(cause.kind, CauseKind::CoolingCapacity, "{cause:?}");
    assert!(cause.evidence[0].contains("crac1-supply"), "{cause:?}");
    assert!(
        cause
            .evidence
            .iter()
            .any(|l| l.starts_with("the raised events alone suggested: airflow")),
        "{cause:?}"
    );
}
