use super::*;
use coldaisle_core::{DeviceEvent, EventState, Location, ReadingSummary, SensorKind, Timestamp};
use coldaisle_store::{MemoryStore, SledStore};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// The location of every test record (shared with `fault_tests`).
pub(super) fn location() -> Location {
    Location {
        site: "s1".into(),
        zone: "Z1".into(),
        row: None,
        rack: None,
    }
}

fn event(n: i64) -> Payload {
    Payload::DeviceEvent(DeviceEvent {
        device: format!("dev{n}"),
        location: location(),
        state: EventState::Raised,
        reason: String::new(),
        ts: Timestamp(n),
    })
}

/// A reading summary stamped `n` (shared with `fault_tests`).
pub(super) fn summary(n: i64) -> Payload {
    Payload::ReadingSummary(ReadingSummary {
        sensor: format!("s{n}"),
        kind: SensorKind::InletTemp,
        location: location(),
        from: Timestamp(n),
        to: Timestamp(n),
        count: 1,
        min: 20.0,
        max: 20.0,
        sum: 20.0,
        last: 20.0,
    })
}

fn seqs(records: &[Record]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

fn all_pending(outbox: &mut Outbox) -> Vec<u64> {
    seqs(
        &outbox
            .pending_after(0, usize::MAX, usize::MAX)
            .expect("pending"),
    )
}

#[test]
fn append_pending_ack() {
    let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let mut outbox = Outbox::open(store, "a1", "s1").expect("open");
    assert_eq!(
        outbox.append((1..=5).map(event).collect()).expect("append"),
        1..6
    );
    assert_eq!(all_pending(&mut outbox), vec![1, 2, 3, 4, 5]);
    assert_eq!(
        seqs(&outbox.pending_after(3, 100, 1 << 20).expect("pending")),
        vec![4, 5]
    );
    assert_eq!(
        seqs(&outbox.pending_after(0, 2, 1 << 20).expect("pending")),
        vec![1, 2]
    );
    assert_eq!(
        seqs(&outbox.pending_after(0, 100, 1).expect("pending")),
        vec![1],
        "at least one"
    );
    assert_eq!(outbox.ack(3).expect("ack"), 3);
    assert_eq!(outbox.ack(2).expect("stale ack"), 0);
    assert_eq!(
        outbox.ack(99).expect("ack beyond"),
        2,
        "clamped to what exists"
    );
    assert_eq!(outbox.acked(), 5);
    assert_eq!(outbox.pending_count(), 0);
    assert_eq!(outbox.bytes(), 0);
}

#[test]
fn seqs_survive_restart_and_are_never_reused() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store: Arc<dyn KvStore> = Arc::new(SledStore::open(dir.path()).expect("open"));
        let mut outbox = Outbox::open(store, "a1", "s1").expect("open");
        outbox.append((1..=3).map(event).collect()).expect("append");
        outbox.ack(3).expect("ack all");
    }
    let store: Arc<dyn KvStore> = Arc::new(SledStore::open(dir.path()).expect("reopen"));
    let mut outbox = Outbox::open(store, "a1", "s1").expect("open");
    assert_eq!(
        outbox.next_seq(),
        4,
        "an empty outbox still continues after the last seq"
    );
    assert_eq!(outbox.append(vec![event(9)]).expect("append"), 4..5);
    let pending = outbox.pending_after(0, 10, 1 << 20).expect("pending");
    assert_eq!(seqs(&pending), vec![4]);
    assert_eq!(pending[0].agent, "a1");
}

#[test]
fn unacked_records_survive_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes;
    {
        let store: Arc<dyn KvStore> = Arc::new(SledStore::open(dir.path()).expect("open"));
        let mut outbox = Outbox::open(store, "a1", "s1").expect("open");
        outbox.append((1..=4).map(event).collect()).expect("append");
        outbox.ack(1).expect("ack one");
        bytes = outbox.bytes();
    }
    let store: Arc<dyn KvStore> = Arc::new(SledStore::open(dir.path()).expect("reopen"));
    let mut outbox = Outbox::open(store, "a1", "s1").expect("open");
    assert_eq!(outbox.acked(), 1);
    assert_eq!(outbox.bytes(), bytes, "byte count recovered");
    assert_eq!(all_pending(&mut outbox), vec![2, 3, 4]);
}

#[test]
fn quota_drops_oldest_summaries_first_then_oldest_events() {
    let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let one = encode_value(&Record {
        schema: SCHEMA_VERSION,
        agent: "a1".into(),
        site: "s1".into(),
        seq: 1,
        payload: summary(1),
        instance: Some("0123456789abcdef0123456789abcdef".into()),
    })
    .expect("encode")
    .len() as u64;
    // Room for about six summaries.
    let mut outbox = Outbox::open(store, "a1", "s1")
        .expect("open")
        .with_quota(one * 6);
    outbox
        .append(vec![event(1), summary(2), event(3), summary(4), summary(5)])
        .expect("append");
    assert_eq!(outbox.stats(), OutboxStats::default());
    outbox
        .append(vec![summary(6), summary(7)])
        .expect("append over quota");
    let stats = outbox.stats();
    assert!(
        stats.dropped_summaries >= 1 && stats.dropped_events == 0,
        "{stats:?}"
    );
    let pending = all_pending(&mut outbox);
    assert!(
        !pending.contains(&2),
        "the oldest summary goes first: {pending:?}"
    );
    assert!(
        pending.contains(&1) && pending.contains(&3),
        "events stay: {pending:?}"
    );
    assert!(outbox.bytes() <= one * 6 + one, "{} bytes", outbox.bytes());
    assert!(outbox.dropped().iter().any(|r| r.contains(2)));
    // Only events left to drop: the oldest event goes.
    let mut outbox = outbox.with_quota(one);
    outbox.append(vec![event(8)]).expect("append");
    assert!(outbox.stats().dropped_events >= 1);
    assert!(!all_pending(&mut outbox).contains(&1));
    // Dropped seqs are forgotten once an ack passes them.
    let last = outbox.next_seq() - 1;
    outbox.ack(last).expect("ack");
    assert!(outbox.dropped().is_empty());
}

