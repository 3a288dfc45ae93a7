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

/// A store that counts the entries its `scan` calls return.
struct CountingScans {
    inner: MemoryStore,
    scanned: std::sync::atomic::AtomicUsize,
}

impl KvStore for CountingScans {
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(tree, key)
    }
    fn apply(&self, tree: &str, batch: WriteBatch) -> Result<(), StoreError> {
        self.inner.apply(tree, batch)
    }
    fn scan(&self, tree: &str, from: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError> {
        let out = self.inner.scan(tree, from, limit)?;
        self.scanned
            .fetch_add(out.len(), std::sync::atomic::Ordering::SeqCst);
        Ok(out)
    }
    fn last(&self, tree: &str) -> Result<Option<Entry>, StoreError> {
        self.inner.last(tree)
    }
    fn len(&self, tree: &str) -> Result<usize, StoreError> {
        self.inner.len(tree)
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
}

#[test]
fn a_visit_that_stops_early_copies_few_entries_past_it() {
    let store = CountingScans {
        inner: MemoryStore::new(),
        scanned: Default::default(),
    };
    let mut batch = WriteBatch::default();
    for n in 0..10_000u64 {
        batch.insert(u64_key(n).to_vec(), vec![0u8; 8]);
    }
    store.apply("t", batch).expect("apply");
    let scanned = || store.scanned.load(std::sync::atomic::Ordering::SeqCst);
    // Three entries visited: one first chunk read.
    let mut seen = 0;
    visit_from(&store, "t", &u64_key(100), |_, _| {
        seen += 1;
        if seen == 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .expect("visit");
    assert_eq!((seen, scanned()), (3, FIRST_CHUNK));
    // Forty entries: chunks of 16 and 32, fewer than twice what was visited.
    let before = scanned();
    seen = 0;
    visit_from(&store, "t", &u64_key(100), |_, _| {
        seen += 1;
        if seen == 40 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .expect("visit");
    assert_eq!(scanned() - before, FIRST_CHUNK + 2 * FIRST_CHUNK);
    // A whole visit reads every entry once.
    let before = scanned();
    visit_from(&store, "t", b"", |_, _| ControlFlow::Continue(())).expect("visit");
    assert_eq!(scanned() - before, 10_000);
}

#[test]
fn sled_open_with_sets_the_segment_of_a_new_database_and_keeps_an_old_ones() {
    let small = SledSettings {
        cache_bytes: 1024 * 1024,
        segment_bytes: Some(64 * 1024),
    };
    let conf = |dir: &std::path::Path| std::fs::read(dir.join("conf")).expect("sled's conf");
    let says = |bytes: &[u8], text: &str| String::from_utf8_lossy(bytes).contains(text);

    // A new database gets the setting, and reopens with it.
    let fresh = tempdir();
    {
        let store = SledStore::open_with(&fresh, &small).expect("open new");
        exercise(&store);
    }
    assert!(says(&conf(&fresh), "segment_size: 65536"));
    let reopened = SledStore::open_with(&fresh, &small).expect("reopen");
    assert_eq!(reopened.len("t").expect("len"), 3);
    drop(reopened);

    // One created with sled's default (an outbox before the setting) opens with its own.
    let old = tempdir();
    {
        let store = SledStore::open(&old).expect("open with defaults");
        exercise(&store);
    }
    let upgraded = SledStore::open_with(&old, &small).expect("open an old database");
    assert_eq!(upgraded.len("t").expect("len"), 3, "its data is kept");
    assert!(says(&conf(&old), "segment_size: 524288"));
    drop(upgraded);

    // A size sled does not accept is an error, not a panic.
    let odd = tempdir();
    let err = SledStore::open_with(
        &odd,
        &SledSettings {
            cache_bytes: 1024 * 1024,
            segment_bytes: Some(100_000),
        },
    )
    .expect_err("not a power of two");
    assert!(err.message.contains("power of 2"), "{}", err.message);
    for dir in [fresh, old, odd] {
        std::fs::remove_dir_all(&dir).ok();
    }
}
