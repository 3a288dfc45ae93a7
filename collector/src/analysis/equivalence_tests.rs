//! Property test: the split analysis, fed random events and actions in any arrival order (late
//! ones and duplicates included), one by one or loaded in bulk, equals one in-order pass over
//! everything in a single scope; and so does one checkpointed (snapshot written as JSON and
//! restored) at a random point of the arrival and given the rest as a tail, as at a restart.

use super::*;
use crate::problems::ProblemScope;
use coldaisle_core::{
    Category, DeviceEvent, EventState, Evidence, Location, SensorEvent, SensorKind, Severity,
    ZoneEvent,
};
use proptest::prelude::*;
use std::time::Duration;

/// 2025-11-25T12:00:00Z.
const T0: i64 = 1_764_072_000_000;
const MIN: i64 = 60_000;

/// Sites and zones chosen so that ids collide after sanitising (`dc-1`/`z1` and `dc`/`1-z1`,
/// `Z1` and `z1`) and so that scopes split by site segment and by fingerprint differ.
const SITES: [&str; 3] = ["dc1", "dc-1", "dc"];
const ZONES: [&str; 4] = ["Z1", "z1", "1-z1", "Z2"];
const AGENTS: [&str; 3] = ["a1", "a2", "a3"];

/// One generated event before seqs are assigned.
#[derive(Debug, Clone)]
struct Spec {
    site: usize,
    zone: usize,
    /// 0..3: sensor (thermal), 3: sensor (humidity), 4: zone event, 5: device event.
    kind: u8,
    source: u8,
    raised: bool,
    critical: bool,
    row: Option<u8>,
    agent: usize,
    /// Minutes after T0, on a coarse grid so that many events share a millisecond.
    minute: i64,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0..SITES.len(),
        0..ZONES.len(),
        0..6_u8,
        0..3_u8,
        any::<bool>(),
        prop::bool::weighted(0.15),
        prop::option::of(0..2_u8),
        0..AGENTS.len(),
        0..40_i64,
    )
        .prop_map(
            |(site, zone, kind, source, raised, critical, row, agent, minute)| Spec {
                site,
                zone,
                kind,
                source,
                raised,
                critical,
                row,
                agent,
                minute: minute * 7,
            },
        )
}

fn event(spec: &Spec, seq: u64) -> StoredEvent {
    let ts = Timestamp(T0 + spec.minute * MIN);
    let state = if spec.raised {
        EventState::Raised
    } else {
        EventState::Cleared
    };
    let severity = if spec.critical {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let location = Location {
        site: SITES[spec.site].into(),
        zone: ZONES[spec.zone].into(),
        row: spec.row.map(|r| format!("R{r}")),
        rack: None,
    };
    let payload = match spec.kind {
        0..=3 => Payload::SensorEvent(SensorEvent {
            sensor: format!("s{}", spec.source),
            kind: if spec.kind == 3 {
                SensorKind::Humidity
            } else {
                SensorKind::InletTemp
            },
            location,
            category: if spec.kind == 3 {
                Category::Humidity
            } else {
                Category::Thermal
            },
            detector: "threshold".into(),
            state,
            severity,
            value: 30.0,
            limit: Some(27.0),
            first_ts: ts,
            ts,
            expected_crossing: None,
        }),
        4 => Payload::ZoneEvent(ZoneEvent {
            site: location.site,
            zone: location.zone,
            category: Category::Thermal,
            state,
            severity,
            evidence: vec![Evidence {
                sensor: format!("s{}", spec.source),
                rack: None,
                value: 29.0,
                ts,
            }],
            ts,
        }),
        _ => Payload::DeviceEvent(DeviceEvent {
            device: format!("d{}", spec.source),
            location,
            state,
            reason: "no answer".into(),
            ts,
        }),
    };
    StoredEvent {
        agent: AGENTS[spec.agent].into(),
        seq,
        payload,
    }
}

/// Events with per-agent seqs in event-time order, as agents assign them.
fn events(specs: &[Spec]) -> Vec<StoredEvent> {
    let mut specs = specs.to_vec();
    specs.sort_by_key(|s| s.minute);
    let mut next = [0_u64; AGENTS.len()];
    specs
        .iter()
        .map(|s| {
            next[s.agent] += 1;
            event(s, next[s.agent])
        })
        .collect()
}

fn rules(scope: ProblemScope) -> (IncidentRules, ProblemRules) {
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
            ..ProblemRules::default()
        },
    )
}

