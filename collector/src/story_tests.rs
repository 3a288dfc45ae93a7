//! Tests of what a problem says about itself, fed through [`crate::analysis::Analysis`] as a
//! replay would feed it: its recurrence signature (issue 19), in the API record, the
//! chronicle, the postmortem and the rendering, the same after a rebuild in another order.

#![allow(clippy::unwrap_used)]

use crate::analysis::{Analysis, StoredEvent};
use crate::incidents::tests::{sensor, MIN, T0};
use crate::incidents::IncidentRules;
use crate::problems::ProblemRules;
use crate::recurrence::TrendDirection;
use coldaisle_core::{EventState, Severity};

const DAY: i64 = 86_400_000;
/// 14:30 UTC on T0's day (T0 is Tuesday 2025-11-25 12:00 UTC).
const AFTERNOON: i64 = T0 + 150 * MIN;

/// Excursions of Z1's `r1-inlet` opening at `days` after [`AFTERNOON`], 20 minutes each,
/// with rising peaks.
fn excursions(days: &[i64]) -> Vec<StoredEvent> {
    let mut events = Vec::new();
    for (k, day) in days.iter().enumerate() {
        let start = AFTERNOON + day * DAY;
        let seq = 10 * k as u64;
        let peak = 28.0 + k as f64;
        events.push(sensor(
            "a1",
            seq,
            "Z1",
            "r1-inlet",
            EventState::Raised,
            Severity::Warning,
            peak,
            start,
        ));
        events.push(sensor(
            "a1",
            seq + 1,
            "Z1",
            "r1-inlet",
            EventState::Cleared,
            Severity::Warning,
            26.0,
            start + 20 * MIN,
        ));
    }
    events
}

fn analysis_of(events: impl IntoIterator<Item = StoredEvent>) -> Analysis {
    let mut a = Analysis::new(IncidentRules::default(), ProblemRules::default());
    for e in events {
        a.ingest(e);
    }
    a
}

#[test]
fn a_problem_carries_its_signature_everywhere_and_a_rebuild_gives_the_same() {
    // Tuesday to Friday and the next Monday and Tuesday, each at 14:30.
    let events = excursions(&[0, 1, 2, 3, 6, 7]);
    let a = analysis_of(events.clone());
    let problems = a.problems();
    assert_eq!(problems.len(), 1);
    let problem = &problems[0];
    let signature = problem.signature.as_ref().unwrap();
    assert_eq!(signature.incidents, 6);
    assert!(signature.enough);
    let time = signature.time_of_day.as_ref().unwrap();
    assert!(time.concentrated && time.p_value < 0.001, "{time:?}");
    let window = time.window.unwrap();
    assert_eq!((window.start_hour, window.hours, window.count), (14, 1, 6));
    assert!(
        signature.summary.starts_with(
            "6 of 6 incidents between 14:00 and 15:00 on weekdays (Rayleigh test p = < 0.001"
        ),
        "{}",
        signature.summary
    );
    assert_eq!(signature.racks[0].rack, "R1");
    assert_eq!(signature.racks[0].incidents, 6);
    assert_eq!(
        signature.trend.as_ref().unwrap().direction,
        TrendDirection::Worsening
    );

    // The chronicle says it at the latest incident's opening, the postmortem and the
    // terminal rendering carry it, the API record (JSON) holds it.
    let line = problem
        .chronicle
        .iter()
        .find(|c| {
            c.text
                .starts_with("recurrence signature over 6 incidents: 6 of 6")
        })
        .unwrap();
    assert_eq!(line.at.0, AFTERNOON + 7 * DAY);
    let postmortem = crate::postmortem::problem_postmortem(problem, &a.incidents(line.at));
    assert!(
        postmortem.contains(
            "## Recurrence signature\n\n- 6 of 6 incidents between 14:00 and 15:00 on weekdays"
        ),
        "{postmortem}"
    );
    assert!(
        postmortem.contains("- peaks getting worse: +1.00 per incident"),
        "{postmortem}"
    );
    let rendered = crate::render::render_problem(problem);
    assert!(
        rendered.contains("  recurrence signature:\n    6 of 6 incidents"),
        "{rendered}"
    );
    let json = serde_json::to_value(problem).unwrap();
    assert_eq!(json["signature"]["time_of_day"]["window"]["start_hour"], 14);

    // Any arrival order gives the same record.
    let reversed = analysis_of(events.into_iter().rev());
    assert_eq!(
        serde_json::to_string(&reversed.problems()).unwrap(),
        serde_json::to_string(&problems).unwrap()
    );
}

