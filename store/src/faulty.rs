//! A [`KvStore`] wrapper that fails on demand, for fault-injection tests of the outbox and the
//! collector store: a full or failing disk, modelled as `apply` and/or `flush` errors.
//!
//! Failures are armed per operation with a count (`fail_applies(2)`: the next two `apply` calls
//! fail) or indefinitely ([`FAIL_ALWAYS`]); reads always pass through. A failed `apply` changes
//! nothing (the inner batch is not applied), as with a real atomic batch; a failed `flush`
//! leaves what was applied in place but not durable — exactly what a crash would then lose.

use crate::{Entry, KvStore, StoreError, WriteBatch};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Count meaning "until disarmed".
pub const FAIL_ALWAYS: u64 = u64::MAX;

/// A store whose writes fail on demand.
pub struct FaultyStore {
    inner: Arc<dyn KvStore>,
    /// `apply` calls left to fail.
    applies: AtomicU64,
    /// `flush` calls left to fail.
    flushes: AtomicU64,
    /// Failures injected so far.
    injected: AtomicU64,
}

impl FaultyStore {
    /// Wraps `inner`, failing nothing yet.
    pub fn new(inner: Arc<dyn KvStore>) -> FaultyStore {
        FaultyStore {
            inner,
            applies: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        }
    }

    /// The next `count` `apply` calls fail ([`FAIL_ALWAYS`]: until set to 0).
    pub fn fail_applies(&self, count: u64) {
        self.applies.store(count, Ordering::SeqCst);
    }

    /// The next `count` `flush` calls fail ([`FAIL_ALWAYS`]: until set to 0).
    pub fn fail_flushes(&self, count: u64) {
        self.flushes.store(count, Ordering::SeqCst);
    }

    /// Failures injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    /// Takes one failure from `counter` if armed.
    fn trip(
        &self,
        counter: &AtomicU64,
        operation: &'static str,
        tree: &str,
    ) -> Result<(), StoreError> {
        let armed = counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| match left {
                0 => None,
                FAIL_ALWAYS => Some(FAIL_ALWAYS),
                n => Some(n - 1),
            })
            .is_ok();
        if armed {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError {
                operation,
                tree: tree.to_string(),
                message: "injected fault: No space left on device (os error 28)".into(),
            });
        }
        Ok(())
    }
}

impl KvStore for FaultyStore {
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(tree, key)
    }

    fn apply(&self, tree: &str, batch: WriteBatch) -> Result<(), StoreError> {
        self.trip(&self.applies, "apply", tree)?;
        self.inner.apply(tree, batch)
    }

    fn scan(&self, tree: &str, from: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError> {
        self.inner.scan(tree, from, limit)
    }

    fn last(&self, tree: &str) -> Result<Option<Entry>, StoreError> {
        self.inner.last(tree)
    }

    fn len(&self, tree: &str) -> Result<usize, StoreError> {
        self.inner.len(tree)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.trip(&self.flushes, "flush", "")?;
        self.inner.flush()
    }

    /// Counts as an apply for fault injection.
    fn insert_new(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<bool, StoreError> {
        self.trip(&self.applies, "insert_new", tree)?;
        self.inner.insert_new(tree, key, value)
    }
}
