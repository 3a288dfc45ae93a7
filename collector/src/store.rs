//! The collector's durable store: every record ever received, once per `(agent, seq)`, and
//! what was acked to each agent. Incidents and problems are not stored: they are a pure
//! function of the stored events (see [`crate::analysis`]) and are rebuilt at startup.
//!
//! Keys: tree `records`: agent id + `0x00` + collector seq (big-endian) → record JSON (the
//! PostgreSQL backend keeps this tree as a table keyed `(agent, seq)`, so nothing else may live
//! in it); tree `record_positions`: position (big-endian) → record key, the ingest-order index,
//! applied in the same [`KvStore::apply_trees`] call as the records and *before* them, so a
//! crash between the two leaves an index entry without its record (skipped by readers; the
//! agent resends the record, which then gets a new position), never a record without one;
//! tree `agents`: agent id → [`AgentLedger`] JSON; the roll-up trees of reading summaries
//! ([`crate::rollup_store`]), updated in the same `store_claimed` call before its flush; the
//! size counts of these trees ([`crate::tree_sizes`]), updated after each apply.
//!
//! Invariants:
//! - **Work per batch is O(records in the batch)** (plus, once each, the stored records the
//!   ack moves over): a `dropped` range is skipped in one step, never walked seq by seq.
//! - **Claims are bounded by what the agent can have produced**: record seqs in
//!   `1..=`[`MAX_SEQ`]; a `dropped` range ends at most `max_dropped_span` above the highest
//!   seq seen from the agent (this batch included); the `floor` is at most one above the
//!   highest seq shown (records, ranges, ledger). A batch over a bound is refused whole:
//!   nothing of it is stored, the ledger is unchanged, nothing is acked.
//! - **Incarnations** ([`coldaisle_core::wire::Record::instance`]): the collector keeps one
//!   seq space per agent. The records of the agent's current instance are stored under
//!   *collector seq* = [`AgentLedger::offset`] + agent seq. When a new instance appears (a
//!   new instance id, or the first instance id of an agent whose seqs restart at floor 1), the
//!   offset moves above every collector seq used so far, so the new instance's seq 1 is a new
//!   record, stored and analysed, never a duplicate. `acked_upto` and `highest_seen` are in
//!   the current instance's own seqs: the ack it receives means "every seq ≤ N *of this
//!   instance* is stored". Batches of a replaced instance are refused. Limit: an upgraded
//!   agent sending its first id with floor 1 although the collector acked some of its seqs
//!   (every ack lost) is taken for a new instance; its resent records are stored again under
//!   the new offset (repeated raises change no incident state).
//! - **Positions**: every newly stored record gets the next position (1, 2, …) in the order
//!   the batches were stored. A durable checkpoint ([`crate::checkpoint`]) names the position
//!   it covers; the records after it (its tail) are one range scan away
//!   ([`CollectorStore::for_each_record_after`]). A record stored again after a failed flush
//!   gets a second position; readers drop the duplicate by `(agent, seq)`.
//! - **Retention** ([`CollectorStore::delete_records_before`], run by [`crate::retention`]):
//!   a record is deleted only when its event time is before the cut-off *and* its agent's ack
//!   covers it (collector seq ≤ `offset` + `acked_upto`), record first, then its index entry
//!   (a crash between leaves an index entry without record, as above). A record the ack
//!   covers is a duplicate when it comes again, whether or not it is still stored, so a
//!   resend of a deleted record is never taken for new (unless it sits in `unflushed`).
//!   Deletion walks the index in position order and stops at the first record not old
//!   enough, so its work is O(records deleted + records held), not O(history); a record that
//!   arrived late with an old time waits until the records stored before it are old too.
//!   The index entry of the last position given is never deleted, so the last position,
//!   read back from the index at start-up, never goes back. Records stored before the index
//!   existed have no position and are never deleted.
//! - **Scope index** (tree `record_scopes`, [`CollectorStore::scope_events`]): index scope
//!   ([`crate::analysis::history::index_scope`]) + `0x00` + event time (sign-flipped,
//!   big-endian) + agent + `0x00` + collector seq (big-endian) → the event's body
//!   ([`crate::model::event_body`]: its payload, without the record envelope), for every
//!   incident-relevant record: what a late event reads to replay its scope from before what
//!   the analysis holds in memory, in one range scan with no record lookup. Written in the
//!   same `apply_trees` call as the records and before them, deleted by retention after its
//!   record, like the position index. The body is the record's payload as stored (after any
//!   clock clamp), so a read equals the record's. A crash between the two leaves an entry
//!   without record, which a reader now answers from its body (with the record-key layout it
//!   was skipped): at ingest, an event of the agent's unacked batch, which the agent resends
//!   and which is then stored under the same key (as when the daemon stores a late event
//!   before applying it); at retention, an event before the cut-off, which is before the
//!   oldest event time the analysis needs, so no replay reads it.
//! - **Index layouts** (tree `store_layout`): until mark `record_scopes_bodies` is written,
//!   the index may hold entries of the older layouts (none at all, or → record key, before
//!   issue 13 part 13). [`CollectorStore::index_unindexed_scopes`] rewrites every entry from
//!   the records in the current layout (idempotent, so a crash in the middle is repaired by
//!   running it again), then the mark is written; a reader still takes an older entry (its
//!   first byte is an agent id's, never [`crate::model::event_body::BODY_V1`]) by looking its
//!   record up, so a store read before the upgrade finished answers the same events.
//! - A batch only ever reads and writes its own agent's keys (agent ids never hold control
//!   characters, so one agent's keys are never a prefix-collision of another's).

use crate::refusal::Refusal;
use crate::tree_sizes::{Delta, Deltas};
use coldaisle_core::wire::{Payload, Record, SeqRange};
use coldaisle_store::{key_u64, visit_from, KvStore, StoreError, WriteBatch};
use serde::{Deserialize, Serialize};
use std::ops::ControlFlow;
use std::sync::Arc;

const RECORDS: &str = "records";
/// The tree of agent ledgers (key: agent id).
pub const AGENTS: &str = "agents";
/// The scope index: index scope, event time, agent, seq → event body (see the module doc).
pub const SCOPES: &str = "record_scopes";
/// Facts about the store's layout that start-up checks once (key → marker value).
const LAYOUT: &str = "store_layout";
/// Key in [`LAYOUT`]: every record stored is indexed in [`SCOPES`] with its body (the
/// current layout). Its predecessor, `record_scopes_complete` (every record indexed, entries
/// → record key), is no longer read: a store that has only it is indexed again.
const SCOPE_INDEX_BODIES: &[u8] = b"record_scopes_bodies";

/// The key of `record` (collector seq) in [`SCOPES`], if it has an index scope.
fn scope_key(record: &Record) -> Option<Vec<u8>> {
    let scope = crate::analysis::history::index_scope(&record.payload)?;
    Some(scope_key_at(
        &scope,
        &(record.payload.ts(), record.agent.clone(), record.seq),
    ))
}

/// An entry of [`SCOPES`]: key, event body.
type ScopeEntry = (Vec<u8>, Vec<u8>);

/// The entry of `record` in [`SCOPES`], if it has an index scope.
fn scope_entry(record: &Record) -> Result<Option<ScopeEntry>, StoreError> {
    let Some(key) = scope_key(record) else {
        return Ok(None);
    };
    let body = crate::model::event_body::encode(&record.payload).map_err(|e| StoreError {
        operation: "encode",
        tree: SCOPES.into(),
        message: e.to_string(),
    })?;
    Ok(Some((key, body)))
}

