//! Tests of operator actions, the problem lifecycle and the SLA rules across both engines, fed
//! through [`crate::analysis::Analysis`] as a replay would feed them.

#![allow(clippy::unwrap_used)]

use crate::actions::ProblemStatus;
use crate::actions::{ActionKind, OperatorAction};
use crate::analysis::{Analysis, StoredEvent};
use crate::chronicle::ChronicleKind;
use crate::incidents::tests::{sensor, MIN, T0};
use crate::incidents::{IncidentRules, IncidentStatus};
use crate::model::ActionError;
use crate::problems::{ProblemRules, ProblemTrigger};
use coldaisle_core::{EventState, Severity, Timestamp};
use std::time::Duration;
use EventState::{Cleared, Raised};
use Severity::{Critical, Warning};

const DAY: i64 = 86_400_000;

fn analysis() -> Analysis {
    Analysis::new(IncidentRules::default(), ProblemRules::default())
}

/// One warning excursion in Z1 from `start` lasting `minutes`, seqs `seq` and `seq + 1`.
fn excursion(seq: u64, start: i64, minutes: i64) -> [StoredEvent; 2] {
    [
        sensor("a1", seq, "Z1", "r1-inlet", Raised, Warning, 28.5, start),
        sensor(
            "a1",
            seq + 1,
            "Z1",
            "r1-inlet",
            Cleared,
            Warning,
            26.0,
            start + minutes * MIN,
        ),
    ]
}

fn action(id: u64, at: i64, kind: ActionKind) -> OperatorAction {
    OperatorAction {
        id,
        at: Timestamp(at),
        actor: "ann".into(),
        kind,
    }
}

fn inc(ts: i64) -> String {
    format!("inc-dc1-z1-thermal-{ts}")
}

#[test]
fn ack_note_and_manual_resolve_shape_the_incident_and_its_chronicle() {
    let mut a = analysis();
    a.ingest(sensor("a1", 1, "Z1", "r1-inlet", Raised, Warning, 28.5, T0));
    let id = inc(T0);
    a.ingest_action(action(
        1,
        T0 + MIN,
        ActionKind::Acknowledge {
            incident: id.clone(),
        },
    ))
    .unwrap();
    // A second ack is recorded on the chronicle but the first one stays the acknowledgement.
    a.ingest_action(action(
        2,
        T0 + 2 * MIN,
        ActionKind::Acknowledge {
            incident: id.clone(),
        },
    ))
    .unwrap();
    a.ingest_action(action(
        3,
        T0 + 3 * MIN,
        ActionKind::NoteIncident {
            incident: id.clone(),
            text: "CRAC-2 filter clogged".into(),
        },
    ))
    .unwrap();
    a.ingest_action(action(
        4,
        T0 + 4 * MIN,
        ActionKind::ResolveIncident {
            incident: id.clone(),
            reason: "sensor moved".into(),
        },
    ))
    .unwrap();
    let now = Timestamp(T0 + 5 * MIN);
    let i = a.incident(&id, now).unwrap();
    assert_eq!(i.acknowledged.as_ref().unwrap().at, Timestamp(T0 + MIN));
    assert_eq!(i.status, IncidentStatus::Resolved);
    assert_eq!(i.resolved_at, Some(Timestamp(T0 + 4 * MIN)));
    assert_eq!(i.resolved_by_hand.as_ref().unwrap().actor, "ann");
    let lines: Vec<(i64, ChronicleKind, &str)> = i
        .chronicle
        .iter()
        .map(|c| (c.at.millis() - T0, c.kind, c.text.as_str()))
        .collect();
    assert_eq!(lines[0].1, ChronicleKind::Event);
    assert_eq!(
        (lines[1].1, lines[1].2),
        (ChronicleKind::StateChange, "opened (warning)")
    );
    assert_eq!(lines[2], (MIN, ChronicleKind::Operator, "acknowledged"));
    assert_eq!(
        lines[4],
        (
            3 * MIN,
            ChronicleKind::Operator,
            "note: CRAC-2 filter clogged"
        )
    );
    assert_eq!(
        lines[5],
        (
            4 * MIN,
            ChronicleKind::Operator,
            "resolved by hand: sensor moved"
        )
    );
    assert_eq!(lines.len(), 6);
    // One rack's inlet alone: single rack density, explained with the reading.
    let cause = i.probable_cause.as_ref().unwrap();
    assert_eq!(cause.kind, crate::cause::CauseKind::RackDensity);
    assert!(
        cause.evidence[0].contains("r1-inlet raised rack R1: 28.5 °C (limit 27.0)"),
        "{:?}",
        cause.evidence
    );
    // Resolving again is refused; the sensor still being raised does not matter.
    assert!(matches!(
        a.check_action(
            &ActionKind::ResolveIncident {
                incident: id.clone(),
                reason: String::new()
            },
            now
        ),
        Err(ActionError::AlreadyResolved { .. })
    ));
    // After a manual resolve, the next raise opens a new incident.
    a.ingest(sensor(
        "a1",
        2,
        "Z1",
        "r2-inlet",
        Raised,
        Warning,
        28.5,
        T0 + 6 * MIN,
    ));
    assert_eq!(a.incidents(Timestamp(T0 + 7 * MIN)).len(), 2);
}

