//! Retention of the reading-summary roll-ups and of the raw records, and the background
//! compaction that enforces both.
//!
//! Invariants:
//! - A bucket is deleted only once it has *ended* before its level's cutoff (`now - retention`),
//!   so a partly retained bucket is kept whole.
//! - Roll-ups: incidents, problems and their analysis never read them, so no open problem can
//!   need what their compaction deletes.
//! - Raw records: the cut-off is `min(now - retention.records, the oldest event time the
//!   analysis still needs)` ([`record_cutoff`], [`crate::analysis::Analysis::oldest_needed_time`]:
//!   open incidents, open or verifying problems and their incidents), so nothing an open
//!   incident or problem refers to is deleted. Age is *event time* (the payload's `ts`), not
//!   receive time: the rules' windows are in event time, so "older than the longest window plus
//!   a margin" only means "no rule can read it" in event time; and records do not store their
//!   receive time. The deletion itself is [`CollectorStore::delete_records_before`] (its own
//!   invariants: only what the agent's ack covers, so a resend of a deleted record stays a
//!   duplicate).
//! - Compaction reads and deletes in chunks through [`KvStore`] and never holds the state lock
//!   while it scans (it takes the read lock once per pass, to ask the analysis for the needed
//!   time), so ingest goes on while it runs. Ingest only adds to buckets of recent summaries; a
//!   summary that arrives for an already expired bucket is compacted again on the next tick.

use crate::rollup::{key_time, Level};
use crate::state::SharedState;
use crate::store::{CollectorStore, Deleted};
use crate::tree_sizes::{Delta, Deltas};
use coldaisle_config::collector::RetentionConfig;
use coldaisle_core::Timestamp;
use coldaisle_store::{KvStore, StoreError, WriteBatch};
use serde::Serialize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Keys removed per write batch.
const DELETE_CHUNK: usize = 4096;

/// How long each level is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// One-minute buckets.
    pub minute: Duration,
    /// One-hour buckets.
    pub hour: Duration,
    /// One-day buckets.
    pub day: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self::from_config(&RetentionConfig::default())
    }
}

impl RetentionPolicy {
    /// The policy of a validated `[retention]` section.
    pub fn from_config(c: &RetentionConfig) -> Self {
        RetentionPolicy {
            minute: c.minute,
            hour: c.hour,
            day: c.day,
        }
    }

    /// Retention of one level.
    pub fn of(&self, level: Level) -> Duration {
        match level {
            Level::Minute => self.minute,
            Level::Hour => self.hour,
            Level::Day => self.day,
        }
    }

    /// The oldest bucket start of `level` still kept at `now` (pure).
    pub fn oldest(&self, level: Level, now: Timestamp) -> Timestamp {
        level.bucket_start(now.minus(self.of(level)))
    }

    /// True if the bucket of `level` starting at `start` is past retention at `now`.
    pub fn expired(&self, level: Level, start: Timestamp, now: Timestamp) -> bool {
        start < self.oldest(level, now)
    }
}

/// What one compaction pass removed, per level.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Compacted {
    /// Buckets removed, finest level first.
    pub removed: [u64; 3],
    /// Buckets examined.
    pub scanned: u64,
}

/// Removes every expired bucket of every level at `now`. Keys that are not roll-up keys are
/// kept and logged. `stop` is polled per key: once it answers true the pass deletes what it
/// has found so far and returns (the rest waits for the next pass), so shutdown is not held up.
///
/// A zone's keys run in time order (`site, zone, start`, zone values and older per-sensor
/// buckets alike: [`crate::rollup::zone_value`]), so the walk reads each zone from its oldest
/// bucket and leaves it at its first bucket still kept ([`expired_keys`]): a pass reads what
/// it deletes plus one entry per zone, not the whole level.
pub fn compact(
    kv: &dyn KvStore,
    policy: &RetentionPolicy,
    now: Timestamp,
    stop: &dyn Fn() -> bool,
) -> Result<Compacted, StoreError> {
    let mut out = Compacted::default();
    for (i, level) in Level::ALL.into_iter().enumerate() {
        let tree = level.tree();
        let doomed = expired_keys(
            kv,
            level,
            |start| policy.expired(level, start, now),
            stop,
            &mut out.scanned,
        )?;
        out.removed[i] = doomed.len() as u64;
        for chunk in doomed.chunks(DELETE_CHUNK) {
            let mut batch = WriteBatch::default();
            let mut sizes = Deltas::default();
            for (key, value) in chunk {
                sizes.add(tree, Delta::removed(key.len(), *value));
                batch.remove(key.clone());
            }
            kv.apply(tree, batch)?;
            crate::tree_sizes::add(kv, &sizes)?;
        }
    }
    kv.flush()?;
    Ok(out)
}

