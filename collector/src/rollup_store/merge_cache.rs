//! A bounded cache of per-sensor merges over closed periods (and of the closed buckets of a
//! current period), and the write clock that says when a cached entry may have gone stale.
//!
//! A report compares its period with the previous one of the same length. At the day level
//! the previous period's buckets change only when a day ends (the period slides by a bucket)
//! or when a late summary lands in one of them, yet reading and merging them is half of a
//! report's work. So the merge is kept, keyed by exactly what was read (query filters,
//! level, first and last bucket start, [`Shape`]), and dropped when it may be stale. The
//! current period's buckets that ingest has moved past (all but the newest two) are closed
//! in the same sense, so they are kept too, bucket by bucket ([`Shape::Buckets`]), and a
//! report reads only the open tail from the store.
//!
//! Invariants:
//! - **Late writes invalidate.** [`WriteClock`] ([`WRITES`] for the process) keeps, per level, the newest bucket start
//!   written in this process and a *late-write generation*, bumped after every write that
//!   touched a bucket older than one bucket before that newest start. An entry records the
//!   generation read before its buckets were read and is served only while it is unchanged.
//! - **Only old ranges are cached**: an entry is kept only if its last bucket starts more than
//!   one bucket before the newest start read (with the generation) before the read. A write
//!   the read missed finished after that point, so its newest start is at least as late; if
//!   it touched the entry's range it was a late write and bumped the generation.
//! - **Other writers are bounded by age**: a collector reading zones that another process
//!   writes (a cluster partition) does not see their writes; entries expire after
//!   [`MAX_AGE`] of the caller's clock whatever the generation. A process that never wrote
//!   (a standby) caches nothing, since it has no newest start.
//! - **Compaction is not a write**: `retention.rs` deletes expired buckets without the clock;
//!   a merge that still counts them is served at most [`MAX_AGE`] longer (only periods at a
//!   level's retention edge have such buckets).
//! - **Bounded**: at most [`MAX_ENTRIES`] entries and [`MAX_BYTES`] in all, entries held in
//!   their compact form ([`CompactRollups`]: names once, numbers per roll-up), so the budget
//!   holds every zone of a 200-agent fleet; the oldest entry goes first. A hit expands the
//!   entry back into roll-ups (one allocation per string, no decoding, no store read).

