//! Sequential ids shared by several writers: the next id is one above the greatest key of the
//! tree, claimed with [`KvStore::insert_new`] and retried when another writer claimed it
//! first. Ids stay small, dense and in creation order (what an operator reads and types:
//! "silence 12"), and ids already stored stay valid: the scheme reads them, it does not
//! replace them.

use crate::{key_u64, u64_key, KvStore, StoreError};

/// Claims attempts before giving up: each lost race means another writer stored an entry,
/// so running out needs this many entries written by others during one call.
pub const NEXT_ID_ATTEMPTS: usize = 64;

/// Stores `encode(id)` under the big-endian key of the next free id of `tree` and returns
/// the id. Keys of `tree` must all be [`u64_key`]s (others count as absent). Not flushed:
/// the caller flushes before confirming the entry to anyone.
pub fn insert_with_next_id(
    kv: &dyn KvStore,
    tree: &str,
    mut encode: impl FnMut(u64) -> Result<Vec<u8>, StoreError>,
) -> Result<u64, StoreError> {
    for _ in 0..NEXT_ID_ATTEMPTS {
        let last = kv.last(tree)?.and_then(|(k, _)| key_u64(&k)).unwrap_or(0);
        let id = last.checked_add(1).ok_or_else(|| StoreError {
            operation: "next_id",
            tree: tree.to_string(),
            message: "ids exhausted".into(),
        })?;
        if kv.insert_new(tree, &u64_key(id), &encode(id)?)? {
            return Ok(id);
        }
    }
    Err(StoreError {
        operation: "next_id",
        tree: tree.to_string(),
        message: format!(
            "no free id after {NEXT_ID_ATTEMPTS} attempts (too many concurrent writers)"
        ),
    })
}