/// Most entries read per scan while a zone's buckets keep expiring (the first read of a
/// zone asks for one: most zones have nothing to delete).
const WALK_CHUNK: usize = 256;

/// The keys (with their value lengths) of `level`'s buckets whose start `expired` accepts,
/// walking each zone from its oldest bucket to its first kept one, then seeking the next
/// zone. Counts the entries read in `scanned`; stops early (with what it found) once `stop`
/// answers true.
fn expired_keys(
    kv: &dyn KvStore,
    level: Level,
    expired: impl Fn(Timestamp) -> bool,
    stop: &dyn Fn() -> bool,
    scanned: &mut u64,
) -> Result<Vec<(Vec<u8>, usize)>, StoreError> {
    let tree = level.tree();
    let mut doomed = Vec::new();
    let mut from = Vec::new();
    let mut limit = 1;
    loop {
        let chunk = kv.scan(tree, &from, limit)?;
        let Some((last, _)) = chunk.last() else {
            return Ok(doomed);
        };
        // By default go on right after the chunk, with a longer read.
        let mut next = last.clone();
        next.push(0);
        limit = (limit * 4).min(WALK_CHUNK);
        for (key, value) in &chunk {
            if stop() {
                return Ok(doomed);
            }
            *scanned += 1;
            match key_time(key) {
                Some(start) if expired(start) => doomed.push((key.clone(), value.len())),
                Some(_) => {
                    // The zone's later keys are younger still: seek the next zone.
                    if let Some(after) = after_zone(key) {
                        next = after;
                        limit = 1;
                        break;
                    }
                }
                None => tracing::warn!(tree, key = ?key, "not a roll-up key; kept"),
            }
        }
        from = next;
    }
}

/// The smallest key after every key of `key`'s zone (`site 0x00 zone 0x01`); `None` if `key`
/// is not a roll-up key.
fn after_zone(key: &[u8]) -> Option<Vec<u8>> {
    let site_end = key.iter().position(|&b| b == 0)?;
    let zone_end = site_end + 1 + key.get(site_end + 1..)?.iter().position(|&b| b == 0)?;
    let mut after = key[..=zone_end].to_vec();
    *after.last_mut()? = 1;
    Some(after)
}

/// The cut-off of raw records at `now` (pure): records with an event time before it may be
/// deleted. `keep` is `retention.records`; `needed` the oldest event time the analysis still
/// needs ([`crate::analysis::Analysis::oldest_needed_time`]), which holds the cut-off back.
pub fn record_cutoff(now: Timestamp, keep: Duration, needed: Option<Timestamp>) -> Timestamp {
    let by_age = now.minus(keep);
    needed.map_or(by_age, |n| by_age.min(n))
}

/// What raw-record retention needs besides the store.
#[derive(Clone)]
pub struct RecordRetention {
    /// The collector store (the same handle as ingest's, so a pass knows how far ingest got).
    pub store: CollectorStore,
    /// `retention.records`.
    pub keep: Duration,
    /// The state, read once per pass for the analysis's oldest needed time.
    pub state: SharedState,
}

/// What compaction did since start, for `/api/v1/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CompactionStats {
    /// Passes finished.
    pub passes: u64,
    /// Raw records deleted (with their index entries).
    pub records_deleted: u64,
    /// Index entries without their record, deleted.
    pub index_entries_deleted: u64,
    /// Old records the last pass kept because their agent's ack had not reached them.
    pub records_held: u64,
    /// Roll-up buckets deleted, all levels.
    pub rollups_deleted: u64,
    /// When the last pass ended (collector clock).
    pub last_at: Option<Timestamp>,
    /// How long the last pass took, in milliseconds.
    pub last_duration_ms: Option<u64>,
    /// The raw-record cut-off of the last pass.
    pub last_cutoff: Option<Timestamp>,
    /// The error of the last pass, if it failed (retried on the next tick).
    pub last_error: Option<String>,
}

