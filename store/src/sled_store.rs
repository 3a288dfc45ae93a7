//! The sled backend (sled 0.34, beta): every tree is a sled tree; `flush` calls sled's
//! `flush`, which fsyncs, so data is durable when it returns.

use crate::{Entry, KvStore, StoreError, WriteBatch};
use std::path::Path;

/// How long [`SledStore::open`] waits for a lock still held by a closing handle. Generous:
/// on a loaded 2-core machine (a cold CI build next to the tests) 2 s was once not enough.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A sled database directory.
#[derive(Debug, Clone)]
pub struct SledStore {
    db: sled::Db,
}

fn error(operation: &'static str, tree: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError {
        operation,
        tree: tree.to_string(),
        message: e.to_string(),
    }
}

impl SledStore {
    /// Opens (or creates) the database in `dir`. Fails if another process holds it.
    ///
    /// sled releases its file lock only when its background flusher thread lets go of the
    /// database, a moment after the last handle is dropped; an open that finds the lock held
    /// is therefore retried for up to [`LOCK_WAIT`] before it fails.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match sled::Config::new().path(dir).open() {
                Ok(db) => return Ok(SledStore { db }),
                Err(sled::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(error("open", &dir.display().to_string(), e)),
            }
        }
    }

    fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        self.db.open_tree(name).map_err(|e| error("open", name, e))
    }
}

impl KvStore for SledStore {
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self
            .tree(tree)?
            .get(key)
            .map_err(|e| error("get", tree, e))?;
        Ok(value.map(|v| v.to_vec()))
    }

    fn apply(&self, tree: &str, batch: WriteBatch) -> Result<(), StoreError> {
        let mut sled_batch = sled::Batch::default();
        for (key, value) in batch.ops {
            match value {
                Some(v) => sled_batch.insert(key, v),
                None => sled_batch.remove(key),
            }
        }
        self.tree(tree)?
            .apply_batch(sled_batch)
            .map_err(|e| error("apply", tree, e))
    }

    fn scan(&self, tree: &str, from: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError> {
        self.tree(tree)?
            .range(from..)
            .take(limit)
            .map(|r| {
                r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(|e| error("scan", tree, e))
            })
            .collect()
    }

    fn last(&self, tree: &str) -> Result<Option<Entry>, StoreError> {
        let last = self
            .tree(tree)?
            .last()
            .map_err(|e| error("last", tree, e))?;
        Ok(last.map(|(k, v)| (k.to_vec(), v.to_vec())))
    }

    fn len(&self, tree: &str) -> Result<usize, StoreError> {
        Ok(self.tree(tree)?.len())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db
            .flush()
            .map(|_| ())
            .map_err(|e| error("flush", "", e))
    }
}