#[test]
fn three_incidents_are_too_few_to_call_a_pattern() {
    let a = analysis_of(excursions(&[0, 1, 2]));
    let problem = a.problems().remove(0);
    let signature = problem.signature.as_ref().unwrap();
    assert!(!signature.enough);
    assert!(signature.time_of_day.is_none() && signature.trend.is_none());
    assert!(
        signature
            .summary
            .starts_with("3 incidents: too few to call a pattern (at least 4 needed)"),
        "{}",
        signature.summary
    );
}

/// A step-change event of Z1 rack `rack`'s power meter: `before` → `after` kW at `ts`.
fn power_step(seq: u64, rack: &str, before: f64, after: f64, ts: i64) -> StoredEvent {
    use coldaisle_core::wire::Payload;
    use coldaisle_core::{Category, Location, SensorEvent, SensorKind, Timestamp};
    StoredEvent {
        agent: "a2".into(),
        seq,
        payload: Payload::SensorEvent(SensorEvent {
            sensor: format!("{rack}-power"),
            kind: SensorKind::RackPower,
            location: Location {
                site: "dc1".into(),
                zone: "Z1".into(),
                row: None,
                rack: Some(rack.into()),
            },
            category: Category::Power,
            detector: "step_change".into(),
            state: EventState::Raised,
            severity: Severity::Info,
            value: after,
            limit: Some(before),
            first_ts: Timestamp(ts),
            ts: Timestamp(ts),
            expected_crossing: None,
        }),
    }
}

#[test]
fn the_problem_cause_quotes_power_step_ups_of_its_zone_within_the_look_back() {
    let mut events = excursions(&[0, 1, 2]);
    // Inside the 28-day look-back before the problem opened (day 2), in the zone.
    events.push(power_step(1, "Z1-R07", 4.0, 6.1, T0 - 13 * DAY));
    // Too old, and after the opening: neither counts.
    events.push(power_step(2, "Z1-R08", 4.0, 7.0, T0 - 40 * DAY));
    events.push(power_step(3, "Z1-R09", 4.0, 7.0, AFTERNOON + 5 * DAY));
    let a = analysis_of(events.clone());
    let problem = a
        .problems()
        .into_iter()
        .find(|p| p.fingerprint.category == coldaisle_core::Category::Thermal)
        .unwrap();
    let cause = problem.probable_cause.unwrap();
    assert!(
        cause.summary.contains(
            "rack density increase in the weeks before (Z1-R07 +2.1 kW since 2025-11-12)"
        ),
        "{}",
        cause.summary
    );
    assert!(!cause.summary.contains("R08") && !cause.summary.contains("R09"));
    assert_eq!(
        cause.evidence[0],
        "density change: Z1-R07 +2.1 kW since 2025-11-12"
    );
    // Without the steps, the same problem names no density change.
    let plain = analysis_of(excursions(&[0, 1, 2])).problems().remove(0);
    assert!(!plain
        .probable_cause
        .unwrap()
        .summary
        .contains("density increase"));
}

fn resolve(id: u64, problem: &str, at: i64) -> crate::actions::OperatorAction {
    crate::actions::OperatorAction {
        id,
        at: coldaisle_core::Timestamp(at),
        actor: "ann".into(),
        kind: crate::actions::ActionKind::SetProblemStatus {
            problem: problem.into(),
            status: crate::actions::ProblemStatus::Resolved,
        },
    }
}

