//! Shared fixtures of the roll-up benchmarks (`history`, `report`): the benchmarks' "now",
//! writing folded buckets into a store, and percentiles of measured times.

use coldaisle_collector::rollup::{codec, fold, key_time, zone_value, Level};
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
    /// One value per zone and bucket (`rollup::zone_value`), what the collector writes today.
    Binary,
    /// One binary value per sensor and bucket (`rollup::codec`), as collectors wrote before
    /// zone values (still read).
    PerSensor,
    /// One JSON value per sensor and bucket, as collectors wrote before the binary layout
    /// (still read).
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
    let buckets = fold(summaries, level);
    if encoding == Encoding::Binary {
        for (key, zone) in zone_value::group(buckets.into_values()) {
            starts.extend(key_time(&key));
            let value = zone_value::encode(&zone)?;
            batch.insert(key, value);
        }
    } else {
        for (key, bucket) in buckets {
            starts.push(bucket.start);
            let value = match encoding {
                Encoding::LegacyJson => serde_json::to_vec(&bucket)?,
                _ => codec::encode(&bucket)?,
            };
            batch.insert(key, value);
        }
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
