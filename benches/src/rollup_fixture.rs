//! Shared fixtures of the roll-up benchmarks (`history`, `report`): the benchmarks' "now",
//! writing folded buckets into a store, and percentiles of measured times.

use coldaisle_collector::rollup::{codec, fold, Level};
use coldaisle_collector::rollup_store::merge_cache::WRITES;
use coldaisle_core::ReadingSummary;
use coldaisle_store::{KvStore, WriteBatch};
use std::time::Duration;

/// One hour, in milliseconds.
pub const HOUR: i64 = 3_600_000;
/// One day, in milliseconds.
pub const DAY: i64 = 24 * HOUR;
/// "Now" of the benchmarks: 2026-12-01T00:00:00Z.
pub const NOW: i64 = 1_795_996_800_000;

/// How the fixtures store bucket values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// The collector's binary layout (`rollup::codec`), what it writes today.
    Binary,
    /// JSON, as collectors wrote before the binary layout (still read).
    LegacyJson,
}

/// Folds `summaries` into `level` and writes the buckets in one batch, without reading what
/// the tree holds: callers pass summaries whose buckets are not stored yet.
pub fn write_buckets(
    kv: &dyn KvStore,
    level: Level,
    summaries: &[ReadingSummary],
) -> anyhow::Result<()> {
    write_buckets_as(kv, level, summaries, Encoding::Binary)
}

/// [`write_buckets`] with values in `encoding`. Records the write on the process's write
/// clock as ingest does (`rollup_store::add`), so cached merges behave as in the collector.
pub fn write_buckets_as(
    kv: &dyn KvStore,
    level: Level,
    summaries: &[ReadingSummary],
    encoding: Encoding,
) -> anyhow::Result<()> {
    let mut batch = WriteBatch::default();
    let mut starts = Vec::new();
    for (key, bucket) in fold(summaries, level) {
        starts.push(bucket.start);
        let value = match encoding {
            Encoding::Binary => codec::encode(&bucket)?,
            Encoding::LegacyJson => serde_json::to_vec(&bucket)?,
        };
        batch.insert(key, value);
    }
    kv.apply(level.tree(), batch)?;
    WRITES.record(level, starts);
    Ok(())
}

/// The `p` quantile (0–1) of sorted times, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}
