//! The durable, sequenced outbox of wire contract v1.
//!
//! Invariants:
//! - A record gets its `seq` when appended; seqs are strictly increasing and never reused, also
//!   across restarts (the next seq is stored with the records, atomically, and recovered as
//!   `max(stored next seq, last record + 1, acked + 1)`).
//! - [`Outbox::append`] returns `Ok` only after the store has flushed: a record that is
//!   "stored" is on disk. Appends are group commits: all payloads of one call share one flush.
//! - Disk faults lose nothing silently and never reuse a seq. A payload whose write failed is
//!   held in memory (at most `max_unwritten`, oldest summaries given up first, every loss
//!   counted) and written, before anything newer, by the next [`Outbox::append`] or
//!   [`Outbox::retry`]; the caller retries with backoff while [`Outbox::needs_retry`]. Seqs are
//!   taken only by a batch the store applied, and stay taken when only the flush failed. Records
//!   not yet flushed are never sent ([`Outbox::pending_after`] stops at the durable end), so a
//!   crash that loses them loses seqs nobody has seen. Every failed write is counted
//!   ([`OutboxStats::write_failures`]).
//! - A record leaves the outbox only when an ack covers it ([`Outbox::ack`]) or when the quota
//!   drops it; everything above the last ack is resent after a reconnect.
//! - Records, counters and the list of dropped seqs live in one tree and change in one atomic
//!   batch, so a crash leaves either all of an append (or ack) or none of it.
//! - Every record carries a CRC-32 of its bytes. A record whose checksum fails is never sent:
//!   it is removed, logged and counted, and its seq is reported to the collector as dropped.
//! - Quota: when an append would take the outbox above `max_bytes`, the oldest reading
//!   summaries are dropped first, then the oldest events. Every drop is counted
//!   ([`OutboxStats`]) and logged, and the dropped seqs travel with the next batches
//!   ([`Outbox::dropped`]) so the collector can tell a dropped record from a lost one.
//!
//! Keys: `r` + seq (big-endian u64) → `crc32 (4 bytes, BE) | kind (1 byte: e/s) | record JSON`;
//! `m:next_seq`, `m:acked` → u64; `m:dropped` → JSON list of [`SeqRange`]s above the last ack.

use coldaisle_core::wire::{Payload, Record, SeqRange, SCHEMA_VERSION};
use coldaisle_store::{key_u64, visit_from, KvStore, SledSettings, StoreError, WriteBatch};
use std::ops::ControlFlow;
use std::sync::Arc;

const TREE: &str = "outbox";
const RECORD_PREFIX: u8 = b'r';
const NEXT_SEQ_KEY: &[u8] = b"m:next_seq";
const ACKED_KEY: &[u8] = b"m:acked";
const DROPPED_KEY: &[u8] = b"m:dropped";
const KIND_EVENT: u8 = b'e';
const KIND_SUMMARY: u8 = b's';
const HEADER: usize = 5;

/// Default quota: enough for days of events from a large site while the link is down.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// The sled settings of the agent's store (the outbox, and the detector-state record of agents
/// before the state file, read once on upgrade). Its live data is what the collector has not
/// acknowledged yet, so sled's 1 GiB default cache is bounded to 1 MiB: pages beyond it are
/// read back from disk when a long outage is resent (BENCHMARKS.md, "Memory, part 7"). The
/// segment stays sled's default (512 KiB): sled stores it in the database and refuses another
/// value, so a smaller one would stop an older agent from opening its outbox after a
/// downgrade, for no measured gain in the resident set (part 7).
pub const STORE_SETTINGS: SledSettings = SledSettings {
    cache_bytes: 1024 * 1024,
    segment_bytes: None,
};

/// Outbox failures.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A record could not be encoded.
    #[error("outbox record {seq} cannot be encoded: {reason}")]
    Encode {
        /// Its seq.
        seq: u64,
        /// The encoder's message.
        reason: String,
    },
}