/// Compaction figures shared between the task and the API.
pub type CompactionBook = Arc<Mutex<CompactionStats>>;

/// The compaction task's inputs.
pub struct Compactor {
    /// The store.
    pub kv: Arc<dyn KvStore>,
    /// Roll-up retention.
    pub policy: RetentionPolicy,
    /// Raw-record retention (`None`: raw records are kept).
    pub records: Option<RecordRetention>,
    /// Where each pass is counted.
    pub book: CompactionBook,
}

/// One pass: roll-ups, then raw records before `cutoff`.
fn pass(
    kv: &dyn KvStore,
    policy: &RetentionPolicy,
    records: Option<(&CollectorStore, Timestamp)>,
    now: Timestamp,
    stop: &dyn Fn() -> bool,
) -> Result<(Compacted, Deleted), StoreError> {
    let rollups = compact(kv, policy, now, stop)?;
    let deleted = match records {
        Some((store, cutoff)) => store.delete_records_before(cutoff, stop)?,
        None => Deleted::default(),
    };
    Ok((rollups, deleted))
}

/// Runs a compaction pass every `every` on a blocking thread until `shutdown` fires. Failures
/// are logged, counted and retried on the next tick.
pub async fn run(
    compactor: Compactor,
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let now = Timestamp::now();
        let records = match &compactor.records {
            Some(r) => {
                // The read lock only for this question, never during the scan.
                let needed = r.state.read().await.analysis.oldest_needed_time();
                Some((r.store.clone(), record_cutoff(now, r.keep, needed)))
            }
            None => None,
        };
        let cutoff = records.as_ref().map(|(_, c)| *c);
        let (kv, policy, stop) = (compactor.kv.clone(), compactor.policy, shutdown.clone());
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            let records = records.as_ref().map(|(store, cutoff)| (store, *cutoff));
            pass(kv.as_ref(), &policy, records, now, &|| *stop.borrow())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
        let took = started.elapsed();
        let mut book = compactor
            .book
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        book.last_at = Some(Timestamp::now());
        book.last_duration_ms = Some(u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
        book.last_cutoff = cutoff;
        match result {
            Ok((c, d)) => {
                book.passes += 1;
                book.records_deleted += d.records;
                book.index_entries_deleted += d.dangling;
                book.records_held = d.held;
                book.rollups_deleted += c.removed.iter().sum::<u64>();
                book.last_error = None;
                tracing::info!(
                    minute = c.removed[0],
                    hour = c.removed[1],
                    day = c.removed[2],
                    scanned = c.scanned,
                    records = d.records,
                    index_entries = d.dangling,
                    held = d.held,
                    cutoff = ?cutoff,
                    took_ms = took.as_millis(),
                    "compaction"
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "compaction failed; retried next tick");
                book.last_error = Some(e);
            }
        }
    }
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod records_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::{fold, Rollup};
    use coldaisle_core::{Location, ReadingSummary, SensorKind};
    use coldaisle_store::MemoryStore;

    const DAY: i64 = 86_400_000;

    fn summary(from: i64) -> ReadingSummary {
        ReadingSummary {
            sensor: "t1".into(),
            kind: SensorKind::InletTemp,
            location: Location {
                site: "par1".into(),
                zone: "hall-a".into(),
                row: None,
                rack: Some("r1".into()),
            },
            from: Timestamp(from),
            to: Timestamp(from + 30_000),
            count: 2,
            min: 20.0,
            max: 22.0,
            sum: 42.0,
            last: 22.0,
        }
    }

    fn write(kv: &dyn KvStore, level: Level, summaries: &[ReadingSummary]) {
        let mut batch = WriteBatch::default();
        for (key, r) in fold(summaries, level) {
            batch.insert(key, serde_json::to_vec(&r).expect("encode"));
        }
        kv.apply(level.tree(), batch).expect("apply");
    }

    #[test]
    fn expiry_keeps_a_partly_retained_bucket() {
        let p = RetentionPolicy::default();
        let now = Timestamp(100 * DAY + 3_600_000 + 1);
        // 7 days before now is inside the hour bucket starting at 93 days + 1 h.
        assert!(!p.expired(Level::Minute, Timestamp(93 * DAY + 3_600_000), now));
        assert!(p.expired(Level::Minute, Timestamp(93 * DAY + 3_540_000), now));
        assert!(!p.expired(Level::Day, Timestamp(0), now));
    }

    #[test]
    fn compaction_removes_only_expired_buckets_per_level() {
        let kv = MemoryStore::default();
        let now = Timestamp(200 * DAY);
        let old = summary(100 * DAY); // past minute (7 d) and hour (90 d) retention
        let recent = summary(199 * DAY);
        for level in Level::ALL {
            write(&kv, level, &[old.clone(), recent.clone()]);
        }
        let c = compact(&kv, &RetentionPolicy::default(), now, &|| false).expect("compact");
        assert_eq!(c.removed, [1, 1, 0]);
        // Minutes and hours: the expired bucket and the kept one after it; days: the first
        // bucket is kept, so the zone is left there.
        assert_eq!(c.scanned, 5);
        assert_eq!(kv.len(Level::Minute.tree()).expect("len"), 1);
        assert_eq!(kv.len(Level::Hour.tree()).expect("len"), 1);
        assert_eq!(kv.len(Level::Day.tree()).expect("len"), 2);
        let kept = kv.scan(Level::Minute.tree(), b"", 10).expect("scan");
        let r: Rollup = serde_json::from_slice(&kept[0].1).expect("decode");
        assert_eq!(r.start, Timestamp(199 * DAY));
        // A second pass has nothing to do.
        let again = compact(&kv, &RetentionPolicy::default(), now, &|| false).expect("compact");
        assert_eq!(again.removed, [0, 0, 0]);
    }

    #[test]
    fn compaction_walks_zone_values_and_per_sensor_buckets_by_zone() {
        let kv = MemoryStore::default();
        let now = Timestamp(200 * DAY);
        let at = |zone: &str, rack: &str, day: i64| ReadingSummary {
            location: Location {
                zone: zone.into(),
                rack: Some(rack.into()),
                ..summary(0).location
            },
            ..summary(day * DAY)
        };
        // Three zones of hour buckets (90 days kept): a per-sensor bucket an older collector
        // wrote, then zone values, 100 and 150 days back (expired) and 10 days back (kept).
        write(&kv, Level::Hour, &[at("a", "r1", 50), at("c", "r1", 50)]);
        let mut zoned = Vec::new();
        for zone in ["a", "b", "c"] {
            for day in [50, 100, 190] {
                zoned.push(at(zone, "r1", day));
                zoned.push(at(zone, "r2", day));
            }
        }
        let refs: Vec<&ReadingSummary> = zoned.iter().collect();
        crate::rollup_store::add(&kv, &refs).expect("add");
        assert_eq!(kv.len(Level::Hour.tree()).expect("len"), 2 + 9);
        let c = compact(&kv, &RetentionPolicy::default(), now, &|| false).expect("compact");
        assert_eq!(c.removed[1], 2 + 6);
        let kept = kv.scan(Level::Hour.tree(), b"", 100).expect("scan");
        let starts: Vec<Option<Timestamp>> = kept.iter().map(|(k, _)| key_time(k)).collect();
        assert_eq!(starts, vec![Some(Timestamp(190 * DAY)); 3]);
        // A pass reads the first kept entry of each zone, not more: none of minutes (every
        // one expired), one of each zone's hours and of its days (3 kept each).
        let again = compact(&kv, &RetentionPolicy::default(), now, &|| false).expect("compact");
        assert_eq!(again.removed, [0, 0, 0]);
        assert_eq!(again.scanned, 3 + 3);
    }

    #[test]
    fn a_stopped_pass_removes_nothing_more() {
        let kv = MemoryStore::default();
        for level in Level::ALL {
            write(&kv, level, &[summary(0)]);
        }
        let c = compact(
            &kv,
            &RetentionPolicy::default(),
            Timestamp(5000 * DAY),
            &|| true,
        )
        .expect("compact");
        assert_eq!((c.removed, c.scanned), ([0, 0, 0], 0));
        assert_eq!(kv.len(Level::Day.tree()).expect("len"), 1);
    }
}
