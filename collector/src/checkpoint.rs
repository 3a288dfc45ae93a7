//! Durable checkpoints of the collector's derived state, so that start-up replays only the
//! records stored after the last one (its *tail*) instead of the whole store.
//!
//! A checkpoint holds the analysis ([`crate::analysis::Snapshot`]: the events of its hot span
//! and their evidence ([`crate::analysis::hot`]), actions, every scope's engines and rollback
//! marks), the fleet directory ([`crate::state::directory`]; no reading summary: their
//! figures are in the stored roll-ups), the latest event time
//! and each agent's record count, together with the store position it covers
//! ([`crate::store`], "Positions"). It goes through the [`KvStore`] trait, so every backend
//! keeps it.
//!
//! Layout: tree [`TREE`], key `head` → [`Head`] JSON (format version, position, chunk count
//! and size), keys `c` + chunk number (big-endian u32) → up to [`CHUNK_BYTES`] of the body
//! JSON. Invariants:
//! - The head, every chunk and the removal of the previous checkpoint's extra chunks are one
//!   [`WriteBatch`] on one tree, so a reader sees a whole checkpoint with its position, or the
//!   previous one, never a mix.
//! - A checkpoint covers exactly the records at or below its position: it is taken only when
//!   every record stored so far has been applied (the ingest loop, which both stores and
//!   applies, takes it between batches).
//! - Limit: a record whose batch failed to flush (not acked) and that its agent never sends
//!   again may have a position at or below a later checkpoint's without being in it; a full
//!   rebuild would include it. The agent resends every unacked record, so this needs the
//!   agent to be lost too.
//! - A missing, unreadable, other-version or other-rules checkpoint is never fatal: start-up
//!   warns and rebuilds from every record ([`load_state`]).

use crate::actions::OperatorAction;
use crate::analysis::{Analysis, Snapshot, SnapshotError, SnapshotRef};
use crate::ingest;
use crate::state::directory::DirectoryEntry;
use crate::state::CollectorState;
use crate::store::CollectorStore;
use coldaisle_core::Timestamp;
use coldaisle_store::{KvStore, StoreError, WriteBatch};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The tree holding the checkpoint.
pub const TREE: &str = "checkpoint";

/// Version of the checkpoint format this collector writes. A checkpoint of a version it does
/// not read ([`reads_version`]) is ignored (rebuild).
///
/// 3: the snapshot may hold only the hot span's events (`analysis::hot`) and the problems'
/// running tallies, with the summaries they folded in forgotten. A collector that reads only
/// version 2 would take such a checkpoint for the whole state and count fewer incidents or
/// miss events, so it must rebuild instead: hence the new number. Version 2 checkpoints still
/// load (their snapshot's new fields take their defaults: no hot floor, no tallies yet).
///
/// 4: the body carries the fleet directory instead of the in-memory reading summaries (8
/// days of every sensor: 99 % of a checkpoint at fleet scale, and most of a restart's time).
/// A collector that reads only version 3 would start with no summaries and, reading them
/// from memory, report no figures: it must rebuild, hence the new number. Versions 2 and 3
/// still load; their summaries are skipped, not decoded into memory, and start-up fills the
/// directory from the day roll-ups instead ([`Loaded::directory`]).
///
/// 5: an incident in the engines may hold only the tail of its timeline, its head being in
/// the store (`incidents::StoredTimeline`, issue 13 part 12). A collector that reads only up
/// to 4 would take the tail for the whole timeline, hence the number. Versions 2 to 4 still load: their incidents have no stored head
/// (the field's default), which is exactly what they meant.
pub const FORMAT_VERSION: u32 = 5;

/// Oldest checkpoint format version this collector still reads.
pub const OLDEST_READ_VERSION: u32 = 2;

/// True if this collector reads a checkpoint of format `version`.
pub fn reads_version(version: u32) -> bool {
    (OLDEST_READ_VERSION..=FORMAT_VERSION).contains(&version)
}

/// Largest chunk of the body stored under one key.
pub const CHUNK_BYTES: usize = 1 << 20;

const HEAD: &[u8] = b"head";

fn chunk_key(n: u32) -> [u8; 5] {
    let mut key = [b'c'; 5];
    key[1..].copy_from_slice(&n.to_be_bytes());
    key
}

