//! The collector's durable store: every record ever received, once per `(agent, seq)`, and
//! what was acked to each agent. Incidents and problems are not stored: they are a pure
//! function of the stored events (see [`crate::analysis`]) and are rebuilt at startup.
//!
//! Keys: tree `records`: agent id + `0x00` + seq (big-endian) → record JSON;
//! tree `agents`: agent id → [`AgentLedger`] JSON.

use coldaisle_core::wire::{Record, SeqRange};
use coldaisle_store::{visit_from, KvStore, StoreError, WriteBatch};
use serde::{Deserialize, Serialize};
use std::ops::ControlFlow;
use std::sync::Arc;

const RECORDS: &str = "records";
const AGENTS: &str = "agents";

/// What the collector durably remembers per agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentLedger {
    /// Site of the agent.
    pub site: String,
    /// Every seq ≤ this is stored or was dropped by the agent (the last ack sent).
    pub acked_upto: u64,
    /// Highest seq received from the agent (a gap above `acked_upto` shows missing records).
    #[serde(default)]
    pub highest_seen: u64,
    /// Seqs the agent reported as dropped (outbox quota, corruption) that the ack moved past.
    #[serde(default)]
    pub dropped_by_agent: u64,
}

/// The result of storing one batch.
#[derive(Debug, Default)]
pub struct Stored {
    /// Records that were new, now durable.
    pub new: Vec<Record>,
    /// Records already stored before (ignored).
    pub duplicates: u64,
    /// The agent's ledger after the batch: `acked_upto` is what to ack.
    pub ledger: AgentLedger,
}

/// The collector store.
///
/// A batch whose flush failed is not acked, and its records, though applied, are not
/// durable: they stay in `unflushed` until a later flush succeeds, so the agent's resend of
/// them counts as new (and reaches the analysis), never as a duplicate.
#[derive(Clone)]
pub struct CollectorStore {
    kv: Arc<dyn KvStore>,
    /// Keys of records applied by a batch whose flush failed (not durable yet).
    unflushed: Arc<std::sync::Mutex<std::collections::HashSet<Vec<u8>>>>,
}

impl std::fmt::Debug for CollectorStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CollectorStore")
    }
}