#[test]
fn corrupt_record_is_removed_counted_and_reported() {
    let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let mut outbox = Outbox::open(store.clone(), "a1", "s1").expect("open");
    outbox.append((1..=3).map(event).collect()).expect("append");
    let key = record_key(2);
    let mut value = store.get(TREE, &key).expect("get").expect("present");
    let last = value.len() - 2;
    value[last] ^= 0x55; // flip bits inside the JSON: the checksum no longer matches
    let mut batch = WriteBatch::default();
    batch.insert(key, value);
    store.apply(TREE, batch).expect("corrupt it");
    assert_eq!(all_pending(&mut outbox), vec![1, 3]);
    assert_eq!(outbox.stats().corrupt, 1);
    assert_eq!(outbox.dropped(), &[SeqRange { from: 2, to: 2 }]);
    assert_eq!(
        all_pending(&mut outbox),
        vec![1, 3],
        "reported once, then gone"
    );
}

#[test]
fn dropped_ranges_merge() {
    let mut ranges = Vec::new();
    for seq in [5, 3, 4, 9, 7, 8] {
        add_dropped(&mut ranges, seq);
    }
    assert_eq!(
        ranges,
        vec![SeqRange { from: 3, to: 5 }, SeqRange { from: 7, to: 9 }]
    );
}

/// Operations of the model-based test.
#[derive(Debug, Clone)]
enum Op {
    Append { events: u8, summaries: u8 },
    Ack(u8),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4, 0u8..4).prop_map(|(events, summaries)| Op::Append { events, summaries }),
        2 => (0u8..12).prop_map(Op::Ack),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Drives the real outbox (on a store that survives "restarts") and a plain in-memory model
    /// with the same random operations and compares what each would send. Without a quota the
    /// two must agree exactly; seqs are never reused and every seq is either held, acked or
    /// reported dropped.
    #[test]
    fn outbox_matches_model(ops in proptest::collection::vec(op(), 1..40), quota in prop_oneof![Just(u64::MAX), 400u64..3000]) {
        let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
        let mut outbox = Outbox::open(store.clone(), "a1", "s1").expect("open").with_quota(quota);
        let mut model: BTreeMap<u64, bool> = BTreeMap::new(); // seq -> is_summary
        let mut model_next = 1u64;
        let mut model_acked = 0u64;
        let mut n = 0i64;
        for op in ops {
            match op {
                Op::Append { events, summaries } => {
                    let mut payloads = Vec::new();
                    for _ in 0..events { n += 1; payloads.push(event(n)); }
                    for _ in 0..summaries { n += 1; payloads.push(summary(n)); }
                    let kinds: Vec<bool> = payloads.iter().map(Payload::is_summary).collect();
                    let range = outbox.append(payloads).expect("append");
                    prop_assert_eq!(range.start, model_next);
                    for (seq, is_summary) in range.clone().zip(kinds) {
                        model.insert(seq, is_summary);
                    }
                    model_next = range.end;
                }
                Op::Ack(k) => {
                    let upto = model_acked + u64::from(k);
                    outbox.ack(upto).expect("ack");
                    let upto = upto.min(model_next - 1);
                    if upto > model_acked {
                        model_acked = upto;
                        model.retain(|&s, _| s > upto);
                    }
                }
                Op::Reopen => {
                    outbox = Outbox::open(store.clone(), "a1", "s1").expect("reopen").with_quota(quota);
                }
            }
            prop_assert_eq!(outbox.next_seq(), model_next);
            prop_assert_eq!(outbox.acked(), model_acked);
            let held = all_pending(&mut outbox);
            let dropped: Vec<u64> = outbox.dropped().iter().flat_map(|r| r.from..=r.to).collect();
            if quota == u64::MAX {
                prop_assert_eq!(&held, &model.keys().copied().collect::<Vec<_>>());
                prop_assert!(dropped.is_empty());
            } else {
                // Every unacked seq is held or reported dropped, never both, never neither.
                let mut accounted: Vec<u64> = held.iter().chain(dropped.iter()).copied().collect();
                accounted.sort_unstable();
                prop_assert_eq!(accounted, model.keys().copied().collect::<Vec<_>>());
                // A held summary never outlives a dropped event older than it... i.e. events
                // are dropped only once no summary is left below the newest dropped event.
                if let Some(&newest_dropped_event) = dropped.iter().filter(|s| !model[s]).max() {
                    prop_assert!(held.iter().all(|s| !model[s] || *s > newest_dropped_event));
                }
            }
        }
    }
}
