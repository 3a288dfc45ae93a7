//! The streamed rebuild equals the bulk one (every record in `(agent, seq)` order, loaded in
//! one bulk) on a store whose agents' event times interleave, with a record out of order
//! within its agent across a chunk boundary, an operator action, and a history longer than
//! the horizon (so the streamed rebuild prunes on the way).

use super::*;
use crate::actions::{ActionKind, OperatorAction};
use crate::analysis::Analysis;
use crate::incidents::tests::{sensor, MIN, T0};
use crate::incidents::IncidentRules;
use crate::model::StoredEvent;
use crate::problems::{ProblemRules, ProblemScope};
use coldaisle_core::wire::{Payload, SCHEMA_VERSION};
use coldaisle_core::EventState::{Cleared, Raised};
use coldaisle_core::Severity::Warning;
use coldaisle_core::{Location, ReadingSummary, SensorKind};
use coldaisle_store::MemoryStore;
use std::sync::Arc;
use std::time::Duration;

/// Hours of history stored per agent (the horizon of [`rules`] is 3 h in tests).
const HOURS: i64 = 8;

fn rules() -> (IncidentRules, ProblemRules) {
    (
        IncidentRules {
            quiet_period: Duration::from_secs(10 * 60),
            sustained_after: None,
        },
        ProblemRules {
            min_incidents: 3,
            window: Duration::from_secs(2 * 3600),
            sla_severity: None,
            scope: ProblemScope::Zone,
            density_lookback: Duration::from_secs(3600),
            verification_window: Duration::from_secs(3600),
        },
    )
}

fn empty() -> CollectorState {
    let (incidents, problems) = rules();
    CollectorState {
        analysis: Analysis::new(incidents, problems),
        directory: Default::default(),
        rollups: None,
        agents: Default::default(),
        stats: Default::default(),
        latest_event: Timestamp(0),
        notify: Default::default(),
        history: None,
    }
}

fn record(agent: &str, seq: u64, payload: Payload) -> Record {
    Record {
        schema: SCHEMA_VERSION,
        agent: agent.into(),
        site: "dc1".into(),
        seq,
        payload,
        instance: None,
    }
}

fn summary(agent: &str, zone: &str, minute: i64) -> Payload {
    let from = Timestamp(T0 + minute * MIN);
    Payload::ReadingSummary(ReadingSummary {
        sensor: format!("{agent}-inlet"),
        kind: SensorKind::InletTemp,
        location: Location {
            site: "dc1".into(),
            zone: zone.into(),
            row: None,
            rack: Some("R1".into()),
        },
        from,
        to: Timestamp(from.0 + MIN),
        count: 6,
        min: 22.0,
        max: 23.0,
        sum: 135.0,
        last: 22.5,
    })
}

/// Agent `n`'s records in seq order: a summary a minute, and a raise every 40 minutes
/// (offset by the agent) cleared 5 minutes later. Agent 2 sends, last, one raise whose event
/// time falls within its first chunk's: read with its last chunk, after the merge has passed
/// that time (out of order, but within the horizon).
fn history(n: usize) -> Vec<Record> {
    let agent = format!("a{n}");
    let zone = if n % 2 == 0 { "Z2" } else { "Z1" };
    let mut payloads = Vec::new();
    for minute in 0..HOURS * 60 {
        payloads.push(summary(&agent, zone, minute));
        let phase = (minute + 7 * n as i64) % 40;
        if phase == 0 || phase == 5 {
            let (state, value) = if phase == 0 {
                (Raised, 29.0)
            } else {
                (Cleared, 26.0)
            };
            let e: StoredEvent = sensor(
                &agent,
                0,
                zone,
                &format!("{agent}-inlet"),
                state,
                Warning,
                value,
                T0 + minute * MIN,
            );
            payloads.push(e.payload);
        }
    }
    if n == 2 {
        // Half a minute after a record of the chunk before its last: when the last chunk is
        // read, the merge has passed that time (by less than the horizon).
        let before = (payloads.len() / CHUNK) * CHUNK - 8;
        let late = payloads[before].ts().0 + 30_000;
        let e = sensor(&agent, 0, zone, "a2-late", Raised, Warning, 30.0, late);
        payloads.push(e.payload);
    }
    payloads
        .into_iter()
        .enumerate()
        .map(|(i, p)| record(&agent, i as u64 + 1, p))
        .collect()
}

/// Stores each agent's whole history, agent after agent, in batches of 100.
fn store() -> CollectorStore {
    let store = CollectorStore::new(Arc::new(MemoryStore::new()));
    for n in 1..=3 {
        let agent = format!("a{n}");
        let records = history(n);
        for batch in records.chunks(100) {
            store
                .store_batch(&agent, "dc1", 1, &[], batch.to_vec())
                .expect("store");
        }
    }
    store
}