/// Actions on ids the reference made (and one on an id nobody made), at times on the grid.
fn actions(reference: &Analysis, picks: &[(u8, usize, i64)]) -> Vec<OperatorAction> {
    let end = Timestamp(i64::MAX);
    let incidents: Vec<String> = reference.incidents(end).into_iter().map(|i| i.id).collect();
    let problems: Vec<String> = reference.problems().into_iter().map(|p| p.id).collect();
    picks
        .iter()
        .enumerate()
        .map(|(n, &(what, pick, minute))| {
            let incident = incidents
                .get(pick % incidents.len().max(1))
                .cloned()
                .unwrap_or_else(|| "inc-none".into());
            let problem = problems
                .get(pick % problems.len().max(1))
                .cloned()
                .unwrap_or_else(|| "prb-dc1-z9-thermal-1".into());
            let kind = match what {
                0 => ActionKind::Acknowledge { incident },
                1 => ActionKind::ResolveIncident {
                    incident,
                    reason: String::new(),
                },
                2 => ActionKind::MarkSla { incident },
                3 => ActionKind::SetProblemStatus {
                    problem,
                    status: ProblemStatus::Resolved,
                },
                4 => ActionKind::SetRootCause {
                    problem,
                    root_cause: "blocked tile".into(),
                    workaround: "open it".into(),
                },
                _ => ActionKind::Acknowledge {
                    incident: "inc-dc1-z1-thermal-12".into(),
                },
            };
            OperatorAction {
                id: n as u64 + 1,
                at: Timestamp(T0 + minute * 7 * MIN),
                actor: "op".into(),
                kind,
            }
        })
        .collect()
}

