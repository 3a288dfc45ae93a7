//! Pruning past the horizon ([`super::prune`]): memory stays bounded, events before the floor
//! are counted as too late and change nothing, and every result within the horizon equals a
//! full rebuild that never forgot anything, whatever the arrival order (late deliveries within
//! the horizon, bulks, a checkpoint and its tail).

use super::*;
use crate::problems::ProblemScope;
use coldaisle_core::{
    Category, DeviceEvent, EventState, Location, SensorEvent, SensorKind, Severity, ZoneEvent,
};
use proptest::prelude::*;
use std::time::Duration;

/// 2025-11-25T12:00:00Z.
pub(super) const T0: i64 = 1_764_072_000_000;
pub(super) const MIN: i64 = 60_000;

/// Short rules, so that a test spans several horizons: window 2 h, verification 1 h, density
/// look-back 1 h; the horizon is 2 h + the test margin (1 h) = 3 h.
pub(super) fn rules(scope: ProblemScope) -> (IncidentRules, ProblemRules) {
    (
        IncidentRules {
            quiet_period: Duration::from_secs(15 * 60),
            sustained_after: Some(Duration::from_secs(30 * 60)),
        },
        ProblemRules {
            min_incidents: 2,
            window: Duration::from_secs(2 * 3600),
            sla_severity: Some(Severity::Critical),
            scope,
            density_lookback: Duration::from_secs(3600),
            verification_window: Duration::from_secs(3600),
        },
    )
}

/// One generated event: zone (of two, one site), kind (0..3 rack inlets, 3 zone event,
/// 4 device), source, raised, critical, minute after T0, value.
pub(super) type Spec = (u8, u8, u8, bool, bool, i64, u8);

