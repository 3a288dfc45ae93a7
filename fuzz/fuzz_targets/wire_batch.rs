//! A batch message as it arrives from the broker → `check_batch` → the collector store, twice.
//! Checks: nothing panics; a batch that passed the check is stored, and storing it again
//! finds only duplicates and leaves the ack where it was (idempotent ingest).
#![no_main]

use coldaisle_collector::ingest::{check_batch, store};
use coldaisle_collector::store::CollectorStore;
use coldaisle_core::wire::Topics;
use coldaisle_store::MemoryStore;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

/// Topics a batch may arrive on; the first input byte picks one (the others test mismatches).
const TOPICS: [&str; 3] = [
    "coldaisle/v1/dc1/a1/events",
    "coldaisle/v1/dc2/a1/events",
    "coldaisle/v1/dc1/other/events",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let topics = Topics::new(coldaisle_core::wire::DEFAULT_PREFIX);
    let topic = TOPICS[usize::from(pick) % TOPICS.len()];
    let Ok(checked) = check_batch(&topics, topic, payload) else {
        return;
    };
    let again = check_batch(&topics, topic, payload).expect("a batch checks the same twice");
    let records = checked.records.len();
    let db = CollectorStore::new(Arc::new(MemoryStore::new()));
    let first = store(&db, checked).expect("memory store never fails");
    assert!(first.new.len() <= records);
    let second = store(&db, again).expect("memory store never fails");
    assert!(second.new.is_empty(), "a resent batch stored records again");
    assert_eq!(second.ledger.acked_upto, first.ledger.acked_upto);
});
