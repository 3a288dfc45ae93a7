//! An in-memory [`KvStore`] for tests and replays. Nothing survives the process.

use crate::{Entry, KvStore, StoreError, WriteBatch};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

/// One tree: ordered keys to values.
type Tree = BTreeMap<Vec<u8>, Vec<u8>>;

/// In-memory store: one ordered map per tree.
#[derive(Debug, Default)]
pub struct MemoryStore {
    trees: Mutex<HashMap<String, Tree>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_tree<T>(&self, tree: &str, f: impl FnOnce(&mut Tree) -> T) -> T {
        let mut trees = self.trees.lock().unwrap_or_else(PoisonError::into_inner);
        f(trees.entry(tree.to_string()).or_default())
    }
}

impl KvStore for MemoryStore {
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.with_tree(tree, |t| t.get(key).cloned()))
    }

    fn apply(&self, tree: &str, batch: WriteBatch) -> Result<(), StoreError> {
        self.with_tree(tree, |t| {
            for (key, value) in batch.ops {
                match value {
                    Some(v) => t.insert(key, v),
                    None => t.remove(&key),
                };
            }
        });
        Ok(())
    }

    fn scan(&self, tree: &str, from: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError> {
        Ok(self.with_tree(tree, |t| {
            t.range(from.to_vec()..)
                .take(limit)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }))
    }

    fn last(&self, tree: &str) -> Result<Option<Entry>, StoreError> {
        Ok(self.with_tree(tree, |t| {
            t.iter().next_back().map(|(k, v)| (k.clone(), v.clone()))
        }))
    }

    fn len(&self, tree: &str) -> Result<usize, StoreError> {
        Ok(self.with_tree(tree, |t| t.len()))
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Atomic under the store's one lock.
    fn insert_new(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<bool, StoreError> {
        Ok(self.with_tree(tree, |t| {
            if t.contains_key(key) {
                return false;
            }
            t.insert(key.to_vec(), value.to_vec());
            true
        }))
    }
}
