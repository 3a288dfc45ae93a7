//! Entries and bytes of the store trees that grow with history, kept on every write and
//! delete, so `/api/v1/stats` and `/metrics` read them in O(1) instead of scanning the trees.
//!
//! Counted trees: [`COUNTED`] (records, their index, agent ledgers, the roll-up levels). The
//! counts live in tree [`TREE`] (tree name → [`Size`] JSON).
//!
//! Invariants:
//! - Every writer of a counted tree adds its deltas ([`add`]) right after the data's apply:
//!   a read-modify-write of the counts' keys under one process-wide lock (ingest, compaction
//!   and roll-ups are separate writers of the same trees; sums commute, so only lost updates
//!   must be prevented). After a crash between a data apply and its counts, a tree is off by
//!   that one write (not corrected automatically).
//! - A writer knows its deltas without extra reads: ingest has looked every record key up for
//!   its duplicate check, roll-ups read each bucket before merging, compaction reads what it
//!   deletes. An overwrite changes bytes, not entries.
//! - A counted tree without a persisted count (a store written before counting existed) is
//!   counted once by a scan: at start-up ([`ensure_counted`]) or, failing that, at its first
//!   write (the scan then already includes that write's data).
//! - One process per store: collectors of several partitions writing one database update the
//!   counts without a common lock and may lose each other's updates (ARCHITECTURE.md, limits).

use crate::rollup_store::TreeSize;
use coldaisle_store::{visit_from, KvStore, StoreError, WriteBatch};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::{Mutex, PoisonError};

/// The tree holding the counts.
pub const TREE: &str = "store_sizes";

/// The trees whose sizes are kept.
pub const COUNTED: [&str; 7] = [
    "records",
    "record_positions",
    "record_scopes",
    "agents",
    "rollup_1m",
    "rollup_1h",
    "rollup_1d",
];

/// Entries and bytes (keys plus values; the backend's own overhead is not counted) of a tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Size {
    /// Entries.
    pub entries: u64,
    /// Sum of key and value lengths.
    pub bytes: u64,
}

/// A change of one tree's size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delta {
    /// Entries added (negative: removed).
    pub entries: i64,
    /// Bytes added (negative: removed).
    pub bytes: i64,
}

