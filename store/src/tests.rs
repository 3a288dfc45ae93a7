use super::*;

fn exercise(store: &dyn KvStore) {
    let mut batch = WriteBatch::default();
    for n in [3u64, 1, 2, 300] {
        batch.insert(u64_key(n).to_vec(), format!("v{n}").into_bytes());
    }
    store.apply("t", batch).expect("apply");
    store.flush().expect("flush");
    assert_eq!(store.len("t").expect("len"), 4);
    let keys: Vec<u64> = store
        .scan("t", &u64_key(2), 10)
        .expect("scan")
        .iter()
        .filter_map(|(k, _)| key_u64(k))
        .collect();
    assert_eq!(keys, vec![2, 3, 300], "numeric order via big-endian keys");
    let (last, value) = store.last("t").expect("last").expect("non-empty");
    assert_eq!((key_u64(&last), value), (Some(300), b"v300".to_vec()));
    let mut removal = WriteBatch::default();
    removal.remove(u64_key(1).to_vec());
    store.apply("t", removal).expect("remove");
    assert_eq!(store.get("t", &u64_key(1)).expect("get"), None);
    assert_eq!(
        store.get("other", &u64_key(2)).expect("get"),
        None,
        "trees are separate"
    );
}

#[test]
fn memory_store_contract() {
    exercise(&MemoryStore::new());
}

#[test]
fn sled_store_contract_and_reopen() {
    let dir = tempdir();
    {
        let store = SledStore::open(&dir).expect("open");
        exercise(&store);
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
    let store = MemoryStore::new();
    let mut batch = WriteBatch::default();
    for n in 0..10_000u64 {
        batch.insert(u64_key(n).to_vec(), vec![1]);
    }
    store.apply("t", batch).expect("apply");
    let mut seen = Vec::new();
    visit_from(&store, "t", &u64_key(5), |k, _| {
        seen.extend(key_u64(k));
        std::ops::ControlFlow::Continue(())
    })
    .expect("visit");
    assert_eq!(
        seen.len(),
        9_995,
        "every entry from the start key, across chunks"
    );
    assert!(
        seen.windows(2).all(|w| w[0] + 1 == w[1]),
        "in key order, none twice"
    );
    let mut count = 0;
    visit_from(&store, "t", b"", |_, _| {
        count += 1;
        if count == 5000 {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    })
    .expect("visit");
    assert_eq!(count, 5000);
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