#[test]
fn actions_on_unknown_ids_are_kept_but_match_nothing() {
    let mut a = analysis();
    let err = a
        .ingest_action(action(
            1,
            T0,
            ActionKind::Acknowledge {
                incident: "nope".into(),
            },
        ))
        .unwrap_err();
    assert_eq!(err, ActionError::UnknownIncident("nope".into()));
    assert_eq!(a.unmatched_actions().len(), 1);
    assert_eq!(
        a.check_action(
            &ActionKind::SetProblemStatus {
                problem: "prb-x".into(),
                status: ProblemStatus::Resolved
            },
            Timestamp(T0)
        ),
        Err(ActionError::UnknownProblem("prb-x".into()))
    );
    // A duplicate action id changes nothing.
    assert_eq!(
        a.ingest_action(action(
            1,
            T0,
            ActionKind::Acknowledge {
                incident: "nope".into()
            }
        )),
        Ok(false)
    );
}

/// Three excursions in Z1 (days 0, 5, 10) make a recurrence problem; the operator investigates,
/// records root cause and workaround, later incidents show it; resolved; two more excursions
/// (days 40, 45) do not reach 3; a third (day 50) reopens the same problem.
fn lifecycle_inputs() -> (Vec<StoredEvent>, Vec<OperatorAction>) {
    let mut events = Vec::new();
    for (k, day) in [0, 5, 10, 12, 40, 45, 50].into_iter().enumerate() {
        events.extend(excursion(k as u64 * 2 + 1, T0 + day * DAY, 10));
    }
    let prb = format!("prb-dc1-z1-thermal-{}", T0 + 10 * DAY);
    let actions = vec![
        action(
            1,
            T0 + 10 * DAY + HOUR,
            ActionKind::SetProblemStatus {
                problem: prb.clone(),
                status: ProblemStatus::Investigating,
            },
        ),
        action(
            2,
            T0 + 11 * DAY,
            ActionKind::SetRootCause {
                problem: prb.clone(),
                root_cause: "blanking panels missing in row 3".into(),
                workaround: "raise CRAC-2 fan speed to 80%".into(),
            },
        ),
        action(
            3,
            T0 + 20 * DAY,
            ActionKind::SetProblemStatus {
                problem: prb,
                status: ProblemStatus::Resolved,
            },
        ),
    ];
    (events, actions)
}

const HOUR: i64 = 3_600_000;

#[test]
fn problem_lifecycle_workaround_and_reopen_not_duplicate() {
    let (events, actions) = lifecycle_inputs();
    let mut a = analysis();
    // Interleave in time order, as live operation would.
    let mut inputs: Vec<(i64, Result<StoredEvent, OperatorAction>)> = events
        .iter()
        .map(|e| (e.payload.ts().millis(), Ok(e.clone())))
        .chain(actions.iter().map(|x| (x.at.millis(), Err(x.clone()))))
        .collect();
    inputs.sort_by_key(|(t, _)| *t);
    let prb = format!("prb-dc1-z1-thermal-{}", T0 + 10 * DAY);
    for (t, input) in inputs {
        match input {
            Ok(e) => {
                a.ingest(e);
            }
            Err(x) => {
                a.ingest_action(x).unwrap();
            }
        }
        if t == T0 + 12 * DAY + 10 * MIN {
            // Day 12: linked to the known error and shows its workaround.
            let i = a.incident(&inc(T0 + 12 * DAY), Timestamp(t)).unwrap();
            assert_eq!(i.problem.as_deref(), Some(prb.as_str()));
            assert_eq!(
                i.workaround.as_deref(),
                Some("raise CRAC-2 fan speed to 80%")
            );
            assert_eq!(a.problem(&prb).unwrap().status, ProblemStatus::KnownError);
        }
        if t == T0 + 45 * DAY + 10 * MIN {
            // Two incidents after the resolution: below the threshold, nothing reopened.
            assert_eq!(a.problem(&prb).unwrap().status, ProblemStatus::Resolved);
            assert_eq!(
                a.incident(&inc(T0 + 45 * DAY), Timestamp(t))
                    .unwrap()
                    .problem,
                None
            );
        }
    }
    let problems = a.problems();
    assert_eq!(problems.len(), 1, "reopened, not duplicated");
    let p = &problems[0];
    assert_eq!(p.id, prb);
    assert_eq!(p.trigger, ProblemTrigger::Recurrence);
    assert_eq!(p.status, ProblemStatus::Open);
    assert_eq!(p.reopened, 1);
    assert_eq!(p.resolved_at, None);
    assert_eq!(
        p.root_cause.as_deref(),
        Some("blanking panels missing in row 3")
    );
    assert_eq!(
        p.incidents,
        [0, 5, 10, 12, 40, 45, 50]
            .map(|d| inc(T0 + d * DAY))
            .to_vec()
    );
    let history: Vec<&str> = p.history.iter().map(|h| h.text.as_str()).collect();
    assert_eq!(history.len(), 5);
    assert!(history[0].starts_with("opened: 3 thermal incidents"));
    assert_eq!(history[1], "status set to investigating");
    assert!(history[2].starts_with("root cause: blanking panels"));
    assert_eq!(history[3], "status set to resolved");
    assert!(history[4].starts_with("reopened: 3 thermal incidents"));
    // Not a known error any more: the workaround is no longer pushed onto new incidents.
    let last = a
        .incident(&inc(T0 + 50 * DAY), Timestamp(T0 + 51 * DAY))
        .unwrap();
    assert_eq!(last.workaround, None);
}

