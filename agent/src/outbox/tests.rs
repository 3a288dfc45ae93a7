use super::*;
use coldaisle_core::{DeviceEvent, EventState, Location, Timestamp};
use coldaisle_store::{MemoryStore, SledStore};

fn payload(n: i64) -> Payload {
    Payload::DeviceEvent(DeviceEvent {
        device: format!("dev{n}"),
        location: Location {
            site: "s1".into(),
            zone: "Z1".into(),
            row: None,
            rack: None,
        },
        state: EventState::Raised,
        reason: String::new(),
        ts: Timestamp(n),
    })
}

fn seqs(records: &[Record]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

#[test]
fn append_pending_ack() {
    let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let mut outbox = Outbox::open(store, "a1", "s1").expect("open");
    assert_eq!(
        outbox
            .append((1..=5).map(payload).collect())
            .expect("append"),
        1..6
    );
    assert_eq!(
        seqs(&outbox.pending_after(0, 100, 1 << 20).expect("pending")),
        vec![1, 2, 3, 4, 5]
    );
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
}

#[test]
fn seqs_survive_restart_and_are_never_reused() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store: Arc<dyn KvStore> = Arc::new(SledStore::open(dir.path()).expect("open"));
        let mut outbox = Outbox::open(store, "a1", "s1").expect("open");
        outbox
            .append((1..=3).map(payload).collect())
            .expect("append");
        outbox.ack(3).expect("ack all");
    }
    let store: Arc<dyn KvStore> = Arc::new(SledStore::open(dir.path()).expect("reopen"));
    let mut outbox = Outbox::open(store, "a1", "s1").expect("open");
    assert_eq!(
        outbox.next_seq(),
        4,
        "an empty outbox still continues after the last seq"
    );
    assert_eq!(outbox.append(vec![payload(9)]).expect("append"), 4..5);
    let pending = outbox.pending_after(0, 10, 1 << 20).expect("pending");
    assert_eq!(seqs(&pending), vec![4]);
    assert_eq!(pending[0].agent, "a1");
}

#[test]
fn unacked_records_survive_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store: Arc<dyn KvStore> = Arc::new(SledStore::open(dir.path()).expect("open"));
        let mut outbox = Outbox::open(store, "a1", "s1").expect("open");
        outbox
            .append((1..=4).map(payload).collect())
            .expect("append");
        outbox.ack(1).expect("ack one");
    }
    let store: Arc<dyn KvStore> = Arc::new(SledStore::open(dir.path()).expect("reopen"));
    let outbox = Outbox::open(store, "a1", "s1").expect("open");
    assert_eq!(outbox.acked(), 1);
    assert_eq!(
        seqs(&outbox.pending_after(0, 10, 1 << 20).expect("pending")),
        vec![2, 3, 4]
    );
}
