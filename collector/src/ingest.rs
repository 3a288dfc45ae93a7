//! Ingest of agent batches: validate, store each `(agent, seq)` once, commit, then say what to
//! ack; afterwards update the in-memory analysis. A payload that does not parse is counted and
//! logged with its topic and never stops ingest.

use crate::analysis::StoredEvent;
use crate::state::CollectorState;
use crate::store::{CollectorStore, Stored};
use coldaisle_core::wire::{Ack, Batch, Payload, Record, SeqRange, Status, Topics};
use coldaisle_core::Timestamp;

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
    /// The store failed: nothing is acked, the agent will resend.
    #[error("store failed: {0}")]
    Store(#[from] coldaisle_store::StoreError),
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
}

/// Decodes an events message and checks it against its topic.
pub fn check_batch(
    topics: &Topics,
    topic: &str,
    payload: &[u8],
) -> Result<CheckedBatch, IngestError> {
    let (site, agent, _) = topics
        .parse(topic)
        .ok_or_else(|| IngestError::Topic(topic.to_string()))?;
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
    Ok(CheckedBatch {
        agent: batch.agent,
        site: batch.site,
        floor: batch.floor,
        records: batch.records,
        dropped: batch.dropped,
    })
}

/// Stores a checked batch durably. Blocking (flushes): call from a blocking context.
pub fn store(store: &CollectorStore, batch: CheckedBatch) -> Result<Stored, IngestError> {
    Ok(store.store_batch(
        &batch.agent,
        &batch.site,
        batch.floor,
        &batch.dropped,
        batch.records,
    )?)
}

/// The ack to publish after [`store`]: `(topic, payload)`.
pub fn ack_message(topics: &Topics, site: &str, agent: &str, upto: u64) -> (String, Vec<u8>) {
    let payload = serde_json::to_vec(&Ack { upto, hello: false }).unwrap_or_default();
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
    let payload = serde_json::to_vec(&Ack { upto, hello: true }).unwrap_or_default();
    (topics.ack(site, agent), payload)
}

/// Applies newly stored records to the in-memory state.
pub fn apply(state: &mut CollectorState, agent: &str, stored: &Stored, received_at: Timestamp) {
    let info = state.agents.entry(agent.to_string()).or_default();
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
        Payload::ReadingSummary(summary) => state.summaries.add(summary),
        payload => {
            state.analysis.ingest(StoredEvent {
                agent: record.agent,
                seq: record.seq,
                payload,
            });
        }
    }
}

/// Records an agent's retained status message.
pub fn apply_status(
    state: &mut CollectorState,
    topics: &Topics,
    topic: &str,
    payload: &[u8],
    now: Timestamp,
) -> Result<(), IngestError> {
    let (site, agent, _) = topics
        .parse(topic)
        .ok_or_else(|| IngestError::Topic(topic.to_string()))?;
    let status: Status = serde_json::from_slice(payload).map_err(|e| IngestError::Malformed {
        topic: topic.to_string(),
        reason: e.to_string(),
    })?;
    let info = state.agents.entry(agent.to_string()).or_default();
    info.site = site.to_string();
    info.status = Some(status);
    info.status_at = Some(now);
    Ok(())
}
