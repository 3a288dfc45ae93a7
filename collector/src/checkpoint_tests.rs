//! Checkpoint tests: start-up from a checkpoint and its tail equals a full rebuild; a bad
//! checkpoint falls back to one; chunks of an older, larger checkpoint do not survive.

use super::*;
use crate::incidents::tests::{sensor, MIN, T0};
use crate::incidents::IncidentRules;
use crate::model::StoredEvent;
use crate::problems::ProblemRules;
use crate::state::SummaryIndex;
use coldaisle_core::wire::{Record, SCHEMA_VERSION};
use coldaisle_core::EventState::{Cleared, Raised};
use coldaisle_core::Severity::Warning;
use coldaisle_store::MemoryStore;
use std::sync::Arc;

fn empty() -> CollectorState {
    CollectorState {
        analysis: Analysis::new(IncidentRules::default(), ProblemRules::default()),
        summaries: SummaryIndex::default(),
        rollups: None,
        agents: BTreeMap::new(),
        stats: Default::default(),
        latest_event: Timestamp(0),
        notify: Default::default(),
        history: None,
    }
}

fn record(e: StoredEvent) -> Record {
    Record {
        schema: SCHEMA_VERSION,
        agent: e.agent,
        site: "dc1".into(),
        seq: e.seq,
        payload: e.payload,
        instance: None,
    }
}

/// Stores `events` of agent a1 as one batch each.
fn store_all(store: &CollectorStore, events: Vec<StoredEvent>) {
    for e in events {
        store
            .store_batch("a1", "dc1", 1, &[], vec![record(e)])
            .expect("store");
    }
}

/// Three overheats in zone Z1 (a recurring problem), seqs 1..=6.
fn overheats() -> Vec<StoredEvent> {
    (0..3_i64)
        .flat_map(|k| {
            let at = T0 + k * 90 * MIN;
            let seq = 2 * k as u64;
            [
                sensor("a1", seq + 1, "Z1", "r1-inlet", Raised, Warning, 29.0, at),
                sensor(
                    "a1",
                    seq + 2,
                    "Z1",
                    "r1-inlet",
                    Cleared,
                    Warning,
                    26.0,
                    at + 5 * MIN,
                ),
            ]
        })
        .collect()
}

/// Incidents (timelines whole: stored heads read back from the store), problems, record
/// counts and latest event time.
fn observed(state: &CollectorState) -> String {
    let counts: Vec<(&String, u64)> = state.agents.iter().map(|(a, i)| (a, i.records)).collect();
    let incidents = state
        .analysis
        .incidents_with_history(Timestamp(T0 + 1000 * MIN), state.history())
        .expect("stored timelines read back");
    serde_json::to_string(&(
        incidents,
        state.analysis.problems(),
        counts,
        state.latest_event,
    ))
    .expect("encode")
}

fn rebuilt(store: &CollectorStore) -> CollectorState {
    let mut state = empty();
    // The full scan ignores any checkpoint.
    state.analysis.begin_bulk();
    store
        .for_each_record(|r| {
            state.agents.entry(r.agent.clone()).or_default().records += 1;
            ingest::apply_record(&mut state, r);
        })
        .expect("scan");
    state.analysis.end_bulk();
    state
}

fn checkpoint(store: &CollectorStore) -> Head {
    let mut state = empty();
    let loaded = load_state(&mut state, store, Vec::new()).expect("load");
    let body = encode(&state).expect("encode");
    write(store.kv().as_ref(), loaded.position, &body).expect("write")
}

#[test]
fn start_up_from_a_checkpoint_replays_only_the_tail_and_equals_a_full_rebuild() {
    let store = CollectorStore::new(Arc::new(MemoryStore::new()));
    let mut events = overheats();
    let late = events.remove(2);
    let tail = events.split_off(3);
    store_all(&store, events);
    let head = checkpoint(&store);
    assert_eq!(head.position, 3);
    // The tail: the rest, and a raise that is late in event time.
    store_all(&store, tail);
    store_all(&store, vec![late]);
    let mut state = empty();
    let loaded = load_state(&mut state, &store, Vec::new()).expect("load");
    assert_eq!(
        loaded,
        Loaded {
            checkpoint: 3,
            position: 6,
            replayed: 3,
            undecodable: 0,
        }
    );
    let full = rebuilt(&store);
    assert_eq!(full.analysis.problems().len(), 1);
    assert_eq!(observed(&state), observed(&full));
}

