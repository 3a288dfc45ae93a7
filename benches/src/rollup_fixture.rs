//! Shared fixtures of the roll-up benchmarks (`history`, `report`): the benchmarks' "now",
//! writing folded buckets into a store, and percentiles of measured times.

use coldaisle_collector::rollup::{fold, Level};
use coldaisle_core::ReadingSummary;
use coldaisle_store::{KvStore, WriteBatch};
use std::time::Duration;

/// One hour, in milliseconds.
pub const HOUR: i64 = 3_600_000;
/// One day, in milliseconds.
pub const DAY: i64 = 24 * HOUR;
/// "Now" of the benchmarks: 2026-12-01T00:00:00Z.
pub const NOW: i64 = 1_795_996_800_000;

/// Folds `summaries` into `level` and writes the buckets in one batch, without reading what
/// the tree holds: callers pass summaries whose buckets are not stored yet.
pub fn write_buckets(
    kv: &dyn KvStore,
    level: Level,
    summaries: &[ReadingSummary],
) -> anyhow::Result<()> {
    let mut batch = WriteBatch::default();
    for (key, bucket) in fold(summaries, level) {
        batch.insert(key, serde_json::to_vec(&bucket)?);
    }
    kv.apply(level.tree(), batch)?;
    Ok(())
}

/// The `p` quantile (0–1) of sorted times, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}
