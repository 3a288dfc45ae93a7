//! The sled backend (sled 0.34, beta): every tree is a sled tree; `flush` calls sled's
//! `flush`, which fsyncs, so data is durable when it returns.

use crate::{Entry, KvStore, StoreError, WriteBatch};
use std::path::Path;

/// How long [`SledStore::open`] waits for a lock still held by a closing handle. Generous:
/// on a loaded 2-core machine (a cold CI build next to the tests) 2 s was once not enough.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How a database is opened ([`SledStore::open_with`]): the sled settings that are ours to
/// choose for a database whose live data is small (the agent's outbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SledSettings {
    /// Bound of sled's page cache, in bytes (sled's default: 1 GiB). Pages beyond it are read
    /// back from disk when needed.
    pub cache_bytes: u64,
    /// sled's segment size, which is also the size of each of its I/O buffers, in bytes: a
    /// power of two from 256 bytes to 16 MiB; `None` keeps sled's default (512 KiB in sled
    /// 0.34). sled writes it into the database and refuses to open the database with another
    /// value, so [`SledStore::open_with`] opens a database created with sled's default with
    /// the default. An item larger than a quarter of a segment is written to a file of its own
    /// under `blobs/` (one more file and fsync per such write).
    pub segment_bytes: Option<usize>,
}

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

    /// [`SledStore::open`] with sled's page cache bounded to `cache_bytes` instead of sled's
    /// default 1 GiB (the agent's outbox, whose live data is small: see BENCHMARKS.md, "The
    /// agent at fleet scale").
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<SledStore, StoreError> {
        Self::open_config(dir, LOCK_WAIT, Some(cache_bytes), None)
    }

    /// [`SledStore::open`] with `settings` instead of sled's defaults (the agent's outbox).
    ///
    /// A database that sled created with its default segment size (every agent's outbox before
    /// `segment_bytes` was set) is opened with that size: sled cannot change it in place.
    pub fn open_with(dir: &Path, settings: &SledSettings) -> Result<SledStore, StoreError> {
        let Some(segment) = settings.segment_bytes else {
            return Self::open_config(dir, LOCK_WAIT, Some(settings.cache_bytes), None);
        };
        match Self::open_config(dir, LOCK_WAIT, Some(settings.cache_bytes), Some(segment)) {
            Err(e) if e.message.contains(SEGMENT_SIZE_CHANGED) => {
                Self::open_config(dir, LOCK_WAIT, Some(settings.cache_bytes), None)
            }
            other => other,
        }
    }

    /// [`SledStore::open`] waiting at most `wait` for a lock held by a live handle.
    pub fn open_waiting(dir: &Path, wait: std::time::Duration) -> Result<SledStore, StoreError> {
        Self::open_config(dir, wait, None, None)
    }

    /// Opens, waiting at most `wait` for the lock; `cache_bytes` bounds sled's page cache and
    /// `segment_bytes` sets its segment size (`None`: sled's defaults).
    fn open_config(
        dir: &Path,
        wait: std::time::Duration,
        cache_bytes: Option<u64>,
        segment_bytes: Option<usize>,
    ) -> Result<SledStore, StoreError> {
        let mut config = sled::Config::new().path(dir);
        if let Some(bytes) = cache_bytes {
            config = config.cache_capacity(bytes);
        }
        if let Some(bytes) = segment_bytes {
            config = config.segment_size(bytes);
        }
        let deadline = std::time::Instant::now() + wait;
        let mut collected = false;
        loop {
            match config.open() {
                Ok(db) => return Ok(SledStore { db }),
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
    pub fn tree_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .db
            .tree_names()
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .filter(|n| n != "__sled__default")
            .collect();
        names.sort();
        names
    }

    fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        self.db.open_tree(name).map_err(|e| error("open", name, e))
    }
}

/// The start of sled 0.34's `Unsupported` error for a segment size other than the one the
/// database was created with.
const SEGMENT_SIZE_CHANGED: &str = "cannot change the io buffer size";

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

    /// sled's compare-and-swap from absent to `value`.
    fn insert_new(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<bool, StoreError> {
        let swapped = self
            .tree(tree)?
            .compare_and_swap(key, None::<&[u8]>, Some(value))
            .map_err(|e| error("insert_new", tree, e))?;
        Ok(swapped.is_ok())
    }
}