/// Why a checkpoint could not be written or used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The state did not serialise.
    #[error("checkpoint: encoding failed: {0}")]
    Encode(serde_json::Error),
    /// The stored checkpoint does not decode.
    #[error("checkpoint: does not decode: {0}")]
    Decode(serde_json::Error),
    /// The stored checkpoint has another format version.
    #[error("checkpoint: format version {found}, this collector reads {OLDEST_READ_VERSION} to {FORMAT_VERSION}")]
    Version {
        /// Version found.
        found: u32,
    },
    /// Chunks are missing or of the wrong size.
    #[error("checkpoint: incomplete (chunk {chunk} of {chunks})")]
    Incomplete {
        /// First bad chunk.
        chunk: u32,
        /// Chunks announced.
        chunks: u32,
    },
    /// The analysis cannot be snapshot or restored (loading in bulk, other rules).
    #[error("checkpoint: {0}")]
    Snapshot(#[from] SnapshotError),
}

/// The checkpoint's head: what the chunks hold and the position they cover.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    /// [`FORMAT_VERSION`] of the writer.
    pub version: u32,
    /// Every record at or below this store position is reflected in the body.
    pub position: u64,
    /// Number of chunks.
    pub chunks: u32,
    /// Total body length in bytes.
    pub bytes: u64,
}

/// The state, borrowed, for writing.
#[derive(Serialize)]
struct BodyRef<'a> {
    latest_event: Timestamp,
    directory: &'a [DirectoryEntry],
    records: BTreeMap<&'a str, u64>,
    analysis: SnapshotRef<'a>,
}

/// The state as read back.
#[derive(Deserialize)]
struct Body {
    latest_event: Timestamp,
    /// Absent in versions 2 and 3, whose `summaries` field serde skips as unknown.
    #[serde(default)]
    directory: Option<Vec<DirectoryEntry>>,
    records: BTreeMap<String, u64>,
    analysis: Snapshot,
}

/// Serialises the checkpointed part of `state` (fails while the analysis loads in bulk).
pub fn encode(state: &CollectorState) -> Result<Vec<u8>, CheckpointError> {
    let directory = state.directory.entries();
    let body = BodyRef {
        latest_event: state.latest_event,
        directory: &directory,
        records: state
            .agents
            .iter()
            .map(|(agent, info)| (agent.as_str(), info.records))
            .collect(),
        analysis: state.analysis.snapshot()?,
    };
    serde_json::to_vec(&body).map_err(CheckpointError::Encode)
}

/// The checkpointed part of the state, copied under the state's read lock so that the
/// encoding runs without it (a copy costs a fraction of the JSON encoding: BENCHMARKS.md,
/// "Bounded analysis memory").
#[derive(Debug)]
pub struct Copied {
    /// Latest event time seen.
    latest_event: Timestamp,
    /// The fleet directory, flat.
    directory: Vec<DirectoryEntry>,
    /// Records stored per agent.
    records: BTreeMap<String, u64>,
    /// The analysis (checked not to be loading in bulk).
    analysis: Analysis,
}

/// Copies the checkpointed part of `state` (fails while the analysis loads in bulk).
pub fn copy(state: &CollectorState) -> Result<Copied, CheckpointError> {
    state.analysis.snapshot()?;
    Ok(Copied {
        latest_event: state.latest_event,
        directory: state.directory.entries(),
        records: state
            .agents
            .iter()
            .map(|(agent, info)| (agent.clone(), info.records))
            .collect(),
        analysis: state.analysis.clone(),
    })
}

impl Copied {
    /// Serialises it exactly as [`encode`] serialises the state it was copied from.
    pub fn encode(&self) -> Result<Vec<u8>, CheckpointError> {
        let body = BodyRef {
            latest_event: self.latest_event,
            directory: &self.directory,
            records: self
                .records
                .iter()
                .map(|(agent, n)| (agent.as_str(), *n))
                .collect(),
            analysis: self.analysis.snapshot()?,
        };
        serde_json::to_vec(&body).map_err(CheckpointError::Encode)
    }
}

