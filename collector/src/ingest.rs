//! Ingest of agent batches: bound, admit, store each `(agent, seq)` once, commit, then say what
//! to ack; afterwards update the in-memory analysis. A payload that does not parse is counted
//! and logged with its topic and never stops ingest.
//!
//! The order of checks, all before anything is stored: topic → size (`ingest.max_batch_bytes`,
//! before decoding) → decode → agent and site names → record count and size → identity
//! ([`crate::identity`]) → claims against the ledger ([`crate::store`]). A refusal
//! ([`Refusal`]) is counted per agent and reason, and never acked.

use crate::analysis::StoredEvent;
use crate::identity::{AgentDirectory, FirstSeen, SiteBook};
use crate::refusal::Refusal;
use crate::state::CollectorState;
use crate::store::{Claims, CollectorStore, StoreBatchError, Stored};
use coldaisle_config::trust::IngestConfig;
use coldaisle_core::wire::{Ack, Batch, Payload, Record, SeqRange, Status, Topics};
use coldaisle_core::Timestamp;
use std::sync::{Arc, RwLock};

/// Longest agent id or site accepted, in bytes.
const MAX_NAME_BYTES: usize = 128;

/// Why a message was rejected.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The topic is not one of ours.
    #[error("topic {0} is not an agent topic under our prefix")]
    Topic(String),
    /// The payload did not decode or is inconsistent with its topic.
    #[error("malformed payload on {topic}: {reason}")]
    Malformed {
        /// Topic it came on.
        topic: String,
        /// What was wrong.
        reason: String,
    },
    /// The batch is out of bounds or not the agent's to send: counted per agent, not acked.
    #[error("batch of agent {agent} refused: {refusal}")]
    Refused {
        /// Agent (from the topic).
        agent: String,
        /// Site (from the topic).
        site: String,
        /// Why.
        refusal: Refusal,
    },
    /// The store failed: nothing is acked, the agent will resend.
    #[error("store failed: {0}")]
    Store(#[from] coldaisle_store::StoreError),
}

/// What ingest checks batches against: limits and the agents list. Replaced whole on SIGHUP.
#[derive(Debug, Clone, Default)]
pub struct Gate {
    /// `[ingest]` bounds.
    pub limits: IngestConfig,
    /// `[[agents]]` + `agents_file`, or trust on first use.
    pub directory: AgentDirectory,
}

/// The gate in force, shared by the ingest loop and the reload.
pub type SharedGate = Arc<RwLock<Arc<Gate>>>;

/// What the ingest loop stores batches with: the store, the first-seen sites, the gate.
#[derive(Debug, Clone)]
pub struct Intake {
    /// Records and ledgers.
    pub store: CollectorStore,
    /// First-seen sites (trust on first use).
    pub sites: SiteBook,
    /// Limits and agents list in force.
    pub gate: SharedGate,
}