/// The key of order key `key` under index scope prefix `scope` in [`SCOPES`].
fn scope_key_at(scope: &str, key: &crate::model::OrderKey) -> Vec<u8> {
    let (ts, agent, seq) = key;
    let mut out = Vec::with_capacity(scope.len() + agent.len() + 18);
    out.extend_from_slice(scope.as_bytes());
    out.push(0);
    // Sign bit flipped: byte order equals numeric order for negative times too.
    let mut time = ts.0.to_be_bytes();
    time[0] ^= 0x80;
    out.extend_from_slice(&time);
    out.extend_from_slice(agent.as_bytes());
    out.push(0);
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

/// The index scope and order key of a [`SCOPES`] key.
fn parse_scope_key(key: &[u8]) -> Option<(&str, crate::model::OrderKey)> {
    let zero = key.iter().position(|b| *b == 0)?;
    let scope = std::str::from_utf8(&key[..zero]).ok()?;
    let rest = &key[zero + 1..];
    let mut time: [u8; 8] = rest.get(..8)?.try_into().ok()?;
    time[0] ^= 0x80;
    let rest = &rest[8..];
    let zero = rest.iter().position(|b| *b == 0)?;
    let agent = std::str::from_utf8(&rest[..zero]).ok()?.to_string();
    let seq = key_u64(rest.get(zero + 1..)?)?;
    Some((
        scope,
        (
            coldaisle_core::Timestamp(i64::from_be_bytes(time)),
            agent,
            seq,
        ),
    ))
}

/// The ingest-order index: position → record key.
const POSITIONS: &str = "record_positions";

/// The index key of `position`.
fn position_key(position: u64) -> [u8; 8] {
    position.to_be_bytes()
}

/// One chunk of an agent's records ([`CollectorStore::agent_records`]).
#[derive(Debug, Default)]
pub struct AgentChunk {
    /// The records that decoded, in seq order.
    pub records: Vec<Record>,
    /// Records in the chunk that did not decode (skipped).
    pub undecodable: u64,
    /// The collector seq to read on after, when the agent may have more records (the chunk
    /// was full); `None` once its last record was read.
    pub last: Option<u64>,
}

/// Index entries read (and records looked up) per chunk of a deletion pass.
const DELETE_CHUNK: usize = 1024;

/// What one pass of [`CollectorStore::delete_records_before`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Deleted {
    /// Records deleted, each with its index entry.
    pub records: u64,
    /// Index entries whose record was already gone (a crash between the two writes, or the
    /// second entry of a record stored twice), deleted.
    pub dangling: u64,
    /// Old records kept: above their agent's ack (a gap below them), of an agent without
    /// ledger, or undecodable.
    pub held: u64,
    /// Index entries read.
    pub scanned: u64,
}

/// `(agent, collector seq)` of a record key; `None` for a key of another shape.
fn parse_record_key(key: &[u8]) -> Option<(&str, u64)> {
    let split = key.len().checked_sub(9)?;
    let (agent, rest) = key.split_at(split);
    if rest.first() != Some(&0) {
        return None;
    }
    Some((std::str::from_utf8(agent).ok()?, key_u64(&rest[1..])?))
}

/// Highest record seq accepted (2^62): far above what an agent can produce, low enough that
/// offsets and ranges never overflow.
pub const MAX_SEQ: u64 = 1 << 62;

/// Replaced instance ids remembered per agent (to refuse their late batches).
const PREVIOUS_INSTANCES: usize = 8;

/// What the collector durably remembers per agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentLedger {
    /// Site of the agent.
    pub site: String,
    /// Every seq ≤ this of the current instance is stored or was dropped by the agent (the
    /// last ack sent).
    pub acked_upto: u64,
    /// Highest seq received from the current instance (a gap above `acked_upto` shows missing
    /// records).
    #[serde(default)]
    pub highest_seen: u64,
    /// Seqs the agent reported as dropped (outbox quota, corruption) that the ack moved past.
    #[serde(default)]
    pub dropped_by_agent: u64,
    /// The current instance id (absent for agents that send none).
    #[serde(default)]
    pub instance: Option<String>,
    /// Collector seq = `offset` + the current instance's seq.
    #[serde(default)]
    pub offset: u64,
    /// New instances seen after the first (restarts with a new state directory).
    #[serde(default)]
    pub restarts: u64,
    /// Seqs a replaced instance produced that never arrived (lost with its state directory).
    #[serde(default)]
    pub lost_at_restart: u64,
    /// Replaced instance ids, newest last (at most a few).
    #[serde(default)]
    pub previous_instances: Vec<String>,
}

/// What a batch claims besides its records.
#[derive(Debug, Clone, Copy)]
pub struct Claims<'a> {
    /// The agent's floor (see [`coldaisle_core::wire::Batch::floor`]).
    pub floor: u64,
    /// Seqs the agent dropped.
    pub dropped: &'a [SeqRange],
    /// The sending instance.
    pub instance: Option<&'a str>,
    /// `ingest.max_dropped_span`.
    pub max_dropped_span: u64,
    /// The collector's clock at receipt and `ingest.max_clock_skew`: a record stamped later
    /// than their sum is stored with its times moved back to it (see [`Stored::ahead`]).
    pub clock: Option<(coldaisle_core::Timestamp, std::time::Duration)>,
}

/// A record as stored: the record (times at most receipt + `max_clock_skew`) and, when its
/// own time was later, that time. Decodes as a plain [`Record`] too (unknown fields ignored).
#[derive(Serialize)]
struct StoredRecord<'a> {
    #[serde(flatten)]
    record: &'a Record,
    /// The agent's own time of a record stamped too far ahead.
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_ts: Option<coldaisle_core::Timestamp>,
}

/// A new instance of an agent, recognised by one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Restart {
    /// The instance replaced (absent when the old one sent no id).
    pub previous: Option<String>,
    /// The new instance.
    pub instance: String,
    /// Its offset: collector seq = offset + its seq.
    pub offset: u64,
    /// Seqs of the old instance that never arrived.
    pub lost: u64,
}

/// The result of storing one batch.
#[derive(Debug, Default)]
pub struct Stored {
    /// Records that were new, now durable, under their collector seq.
    pub new: Vec<Record>,
    /// Records already stored before (ignored).
    pub duplicates: u64,
    /// The agent's ledger after the batch: `acked_upto` is what to ack.
    pub ledger: AgentLedger,
    /// Set when this batch came from a new instance of the agent.
    pub restart: Option<Restart>,
    /// Store lookups made (for the bound on work per batch).
    pub lookups: u64,
    /// New records stamped more than `max_clock_skew` ahead of the collector's clock: stored
    /// with their times moved back, so they never move incident or problem time.
    pub ahead: u64,
    /// How far the batch's newest record time was ahead of the collector's clock, in ms
    /// (negative: behind, i.e. delivery delay); `None` without records or clock.
    pub clock_ahead_ms: Option<i64>,
    /// The position of the batch's last new record (`None` without new records).
    pub position: Option<u64>,
}

