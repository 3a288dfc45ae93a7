//! The roll-up trees in the store: folding newly stored summaries in, history reads and
//! per-tree sizes. Everything goes through [`KvStore`], so any backend stores the trees as is.
//!
//! Trees: [`Level::tree`] of each level, one value per zone and bucket
//! ([`crate::rollup::zone_value`]); per-sensor buckets of stores written by earlier collectors
//! ([`Rollup::key`], [`crate::rollup::codec`]) are read beside them ([`bucket_reader`]) and
//! left in place until retention deletes them.

mod bucket_reader;
pub mod compact;
pub mod merge_cache;

use crate::retention::RetentionPolicy;
use crate::rollup::series::{self, Series};
use crate::rollup::zone_value::{self, ZoneBucket};
use crate::rollup::{fold, key_time, per_sensor, serving_level, zone_prefix, zone_time_key};
use crate::rollup::{Level, Rollup};
use bucket_reader::BucketReader;
use coldaisle_core::{ReadingSummary, SensorKind, Timestamp};
use coldaisle_store::{visit_from, KvStore, StoreError, WriteBatch};
use merge_cache::{MergeCache, MergeKey, Shape, WriteClock, WRITES};
use serde::Serialize;
use std::ops::ControlFlow;
use std::sync::Arc;

/// Folds `summaries` into every level: one read and one write per touched zone bucket (the
/// zone's value holds every sensor of the zone: [`zone_value`]), one batch per level, then
/// the levels' size counts ([`crate::tree_sizes`]). Not durable until the caller flushes.
/// Callers pass each summary once (ingest passes only newly stored records), since folding is
/// not idempotent. Each level's write is recorded on [`merge_cache::WRITES`], so cached merges
/// of buckets it changed are dropped.
pub fn add(kv: &dyn KvStore, summaries: &[&ReadingSummary]) -> Result<(), StoreError> {
    add_on_clock(kv, summaries, &WRITES)
}

/// [`add`], recording the writes on `clock` (tests and benchmarks that keep their own clock,
/// with [`RollupStore::with_clock`]).
pub fn add_on_clock(
    kv: &dyn KvStore,
    summaries: &[&ReadingSummary],
    clock: &WriteClock,
) -> Result<(), StoreError> {
    let sizes = fold_into_levels(kv, summaries, clock)?;
    crate::tree_sizes::add(kv, &sizes)
}

/// [`add`] without updating the size counts: returns the deltas for the caller to add with
/// its own (ingest: one counts update per batch).
pub fn add_uncounted(
    kv: &dyn KvStore,
    summaries: &[&ReadingSummary],
) -> Result<crate::tree_sizes::Deltas, StoreError> {
    fold_into_levels(kv, summaries, &WRITES)
}

/// Folds `summaries` into every level's buckets, records the writes on `clock` and returns the
/// trees' size deltas.
fn fold_into_levels(
    kv: &dyn KvStore,
    summaries: &[&ReadingSummary],
    clock: &WriteClock,
) -> Result<crate::tree_sizes::Deltas, StoreError> {
    let mut sizes = crate::tree_sizes::Deltas::default();
    if summaries.is_empty() {
        return Ok(sizes);
    }
    for level in Level::ALL {
        let tree = level.tree();
        let mut batch = WriteBatch::default();
        let mut starts = Vec::new();
        let new = fold(summaries.iter().copied(), level).into_values();
        for (key, mut zone) in zone_value::group(new) {
            if let Some(start) = key_time(&key) {
                starts.push(start);
            }
            let old = kv.get(tree, &key)?;
            let old_len = old.as_ref().map(Vec::len);
            if let Some(old) = old {
                match zone_value::decode_bucket(&key, &old) {
                    Ok(old) => merge_into(&mut zone, old),
                    Err(e) => {
                        tracing::error!(tree, key = ?key, error = %e, "zone roll-up does not decode; replaced")
                    }
                }
            }
            let value = zone_value::encode(&zone).map_err(|e| StoreError {
                operation: "encode",
                tree: tree.into(),
                message: e.to_string(),
            })?;
            sizes.add(
                tree,
                crate::tree_sizes::Delta::written(key.len(), value.len(), old_len),
            );
            batch.insert(key, value);
        }
        kv.apply(tree, batch)?;
        clock.record(level, starts);
    }
    Ok(sizes)
}