use super::compact::CompactRollups;
use crate::rollup::{Level, Rollup};
use coldaisle_core::Timestamp;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Most entries kept: two per zone a report reads (its closed days and its previous period's
/// merge), for a fleet of 500 zones.
pub const MAX_ENTRIES: usize = 1024;
/// Most bytes kept over all entries ([`CompactRollups::bytes`]): a 30-day report of a
/// 500-sensor zone keeps about 15,000 roll-ups (29 closed days and the previous period's
/// merge) in about 1.2 MB, so about 50 such zones are served from the cache at once. Kept
/// well under the collector's memory budget (issue 13: ≤ 200 MB in all); a miss costs a cold
/// read, which meets the report's latency goal on its own (BENCHMARKS.md, facility report
/// part 7: p99 32 ms cold at 200 × 500).
pub const MAX_BYTES: usize = 64 << 20;
/// How long an entry is served, by the caller's clock, whatever the generation says.
pub const MAX_AGE: Duration = Duration::from_secs(600);

/// Per level: the newest bucket start written and the late-write generation.
#[derive(Debug)]
pub struct WriteClock {
    newest: [AtomicI64; 3],
    late: [AtomicU64; 3],
}

/// The process's clock: every store write goes through [`WriteClock::record`] on it.
pub static WRITES: WriteClock = WriteClock::new();

fn slot(level: Level) -> usize {
    match level {
        Level::Minute => 0,
        Level::Hour => 1,
        Level::Day => 2,
    }
}

impl WriteClock {
    /// A clock that has seen no write.
    pub const fn new() -> WriteClock {
        WriteClock {
            newest: [
                AtomicI64::new(i64::MIN),
                AtomicI64::new(i64::MIN),
                AtomicI64::new(i64::MIN),
            ],
            late: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    /// Notes that buckets of `level` starting at `starts` were just written (call it after the
    /// write is applied).
    pub fn record(&self, level: Level, starts: impl IntoIterator<Item = Timestamp>) {
        let i = slot(level);
        let starts: Vec<i64> = starts.into_iter().map(|t| t.0).collect();
        let Some(&latest) = starts.iter().max() else {
            return;
        };
        let before = self.newest[i].fetch_max(latest, Ordering::SeqCst);
        let limit = before.max(latest).saturating_sub(level.bucket_ms());
        if starts.iter().any(|&s| s < limit) {
            self.late[i].fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Reads the clock of `level`; take it before reading the buckets.
    pub fn ticket(&self, level: Level) -> Ticket {
        let i = slot(level);
        Ticket {
            level,
            generation: self.late[i].load(Ordering::SeqCst),
            newest: self.newest[i].load(Ordering::SeqCst),
        }
    }

    fn current(&self, ticket: &Ticket) -> bool {
        self.late[slot(ticket.level)].load(Ordering::SeqCst) == ticket.generation
    }
}

impl Default for WriteClock {
    fn default() -> Self {
        WriteClock::new()
    }
}

/// What a cached entry holds for its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One merged roll-up per sensor ([`crate::rollup::per_sensor`]).
    Merged,
    /// The buckets themselves, in key order.
    Buckets,
}

/// What a cached merge was read for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeKey {
    /// Site, zone, rack and sensor filters.
    pub filters: (String, Option<String>, Option<String>, Option<String>),
    /// Level read.
    pub level: Level,
    /// First bucket start read.
    pub first: Timestamp,
    /// Last bucket start read.
    pub last: Timestamp,
    /// Merged per sensor, or the buckets as read.
    pub shape: Shape,
}

/// The clock's reading before a read: generation and newest start of one level.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    level: Level,
    generation: u64,
    newest: i64,
}

impl Ticket {
    /// The newest bucket start written at this level when the ticket was taken; `None` before
    /// any write (a process that never wrote).
    pub fn newest(&self) -> Option<Timestamp> {
        (self.newest != i64::MIN).then_some(Timestamp(self.newest))
    }
}

struct Entry {
    key: MergeKey,
    ticket: Ticket,
    made_at: Timestamp,
    merged: Arc<CompactRollups>,
}

/// The cache (see the module invariants).
pub struct MergeCache {
    clock: &'static WriteClock,
    /// Most bytes kept ([`MAX_BYTES`] unless a test sets less).
    max_bytes: usize,
    entries: Mutex<VecDeque<Entry>>,
    /// Entries served so far.
    hits: AtomicU64,
}

impl Default for MergeCache {
    /// A cache judged by the process's clock, [`WRITES`].
    fn default() -> Self {
        MergeCache::with_clock(&WRITES)
    }
}

impl std::fmt::Debug for MergeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.entries.lock().map(|e| e.len()).unwrap_or(0);
        f.debug_struct("MergeCache").field("entries", &len).finish()
    }
}

impl MergeCache {
    /// An empty cache judged by `clock`.
    pub fn with_clock(clock: &'static WriteClock) -> Self {
        MergeCache::with_budget(clock, MAX_BYTES)
    }

    /// An empty cache judged by `clock` that keeps at most `max_bytes`.
    pub fn with_budget(clock: &'static WriteClock, max_bytes: usize) -> Self {
        MergeCache {
            clock,
            max_bytes,
            entries: Mutex::new(VecDeque::new()),
            hits: AtomicU64::new(0),
        }
    }

    /// How many times [`Self::get`] served an entry (a hit gives a new copy of the roll-ups,
    /// so this is how callers and tests tell a hit from a read).
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Reads the clock of `level`; take it before reading the buckets to [`Self::put`].
    pub fn ticket(&self, level: Level) -> Ticket {
        self.clock.ticket(level)
    }

