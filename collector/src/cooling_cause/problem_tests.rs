//! A problem's probable cause from its incidents' readings: the vote ([`super::problem`]) per
//! cause, the fallback to the event cause, the roll-ups of old incidents ([`super::read`]),
//! and the problem API answering it.

#![allow(clippy::unwrap_used)]

use super::problem::{of_incidents, refine, IncidentVerdict};
use super::read::{from_rollups, opened_at_of_id, windows_at};
use super::*;
use crate::analysis::Analysis;
use crate::incidents::tests::{sensor, MIN, T0};
use crate::incidents::IncidentRules;
use crate::problems::{Problem, ProblemRules};
use crate::rollup::Level;
use coldaisle_core::{EventState, Location, Severity};

const DAY: i64 = 86_400_000;
/// 14:30 UTC on T0's day.
const AFTERNOON: i64 = T0 + 150 * MIN;

fn loc(rack: Option<&str>) -> Location {
    Location {
        site: "dc1".into(),
        zone: "Z1".into(),
        row: None,
        rack: rack.map(str::to_string),
    }
}

/// One-minute summaries of a sensor from four hours before `opened` to 30 minutes after, flat
/// at `base` until five minutes before `opened`, `to` from then on.
fn series(
    sensor: &str,
    kind: SensorKind,
    rack: Option<&str>,
    opened: i64,
    base: f64,
    to: f64,
) -> Vec<ReadingSummary> {
    (-240..30)
        .map(|m| {
            let v = if m < -5 { base } else { to };
            ReadingSummary {
                sensor: sensor.into(),
                kind,
                location: loc(rack),
                from: Timestamp(opened + m * MIN),
                to: Timestamp(opened + (m + 1) * MIN),
                count: 2,
                min: v,
                max: v,
                sum: 2.0 * v,
                last: v,
            }
        })
        .collect()
}

/// Inlets of `racks` rising from 22 to 28.5 °C at `opened`, and the zone's cooler: supply
/// 18 °C rising to `supply_to`, return 30 → 34 °C.
fn zone_readings(racks: &[&str], opened: i64, supply_to: f64) -> Vec<ReadingSummary> {
    let mut all: Vec<ReadingSummary> = racks
        .iter()
        .flat_map(|r| {
            series(
                &format!("{}-inlet", r.to_lowercase()),
                SensorKind::InletTemp,
                Some(r),
                opened,
                22.0,
                28.5,
            )
        })
        .collect();
    all.extend(series(
        "crac1-supply",
        SensorKind::SupplyAirTemp,
        None,
        opened,
        18.0,
        supply_to,
    ));
    all.extend(series(
        "crac1-return",
        SensorKind::ReturnAirTemp,
        None,
        opened,
        30.0,
        34.0,
    ));
    all
}

fn verdict(id: &str, opened: i64, readings: &[ReadingSummary]) -> IncidentVerdict {
    let refs: Vec<&ReadingSummary> = readings.iter().collect();
    IncidentVerdict {
        incident: id.into(),
        opened_at: Timestamp(opened),
        cause: explain(
            &refs,
            Timestamp(opened),
            Windows::default(),
            &BTreeSet::new(),
        ),
    }
}

fn event_cause(kind: CauseKind) -> ProbableCause {
    ProbableCause {
        kind,
        summary: format!("{kind:?} from the events"),
        evidence: vec!["event evidence".into()],
    }
}

fn problem_with(cause: Option<ProbableCause>) -> Problem {
    let mut problem: Problem = serde_json::from_value(serde_json::json!({
        "id": "prb-x", "fingerprint": {"site": "dc1", "zone": "Z1", "category": "thermal"},
        "status": "open", "opened_at": 0, "trigger": "recurrence", "reason": "r",
        "incidents": []
    }))
    .unwrap();
    problem.probable_cause = cause;
    problem
}

#[test]
fn the_majority_of_incidents_decides_and_the_latest_gives_the_evidence() {
    let capacity = |day: i64| {
        let at = AFTERNOON + day * DAY;
        verdict(
            &format!("inc-{day}"),
            at,
            &zone_readings(&["R01", "R02"], at, 24.0),
        )
    };
    let airflow = |day: i64| {
        let at = AFTERNOON + day * DAY;
        verdict(
            &format!("inc-{day}"),
            at,
            &zone_readings(&["R01", "R02"], at, 18.2),
        )
    };
    let verdicts = [
        capacity(0),
        airflow(1),
        capacity(2),
        airflow(3),
        capacity(4),
    ];
    assert_eq!(verdicts[1].cause.as_ref().unwrap().kind, CauseKind::Airflow);
    let cause = of_incidents(&verdicts).unwrap();
    assert_eq!(cause.kind, CauseKind::CoolingCapacity, "{cause:#?}");
    assert!(
        cause.evidence[0].contains("3 of 5 linked incidents"),
        "{cause:#?}"
    );
    // The latest capacity incident (day 4) quotes its supply air with values and times.
    let day4 = Timestamp(AFTERNOON + 4 * DAY);
    assert!(cause.evidence[1].contains("inc-4"), "{cause:#?}");
    assert!(
        cause.evidence.iter().any(
            |e| e.starts_with("supply_air_temp crac1-supply: 18.0 °C") && e.contains("24.0 °C")
        ),
        "{cause:#?}"
    );
    let day4_date = &day4.to_rfc3339()[..10];
    assert!(
        cause.evidence[2..].iter().all(|e| e.contains(day4_date)),
        "{cause:#?}"
    );
}