#[test]
fn an_incident_inside_the_verification_window_reopens_the_problem_with_that_evidence() {
    use crate::actions::ProblemStatus;
    let mut events = excursions(&[0, 1, 2, 12, 30]);
    let probe = analysis_of(excursions(&[0, 1, 2]));
    let id = probe.problems().remove(0).id;
    let fixed = AFTERNOON + 3 * DAY;
    let build = |events: Vec<StoredEvent>| {
        let mut a = analysis_of(events);
        a.ingest_action(resolve(1, &id, fixed)).unwrap();
        a
    };
    // Resolved on day 3; the excursion of day 12 is inside the 14-day window.
    let a = build(events.clone());
    let problem = a.problem(&id).unwrap();
    assert_eq!(problem.status, ProblemStatus::Open);
    assert_eq!(problem.reopened, 1);
    let window = problem.verification.as_ref().unwrap();
    assert_eq!(window.from.0, fixed);
    assert_eq!(window.until.0, fixed + 14 * DAY);
    let recurred = window.recurred.as_ref().unwrap();
    assert_eq!(recurred.at.0, AFTERNOON + 12 * DAY);
    let reopen = problem
        .history
        .iter()
        .find(|h| {
            h.text
                .starts_with("reopened: recurred inside the verification window")
        })
        .unwrap();
    assert!(
        reopen.text.contains(&format!(
            "incident {} opened 9days after the fix (window 14 days)",
            recurred.incident
        )),
        "{}",
        reopen.text
    );
    // The day-30 excursion links to the reopened problem; the same in any arrival order.
    assert_eq!(problem.incidents.len(), 5);
    events.reverse();
    let reversed = build(events);
    assert_eq!(
        serde_json::to_string(&reversed.problems()).unwrap(),
        serde_json::to_string(&a.problems()).unwrap()
    );
}

#[test]
fn an_incident_after_the_verification_window_needs_the_recurrence_rule_again() {
    use crate::actions::ProblemStatus;
    let probe = analysis_of(excursions(&[0, 1, 2]));
    let id = probe.problems().remove(0).id;
    let mut a = analysis_of(excursions(&[0, 1, 2, 20]));
    a.ingest_action(resolve(1, &id, AFTERNOON + 3 * DAY))
        .unwrap();
    let problem = a.problem(&id).unwrap();
    assert_eq!(problem.status, ProblemStatus::Resolved);
    let window = problem.verification.unwrap();
    assert_eq!(window.recurred, None);
}

/// Hourly inlet summaries of Z1's `r1-inlet` over `[from_day, to_day)` after [`T0`]'s
/// midnight, the hourly maximum given by `max(hour index)`.
fn hourly(
    from_day: i64,
    to_day: i64,
    max: impl Fn(i64) -> f64,
) -> Vec<coldaisle_core::ReadingSummary> {
    use coldaisle_core::{Location, ReadingSummary, SensorKind, Timestamp};
    let midnight = T0 - 12 * 60 * MIN;
    (from_day * 24..to_day * 24)
        .map(|h| {
            let from = midnight + h * 60 * MIN;
            let m = max(h);
            ReadingSummary {
                sensor: "r1-inlet".into(),
                kind: SensorKind::InletTemp,
                location: Location {
                    site: "dc1".into(),
                    zone: "Z1".into(),
                    row: None,
                    rack: Some("R1".into()),
                },
                from: Timestamp(from),
                to: Timestamp(from + 60 * MIN),
                count: 60,
                min: m - 1.0,
                max: m,
                sum: 60.0 * (m - 0.5),
                last: m - 0.5,
            }
        })
        .collect()
}