/// Counters of what the outbox had to give up, since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Reading summaries dropped by the quota.
    pub dropped_summaries: u64,
    /// Events dropped by the quota (only after every summary was gone).
    pub dropped_events: u64,
    /// Records removed because their checksum or JSON was bad.
    pub corrupt: u64,
    /// Writes (apply or flush) the store refused, e.g. on a full disk.
    pub write_failures: u64,
    /// Payloads held in memory now because their write failed (a gauge, not a counter).
    pub unwritten: u64,
    /// Payloads given up because the in-memory hold was full while writes kept failing (they
    /// never got a seq).
    pub unwritten_dropped: u64,
}

/// Default bound of the payloads held in memory while the store refuses writes.
pub const DEFAULT_MAX_UNWRITTEN: usize = 10_000;

fn record_key(seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(RECORD_PREFIX);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn seq_of(key: &[u8]) -> Option<u64> {
    match key.split_first() {
        Some((&RECORD_PREFIX, rest)) => key_u64(rest),
        _ => None,
    }
}

/// Frames a record for storage.
fn encode_value(record: &Record) -> Result<Vec<u8>, OutboxError> {
    let json = serde_json::to_vec(record).map_err(|e| OutboxError::Encode {
        seq: record.seq,
        reason: e.to_string(),
    })?;
    let kind = if record.payload.is_summary() {
        KIND_SUMMARY
    } else {
        KIND_EVENT
    };
    let mut value = Vec::with_capacity(HEADER + json.len());
    value.extend_from_slice(&[0; 4]);
    value.push(kind);
    value.extend_from_slice(&json);
    let crc = crc32fast::hash(&value[4..]);
    value[..4].copy_from_slice(&crc.to_be_bytes());
    Ok(value)
}

/// Checks and decodes a stored value; `Err` says why it is unusable.
fn decode_value(value: &[u8]) -> Result<Record, String> {
    if value.len() < HEADER {
        return Err(format!("{} bytes is shorter than the header", value.len()));
    }
    let stored = u32::from_be_bytes([value[0], value[1], value[2], value[3]]);
    let actual = crc32fast::hash(&value[4..]);
    if stored != actual {
        return Err(format!("checksum {actual:08x} does not match {stored:08x}"));
    }
    serde_json::from_slice(&value[HEADER..]).map_err(|e| e.to_string())
}

fn read_u64(store: &dyn KvStore, key: &[u8]) -> Result<u64, StoreError> {
    Ok(store.get(TREE, key)?.and_then(|v| key_u64(&v)).unwrap_or(0))
}

/// Adds `seq` to a sorted list of disjoint ranges, merging neighbours.
fn add_dropped(ranges: &mut Vec<SeqRange>, seq: u64) {
    if ranges.iter().any(|r| r.contains(seq)) {
        return;
    }
    ranges.push(SeqRange { from: seq, to: seq });
    ranges.sort_by_key(|r| r.from);
    let mut merged: Vec<SeqRange> = Vec::with_capacity(ranges.len());
    for r in ranges.drain(..) {
        match merged.last_mut() {
            Some(last) if last.to + 1 >= r.from => last.to = last.to.max(r.to),
            _ => merged.push(r),
        }
    }
    *ranges = merged;
}

/// The agent's outbox.
pub struct Outbox {
    store: Arc<dyn KvStore>,
    agent: String,
    site: String,
    /// This state directory's instance id, carried by every record.
    instance: String,
    next_seq: u64,
    acked: u64,
    /// Bytes of all stored record values.
    bytes: u64,
    max_bytes: u64,
    dropped: Vec<SeqRange>,
    stats: OutboxStats,
    /// Payloads whose write failed, oldest first; written before anything newer.
    unwritten: std::collections::VecDeque<Payload>,
    /// Bound of `unwritten`.
    max_unwritten: usize,
    /// Seqs below this are flushed; records at or above it are applied but not durable and
    /// are not sent.
    durable_next: u64,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("agent", &self.agent)
            .field("next_seq", &self.next_seq)
            .field("acked", &self.acked)
            .field("bytes", &self.bytes)
            .field("stats", &self.stats)
            .finish()
    }
}

