//! The collector's in-memory view, rebuilt from the store at startup and updated by ingest.
//! The HTTP API and reports read it; only ingest writes it.

use crate::analysis::history::ScopeHistory;
use crate::analysis::Analysis;
use coldaisle_core::wire::Status;
use coldaisle_core::Timestamp;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::RwLock;

pub mod directory;

pub use directory::Directory;

/// What the collector knows of one agent.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentInfo {
    /// Site of the agent.
    pub site: String,
    /// Highest seq such that all seqs up to it are stored (what we ack).
    pub acked_upto: u64,
    /// Highest seq received; above `acked_upto` it shows records still missing.
    pub highest_seen: u64,
    /// Seqs the agent reported as dropped by its outbox quota (a gap, not a loss in transit).
    pub dropped_by_agent: u64,
    /// Records of this agent in the store (each seq counted once).
    pub records: u64,
    /// Duplicate records received (already stored; ignored).
    pub duplicates: u64,
    /// When we last received a batch (collector clock).
    pub last_seen: Option<Timestamp>,
    /// Last retained status the agent published.
    pub status: Option<Status>,
    /// When that status arrived (collector clock).
    pub status_at: Option<Timestamp>,
    /// Refusals, instance and restarts ([`crate::trust`]).
    #[serde(flatten)]
    pub trust: crate::trust::AgentTrust,
}

/// Ingest counters, exposed on the API.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestStats {
    /// Batches received.
    pub batches: u64,
    /// Records newly stored.
    pub stored: u64,
    /// Records received again and ignored.
    pub duplicates: u64,
    /// Payloads that did not parse or were inconsistent (logged with their topic).
    pub malformed: u64,
    /// Batches refused, by reason ([`crate::refusal::Refusal::reason`]).
    pub refused: BTreeMap<&'static str, u64>,
    /// Records stamped beyond `ingest.max_clock_skew` ahead of our clock (stored, time moved back).
    pub ahead_of_clock: u64,
    /// How the last start-up loaded the state, and how long it took ([`crate::start_up`]);
    /// `None` for a state not loaded from a store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_start: Option<crate::start_up::StartUp>,
}

/// What the notifier did since start, for `/metrics` (labels: receiver names of the config,
/// a bounded set).
#[derive(Debug, Clone, Default)]
pub struct NotifyFigures {
    /// Jobs (batches for one receiver) waiting in the durable queue after the last tick.
    pub queued_jobs: u64,
    /// Notifications in those jobs.
    pub queued_notifications: u64,
    /// Jobs delivered, by receiver.
    pub delivered: BTreeMap<String, u64>,
    /// Failed deliveries by (receiver, kind): `retry` (kept queued), `permanent` (dropped),
    /// `no_receiver` (receiver gone after a reload; dropped).
    pub failures: BTreeMap<(String, &'static str), u64>,
}

/// The collector's state.
#[derive(Debug)]
pub struct CollectorState {
    /// Incidents and problems.
    pub analysis: Analysis,
    /// Every sensor seen, by site, zone and rack ([`directory`]): the zone list, rack counts
    /// and report rows. Bounded by the fleet; no reading summary is held in memory.
    pub directory: Directory,
    /// The stored roll-ups of reading summaries: every figure of a report, history query or
    /// readings cause comes from them (`None` without a store: no figures; tests that need
    /// figures without a store use one on a `MemoryStore`). Readers clone it and release the
    /// lock before reading the store.
    pub rollups: Option<crate::rollup_store::RollupStore>,
    /// Agents by id.
    pub agents: BTreeMap<String, AgentInfo>,
    /// Counters.
    pub stats: IngestStats,
    /// Notifier counters and queue depth.
    pub notify: NotifyFigures,
    /// Latest event time seen (used as "now" for incident status when replaying).
    pub latest_event: Timestamp,
    /// The stored events by scope, which the analysis reads when a late event replays its
    /// scope from before its hot span ([`crate::analysis::hot`]); `None` without a store.
    pub history: Option<StoredHistory>,
}

/// The store's scope index as the analysis reads it ([`ScopeHistory`]), shared.
#[derive(Clone)]
pub struct StoredHistory(pub Arc<dyn ScopeHistory + Send + Sync>);

impl std::fmt::Debug for StoredHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoredHistory")
    }
}

/// What the analysis reads its scopes' stored events from: the store, or nothing (an
/// analysis without a hot span never reads it). A function of the field, not of the state, so
/// that callers can borrow the analysis mutably beside it.
pub fn history_of(history: &Option<StoredHistory>) -> &dyn ScopeHistory {
    match history {
        Some(h) => h.0.as_ref(),
        None => &crate::analysis::hot::NoHistory,
    }
}

impl CollectorState {
    /// What the analysis reads its scopes' stored events from ([`history_of`]).
    pub fn history(&self) -> &dyn ScopeHistory {
        history_of(&self.history)
    }

    /// Ends the analysis's bulk load ([`Analysis::end_bulk_with_history`]) with the state's
    /// history. Returns how many actions matched nothing at their time.
    pub fn end_bulk(&mut self) -> usize {
        self.analysis
            .end_bulk_with_history(history_of(&self.history))
    }
}

/// Shared handle: ingest writes, the API reads.
pub type SharedState = Arc<RwLock<CollectorState>>;
