//! How start-up loads the collector's derived state from the store, and what it reports of
//! it (the log line "state rebuilt from the store", and `ingest.last_start` on `/api/v1/stats`).
//!
//! Two ways, chosen by the stored checkpoint's head ([`crate::checkpoint`], key `head` of its
//! tree):
//! - **checkpoint + tail**: a head of this format version at or below the store's position:
//!   [`crate::checkpoint::load_state`] restores it and replays the records stored after it in
//!   one bulk (the tail is short: a checkpoint is written every `retention.checkpoint_records`
//!   records, and at shutdown);
//! - **streamed rebuild** ([`crate::stream_rebuild`]): no checkpoint, one of another version or
//!   ahead of the store, and always in a cluster (its partitions number positions each on
//!   their own): every record in event-time order, so the analysis prunes as it goes and the
//!   rebuild's memory follows the rules' horizon, not the store.
//!
//! Either way the fleet directory ([`crate::state::directory`]) is then complete: a format-4
//! checkpoint carries it; otherwise (a rebuild, an older checkpoint, whose reading summaries
//! are skipped) the sensors of the replayed records are completed from one scan of the day
//! roll-ups ([`directory_from_rollups`]: one value per zone and day, so it follows zones ×
//! days kept, not the records), which also brings back sensors whose raw records retention
//! deleted.
//!
//! Limit: a head that looks usable but whose chunks then do not decode makes
//! [`crate::checkpoint::load_state`] fall back to its own bulk rebuild of every record (memory
//! follows the store then); reported as [`StartMode::BulkRebuild`].

use crate::actions::OperatorAction;
use crate::checkpoint::{Head, Loaded};
use crate::rollup::Level;
use crate::state::directory::{Directory, SensorEntry};
use crate::state::CollectorState;
use crate::store::CollectorStore;
use coldaisle_store::{KvStore, StoreError};
use serde::Serialize;
use std::ops::ControlFlow;
use std::time::Instant;

/// The key of the checkpoint's head in [`crate::checkpoint::TREE`] (its module doc, "Layout").
const CHECKPOINT_HEAD: &[u8] = b"head";

/// How the last start-up loaded the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StartMode {
    /// From the checkpoint, then the records stored after it.
    Checkpoint,
    /// Every record, streamed in event-time order.
    StreamedRebuild,
    /// Every record in one bulk (a checkpoint whose head was usable but whose body was not).
    BulkRebuild,
}

impl StartMode {
    /// The name shown in logs and on the API.
    pub fn name(self) -> &'static str {
        match self {
            StartMode::Checkpoint => "checkpoint",
            StartMode::StreamedRebuild => "streamed_rebuild",
            StartMode::BulkRebuild => "bulk_rebuild",
        }
    }
}

/// What the last start-up did, as `/api/v1/stats` shows it (`ingest.last_start`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StartUp {
    /// How the state was loaded.
    pub mode: StartMode,
    /// Position of the checkpoint used (0 without one).
    pub checkpoint: u64,
    /// Store position the state covers.
    pub position: u64,
    /// Records read and applied: the tail after the checkpoint, or every record.
    pub records: u64,
    /// Stored records that did not decode (skipped).
    pub undecodable: u64,
    /// Records a streamed rebuild applied after a record with a later event time.
    pub out_of_order: u64,
    /// Events and actions the analysis held as older than its floor after loading.
    pub too_late: u64,
    /// Time to load the state (checkpoint and tail, or the rebuild), in milliseconds.
    pub load_ms: u64,
    /// Time from the start of start-up until the state was loaded (opening the store and its
    /// one-off scans included), in milliseconds; the API listens right after.
    pub total_ms: u64,
}

/// The stored checkpoint's head if start-up can use it: this format version, at or below
/// the store's `position`. An unreadable head counts as none (the rebuild then runs).
fn usable_head(kv: &dyn KvStore, position: u64) -> Result<Option<Head>, StoreError> {
    let Some(raw) = kv.get(crate::checkpoint::TREE, CHECKPOINT_HEAD)? else {
        return Ok(None);
    };
    let head = match serde_json::from_slice::<Head>(&raw) {
        Ok(head) => head,
        Err(e) => {
            tracing::warn!(error = %e, "checkpoint head does not decode; rebuilding from every record");
            return Ok(None);
        }
    };
    if !crate::checkpoint::reads_version(head.version) {
        tracing::warn!(
            found = head.version,
            reads_from = crate::checkpoint::OLDEST_READ_VERSION,
            reads_to = crate::checkpoint::FORMAT_VERSION,
            "checkpoint of another format version; rebuilding from every record"
        );
        return Ok(None);
    }
    if head.position > position {
        tracing::warn!(
            checkpoint = head.position,
            position,
            "checkpoint is ahead of the store; rebuilding from every record"
        );
        return Ok(None);
    }
    Ok(Some(head))
}