impl Outbox {
    /// Opens the outbox stored in `store`, recovering its counters, with the default quota.
    pub fn open(store: Arc<dyn KvStore>, agent: &str, site: &str) -> Result<Outbox, OutboxError> {
        let stored_next = read_u64(store.as_ref(), NEXT_SEQ_KEY)?;
        let acked = read_u64(store.as_ref(), ACKED_KEY)?;
        let dropped: Vec<SeqRange> = store
            .get(TREE, DROPPED_KEY)?
            .and_then(|v| serde_json::from_slice(&v).ok())
            .unwrap_or_default();
        // 'm' sorts before 'r': the tree's last entry is the newest record, if there is one.
        let after_last = match store.last(TREE)? {
            Some((key, _)) => seq_of(&key).map_or(0, |s| s + 1),
            None => 0,
        };
        let mut bytes = 0u64;
        visit_from(store.as_ref(), TREE, &record_key(0), |_, value| {
            bytes += value.len() as u64;
            ControlFlow::Continue(())
        })?;
        let next_seq = stored_next.max(after_last).max(acked + 1).max(1);
        let instance = crate::instance::load_or_create(store.as_ref(), crate::instance::random_id)?;
        Ok(Outbox {
            instance,
            store,
            agent: agent.to_string(),
            site: site.to_string(),
            next_seq,
            acked,
            bytes,
            max_bytes: DEFAULT_MAX_BYTES,
            dropped,
            stats: OutboxStats::default(),
            unwritten: Default::default(),
            max_unwritten: DEFAULT_MAX_UNWRITTEN,
            durable_next: next_seq,
        })
    }

    /// Sets how many payloads may wait in memory while the store refuses writes (at least 1).
    pub fn with_unwritten_limit(mut self, max_unwritten: usize) -> Outbox {
        self.max_unwritten = max_unwritten.max(1);
        self
    }

    /// Whether a failed write left something to do: payloads held in memory, or records
    /// applied but not flushed. The caller then calls [`Outbox::retry`] with backoff.
    pub fn needs_retry(&self) -> bool {
        !self.unwritten.is_empty() || self.durable_next < self.next_seq
    }

    /// Writes what a failed append left (held payloads, or a flush); see [`Outbox::append`].
    pub fn retry(&mut self) -> Result<std::ops::Range<u64>, OutboxError> {
        self.write_unwritten()
    }

    /// Flushes the store; on success every applied record is durable (and may be sent).
    fn flush_now(&mut self) -> Result<(), OutboxError> {
        if let Err(e) = self.store.flush() {
            self.stats.write_failures += 1;
            return Err(e.into());
        }
        self.durable_next = self.next_seq;
        Ok(())
    }

    /// Gives up the oldest held payloads beyond the bound: summaries first, then any.
    fn bound_unwritten(&mut self) {
        let mut given_up = 0u64;
        while self.unwritten.len() > self.max_unwritten {
            let victim = self
                .unwritten
                .iter()
                .position(Payload::is_summary)
                .unwrap_or(0);
            self.unwritten.remove(victim);
            given_up += 1;
        }
        if given_up > 0 {
            self.stats.unwritten_dropped += given_up;
            tracing::error!(agent = %self.agent, given_up, held = self.unwritten.len(),
                "outbox writes keep failing and the in-memory hold is full: oldest readings given up");
        }
        self.stats.unwritten = self.unwritten.len() as u64;
    }

    /// Sets the byte quota (see the module invariants for the drop order).
    pub fn with_quota(mut self, max_bytes: u64) -> Outbox {
        self.max_bytes = max_bytes.max(1);
        self
    }

    /// This state directory's instance id (see [`crate::instance`]).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The seq the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Highest seq acknowledged by the collector.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Lowest seq that may still be held (everything below was acked).
    pub fn floor(&self) -> u64 {
        self.acked + 1
    }

    /// Records not yet acknowledged (held or dropped).
    pub fn pending_count(&self) -> u64 {
        self.next_seq.saturating_sub(self.acked + 1)
    }

    /// Bytes of the records held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Seqs above the last ack that were dropped (quota, corruption).
    pub fn dropped(&self) -> &[SeqRange] {
        &self.dropped
    }

    /// What was given up since the process started.
    pub fn stats(&self) -> OutboxStats {
        self.stats
    }