    /// The merge stored for `key`, if it is still valid at `now`.
    pub fn get(&self, key: &MergeKey, now: Timestamp) -> Option<Arc<Vec<Rollup>>> {
        let mut entries = self.entries.lock().ok()?;
        let at = entries.iter().position(|e| e.key == *key)?;
        let e = &entries[at];
        let young = now.0.saturating_sub(e.made_at.0) < MAX_AGE.as_millis() as i64;
        if young && self.clock.current(&e.ticket) {
            let compact = e.merged.clone();
            drop(entries);
            self.hits.fetch_add(1, Ordering::Relaxed);
            Some(Arc::new(compact.expand()))
        } else {
            entries.remove(at);
            None
        }
    }

    /// Keeps `merged`, read for `key` after `ticket` was taken, if the invariants allow it.
    pub fn put(&self, key: MergeKey, ticket: Ticket, now: Timestamp, merged: Arc<Vec<Rollup>>) {
        let old_enough = key.last.0 < ticket.newest.saturating_sub(key.level.bucket_ms());
        if !old_enough || !self.clock.current(&ticket) {
            return;
        }
        let merged = Arc::new(CompactRollups::of(&merged));
        let size = merged.bytes();
        if size > self.max_bytes {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        entries.retain(|e| e.key != key);
        let mut held: usize = entries.iter().map(|e| e.merged.bytes()).sum();
        while entries.len() >= MAX_ENTRIES || held + size > self.max_bytes {
            match entries.pop_front() {
                Some(e) => held -= e.merged.bytes(),
                None => break,
            }
        }
        entries.push_back(Entry {
            key,
            ticket,
            made_at: now,
            merged,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn key(zone: &str, last: i64) -> MergeKey {
        MergeKey {
            filters: ("s".into(), Some(zone.into()), None, None),
            level: Level::Day,
            first: Timestamp(last - 30 * DAY),
            last: Timestamp(last),
            shape: Shape::Merged,
        }
    }

    /// Stores an empty merge under `k` at `now`, with a ticket taken right before the put
    /// (no write can fall between them).
    fn put_empty(cache: &MergeCache, k: &MergeKey, now: Timestamp) {
        cache.put(
            k.clone(),
            cache.ticket(Level::Day),
            now,
            Arc::new(Vec::new()),
        );
    }

    #[test]
    fn a_merge_is_served_until_a_late_write_or_its_age() {
        static CLOCK: WriteClock = WriteClock::new();
        let cache = MergeCache::with_clock(&CLOCK);
        let now = Timestamp(100 * DAY);
        CLOCK.record(Level::Day, [now]);
        let k = key("a", 69 * DAY);
        put_empty(&cache, &k, now);
        assert!(cache.get(&k, now).is_some());
        assert!(cache.get(&key("b", 69 * DAY), now).is_none());
        // Writes to the newest buckets leave it alone.
        CLOCK.record(Level::Day, [now, Timestamp(now.0 - DAY)]);
        assert!(cache.get(&k, now).is_some());
        let later = Timestamp(now.0 + MAX_AGE.as_millis() as i64);
        assert!(cache.get(&k, later).is_none(), "too old");
        // Stored again, then a write into an old bucket: gone.
        put_empty(&cache, &k, now);
        assert!(cache.get(&k, now).is_some());
        CLOCK.record(Level::Day, [Timestamp(60 * DAY)]);
        assert!(cache.get(&k, now).is_none(), "late write");
        // Other levels' late writes do not count.
        put_empty(&cache, &k, now);
        CLOCK.record(Level::Hour, [now, Timestamp(0)]);
        assert!(cache.get(&k, now).is_some());
    }

    #[test]
    fn recent_ranges_stale_tickets_and_a_clock_without_writes_keep_nothing() {
        static CLOCK: WriteClock = WriteClock::new();
        let cache = MergeCache::with_clock(&CLOCK);
        let now = Timestamp(100 * DAY);
        let old = key("o", 50 * DAY);
        // No write seen yet (a standby): nothing is kept.
        put_empty(&cache, &old, now);
        assert!(cache.get(&old, now).is_none());
        CLOCK.record(Level::Day, [now]);
        // The range reaches the bucket before the newest: ingest may still add to it.
        let recent = key("r", 99 * DAY);
        put_empty(&cache, &recent, now);
        assert!(cache.get(&recent, now).is_none());
        // A late write between the ticket and the put.
        let ticket = cache.ticket(Level::Day);
        CLOCK.record(Level::Day, [Timestamp(10 * DAY)]);
        cache.put(old.clone(), ticket, now, Arc::new(Vec::new()));
        assert!(cache.get(&old, now).is_none());
    }

    #[test]
    fn the_cache_stays_within_its_bounds() {
        static CLOCK: WriteClock = WriteClock::new();
        let cache = MergeCache::with_clock(&CLOCK);
        let now = Timestamp(100 * DAY);
        CLOCK.record(Level::Day, [now]);
        for n in 0..(MAX_ENTRIES + 5) {
            put_empty(&cache, &key(&format!("z{n}"), DAY), now);
        }
        let len = cache.entries.lock().map(|e| e.len()).unwrap_or(0);
        assert_eq!(len, MAX_ENTRIES);
        assert!(cache.get(&key("z0", DAY), now).is_none(), "oldest evicted");
        assert!(cache
            .get(&key(&format!("z{}", MAX_ENTRIES + 4), DAY), now)
            .is_some());
    }

    fn rollups(zone: &str, n: usize) -> Arc<Vec<Rollup>> {
        let one = Rollup {
            sensor: "t".into(),
            kind: coldaisle_core::SensorKind::InletTemp,
            location: coldaisle_core::Location {
                site: "s".into(),
                zone: zone.into(),
                row: None,
                rack: Some("r1".into()),
            },
            start: Timestamp(0),
            count: 1,
            sum: 1.0,
            min: 1.0,
            max: 1.0,
            last: 1.0,
            last_at: Timestamp(0),
            summaries: 1,
        };
        Arc::new(
            (0..n)
                .map(|i| Rollup {
                    start: Timestamp(i as i64 * DAY),
                    sum: i as f64,
                    ..one.clone()
                })
                .collect(),
        )
    }

    #[test]
    fn the_byte_budget_evicts_the_oldest_and_hits_give_back_the_same_rollups() {
        static CLOCK: WriteClock = WriteClock::new();
        let now = Timestamp(100 * DAY);
        CLOCK.record(Level::Day, [now]);
        let size = CompactRollups::of(&rollups("a", 100)).bytes();
        // Room for two entries of 100 roll-ups, not three.
        let cache = MergeCache::with_budget(&CLOCK, 2 * size + size / 2);
        for zone in ["a", "b"] {
            cache.put(
                key(zone, DAY),
                cache.ticket(Level::Day),
                now,
                rollups(zone, 100),
            );
        }
        assert_eq!(cache.get(&key("a", DAY), now), Some(rollups("a", 100)));
        assert_eq!(cache.hits(), 1);
        cache.put(
            key("c", DAY),
            cache.ticket(Level::Day),
            now,
            rollups("c", 100),
        );
        assert!(cache.get(&key("a", DAY), now).is_none(), "oldest evicted");
        assert_eq!(cache.get(&key("b", DAY), now), Some(rollups("b", 100)));
        assert_eq!(cache.get(&key("c", DAY), now), Some(rollups("c", 100)));
        // A merge larger than the whole budget is not kept, and evicts nothing.
        cache.put(
            key("big", DAY),
            cache.ticket(Level::Day),
            now,
            rollups("big", 300),
        );
        assert!(cache.get(&key("big", DAY), now).is_none());
        assert!(cache.get(&key("c", DAY), now).is_some());
        assert!(cache.get(&key("big", DAY), now).is_none());
    }
}
