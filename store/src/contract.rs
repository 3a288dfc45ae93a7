//! The contract every [`KvStore`] backend passes: the same checks run against memory, sled and
//! (in `coldaisle-store-pg`) PostgreSQL. Compiled for this crate's tests and, for other
//! backends' tests, with the `contract` feature. Each function panics on a broken invariant.
//! Both write to tree `t`: give each a fresh store.

use crate::{key_u64, u64_key, visit_from, KvStore, WriteBatch};

/// Inserts, ordered scans (big-endian keys), `last`, `len`, removal and tree separation.
pub fn exercise(store: &dyn KvStore) {
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
    let asked = [
        u64_key(300),
        u64_key(1),
        u64_key(2),
        u64_key(300),
        u64_key(9),
    ];
    let asked: Vec<Vec<u8>> = asked.iter().map(|k| k.to_vec()).collect();
    assert_eq!(
        store.get_many("t", &asked).expect("get_many"),
        vec![
            Some(b"v300".to_vec()),
            None,
            Some(b"v2".to_vec()),
            Some(b"v300".to_vec()),
            None
        ],
        "get_many answers in the order asked, repeats and misses included"
    );
    assert!(store.get_many("t", &[]).expect("get_many").is_empty());
    let (mut one, mut two) = (WriteBatch::default(), WriteBatch::default());
    one.insert(b"k1".to_vec(), b"one".to_vec());
    two.insert(b"k2".to_vec(), b"two".to_vec());
    two.remove(b"k2".to_vec());
    two.insert(b"k3".to_vec(), b"three".to_vec());
    store
        .apply_trees(vec![
            ("t1", one),
            ("t2", two),
            ("t3", WriteBatch::default()),
        ])
        .expect("apply_trees");
    store.flush().expect("flush");
    assert_eq!(store.get("t1", b"k1").expect("get"), Some(b"one".to_vec()));
    assert_eq!(store.get("t2", b"k2").expect("get"), None, "order kept");
    assert_eq!(
        store.get("t2", b"k3").expect("get"),
        Some(b"three".to_vec())
    );
    assert_eq!(store.len("t3").expect("len"), 0);
}

/// `visit_from` reads a 10 000-entry tree across chunks, in order, and stops early on `Break`.
pub fn visit_from_crosses_chunks_and_stops_early(store: &dyn KvStore) {
    let mut batch = WriteBatch::default();
    for n in 0..10_000u64 {
        batch.insert(u64_key(n).to_vec(), vec![1]);
    }
    store.apply("t", batch).expect("apply");
    let mut seen = Vec::new();
    visit_from(store, "t", &u64_key(5), |k, _| {
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
    visit_from(store, "t", b"", |_, _| {
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

/// `insert_new` writes an absent key once and never overwrites a present one.
pub fn insert_new_claims_once(store: &dyn KvStore) {
    assert!(store.insert_new("n", b"k", b"first").expect("insert_new"));
    assert!(!store.insert_new("n", b"k", b"second").expect("insert_new"));
    store.flush().expect("flush");
    assert_eq!(store.get("n", b"k").expect("get"), Some(b"first".to_vec()));
    assert_eq!(store.len("n").expect("len"), 1);
}

/// Writers appending with [`crate::insert_with_next_id`] at the same time, each through its
/// own handle in `writers` (several handles on one database, or one handle shared), never
/// lose an entry: `per_writer` ids each, all distinct, dense from 1, each holding what its
/// writer stored.
pub fn next_id_never_loses_an_entry(writers: &[&dyn KvStore], per_writer: u64) {
    let claimed: Vec<Vec<u64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = writers
            .iter()
            .enumerate()
            .map(|(w, store)| {
                scope.spawn(move || {
                    (0..per_writer)
                        .map(|n| {
                            let id = crate::insert_with_next_id(*store, "ids", |id| {
                                Ok(format!("w{w}-n{n}-id{id}").into_bytes())
                            })
                            .expect("next id");
                            store.flush().expect("flush");
                            id
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer thread"))
            .collect()
    });
    let total = per_writer * writers.len() as u64;
    let mut all: Vec<u64> = claimed.iter().flatten().copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=total).collect::<Vec<_>>(),
        "ids distinct and dense"
    );
    let reader = writers[0];
    assert_eq!(reader.len("ids").expect("len") as u64, total, "none lost");
    for (w, ids) in claimed.iter().enumerate() {
        for (n, id) in ids.iter().enumerate() {
            assert_eq!(
                reader.get("ids", &u64_key(*id)).expect("get"),
                Some(format!("w{w}-n{n}-id{id}").into_bytes()),
                "id {id} holds what its writer stored"
            );
        }
    }
}