#[test]
fn a_tie_goes_to_the_kind_of_the_most_recent_incident() {
    let at = |d: i64| AFTERNOON + d * DAY;
    let verdicts = [
        verdict("inc-0", at(0), &zone_readings(&["R01", "R02"], at(0), 24.0)),
        verdict("inc-1", at(1), &zone_readings(&["R01", "R02"], at(1), 18.2)),
    ];
    assert_eq!(of_incidents(&verdicts).unwrap().kind, CauseKind::Airflow);
}

#[test]
fn each_readings_cause_reaches_the_problem_over_its_event_cause() {
    let at = AFTERNOON;
    let cases = [
        (
            zone_readings(&["R01", "R02"], at, 24.0),
            CauseKind::CoolingCapacity,
        ),
        (zone_readings(&["R01", "R02"], at, 18.2), CauseKind::Airflow),
        (zone_readings(&["R07"], at, 18.2), CauseKind::RackDensity),
    ];
    for (readings, expected) in cases {
        let mut problem = problem_with(Some(event_cause(CauseKind::Unknown)));
        refine(&mut problem, &[verdict("inc-a", at, &readings)]);
        let cause = problem.probable_cause.unwrap();
        assert_eq!(cause.kind, expected, "{cause:#?}");
        assert!(cause.summary.contains("(from the readings)"), "{cause:#?}");
        // The event cause is kept as evidence after the readings'.
        assert_eq!(cause.evidence.last().unwrap(), "event evidence");
    }
}

#[test]
fn without_cooling_readings_the_event_cause_stays() {
    // Inlets only: the readings cannot tell airflow from capacity.
    let inlets_only: Vec<ReadingSummary> = zone_readings(&["R01", "R02"], AFTERNOON, 24.0)
        .into_iter()
        .filter(|s| s.kind == SensorKind::InletTemp)
        .collect();
    let verdicts = [
        verdict("inc-a", AFTERNOON, &inlets_only),
        verdict("inc-b", AFTERNOON + DAY, &[]),
    ];
    assert!(of_incidents(&verdicts).is_none());
    let mut problem = problem_with(Some(event_cause(CauseKind::Airflow)));
    refine(&mut problem, &verdicts);
    assert_eq!(
        problem.probable_cause,
        Some(event_cause(CauseKind::Airflow))
    );
    // A sensor fault found by the events is not overruled by readings.
    let mut faulty = problem_with(Some(event_cause(CauseKind::SensorFault)));
    refine(
        &mut faulty,
        &[verdict(
            "inc-a",
            AFTERNOON,
            &zone_readings(&["R01", "R02"], AFTERNOON, 24.0),
        )],
    );
    assert_eq!(faulty.probable_cause.unwrap().kind, CauseKind::SensorFault);
}

#[test]
fn an_archived_incident_opening_is_read_from_its_id() {
    assert_eq!(
        opened_at_of_id("inc-dc1-z1-thermal-1764072000000"),
        Some(Timestamp(1_764_072_000_000))
    );
    assert_eq!(
        opened_at_of_id("inc-dc1-z1-thermal-1764072000000-0badf00d"),
        Some(Timestamp(1_764_072_000_000))
    );
    // An all-digit hash suffix is still too short to be the time.
    assert_eq!(
        opened_at_of_id("inc-dc1-z1-thermal-1764072000000-12345678"),
        Some(Timestamp(1_764_072_000_000))
    );
    assert_eq!(opened_at_of_id("inc-dc1-z1-thermal"), None);
}

/// Three excursions of Z1's `r1-inlet` (rack R1) on days 0, 1 and 2: a recurrence problem
/// whose event cause knows nothing of the cooler.
fn recurring_problem() -> (Analysis, Problem) {
    let mut a = Analysis::new(IncidentRules::default(), ProblemRules::default());
    for day in 0..3_i64 {
        let start = AFTERNOON + day * DAY;
        let seq = 10 * day as u64;
        for (k, (state, value, ts)) in [
            (EventState::Raised, 28.5, start),
            (EventState::Cleared, 26.0, start + 20 * MIN),
        ]
        .into_iter()
        .enumerate()
        {
            a.ingest(sensor(
                "a1",
                seq + k as u64,
                "Z1",
                "r1-inlet",
                state,
                Severity::Warning,
                value,
                ts,
            ));
        }
    }
    let problem = a.problems().pop().unwrap();
    assert_eq!(problem.incidents.len(), 3);
    let events = problem.probable_cause.as_ref().unwrap();
    assert_ne!(events.kind, CauseKind::CoolingCapacity, "{events:#?}");
    (a, problem)
}