    /// Appends payloads as records and flushes; returns the seqs they got (payloads held from
    /// a failed earlier write come first and get the lower seqs). Makes room first when the
    /// quota requires it. On an error the payloads are held in memory (the store refused the
    /// batch) or already have their seqs (only the flush failed): either way the caller must
    /// not append them again, only call [`Outbox::retry`] later.
    pub fn append(&mut self, payloads: Vec<Payload>) -> Result<std::ops::Range<u64>, OutboxError> {
        self.unwritten.extend(payloads);
        self.bound_unwritten();
        self.write_unwritten()
    }

    /// Applies the held payloads as one batch with their new seqs, then flushes.
    fn write_unwritten(&mut self) -> Result<std::ops::Range<u64>, OutboxError> {
        let first = self.next_seq;
        if self.unwritten.is_empty() {
            if self.durable_next < self.next_seq {
                self.flush_now()?;
            }
            return Ok(first..first);
        }
        let mut batch = WriteBatch::default();
        let mut seq = first;
        let mut added = 0u64;
        let mut unencodable = 0u64;
        for payload in &self.unwritten {
            let record = Record {
                schema: SCHEMA_VERSION,
                agent: self.agent.clone(),
                site: self.site.clone(),
                seq,
                payload: payload.clone(),
                instance: Some(self.instance.clone()),
            };
            match encode_value(&record) {
                Ok(value) => {
                    added += value.len() as u64;
                    batch.insert(record_key(seq), value);
                    seq += 1;
                }
                Err(e) => {
                    // Cannot happen with serde_json and our types; never blocks the rest.
                    tracing::error!(agent = %self.agent, error = %e, "outbox payload cannot be encoded; given up");
                    unencodable += 1;
                }
            }
        }
        let mut dropped = self.dropped.clone();
        let mut stats = self.stats;
        let freed = if self.bytes + added > self.max_bytes {
            match self.make_room(
                self.bytes + added - self.max_bytes,
                &mut batch,
                &mut dropped,
                &mut stats,
            ) {
                Ok(freed) => freed,
                Err(e) => {
                    self.stats.write_failures += 1;
                    return Err(e);
                }
            }
        } else {
            0
        };
        batch.insert(NEXT_SEQ_KEY.to_vec(), seq.to_be_bytes().to_vec());
        if dropped != self.dropped {
            batch.insert(
                DROPPED_KEY.to_vec(),
                serde_json::to_vec(&dropped).unwrap_or_default(),
            );
        }
        if let Err(e) = self.store.apply(TREE, batch) {
            // Nothing was applied: the payloads stay held, no seq was taken.
            self.stats.write_failures += 1;
            return Err(e.into());
        }
        // Applied: these seqs are taken for good, whatever the flush says.
        self.next_seq = seq;
        self.bytes = self.bytes + added - freed;
        self.dropped = dropped;
        self.stats = stats;
        self.stats.unwritten_dropped += unencodable;
        self.unwritten.clear();
        self.stats.unwritten = 0;
        self.flush_now()?;
        Ok(first..seq)
    }

    /// Adds removals to `batch` freeing at least `needed` bytes: summaries first (oldest
    /// first), then any record (oldest first). Returns the bytes freed.
    fn make_room(
        &self,
        needed: u64,
        batch: &mut WriteBatch,
        dropped: &mut Vec<SeqRange>,
        stats: &mut OutboxStats,
    ) -> Result<u64, OutboxError> {
        let mut freed = 0u64;
        let mut victims: Vec<(u64, u64, bool)> = Vec::new(); // (seq, bytes, is_summary)
        for summaries_only in [true, false] {
            visit_from(self.store.as_ref(), TREE, &record_key(0), |key, value| {
                if freed >= needed {
                    return ControlFlow::Break(());
                }
                let Some(seq) = seq_of(key) else {
                    return ControlFlow::Continue(());
                };
                let is_summary = value.get(4) == Some(&KIND_SUMMARY);
                if (summaries_only && !is_summary) || victims.iter().any(|v| v.0 == seq) {
                    return ControlFlow::Continue(());
                }
                freed += value.len() as u64;
                victims.push((seq, value.len() as u64, is_summary));
                ControlFlow::Continue(())
            })?;
            if freed >= needed {
                break;
            }
        }
        for (seq, _, is_summary) in &victims {
            batch.remove(record_key(*seq));
            add_dropped(dropped, *seq);
            if *is_summary {
                stats.dropped_summaries += 1;
            } else {
                stats.dropped_events += 1;
            }
        }
        if !victims.is_empty() {
            let summaries = victims.iter().filter(|v| v.2).count();
            tracing::warn!(
                agent = %self.agent,
                dropped_summaries = summaries,
                dropped_events = victims.len() - summaries,
                max_bytes = self.max_bytes,
                "outbox over its quota: oldest records dropped"
            );
        }
        Ok(freed)
    }