/// The bulk rebuild: every record in key order, in one bulk, then the actions.
fn bulk(store: &CollectorStore, actions: Vec<OperatorAction>) -> CollectorState {
    let mut state = empty();
    state.analysis.begin_bulk();
    store
        .for_each_record(|r| {
            state.agents.entry(r.agent.clone()).or_default().records += 1;
            crate::ingest::apply_record(&mut state, r);
        })
        .expect("scan");
    state.analysis.ingest_actions(actions);
    state.analysis.end_bulk();
    state
}

/// What the API shows of the state: the incidents that every prune keeps (not final before
/// the horizon's cutoff: which older ones are still held depends on when the floor last
/// moved, see `analysis::horizon`), problems, unmatched actions, agents' record counts, the
/// latest event time and the fleet directory.
fn observed(state: &CollectorState) -> String {
    let (incidents, problems) = rules();
    let horizon = crate::analysis::horizon::horizon(&incidents, &problems);
    let cutoff = state.latest_event.minus(horizon);
    let kept: Vec<_> = state
        .analysis
        .incidents(state.latest_event)
        .into_iter()
        .filter(|i| i.resolved_at.is_none_or(|r| r >= cutoff))
        .collect();
    let counts: Vec<(&String, u64)> = state.agents.iter().map(|(a, i)| (a, i.records)).collect();
    serde_json::to_string(&(
        kept,
        state.analysis.problems(),
        state.analysis.unmatched_actions(),
        counts,
        state.latest_event,
        state.directory.entries(),
    ))
    .expect("encode")
}

#[test]
fn streamed_rebuild_equals_the_bulk_one() {
    let store = store();
    // An acknowledgement of the last incident, a minute after it opened.
    let reference = bulk(&store, Vec::new());
    let incidents = reference.analysis.incidents(reference.latest_event);
    let last = incidents.last().expect("the fleet has incidents");
    let actions = vec![OperatorAction {
        id: 1,
        at: last.opened_at.plus(Duration::from_secs(60)),
        actor: "op".into(),
        kind: ActionKind::Acknowledge {
            incident: last.id.clone(),
        },
    }];
    let expected = bulk(&store, actions.clone());

    let mut streamed = empty();
    let rebuilt = rebuild(&mut streamed, &store, actions).expect("rebuild");

    let (got, want) = (observed(&streamed), observed(&expected));
    let at = got.bytes().zip(want.bytes()).position(|(x, y)| x != y);
    assert!(
        got == want,
        "streamed and bulk differ from byte {at:?}: {}",
        &got[at.unwrap_or(0)..(at.unwrap_or(0) + 400).min(got.len())]
    );
    let records: u64 = (1..=3).map(|n| history(n).len() as u64).sum();
    assert_eq!(rebuilt.loaded.replayed, records);
    assert_eq!(rebuilt.loaded.position, store.position().expect("position"));
    assert_eq!(rebuilt.agents, 3);
    assert_eq!(rebuilt.too_late, 0);
    assert!(
        rebuilt.out_of_order >= 1,
        "agent a2's late raise is applied after later records: {rebuilt:?}"
    );
    // Not a vacuous comparison: incidents, a problem, the action applied, and a prune on the
    // way (the history is longer than the horizon).
    assert!(expected.analysis.incidents(expected.latest_event).len() > 3);
    assert!(!expected.analysis.problems().is_empty());
    assert!(expected.analysis.unmatched_actions().is_empty());
    assert!(streamed.analysis.floor().is_some());
    assert!((streamed.analysis.event_count() as u64) < records / 10);
}

#[test]
fn an_agent_is_read_in_chunks_and_agents_in_key_order() {
    let store = store();
    assert_eq!(
        store.record_agents().expect("agents"),
        vec!["a1".to_string(), "a2".into(), "a3".into()]
    );
    let total = history(2).len();
    let mut after = 0;
    let mut seen = 0;
    let mut chunks = 0;
    loop {
        let chunk = store.agent_records("a2", after, CHUNK).expect("chunk");
        assert!(chunk.records.iter().all(|r| r.agent == "a2"));
        assert!(chunk.records.iter().all(|r| r.seq > after));
        seen += chunk.records.len();
        chunks += 1;
        match chunk.last {
            Some(last) => after = last,
            None => break,
        }
    }
    assert_eq!(seen, total);
    assert_eq!(chunks, total.div_ceil(CHUNK));
    assert!(store
        .agent_records("nobody", 0, CHUNK)
        .expect("chunk")
        .records
        .is_empty());
}