/// The Z1 problem of three excursions (days 0–2), resolved on day 3 at 14:30.
fn resolved_problem() -> (Analysis, crate::problems::Problem) {
    let probe = analysis_of(excursions(&[0, 1, 2]));
    let id = probe.problems().remove(0).id;
    let mut a = analysis_of(excursions(&[0, 1, 2]));
    a.ingest_action(resolve(1, &id, AFTERNOON + 3 * DAY))
        .unwrap();
    let problem = a.problem(&id).unwrap();
    (a, problem)
}

#[test]
fn at_the_end_of_the_window_the_figures_and_the_verdict_are_written_on_the_problem() {
    use crate::verification::Verdict;
    let (a, mut problem) = resolved_problem();
    // Before the fix, afternoon peaks swing 24 ↔ 29 °C; after it, flat 24–25 °C.
    let mut summaries = hourly(-12, 3, |h| if h.rem_euclid(24) == 14 { 29.0 } else { 24.0 });
    summaries.extend(hourly(3, 18, |h| if h % 2 == 0 { 25.0 } else { 24.0 }));
    let end = coldaisle_core::Timestamp(AFTERNOON + 17 * DAY);
    let incidents = a.incidents(end);
    crate::fix_figures::attach(&mut problem, &summaries, &incidents, end);
    let result = problem
        .verification
        .as_ref()
        .unwrap()
        .result
        .as_ref()
        .unwrap();
    assert_eq!(result.verdict, Verdict::Improved, "{result:#?}");
    assert_eq!((result.before.incidents, result.after.incidents), (3, 0));
    let change = result.variance_change_percent.unwrap();
    assert!(change < -40.0, "{change}");
    assert!(
        result.sentence.starts_with("peak temperature variance −")
            && result.sentence.contains("incidents 3 → 0"),
        "{}",
        result.sentence
    );
    let line = problem.chronicle.last().unwrap();
    assert_eq!(line.at, end);
    assert_eq!(line.kind, crate::chronicle::ChronicleKind::Finding);
    assert_eq!(line.text, format!("fix verification: {}", result.sentence));
    let md = crate::postmortem::problem_postmortem(&problem, &incidents);
    assert!(md.contains("## Fix verification\n\n- window "), "{md}");
    assert!(md.contains(&format!("- {}", result.sentence)), "{md}");
    assert!(crate::render::render_problem(&problem).contains("  fix verification:\n    window "));

    // Earlier, the window is still open: pending, nothing in the chronicle.
    let (_, mut open) = resolved_problem();
    let lines = open.chronicle.len();
    crate::fix_figures::attach(
        &mut open,
        &summaries,
        &incidents,
        coldaisle_core::Timestamp(AFTERNOON + 9 * DAY),
    );
    let result = open.verification.unwrap().result.unwrap();
    assert_eq!(result.verdict, Verdict::Pending);
    assert_eq!(open.chronicle.len(), lines);
}

#[test]
fn a_window_with_a_data_gap_is_too_little_data_and_says_its_coverage() {
    use crate::verification::Verdict;
    let (a, mut problem) = resolved_problem();
    // Full data before; after the fix only 3 of the 14 days reported (the PDU was off-line).
    let mut summaries = hourly(-12, 3, |h| if h.rem_euclid(24) == 14 { 29.0 } else { 24.0 });
    summaries.extend(hourly(3, 7, |_| 24.0));
    let end = coldaisle_core::Timestamp(AFTERNOON + 17 * DAY);
    crate::fix_figures::attach(&mut problem, &summaries, &a.incidents(end), end);
    let result = problem.verification.unwrap().result.unwrap();
    assert_eq!(result.verdict, Verdict::InsufficientData);
    assert!(result.after.coverage < 0.5, "{}", result.after.coverage);
    assert!(
        result.sentence.contains("data coverage")
            && result.sentence.ends_with("too little data to verify"),
        "{}",
        result.sentence
    );
}