/// Everything observable: incidents at the end, problems, unmatched actions, orphan clears.
fn observed(a: &Analysis) -> (String, Vec<(u64, String)>, u64) {
    let end = Timestamp(T0 + 400 * MIN);
    let state = serde_json::to_string_pretty(&(a.incidents(end), a.problems()))
        .unwrap_or_else(|e| e.to_string());
    let unmatched = a
        .unmatched_actions()
        .iter()
        .map(|(id, e)| (*id, e.to_string()))
        .collect();
    (state, unmatched, a.orphan_clears())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn split_analysis_in_any_order_equals_one_in_order_pass(
        specs in prop::collection::vec(spec(), 1..60),
        picks in prop::collection::vec((0..6_u8, 0..50_usize, 0..40_i64), 0..8),
        scope in prop_oneof![
            Just(ProblemScope::Zone),
            Just(ProblemScope::Row),
            Just(ProblemScope::Site)
        ],
        order in any::<prop::sample::Index>(),
        seed in any::<u64>(),
    ) {
        let events = events(&specs);
        let (incident_rules, problem_rules) = rules(scope);
        let mut reference = Analysis::whole(incident_rules.clone(), problem_rules.clone());
        for e in &events {
            reference.ingest(e.clone());
        }
        let actions = actions(&reference, &picks);
        // The reference: one scope, every input in order.
        let mut inputs: Vec<(InputKey, Option<StoredEvent>, Option<OperatorAction>)> = events
            .iter()
            .map(|e| (event_input_key(&e.order_key()), Some(e.clone()), None))
            .chain(actions.iter().map(|a| (action_input_key(&a.key()), None, Some(a.clone()))))
            .collect();
        inputs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut whole = Analysis::whole(incident_rules.clone(), problem_rules.clone());
        for (_, e, a) in &inputs {
            if let Some(e) = e {
                whole.ingest(e.clone());
            }
            if let Some(a) = a {
                let _ = whole.ingest_action(a.clone());
            }
        }
        prop_assert_eq!(whole.rebuilds(), 0);
        // The split analysis: a random arrival order with some redeliveries.
        let mut arrival = inputs.clone();
        let extra = order.index(arrival.len() + 1) % 4;
        for k in 0..extra {
            arrival.push(inputs[(seed as usize + k * 7) % inputs.len()].clone());
        }
        let mut state = seed | 1;
        for i in (1..arrival.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            arrival.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut split = Analysis::new(incident_rules.clone(), problem_rules.clone());
        // The same arrival order loaded in bulk, as at startup.
        let mut bulk = Analysis::new(incident_rules.clone(), problem_rules.clone());
        bulk.begin_bulk();
        // The same arrival order with a checkpoint after `cut` inputs, then the tail in bulk.
        let cut = (seed >> 32) as usize % (arrival.len() + 1);
        let mut resumed = Analysis::new(incident_rules.clone(), problem_rules.clone());
        for (_, e, a) in &arrival[..cut] {
            if let Some(e) = e {
                resumed.ingest(e.clone());
            }
            if let Some(a) = a {
                let _ = resumed.ingest_action(a.clone());
            }
        }
        let written = serde_json::to_vec(&resumed.snapshot().expect("snapshot")).expect("encode");
        let snapshot: Snapshot = serde_json::from_slice(&written).expect("decode");
        let mut resumed = Analysis::restore(snapshot, &incident_rules, &problem_rules).expect("restore");
        resumed.begin_bulk();
        for (_, e, a) in &arrival[cut..] {
            if let Some(e) = e {
                resumed.ingest(e.clone());
            }
            if let Some(a) = a {
                let _ = resumed.ingest_action(a.clone());
            }
        }
        resumed.end_bulk();
        prop_assert_eq!(observed(&resumed), observed(&whole));
        for (_, e, a) in arrival {
            if let Some(e) = e {
                split.ingest(e.clone());
                bulk.ingest(e);
            }
            if let Some(a) = a {
                let _ = split.ingest_action(a.clone());
                let _ = bulk.ingest_action(a);
            }
        }
        bulk.end_bulk();
        prop_assert_eq!(observed(&split), observed(&whole));
        prop_assert_eq!(observed(&bulk), observed(&whole));
    }
}

#[test]
fn a_snapshot_is_refused_under_other_rules_and_while_loading_in_bulk() {
    let (incident_rules, problem_rules) = rules(ProblemScope::Zone);
    let mut a = Analysis::new(incident_rules.clone(), problem_rules.clone());
    let spec = Spec {
        site: 0,
        zone: 0,
        kind: 0,
        source: 0,
        raised: true,
        critical: false,
        row: None,
        agent: 0,
        minute: 1,
    };
    a.ingest(event(&spec, 1));
    let written = serde_json::to_vec(&a.snapshot().expect("snapshot")).expect("encode");
    let other = ProblemRules {
        min_incidents: 3,
        ..problem_rules.clone()
    };
    let read = || serde_json::from_slice::<Snapshot>(&written).expect("decode");
    assert!(matches!(
        Analysis::restore(read(), &incident_rules, &other),
        Err(SnapshotError::RulesChanged)
    ));
    let restored = Analysis::restore(read(), &incident_rules, &problem_rules).expect("restore");
    assert_eq!(observed(&restored), observed(&a));
    assert_eq!(restored.event_count(), 1);
    a.begin_bulk();
    assert!(matches!(a.snapshot(), Err(SnapshotError::InBulk)));
}

proptest! {
    /// The probable cause read through the zone index equals the scan of every event held in
    /// the window, with sites and zones whose ids collide after sanitising (the index keys by
    /// the raw site and zone strings, as the scan compares them), in any arrival order.
    #[test]
    fn indexed_cause_equals_the_scan_with_colliding_places(
        specs in prop::collection::vec(spec(), 1..60),
        seed in any::<u64>(),
    ) {
        let events = events(&specs);
        let (incident_rules, problem_rules) = rules(ProblemScope::Zone);
        let mut shuffled = events.clone();
        // A deterministic shuffle from the generated seed (late events replay their scope).
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let j = usize::try_from(state % (i as u64 + 1)).unwrap_or(0);
            shuffled.swap(i, j);
        }
        let mut a = Analysis::new(incident_rules, problem_rules);
        for e in shuffled {
            a.ingest(e);
        }
        a.check_zone_index(Timestamp(i64::MAX)).map_err(TestCaseError::fail)?;
    }
}
