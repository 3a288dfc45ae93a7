//! Storage behind one small trait, so the agent's outbox and the collector's store do not depend
//! on an engine. The default backend is sled (embedded, no server); [`MemoryStore`] serves tests,
//! [`FaultyStore`] wraps a store to inject write failures.
//!
//! Invariants every backend keeps:
//! - `apply` is atomic: all of a [`WriteBatch`] is visible, or none of it.
//! - Data is durable only after `flush` returns `Ok`. Callers flush before they acknowledge
//!   anything to anyone (the collector before it acks, the agent before it counts a record as
//!   stored).
//! - Keys are ordered bytewise; callers encode numbers big-endian so order matches.

mod faulty;
mod memory;
mod next_id;
mod sled_store;

use std::ops::ControlFlow;

pub use faulty::{FaultyStore, FAIL_ALWAYS};
pub use memory::MemoryStore;
pub use next_id::{insert_with_next_id, NEXT_ID_ATTEMPTS};
pub use sled_store::{SledSettings, SledStore, LOCK_WAIT};

/// A storage failure, with the operation and tree that failed.
#[derive(Debug, thiserror::Error)]
#[error("store: {operation} on tree `{tree}` failed: {message}")]
pub struct StoreError {
    /// What was attempted (get, apply, scan, flush, open).
    pub operation: &'static str,
    /// The tree concerned (empty for whole-store operations).
    pub tree: String,
    /// The backend's message.
    pub message: String,
}

/// A key/value pair.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Writes applied atomically to one tree.
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    /// `(key, Some(value))` inserts, `(key, None)` removes.
    pub ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl WriteBatch {
    /// Adds an insert.
    pub fn insert(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push((key.into(), Some(value.into())));
    }

    /// Adds a removal.
    pub fn remove(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.push((key.into(), None));
    }

    /// True if the batch does nothing.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// An ordered key/value store made of named trees.
pub trait KvStore: Send + Sync {
    /// The value of `key` in `tree`.
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Applies a batch to `tree` atomically (not yet durable: see [`KvStore::flush`]).
    fn apply(&self, tree: &str, batch: WriteBatch) -> Result<(), StoreError>;
    /// Up to `limit` entries of `tree` with key ≥ `from`, in key order.
    fn scan(&self, tree: &str, from: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError>;
    /// The entry with the greatest key in `tree`.
    fn last(&self, tree: &str) -> Result<Option<Entry>, StoreError>;
    /// The number of entries in `tree`.
    fn len(&self, tree: &str) -> Result<usize, StoreError>;
    /// Makes every applied batch durable.
    fn flush(&self) -> Result<(), StoreError>;
    /// Applies batches to several trees. The default applies them one after the other, each
    /// atomic; a backend with a commit per call (PostgreSQL) applies all in one transaction.
    /// Callers must be correct either way (a crash between two trees' batches).
    fn apply_trees(&self, batches: Vec<(&str, WriteBatch)>) -> Result<(), StoreError> {
        for (tree, batch) in batches {
            if !batch.is_empty() {
                self.apply(tree, batch)?;
            }
        }
        Ok(())
    }
    /// The values of `keys` in `tree`, in the order of `keys`. The default asks one key at a
    /// time; a backend with a round trip per call (PostgreSQL) answers in one.
    fn get_many(&self, tree: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        keys.iter().map(|key| self.get(tree, key)).collect()
    }
    /// Stores `value` under `key` only if `key` is absent; `Ok(false)` (nothing written) if it
    /// is present. Atomic against every writer of the store, including other processes on a
    /// shared database: two callers racing for one key never both get `Ok(true)`. Durable
    /// once [`KvStore::flush`] returns, like `apply`.
    ///
    /// The default (get, then apply) is atomic only for a store with a single writer that
    /// serialises its callers; every backend here overrides it.
    fn insert_new(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<bool, StoreError> {
        if self.get(tree, key)?.is_some() {
            return Ok(false);
        }
        let mut batch = WriteBatch::default();
        batch.insert(key, value);
        self.apply(tree, batch)?;
        Ok(true)
    }
}

/// Most entries read per `scan` call by [`visit_from`].
const VISIT_CHUNK: usize = 4096;
/// Entries of [`visit_from`]'s first `scan` call; each next call reads twice as many, up to
/// [`VISIT_CHUNK`].
const FIRST_CHUNK: usize = 16;

/// Visits the entries of `tree` with key ≥ `from`, in key order, reading them in chunks so a
/// large tree is never loaded whole. Stops early when `visit` returns [`ControlFlow::Break`].
/// Chunks start small and double ([`FIRST_CHUNK`] to [`VISIT_CHUNK`]), so a visit that stops
/// after a few entries copies few more than it visits: every entry of a chunk is copied, and
/// values can be large (a zone's roll-up value holds ~48 kB for 500 sensors, so one chunk
/// of 4,096 of them was ~200 MB copied for a read of 31).
pub fn visit_from(
    store: &dyn KvStore,
    tree: &str,
    from: &[u8],
    mut visit: impl FnMut(&[u8], &[u8]) -> ControlFlow<()>,
) -> Result<(), StoreError> {
    let mut from = from.to_vec();
    let mut size = FIRST_CHUNK;
    loop {
        let chunk = store.scan(tree, &from, size)?;
        size = (size * 2).min(VISIT_CHUNK);
        let Some((last, _)) = chunk.last() else {
            return Ok(());
        };
        // The smallest key after `last`.
        from = last.clone();
        from.push(0);
        for (key, value) in &chunk {
            if visit(key, value).is_break() {
                return Ok(());
            }
        }
    }
}

/// Encodes a u64 so that byte order equals numeric order.
pub fn u64_key(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// Decodes a key written by [`u64_key`]; `None` if it is not 8 bytes.
pub fn key_u64(key: &[u8]) -> Option<u64> {
    key.try_into().ok().map(u64::from_be_bytes)
}

#[cfg(any(test, feature = "contract"))]
pub mod contract;
#[cfg(test)]
mod tests;