/// Writes `body` (from [`encode`]) as the checkpoint covering `position`, in one batch, and
/// flushes. Returns its head.
pub fn write(kv: &dyn KvStore, position: u64, body: &[u8]) -> Result<Head, CheckpointError> {
    // An unreadable old head leaves its chunks behind: harmless, only chunks below the head's
    // count are read.
    let old_chunks = read_head(kv).ok().flatten().map(|h| h.chunks).unwrap_or(0);
    let mut batch = WriteBatch::default();
    let mut chunks = 0_u32;
    for chunk in body.chunks(CHUNK_BYTES) {
        batch.insert(chunk_key(chunks), chunk.to_vec());
        chunks += 1;
    }
    for stale in chunks..old_chunks {
        batch.remove(chunk_key(stale));
    }
    let head = Head {
        version: FORMAT_VERSION,
        position,
        chunks,
        bytes: body.len() as u64,
    };
    batch.insert(
        HEAD,
        serde_json::to_vec(&head).map_err(CheckpointError::Encode)?,
    );
    kv.apply(TREE, batch)?;
    kv.flush()?;
    Ok(head)
}

fn read_head(kv: &dyn KvStore) -> Result<Option<Head>, CheckpointError> {
    kv.get(TREE, HEAD)?
        .map(|raw| serde_json::from_slice(&raw).map_err(CheckpointError::Decode))
        .transpose()
}

/// The stored checkpoint's position and body, if there is one.
fn read(kv: &dyn KvStore) -> Result<Option<(u64, Body)>, CheckpointError> {
    let Some(head) = read_head(kv)? else {
        return Ok(None);
    };
    if !reads_version(head.version) {
        return Err(CheckpointError::Version {
            found: head.version,
        });
    }
    let mut body = Vec::with_capacity(usize::try_from(head.bytes).unwrap_or(0));
    for n in 0..head.chunks {
        let incomplete = CheckpointError::Incomplete {
            chunk: n,
            chunks: head.chunks,
        };
        let chunk = kv.get(TREE, &chunk_key(n))?.ok_or(incomplete)?;
        body.extend_from_slice(&chunk);
    }
    if body.len() as u64 != head.bytes {
        return Err(CheckpointError::Incomplete {
            chunk: head.chunks,
            chunks: head.chunks,
        });
    }
    let body = serde_json::from_slice(&body).map_err(CheckpointError::Decode)?;
    Ok(Some((head.position, body)))
}

/// Replaces `state`'s checkpointed part by `body`'s, if it was computed under the state's
/// rules. Nothing changes on an error. Returns whether the body carried the directory
/// (format 4).
fn restore(state: &mut CollectorState, body: Body) -> Result<bool, CheckpointError> {
    let analysis = Analysis::restore(
        body.analysis,
        state.analysis.incident_rules(),
        state.analysis.problem_rules(),
    )?
    .with_signature_settings(*state.analysis.signature_settings())
    .with_hot_span(state.analysis.hot_span());
    state.analysis = analysis;
    state.latest_event = body.latest_event;
    let carried = body.directory.is_some();
    state.directory.extend(body.directory.unwrap_or_default());
    for (agent, records) in body.records {
        state.agents.entry(agent).or_default().records = records;
    }
    Ok(carried)
}

/// How start-up went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    /// The position of the checkpoint used (0 for a full rebuild).
    pub checkpoint: u64,
    /// The store position the state now covers (where the next checkpoint starts from).
    pub position: u64,
    /// Records read and applied (the tail, or every record).
    pub replayed: u64,
    /// Stored records that did not decode (skipped).
    pub undecodable: u64,
    /// True if the state's directory came whole from the checkpoint (format 4); otherwise
    /// it holds only the sensors of the records replayed, and start-up completes it from the
    /// roll-ups ([`crate::start_up`]).
    pub directory: bool,
}

/// Fills the empty `state` from the store: from the checkpoint and the records after it when
/// it is usable, else (with a warning) from every record; then applies `actions` (the action
/// log; those already in the checkpoint are duplicates and ignored). Only store failures are
/// errors.
pub fn load_state(
    state: &mut CollectorState,
    store: &CollectorStore,
    actions: Vec<OperatorAction>,
) -> Result<Loaded, StoreError> {
    load(state, store, actions, true)
}

/// [`load_state`] from every record, ignoring any checkpoint: for collectors of a cluster,
/// whose partitions allocate store positions each on their own (see ARCHITECTURE.md), so a
/// position does not bound what another partition stored.
pub fn rebuild_state(
    state: &mut CollectorState,
    store: &CollectorStore,
    actions: Vec<OperatorAction>,
) -> Result<Loaded, StoreError> {
    load(state, store, actions, false)
}

