//! Retention of the reading-summary roll-ups and the background compaction that enforces it.
//!
//! Invariants:
//! - A bucket is deleted only once it has *ended* before its level's cutoff (`now - retention`),
//!   so a partly retained bucket is kept whole.
//! - Compaction touches only the roll-up trees. Incidents, problems and their analysis never
//!   read roll-ups, so no open problem can need what it deletes; raw records are not deleted.
//! - Compaction reads and deletes in chunks through [`KvStore`] and never takes the state lock,
//!   so ingest goes on while it runs. Ingest only adds to buckets of recent summaries; a
//!   summary that arrives for an already expired bucket is compacted again on the next tick.

use crate::rollup::{key_time, Level};
use coldaisle_config::collector::RetentionConfig;
use coldaisle_core::Timestamp;
use coldaisle_store::{visit_from, KvStore, StoreError, WriteBatch};
use serde::Serialize;
use std::ops::ControlFlow;
use std::sync::Arc;
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
pub fn compact(
    kv: &dyn KvStore,
    policy: &RetentionPolicy,
    now: Timestamp,
    stop: &dyn Fn() -> bool,
) -> Result<Compacted, StoreError> {
    let mut out = Compacted::default();
    for (i, level) in Level::ALL.into_iter().enumerate() {
        let tree = level.tree();
        let mut doomed = Vec::new();
        visit_from(kv, tree, b"", |key, _| {
            if stop() {
                return ControlFlow::Break(());
            }
            out.scanned += 1;
            match key_time(key) {
                Some(start) if policy.expired(level, start, now) => doomed.push(key.to_vec()),
                Some(_) => {}
                None => tracing::warn!(tree, key = ?key, "not a roll-up key; kept"),
            }
            ControlFlow::Continue(())
        })?;
        out.removed[i] = doomed.len() as u64;
        for chunk in doomed.chunks(DELETE_CHUNK) {
            let mut batch = WriteBatch::default();
            for key in chunk {
                batch.remove(key.clone());
            }
            kv.apply(tree, batch)?;
        }
    }
    kv.flush()?;
    Ok(out)
}

/// Runs [`compact`] every `every` on a blocking thread until `shutdown` fires. Failures are
/// logged and retried on the next tick.
pub async fn run(
    kv: Arc<dyn KvStore>,
    policy: RetentionPolicy,
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
        let kv = kv.clone();
        let stop = shutdown.clone();
        let pass = tokio::task::spawn_blocking(move || {
            compact(kv.as_ref(), &policy, Timestamp::now(), &|| *stop.borrow())
        });
        match pass.await {
            Ok(Ok(c)) => tracing::info!(
                minute = c.removed[0],
                hour = c.removed[1],
                day = c.removed[2],
                scanned = c.scanned,
                "roll-up compaction"
            ),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "roll-up compaction failed; retried next tick")
            }
            Err(e) => tracing::error!(error = %e, "roll-up compaction task failed"),
        }
    }
}

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
        assert_eq!(c.scanned, 6);
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