pub(super) fn event(
    (zone, kind, source, raised, critical, minute, value): Spec,
    agent: &str,
    seq: u64,
) -> StoredEvent {
    let ts = Timestamp(T0 + minute * MIN);
    let state = if raised {
        EventState::Raised
    } else {
        EventState::Cleared
    };
    let severity = if critical {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let zone = format!("Z{zone}");
    let location = Location {
        site: "dc1".into(),
        zone: zone.clone(),
        row: Some(format!("R{}", source % 2)),
        rack: Some(format!("A{source}")),
    };
    let payload = match kind {
        0..=2 => Payload::SensorEvent(SensorEvent {
            sensor: format!("{zone}-s{source}-{kind}"),
            kind: SensorKind::InletTemp,
            location,
            category: Category::Thermal,
            detector: "threshold".into(),
            state,
            severity,
            value: 27.0 + f64::from(value) / 4.0,
            limit: Some(27.0),
            expected_crossing: None,
            first_ts: ts,
            ts,
        }),
        3 => Payload::ZoneEvent(ZoneEvent {
            site: "dc1".into(),
            zone,
            category: Category::Thermal,
            state,
            severity,
            evidence: Vec::new(),
            ts,
        }),
        _ => Payload::DeviceEvent(DeviceEvent {
            device: format!("crac-{source}"),
            location,
            state,
            reason: "no answer".into(),
            ts,
        }),
    };
    StoredEvent {
        agent: agent.into(),
        seq,
        payload,
    }
}

/// Events in event-time order with per-agent seqs (agent per zone). Every raise is cleared
/// again 5 to 43 minutes later (by its value), so incidents resolve (a zone whose incident
/// never resolves keeps everything, see the horizon's module doc).
pub(super) fn events(specs: &[Spec]) -> Vec<StoredEvent> {
    let mut specs = specs.to_vec();
    let clears: Vec<Spec> = specs
        .iter()
        .filter(|s| s.3)
        .map(|&(zone, kind, source, _, critical, minute, value)| {
            (
                zone,
                kind,
                source,
                false,
                critical,
                minute + 5 + 2 * i64::from(value),
                value,
            )
        })
        .collect();
    specs.extend(clears);
    specs.sort_by_key(|s| s.5);
    let mut next = [0_u64; 2];
    specs
        .iter()
        .map(|s| {
            let agent = usize::from(s.0 % 2);
            next[agent] += 1;
            event(*s, ["a0", "a1"][agent], next[agent])
        })
        .collect()
}

/// An analysis that never prunes: the full rebuild the pruned ones are compared with.
pub(super) fn never_pruning(
    incident_rules: &IncidentRules,
    problem_rules: &ProblemRules,
) -> Analysis {
    let mut a = Analysis::new(incident_rules.clone(), problem_rules.clone());
    a.next_prune = Some(Timestamp(i64::MAX));
    a
}

/// What the product promises within the horizon: `pruned` holds every incident of the
/// reference that is not final before its floor, each equal to the reference's (timeline,
/// cause, chronicle), and only incidents the reference has; every problem is equal (linked
/// incidents, history, probable cause, signature).
pub(super) fn check_within_horizon(
    pruned: &Analysis,
    reference: &Analysis,
    end: Timestamp,
) -> Result<(), TestCaseError> {
    check_incidents_and_problems_within_horizon(pruned, &super::hot::NoHistory, reference, end)?;
    prop_assert_eq!(pruned.orphan_clears(), reference.orphan_clears());
    Ok(())
}

/// [`check_within_horizon`] without the orphan-clear count: the held incidents equal the
/// reference's, every incident within the horizon is held, and the problems are equal.
/// `pruned`'s incidents (their stored timeline heads read back from `history`) are the
/// reference's, and none within the horizon is missing; problems are equal.
pub(super) fn check_incidents_and_problems_within_horizon(
    pruned: &Analysis,
    history: &dyn super::history::ScopeHistory,
    reference: &Analysis,
    end: Timestamp,
) -> Result<(), TestCaseError> {
    let held = pruned
        .incidents_with_history(end, history)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let full = reference.incidents(end);
    for incident in &held {
        let same = full.iter().find(|i| i.id == incident.id);
        prop_assert_eq!(Some(incident), same, "held incident differs");
    }
    let floor = pruned.floor().unwrap_or(Timestamp(i64::MIN));
    for incident in &full {
        let needed =
            incident.resolved_at.is_none_or(|r| r >= floor) || incident.last_event_at >= floor;
        if needed {
            prop_assert!(
                held.iter().any(|i| i.id == incident.id),
                "incident {} (resolved {:?}) within the horizon (floor {:?}) was forgotten",
                incident.id,
                incident.resolved_at,
                floor
            );
        }
    }
    prop_assert_eq!(pruned.problems(), reference.problems());
    Ok(())
}

pub(super) fn spec() -> impl Strategy<Value = Spec> {
    (
        0..2_u8,
        0..5_u8,
        0..3_u8,
        prop::bool::weighted(0.55),
        prop::bool::weighted(0.1),
        0..150_i64,
        0..20_u8,
    )
        .prop_map(|(zone, kind, source, raised, critical, minute, value)| {
            (zone, kind, source, raised, critical, minute * 7, value)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// Events over about six horizons (17.5 h, horizon 3 h), delivered up to 55 minutes late,
    /// one by one, in bulks of 10, and checkpointed at a random point with the tail in bulk:
    /// nothing is too late, memory was pruned, and every result within the horizon equals the
    /// never-pruned in-order pass.
    #[test]
    fn pruned_analysis_equals_a_full_rebuild_within_the_horizon(
        specs in prop::collection::vec(spec(), 20..160),
        delays in prop::collection::vec(0..56_i64, 320),
        scope in prop_oneof![Just(ProblemScope::Zone), Just(ProblemScope::Site)],
        cut in any::<prop::sample::Index>(),
    ) {
        let events = events(&specs);
        let (incident_rules, problem_rules) = rules(scope);
        let mut reference = never_pruning(&incident_rules, &problem_rules);
        for e in &events {
            reference.ingest(e.clone());
        }
        // Arrival: each event delayed by up to 55 minutes (never beyond the horizon).
        let mut arrival: Vec<(i64, StoredEvent)> = events
            .iter()
            .zip(&delays)
            .map(|(e, d)| (e.payload.ts().millis() + d * MIN, e.clone()))
            .collect();
        arrival.sort_by_key(|(at, e)| (*at, e.order_key()));
        let arrival: Vec<StoredEvent> = arrival.into_iter().map(|(_, e)| e).collect();

        let mut one_by_one = Analysis::new(incident_rules.clone(), problem_rules.clone());
        let mut bulks = Analysis::new(incident_rules.clone(), problem_rules.clone());
        for chunk in arrival.chunks(10) {
            bulks.begin_bulk();
            for e in chunk {
                one_by_one.ingest(e.clone());
                bulks.ingest(e.clone());
            }
            bulks.end_bulk();
        }
        let cut = cut.index(arrival.len() + 1);
        let mut resumed = Analysis::new(incident_rules.clone(), problem_rules.clone());
        for e in &arrival[..cut] {
            resumed.ingest(e.clone());
        }
        let written = serde_json::to_vec(&resumed.snapshot().expect("snapshot")).expect("encode");
        let snapshot: Snapshot = serde_json::from_slice(&written).expect("decode");
        let mut resumed = Analysis::restore(snapshot, &incident_rules, &problem_rules).expect("restore");
        resumed.begin_bulk();
        for e in &arrival[cut..] {
            resumed.ingest(e.clone());
        }
        resumed.end_bulk();

        let end = Timestamp(T0 + 1200 * MIN);
        for pruned in [&one_by_one, &bulks, &resumed] {
            prop_assert_eq!(pruned.too_late(), 0);
            check_within_horizon(pruned, &reference, end)?;
        }
        // Over six horizons of history, the one-by-one analysis did forget something.
        if events.len() > 100 {
            prop_assert!(one_by_one.floor().is_some());
            prop_assert!(one_by_one.event_count() < reference.event_count());
        }
    }
}

/// A zone that overheats for 20 minutes every hour for three days, under 1-hour rules.
pub(super) fn overheats(hours: i64) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    for h in 0..hours {
        let base = h * 60;
        for (k, raised) in [(0, true), (20, false)] {
            out.push(event(
                (0, 0, (h % 3) as u8, raised, false, base + k, (h % 17) as u8),
                "a0",
                0,
            ));
            out.push(event((0, 4, 0, raised, false, base + k + 1, 0), "a0", 0));
        }
    }
    for (seq, e) in out.iter_mut().enumerate() {
        e.seq = seq as u64 + 1;
    }
    out
}

#[test]
fn memory_stays_bounded_and_events_before_the_floor_change_nothing() {
    let (incident_rules, problem_rules) = rules(ProblemScope::Zone);
    let events = overheats(72);
    let mut pruned = Analysis::new(incident_rules.clone(), problem_rules.clone());
    let mut reference = never_pruning(&incident_rules, &problem_rules);
    let mut most_held = 0;
    for e in &events {
        pruned.ingest(e.clone());
        reference.ingest(e.clone());
        most_held = most_held.max(pruned.event_count());
    }
    // 4 events an hour; the horizon is 3 h, pruned every 22.5 min, plus the cooling lead pin
    // and the rollback base: far fewer than the 288 events of three days.
    assert_eq!(reference.event_count(), 288);
    assert!(most_held <= 40, "held at most {most_held}");
    let floor = pruned.floor().expect("pruned");
    let latest = pruned.latest_event_time().expect("events");
    assert!(floor >= latest.minus(Duration::from_secs(4 * 3600)));
    // The problem opened on day one still lists, explains and signs every incident.
    let problems = pruned.problems();
    assert_eq!(problems, reference.problems());
    // One thermal, one device problem (the CRAC answers no more every hour too).
    assert_eq!(problems.len(), 2);
    for problem in &problems {
        assert_eq!(problem.incidents.len(), 72, "{}", problem.id);
        assert!(problem.probable_cause.is_some());
    }
    assert!(pruned.incidents(latest).len() < 12);

    // An event before the floor (a new raise) and a copy of a forgotten one: too late.
    let before =
        serde_json::to_string(&(pruned.incidents(latest), pruned.problems())).unwrap_or_default();
    let count = pruned.event_count();
    let mut old = event((1, 0, 1, true, true, 60, 3), "a9", 1);
    assert!(old.payload.ts() < floor);
    assert!(!pruned.ingest(old.clone()));
    assert!(!pruned.ingest(events[0].clone()));
    assert_eq!(pruned.too_late(), 2);
    old.seq = 2;
    let action = OperatorAction {
        id: 1,
        at: Timestamp(T0 + 61 * MIN),
        actor: "op".into(),
        kind: ActionKind::Acknowledge {
            incident: format!("inc-dc1-z0-thermal-{}", T0 + 60 * MIN),
        },
    };
    assert_eq!(pruned.ingest_action(action), Ok(false));
    assert_eq!(pruned.too_late(), 3);
    assert_eq!(pruned.event_count(), count);
    let after =
        serde_json::to_string(&(pruned.incidents(latest), pruned.problems())).unwrap_or_default();
    assert_eq!(after, before);
    // The reference, which forgot nothing, does take the old event.
    assert!(reference.ingest(old));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(80))]

    /// The zone index ([`super::zone_index`]) stays in step with the events held through
    /// ingest, late deliveries, prunes and a checkpoint restore, and the probable cause read
    /// through it equals the cause from scanning every event held in the window, for every
    /// incident held, at several points of the arrival.
    #[test]
    fn indexed_cause_equals_the_scan_through_prunes_and_restore(
        specs in prop::collection::vec(spec(), 20..160),
        delays in prop::collection::vec(0..56_i64, 320),
        cut in any::<prop::sample::Index>(),
    ) {
        let events = events(&specs);
        let (incident_rules, problem_rules) = rules(ProblemScope::Zone);
        let mut arrival: Vec<(i64, StoredEvent)> = events
            .iter()
            .zip(&delays)
            .map(|(e, d)| (e.payload.ts().millis() + d * MIN, e.clone()))
            .collect();
        arrival.sort_by_key(|(at, e)| (*at, e.order_key()));
        let arrival: Vec<StoredEvent> = arrival.into_iter().map(|(_, e)| e).collect();
        let cut = cut.index(arrival.len() + 1);
        let end = Timestamp(T0 + 1200 * MIN);

        let mut live = Analysis::new(incident_rules.clone(), problem_rules.clone());
        for (n, e) in arrival.iter().enumerate() {
            live.ingest(e.clone());
            if n % 25 == 0 {
                live.check_zone_index(end).map_err(TestCaseError::fail)?;
            }
        }
        live.check_zone_index(end).map_err(TestCaseError::fail)?;

        let mut resumed = Analysis::new(incident_rules.clone(), problem_rules.clone());
        for e in &arrival[..cut] {
            resumed.ingest(e.clone());
        }
        let written = serde_json::to_vec(&resumed.snapshot().expect("snapshot")).expect("encode");
        let snapshot: Snapshot = serde_json::from_slice(&written).expect("decode");
        let mut resumed = Analysis::restore(snapshot, &incident_rules, &problem_rules).expect("restore");
        resumed.check_zone_index(end).map_err(TestCaseError::fail)?;
        for e in &arrival[cut..] {
            resumed.ingest(e.clone());
        }
        resumed.check_zone_index(end).map_err(TestCaseError::fail)?;
    }
}