fn load(
    state: &mut CollectorState,
    store: &CollectorStore,
    actions: Vec<OperatorAction>,
    use_checkpoint: bool,
) -> Result<Loaded, StoreError> {
    // Read before the records: every record stored after it is in the tail.
    let position = store.position()?;
    tracing::info!(position, "loading the state from the store");
    let mut loaded = Loaded {
        position,
        ..Loaded::default()
    };
    let checkpoint = if use_checkpoint {
        read(store.kv().as_ref())
    } else {
        Ok(None)
    };
    let usable = match checkpoint {
        Ok(Some((at, body))) if at <= position => restore(state, body).map(|carried| {
            loaded.directory = carried;
            Some(at)
        }),
        Ok(Some((at, _))) => {
            tracing::warn!(
                checkpoint = at,
                position,
                "checkpoint is ahead of the store; rebuilding from every record"
            );
            Ok(None)
        }
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    };
    let from = match usable {
        Ok(from) => from,
        Err(CheckpointError::Store(e)) => return Err(e),
        Err(e) => {
            tracing::warn!(error = %e, "checkpoint not usable; rebuilding from every record");
            None
        }
    };
    // One replay per scope after everything is read, not one per record out of event order.
    state.analysis.begin_bulk();
    let mut apply = |r: coldaisle_core::wire::Record| {
        loaded.replayed += 1;
        state.agents.entry(r.agent.clone()).or_default().records += 1;
        ingest::apply_record(state, r);
    };
    loaded.undecodable = match from {
        Some(at) => {
            loaded.checkpoint = at;
            store.for_each_record_after(at, &mut apply)?
        }
        None => store.for_each_record(&mut apply)?,
    };
    state.analysis.ingest_actions(actions);
    // The tail's late events may replay their scopes from before the checkpoint's hot floor:
    // they read the store's scope index (the tail is indexed already).
    let unmatched = state.end_bulk();
    if unmatched > 0 {
        tracing::warn!(
            unmatched,
            "stored operator actions match nothing at their time"
        );
    }
    Ok(loaded)
}

/// Writes a checkpoint of `state` covering `position`: copies it under the read lock (API
/// reads go on; ingest waits only for the copy), then serialises and writes on a blocking
/// thread. The caller must have applied every record up to `position` and no later one.
pub async fn take(
    state: &crate::state::SharedState,
    kv: std::sync::Arc<dyn KvStore>,
    position: u64,
) -> Result<Head, CheckpointError> {
    let started = Instant::now();
    let copied = copy(&*state.read().await)?;
    let locked = started.elapsed();
    let head = tokio::task::spawn_blocking(move || write(kv.as_ref(), position, &copied.encode()?))
        .await
        .map_err(|e| {
            CheckpointError::Store(StoreError {
                operation: "apply",
                tree: TREE.into(),
                message: e.to_string(),
            })
        })??;
    tracing::info!(
        position,
        bytes = head.bytes,
        under_lock_ms = locked.as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        "checkpoint written"
    );
    Ok(head)
}

/// When the ingest loop writes a checkpoint: every `records` new records or every `every`,
/// whichever comes first, once something changed. Pure: time is a parameter.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// `retention.checkpoint_records`.
    pub records: u64,
    /// `retention.checkpoint_every`.
    pub every: Duration,
    /// Position of the last checkpoint written (or loaded).
    written: u64,
    /// When it was written.
    written_at: Instant,
}

impl Schedule {
    /// A schedule whose last checkpoint covers `position`, as of `now`.
    pub fn new(records: u64, every: Duration, position: u64, now: Instant) -> Self {
        Schedule {
            records,
            every,
            written: position,
            written_at: now,
        }
    }

    /// A schedule that never writes a checkpoint (a collector of a cluster).
    pub fn never() -> Self {
        Schedule {
            records: u64::MAX,
            every: Duration::MAX,
            written: u64::MAX,
            written_at: Instant::now(),
        }
    }

    /// True if a checkpoint covering `position` is due at `now`.
    pub fn due(&self, position: u64, now: Instant) -> bool {
        position > self.written
            && (position - self.written >= self.records
                || now.duration_since(self.written_at) >= self.every)
    }

    /// True if anything was applied since the last checkpoint (at shutdown).
    pub fn behind(&self, position: u64) -> bool {
        position > self.written
    }

    /// Notes a checkpoint covering `position` written at `now`.
    pub fn written(&mut self, position: u64, now: Instant) {
        self.written = position;
        self.written_at = now;
    }
}

#[cfg(test)]
#[path = "checkpoint_tests.rs"]
mod tests;