#[test]
fn replay_of_events_and_actions_in_any_order_gives_the_same_result() {
    let (events, actions) = lifecycle_inputs();
    let now = Timestamp(T0 + 60 * DAY);
    let snapshot = |a: &Analysis| serde_json::to_string(&(a.incidents(now), a.problems())).unwrap();
    // Reference: live, time-ordered.
    let mut reference = analysis();
    for e in &events {
        reference.ingest(e.clone());
        for x in actions.iter().filter(|x| {
            x.at >= e.payload.ts()
                && events
                    .iter()
                    .find(|n| n.payload.ts() > e.payload.ts())
                    .is_none_or(|n| x.at < n.payload.ts())
        }) {
            reference.ingest_action(x.clone()).unwrap();
        }
    }
    assert_eq!(reference.actions().count(), 3);
    let expected = snapshot(&reference);
    // Startup rebuild: events in store order (reversed here), then all actions at once.
    // Loaded in bulk, as start-up does: one by one, the latest event would move the floor of
    // the 31-day horizon past the first ones, which then count as too late.
    let mut rebuilt = analysis();
    rebuilt.begin_bulk();
    for e in events.iter().rev() {
        rebuilt.ingest(e.clone());
    }
    rebuilt.ingest_actions(actions.iter().rev().cloned());
    assert_eq!(rebuilt.end_bulk(), 0);
    assert_eq!(rebuilt.too_late(), 0);
    assert_eq!(snapshot(&rebuilt), expected);
    // Actions first, then events: every action applied late still lands in its place.
    let mut backwards = analysis();
    for x in &actions {
        let _ = backwards.ingest_action(x.clone());
    }
    for e in &events {
        backwards.ingest(e.clone());
    }
    assert!(backwards.unmatched_actions().is_empty());
    assert_eq!(snapshot(&backwards), expected);
}

#[test]
fn sustained_excursion_and_marked_incident_are_sla_impacting() {
    let mut a = Analysis::new(
        IncidentRules {
            sustained_after: Some(Duration::from_secs(30 * 60)),
            ..IncidentRules::default()
        },
        ProblemRules::default(),
    );
    // 29 minutes: not sustained.
    for e in excursion(1, T0, 29) {
        a.ingest(e);
    }
    assert!(a.problems().is_empty());
    // Zone Z2: exactly 30 minutes raised, shown by the clear.
    a.ingest(sensor(
        "a2",
        1,
        "Z2",
        "r9-inlet",
        Raised,
        Warning,
        28.5,
        T0 + DAY,
    ));
    a.ingest(sensor(
        "a2",
        2,
        "Z2",
        "r9-inlet",
        Cleared,
        Warning,
        26.0,
        T0 + DAY + 30 * MIN,
    ));
    let problems = a.problems();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].trigger, ProblemTrigger::Sla);
    assert_eq!(problems[0].fingerprint.zone, "Z2");
    assert!(
        problems[0].reason.contains("raised for 30m"),
        "{}",
        problems[0].reason
    );
    // Z1's short incident, marked by a person, opens its own problem.
    a.ingest_action(action(
        1,
        T0 + 2 * DAY,
        ActionKind::MarkSla { incident: inc(T0) },
    ))
    .unwrap();
    let problems = a.problems();
    assert_eq!(problems.len(), 2);
    assert!(problems[1].reason.contains("marked SLA-impacting"));
    assert_eq!(problems[1].incidents, vec![inc(T0)]);
    assert_eq!(problems[1].opened_at, Timestamp(T0 + 2 * DAY));
    // A critical one in Z1 links to it.
    a.ingest(sensor(
        "a1",
        9,
        "Z1",
        "r1-inlet",
        Raised,
        Critical,
        33.0,
        T0 + 3 * DAY,
    ));
    assert_eq!(a.problems()[1].incidents.len(), 2);
}

