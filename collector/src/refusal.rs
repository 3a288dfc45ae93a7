//! Why the collector refused an agent's batch, and what it remembers of refusals per agent.
//!
//! A refused batch is never stored and never acked: the agent keeps its records and resends
//! them, so a refusal that an operator fixes (an agents list, a limit) loses nothing. Each
//! refusal is counted per agent and reason (`/api/v1/agents`, and fleet-wide on
//! `/api/v1/stats`) and logged at most once per [`LOG_EVERY`] per agent.

use coldaisle_core::Timestamp;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// A refusal is logged at most this often per agent (the others are counted).
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// Why a batch was refused. The reason names, as shown on the API, are [`Refusal::reason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The payload is larger than `ingest.max_batch_bytes`.
    #[error("payload of {bytes} bytes is above ingest.max_batch_bytes = {limit}")]
    BatchBytes {
        /// Payload size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// More records than `ingest.max_batch_records`.
    #[error("{records} records is above ingest.max_batch_records = {limit}")]
    BatchRecords {
        /// Records in the batch.
        records: usize,
        /// The limit.
        limit: usize,
    },
    /// A record larger than `ingest.max_record_bytes`.
    #[error("record seq {seq} of {bytes} bytes is above ingest.max_record_bytes = {limit}")]
    RecordBytes {
        /// The record's seq.
        seq: u64,
        /// Its size as JSON.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// An agent id or site unusable as a name (empty, too long, control characters).
    #[error("{what} {name:?} is not a valid name")]
    BadName {
        /// `agent` or `site`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A record seq of 0 or above [`crate::store::MAX_SEQ`].
    #[error("record seq {0} is out of range")]
    SeqOutOfRange(u64),
    /// A `dropped` range that is reversed, starts at 0, or claims seqs further than
    /// `ingest.max_dropped_span` beyond the highest seq seen from the agent.
    #[error("dropped range {from}..={to} is not within what the agent can have produced (highest seq seen {seen}, ingest.max_dropped_span = {span})")]
    DroppedOutOfRange {
        /// First seq of the range.
        from: u64,
        /// Last seq of the range.
        to: u64,
        /// Highest seq seen from the agent, this batch included.
        seen: u64,
        /// The limit.
        span: u64,
    },
    /// A `floor` above every seq the agent has shown (records and dropped ranges) plus one.
    #[error("floor {floor} is above the highest seq the agent has shown ({claimed}) plus one")]
    FloorBeyondProduced {
        /// The batch's floor.
        floor: u64,
        /// Highest seq shown.
        claimed: u64,
    },
    /// An agent that is not in the agents list (when one is configured).
    #[error("agent is not in the agents list")]
    UnknownAgent,
    /// The batch (topic or a record's location) names a site the agent does not belong to.
    #[error("site {got} is not the agent's site {expected}")]
    WrongSite {
        /// The agent's site.
        expected: String,
        /// The site named.
        got: String,
    },
    /// A record's location names a zone the agent is not allowed to write.
    #[error("zone {zone} is not among the agent's zones")]
    WrongZone {
        /// The zone named.
        zone: String,
    },
    /// A status message whose payload names another agent than its topic.
    #[error("status on this agent's topic names agent {named}")]
    OtherAgentsStatus {
        /// The agent the payload names.
        named: String,
    },
    /// A batch from an instance the collector has already seen replaced by a newer one.
    #[error("instance {instance} was replaced by instance {current}")]
    StaleInstance {
        /// The batch's instance.
        instance: String,
        /// The instance in force.
        current: String,
    },
}

impl Refusal {
    /// The short reason under which the refusal is counted.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::BatchBytes { .. } => "max_batch_bytes",
            Refusal::BatchRecords { .. } => "max_batch_records",
            Refusal::RecordBytes { .. } => "max_record_bytes",
            Refusal::BadName { .. } => "bad_name",
            Refusal::SeqOutOfRange(_) => "seq_out_of_range",
            Refusal::DroppedOutOfRange { .. } => "dropped_out_of_range",
            Refusal::FloorBeyondProduced { .. } => "floor_beyond_produced",
            Refusal::UnknownAgent => "unknown_agent",
            Refusal::WrongSite { .. } => "wrong_site",
            Refusal::WrongZone { .. } => "wrong_zone",
            Refusal::StaleInstance { .. } => "stale_instance",
            Refusal::OtherAgentsStatus { .. } => "other_agents_status",
        }
    }
}

/// The last refusal of an agent, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastRefusal {
    /// Short reason ([`Refusal::reason`]).
    pub reason: &'static str,
    /// The full message.
    pub message: String,
    /// When (collector clock).
    pub at: Timestamp,
}

/// What ingest remembers of one agent's refusals.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Refusals {
    /// Refused batches by reason.
    pub refused: BTreeMap<&'static str, u64>,
    /// The latest refusal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_refusal: Option<LastRefusal>,
    /// When a refusal of this agent was last logged (collector clock).
    #[serde(skip)]
    logged_at: Option<Timestamp>,
    /// Refusals not logged since then.
    #[serde(skip)]
    unlogged: u64,
}

impl Refusals {
    /// Counts a refusal at `now`. Returns `Some(n)` when it should be logged, `n` being the
    /// refusals held back since the previous log line; `None` within [`LOG_EVERY`] of it.
    pub fn count(&mut self, refusal: &Refusal, now: Timestamp) -> Option<u64> {
        *self.refused.entry(refusal.reason()).or_default() += 1;
        self.last_refusal = Some(LastRefusal {
            reason: refusal.reason(),
            message: refusal.to_string(),
            at: now,
        });
        let due = self
            .logged_at
            .is_none_or(|at| now >= at.plus(LOG_EVERY) || now < at);
        if due {
            self.logged_at = Some(now);
            Some(std::mem::take(&mut self.unlogged))
        } else {
            self.unlogged += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_refusal_and_logs_at_most_once_a_minute() {
        let mut r = Refusals::default();
        let t0 = Timestamp(1_000_000);
        assert_eq!(r.count(&Refusal::UnknownAgent, t0), Some(0));
        assert_eq!(
            r.count(&Refusal::UnknownAgent, t0.plus(Duration::from_secs(1))),
            None
        );
        assert_eq!(
            r.count(&Refusal::SeqOutOfRange(0), t0.plus(Duration::from_secs(59))),
            None
        );
        assert_eq!(r.count(&Refusal::UnknownAgent, t0.plus(LOG_EVERY)), Some(2));
        assert_eq!(r.refused["unknown_agent"], 3);
        assert_eq!(r.refused["seq_out_of_range"], 1);
        assert_eq!(
            r.last_refusal.as_ref().map(|l| l.reason),
            Some("unknown_agent")
        );
    }
}
