//! Problems that stay open for many horizons (issue 13 part 11): the summaries of the
//! incidents they count are folded into each problem's tally and forgotten, so they stay flat
//! however long the problem is open, while every problem (incident list, probable cause,
//! signature) equals a full rebuild that forgot nothing; through a checkpoint, and from a
//! checkpoint written before the tallies existed.

use super::prune_tests::{rules, MIN, T0};
use super::*;
use crate::problems::ProblemScope;
use coldaisle_core::{Category, EventState, Location, SensorEvent, SensorKind, Severity};
use std::time::Duration;

/// An inlet event of rack `A{rack}` in zone Z0 at `minute` after [`T0`].
fn inlet(rack: i64, raised: bool, minute: i64, value: f64, seq: u64) -> StoredEvent {
    let ts = Timestamp(T0 + minute * MIN);
    StoredEvent {
        agent: "a0".into(),
        seq,
        payload: Payload::SensorEvent(SensorEvent {
            sensor: format!("Z0-s{rack}"),
            kind: SensorKind::InletTemp,
            location: Location {
                site: "dc1".into(),
                zone: "Z0".into(),
                row: Some("R1".into()),
                rack: Some(format!("A{rack}")),
            },
            category: Category::Thermal,
            detector: "threshold".into(),
            state: if raised {
                EventState::Raised
            } else {
                EventState::Cleared
            },
            severity: Severity::Warning,
            value,
            limit: Some(27.0),
            expected_crossing: None,
            first_ts: ts,
            ts,
        }),
    }
}

/// Zone Z0 overheats once an hour for `hours`: one or two racks, at a minute of the hour and
/// a peak that vary, cleared 20 minutes later; each incident resolves before the next.
fn overheats(hours: i64) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    for h in 0..hours {
        let start = h * 60 + (h * 7) % 25;
        let racks: &[i64] = if h % 4 == 0 { &[h % 3, 3] } else { &[h % 3] };
        for &rack in racks {
            let peak = 27.5 + ((h * 5 + rack) % 11) as f64 / 4.0;
            out.push(inlet(rack, true, start, peak, 0));
            out.push(inlet(rack, false, start + 20, 26.0, 0));
        }
    }
    out.sort_by_key(|e| e.payload.ts());
    for (seq, e) in out.iter_mut().enumerate() {
        e.seq = seq as u64 + 1;
    }
    out
}

/// An analysis that never prunes (nothing summarised or folded): the full rebuild.
fn never_pruning(incident_rules: &IncidentRules, problem_rules: &ProblemRules) -> Analysis {
    let mut a = Analysis::new(incident_rules.clone(), problem_rules.clone());
    a.next_prune = Some(Timestamp(i64::MAX));
    a
}

/// Incidents counted by tallies, over every problem.
fn folded(a: &Analysis) -> usize {
    a.shards
        .values()
        .flat_map(|s| {
            s.problems
                .problems()
                .into_iter()
                .filter_map(|p| s.problems.tally(&p.id).map(|t| t.folded()))
                .collect::<Vec<_>>()
        })
        .sum()
}

