//! The analysis as a value that can be written and read back: the durable checkpoint's
//! analysis part ([`crate::checkpoint`]).
//!
//! Invariants:
//! - A snapshot holds every input held (events from the floor on, or from the hot floor on
//!   with a hot span ([`super::hot`]), evidence, actions),
//!   every scope's engines, rollback marks, applied position and floor, the floor itself and
//!   the summaries of incidents before it ([`super::prune`]) and the hot floor, so an analysis restored from it answers exactly as the one it was
//!   taken from, and goes on to the same state for any further inputs (late ones included).
//!   The equivalence tests check this for random event sets and split points.
//! - It is taken only outside bulk loading, when every scope is up to date.
//! - It carries the rules it was computed with; [`Analysis::restore`] refuses one made under
//!   other rules (the caller rebuilds from the store instead).
//! - Pager deliveries (chronicle notifications) are not part of it: the notifier records them
//!   again as it does after a full rebuild.
//! - Nor is the hot span (a setting, like the signature settings): the caller sets it on the
//!   restored analysis ([`Analysis::with_hot_span`]). With a hot floor in the snapshot, the
//!   restored analysis needs the stored history for its deep replays, as the original did.

use super::prune::ArchivedIncident;
use super::shard::Shard;
use super::{Analysis, Partition};
use crate::actions::OperatorAction;
use crate::incidents::IncidentRules;
use crate::model::{ActionError, OrderKey, StoredEvent};
use crate::problems::ProblemRules;
use coldaisle_core::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Why a snapshot could not be taken or restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The analysis is loading in bulk: some scopes are not up to date.
    #[error("the analysis is loading in bulk")]
    InBulk,
    /// The snapshot was computed under other incident or problem rules.
    #[error("the snapshot was computed under other rules")]
    RulesChanged,
}

/// The analysis, borrowed, for writing.
#[derive(Serialize)]
pub struct SnapshotRef<'a> {
    incident_rules: &'a IncidentRules,
    problem_rules: &'a ProblemRules,
    events: Vec<&'a StoredEvent>,
    actions: Vec<&'a OperatorAction>,
    shards: &'a BTreeMap<String, Shard>,
    unmatched: &'a BTreeMap<u64, ActionError>,
    rebuilds: u64,
    floor: Option<Timestamp>,
    next_prune: Option<Timestamp>,
    too_late: u64,
    archive: &'a BTreeMap<String, ArchivedIncident>,
    evidence: Vec<&'a OrderKey>,
    hot_floor: Option<Timestamp>,
    next_trim: Option<Timestamp>,
    history_errors: u64,
    cold_counts: &'a BTreeMap<i64, u64>,
}

/// The analysis as read back; turn it into an [`Analysis`] with [`Analysis::restore`].
#[derive(Deserialize)]
pub struct Snapshot {
    incident_rules: IncidentRules,
    problem_rules: ProblemRules,
    events: Vec<StoredEvent>,
    actions: Vec<OperatorAction>,
    shards: BTreeMap<String, Shard>,
    unmatched: BTreeMap<u64, ActionError>,
    rebuilds: u64,
    floor: Option<Timestamp>,
    next_prune: Option<Timestamp>,
    too_late: u64,
    archive: BTreeMap<String, ArchivedIncident>,
    evidence: Vec<OrderKey>,
    #[serde(default)]
    hot_floor: Option<Timestamp>,
    #[serde(default)]
    next_trim: Option<Timestamp>,
    #[serde(default)]
    history_errors: u64,
    #[serde(default)]
    cold_counts: BTreeMap<i64, u64>,
}

impl Analysis {
    /// The whole analysis state, borrowed, ready to serialise. Fails while loading in bulk.
    pub fn snapshot(&self) -> Result<SnapshotRef<'_>, SnapshotError> {
        if self.bulk.is_some() {
            return Err(SnapshotError::InBulk);
        }
        Ok(SnapshotRef {
            incident_rules: &self.incident_rules,
            problem_rules: &self.problem_rules,
            events: self.events.values().collect(),
            actions: self.actions.values().collect(),
            shards: &self.shards,
            unmatched: &self.unmatched,
            rebuilds: self.rebuilds,
            floor: self.floor,
            next_prune: self.next_prune,
            too_late: self.too_late,
            archive: &self.archive,
            evidence: self.evidence.iter().collect(),
            hot_floor: self.hot_floor,
            next_trim: self.next_trim,
            history_errors: self.history_errors,
            cold_counts: &self.cold_counts,
        })
    }

    /// The analysis a snapshot was taken of, if it was computed under `incident_rules` and
    /// `problem_rules` (the ones configured now).
    pub fn restore(
        snapshot: Snapshot,
        incident_rules: &IncidentRules,
        problem_rules: &ProblemRules,
    ) -> Result<Analysis, SnapshotError> {
        if snapshot.incident_rules != *incident_rules || snapshot.problem_rules != *problem_rules {
            return Err(SnapshotError::RulesChanged);
        }
        let seen: HashSet<(String, u64)> = snapshot
            .events
            .iter()
            .map(|e| (e.agent.clone(), e.seq))
            .collect();
        let action_ids: HashSet<u64> = snapshot.actions.iter().map(|a| a.id).collect();
        let events: BTreeMap<OrderKey, StoredEvent> = snapshot
            .events
            .into_iter()
            .map(|e| (e.order_key(), e))
            .collect();
        Ok(Analysis {
            partition: Partition::for_rules(&snapshot.problem_rules),
            incident_rules: snapshot.incident_rules,
            problem_rules: snapshot.problem_rules,
            by_zone: super::zone_index::ZoneIndex::of_events(&events),
            events,
            seen,
            actions: snapshot.actions.into_iter().map(|a| (a.key(), a)).collect(),
            action_ids,
            shards: snapshot.shards,
            unmatched: snapshot.unmatched,
            notifications: HashMap::new(),
            rebuilds: snapshot.rebuilds,
            bulk: None,
            horizon: super::horizon::horizon(incident_rules, problem_rules),
            floor: snapshot.floor,
            next_prune: snapshot.next_prune,
            too_late: snapshot.too_late,
            archive: snapshot.archive,
            evidence: snapshot.evidence.into_iter().collect(),
            hot_span: None,
            hot_floor: snapshot.hot_floor,
            next_trim: snapshot.next_trim,
            history_errors: snapshot.history_errors,
            cold_places: BTreeMap::new(),
            cold_counts: snapshot.cold_counts,
            // Read-side settings, not state: the caller keeps its own (see
            // `Analysis::signature_settings`).
            signature: crate::recurrence::SignatureSettings::default(),
        })
    }

    /// The incident rules the analysis runs with.
    pub fn incident_rules(&self) -> &IncidentRules {
        &self.incident_rules
    }

    /// The problem rules the analysis runs with.
    pub fn problem_rules(&self) -> &ProblemRules {
        &self.problem_rules
    }
}