/// Merges the stored zone bucket `old` into `zone` (the new summaries' buckets), sensor by
/// sensor.
fn merge_into(zone: &mut ZoneBucket, old: ZoneBucket) {
    for (sensor, bucket) in old {
        match zone.entry(sensor) {
            std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().merge(&bucket),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(bucket);
            }
        }
    }
}

/// What a history query asks for: one site, optionally narrowed to a zone, a rack and a sensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Site.
    pub site: String,
    /// Zone; without it every zone of the site is read (a scan of the site's whole level).
    pub zone: Option<String>,
    /// Rack (needs nothing else: it filters the buckets read).
    pub rack: Option<String>,
    /// Sensor id.
    pub sensor: Option<String>,
    /// Start of the period (inclusive, bucket-aligned down).
    pub from: Timestamp,
    /// End of the period (inclusive).
    pub to: Timestamp,
}

/// A history answer: each sensor's figures over the period.
#[derive(Debug, Clone, Serialize)]
pub struct History {
    /// The level the answer was read from.
    pub level: Level,
    /// Start of the first bucket read.
    pub from: Timestamp,
    /// End of the period.
    pub to: Timestamp,
    /// Buckets read.
    pub buckets: u64,
    /// One merged roll-up per sensor, sorted by zone, rack, sensor.
    pub sensors: Vec<Rollup>,
}

/// The buckets of one period as [`RollupStore::period`] reads them: those ingest has moved past
/// (shared with the store's cache) and the open tail read from the store. Within a zone,
/// `closed` then `tail` is the key order of the whole period (a zone's keys run in time
/// order); across zones, each part is in key order.
#[derive(Debug, Clone)]
pub struct PeriodBuckets {
    /// The level read.
    pub level: Level,
    /// Start of the first bucket.
    pub from: Timestamp,
    /// Buckets starting at or before the newest written less two buckets (cached).
    pub closed: Arc<Vec<Rollup>>,
    /// The later buckets, read from the store.
    pub tail: Vec<Rollup>,
}

impl PeriodBuckets {
    /// Every bucket: `closed`, then `tail`.
    pub fn iter(&self) -> impl Iterator<Item = &Rollup> {
        self.closed.iter().chain(self.tail.iter())
    }
}

/// The roll-up trees of one store, with the retention that decides which level serves a query.
/// Clones share one [`MergeCache`].
#[derive(Clone)]
pub struct RollupStore {
    kv: Arc<dyn KvStore>,
    policy: RetentionPolicy,
    cache: Arc<MergeCache>,
}