/// The index check is not vacuous: over three days of hourly overheats, with pruning, it
/// compares causes of many held incidents, and the index holds fewer keys than were ingested.
#[test]
fn indexed_cause_check_compares_incidents_after_prunes() {
    let (incident_rules, problem_rules) = rules(ProblemScope::Zone);
    let events = overheats(72);
    let mut a = Analysis::new(incident_rules, problem_rules);
    for e in &events {
        a.ingest(e.clone());
    }
    assert!(a.floor().is_some(), "nothing was pruned");
    let compared = a
        .check_zone_index(Timestamp(i64::MAX))
        .expect("index equals the scan");
    assert!(compared >= 2, "only {compared} incidents compared");
    assert!(a.by_zone.entries().len() < events.len());
}

/// A step change of rack power (density evidence) of agent `p0`: rack `A{rack}` of zone
/// `Z{zone}` (row `R{rack % 2}`) goes from `before` to `after` kW at `minute` after T0.
pub(super) fn step(
    zone: u8,
    rack: u8,
    minute: i64,
    before: f64,
    after: f64,
    seq: u64,
) -> StoredEvent {
    let ts = Timestamp(T0 + minute * MIN);
    StoredEvent {
        agent: "p0".into(),
        seq,
        payload: Payload::SensorEvent(SensorEvent {
            sensor: format!("Z{zone}-A{rack}-power"),
            kind: SensorKind::RackPower,
            location: Location {
                site: "dc1".into(),
                zone: format!("Z{zone}"),
                row: Some(format!("R{}", rack % 2)),
                rack: Some(format!("A{rack}")),
            },
            category: Category::Power,
            detector: "step_change".into(),
            state: EventState::Raised,
            severity: Severity::Warning,
            value: after,
            limit: Some(before),
            expected_crossing: None,
            first_ts: ts,
            ts,
        }),
    }
}