/// Why a batch was not stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreBatchError {
    /// The batch claims what the agent cannot have produced: nothing stored, not acked.
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    /// The store failed: nothing acked, the agent will resend.
    #[error(transparent)]
    Store(#[from] StoreError),
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
    /// The last position given (read from the store on first use). Locked after `unflushed`.
    position: Arc<std::sync::Mutex<Option<u64>>>,
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

/// The ledger a batch of `instance` continues: the current one, or a fresh incarnation whose
/// offset lies above every collector seq used so far. Pure.
fn incarnation(
    ledger: &AgentLedger,
    instance: Option<&str>,
    floor: u64,
) -> Result<(AgentLedger, Option<Restart>), Refusal> {
    let Some(instance) = instance else {
        return Ok((ledger.clone(), None));
    };
    let restarted = match ledger.instance.as_deref() {
        Some(current) if current == instance => false,
        Some(current) => {
            if ledger.previous_instances.iter().any(|p| p == instance) {
                return Err(Refusal::StaleInstance {
                    instance: instance.to_string(),
                    current: current.to_string(),
                });
            }
            true
        }
        // The first id from this agent: an upgraded agent continues its seqs (floor above 1),
        // a fresh state directory starts again at floor 1.
        None => floor <= 1 && ledger.acked_upto.max(ledger.highest_seen) > 0,
    };
    let mut next = ledger.clone();
    next.instance = Some(instance.to_string());
    if !restarted {
        return Ok((next, None));
    }
    let used = ledger.acked_upto.max(ledger.highest_seen);
    let offset = ledger
        .offset
        .checked_add(used)
        .filter(|o| *o <= MAX_SEQ)
        .ok_or(Refusal::SeqOutOfRange(used))?;
    let lost = ledger.highest_seen.saturating_sub(ledger.acked_upto);
    if let Some(previous) = &ledger.instance {
        next.previous_instances.push(previous.clone());
        let excess = next
            .previous_instances
            .len()
            .saturating_sub(PREVIOUS_INSTANCES);
        next.previous_instances.drain(..excess);
    }
    next.offset = offset;
    next.acked_upto = 0;
    next.highest_seen = 0;
    next.restarts += 1;
    next.lost_at_restart += lost;
    let restart = Restart {
        previous: ledger.instance.clone(),
        instance: instance.to_string(),
        offset,
        lost,
    };
    Ok((next, Some(restart)))
}

/// Checks seqs, `dropped` and `floor` against what the agent can have produced (in the
/// instance's own seqs). Pure, O(records + ranges).
fn check_claims(
    ledger: &AgentLedger,
    claims: &Claims<'_>,
    records: &[Record],
) -> Result<(), Refusal> {
    for record in records {
        if record.seq == 0 || record.seq > MAX_SEQ {
            return Err(Refusal::SeqOutOfRange(record.seq));
        }
    }
    let batch_highest = records.iter().map(|r| r.seq).max().unwrap_or(0);
    let seen = ledger
        .highest_seen
        .max(ledger.acked_upto)
        .max(batch_highest);
    let mut claimed = seen;
    for range in claims.dropped {
        let within = seen.saturating_add(claims.max_dropped_span).min(MAX_SEQ);
        if range.from == 0 || range.from > range.to || range.to > within {
            return Err(Refusal::DroppedOutOfRange {
                from: range.from,
                to: range.to,
                seen,
                span: claims.max_dropped_span,
            });
        }
        claimed = claimed.max(range.to);
    }
    if claims.floor > claimed.saturating_add(1) {
        return Err(Refusal::FloorBeyondProduced {
            floor: claims.floor,
            claimed,
        });
    }
    Ok(())
}

impl CollectorStore {
    /// A store over `kv`.
    pub fn new(kv: Arc<dyn KvStore>) -> Self {
        CollectorStore {
            kv,
            unflushed: Default::default(),
            position: Default::default(),
        }
    }

    /// [`CollectorStore::store_claimed`] for an agent without instance id, with the default
    /// `max_dropped_span`.
    pub fn store_batch(
        &self,
        agent: &str,
        site: &str,
        floor: u64,
        dropped: &[SeqRange],
        records: Vec<Record>,
    ) -> Result<Stored, StoreBatchError> {
        let claims = Claims {
            floor,
            dropped,
            instance: None,
            max_dropped_span: coldaisle_config::trust::IngestConfig::default().max_dropped_span,
            clock: None,
        };
        self.store_claimed(agent, site, &claims, records)
    }

    /// Stores the records of one agent that are not stored yet, flushes, then advances the
    /// agent's contiguous `acked_upto` (records below `floor` and seqs in `dropped` count as
    /// settled: the agent no longer holds them). Only after this returns may the caller ack.
    /// A batch whose claims are out of bounds (see the module invariants) is refused and
    /// changes nothing.
    pub fn store_claimed(
        &self,
        agent: &str,
        site: &str,
        claims: &Claims<'_>,
        mut records: Vec<Record>,
    ) -> Result<Stored, StoreBatchError> {
        let mut out = Stored::default();
        let ledger_bytes = self.kv.get(AGENTS, agent.as_bytes())?;
        let stored_ledger: AgentLedger = ledger_bytes
            .as_deref()
            .and_then(|v| serde_json::from_slice(v).ok())
            .unwrap_or_default();
        out.lookups += 1;
        let (mut ledger, restart) = incarnation(&stored_ledger, claims.instance, claims.floor)?;
        check_claims(&ledger, claims, &records)?;
        let offset = ledger.offset;
        let highest = records.iter().map(|r| r.seq).max().unwrap_or(0);
        if let Some((now, _)) = claims.clock {
            out.clock_ahead_ms = records.iter().map(|r| r.payload.ts().0 - now.0).max();
        }
        let mut batch = WriteBatch::default();
        let mut positions = WriteBatch::default();
        let mut scopes = WriteBatch::default();
        let mut sizes = Deltas::default();
        let mut unflushed = self
            .unflushed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut position = self
            .position
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = match *position {
            Some(p) => p,
            None => self.position()?,
        };
        let mut keys = Vec::new();
        // Bounded by check_claims: offset ≤ MAX_SEQ and seq ≤ MAX_SEQ.
        let candidates: Vec<Vec<u8>> = records
            .iter()
            .map(|r| record_key(agent, r.seq + offset))
            .collect();
        // One lookup for the whole batch (one round trip on PostgreSQL).
        out.lookups += u64::from(!candidates.is_empty());
        let found = self.kv.get_many(RECORDS, &candidates)?;
        for ((mut record, key), found) in records.drain(..).zip(candidates).zip(found) {
            // At or below the ack it was stored before, even if retention deleted it since.
            let acked = record.seq <= ledger.acked_upto;
            record.seq += offset;
            if !unflushed.contains(&key) && (found.is_some() || acked) {
                out.duplicates += 1;
                continue;
            }
            keys.push(key.clone());
            let agent_ts = claims
                .clock
                .and_then(|(now, skew)| record.payload.clamp_time(now.plus(skew)));
            out.ahead += u64::from(agent_ts.is_some());
            let stored = StoredRecord {
                record: &record,
                agent_ts,
            };
            let json = serde_json::to_vec(&stored).map_err(|e| StoreError {
                operation: "encode",
                tree: RECORDS.into(),
                message: e.to_string(),
            })?;
            next += 1;
            sizes.add(
                RECORDS,
                Delta::written(key.len(), json.len(), found.as_ref().map(Vec::len)),
            );
            sizes.add(POSITIONS, Delta::written(8, key.len(), None));
            positions.insert(position_key(next), key.clone());
            if let Some((entry, body)) = scope_entry(&record)? {
                sizes.add(SCOPES, Delta::written(entry.len(), body.len(), None));
                scopes.insert(entry, body);
            }
            batch.insert(key, json);
            out.new.push(record);
        }
        // Summaries are folded into the roll-up trees once, when first stored; flushed below.
        let summaries: Vec<&coldaisle_core::ReadingSummary> = out
            .new
            .iter()
            .filter_map(|r| match &r.payload {
                coldaisle_core::wire::Payload::ReadingSummary(s) => Some(s),
                _ => None,
            })
            .collect();
        ledger.site = site.to_string();
        ledger.highest_seen = ledger.highest_seen.max(highest);
        ledger.acked_upto = ledger.acked_upto.max(claims.floor.saturating_sub(1));
        let mut ranges = claims.dropped.to_vec();
        ranges.sort_by_key(|r| r.from);
        let mut next_range = 0;
        let inserted: std::collections::HashSet<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        while let Some(next) = ledger.acked_upto.checked_add(1) {
            while ranges.get(next_range).is_some_and(|r| r.to < next) {
                next_range += 1;
            }
            if let Some(range) = ranges.get(next_range).filter(|r| r.from <= next) {
                // One step over the whole range, whatever its length.
                ledger.dropped_by_agent += range.to - next + 1;
                ledger.acked_upto = range.to;
                continue;
            }
            // A record of this batch is known to be there; others are looked up.
            let key = record_key(agent, offset + next);
            if !inserted.contains(key.as_slice()) {
                out.lookups += 1;
                if self.kv.get(RECORDS, &key)?.is_none() {
                    break;
                }
            }
            ledger.acked_upto = next;
        }
        let mut ledger_batch = WriteBatch::default();
        let ledger_json = serde_json::to_vec(&ledger).unwrap_or_default();
        sizes.add(
            AGENTS,
            Delta::written(
                agent.len(),
                ledger_json.len(),
                ledger_bytes.map(|v| v.len()),
            ),
        );
        ledger_batch.insert(agent.as_bytes().to_vec(), ledger_json);
        // The records and the ledger in one call: one transaction (one commit) on PostgreSQL.
        // The walk above looked up no record of this batch, so they need not be applied first.
        // The index before the records (see the module doc).
        self.kv.apply_trees(vec![
            (POSITIONS, positions),
            (SCOPES, scopes),
            (RECORDS, batch),
            (AGENTS, ledger_batch),
        ])?;
        // The new records hold positions up to `next` now (durable or not, they are applied).
        if !keys.is_empty() {
            *position = Some(next);
            out.position = Some(next);
        }
        drop(position);
        sizes.extend(crate::rollup_store::add_uncounted(
            self.kv.as_ref(),
            &summaries,
        )?);
        // One counts update for the batch's trees (see crate::tree_sizes).
        crate::tree_sizes::add(self.kv.as_ref(), &sizes)?;
        if let Err(e) = self.kv.flush() {
            unflushed.extend(keys);
            return Err(e.into());
        }
        // Everything applied so far is durable now, earlier failed batches included.
        unflushed.clear();
        out.ledger = ledger;
        out.restart = restart;
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

    /// The store underneath (checkpoints are written to it).
    pub fn kv(&self) -> &Arc<dyn KvStore> {
        &self.kv
    }

    /// The position of the last record stored (0 if none was stored with a position).
    pub fn position(&self) -> Result<u64, StoreError> {
        Ok(self
            .kv
            .last(POSITIONS)?
            .and_then(|(key, _)| key_u64(&key))
            .unwrap_or(0))
    }

    /// Calls `f` with every record stored after `position`, in position order (a record
    /// stored twice after a failed flush comes twice). Entries that do not decode or whose
    /// record is missing are reported and skipped; returns how many.
    pub fn for_each_record_after(
        &self,
        position: u64,
        mut f: impl FnMut(Record),
    ) -> Result<u64, StoreError> {
        let mut bad = 0;
        let from = position_key(position.saturating_add(1));
        let mut failure = None;
        visit_from(self.kv.as_ref(), POSITIONS, &from, |key, record_key| {
            let record = match self.kv.get(RECORDS, record_key) {
                Ok(r) => r,
                Err(e) => {
                    failure = Some(e);
                    return ControlFlow::Break(());
                }
            };
            match record.map(|v| serde_json::from_slice::<Record>(&v)) {
                Some(Ok(record)) => f(record),
                Some(Err(e)) => {
                    bad += 1;
                    tracing::error!(key = ?key, error = %e, "stored record does not decode; kept, skipped");
                }
                None => {
                    bad += 1;
                    tracing::error!(key = ?key, "indexed record is missing; skipped");
                }
            }
            ControlFlow::Continue(())
        })?;
        match failure {
            Some(e) => Err(e),
            None => Ok(bad),
        }
    }

    /// Deletes, in position order, the records whose event time is before `cutoff` and that
    /// their agent's ack covers, with their index entries, in chunks (one apply per chunk;
    /// flushed at the end). Stops at the first record at or after `cutoff`, at the position
    /// ingest had reached when the pass began (so an index entry whose record is still being
    /// written is never taken for dangling, and the last position's entry is kept), or once
    /// `stop` answers true. Holds no lock while
    /// it reads: ingest goes on. See the module invariants.
    pub fn delete_records_before(
        &self,
        cutoff: coldaisle_core::Timestamp,
        stop: &dyn Fn() -> bool,
    ) -> Result<Deleted, StoreError> {
        let settled = {
            let position = self
                .position
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match *position {
                Some(p) => p,
                None => self.position()?,
            }
        };
        // Acks only grow (a new instance's offset lies above the old ack), so limits read
        // now stay safe for the whole pass.
        let limits: std::collections::HashMap<String, u64> = self
            .ledgers()?
            .into_iter()
            .map(|(agent, l)| (agent, l.offset.saturating_add(l.acked_upto)))
            .collect();
        let mut out = Deleted::default();
        let mut from = position_key(1).to_vec();
        loop {
            let chunk = self.kv.scan(POSITIONS, &from, DELETE_CHUNK)?;
            let Some((last, _)) = chunk.last() else {
                break;
            };
            from = last.clone();
            from.push(0);
            let keys: Vec<Vec<u8>> = chunk.iter().map(|(_, k)| k.clone()).collect();
            let values = self.kv.get_many(RECORDS, &keys)?;
            let (mut records, mut index) = (WriteBatch::default(), WriteBatch::default());
            let mut scopes = WriteBatch::default();
            let mut sizes = Deltas::default();
            let mut done = false;
            for ((position_key, record_key), value) in chunk.into_iter().zip(values) {
                // `>=`: the entry of the last position given stays, so the last position,
                // read back from the index at start-up, never goes back (a position reused
                // would hide a record from the tail of a checkpoint).
                if stop() || key_u64(&position_key).is_none_or(|p| p >= settled) {
                    done = true;
                    break;
                }
                out.scanned += 1;
                let Some(value) = value else {
                    out.dangling += 1;
                    sizes.add(POSITIONS, Delta::removed(8, record_key.len()));
                    index.remove(position_key);
                    continue;
                };
                // The entry with its body, as written: its size is counted out below.
                let (ts, scope_entry) = match serde_json::from_slice::<Record>(&value) {
                    Ok(record) => (record.payload.ts(), scope_entry(&record)?),
                    Err(e) => {
                        out.held += 1;
                        tracing::warn!(key = ?record_key, error = %e, "stored record does not decode; kept");
                        continue;
                    }
                };
                if ts >= cutoff {
                    done = true;
                    break;
                }
                let acked = parse_record_key(&record_key).is_some_and(|(agent, seq)| {
                    limits.get(agent).is_some_and(|&limit| seq <= limit)
                });
                if !acked {
                    out.held += 1;
                    continue;
                }
                out.records += 1;
                sizes.add(RECORDS, Delta::removed(record_key.len(), value.len()));
                sizes.add(POSITIONS, Delta::removed(8, record_key.len()));
                if let Some((entry, body)) = scope_entry {
                    sizes.add(SCOPES, Delta::removed(entry.len(), body.len()));
                    scopes.remove(entry);
                }
                records.remove(record_key);
                index.remove(position_key);
            }
            // The record before its index entries (see the module invariants).
            self.kv.apply_trees(vec![
                (RECORDS, records),
                (POSITIONS, index),
                (SCOPES, scopes),
            ])?;
            crate::tree_sizes::add(self.kv.as_ref(), &sizes)?;
            if done {
                break;
            }
        }
        self.kv.flush()?;
        Ok(out)
    }

    /// The stored events of the analysis scope `scope` with `from <= order key < to`, in
    /// order-key order, read from the scope index alone: an exact scope is one range scan, a
    /// site segment one prefix scan (its fingerprints' entries interleave, so they are
    /// sorted). Each entry holds its event's body; an entry of the older layout (→ record key,
    /// before the upgrade's re-indexing ran) is answered by looking its record up. Entries
    /// whose body or record does not decode, or whose record is missing, are skipped
    /// (reported).
    pub fn scope_events(
        &self,
        scope: &crate::analysis::history::ScopeSelector,
        from: &crate::model::OrderKey,
        to: &crate::model::OrderKey,
    ) -> Result<Vec<crate::model::StoredEvent>, StoreError> {
        use crate::analysis::history::ScopeSelector;
        use crate::model::event_body;
        if from >= to {
            return Ok(Vec::new());
        }
        let prefix = scope.prefix();
        let (start, exact_end) = match scope {
            ScopeSelector::Exact(s) => (scope_key_at(s, from), Some(scope_key_at(s, to))),
            ScopeSelector::Segment(_) | ScopeSelector::All => (prefix.as_bytes().to_vec(), None),
        };
        // The event, or the record key of an entry of the older layout.
        let mut found: Vec<(crate::model::OrderKey, Result<Payload, Vec<u8>>)> = Vec::new();
        visit_from(self.kv.as_ref(), SCOPES, &start, |key, value| {
            if !key.starts_with(prefix.as_bytes()) {
                return ControlFlow::Break(());
            }
            if exact_end.as_deref().is_some_and(|end| key >= end) {
                return ControlFlow::Break(());
            }
            match parse_scope_key(key) {
                Some((s, order)) if scope.matches(s) && order >= *from && order < *to => {
                    if !event_body::is_body(value) {
                        found.push((order, Err(value.to_vec())));
                        return ControlFlow::Continue(());
                    }
                    match event_body::decode(value) {
                        Ok(payload) => found.push((order, Ok(payload))),
                        Err(e) => {
                            tracing::error!(key = ?key, error = %e, "scope index body does not decode; skipped");
                        }
                    }
                }
                Some(_) => {}
                None => tracing::error!(key = ?key, "scope index entry does not decode; skipped"),
            }
            ControlFlow::Continue(())
        })?;
        if matches!(scope, ScopeSelector::Segment(_) | ScopeSelector::All) {
            found.sort_by(|a, b| a.0.cmp(&b.0));
        }
        self.with_older_entries_looked_up(found)
    }

    /// The events of [`CollectorStore::scope_events`]'s entries, in their order: bodies as
    /// they are, entries of the older layout by one lookup of all their records.
    fn with_older_entries_looked_up(
        &self,
        found: Vec<(crate::model::OrderKey, Result<Payload, Vec<u8>>)>,
    ) -> Result<Vec<crate::model::StoredEvent>, StoreError> {
        let record_keys: Vec<Vec<u8>> = found
            .iter()
            .filter_map(|(_, e)| e.as_ref().err().cloned())
            .collect();
        let mut records = self.kv.get_many(RECORDS, &record_keys)?.into_iter();
        let mut out = Vec::with_capacity(found.len());
        for ((ts, agent, seq), entry) in found {
            let payload = match entry {
                Ok(payload) => payload,
                Err(record_key) => match records.next().flatten() {
                    Some(value) => match serde_json::from_slice::<Record>(&value) {
                        Ok(record) => record.payload,
                        Err(e) => {
                            tracing::error!(key = ?record_key, error = %e, "stored record does not decode; kept, skipped");
                            continue;
                        }
                    },
                    None => {
                        tracing::warn!(key = ?record_key, "scope-indexed record is missing; skipped");
                        continue;
                    }
                },
            };
            debug_assert_eq!(payload.ts(), ts);
            out.push(crate::model::StoredEvent {
                agent,
                seq,
                payload,
            });
        }
        Ok(out)
    }

    /// True if the scope index is not (known to be) in the current layout while the store
    /// holds records: a store written before the index existed, or before its entries held
    /// the event body, which [`CollectorStore::index_unindexed_scopes`] must index before
    /// anything reads the index (a read of the older layout is correct but looks every
    /// record up). Once [`CollectorStore::mark_scope_index_complete`] has run (after a
    /// backfill, or at the first start of a store whose every record was indexed as it was
    /// written), this is false without looking at the records again, so a store of reading
    /// summaries only (no scope to index) is not rescanned at every start.
    pub fn scope_index_missing(&self) -> Result<bool, StoreError> {
        if self.kv.get(LAYOUT, SCOPE_INDEX_BODIES)?.is_some() {
            return Ok(false);
        }
        Ok(!self.kv.scan(RECORDS, b"", 1)?.is_empty())
    }

    /// Records that every stored record is indexed by scope in the current layout (see
    /// [`CollectorStore::scope_index_missing`]); records written from now on are indexed
    /// with their batch.
    pub fn mark_scope_index_complete(&self) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.insert(SCOPE_INDEX_BODIES, b"1".to_vec());
        self.kv.apply(LAYOUT, batch)?;
        self.kv.flush()
    }

    /// Indexes by scope, in the current layout (key → event body), every stored record:
    /// records stored before the scope index existed, and entries of the older layout
    /// (→ record key), which are overwritten. Run once at start-up when
    /// [`CollectorStore::scope_index_missing`] says so. Idempotent. Returns how many entries
    /// it wrote.
    pub fn index_unindexed_scopes(&self) -> Result<u64, StoreError> {
        let mut batch = WriteBatch::default();
        let mut written = 0;
        let mut failure = None;
        visit_from(self.kv.as_ref(), RECORDS, b"", |_, value| {
            let Ok(record) = serde_json::from_slice::<Record>(value) else {
                return ControlFlow::Continue(());
            };
            match scope_entry(&record) {
                Ok(Some((entry, body))) => {
                    batch.insert(entry, body);
                    written += 1;
                }
                Ok(None) => {}
                Err(e) => {
                    failure = Some(e);
                    return ControlFlow::Break(());
                }
            }
            if batch.ops.len() >= DELETE_CHUNK {
                if let Err(e) = self.kv.apply(SCOPES, std::mem::take(&mut batch)) {
                    failure = Some(e);
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        self.kv.apply(SCOPES, batch)?;
        // Entries already there were overwritten: drop the tree's count, so that it is
        // counted again by a scan (`crate::tree_sizes`).
        let mut forget = WriteBatch::default();
        forget.remove(SCOPES.as_bytes().to_vec());
        self.kv.apply(crate::tree_sizes::TREE, forget)?;
        self.kv.flush()?;
        Ok(written)
    }

    /// The agents that have records stored, in key order: one short scan per agent (each
    /// scan starts just past the previous agent's keys), so O(agents), not O(records).
    pub fn record_agents(&self) -> Result<Vec<String>, StoreError> {
        let mut agents = Vec::new();
        let mut from: Vec<u8> = Vec::new();
        while let Some((key, _)) = self.kv.scan(RECORDS, &from, 1)?.into_iter().next() {
            let end = key.iter().position(|b| *b == 0).unwrap_or(key.len());
            let agent = &key[..end];
            match std::str::from_utf8(agent) {
                Ok(name) => agents.push(name.to_string()),
                Err(_) => tracing::error!(key = ?key, "record key without a UTF-8 agent; skipped"),
            }
            // The smallest key after every `agent + 0x00 + seq` key.
            from = agent.to_vec();
            from.push(1);
        }
        Ok(agents)
    }

    /// Up to `limit` stored records of `agent` with collector seq above `after`, in seq order
    /// (one range scan): what a reader that walks one agent's records a chunk at a time, such
    /// as the streamed rebuild ([`crate::stream_rebuild`]), calls. Undecodable records are
    /// reported, counted and skipped.
    pub fn agent_records(
        &self,
        agent: &str,
        after: u64,
        limit: usize,
    ) -> Result<AgentChunk, StoreError> {
        let mut chunk = AgentChunk::default();
        let Some(first) = after.checked_add(1) else {
            return Ok(chunk);
        };
        let mut prefix = agent.as_bytes().to_vec();
        prefix.push(0);
        let entries = self
            .kv
            .scan(RECORDS, &record_key(agent, first), limit.max(1))?;
        let full = entries.len() >= limit.max(1);
        for (key, value) in entries {
            let Some(seq) = key.strip_prefix(prefix.as_slice()).and_then(key_u64) else {
                // Past this agent's keys: nothing more of it.
                chunk.last = None;
                return Ok(chunk);
            };
            chunk.last = Some(seq);
            match serde_json::from_slice::<Record>(&value) {
                Ok(record) => chunk.records.push(record),
                Err(e) => {
                    chunk.undecodable += 1;
                    tracing::error!(key = ?key, error = %e, "stored record does not decode; kept, skipped");
                }
            }
        }
        if !full {
            chunk.last = None;
        }
        Ok(chunk)
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

impl crate::analysis::history::ScopeHistory for CollectorStore {
    fn events(
        &self,
        scope: &crate::analysis::history::ScopeSelector,
        from: &crate::model::OrderKey,
        to: &crate::model::OrderKey,
    ) -> Result<Vec<crate::model::StoredEvent>, crate::analysis::history::HistoryError> {
        self.scope_events(scope, from, to)
            .map_err(|e| crate::analysis::history::HistoryError {
                scope: scope.name().to_string(),
                source: Box::new(e),
            })
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
            instance: None,
        }
    }

    #[test]
    fn new_records_get_positions_and_the_tail_after_one_is_a_range() {
        let kv: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
        let store = CollectorStore::new(kv.clone());
        assert_eq!(store.position().expect("position"), 0);
        let s = store
            .store_batch("a1", "s1", 1, &[], vec![record(3), record(1)])
            .expect("store");
        assert_eq!(s.position, Some(2));
        let s = store
            .store_batch("a1", "s1", 1, &[], vec![record(1), record(2)])
            .expect("store");
        // Only the new record (2) gets a position; the duplicate (1) none.
        assert_eq!(s.position, Some(3));
        let dup = store
            .store_batch("a1", "s1", 1, &[], vec![record(2)])
            .expect("store");
        assert_eq!(dup.position, None);
        // A new handle over the same store continues after the last position.
        let reopened = CollectorStore::new(kv);
        assert_eq!(reopened.position().expect("position"), 3);
        let mut other = record(1);
        other.agent = "b1".into();
        let s = reopened
            .store_batch("b1", "s1", 1, &[], vec![other])
            .expect("store");
        assert_eq!(s.position, Some(4));
        let mut tail = Vec::new();
        let bad = reopened
            .for_each_record_after(1, |r| tail.push((r.agent, r.seq)))
            .expect("tail");
        assert_eq!(bad, 0);
        // In position order: a1's seq 1 (position 2), then 2, then b1's 1.
        assert_eq!(
            tail,
            vec![("a1".into(), 1), ("a1".into(), 2), ("b1".into(), 1)]
        );
        // The full scan sees each record once and never the index.
        let mut all = Vec::new();
        let bad = reopened
            .for_each_record(|r| all.push((r.agent, r.seq)))
            .expect("scan");
        assert_eq!(bad, 0);
        assert_eq!(all.len(), 4);
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

    fn summary_record(seq: u64, minute: i64, value: f64) -> Record {
        let mut r = record(seq);
        r.payload = Payload::ReadingSummary(coldaisle_core::ReadingSummary {
            sensor: "t1".into(),
            kind: coldaisle_core::SensorKind::InletTemp,
            location: Location {
                site: "s1".into(),
                zone: "Z1".into(),
                row: None,
                rack: Some("R1".into()),
            },
            from: Timestamp(minute * 60_000),
            to: Timestamp(minute * 60_000 + 59_000),
            count: 1,
            min: value,
            max: value,
            sum: value,
            last: value,
        });
        r
    }

    #[test]
    fn stored_summaries_are_rolled_up_once() {
        use crate::rollup::{Level, Rollup};
        let kv: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
        let store = CollectorStore::new(kv.clone());
        store
            .store_batch(
                "a1",
                "s1",
                1,
                &[],
                vec![summary_record(1, 0, 20.0), record(2)],
            )
            .expect("store");
        // Seq 1 again (a redelivery) plus a new minute of the same hour.
        store
            .store_batch(
                "a1",
                "s1",
                1,
                &[],
                vec![summary_record(1, 0, 20.0), summary_record(3, 1, 24.0)],
            )
            .expect("store");
        assert_eq!(kv.len(Level::Minute.tree()).expect("len"), 2);
        let hours = kv.scan(Level::Hour.tree(), b"", 10).expect("scan");
        assert_eq!(hours.len(), 1);
        let hour: Rollup = crate::rollup::zone_value::decode_any(&hours[0].0, &hours[0].1)
            .expect("decode")
            .remove(0);
        assert_eq!((hour.count, hour.summaries), (2, 2));
        assert_eq!((hour.min, hour.max, hour.last), (20.0, 24.0, 24.0));
        assert_eq!(kv.len(Level::Day.tree()).expect("len"), 1);
    }

    fn claims<'a>(floor: u64, dropped: &'a [SeqRange], instance: Option<&'a str>) -> Claims<'a> {
        Claims {
            floor,
            dropped,
            instance,
            max_dropped_span: 1_000_000,
            clock: None,
        }
    }

    fn refusal(result: Result<Stored, StoreBatchError>) -> &'static str {
        match result {
            Err(StoreBatchError::Refused(r)) => r.reason(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn claims_beyond_what_the_agent_produced_are_refused_and_change_nothing() {
        let store = CollectorStore::new(Arc::new(MemoryStore::new()));
        store
            .store_batch("a1", "s1", 1, &[], vec![record(1), record(2)])
            .expect("store");
        let before = store.ledger("a1").expect("ledger");
        let everything = [SeqRange {
            from: 2,
            to: u64::MAX,
        }];
        let r = store.store_claimed("a1", "s1", &claims(1, &everything, None), vec![record(3)]);
        assert_eq!(refusal(r), "dropped_out_of_range");
        let r = store.store_claimed("a1", "s1", &claims(u64::MAX, &[], None), vec![record(3)]);
        assert_eq!(refusal(r), "floor_beyond_produced");
        let reversed = [SeqRange { from: 9, to: 4 }];
        let r = store.store_claimed("a1", "s1", &claims(1, &reversed, None), vec![]);
        assert_eq!(refusal(r), "dropped_out_of_range");
        let r = store.store_claimed("a1", "s1", &claims(1, &[], None), vec![record(0)]);
        assert_eq!(refusal(r), "seq_out_of_range");
        let r = store.store_claimed("a1", "s1", &claims(1, &[], None), vec![record(MAX_SEQ + 1)]);
        assert_eq!(refusal(r), "seq_out_of_range");
        assert_eq!(store.ledger("a1").expect("ledger"), before);
        let mut seqs = Vec::new();
        store.for_each_record(|r| seqs.push(r.seq)).expect("scan");
        assert_eq!(seqs, vec![1, 2], "a refused batch stores nothing");
        // The floor may be one above the highest seq shown, not more.
        let s = store
            .store_claimed("a1", "s1", &claims(4, &[], None), vec![record(3)])
            .expect("floor = highest + 1");
        assert_eq!(s.ledger.acked_upto, 3);
    }

    #[test]
    fn a_long_dropped_range_is_one_step() {
        let store = CollectorStore::new(Arc::new(MemoryStore::new()));
        let dropped = [SeqRange {
            from: 2,
            to: 900_000,
        }];
        let s = store
            .store_claimed("a1", "s1", &claims(1, &dropped, None), vec![record(1)])
            .expect("within max_dropped_span");
        assert_eq!(s.ledger.acked_upto, 900_000);
        assert_eq!(s.ledger.dropped_by_agent, 899_999);
        assert!(s.lookups <= 4, "lookups {}", s.lookups);
    }

    #[test]
    fn a_new_instance_restarting_its_seqs_is_stored_after_the_old_one() {
        let store = CollectorStore::new(Arc::new(MemoryStore::new()));
        let with = |seq: u64, instance: &str| Record {
            instance: Some(instance.into()),
            ..record(seq)
        };
        let s = store
            .store_claimed(
                "a1",
                "s1",
                &claims(1, &[], Some("i1")),
                vec![with(1, "i1"), with(2, "i1")],
            )
            .expect("first instance");
        assert_eq!((s.ledger.acked_upto, s.restart.is_none()), (2, true));
        // Seq 4 arrived but 3 never did: the new instance starts above 4.
        store
            .store_claimed("a1", "s1", &claims(1, &[], Some("i1")), vec![with(4, "i1")])
            .expect("gap");
        let s = store
            .store_claimed(
                "a1",
                "s1",
                &claims(1, &[], Some("i2")),
                vec![with(1, "i2"), with(2, "i2")],
            )
            .expect("new instance");
        let restart = s.restart.expect("restart recognised");
        assert_eq!((restart.offset, restart.lost), (4, 2));
        assert_eq!(s.new.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![5, 6]);
        assert_eq!(
            (s.duplicates, s.ledger.acked_upto, s.ledger.restarts),
            (0, 2, 1)
        );
        // A resend of the new instance is a duplicate; a late batch of the old one is refused.
        let s = store
            .store_claimed(
                "a1",
                "s1",
                &claims(1, &[], Some("i2")),
                vec![with(2, "i2"), with(3, "i2")],
            )
            .expect("resend");
        assert_eq!((s.duplicates, s.new.len(), s.ledger.acked_upto), (1, 1, 3));
        let r = store.store_claimed("a1", "s1", &claims(1, &[], Some("i1")), vec![with(5, "i1")]);
        assert_eq!(refusal(r), "stale_instance");
        let mut seqs = Vec::new();
        store.for_each_record(|r| seqs.push(r.seq)).expect("scan");
        assert_eq!(seqs, vec![1, 2, 4, 5, 6, 7]);
    }

    #[test]
    fn an_upgraded_agent_sending_its_first_instance_id_continues_its_seqs() {
        let store = CollectorStore::new(Arc::new(MemoryStore::new()));
        store
            .store_batch("a1", "s1", 1, &[], vec![record(1), record(2)])
            .expect("old agent");
        let s = store
            .store_claimed(
                "a1",
                "s1",
                &claims(3, &[], Some("i1")),
                vec![Record {
                    instance: Some("i1".into()),
                    ..record(3)
                }],
            )
            .expect("upgraded agent");
        assert!(s.restart.is_none());
        assert_eq!((s.ledger.offset, s.ledger.acked_upto), (0, 3));
        assert_eq!(s.ledger.instance.as_deref(), Some("i1"));
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

/// The scope index against a history held in memory: same answers for every scope and range,
/// after retention, and after indexing records stored without the index.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod scope_index_tests {
    use super::*;
    use crate::analysis::history::{MemoryHistory, ScopeHistory, ScopeSelector};
    use crate::incidents::tests::{device, sensor, zone, MIN, T0};
    use crate::model::{OrderKey, StoredEvent};
    use coldaisle_core::wire::{Payload, SCHEMA_VERSION};
    use coldaisle_core::{EventState, Severity, Timestamp};
    use coldaisle_store::MemoryStore;

    /// Events of two agents over three zones (two sites), some at the same millisecond, some
    /// before 1970, in event-time order; seqs per agent from 1.
    fn events() -> Vec<StoredEvent> {
        let mut out = Vec::new();
        let mut next = std::collections::HashMap::new();
        for i in 0..60_i64 {
            let agent = if i % 3 == 0 { "a2" } else { "a1" };
            let z = ["Z1", "Z2", "Z10"][(i % 5 % 3) as usize];
            let ts = if i < 4 { -T0 + i } else { T0 + (i / 2) * MIN };
            let state = if i % 4 == 0 {
                EventState::Cleared
            } else {
                EventState::Raised
            };
            let mut e = match i % 4 {
                0 | 1 => sensor(agent, 0, z, "r1", state, Severity::Warning, 28.0, ts),
                2 => zone(agent, 0, z, state, Severity::Warning, &["r1"], ts),
                _ => device(agent, 0, z, "pdu", state, ts),
            };
            if i % 7 == 0 {
                if let Payload::SensorEvent(s) = &mut e.payload {
                    s.location.site = "dc1-b".into();
                }
            }
            let seq = next.entry(agent).or_insert(0_u64);
            *seq += 1;
            e.seq = *seq;
            out.push(e);
        }
        out
    }

    fn as_record(e: &StoredEvent) -> Record {
        Record {
            schema: SCHEMA_VERSION,
            agent: e.agent.clone(),
            site: "dc1".into(),
            seq: e.seq,
            payload: e.payload.clone(),
            instance: None,
        }
    }

    fn key(ts: i64) -> OrderKey {
        (Timestamp(ts), String::new(), 0)
    }

    fn selectors() -> Vec<ScopeSelector> {
        let mut out = vec![
            ScopeSelector::Segment("dc1".into()),
            ScopeSelector::Segment("dc10".into()),
            ScopeSelector::All,
        ];
        for z in ["z1", "z2", "z10"] {
            for c in ["thermal", "device"] {
                out.push(ScopeSelector::Exact(format!("dc1-{z}-{c}")));
                out.push(ScopeSelector::Exact(format!("dc1-b-{z}-{c}")));
            }
        }
        out
    }

    fn assert_same(store: &CollectorStore, memory: &MemoryHistory) -> usize {
        let ranges = [
            (key(i64::MIN), key(i64::MAX)),
            (key(-T0 + 1), key(T0 + 10 * MIN)),
            (
                key(T0 + 5 * MIN),
                (Timestamp(T0 + 20 * MIN), "a2".into(), 3),
            ),
            (key(T0 + 9 * MIN), key(T0 + 9 * MIN)),
        ];
        let mut total = 0;
        for selector in selectors() {
            for (from, to) in &ranges {
                let got = store.events(&selector, from, to).unwrap();
                let want = memory.events(&selector, from, to).unwrap();
                let keys =
                    |v: &[StoredEvent]| v.iter().map(StoredEvent::order_key).collect::<Vec<_>>();
                assert_eq!(keys(&got), keys(&want), "{selector:?} {from:?}..{to:?}");
                // The whole event, payload included, as stored.
                assert_eq!(got, want, "{selector:?} {from:?}..{to:?}");
                total += got.len();
            }
        }
        total
    }

    #[test]
    fn an_analysis_scope_reads_exactly_its_own_events_from_the_index() {
        use crate::analysis::Analysis;
        use crate::incidents::{fingerprint_of, IncidentRules};
        use crate::problems::{ProblemRules, ProblemScope};
        let kv: Arc<dyn KvStore> = Arc::new(MemoryStore::default());
        let store = CollectorStore::new(kv);
        let all = events();
        for e in &all {
            store
                .store_batch(&e.agent, "dc1", 1, &[], vec![as_record(e)])
                .unwrap();
        }
        for scope in [ProblemScope::Zone, ProblemScope::Row] {
            let rules = ProblemRules {
                scope,
                ..ProblemRules::default()
            };
            let a = Analysis::new(IncidentRules::default(), rules);
            let mut selectors = Vec::new();
            for e in &all {
                let selector = a.history_selector(&fingerprint_of(&e.payload).unwrap());
                let read = store
                    .events(&selector, &key(i64::MIN), &key(i64::MAX))
                    .unwrap();
                assert!(read.iter().any(|r| r.order_key() == e.order_key()));
                if !selectors.contains(&selector) {
                    selectors.push(selector);
                }
            }
            // Each event is read under one scope only.
            let total: usize = selectors
                .iter()
                .map(|s| {
                    store
                        .events(s, &key(i64::MIN), &key(i64::MAX))
                        .unwrap()
                        .len()
                })
                .sum();
            assert_eq!(total, all.len(), "{scope:?}");
            assert!(selectors.len() < all.len());
        }
    }

    #[test]
    fn the_scope_index_answers_like_memory_through_retention_and_backfill() {
        let kv: Arc<dyn KvStore> = Arc::new(MemoryStore::default());
        let store = CollectorStore::new(kv.clone());
        let mut memory = MemoryHistory::default();
        for e in events() {
            store
                .store_batch(&e.agent, "dc1", 1, &[], vec![as_record(&e)])
                .unwrap();
            memory.add(e);
        }
        assert_eq!(kv.len(SCOPES).unwrap(), memory.len());
        assert!(assert_same(&store, &memory) > 100);

        let cutoff = T0 + 10 * MIN;
        let deleted = store
            .delete_records_before(Timestamp(cutoff), &|| false)
            .unwrap();
        assert!(deleted.records > 10);
        memory.forget_before(&key(cutoff));
        assert_eq!(kv.len(SCOPES).unwrap(), memory.len());
        assert!(assert_same(&store, &memory) > 50);
        let counted = crate::tree_sizes::read(kv.as_ref()).unwrap();
        let scopes = counted.iter().find(|t| t.tree == SCOPES).unwrap();
        let scanned = crate::tree_sizes::scan(kv.as_ref(), SCOPES).unwrap();
        assert_eq!(
            (scopes.entries, scopes.bytes),
            (scanned.entries, scanned.bytes)
        );

        // Records stored before the index existed: drop the index, index them again.
        let mut drop = WriteBatch::default();
        for (k, _) in kv.scan(SCOPES, b"", usize::MAX).unwrap() {
            drop.remove(k);
        }
        kv.apply(SCOPES, drop).unwrap();
        assert_eq!(assert_same(&store, &MemoryHistory::default()), 0);
        assert_eq!(store.index_unindexed_scopes().unwrap(), memory.len() as u64);
        assert!(assert_same(&store, &memory) > 50);
    }

    /// Rewrites every entry of the scope index in the layout before issue 13 part 13 (→ record
    /// key), with that layout's mark; `keep_bodies` entries (in key order) keep their body, as
    /// a re-indexing stopped in the middle leaves them.
    fn downgrade_index(kv: &dyn KvStore, keep_bodies: usize) -> usize {
        let mut batch = WriteBatch::default();
        let entries = kv.scan(SCOPES, b"", usize::MAX).unwrap();
        for (key, value) in entries.iter().skip(keep_bodies) {
            if !crate::model::event_body::is_body(value) {
                continue;
            }
            let (_, (_, agent, seq)) = parse_scope_key(key).unwrap();
            batch.insert(key.clone(), record_key(&agent, seq));
        }
        kv.apply(SCOPES, batch).unwrap();
        let mut mark = WriteBatch::default();
        mark.insert(b"record_scopes_complete".to_vec(), b"1".to_vec());
        kv.apply(LAYOUT, mark).unwrap();
        entries.len()
    }

    /// A store whose index is in the older layout (→ record key) reads the same events
    /// through it, is found to need indexing again (the older mark does not count), is
    /// re-indexed with bodies, reads the same events without record lookups, and is not
    /// indexed again at the next start; a half re-indexed store reads the same too.
    fn upgrade_story(open: &dyn Fn() -> Arc<dyn KvStore>) {
        let kv = open();
        let store = CollectorStore::new(kv.clone());
        let mut memory = MemoryHistory::default();
        for e in events() {
            store
                .store_batch(&e.agent, "dc1", 1, &[], vec![as_record(&e)])
                .unwrap();
            memory.add(e);
        }
        store.mark_scope_index_complete().unwrap();
        assert!(!store.scope_index_missing().unwrap());
        let expected = assert_same(&store, &memory);
        assert!(expected > 100);

        // Half re-indexed (a crash in the middle of the backfill): both layouts at once.
        assert_eq!(downgrade_index(kv.as_ref(), 20), memory.len());
        let mut unmark = WriteBatch::default();
        unmark.remove(SCOPE_INDEX_BODIES.to_vec());
        kv.apply(LAYOUT, unmark).unwrap();
        assert_eq!(assert_same(&store, &memory), expected);
        // Wholly in the older layout, with its mark.
        downgrade_index(kv.as_ref(), 0);
        assert!(store.scope_index_missing().unwrap());
        assert_eq!(assert_same(&store, &memory), expected);

        // The upgrade, as start-up runs it (`daemon::backfill_scope_index`).
        assert_eq!(store.index_unindexed_scopes().unwrap(), memory.len() as u64);
        store.mark_scope_index_complete().unwrap();
        assert!(!store.scope_index_missing().unwrap());
        let entries = kv.scan(SCOPES, b"", usize::MAX).unwrap();
        assert_eq!(entries.len(), memory.len());
        assert!(entries
            .iter()
            .all(|(_, v)| crate::model::event_body::is_body(v)));
        // No record needed any more: the index alone answers.
        let mut drop = WriteBatch::default();
        for (k, _) in kv.scan(RECORDS, b"", usize::MAX).unwrap() {
            drop.remove(k);
        }
        kv.apply(RECORDS, drop).unwrap();
        assert_eq!(assert_same(&store, &memory), expected);
        drop_store(store, kv);

        // Opened again: the mark holds, nothing to index.
        let again = CollectorStore::new(open());
        assert!(!again.scope_index_missing().unwrap());
        assert_eq!(assert_same(&again, &memory), expected);
    }

    /// Closes a store (a backend that locks its files is opened again after this).
    fn drop_store(store: CollectorStore, kv: Arc<dyn KvStore>) {
        kv.flush().unwrap();
        drop(store);
        drop(kv);
    }

    #[test]
    fn an_index_of_the_older_layout_is_upgraded_and_reads_the_same_events_in_memory() {
        let kv: Arc<dyn KvStore> = Arc::new(MemoryStore::default());
        upgrade_story(&|| kv.clone());
    }

    #[test]
    fn an_index_of_the_older_layout_is_upgraded_and_reads_the_same_events_on_sled() {
        let dir = tempfile::tempdir().unwrap();
        upgrade_story(&|| Arc::new(coldaisle_store::SledStore::open(dir.path()).unwrap()));
    }

    #[test]
    fn an_index_of_the_older_layout_is_upgraded_and_reads_the_same_events_on_postgres() {
        use coldaisle_store_pg::{PgOptions, PgStore};
        use coldaisle_testkit::postgres::Postgres;
        let pg = Postgres::start().expect("postgres");
        pg.create_database("scopes").expect("database");
        let options = PgOptions {
            url: pg.url("scopes"),
            password: Some(Postgres::PASSWORD.into()),
            ca_file: None,
        };
        upgrade_story(&|| Arc::new(PgStore::open(options.clone()).expect("open postgres")));
    }
}
