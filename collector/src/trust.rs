//! What the API shows of each agent's trustworthiness: refused batches by reason, its
//! instance (incarnation) and restarts. Held in [`crate::state::AgentInfo::trust`].

use crate::refusal::Refusals;
use crate::store::AgentLedger;
use coldaisle_core::Timestamp;
use serde::Serialize;

/// Per-agent trust view, flattened into the agent's entry on `/api/v1/agents`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AgentTrust {
    /// Refused batches (counted since the collector started).
    #[serde(flatten)]
    pub refusals: Refusals,
    /// The agent's current instance id (absent for agents that send none).
    pub instance: Option<String>,
    /// New instances seen after the first (state directory lost, seqs restarted).
    pub restarts: u64,
    /// Seqs that replaced instances produced but never delivered.
    pub lost_at_restart: u64,
    /// When the latest restart was recognised (collector clock; since the collector started).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restarted_at: Option<Timestamp>,
    /// Records stamped more than `ingest.max_clock_skew` ahead of our clock (since start):
    /// stored with their times moved back to receipt + skew.
    pub records_ahead: u64,
    /// The agent's clock skew as we see it: how far the newest record of its latest batch was
    /// ahead of our clock, in ms (negative: behind, which includes delivery delay).
    pub clock_ahead_ms: Option<i64>,
}

impl AgentTrust {
    /// Takes the durable part (instance, restarts) from the agent's ledger.
    pub fn restore(&mut self, ledger: &AgentLedger) {
        self.instance = ledger.instance.clone();
        self.restarts = ledger.restarts;
        self.lost_at_restart = ledger.lost_at_restart;
    }
}
