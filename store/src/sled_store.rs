//! The sled backend (sled 0.34, beta): every tree is a sled tree; `flush` calls sled's
//! `flush`, which fsyncs, so data is durable when it returns.

use crate::{Entry, KvStore, StoreError, WriteBatch};
use std::path::Path;

/// How long [`SledStore::open`] waits for a lock still held by a closing handle. Generous:
/// on a loaded 2-core machine (a cold CI build next to the tests) 2 s was once not enough.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a reopen after an I/O failure waits for the lock that in-flight operations on the
/// failed handle still hold. Short: the operation that asks for the reopen is itself waiting.
const REOPEN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A sled database directory.
///
/// **Reopened in place after an I/O failure.** Once a write failed with an I/O error (a full
/// disk: ENOSPC), sled refuses every later write on that handle, even after space was freed;
/// only a new handle works again. So an I/O error marks the handle failed, and the next
/// operation drops it and opens the directory again (sled recovers to the last flushed state,
/// which is all anyone was promised), failing as before while the disk is still full. Callers
/// keep whatever they hold in memory (the agent's outbox keeps its unwritten records) and their
/// retries succeed once space is back, with no restart. Clones share the handle.
#[derive(Debug, Clone)]
pub struct SledStore {
    shared: std::sync::Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    dir: std::path::PathBuf,
    /// The open handle; `None` after a reopen failed (the next operation tries again).
    db: std::sync::RwLock<Option<sled::Db>>,
    /// Set by an operation that failed with an I/O error.
    failed: std::sync::atomic::AtomicBool,
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
    /// Reopening in the same process right after the last handle was dropped must work (the
    /// detector-state and outbox tests restart in-process): sled keeps its locked file open a
    /// moment longer, in background writes still in flight and in garbage that crossbeam-epoch
    /// frees only when some thread later pins and collects. An open that finds the lock held
    /// therefore collects this thread's deferred garbage ([`release_deferred_drops`]) and
    /// retries every 20 ms for up to [`LOCK_WAIT`]. sled reports a held lock as an `Other` I/O
    /// error (see [`is_lock_held`]); until 2026-12 this open matched only `WouldBlock` and so
    /// never waited at all, which is why a reopen failed under load "after 10 s".
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        Self::open_waiting(dir, LOCK_WAIT)
    }

    /// [`SledStore::open`] waiting at most `wait` for a lock held by a live handle.
    pub fn open_waiting(dir: &Path, wait: std::time::Duration) -> Result<SledStore, StoreError> {
        let deadline = std::time::Instant::now() + wait;
        let mut collected = false;
        loop {
            match open_handle(dir) {
                Ok(db) => {
                    return Ok(SledStore {
                        shared: std::sync::Arc::new(Shared {
                            dir: dir.to_path_buf(),
                            db: std::sync::RwLock::new(Some(db)),
                            failed: std::sync::atomic::AtomicBool::new(false),
                        }),
                    })
                }
                Err(sled::Error::Io(e)) if is_lock_held(&e) => {
                    if !collected {
                        release_deferred_drops();
                        collected = true;
                        continue;
                    }
                    if std::time::Instant::now() >= deadline {
                        return Err(error(
                            "open",
                            &dir.display().to_string(),
                            format!("{e} (the database is locked: is another process using this state directory?)"),
                        ));
                    }
                    release_deferred_drops();
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(error("open", &dir.display().to_string(), e)),
            }
        }
    }

    /// The names of the trees in the database (sled's own default tree left out), sorted.
    pub fn tree_names(&self) -> Result<Vec<String>, StoreError> {
        let mut names: Vec<String> = self
            .db()?
            .tree_names()
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .filter(|n| n != "__sled__default")
            .collect();
        names.sort();
        Ok(names)
    }

    /// The handle to use now: the open one, or a new one when the last operation failed with
    /// an I/O error (see the type's doc).
    fn db(&self) -> Result<sled::Db, StoreError> {
        use std::sync::atomic::Ordering;
        use std::sync::PoisonError;
        let shared = &self.shared;
        if !shared.failed.load(Ordering::Acquire) {
            if let Some(db) = &*shared.db.read().unwrap_or_else(PoisonError::into_inner) {
                return Ok(db.clone());
            }
        }
        let mut slot = shared.db.write().unwrap_or_else(PoisonError::into_inner);
        if !shared.failed.load(Ordering::Acquire) {
            if let Some(db) = &*slot {
                return Ok(db.clone()); // another thread reopened it meanwhile
            }
        }
        // Drop the failed handle first: it holds the directory's lock.
        drop(slot.take());
        let dir = shared.dir.display().to_string();
        let db = Self::open_waiting(&shared.dir, REOPEN_WAIT)
            .map_err(|e| error("reopen", &dir, e.message))?
            .into_handle()
            .ok_or_else(|| error("reopen", &dir, "no handle"))?;
        tracing::warn!(dir = %dir, "sled store reopened after an I/O failure");
        *slot = Some(db.clone());
        shared.failed.store(false, Ordering::Release);
        Ok(db)
    }

    /// This store's only handle, taken out (used by a reopen, whose new store is not kept).
    fn into_handle(self) -> Option<sled::Db> {
        std::sync::Arc::into_inner(self.shared)?
            .db
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks the handle failed when `e` is an I/O error, so the next operation reopens it.
    fn check<T>(
        &self,
        operation: &'static str,
        tree: &str,
        result: sled::Result<T>,
    ) -> Result<T, StoreError> {
        result.map_err(|e| {
            if matches!(e, sled::Error::Io(_)) {
                self.shared
                    .failed
                    .store(true, std::sync::atomic::Ordering::Release);
            }
            error(operation, tree, e)
        })
    }

    fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        let db = self.db()?;
        self.check("open", name, db.open_tree(name))
    }
}

/// One open of `dir` (no waiting).
fn open_handle(dir: &Path) -> sled::Result<sled::Db> {
    sled::Config::new().path(dir).open()
}

/// sled reports a held lock as an `Other` I/O error whose text says so (its `try_lock` wraps
/// fs2's `WouldBlock`), so the kind alone cannot tell it apart.
fn is_lock_held(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}

/// Runs the crossbeam-epoch garbage that dropped sled databases left behind.
///
/// Each `flush` moves this thread's bag of deferred functions to the global queue and collects
/// what is old enough; collection needs the global epoch to advance twice past the bag, and a
/// flush advances it at most once (only when no thread is pinned in an older epoch, and sled's
/// pins are short), hence a few rounds.
fn release_deferred_drops() {
    for _ in 0..8 {
        crossbeam_epoch::pin().flush();
        std::thread::yield_now();
    }
}

impl KvStore for SledStore {
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self.check("get", tree, self.tree(tree)?.get(key))?;
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
        let applied = self.tree(tree)?.apply_batch(sled_batch);
        self.check("apply", tree, applied)
    }

    fn scan(&self, tree: &str, from: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError> {
        self.tree(tree)?
            .range(from..)
            .take(limit)
            .map(|r| self.check("scan", tree, r.map(|(k, v)| (k.to_vec(), v.to_vec()))))
            .collect()
    }

    fn last(&self, tree: &str) -> Result<Option<Entry>, StoreError> {
        let last = self.check("last", tree, self.tree(tree)?.last())?;
        Ok(last.map(|(k, v)| (k.to_vec(), v.to_vec())))
    }

    fn len(&self, tree: &str) -> Result<usize, StoreError> {
        Ok(self.tree(tree)?.len())
    }

    fn flush(&self) -> Result<(), StoreError> {
        let flushed = self.db()?.flush();
        self.check("flush", "", flushed).map(|_| ())
    }
}
