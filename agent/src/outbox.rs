//! The durable, sequenced outbox of wire contract v1.
//!
//! Invariants:
//! - A record gets its `seq` when appended; seqs are strictly increasing and never reused, also
//!   across restarts (the next seq is stored with the records, atomically, and recovered as
//!   `max(stored next seq, last record + 1, acked + 1)`).
//! - [`Outbox::append`] returns only after the store has flushed: a record that is "stored" is
//!   on disk. Appends are group commits: all payloads of one call share one flush.
//! - A record leaves the outbox only when an ack covers it ([`Outbox::ack`]); everything above
//!   the last ack is resent after a reconnect.
//! - Records and the outbox's own counters live in one tree and change in one atomic batch.
//!
//! Keys: `r` + seq (big-endian u64) → record JSON; `m:next_seq`, `m:acked` → u64.

use coldaisle_core::wire::{Payload, Record, SCHEMA_VERSION};
use coldaisle_store::{key_u64, KvStore, StoreError, WriteBatch};
use std::sync::Arc;

const TREE: &str = "outbox";
const RECORD_PREFIX: u8 = b'r';
const NEXT_SEQ_KEY: &[u8] = b"m:next_seq";
const ACKED_KEY: &[u8] = b"m:acked";

/// Outbox failures.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored record does not decode (corruption): reported with its key, never skipped
    /// silently.
    #[error("outbox record {seq} is corrupt: {reason}")]
    Corrupt {
        /// Its seq.
        seq: u64,
        /// The decoder's message.
        reason: String,
    },
}

fn record_key(seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(RECORD_PREFIX);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn read_u64(store: &dyn KvStore, key: &[u8]) -> Result<u64, StoreError> {
    Ok(store.get(TREE, key)?.and_then(|v| key_u64(&v)).unwrap_or(0))
}

/// The agent's outbox.
pub struct Outbox {
    store: Arc<dyn KvStore>,
    agent: String,
    site: String,
    next_seq: u64,
    acked: u64,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("agent", &self.agent)
            .field("next_seq", &self.next_seq)
            .field("acked", &self.acked)
            .finish()
    }
}

impl Outbox {
    /// Opens the outbox stored in `store`, recovering its counters.
    pub fn open(store: Arc<dyn KvStore>, agent: &str, site: &str) -> Result<Outbox, OutboxError> {
        let stored_next = read_u64(store.as_ref(), NEXT_SEQ_KEY)?;
        let acked = read_u64(store.as_ref(), ACKED_KEY)?;
        // 'm' sorts before 'r': the tree's last entry is the newest record, if there is one.
        let after_last = match store.last(TREE)? {
            Some((key, _)) if key.first() == Some(&RECORD_PREFIX) => {
                key_u64(&key[1..]).map_or(0, |s| s + 1)
            }
            _ => 0,
        };
        let next_seq = stored_next.max(after_last).max(acked + 1).max(1);
        Ok(Outbox {
            store,
            agent: agent.to_string(),
            site: site.to_string(),
            next_seq,
            acked,
        })
    }

    /// The seq the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Highest seq acknowledged by the collector.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Lowest seq still held (everything below was acked or dropped).
    pub fn floor(&self) -> u64 {
        self.acked + 1
    }

    /// Records not yet acknowledged.
    pub fn pending_count(&self) -> u64 {
        self.next_seq.saturating_sub(self.acked + 1)
    }

    /// Appends payloads as records and flushes; returns the seqs they got.
    pub fn append(&mut self, payloads: Vec<Payload>) -> Result<std::ops::Range<u64>, OutboxError> {
        let first = self.next_seq;
        if payloads.is_empty() {
            return Ok(first..first);
        }
        let mut batch = WriteBatch::default();
        let mut seq = first;
        for payload in payloads {
            let record = Record {
                schema: SCHEMA_VERSION,
                agent: self.agent.clone(),
                site: self.site.clone(),
                seq,
                payload,
            };
            let json = serde_json::to_vec(&record).map_err(|e| OutboxError::Corrupt {
                seq,
                reason: e.to_string(),
            })?;
            batch.insert(record_key(seq), json);
            seq += 1;
        }
        batch.insert(NEXT_SEQ_KEY.to_vec(), seq.to_be_bytes().to_vec());
        self.store.apply(TREE, batch)?;
        self.store.flush()?;
        self.next_seq = seq;
        Ok(first..seq)
    }

    /// Records with seq > `after`, in order, up to `max_records` and about `max_bytes`
    /// (always at least one record if any is pending).
    pub fn pending_after(
        &self,
        after: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<Record>, OutboxError> {
        let from = record_key(after.max(self.acked).saturating_add(1));
        let mut records = Vec::new();
        let mut bytes = 0;
        for (key, value) in self.store.scan(TREE, &from, max_records)? {
            if key.first() != Some(&RECORD_PREFIX) {
                break;
            }
            let seq = key_u64(&key[1..]).unwrap_or(0);
            if !records.is_empty() && bytes + value.len() > max_bytes {
                break;
            }
            bytes += value.len();
            let record: Record =
                serde_json::from_slice(&value).map_err(|e| OutboxError::Corrupt {
                    seq,
                    reason: e.to_string(),
                })?;
            records.push(record);
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
        let limit = usize::try_from(upto - self.acked).unwrap_or(usize::MAX);
        let entries = self.store.scan(TREE, &record_key(0), limit)?;
        for (key, _) in entries {
            if key.first() != Some(&RECORD_PREFIX) || key_u64(&key[1..]).unwrap_or(0) > upto {
                break;
            }
            batch.remove(key);
            removed += 1;
        }
        batch.insert(ACKED_KEY.to_vec(), upto.to_be_bytes().to_vec());
        self.store.apply(TREE, batch)?;
        self.store.flush()?;
        self.acked = upto;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests;