/// Each excursion's zone readings: inlets of R1–R3 and the supply air rising together.
fn readings_of_every_excursion() -> Vec<ReadingSummary> {
    (0..3)
        .flat_map(|day| zone_readings(&["R1", "R2", "R3"], AFTERNOON + day * DAY, 24.0))
        .collect()
}

async fn get_json(
    state: crate::state::CollectorState,
    now: Timestamp,
    uri: &str,
) -> serde_json::Value {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt as _;
    let app = crate::http::router(crate::http::ApiOptions::new(
        std::sync::Arc::new(tokio::sync::RwLock::new(state)),
        std::sync::Arc::new(move || now),
    ));
    let request = Request::builder().uri(uri).body(Body::empty()).unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{uri}");
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn state_of(analysis: Analysis) -> crate::state::CollectorState {
    crate::state::CollectorState {
        analysis,
        directory: Default::default(),
        rollups: None,
        agents: Default::default(),
        stats: Default::default(),
        notify: Default::default(),
        latest_event: Timestamp(0),
        history: None,
    }
}

#[tokio::test]
async fn the_problem_api_says_cooling_capacity_when_the_supply_rose_with_the_inlets() {
    let (analysis, problem) = recurring_problem();
    let state = state_of(analysis).with_summaries(readings_of_every_excursion());
    let now = Timestamp(AFTERNOON + 3 * DAY);
    let one = get_json(state, now, &format!("/api/v1/problems/{}", problem.id)).await;
    let cause = &one["probable_cause"];
    assert_eq!(cause["kind"], "cooling_capacity", "{cause:#}");
    let evidence: Vec<&str> = cause["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        evidence[0].contains("3 of 3 linked incidents"),
        "{evidence:#?}"
    );
    assert!(
        evidence
            .iter()
            .any(|e| e.starts_with("supply_air_temp crac1-supply")),
        "{evidence:#?}"
    );

    // The problem record text says the same.
    let record: Problem = serde_json::from_value(one.clone()).unwrap();
    let text = crate::render::render_problem(&record);
    assert!(
        text.contains("  probable cause:\n    cooling capacity (from the readings)"),
        "{text}"
    );

    let (analysis, _) = recurring_problem();
    let state = state_of(analysis).with_summaries(readings_of_every_excursion());
    let list = get_json(state, now, "/api/v1/problems?zone=Z1").await;
    assert_eq!(
        list[0]["probable_cause"]["kind"], "cooling_capacity",
        "{list:#}"
    );
}

#[tokio::test]
async fn a_twenty_day_old_incident_is_judged_from_the_hour_rollups() {
    use crate::rollup_store::RollupStore;
    use coldaisle_store::{KvStore, MemoryStore};
    let (analysis, problem) = recurring_problem();
    let readings = readings_of_every_excursion();
    let kv: std::sync::Arc<dyn KvStore> = std::sync::Arc::new(MemoryStore::default());
    crate::rollup_store::add(kv.as_ref(), &readings.iter().collect::<Vec<_>>()).unwrap();
    let store = RollupStore::new(kv, Default::default());
    let now = Timestamp(AFTERNOON + 22 * DAY);

    // Past the minute retention (7 days): hour buckets, windows widened to them.
    let (read, windows) = from_rollups(
        &store,
        "dc1",
        "Z1",
        Timestamp(AFTERNOON),
        Windows::default(),
        now,
    )
    .unwrap();
    assert_eq!(windows, windows_at(Level::Hour, Windows::default()));
    assert_eq!(windows.before, Duration::from_secs(3 * 3600));
    assert!(!read.is_empty());
    assert!(
        read.iter()
            .all(|s| s.to.0 - s.from.0 == Level::Hour.bucket_ms()),
        "{read:#?}"
    );
    let refs: Vec<&ReadingSummary> = read.iter().collect();
    let cause = explain(&refs, Timestamp(AFTERNOON), windows, &BTreeSet::new()).unwrap();
    assert_eq!(cause.kind, CauseKind::CoolingCapacity, "{cause:#?}");

    // Within the minute retention: minute buckets, the default windows.
    let recent = Timestamp(AFTERNOON + 2 * DAY);
    let (read, windows) = from_rollups(
        &store,
        "dc1",
        "Z1",
        Timestamp(AFTERNOON),
        Windows::default(),
        recent,
    )
    .unwrap();
    assert_eq!(windows, Windows::default());
    assert!(read
        .iter()
        .all(|s| s.to.0 - s.from.0 == Level::Minute.bucket_ms()));

    // Through the API, from the store.
    let mut state = state_of(analysis);
    state.rollups = Some(store);
    let one = get_json(state, now, &format!("/api/v1/problems/{}", problem.id)).await;
    assert_eq!(one["probable_cause"]["kind"], "cooling_capacity", "{one:#}");
}
