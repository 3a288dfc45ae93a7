use super::*;
use crate::contract::{self, exercise};

#[test]
fn memory_store_contract() {
    exercise(&MemoryStore::new());
    contract::insert_new_claims_once(&MemoryStore::new());
    let shared = MemoryStore::new();
    contract::next_id_never_loses_an_entry(&[&shared, &shared, &shared], 40);
}

#[test]
fn sled_store_contract_and_reopen() {
    let dir = tempdir();
    {
        let store = SledStore::open(&dir).expect("open");
        exercise(&store);
        contract::insert_new_claims_once(&store);
        let clone = store.clone();
        contract::next_id_never_loses_an_entry(&[&store, &clone], 40);
    }
    let reopened = SledStore::open(&dir).expect("reopen");
    assert_eq!(
        reopened.len("t").expect("len"),
        3,
        "flushed data survives a reopen"
    );
    std::fs::remove_dir_all(&dir).ok();
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "coldaisle-store-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn visit_from_crosses_chunks_and_stops_early() {
    contract::visit_from_crosses_chunks_and_stops_early(&MemoryStore::new());
}

#[test]
fn sled_reopens_right_after_the_last_handle_is_dropped() {
    // sled's background writers and its crossbeam-epoch garbage hold the file lock a moment
    // after the last handle is dropped; `open` must recognise sled's "lock held" error (an
    // `Other` I/O error, not `WouldBlock`) and wait for it, or an in-process restart fails.
    let dir = tempdir();
    for round in 0..50u64 {
        let store = SledStore::open(&dir)
            .unwrap_or_else(|e| panic!("round {round}: reopen right after the close: {e}"));
        let mut batch = WriteBatch::default();
        batch.insert(u64_key(round).to_vec(), b"x".to_vec());
        store.apply("t", batch).expect("apply");
        store.flush().expect("flush");
        drop(store);
    }
    let store = SledStore::open(&dir).expect("final open");
    assert_eq!(store.len("t").expect("len"), 50);
    drop(store);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn sled_open_names_a_lock_held_by_a_live_handle() {
    let dir = tempdir();
    let held = SledStore::open(&dir).expect("open");
    let err = SledStore::open_waiting(&dir, std::time::Duration::from_millis(50))
        .expect_err("a live handle keeps the lock");
    assert!(
        err.to_string().contains("another process"),
        "actionable message: {err}"
    );
    drop(held);
    std::fs::remove_dir_all(&dir).ok();
}