fn signed(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Delta {
    /// `key` written with a value of `value` bytes over `old` (the previous value's length,
    /// `None` if the key was absent).
    pub fn written(key: usize, value: usize, old: Option<usize>) -> Delta {
        match old {
            Some(old) => Delta {
                entries: 0,
                bytes: signed(value) - signed(old),
            },
            None => Delta {
                entries: 1,
                bytes: signed(key) + signed(value),
            },
        }
    }

    /// An entry of `key` and `value` bytes removed.
    pub fn removed(key: usize, value: usize) -> Delta {
        Delta {
            entries: -1,
            bytes: -(signed(key) + signed(value)),
        }
    }
}

/// Deltas by tree, summed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deltas(pub BTreeMap<&'static str, Delta>);

impl Deltas {
    /// Adds `d` to `tree`'s delta.
    pub fn add(&mut self, tree: &'static str, d: Delta) {
        let sum = self.0.entry(tree).or_default();
        sum.entries += d.entries;
        sum.bytes += d.bytes;
    }

    /// Adds every delta of `other`.
    pub fn extend(&mut self, other: Deltas) {
        for (tree, d) in other.0 {
            self.add(tree, d);
        }
    }
}

/// Serialises the read-modify-write of the counts in this process (see the invariants).
static COUNTS: Mutex<()> = Mutex::new(());

/// Adds `deltas` (of data already applied) to the persisted counts: one read of the trees'
/// counts and one write. A tree without a count is counted by a scan instead.
pub fn add(kv: &dyn KvStore, deltas: &Deltas) -> Result<(), StoreError> {
    let changed: Vec<(&'static str, Delta)> = deltas
        .0
        .iter()
        .filter(|(_, d)| **d != Delta::default())
        .map(|(t, d)| (*t, *d))
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    let _lock = COUNTS.lock().unwrap_or_else(PoisonError::into_inner);
    let keys: Vec<Vec<u8>> = changed.iter().map(|(t, _)| t.as_bytes().to_vec()).collect();
    let stored = kv.get_many(TREE, &keys)?;
    let mut batch = WriteBatch::default();
    for ((tree, d), stored) in changed.into_iter().zip(stored) {
        let size = match stored.and_then(|v| serde_json::from_slice::<Size>(&v).ok()) {
            Some(mut size) => {
                size.entries = size.entries.saturating_add_signed(d.entries);
                size.bytes = size.bytes.saturating_add_signed(d.bytes);
                size
            }
            None => counted(kv, tree)?,
        };
        batch.insert(tree.as_bytes().to_vec(), encode(&size));
    }
    kv.apply(TREE, batch)
}

/// Counts, once, every counted tree that has no count yet (start-up, before ingest).
pub fn ensure_counted(kv: &dyn KvStore) -> Result<(), StoreError> {
    let _lock = COUNTS.lock().unwrap_or_else(PoisonError::into_inner);
    let mut batch = WriteBatch::default();
    for tree in COUNTED {
        if kv.get(TREE, tree.as_bytes())?.is_none() {
            batch.insert(tree.as_bytes().to_vec(), encode(&counted(kv, tree)?));
        }
    }
    if batch.is_empty() {
        return Ok(());
    }
    kv.apply(TREE, batch)
}

/// `tree` counted by a scan, logged.
fn counted(kv: &dyn KvStore, tree: &str) -> Result<Size, StoreError> {
    let size = scan(kv, tree)?;
    tracing::info!(
        tree,
        entries = size.entries,
        bytes = size.bytes,
        "store tree counted once (no count kept yet)"
    );
    Ok(size)
}

fn encode(size: &Size) -> Vec<u8> {
    serde_json::to_vec(size).unwrap_or_default()
}

fn as_list(counts: Option<&BTreeMap<String, Size>>) -> Vec<TreeSize> {
    COUNTED
        .iter()
        .map(|&tree| {
            let size = counts
                .and_then(|c| c.get(tree))
                .copied()
                .unwrap_or_default();
            TreeSize {
                tree: tree.to_string(),
                entries: size.entries,
                bytes: size.bytes,
            }
        })
        .collect()
}

/// Counts `tree` by reading it whole (the first time only, and in tests).
pub fn scan(kv: &dyn KvStore, tree: &str) -> Result<Size, StoreError> {
    let mut size = Size::default();
    visit_from(kv, tree, b"", |k, v| {
        size.entries += 1;
        size.bytes += (k.len() + v.len()) as u64;
        ControlFlow::Continue(())
    })?;
    Ok(size)
}

/// The persisted counts, read without scanning anything (O(trees)); a tree never counted
/// shows zero. What `/api/v1/stats` and `/metrics` serve.
pub fn read(kv: &dyn KvStore) -> Result<Vec<TreeSize>, StoreError> {
    let mut counts = BTreeMap::new();
    for tree in COUNTED {
        if let Some(size) = kv
            .get(TREE, tree.as_bytes())?
            .and_then(|v| serde_json::from_slice::<Size>(&v).ok())
        {
            counts.insert(tree.to_string(), size);
        }
    }
    Ok(as_list(Some(&counts)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incidents::tests::T0;
    use crate::store::CollectorStore;
    use coldaisle_core::wire::{Payload, Record, SCHEMA_VERSION};
    use coldaisle_core::{Location, ReadingSummary, SensorKind, Timestamp};
    use coldaisle_store::SledStore;
    use std::sync::Arc;

    const DAY: i64 = 86_400_000;

    fn summary_record(agent: &str, seq: u64, at: i64) -> Record {
        Record {
            schema: SCHEMA_VERSION,
            agent: agent.into(),
            site: "dc1".into(),
            seq,
            payload: Payload::ReadingSummary(ReadingSummary {
                sensor: format!("{agent}-inlet"),
                kind: SensorKind::InletTemp,
                location: Location {
                    site: "dc1".into(),
                    zone: "Z1".into(),
                    row: None,
                    rack: Some("R1".into()),
                },
                from: Timestamp(at - 60_000),
                to: Timestamp(at),
                count: 6,
                min: 20.0,
                max: 22.0,
                sum: 126.0,
                last: 21.0,
            }),
            instance: None,
        }
    }

    /// The kept counts equal a scan of every counted tree.
    fn assert_counts_match(kv: &dyn KvStore) {
        let kept = read(kv).expect("read");
        assert_eq!(kept.len(), COUNTED.len());
        for size in kept {
            let scanned = scan(kv, &size.tree).expect("scan");
            assert_eq!(
                (size.entries, size.bytes),
                (scanned.entries, scanned.bytes),
                "tree {}",
                size.tree
            );
        }
    }

    #[test]
    fn counts_stay_right_across_writes_deletes_and_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let open = || -> Arc<dyn KvStore> { Arc::new(SledStore::open(dir.path()).expect("sled")) };
        let kv = open();
        // A store written before counting existed: records and roll-ups without counts.
        let store = CollectorStore::new(kv.clone());
        for (seq, day) in (1..=40).zip(0..) {
            store
                .store_batch(
                    "a1",
                    "dc1",
                    1,
                    &[],
                    vec![summary_record("a1", seq, T0 + day * DAY)],
                )
                .expect("store");
        }
        kv.apply(TREE, {
            let mut b = WriteBatch::default();
            for tree in COUNTED {
                b.remove(tree.as_bytes().to_vec());
            }
            b
        })
        .expect("forget counts");
        assert_eq!(read(kv.as_ref()).expect("read")[0].entries, 0);
        ensure_counted(kv.as_ref()).expect("count once");
        assert_counts_match(kv.as_ref());
        // Writes: new records (and buckets), a duplicate, a second agent, merged buckets.
        let batch: Vec<Record> = (41..=60)
            .map(|seq| summary_record("a1", seq, T0 + 40 * DAY + seq as i64 * 60_000))
            .collect();
        store
            .store_batch("a1", "dc1", 1, &[], batch)
            .expect("store");
        store
            .store_batch(
                "a1",
                "dc1",
                1,
                &[],
                vec![summary_record("a1", 3, T0 + 2 * DAY)],
            )
            .expect("duplicate");
        store
            .store_batch(
                "b1",
                "dc1",
                1,
                &[],
                vec![summary_record("b1", 1, T0 + 41 * DAY)],
            )
            .expect("b1");
        assert_counts_match(kv.as_ref());
        let before = read(kv.as_ref()).expect("read");
        // Deletes: raw records past 30 days, roll-up buckets past their levels' retention.
        let deleted = store
            .delete_records_before(Timestamp(T0 + 30 * DAY), &|| false)
            .expect("delete records");
        assert_eq!(deleted.records, 30);
        let c = crate::retention::compact(
            kv.as_ref(),
            &crate::retention::RetentionPolicy::default(),
            Timestamp(T0 + 45 * DAY),
            &|| false,
        )
        .expect("compact roll-ups");
        assert!(c.removed[0] > 0, "minute buckets past 7 days removed");
        assert_counts_match(kv.as_ref());
        let after = read(kv.as_ref()).expect("read");
        assert_eq!(after[0].entries, before[0].entries - 30, "records");
        // Restart: the counts are read back, nothing is counted again.
        drop((store, kv));
        let kv = open();
        assert_eq!(read(kv.as_ref()).expect("read"), after);
        let store = CollectorStore::new(kv.clone());
        store
            .store_batch(
                "a1",
                "dc1",
                1,
                &[],
                vec![summary_record("a1", 61, T0 + 45 * DAY)],
            )
            .expect("store after restart");
        assert_counts_match(kv.as_ref());
    }
}