impl std::fmt::Debug for RollupStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RollupStore")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl RollupStore {
    /// Roll-ups in `kv`, kept per `policy`.
    pub fn new(kv: Arc<dyn KvStore>, policy: RetentionPolicy) -> Self {
        RollupStore {
            kv,
            policy,
            cache: Arc::default(),
        }
    }

    /// Roll-ups in `kv` whose cache is judged by `clock` (writers then record on it with
    /// [`add_on_clock`]) instead of the process's [`WRITES`].
    pub fn with_clock(
        kv: Arc<dyn KvStore>,
        policy: RetentionPolicy,
        clock: &'static WriteClock,
    ) -> Self {
        RollupStore {
            kv,
            policy,
            cache: Arc::new(MergeCache::with_clock(clock)),
        }
    }

    /// The store behind these roll-ups.
    pub fn kv(&self) -> &Arc<dyn KvStore> {
        &self.kv
    }

    /// Reads served from the [`MergeCache`] so far ([`MergeCache::hits`]).
    pub fn cache_hits(&self) -> u64 {
        self.cache.hits()
    }

    /// Answers `query` at `now` from the level [`serving_level`] picks. Blocking: call it off
    /// the async runtime for long periods.
    pub fn history(&self, query: &HistoryQuery, now: Timestamp) -> Result<History, StoreError> {
        let (level, from, buckets) = self.buckets(query, now)?;
        Ok(History {
            level,
            from,
            to: query.to,
            buckets: buckets.len() as u64,
            sensors: per_sensor(&buckets),
        })
    }

    /// The level [`Self::history`] reads `query` from at `now`.
    pub fn serving_level(&self, query: &HistoryQuery, now: Timestamp) -> Level {
        serving_level(query.from, query.to, |l| self.policy.oldest(l, now))
    }

    /// The buckets of `query` at `now`, one per sensor and bucket, from the level
    /// [`serving_level`] picks, with that level and the start of the first bucket. Blocking.
    pub fn buckets(
        &self,
        query: &HistoryQuery,
        now: Timestamp,
    ) -> Result<(Level, Timestamp, Vec<Rollup>), StoreError> {
        let level = serving_level(query.from, query.to, |l| self.policy.oldest(l, now));
        let from = level.bucket_start(query.from);
        Ok((level, from, self.buckets_at(query, level)?))
    }

    /// One merged roll-up per sensor over `query`'s period (as [`per_sensor`] makes them), read
    /// from the level [`serving_level`] picks, with that level and the start of the first
    /// bucket. Merges of old periods are kept in the store's [`MergeCache`] and served from it
    /// until a write could have changed them (see [`merge_cache`]). Blocking.
    pub fn merged(
        &self,
        query: &HistoryQuery,
        now: Timestamp,
    ) -> Result<(Level, Timestamp, Arc<Vec<Rollup>>), StoreError> {
        let level = serving_level(query.from, query.to, |l| self.policy.oldest(l, now));
        let from = level.bucket_start(query.from);
        let key = MergeKey {
            filters: filters(query),
            level,
            first: from,
            last: level.bucket_start(query.to),
            shape: Shape::Merged,
        };
        if let Some(merged) = self.cache.get(&key, now) {
            return Ok((level, from, merged));
        }
        let ticket = self.cache.ticket(level);
        let merged = Arc::new(per_sensor(&self.buckets_at(query, level)?));
        self.cache.put(key, ticket, now, merged.clone());
        Ok((level, from, merged))
    }

    /// The buckets of `query` at `now`, as [`Self::buckets`] reads them, split where ingest
    /// has moved on: buckets starting two buckets or more before the newest one written (by
    /// the clock's reading before the read) come from the store's [`MergeCache`] when it
    /// holds them (and are kept there after a read), the rest is read from the store. Same
    /// buckets as [`Self::buckets`], in the order [`PeriodBuckets`] says. Blocking.
    pub fn period(
        &self,
        query: &HistoryQuery,
        now: Timestamp,
    ) -> Result<PeriodBuckets, StoreError> {
        let level = serving_level(query.from, query.to, |l| self.policy.oldest(l, now));
        let from = level.bucket_start(query.from);
        let last = level.bucket_start(query.to);
        let ticket = self.cache.ticket(level);
        let closed_last = ticket
            .newest()
            .map(|newest| Timestamp(newest.0.saturating_sub(2 * level.bucket_ms())))
            .map(|t| level.bucket_start(t).min(last))
            .filter(|t| *t >= from);
        let Some(closed_last) = closed_last else {
            return Ok(PeriodBuckets {
                level,
                from,
                closed: Arc::default(),
                tail: self.buckets_at(query, level)?,
            });
        };
        let key = MergeKey {
            filters: filters(query),
            level,
            first: from,
            last: closed_last,
            shape: Shape::Buckets,
        };
        let closed = match self.cache.get(&key, now) {
            Some(closed) => closed,
            None => {
                let part = HistoryQuery {
                    to: closed_last,
                    ..query.clone()
                };
                let closed = Arc::new(self.buckets_at(&part, level)?);
                self.cache.put(key, ticket, now, closed.clone());
                closed
            }
        };
        let tail = if closed_last < last {
            let part = HistoryQuery {
                from: Timestamp(closed_last.0 + level.bucket_ms()),
                ..query.clone()
            };
            self.buckets_at(&part, level)?
        } else {
            Vec::new()
        };
        Ok(PeriodBuckets {
            level,
            from,
            closed,
            tail,
        })
    }

    /// `query`'s buckets at `level` (of `kind` only, when given) as one series per sensor.
    /// Blocking.
    pub fn series(
        &self,
        query: &HistoryQuery,
        level: Level,
        kind: Option<SensorKind>,
    ) -> Result<Series, StoreError> {
        let buckets = self.buckets_at(query, level)?;
        Ok(Series {
            level,
            from: level.bucket_start(query.from),
            to: query.to,
            series: series::group(
                buckets
                    .into_iter()
                    .filter(|b| kind.is_none_or(|k| b.kind == k)),
            ),
        })
    }

    /// The buckets of `query` from `level` (whatever the retention keeps of it), one per sensor
    /// and bucket, in key order. Blocking.
    pub fn buckets_at(
        &self,
        query: &HistoryQuery,
        level: Level,
    ) -> Result<Vec<Rollup>, StoreError> {
        let from = level.bucket_start(query.from);
        let (start, prefix) = match &query.zone {
            Some(zone) => (
                zone_time_key(&query.site, zone, from),
                zone_prefix(&query.site, zone),
            ),
            None => {
                let mut p = query.site.as_bytes().to_vec();
                p.push(0);
                (p.clone(), p)
            }
        };
        let mut reader = BucketReader::new(|rack: Option<&str>, sensor: &str| {
            query.rack.as_deref().is_none_or(|r| rack == Some(r))
                && query.sensor.as_deref().is_none_or(|s| sensor == s)
        });
        let zoned = query.zone.is_some();
        visit_from(self.kv.as_ref(), level.tree(), &start, |key, value| {
            if !key.starts_with(&prefix) {
                return ControlFlow::Break(());
            }
            let Some(t) = key_time(key) else {
                return ControlFlow::Continue(());
            };
            if t > query.to {
                // Within one zone keys are in time order: nothing later matches.
                return if zoned {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                };
            }
            if t < from {
                return ControlFlow::Continue(());
            }
            if let Err(e) = reader.push(key, value) {
                tracing::error!(key = ?key, error = %e, "roll-up does not decode; skipped");
            }
            ControlFlow::Continue(())
        })?;
        Ok(reader.finish())
    }
}