    /// Records with seq > `after`, in order, up to `max_records` and about `max_bytes`
    /// (always at least one record if any is pending). Records that fail their checksum are
    /// removed, counted and reported as dropped instead of being returned.
    pub fn pending_after(
        &mut self,
        after: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<Record>, OutboxError> {
        let from = record_key(after.max(self.acked).saturating_add(1));
        let mut records = Vec::new();
        let mut corrupt = Vec::new();
        let mut bytes = 0;
        for (key, value) in self.store.scan(TREE, &from, max_records)? {
            let Some(seq) = seq_of(&key) else { break };
            if seq >= self.durable_next {
                // Applied but not flushed: not sent until durable (see the invariants).
                break;
            }
            if !records.is_empty() && bytes + value.len() > max_bytes {
                break;
            }
            match decode_value(&value) {
                Ok(record) => {
                    bytes += value.len();
                    records.push(record);
                }
                Err(reason) => {
                    tracing::error!(agent = %self.agent, seq, %reason, "corrupt outbox record removed; reported as dropped");
                    corrupt.push((seq, value.len() as u64));
                }
            }
        }
        if !corrupt.is_empty() {
            let mut batch = WriteBatch::default();
            let mut dropped = self.dropped.clone();
            for (seq, _) in &corrupt {
                batch.remove(record_key(*seq));
                add_dropped(&mut dropped, *seq);
            }
            batch.insert(
                DROPPED_KEY.to_vec(),
                serde_json::to_vec(&dropped).unwrap_or_default(),
            );
            self.store.apply(TREE, batch)?;
            self.flush_now()?;
            self.dropped = dropped;
            self.stats.corrupt += corrupt.len() as u64;
            self.bytes -= corrupt.iter().map(|c| c.1).sum::<u64>();
        }
        Ok(records)
    }

    /// Removes every record with seq ≤ `upto` and flushes; returns how many were removed.
    /// Acks at or below the current one change nothing (duplicates, reordering).
    pub fn ack(&mut self, upto: u64) -> Result<usize, OutboxError> {
        let upto = upto.min(self.next_seq.saturating_sub(1));
        if upto <= self.acked {
            return Ok(0);
        }
        let mut batch = WriteBatch::default();
        let mut removed = 0;
        let mut freed = 0u64;
        let limit = usize::try_from(upto - self.acked).unwrap_or(usize::MAX);
        for (key, value) in self.store.scan(TREE, &record_key(0), limit)? {
            match seq_of(&key) {
                Some(seq) if seq <= upto => {
                    freed += value.len() as u64;
                    batch.remove(key);
                    removed += 1;
                }
                _ => break,
            }
        }
        let dropped: Vec<SeqRange> = self
            .dropped
            .iter()
            .filter(|r| r.to > upto)
            .map(|r| SeqRange {
                from: r.from.max(upto + 1),
                to: r.to,
            })
            .collect();
        batch.insert(ACKED_KEY.to_vec(), upto.to_be_bytes().to_vec());
        batch.insert(
            DROPPED_KEY.to_vec(),
            serde_json::to_vec(&dropped).unwrap_or_default(),
        );
        self.store.apply(TREE, batch)?;
        self.flush_now()?;
        self.acked = upto;
        self.dropped = dropped;
        self.bytes -= freed;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fault_tests;