#[test]
fn a_bad_checkpoint_falls_back_to_a_full_rebuild() {
    let store = CollectorStore::new(Arc::new(MemoryStore::new()));
    store_all(&store, overheats());
    let full = observed(&rebuilt(&store));
    let kv = store.kv().clone();
    type Corruption<'a> = (&'a str, Box<dyn Fn() + 'a>);
    let corruptions: Vec<Corruption<'_>> = vec![
        (
            "garbage head",
            Box::new(|| {
                let mut b = WriteBatch::default();
                b.insert(HEAD, b"{not json".to_vec());
                kv.apply(TREE, b).expect("apply");
            }),
        ),
        (
            "other version",
            Box::new(|| {
                let mut head = read_head(kv.as_ref()).expect("head").expect("some");
                head.version += 1;
                let mut b = WriteBatch::default();
                b.insert(HEAD, serde_json::to_vec(&head).expect("encode"));
                kv.apply(TREE, b).expect("apply");
            }),
        ),
        (
            "missing chunk",
            Box::new(|| {
                let mut b = WriteBatch::default();
                b.remove(chunk_key(0));
                kv.apply(TREE, b).expect("apply");
            }),
        ),
        (
            "truncated body",
            Box::new(|| {
                let mut b = WriteBatch::default();
                b.insert(chunk_key(0), b"{\"latest_event\":".to_vec());
                kv.apply(TREE, b).expect("apply");
            }),
        ),
    ];
    for (what, corrupt) in corruptions {
        checkpoint(&store);
        corrupt();
        let mut state = empty();
        let loaded = load_state(&mut state, &store, Vec::new()).expect(what);
        assert_eq!((loaded.checkpoint, loaded.replayed), (0, 6), "{what}");
        assert_eq!(observed(&state), full, "{what}");
    }
    // Under other rules the checkpoint is not used either.
    checkpoint(&store);
    let mut state = empty();
    state.analysis = Analysis::new(
        IncidentRules::default(),
        ProblemRules {
            min_incidents: 2,
            ..ProblemRules::default()
        },
    );
    let loaded = load_state(&mut state, &store, Vec::new()).expect("load");
    assert_eq!(loaded.checkpoint, 0);
}

#[test]
fn a_smaller_checkpoint_removes_the_chunks_of_a_larger_one() {
    let kv = MemoryStore::new();
    let big = vec![b'x'; 2 * CHUNK_BYTES + 10];
    let head = write(&kv, 7, &big).expect("write");
    assert_eq!((head.chunks, head.bytes), (3, big.len() as u64));
    assert_eq!(kv.len(TREE).expect("len"), 4);
    let head = write(&kv, 9, b"small").expect("write");
    assert_eq!(head.chunks, 1);
    assert_eq!(kv.len(TREE).expect("len"), 2);
    assert_eq!(
        read_head(&kv).expect("head"),
        Some(Head {
            version: FORMAT_VERSION,
            position: 9,
            chunks: 1,
            bytes: 5,
        })
    );
}

#[test]
fn a_checkpoint_is_due_after_enough_records_or_time_once_something_changed() {
    let start = Instant::now();
    let mut s = Schedule::new(100, Duration::from_secs(60), 10, start);
    assert!(!s.due(10, start + Duration::from_secs(3600)));
    assert!(!s.behind(10));
    assert!(!s.due(109, start + Duration::from_secs(59)));
    assert!(s.due(110, start));
    assert!(s.due(11, start + Duration::from_secs(60)));
    assert!(s.behind(11));
    s.written(110, start + Duration::from_secs(5));
    assert!(!s.due(110, start + Duration::from_secs(600)));
    assert!(!s.due(111, start + Duration::from_secs(64)));
}

/// An empty state whose analysis keeps one hour of event bodies and reads older ones from
/// `store`'s scope index, as the daemon's does with its day.
fn hot_empty(store: &CollectorStore) -> CollectorState {
    let mut state = empty();
    state.history = Some(crate::state::StoredHistory(Arc::new(store.clone())));
    state.analysis.set_hot_span(Some(Duration::from_secs(3600)));
    state
}

/// Twelve hourly overheats, alternating between zones Z1 and Z2, seqs 1..=24.
fn half_a_day() -> Vec<StoredEvent> {
    (0..12_i64)
        .flat_map(|h| {
            let at = T0 + h * 60 * MIN;
            let zone = if h % 2 == 0 { "Z1" } else { "Z2" };
            let seq = 2 * h as u64;
            [
                sensor("a1", seq + 1, zone, "r1-inlet", Raised, Warning, 29.0, at),
                sensor(
                    "a1",
                    seq + 2,
                    zone,
                    "r1-inlet",
                    Cleared,
                    Warning,
                    26.0,
                    at + 5 * MIN,
                ),
            ]
        })
        .collect()
}

#[test]
fn a_hot_checkpoint_holds_the_hot_span_and_its_tail_with_a_deep_late_event_equals_a_full_rebuild() {
    let store = CollectorStore::new(Arc::new(MemoryStore::new()));
    let mut events = half_a_day();
    // A raise of hour 3, delivered after hour 11: eight hours before the hot floor.
    let late = events.remove(6);
    let tail = events.split_off(16);
    let head_count = events.len();
    store_all(&store, events);
    let mut state = hot_empty(&store);
    let loaded = load_state(&mut state, &store, Vec::new()).expect("load");
    assert!(state.analysis.hot_floor().is_some());
    let held = state.analysis.event_count();
    assert!(held * 2 < head_count, "{held} of {head_count} events held");
    let body = encode(&state).expect("encode");
    write(store.kv().as_ref(), loaded.position, &body).expect("write");

    store_all(&store, tail);
    store_all(&store, vec![late]);
    let mut state = hot_empty(&store);
    let loaded = load_state(&mut state, &store, Vec::new()).expect("load");
    assert_eq!((loaded.checkpoint, loaded.replayed), (head_count as u64, 8));
    assert_eq!(state.analysis.history_errors(), 0);
    assert!(state.analysis.rebuilds() >= 1);
    let full = rebuilt(&store);
    assert_eq!(full.analysis.problems().len(), 2);
    // The comparison covers timelines read back from the store's scope index.
    let end = Timestamp(T0 + 1000 * MIN);
    assert!(state.analysis.footprint(end).stored_timeline_entries > 0);
    assert_eq!(observed(&state), observed(&full));
}