/// Fills the empty `state` from `store` (checkpoint + tail, or the streamed rebuild; always
/// the rebuild when `clustered`), then `actions`; logs how it went. `began` is when start-up
/// began (for [`StartUp::total_ms`]). Only store failures are errors.
pub fn load(
    state: &mut CollectorState,
    store: &CollectorStore,
    actions: Vec<OperatorAction>,
    clustered: bool,
    began: Instant,
) -> Result<StartUp, StoreError> {
    let started = Instant::now();
    let head = if clustered {
        None
    } else {
        usable_head(store.kv().as_ref(), store.position()?)?
    };
    let (mode, loaded, out_of_order) = match head {
        Some(head) => {
            let loaded: Loaded = crate::checkpoint::load_state(state, store, actions)?;
            let mode = if loaded.checkpoint == 0 && head.position > 0 {
                StartMode::BulkRebuild
            } else {
                StartMode::Checkpoint
            };
            (mode, loaded, 0)
        }
        None => {
            tracing::info!(
                position = store.position()?,
                mode = StartMode::StreamedRebuild.name(),
                "loading the state from the store"
            );
            let rebuilt = crate::stream_rebuild::rebuild(state, store, actions)?;
            (
                StartMode::StreamedRebuild,
                rebuilt.loaded,
                rebuilt.out_of_order,
            )
        }
    };
    let directory_ms = if loaded.directory {
        0
    } else {
        let scan = Instant::now();
        let sensors = directory_from_rollups(&mut state.directory, store.kv().as_ref())?;
        tracing::debug!(
            rollups = sensors,
            "fleet directory completed from the day roll-ups"
        );
        millis(scan)
    };
    let report = StartUp {
        mode,
        checkpoint: loaded.checkpoint,
        position: loaded.position,
        records: loaded.replayed,
        undecodable: loaded.undecodable,
        out_of_order,
        too_late: state.analysis.too_late(),
        load_ms: millis(started),
        total_ms: millis(began),
    };
    tracing::info!(
        mode = report.mode.name(),
        checkpoint = report.checkpoint,
        position = report.position,
        records = report.records,
        undecodable = report.undecodable,
        out_of_order = report.out_of_order,
        too_late = report.too_late,
        events_held = state.analysis.event_count(),
        sensors_in_directory = state.directory.len(),
        incidents = state.analysis.incidents(state.latest_event).len(),
        problems = state.analysis.problems().len(),
        directory_ms,
        load_ms = report.load_ms,
        total_ms = report.total_ms,
        "state rebuilt from the store"
    );
    Ok(report)
}

/// Notes into `directory` every sensor of the day roll-ups (tree `rollup_1d`, both layouts),
/// seen until its latest summary's end; returns the roll-ups read. Blocking: one scan of the
/// tree (zones × days kept values). A value that does not decode is skipped (logged).
pub fn directory_from_rollups(
    directory: &mut Directory,
    kv: &dyn KvStore,
) -> Result<u64, StoreError> {
    let mut read = 0_u64;
    coldaisle_store::visit_from(kv, Level::Day.tree(), &[], |key, value| {
        match crate::rollup::zone_value::decode_any(key, value) {
            Ok(rollups) => {
                for r in rollups {
                    read += 1;
                    let loc = &r.location;
                    directory.note_sensor(
                        &loc.site,
                        &loc.zone,
                        loc.rack.as_deref(),
                        &r.sensor,
                        SensorEntry {
                            kind: r.kind,
                            last_seen: r.last_at,
                        },
                    );
                }
            }
            Err(e) => {
                tracing::error!(key = ?key, error = %e, "day roll-up does not decode; its sensors left out of the directory")
            }
        }
        ControlFlow::Continue(())
    })?;
    Ok(read)
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldaisle_store::{MemoryStore, WriteBatch};

    fn head(version: u32, position: u64) -> Vec<u8> {
        serde_json::to_vec(&Head {
            version,
            position,
            chunks: 0,
            bytes: 0,
        })
        .expect("encode")
    }

    fn with_head(raw: Vec<u8>) -> MemoryStore {
        let kv = MemoryStore::new();
        let mut batch = WriteBatch::default();
        batch.insert(CHECKPOINT_HEAD, raw);
        kv.apply(crate::checkpoint::TREE, batch).expect("apply");
        kv
    }

    #[test]
    fn a_head_is_usable_only_of_a_version_it_reads_and_not_ahead_of_the_store() {
        let v = crate::checkpoint::FORMAT_VERSION;
        assert_eq!(usable_head(&MemoryStore::new(), 5).expect("read"), None);
        let kv = with_head(head(v, 5));
        assert_eq!(
            usable_head(&kv, 5).expect("read").map(|h| h.position),
            Some(5)
        );
        assert_eq!(
            usable_head(&kv, 4).expect("read"),
            None,
            "ahead of the store"
        );
        assert_eq!(
            usable_head(&with_head(head(v + 1, 1)), 5).expect("read"),
            None
        );
        let older = crate::checkpoint::OLDEST_READ_VERSION;
        assert_eq!(
            usable_head(&with_head(head(older, 3)), 5)
                .expect("read")
                .map(|h| h.position),
            Some(3),
            "a version 2 checkpoint (before the hot span and the tallies) still loads"
        );
        assert_eq!(
            usable_head(&with_head(head(older - 1, 1)), 5).expect("read"),
            None
        );
        assert_eq!(
            usable_head(&with_head(b"{".to_vec()), 5).expect("read"),
            None
        );
    }
}