/// Step changes from `(zone, rack, minute, change in tenths of kW)`, with seqs in event-time
/// order, as an agent sends them.
pub(super) fn steps(specs: &[(u8, u8, i64, i8)]) -> Vec<StoredEvent> {
    let mut specs = specs.to_vec();
    specs.sort_by_key(|s| s.2);
    specs
        .iter()
        .enumerate()
        .map(|(n, &(zone, rack, minute, tenths))| {
            step(
                zone,
                rack,
                minute,
                5.0,
                5.0 + f64::from(tenths) / 10.0,
                n as u64 + 1,
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(60))]

    /// The density evidence read through the zone index (the problem's zone, or every zone of
    /// its site merged in order-key order for a site-wide problem) equals the scan of every
    /// event held in the look-back, for every problem, in each problem scope, through late
    /// deliveries, prunes and a checkpoint restore.
    #[test]
    fn indexed_density_equals_the_scan_through_prunes_and_restore(
        specs in prop::collection::vec(spec(), 20..120),
        step_specs in prop::collection::vec((0..2_u8, 0..3_u8, 0..1050_i64, -30..60_i8), 0..60),
        delays in prop::collection::vec(0..56_i64, 360),
        scope in prop::sample::select(vec![ProblemScope::Zone, ProblemScope::Row, ProblemScope::Site]),
    ) {
        let mut all = events(&specs);
        all.extend(steps(&step_specs));
        let mut arrival: Vec<(i64, StoredEvent)> = all
            .iter()
            .zip(delays.iter().cycle())
            .map(|(e, d)| (e.payload.ts().millis() + d * MIN, e.clone()))
            .collect();
        arrival.sort_by_key(|(at, e)| (*at, e.order_key()));
        let (incident_rules, problem_rules) = rules(scope);
        let mut live = Analysis::new(incident_rules.clone(), problem_rules.clone());
        for (n, (_, e)) in arrival.iter().enumerate() {
            live.ingest(e.clone());
            if n % 40 == 0 {
                live.check_density_index().map_err(TestCaseError::fail)?;
            }
        }
        live.check_density_index().map_err(TestCaseError::fail)?;
        let written = serde_json::to_vec(&live.snapshot().expect("snapshot")).expect("encode");
        let snapshot: Snapshot = serde_json::from_slice(&written).expect("decode");
        let restored = Analysis::restore(snapshot, &incident_rules, &problem_rules).expect("restore");
        restored.check_density_index().map_err(TestCaseError::fail)?;
    }
}

/// The density check is not vacuous: with a site-wide problem and rack power steps in both
/// zones at the same minutes, it compares problems whose evidence is not empty and merges
/// the zones (the steps of both zones are found).
#[test]
fn indexed_density_check_compares_problems_with_evidence() {
    let (incident_rules, problem_rules) = rules(ProblemScope::Site);
    let mut all = overheats(6);
    // Steps in both zones during the first hour, before the problem opens (second incident).
    all.extend(steps(&[
        (0, 1, 5, 20),
        (1, 2, 5, 30),
        (1, 2, 9, -10),
        (0, 1, 12, 15),
    ]));
    all.sort_by_key(StoredEvent::order_key);
    let mut a = Analysis::new(incident_rules, problem_rules);
    for e in &all {
        a.ingest(e.clone());
    }
    let compared = a.check_density_index().expect("index equals the scan");
    assert!(compared >= 1, "no problem compared");
    let problems: Vec<Problem> = a
        .shards
        .values()
        .flat_map(|s| s.problems.problems())
        .collect();
    let racks: BTreeSet<String> = problems
        .iter()
        .flat_map(|p| a.density_before(p))
        .map(|s| s.rack)
        .collect();
    assert_eq!(racks, BTreeSet::from(["A1".to_string(), "A2".to_string()]));
}

/// Counted summaries past their incident keep their cause's text only for the first of each
/// kind in their problem's list: over three days of hourly overheats most of them are slim,
/// and the problems (probable cause, evidence quoted, signature) equal the never-pruned ones.
#[test]
fn counted_summaries_keep_one_text_per_kind_and_problems_are_unchanged() {
    let (incident_rules, problem_rules) = rules(ProblemScope::Zone);
    let events = overheats(72);
    let mut pruned = Analysis::new(incident_rules.clone(), problem_rules.clone());
    let mut reference = never_pruning(&incident_rules, &problem_rules);
    for e in &events {
        pruned.ingest(e.clone());
        reference.ingest(e.clone());
    }
    // Since part 11 the summaries a problem's tally counts are forgotten, so few are left:
    // of those, at most one per problem and cause kind keeps its text.
    let slim = pruned.archive.values().filter(|a| a.is_slim()).count();
    let full = pruned.archive.len() - slim;
    assert!(full >= 1, "no summary kept its text");
    assert!(full <= 2 * 5, "{slim} slim summaries, {full} full");
    let problems = pruned.problems();
    assert!(problems.iter().any(|p| p.probable_cause.is_some()));
    assert_eq!(problems, reference.problems());
}

/// A steady flow in one zone, one event a minute for `hours`: each half hour three sensors
/// rise over nine minutes and clear from then on, so each incident resolves before the next.
fn steady_flow(hours: i64) -> Vec<StoredEvent> {
    (0..hours * 60)
        .map(|m| {
            let raised = m % 30 < 9;
            event(
                (0, 0, (m % 3) as u8, raised, false, m, 0),
                "a0",
                m as u64 + 1,
            )
        })
        .collect()
}

/// Issue 13 part 9: the scopes' inputs held never span more than the horizon plus one prune
/// interval (plus the few inputs between a scope's last checkpoint and the cell's start).
/// Before the prunes and the sparse checkpoints shared one grid, the floor could move only to
/// the latest checkpoint of a quarter-horizon bucket before the cutoff, so memory held up to
/// a whole bucket more: here up to 4 h 06 min of inputs instead of at most 3 h 22.5 min
/// (with the default rules up to 38.9 days instead of 34.9).
#[test]
fn scope_inputs_span_at_most_the_horizon_plus_one_prune_interval() {
    let (incident_rules, problem_rules) = rules(ProblemScope::Zone);
    let horizon = super::horizon::horizon(&incident_rules, &problem_rules);
    let every = super::horizon::prune_every(horizon);
    // CHECKPOINT_EVERY (3) inputs of one a minute, and the minute of the prune's event.
    let slack = Duration::from_secs(5 * 60);
    let mut a = Analysis::new(incident_rules, problem_rules);
    let mut widest = Duration::ZERO;
    for e in steady_flow(24) {
        a.ingest(e);
        let latest = a.latest_event_time().expect("events");
        if latest.since(Timestamp(T0)) < horizon + 2 * every {
            continue;
        }
        let oldest = a
            .events
            .keys()
            .find(|key| !a.evidence.contains(*key))
            .expect("inputs held");
        widest = widest.max(latest.since(oldest.0));
    }
    assert!(a.floor().is_some(), "nothing was pruned");
    assert!(
        widest <= horizon + every + slack,
        "inputs held spanned {widest:?}, horizon {horizon:?} + prune interval {every:?}"
    );
    // And the bound is not loose: just before a prune they do span more than the horizon.
    assert!(widest > horizon + every / 2, "spanned only {widest:?}");
}