fn record_key(agent: &str, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(agent.len() + 9);
    key.extend_from_slice(agent.as_bytes());
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

impl CollectorStore {
    /// A store over `kv`.
    pub fn new(kv: Arc<dyn KvStore>) -> Self {
        CollectorStore {
            kv,
            unflushed: Default::default(),
        }
    }

    /// Stores the records of one agent that are not stored yet, flushes, then advances the
    /// agent's contiguous `acked_upto` (records below `floor` and seqs in `dropped` count as
    /// settled: the agent no longer holds them). Only after this returns may the caller ack.
    pub fn store_batch(
        &self,
        agent: &str,
        site: &str,
        floor: u64,
        dropped: &[SeqRange],
        records: Vec<Record>,
    ) -> Result<Stored, StoreError> {
        let highest = records.iter().map(|r| r.seq).max().unwrap_or(0);
        let mut out = Stored::default();
        let mut batch = WriteBatch::default();
        let mut unflushed = self
            .unflushed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut keys = Vec::new();
        for record in records {
            let key = record_key(agent, record.seq);
            if !unflushed.contains(&key) && self.kv.get(RECORDS, &key)?.is_some() {
                out.duplicates += 1;
                continue;
            }
            keys.push(key.clone());
            let json = serde_json::to_vec(&record).map_err(|e| StoreError {
                operation: "encode",
                tree: RECORDS.into(),
                message: e.to_string(),
            })?;
            batch.insert(key, json);
            out.new.push(record);
        }
        if !batch.is_empty() {
            self.kv.apply(RECORDS, batch)?;
        }
        let mut ledger = self.ledger(agent)?.unwrap_or_default();
        ledger.site = site.to_string();
        ledger.highest_seen = ledger.highest_seen.max(highest);
        ledger.acked_upto = ledger.acked_upto.max(floor.saturating_sub(1));
        loop {
            let next = ledger.acked_upto + 1;
            if dropped.iter().any(|r| r.contains(next)) {
                ledger.dropped_by_agent += 1;
            } else if self.kv.get(RECORDS, &record_key(agent, next))?.is_none() {
                break;
            }
            ledger.acked_upto = next;
        }
        let mut ledger_batch = WriteBatch::default();
        ledger_batch.insert(
            agent.as_bytes().to_vec(),
            serde_json::to_vec(&ledger).unwrap_or_default(),
        );
        self.kv.apply(AGENTS, ledger_batch)?;
        if let Err(e) = self.kv.flush() {
            unflushed.extend(keys);
            return Err(e);
        }
        // Everything applied so far is durable now, earlier failed batches included.
        unflushed.clear();
        out.ledger = ledger;
        Ok(out)
    }

    /// The ledger of one agent.
    pub fn ledger(&self, agent: &str) -> Result<Option<AgentLedger>, StoreError> {
        Ok(self
            .kv
            .get(AGENTS, agent.as_bytes())?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Every agent's ledger.
    pub fn ledgers(&self) -> Result<Vec<(String, AgentLedger)>, StoreError> {
        Ok(self
            .kv
            .scan(AGENTS, b"", usize::MAX)?
            .into_iter()
            .filter_map(|(k, v)| {
                let agent = String::from_utf8(k).ok()?;
                let ledger = serde_json::from_slice(&v).ok()?;
                Some((agent, ledger))
            })
            .collect())
    }

    /// Calls `f` with every stored record, in key order. Undecodable entries are reported by
    /// key and skipped, never deleted.
    pub fn for_each_record(&self, mut f: impl FnMut(Record)) -> Result<u64, StoreError> {
        let mut bad = 0;
        visit_from(self.kv.as_ref(), RECORDS, b"", |key, value| {
            match serde_json::from_slice::<Record>(value) {
                Ok(record) => f(record),
                Err(e) => {
                    bad += 1;
                    tracing::error!(key = ?key, error = %e, "stored record does not decode; kept, skipped");
                }
            }
            ControlFlow::Continue(())
        })?;
        Ok(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldaisle_core::wire::{Payload, SCHEMA_VERSION};
    use coldaisle_core::{DeviceEvent, EventState, Location, Timestamp};
    use coldaisle_store::MemoryStore;

    fn record(seq: u64) -> Record {
        Record {
            schema: SCHEMA_VERSION,
            agent: "a1".into(),
            site: "s1".into(),
            seq,
            payload: Payload::DeviceEvent(DeviceEvent {
                device: "d".into(),
                location: Location {
                    site: "s1".into(),
                    zone: "Z1".into(),
                    row: None,
                    rack: None,
                },
                state: EventState::Raised,
                reason: String::new(),
                ts: Timestamp(seq as i64),
            }),
        }
    }

    #[test]
    fn duplicates_and_gaps_drive_the_ack() {
        let store = CollectorStore::new(Arc::new(MemoryStore::new()));
        let s = store
            .store_batch("a1", "s1", 1, &[], vec![record(1), record(2)])
            .expect("store");
        assert_eq!((s.new.len(), s.duplicates, s.ledger.acked_upto), (2, 0, 2));
        // Out of order: 4 arrives before 3; the ack must not pass the gap.
        let s = store
            .store_batch("a1", "s1", 1, &[], vec![record(4)])
            .expect("store");
        assert_eq!(s.ledger.acked_upto, 2);
        let s = store
            .store_batch("a1", "s1", 1, &[], vec![record(2), record(3)])
            .expect("store");
        assert_eq!((s.new.len(), s.duplicates, s.ledger.acked_upto), (1, 1, 4));
        // The agent dropped 5..=6 (floor 7): the ack moves past them once 7 is stored.
        let s = store
            .store_batch("a1", "s1", 7, &[], vec![record(7)])
            .expect("store");
        assert_eq!(s.ledger.acked_upto, 7);
        // Seqs 8 and 9 were dropped by the agent's quota: reported, acked past, counted.
        let dropped = [SeqRange { from: 8, to: 9 }];
        let s = store
            .store_batch("a1", "s1", 8, &dropped, vec![record(10)])
            .expect("store");
        assert_eq!(
            (
                s.ledger.acked_upto,
                s.ledger.dropped_by_agent,
                s.ledger.highest_seen
            ),
            (10, 2, 10)
        );
        let mut seqs = Vec::new();
        store.for_each_record(|r| seqs.push(r.seq)).expect("scan");
        assert_eq!(seqs, vec![1, 2, 3, 4, 7, 10]);
    }

    #[test]
    fn a_batch_whose_flush_failed_is_not_acked_and_its_resend_is_new() {
        use coldaisle_store::FaultyStore;
        let kv = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
        let store = CollectorStore::new(kv.clone());
        let s = store
            .store_batch("a1", "s1", 1, &[], vec![record(1)])
            .expect("store");
        assert_eq!(s.ledger.acked_upto, 1);
        kv.fail_flushes(1);
        assert!(store
            .store_batch("a1", "s1", 1, &[], vec![record(2), record(3)])
            .is_err());
        // The resend: not duplicates, new, and acked only now that they are durable.
        let s = store
            .store_batch("a1", "s1", 1, &[], vec![record(2), record(3)])
            .expect("store");
        assert_eq!((s.new.len(), s.duplicates, s.ledger.acked_upto), (2, 0, 3));
        // Once durable, a resend is a duplicate again.
        let s = store
            .store_batch("a1", "s1", 1, &[], vec![record(3)])
            .expect("store");
        assert_eq!((s.new.len(), s.duplicates), (0, 1));
        // A refused apply stores nothing and acks nothing.
        kv.fail_applies(1);
        assert!(store
            .store_batch("a1", "s1", 1, &[], vec![record(4)])
            .is_err());
        let s = store
            .store_batch("a1", "s1", 1, &[], vec![record(4)])
            .expect("store");
        assert_eq!((s.new.len(), s.ledger.acked_upto), (1, 4));
    }
}