/// The filters of `query`, as a [`MergeKey`] names them.
fn filters(query: &HistoryQuery) -> (String, Option<String>, Option<String>, Option<String>) {
    (
        query.site.clone(),
        query.zone.clone(),
        query.rack.clone(),
        query.sensor.clone(),
    )
}

/// Entries and an estimate of bytes (keys plus values) of one tree.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TreeSize {
    /// Tree name.
    pub tree: String,
    /// Entries.
    pub entries: u64,
    /// Sum of key and value lengths (the backend's own overhead is not counted).
    pub bytes: u64,
}

/// Sizes of `trees`, read by a full scan of each (for `/api/v1/stats`; cost grows with the
/// store, so callers run it off the async runtime).
pub fn tree_sizes(kv: &dyn KvStore, trees: &[&str]) -> Result<Vec<TreeSize>, StoreError> {
    trees
        .iter()
        .map(|&tree| {
            let mut size = TreeSize {
                tree: tree.to_string(),
                entries: 0,
                bytes: 0,
            };
            visit_from(kv, tree, b"", |k, v| {
                size.entries += 1;
                size.bytes += (k.len() + v.len()) as u64;
                ControlFlow::Continue(())
            })?;
            Ok(size)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldaisle_core::{Location, SensorKind};
    use coldaisle_store::MemoryStore;

    const MIN: i64 = 60_000;
    const DAY: i64 = 86_400_000;

    fn summary(zone: &str, rack: &str, sensor: &str, from: i64, value: f64) -> ReadingSummary {
        ReadingSummary {
            sensor: sensor.into(),
            kind: SensorKind::InletTemp,
            location: Location {
                site: "par1".into(),
                zone: zone.into(),
                row: None,
                rack: Some(rack.into()),
            },
            from: Timestamp(from),
            to: Timestamp(from + 50_000),
            count: 1,
            min: value,
            max: value,
            sum: value,
            last: value,
        }
    }

    fn store_with(summaries: &[ReadingSummary]) -> RollupStore {
        let kv: Arc<dyn KvStore> = Arc::new(MemoryStore::default());
        // Two ingest batches, to exercise the read-merge-write path.
        let refs: Vec<&ReadingSummary> = summaries.iter().collect();
        let (a, b) = refs.split_at(refs.len() / 2);
        add(kv.as_ref(), a).expect("add");
        add(kv.as_ref(), b).expect("add");
        RollupStore::new(kv, RetentionPolicy::default())
    }

    fn query(zone: Option<&str>, from: i64, to: i64) -> HistoryQuery {
        HistoryQuery {
            site: "par1".into(),
            zone: zone.map(str::to_string),
            rack: None,
            sensor: None,
            from: Timestamp(from),
            to: Timestamp(to),
        }
    }

    #[test]
    fn all_levels_agree_over_a_period() {
        // Three days of minutes for two sensors in two zones.
        let now = 10 * DAY;
        let mut s = Vec::new();
        for m in 0..(3 * 24 * 60) {
            let t = now - 3 * DAY + m * MIN;
            s.push(summary("a", "r1", "t1", t, 20.0 + (m % 7) as f64));
            s.push(summary("b", "r2", "t2", t, 30.0));
        }
        let store = store_with(&s);
        let mut counts = Vec::new();
        // One hour (minutes), two days (hours), 3 days read at every level.
        for (from, level) in [
            (now - 3_600_000, Level::Minute),
            (now - 2 * DAY, Level::Hour),
            (now - 3 * DAY, Level::Hour),
        ] {
            let h = store
                .history(&query(Some("a"), from, now), Timestamp(now))
                .expect("history");
            assert_eq!(h.level, level, "from {from}");
            assert_eq!(h.sensors.len(), 1);
            assert_eq!(h.sensors[0].sensor, "t1");
            counts.push(h.sensors[0].count);
        }
        assert_eq!(counts, vec![60, 2 * 24 * 60, 3 * 24 * 60]);
        let h = store
            .history(&query(Some("a"), now - 3 * DAY, now), Timestamp(now))
            .expect("history");
        assert_eq!((h.sensors[0].min, h.sensors[0].max), (20.0, 26.0));
        // The whole site: both zones.
        let site = store
            .history(&query(None, now - 3 * DAY, now), Timestamp(now))
            .expect("history");
        assert_eq!(site.sensors.len(), 2);
        assert_eq!(site.sensors[1].mean(), 30.0);
    }

    #[test]
    fn rack_and_sensor_filters_and_old_periods_use_coarser_levels() {
        let now = 400 * DAY;
        let s = [
            summary("a", "r1", "t1", now - 100 * DAY, 18.0),
            summary("a", "r2", "t2", now - 100 * DAY, 25.0),
            summary("a", "r1", "t1", now - MIN, 22.0),
        ];
        let store = store_with(&s);
        let mut q = query(Some("a"), now - 101 * DAY, now - 99 * DAY);
        let h = store.history(&q, Timestamp(now)).expect("history");
        // 100 days ago is past hour retention (90 d): served from days.
        assert_eq!(h.level, Level::Day);
        assert_eq!(h.sensors.len(), 2);
        q.rack = Some("r1".into());
        let h = store.history(&q, Timestamp(now)).expect("history");
        assert_eq!(h.sensors.len(), 1);
        assert_eq!(h.sensors[0].last, 18.0);
        q.rack = None;
        q.sensor = Some("t2".into());
        let h = store.history(&q, Timestamp(now)).expect("history");
        assert_eq!(h.sensors.len(), 1);
        assert_eq!(h.sensors[0].max, 25.0);
        // A period with nothing in it.
        let empty = store
            .history(
                &query(Some("a"), now - 50 * DAY, now - 40 * DAY),
                Timestamp(now),
            )
            .expect("history");
        assert!(empty.sensors.is_empty());
    }

    #[test]
    fn stores_written_as_json_keep_working() {
        // A store as collectors before the binary format left it: every value JSON.
        let now = 10 * DAY;
        let kv: Arc<dyn KvStore> = Arc::new(MemoryStore::default());
        let old: Vec<ReadingSummary> = (0..120)
            .map(|m| summary("a", "r1", "t1", now - 3 * 3_600_000 + m * MIN, 20.0))
            .collect();
        for level in Level::ALL {
            let mut batch = WriteBatch::default();
            for (key, bucket) in fold(&old, level) {
                batch.insert(key, serde_json::to_vec(&bucket).expect("json"));
            }
            kv.apply(level.tree(), batch).expect("apply");
        }
        let store = RollupStore::new(kv.clone(), RetentionPolicy::default());
        let q = query(Some("a"), now - DAY, now);
        let h = store.history(&q, Timestamp(now)).expect("history");
        assert_eq!((h.sensors[0].count, h.sensors[0].max), (120, 20.0));
        // A new summary merges into the JSON bucket and rewrites it in the binary layout.
        let new = summary("a", "r1", "t1", now - 3 * 3_600_000 + 5 * MIN, 30.0);
        add(kv.as_ref(), &[&new]).expect("add");
        let h = store.history(&q, Timestamp(now)).expect("history");
        assert_eq!((h.sensors[0].count, h.sensors[0].max), (121, 30.0));
        let hours = kv.scan(Level::Hour.tree(), b"", 10).expect("scan");
        let tags: Vec<u8> = hours.iter().map(|(_, v)| v[0]).collect();
        // The touched hour got a zone value (the new summary) beside its JSON bucket, which
        // is left as it was; the untouched hour is still JSON only. All are read.
        assert_eq!(tags, vec![zone_value::FORMAT_V2, b'{', b'{']);
        let zone = zone_value::decode_any(&hours[0].0, &hours[0].1).expect("decode");
        assert_eq!((zone.len(), zone[0].count), (1, 1));
        // Read at the hour level, the two shapes of the touched hour are one bucket.
        let touched = query(Some("a"), now - 3 * 3_600_000, now - 2 * 3_600_000 - 1);
        let hour = store.buckets_at(&touched, Level::Hour).expect("buckets");
        assert_eq!(hour.len(), 1);
        assert_eq!((hour[0].count, hour[0].max), (61, 30.0));
    }

    #[test]
    fn tree_sizes_count_entries_and_bytes() {
        let store = store_with(&[
            summary("a", "r1", "t1", 0, 1.0),
            summary("a", "r1", "t1", 2 * MIN, 1.0),
        ]);
        let sizes = tree_sizes(
            store.kv().as_ref(),
            &[Level::Minute.tree(), Level::Hour.tree()],
        )
        .expect("sizes");
        assert_eq!(sizes[0].entries, 2);
        assert_eq!(sizes[1].entries, 1);
        assert!(sizes[0].bytes > sizes[1].bytes);
    }
}

#[cfg(test)]
mod period_tests;

#[cfg(test)]
mod layout_tests;