/// The snapshot of `a` through JSON, with every problem tally removed when `drop_tallies` (a
/// checkpoint written before issue 13 part 11), restored.
fn through_checkpoint(a: &Analysis, drop_tallies: bool) -> Analysis {
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.remove("tallies");
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let snapshot = a.snapshot().expect("snapshot");
    let mut json = serde_json::to_value(&snapshot).expect("encode");
    if drop_tallies {
        assert!(
            json.to_string().contains(r#""tallies":"#),
            "nothing to drop"
        );
        strip(&mut json);
        assert!(!json.to_string().contains(r#""tallies":"#));
    }
    let snapshot: Snapshot = serde_json::from_value(json).expect("decode");
    Analysis::restore(snapshot, a.incident_rules(), a.problem_rules()).expect("restore")
}

#[test]
fn summaries_stay_flat_while_a_problem_stays_open_and_problems_equal_a_full_rebuild() {
    let (incident_rules, problem_rules) = rules(ProblemScope::Zone);
    let events = overheats(240);
    let mut pruned = Analysis::new(incident_rules.clone(), problem_rules.clone());
    let mut reference = never_pruning(&incident_rules, &problem_rules);
    let mut archived_at = Vec::new();
    for (k, e) in events.iter().enumerate() {
        pruned.ingest(e.clone());
        reference.ingest(e.clone());
        if (k + 1) % (events.len() / 10) == 0 {
            let now = pruned.latest_event_time().expect("events");
            archived_at.push(pruned.footprint(now).archived);
        }
    }
    // The one problem stays open from the second hour and links every incident.
    let problems = pruned.problems();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].incidents.len(), 240);
    assert_eq!(problems, reference.problems());
    let signature = problems[0].signature.as_ref().expect("signature");
    assert_eq!(signature.incidents, 240);
    assert!(signature.trend.is_some() && signature.racks.len() == 4);
    // Nearly every incident is counted by the tally, and the summaries held do not grow
    // with them: from a tenth of the run to its end (24 → 240 incidents) they stay within a
    // problem window and a horizon's worth (before the tallies, every counted one was held).
    assert!(folded(&pruned) >= 230, "folded {}", folded(&pruned));
    // Raw-record retention still keeps everything from the first counted incident on.
    assert_eq!(pruned.oldest_needed_time(), Some(Timestamp(T0)));
    assert_eq!(pruned.oldest_needed_time(), reference.oldest_needed_time());
    assert!(
        archived_at.iter().all(|n| *n <= 10),
        "summaries held over the run: {archived_at:?}"
    );

    // Through a checkpoint, then 20 hours more.
    let more = overheats(260);
    let mut reference = never_pruning(&incident_rules, &problem_rules);
    for e in &more {
        reference.ingest(e.clone());
    }
    let mut resumed = through_checkpoint(&pruned, false);
    for e in &more[events.len()..] {
        resumed.ingest(e.clone());
    }
    assert_eq!(resumed.problems(), reference.problems());

    // A checkpoint without tallies (written before them: it holds every counted summary),
    // taken after two hours, restored and given the other 258 hours: the tallies start from
    // the summaries it holds.
    let two_hours = more
        .iter()
        .take_while(|e| e.payload.ts() < Timestamp(T0 + 120 * MIN))
        .count();
    let mut old = Analysis::new(incident_rules.clone(), problem_rules.clone());
    for e in &more[..two_hours] {
        old.ingest(e.clone());
    }
    let mut resumed = through_checkpoint(&old, true);
    for e in &more[two_hours..] {
        resumed.ingest(e.clone());
    }
    assert_eq!(resumed.problems(), reference.problems());
    assert!(folded(&resumed) >= 250, "folded {}", folded(&resumed));
}

/// True if a problem's tally counts an incident its scope still holds (whose summary a deep
/// replay of the hot span can still drop and compute again).
fn folds_a_held_incident(a: &Analysis) -> bool {
    a.shards.values().any(|s| {
        s.problems.problems().iter().any(|p| {
            let head = s.problems.tally(&p.id).map_or(0, |t| t.folded());
            p.incidents
                .iter()
                .take(head)
                .any(|id| s.incidents.holds(id))
        })
    })
}

/// With a hot span of 20 minutes (horizon 3 h): zone Z0 overheats for 45 minutes once an
/// hour, and each incident is joined by a raise of rack A5 that arrives 2 h 40 to 2 h 55
/// late (deep before the hot floor, within the horizon: a deep replay that can change a
/// summary the hot span froze). No tally ever counts an incident its scope still holds (a
/// fold offered every frozen summary counts some here), and the problems (signature racks
/// included) equal a full rebuild's.
#[test]
fn a_tally_counts_no_summary_a_deep_replay_can_change() {
    let (incident_rules, problem_rules) = rules(ProblemScope::Zone);
    let mut timed: Vec<(i64, StoredEvent)> = Vec::new();
    for h in 0..14 {
        let start = h * 60 + (h * 7) % 25;
        timed.push((start, inlet(h % 3, true, start, 28.0, 0)));
        timed.push((start + 45, inlet(h % 3, false, start + 45, 26.0, 0)));
        let (raise, delay) = (start + 30 + h % 10, 160 + (h * 5) % 16);
        timed.push((raise + delay, inlet(5, true, raise, 29.5, 0)));
        timed.push((raise + delay, inlet(5, false, raise + 1, 26.0, 0)));
    }
    for (seq, (_, e)) in timed.iter_mut().enumerate() {
        e.seq = seq as u64 + 1;
    }
    timed.sort_by_key(|(at, e)| (*at, e.order_key()));
    let mut history = history::MemoryHistory::default();
    let mut hot = Analysis::new(incident_rules.clone(), problem_rules.clone())
        .with_hot_span(Some(Duration::from_secs(20 * 60)));
    let mut reference = never_pruning(&incident_rules, &problem_rules);
    for (_, e) in timed {
        history.add(e.clone());
        hot.ingest_with_history(e.clone(), &history);
        reference.ingest(e);
        assert!(!folds_a_held_incident(&hot));
    }
    assert!(hot.rebuilds() >= 10, "{} replays", hot.rebuilds());
    assert!(folded(&hot) >= 5, "folded {}", folded(&hot));
    assert_eq!(hot.history_errors(), 0);
    assert_eq!(hot.problems(), reference.problems());
}