#[test]
fn the_figures_come_from_the_stored_hourly_rollups_of_the_zone() {
    use crate::rollup_store::RollupStore;
    use coldaisle_store::{KvStore, MemoryStore};
    use std::sync::Arc;
    let (a, mut problem) = resolved_problem();
    let mut summaries = hourly(-12, 3, |h| if h.rem_euclid(24) == 14 { 29.0 } else { 24.0 });
    summaries.extend(hourly(3, 18, |h| if h % 2 == 0 { 25.0 } else { 24.0 }));
    // Another zone's hot inlet must not count.
    let mut other = hourly(3, 18, |_| 35.0);
    for s in &mut other {
        s.location.zone = "Z2".into();
    }
    let kv: Arc<dyn KvStore> = Arc::new(MemoryStore::default());
    let all: Vec<&coldaisle_core::ReadingSummary> = summaries.iter().chain(&other).collect();
    crate::rollup_store::add(kv.as_ref(), &all).unwrap();
    let store = RollupStore::new(kv, Default::default());
    let end = coldaisle_core::Timestamp(AFTERNOON + 17 * DAY);
    let read = crate::fix_figures::stored_summaries(&problem, &store).unwrap();
    assert!(read.iter().all(|s| s.location.zone == "Z1"));
    // One summary per hour bucket of the 28 days around the fix (both ends' partial hours).
    assert_eq!(read.len(), 28 * 24 + 1);
    crate::fix_figures::attach(&mut problem, &read, &a.incidents(end), end);
    let result = problem.verification.unwrap().result.unwrap();
    assert_eq!(
        result.verdict,
        crate::verification::Verdict::Improved,
        "{}",
        result.sentence
    );
}

#[tokio::test]
async fn the_problem_api_answers_the_signature_and_the_verification_figures() {
    use crate::rollup_store::RollupStore;
    use crate::state::CollectorState;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use coldaisle_store::{KvStore, MemoryStore};
    use std::sync::Arc;
    use tower::ServiceExt as _;
    let (a, problem) = resolved_problem();
    let mut summaries = hourly(-12, 3, |h| if h.rem_euclid(24) == 14 { 29.0 } else { 24.0 });
    summaries.extend(hourly(3, 18, |h| if h % 2 == 0 { 25.0 } else { 24.0 }));
    let kv: Arc<dyn KvStore> = Arc::new(MemoryStore::default());
    crate::rollup_store::add(kv.as_ref(), &summaries.iter().collect::<Vec<_>>()).unwrap();
    let state = CollectorState {
        analysis: a,
        directory: Default::default(),
        rollups: Some(RollupStore::new(kv, Default::default())),
        agents: Default::default(),
        stats: Default::default(),
        notify: Default::default(),
        latest_event: coldaisle_core::Timestamp(0),
        history: None,
    };
    let now = coldaisle_core::Timestamp(AFTERNOON + 18 * DAY);
    let app = crate::http::router(crate::http::ApiOptions::new(
        Arc::new(tokio::sync::RwLock::new(state)),
        Arc::new(move || now),
    ));
    let request = Request::builder()
        .uri(format!("/api/v1/problems/{}", problem.id))
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(json["status"], "resolved");
    assert!(json["signature"]["summary"]
        .as_str()
        .unwrap()
        .starts_with("3 incidents: too few to call a pattern"));
    let result = &json["verification"]["result"];
    assert_eq!(result["verdict"]["verdict"], "improved", "{json:#}");
    assert!(result["sentence"]
        .as_str()
        .unwrap()
        .contains("incidents 3 → 0"));
    let findings: Vec<&str> = json["chronicle"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "finding")
        .filter_map(|c| c["text"].as_str())
        .collect();
    assert!(
        findings
            .iter()
            .any(|t| t.starts_with("fix verification: peak temperature variance −")),
        "{findings:?}"
    );
    // The zone report carries the fix's result too, not only its window.
    let request = Request::builder()
        .uri(format!(
            "/api/v1/zones/{}/report?site={}",
            problem.fingerprint.zone, problem.fingerprint.site
        ))
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let lines: Vec<&str> = json["problems"][0]["verification"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("incidents 3 → 0")),
        "{json:#}"
    );
}