/// The gate in force now.
pub fn current(gate: &SharedGate) -> Arc<Gate> {
    gate.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// Puts `next` in force if it differs from the gate in force; returns whether it did.
pub fn replace(gate: &SharedGate, next: Gate) -> bool {
    let mut current = gate
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let changed = current.limits != next.limits || current.directory != next.directory;
    if changed {
        *current = Arc::new(next);
    }
    changed
}

/// A decoded, consistent batch ready to store.
#[derive(Debug)]
pub struct CheckedBatch {
    /// Agent id.
    pub agent: String,
    /// Site.
    pub site: String,
    /// The agent's floor.
    pub floor: u64,
    /// Records.
    pub records: Vec<Record>,
    /// Seqs the agent dropped.
    pub dropped: Vec<SeqRange>,
    /// The sending instance.
    pub instance: Option<String>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && !name
            .chars()
            .any(|c| c.is_control() || matches!(c, '/' | '+' | '#'))
}

/// Decodes an events message and checks it against its topic and `limits`.
pub fn check_batch(
    topics: &Topics,
    limits: &IngestConfig,
    topic: &str,
    payload: &[u8],
) -> Result<CheckedBatch, IngestError> {
    let (site, agent, _) = topics
        .parse(topic)
        .ok_or_else(|| IngestError::Topic(topic.to_string()))?;
    let refused = |refusal| IngestError::Refused {
        agent: agent.to_string(),
        site: site.to_string(),
        refusal,
    };
    if payload.len() > limits.max_batch_bytes {
        return Err(refused(Refusal::BatchBytes {
            bytes: payload.len(),
            limit: limits.max_batch_bytes,
        }));
    }
    let batch = Batch::decode(payload).map_err(|e| IngestError::Malformed {
        topic: topic.to_string(),
        reason: e.to_string(),
    })?;
    if batch.agent != agent || batch.site != site {
        return Err(IngestError::Malformed {
            topic: topic.to_string(),
            reason: format!(
                "batch claims {}/{}, topic says {site}/{agent}",
                batch.site, batch.agent
            ),
        });
    }
    for (what, name) in [("agent", agent), ("site", site)] {
        if !valid_name(name) {
            return Err(refused(Refusal::BadName {
                what,
                name: name.to_string(),
            }));
        }
    }
    if batch.records.len() > limits.max_batch_records {
        return Err(refused(Refusal::BatchRecords {
            records: batch.records.len(),
            limit: limits.max_batch_records,
        }));
    }
    if batch.dropped.len() > limits.max_batch_records {
        return Err(refused(Refusal::BatchRecords {
            records: batch.dropped.len(),
            limit: limits.max_batch_records,
        }));
    }
    for record in &batch.records {
        let bytes = serde_json::to_vec(record).map_or(usize::MAX, |v| v.len());
        if bytes > limits.max_record_bytes {
            return Err(refused(Refusal::RecordBytes {
                seq: record.seq,
                bytes,
                limit: limits.max_record_bytes,
            }));
        }
    }
    Ok(CheckedBatch {
        agent: batch.agent,
        site: batch.site,
        floor: batch.floor,
        records: batch.records,
        dropped: batch.dropped,
        instance: batch.instance,
    })
}

/// Admits a checked batch (agents list or first-seen site) and stores it durably; `now` is
/// the collector clock (for a first-seen record). Blocking (flushes): call from a blocking
/// context.
pub fn store(
    store: &CollectorStore,
    sites: &SiteBook,
    gate: &Gate,
    batch: CheckedBatch,
    now: Timestamp,
) -> Result<Stored, IngestError> {
    let first = admit(sites, gate, &batch.agent, &batch.site, &batch.records)?;
    if gate.directory.trust_on_first_use() && first.is_none() {
        // Durable with the batch's flush below, before any ack.
        sites.record(
            &batch.agent,
            &FirstSeen {
                site: batch.site.clone(),
                at: now,
            },
        )?;
        tracing::info!(agent = %batch.agent, site = %batch.site,
            "agent seen for the first time; its site is recorded and enforced from now on");
    }
    let claims = Claims {
        floor: batch.floor,
        dropped: &batch.dropped,
        instance: batch.instance.as_deref(),
        max_dropped_span: gate.limits.max_dropped_span,
        clock: Some((now, gate.limits.max_clock_skew)),
    };
    match store.store_claimed(&batch.agent, &batch.site, &claims, batch.records) {
        Ok(stored) => Ok(stored),
        Err(StoreBatchError::Refused(refusal)) => Err(IngestError::Refused {
            agent: batch.agent,
            site: batch.site,
            refusal,
        }),
        Err(StoreBatchError::Store(e)) => Err(IngestError::Store(e)),
    }
}

/// Checks that `agent` may write for `site` (and `records`' locations) by the agents list, or
/// by the site recorded on its first use; returns that recorded site, if any (`None` also
/// when a list is in force). Reads the store under trust on first use.
fn admit(
    sites: &SiteBook,
    gate: &Gate,
    agent: &str,
    site: &str,
    records: &[Record],
) -> Result<Option<FirstSeen>, IngestError> {
    let first = if gate.directory.trust_on_first_use() {
        sites.get(agent)?
    } else {
        None
    };
    gate.directory
        .admit(
            agent,
            site,
            records,
            first.as_ref().map(|f| f.site.as_str()),
        )
        .map_err(|refusal| IngestError::Refused {
            agent: agent.to_string(),
            site: site.to_string(),
            refusal,
        })?;
    Ok(first)
}

/// Counts and (at most once a minute per agent) logs a rejected message: refusals per agent
/// and reason, malformed payloads fleet-wide; a store failure is only logged (not acked).
pub fn reject(state: &mut CollectorState, topic: &str, error: &IngestError, now: Timestamp) {
    match error {
        IngestError::Refused {
            agent,
            site,
            refusal,
        } => {
            *state.stats.refused.entry(refusal.reason()).or_default() += 1;
            // The site a refused message claims is not the agent's: it is shown with the
            // refusal, never as the agent's site.
            let info = state.agents.entry(agent.clone()).or_default();
            if let Some(held_back) = info.trust.refusals.count(refusal, now) {
                tracing::warn!(%agent, %site, %topic, reason = refusal.reason(),
                    refused_since_last_log = held_back, error = %refusal,
                    "message refused: a batch is not acked, a status not applied");
            }
        }
        IngestError::Topic(_) | IngestError::Malformed { .. } => {
            state.stats.malformed += 1;
            tracing::warn!(%topic, error = %error, "message rejected");
        }
        IngestError::Store(e) => {
            tracing::error!(%topic, error = %e, "storing a batch failed; not acked");
        }
    }
}

/// The ack to publish after [`store`]: `(topic, payload)`.
pub fn ack_message(topics: &Topics, site: &str, agent: &str, upto: u64) -> (String, Vec<u8>) {
    let ack = Ack {
        upto,
        hello: false,
        now: Some(Timestamp::now()),
    };
    let payload = serde_json::to_vec(&ack).unwrap_or_default();
    (topics.ack(site, agent), payload)
}

/// The hello ack (see [`Ack::hello`]) for `agent` of `site`, carrying what is acked so far:
/// `(topic, payload)`.
pub fn hello_message(
    topics: &Topics,
    state: &CollectorState,
    site: &str,
    agent: &str,
) -> (String, Vec<u8>) {
    let upto = state.agents.get(agent).map_or(0, |a| a.acked_upto);
    let ack = Ack {
        upto,
        hello: true,
        now: Some(Timestamp::now()),
    };
    let payload = serde_json::to_vec(&ack).unwrap_or_default();
    (topics.ack(site, agent), payload)
}

/// Applies newly stored records to the in-memory state.
pub fn apply(state: &mut CollectorState, agent: &str, stored: &Stored, received_at: Timestamp) {
    state.stats.ahead_of_clock += stored.ahead;
    let info = state.agents.entry(agent.to_string()).or_default();
    info.trust.restore(&stored.ledger);
    if stored.clock_ahead_ms.is_some() {
        info.trust.clock_ahead_ms = stored.clock_ahead_ms;
    }
    if stored.ahead > 0 {
        info.trust.records_ahead += stored.ahead;
        tracing::warn!(%agent, records = stored.ahead, clock_ahead_ms = ?stored.clock_ahead_ms,
            "records stamped beyond ingest.max_clock_skew ahead of our clock: stored with their time moved back");
    }
    if let Some(restart) = &stored.restart {
        info.trust.restarted_at = Some(received_at);
        tracing::warn!(%agent, previous = ?restart.previous, instance = %restart.instance,
            lost = restart.lost, offset = restart.offset,
            "agent restarted with a new state directory; its new seqs are stored after the old ones");
    }
    info.site = stored.ledger.site.clone();
    info.acked_upto = stored.ledger.acked_upto;
    info.highest_seen = stored.ledger.highest_seen;
    info.dropped_by_agent = stored.ledger.dropped_by_agent;
    info.records += stored.new.len() as u64;
    info.duplicates += stored.duplicates;
    info.last_seen = Some(received_at);
    state.stats.batches += 1;
    state.stats.stored += stored.new.len() as u64;
    state.stats.duplicates += stored.duplicates;
    for record in &stored.new {
        apply_record(state, record.clone());
    }
}

/// Applies one stored record (also used when rebuilding from the store at startup).
pub fn apply_record(state: &mut CollectorState, record: Record) {
    state.latest_event = state.latest_event.max(record.payload.ts());
    match record.payload {
        Payload::ReadingSummary(summary) => state.directory.note(&summary),
        payload => {
            // The record is stored (and indexed by scope) before it is applied, so the
            // history already holds it, as `ingest_with_history` requires.
            let history = crate::state::history_of(&state.history);
            state.analysis.ingest_with_history(
                StoredEvent {
                    agent: record.agent,
                    seq: record.seq,
                    payload,
                },
                history,
            );
        }
    }
}

/// An agent's status message that passed [`check_status`].
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedStatus {
    /// Site from the topic, the agent's own.
    pub site: String,
    /// Agent from the topic, the one the payload names.
    pub agent: String,
    /// The status.
    pub status: Status,
}

/// Checks a status message before it is applied, as strictly as a batch: the topic is ours,
/// the payload decodes, the payload's agent is the topic's (no agent speaks for another), and
/// the topic's site is the agent's site by the agents list, or by the site recorded on first
/// use. A status never records a first site: only a stored batch does. Reads the store (the
/// first-seen site), so call it off the async executor when the store may block.
pub fn check_status(
    topics: &Topics,
    sites: &SiteBook,
    gate: &Gate,
    topic: &str,
    payload: &[u8],
) -> Result<CheckedStatus, IngestError> {
    let (site, agent, _) = topics
        .parse(topic)
        .ok_or_else(|| IngestError::Topic(topic.to_string()))?;
    let (site, agent) = (site.to_string(), agent.to_string());
    if payload.len() > gate.limits.max_batch_bytes {
        return Err(IngestError::Refused {
            agent,
            site,
            refusal: Refusal::BatchBytes {
                bytes: payload.len(),
                limit: gate.limits.max_batch_bytes,
            },
        });
    }
    let status: Status = serde_json::from_slice(payload).map_err(|e| IngestError::Malformed {
        topic: topic.to_string(),
        reason: e.to_string(),
    })?;
    if status.agent != agent {
        return Err(IngestError::Refused {
            agent,
            site,
            refusal: Refusal::OtherAgentsStatus {
                named: status.agent,
            },
        });
    }
    admit(sites, gate, &agent, &site, &[])?;
    Ok(CheckedStatus {
        site,
        agent,
        status,
    })
}

/// Records an agent's status message that passed [`check_status`].
pub fn apply_status(state: &mut CollectorState, checked: CheckedStatus, now: Timestamp) {
    let info = state.agents.entry(checked.agent).or_default();
    // The site of an agent known only by its status (checked against identity above).
    if info.site.is_empty() {
        info.site = checked.site;
    }
    info.status = Some(checked.status);
    info.status_at = Some(now);
}

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod tests;
