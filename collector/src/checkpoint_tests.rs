//! Checkpoint tests: start-up from a checkpoint and its tail equals a full rebuild; a bad
//! checkpoint falls back to one; chunks of an older, larger checkpoint do not survive.

use super::*;
use crate::incidents::tests::{sensor, MIN, T0};
use crate::incidents::IncidentRules;
use crate::model::StoredEvent;
use crate::problems::ProblemRules;
use coldaisle_core::wire::{Record, SCHEMA_VERSION};
use coldaisle_core::EventState::{Cleared, Raised};
use coldaisle_core::Severity::Warning;
use coldaisle_store::MemoryStore;
use std::sync::Arc;

fn empty() -> CollectorState {
    CollectorState {
        analysis: Analysis::new(IncidentRules::default(), ProblemRules::default()),
        directory: Default::default(),
        rollups: None,
        agents: BTreeMap::new(),
        stats: Default::default(),
        latest_event: Timestamp(0),
        notify: Default::default(),
        history: None,
    }
}

/// Stores `events` of agent a1 as one batch each.
fn store_all(store: &CollectorStore, events: Vec<StoredEvent>) {
    for e in events {
        store
            .store_batch("a1", "dc1", 1, &[], vec![e.into_record("dc1")])
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
            directory: true,
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

/// A one-minute summary record of agent a1 (`seq`), sensor `sensor` in rack R1 of `zone`,
/// ending at `to`.
fn summary_record(seq: u64, zone: &str, sensor: &str, to: i64) -> Record {
    Record {
        schema: SCHEMA_VERSION,
        agent: "a1".into(),
        site: "dc1".into(),
        seq,
        payload: coldaisle_core::wire::Payload::ReadingSummary(coldaisle_core::ReadingSummary {
            sensor: sensor.into(),
            kind: coldaisle_core::SensorKind::InletTemp,
            location: coldaisle_core::Location {
                site: "dc1".into(),
                zone: zone.into(),
                row: None,
                rack: Some("R1".into()),
            },
            from: Timestamp(to - MIN),
            to: Timestamp(to),
            count: 6,
            min: 21.0,
            max: 23.0,
            sum: 132.0,
            last: 22.0,
        }),
        instance: None,
    }
}

/// The overheats (seqs 1..=6) and two summaries (7, 8) of zones Z1 and Z2.
fn events_and_summaries(store: &CollectorStore) {
    store_all(store, overheats());
    for (seq, zone, sensor) in [(7, "Z1", "r1-inlet"), (8, "Z2", "z2-inlet")] {
        store
            .store_batch(
                "a1",
                "dc1",
                1,
                &[],
                vec![summary_record(seq, zone, sensor, T0 + seq as i64 * MIN)],
            )
            .expect("store");
    }
}

/// The sensors of a state's directory.
fn sensors(state: &CollectorState) -> Vec<(String, String, String)> {
    state
        .directory
        .entries()
        .into_iter()
        .map(|e| (e.zone, e.sensor, e.last_seen.to_rfc3339()))
        .collect()
}

#[test]
fn a_checkpoint_of_format_4_or_later_carries_the_directory_and_no_summary() {
    let store = CollectorStore::new(Arc::new(MemoryStore::new()));
    events_and_summaries(&store);
    let head = checkpoint(&store);
    assert_eq!(head.version, FORMAT_VERSION);
    let (_, body) = read(store.kv().as_ref()).expect("read").expect("some");
    assert_eq!(body.directory.as_ref().map(Vec::len), Some(2));
    let raw = store
        .kv()
        .get(TREE, &chunk_key(0))
        .expect("get")
        .expect("chunk");
    let json: serde_json::Value = serde_json::from_slice(&raw).expect("json");
    assert!(json.get("summaries").is_none(), "{json}");

    let mut state = empty();
    let loaded = load_state(&mut state, &store, Vec::new()).expect("load");
    assert!(loaded.directory, "the directory came from the checkpoint");
    assert_eq!((loaded.checkpoint, loaded.replayed), (8, 0));
    assert_eq!(sensors(&state), sensors(&rebuilt(&store)));
    assert_eq!(state.directory.rack_count("dc1", "Z2"), 1);
}

/// A version 3 checkpoint (reading summaries in the body, no directory), as the collector
/// before this format wrote it: start-up uses it (no rebuild), skips its summaries, and
/// completes the directory from the day roll-ups, so the zones of summaries stored before it
/// are still known.
#[test]
fn a_restart_from_a_version_3_checkpoint_loads() {
    let store = CollectorStore::new(Arc::new(MemoryStore::new()));
    events_and_summaries(&store);
    let mut state = empty();
    let loaded = load_state(&mut state, &store, Vec::new()).expect("load");
    let mut body: serde_json::Value =
        serde_json::from_slice(&encode(&state).expect("encode")).expect("json");
    let fields = body.as_object_mut().expect("an object");
    fields.remove("directory");
    let summaries: Vec<serde_json::Value> = (7..=8)
        .map(|seq| {
            let zone = if seq == 7 { "Z1" } else { "Z2" };
            match summary_record(seq, zone, "x", T0).payload {
                coldaisle_core::wire::Payload::ReadingSummary(s) => {
                    serde_json::to_value(s).expect("encode")
                }
                _ => serde_json::Value::Null,
            }
        })
        .collect();
    fields.insert("summaries".into(), serde_json::Value::Array(summaries));
    let bytes = serde_json::to_vec(&body).expect("encode");
    let mut batch = WriteBatch::default();
    batch.insert(chunk_key(0), bytes.clone());
    let head = Head {
        version: 3,
        position: loaded.position,
        chunks: 1,
        bytes: bytes.len() as u64,
    };
    batch.insert(HEAD, serde_json::to_vec(&head).expect("encode"));
    store.kv().apply(TREE, batch).expect("apply");
    // A tail: a summary of a third zone.
    store
        .store_batch(
            "a1",
            "dc1",
            1,
            &[],
            vec![summary_record(9, "Z3", "z3-inlet", T0 + 9 * MIN)],
        )
        .expect("store");

    let mut state = empty();
    let report = crate::start_up::load(
        &mut state,
        &store,
        Vec::new(),
        false,
        std::time::Instant::now(),
    )
    .expect("start-up");
    assert_eq!(report.mode, crate::start_up::StartMode::Checkpoint);
    assert_eq!((report.checkpoint, report.records), (8, 1));
    let full = rebuilt(&store);
    assert_eq!(observed(&state), observed(&full));
    // The summaries' sensors: those before the checkpoint from the roll-ups, the tail's from
    // its record; the version 3 body's own summaries (sensor "x") are skipped.
    assert_eq!(sensors(&state), sensors(&full));
    assert_eq!(
        state.directory.zones().collect::<Vec<_>>(),
        vec![("dc1", "Z1"), ("dc1", "Z2"), ("dc1", "Z3")]
    );
}