#[test]
fn site_scope_counts_incidents_of_every_zone_together() {
    let mut a = Analysis::new(
        IncidentRules::default(),
        ProblemRules {
            scope: crate::problems::ProblemScope::Site,
            ..ProblemRules::default()
        },
    );
    for (k, zone) in ["Z1", "Z2", "Z3"].into_iter().enumerate() {
        let t = T0 + k as i64 * DAY;
        a.ingest(sensor(
            "a1",
            k as u64 * 2 + 1,
            zone,
            "r1",
            Raised,
            Warning,
            28.0,
            t,
        ));
        a.ingest(sensor(
            "a1",
            k as u64 * 2 + 2,
            zone,
            "r1",
            Cleared,
            Warning,
            26.0,
            t + MIN,
        ));
    }
    let problems = a.problems();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].fingerprint.zone, crate::problems::SITE_WIDE);
    assert_eq!(
        problems[0].reason,
        "3 thermal incidents in site dc1 within 30 days"
    );
    assert_eq!(problems[0].incidents.len(), 3);
    // Zone scope (default): three zones, one incident each, no problem.
    let mut z = analysis();
    for (k, zone) in ["Z1", "Z2", "Z3"].into_iter().enumerate() {
        z.ingest(sensor(
            "a1",
            k as u64 + 1,
            zone,
            "r1",
            Raised,
            Warning,
            28.0,
            T0 + k as i64 * DAY,
        ));
    }
    assert!(z.problems().is_empty());
}

/// `e` with its location's row set to `row`.
fn in_row(mut e: StoredEvent, row: Option<&str>) -> StoredEvent {
    if let coldaisle_core::wire::Payload::SensorEvent(s) = &mut e.payload {
        s.location.row = row.map(str::to_string);
    }
    e
}

/// Row scope: incidents count under the row of the event that opened them. Three excursions in
/// row R1 (days 0, 2, 6) make one row problem; the one in R2 (day 4) and the one without a row
/// (day 5) are not part of it. Zone scope on the same input opens at the third zone incident
/// (day 4) and links the later ones.
#[test]
fn row_scope_groups_by_the_row_of_the_evidence() {
    let rows = [
        (0, Some("R1")),
        (2, Some("R1")),
        (4, Some("R2")),
        (5, None),
        (6, Some("R1")),
    ];
    let events: Vec<StoredEvent> = rows
        .iter()
        .enumerate()
        .flat_map(|(k, (day, row))| {
            excursion(k as u64 * 2 + 1, T0 + day * DAY, 10).map(|e| in_row(e, *row))
        })
        .collect();
    let run = |scope| {
        let mut a = Analysis::new(
            IncidentRules::default(),
            ProblemRules {
                scope,
                ..ProblemRules::default()
            },
        );
        for e in &events {
            a.ingest(e.clone());
        }
        a
    };
    let a = run(crate::problems::ProblemScope::Row);
    let problems = a.problems();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    let p = &problems[0];
    assert_eq!(p.id, format!("prb-dc1-z1-r1-thermal-{}", T0 + 6 * DAY));
    assert_eq!(p.fingerprint.zone, "Z1/R1");
    assert!(
        p.reason
            .starts_with("3 thermal incidents in row R1 of zone Z1"),
        "{}",
        p.reason
    );
    assert_eq!(p.incidents, [0, 2, 6].map(|d| inc(T0 + d * DAY)).to_vec());
    let at = Timestamp(T0 + 7 * DAY);
    assert_eq!(a.incident(&inc(T0 + 4 * DAY), at).unwrap().problem, None);
    assert_eq!(a.incident(&inc(T0 + 5 * DAY), at).unwrap().problem, None);

    let zone = run(crate::problems::ProblemScope::Zone).problems();
    assert_eq!(zone.len(), 1);
    assert_eq!(
        zone[0].incidents,
        [0, 2, 4, 5, 6].map(|d| inc(T0 + d * DAY)).to_vec()
    );
    assert_eq!(zone[0].fingerprint.zone, "Z1");
}
