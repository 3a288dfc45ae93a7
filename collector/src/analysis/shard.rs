//! One scope of the analysis (see [`super::scope`]): its own incident and problem engines fed
//! with its own inputs, in [`InputKey`] order.
//!
//! Invariant: the engines hold exactly the state of one in-order pass over the scope's inputs.
//! An input whose key is above the last one applied is applied incrementally; an earlier (late)
//! one rolls the scope's engines back to its latest checkpoint before it (a mark of the
//! engines' changeable fields, kept every few inputs within a day of event time; timelines and
//! histories only grow, so going back truncates them) and replays the scope's inputs from
//! there, never another scope's.
//!
//! Pruning ([`Shard::prune`]) moves the scope's *floor* to a checkpoint before the horizon: the
//! inputs up to it and the incidents final before it are forgotten, and the checkpoint stays
//! as the base every later rollback can reach. Inputs at or before the floor are refused by
//! the analysis before they get here, so the engines never have to go back past it.
//!
//! The hot span ([`Shard::trim_cold`]): event inputs before the scope's *cold boundary* have
//! left memory (their keys too); the store holds them. A replay whose base is before the
//! boundary reads the scope's events between the base and the boundary from a
//! [`ScopeHistory`] (one range scan) and the rest from memory; event keys below the boundary
//! that are still in `inputs` (a late event just added) are read from the history, not from
//! memory, so each event is applied once. Actions never leave `inputs` (they are few). The
//! rollback marks are untouched by a trim: they describe the engines, not the inputs.

use super::history::{HistoryError, ScopeHistory, ScopeSelector};
use super::InputKey;
use crate::actions::{ActionKey, OperatorAction};
use crate::incidents::{IncidentChange, IncidentEngine, IncidentMark, IncidentRules};
use crate::model::{ActionError, OrderKey, StoredEvent};
use crate::problems::{ProblemEngine, ProblemMark, ProblemRules};
use coldaisle_core::wire::Payload;
use coldaisle_core::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

/// Every input of the analysis, by key: the shards hold only keys into these maps.
pub(super) struct Inputs<'a> {
    /// Events by order key.
    pub events: &'a BTreeMap<OrderKey, StoredEvent>,
    /// Operator actions by action key.
    pub actions: &'a BTreeMap<ActionKey, OperatorAction>,
}

/// Inputs a scope applies in order between two checkpoints.
const CHECKPOINT_EVERY: usize = if cfg!(test) { 3 } else { 128 };

/// How far behind a scope's latest input (event time, ms) its checkpoints are kept. A late
/// input within it replays from the checkpoint before it; an older one replays the whole scope.
const CHECKPOINT_SPAN_MS: i64 = if cfg!(test) {
    30 * 60_000
} else {
    24 * 3_600_000
};

/// The engines of a scope as they were after some input: marks to roll the live engines back
/// to (they cost the changeable fields, not the timelines).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Checkpoint {
    /// Incident engine mark.
    incidents: IncidentMark,
    /// Problem engine mark.
    problems: ProblemMark,
    /// Unmatched actions so far.
    unmatched: BTreeMap<u64, ActionError>,
}

/// The incident and problem state of one scope.
///
/// Invariant: once [`Shard::catch_up`] has run, the engines hold exactly the state of one
/// in-order pass over `inputs`, and each checkpoint holds the state of the in-order pass over
/// the inputs up to its key.
/// Serialisable (it is part of [`super::snapshot`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Shard {
    /// Incident state after applying `inputs` in order.
    pub incidents: IncidentEngine,
    /// Problem state after feeding it the incident changes in order.
    pub problems: ProblemEngine,
    /// Keys of this scope's events and actions, in application order.
    inputs: BTreeSet<InputKey>,
    /// Actions of this scope that matched nothing at their time, with the reason.
    pub unmatched: BTreeMap<u64, ActionError>,
    /// Key of the last input applied.
    last_applied: Option<InputKey>,
    /// Smallest key added since the last catch-up, not applied yet.
    pending: Option<InputKey>,
    /// Engine states after the input of each key, every [`CHECKPOINT_EVERY`] inputs, within
    /// [`CHECKPOINT_SPAN_MS`] of the latest input.
    #[serde(with = "crate::model::pairs")]
    checkpoints: BTreeMap<InputKey, Checkpoint>,
    /// Inputs applied since the last checkpoint.
    since_checkpoint: usize,
    /// Key of the checkpoint the scope was pruned to: inputs up to it are forgotten, and the
    /// checkpoint itself is never dropped (the base of every rollback).
    #[serde(default)]
    floor: Option<InputKey>,
    /// Event inputs with a key below it are no longer in `inputs` nor in the analysis's
    /// events: a replay reads them from the [`ScopeHistory`] (see the module doc). `None`
    /// until the first trim.
    #[serde(default)]
    cold_before: Option<InputKey>,
}

/// Where a scope's events before its cold boundary are read from during a replay.
pub(super) struct Cold<'a> {
    /// The store's scope index (or a test's in-memory copy).
    pub history: &'a dyn ScopeHistory,
    /// Which indexed events make up this scope.
    pub selector: ScopeSelector,
}

/// What one prune of a scope forgot.
pub(super) struct Pruned {
    /// Keys of the inputs at or before the new floor.
    pub inputs: BTreeSet<InputKey>,
    /// The incidents final before the floor, as reported then.
    pub incidents: Vec<crate::incidents::Incident>,
}

impl Shard {
    /// An empty scope.
    pub fn new(incident_rules: &IncidentRules, problem_rules: &ProblemRules) -> Self {
        Shard {
            incidents: IncidentEngine::new(incident_rules.clone()),
            problems: ProblemEngine::new(problem_rules.clone()),
            inputs: BTreeSet::new(),
            unmatched: BTreeMap::new(),
            last_applied: None,
            pending: None,
            checkpoints: BTreeMap::new(),
            since_checkpoint: 0,
            floor: None,
            cold_before: None,
        }
    }

    /// The smallest input added and not applied yet, if any.
    pub fn pending(&self) -> Option<&InputKey> {
        self.pending.as_ref()
    }

    /// True if a replay from before `key` has to read the history (see the module doc).
    pub fn is_cold(&self, key: &InputKey) -> bool {
        self.cold_before.as_ref().is_some_and(|cold| key < cold)
    }

    /// Moves the cold boundary up to event time `hot` (the analysis's hot floor): forgets the
    /// keys of the event inputs before it and returns them as order keys, for the analysis
    /// to drop the events (or keep them as evidence). Does nothing while an input is pending
    /// (a replay that failed to read its history keeps everything until it succeeds).
    pub fn trim_cold(&mut self, hot: Timestamp) -> Vec<OrderKey> {
        let limit = key_at(hot);
        if self.pending.is_some() || self.cold_before.as_ref().is_some_and(|c| *c >= limit) {
            return Vec::new();
        }
        self.cold_before = Some(limit.clone());
        let old: Vec<InputKey> = self
            .inputs
            .range(..&limit)
            .filter(|(_, kind, _, _)| *kind == 0)
            .cloned()
            .collect();
        old.into_iter()
            .filter_map(|key| self.inputs.take(&key))
            .map(|(ts, _, agent, seq)| (ts, agent, seq))
            .collect()
    }

    /// Adds the input `key` without applying it: the caller calls [`Shard::catch_up`] after a
    /// batch.
    pub fn add_unapplied(&mut self, key: InputKey) {
        if self.pending.as_ref().is_none_or(|p| key < *p) {
            self.pending = Some(key.clone());
        }
        self.inputs.insert(key);
    }

    /// Applies the inputs added since the last catch-up. If the earliest of them comes before
    /// the last input applied, the engines go back to the latest checkpoint before it (or to
    /// empty) and replay from there. Returns `true` if they went back.
    ///
    /// A replay from before the cold boundary reads the history first; if that read fails,
    /// nothing changes: the engines stay as they were (without the new inputs), the inputs stay
    /// pending, and the next catch-up of this scope (its next input, or the next bulk's end)
    /// retries the read. The error is returned for the caller to count and log.
    pub fn catch_up(&mut self, all: &Inputs<'_>, cold: &Cold<'_>) -> Result<bool, HistoryError> {
        let Some(from) = self.pending.take() else {
            return Ok(false);
        };
        let late = self.last_applied.as_ref().is_some_and(|last| from <= *last);
        // The replay's base: the latest checkpoint before `from` (or nothing) when late.
        let base: Option<InputKey> = if late {
            self.checkpoints
                .range(..&from)
                .next_back()
                .map(|(key, _)| key.clone())
        } else {
            self.last_applied.clone()
        };
        let cold_events = match self.read_cold(base.as_ref(), cold) {
            Ok(events) => events,
            Err(e) => {
                self.pending = Some(from);
                return Err(e);
            }
        };
        if late {
            // Checkpoints at or after `from` miss it.
            drop(self.checkpoints.split_off(&from));
            match self.checkpoints.last_key_value() {
                Some((key, checkpoint)) => {
                    self.incidents.rollback(&checkpoint.incidents);
                    self.problems.rollback(&checkpoint.problems);
                    self.unmatched.clone_from(&checkpoint.unmatched);
                    self.last_applied = Some(key.clone());
                }
                None => {
                    self.incidents = IncidentEngine::new(self.incidents.rules().clone());
                    self.problems = ProblemEngine::new(self.problems.rules().clone());
                    self.unmatched.clear();
                    self.last_applied = None;
                }
            }
            self.since_checkpoint = 0;
        }
        let inputs = std::mem::take(&mut self.inputs);
        let start = match &self.last_applied {
            Some(last) => Bound::Excluded(last.clone()),
            None => Bound::Unbounded,
        };
        let cold_before = self.cold_before.clone();
        let mut held = inputs
            .range((start, Bound::Unbounded))
            .filter(|key| key.1 != 0 || cold_before.as_ref().is_none_or(|c| *key >= c))
            .peekable();
        let mut stored = cold_events
            .iter()
            .map(|ev| (super::event_input_key(&ev.order_key()), ev))
            .peekable();
        loop {
            let take_stored = match (held.peek(), stored.peek()) {
                (None, None) => break,
                (Some(h), Some((s, _))) => s < *h,
                (None, Some(_)) => true,
                (Some(_), None) => false,
            };
            if take_stored {
                if let Some((key, ev)) = stored.next() {
                    apply_event(&mut self.incidents, &mut self.problems, ev);
                    self.last_applied = Some(key);
                }
            } else if let Some(key) = held.next() {
                self.apply_input(key, all);
            }
            self.checkpoint_if_due();
        }
        self.inputs = inputs;
        if self.is_cold(&from) {
            self.drop_cold_event_keys();
        }
        Ok(late)
    }

    /// The scope's stored events after `base` (exclusive) and before the cold boundary, in
    /// order; none if the base is at or after the boundary.
    fn read_cold(
        &self,
        base: Option<&InputKey>,
        cold: &Cold<'_>,
    ) -> Result<Vec<StoredEvent>, HistoryError> {
        let Some(boundary) = &self.cold_before else {
            return Ok(Vec::new());
        };
        if base.is_some_and(|b| b >= boundary) {
            return Ok(Vec::new());
        }
        let from: OrderKey = match base {
            Some((ts, _, _, _)) => (*ts, String::new(), 0),
            None => (Timestamp(i64::MIN), String::new(), 0),
        };
        let to: OrderKey = (boundary.0, boundary.2.clone(), boundary.3);
        let mut events = cold.history.events(&cold.selector, &from, &to)?;
        if let Some(base) = base {
            events.retain(|ev| super::event_input_key(&ev.order_key()) > *base);
        }
        Ok(events)
    }

    /// Forgets the keys of event inputs below the cold boundary (late events just replayed
    /// from the history): memory holds only the hot span's.
    fn drop_cold_event_keys(&mut self) {
        let Some(boundary) = &self.cold_before else {
            return;
        };
        let old: Vec<InputKey> = self
            .inputs
            .range(..boundary)
            .filter(|(_, kind, _, _)| *kind == 0)
            .cloned()
            .collect();
        for key in old {
            self.inputs.remove(&key);
        }
    }

    /// Keeps a checkpoint every [`CHECKPOINT_EVERY`] inputs and forgets those older than
    /// [`CHECKPOINT_SPAN_MS`] behind the latest input.
    fn checkpoint_if_due(&mut self) {
        self.since_checkpoint += 1;
        let Some(last) = self.last_applied.clone() else {
            return;
        };
        if self.since_checkpoint < CHECKPOINT_EVERY {
            return;
        }
        self.since_checkpoint = 0;
        self.thin_checkpoints(last.0);
        self.checkpoints.insert(
            last,
            Checkpoint {
                incidents: self.incidents.mark(),
                problems: self.problems.mark(),
                unmatched: self.unmatched.clone(),
            },
        );
    }

    /// Keeps every checkpoint within [`CHECKPOINT_SPAN_MS`] of `latest`; older ones only as the
    /// latest of each cell of the prune grid ([`super::horizon::prune_every`]), back to the
    /// horizon plus two cells, and the floor's always. The prunes run when the cutoff enters
    /// a new cell, so the checkpoint the floor moves to is the last one before the cell.
    fn thin_checkpoints(&mut self, latest: Timestamp) {
        let horizon = super::horizon::horizon(self.incidents.rules(), self.problems.rules());
        let horizon_ms = super::horizon::millis(horizon);
        let spacing = super::horizon::millis(super::horizon::prune_every(horizon)).max(1);
        let recent = key_at(Timestamp(
            latest.millis().saturating_sub(CHECKPOINT_SPAN_MS),
        ));
        let oldest = latest
            .millis()
            .saturating_sub(horizon_ms.saturating_add(spacing.saturating_mul(2)));
        let mut newer = self.checkpoints.split_off(&recent);
        let mut bucket_seen = None;
        // Newest first: the first checkpoint of each bucket is the latest in it.
        let old: Vec<InputKey> = self.checkpoints.keys().rev().cloned().collect();
        for key in old {
            let bucket = key.0.millis().div_euclid(spacing);
            let keep = Some(&key) == self.floor.as_ref()
                || (key.0.millis() >= oldest && bucket_seen != Some(bucket));
            bucket_seen = Some(bucket);
            if let (true, Some(checkpoint)) = (keep, self.checkpoints.remove(&key)) {
                newer.insert(key, checkpoint);
            }
        }
        self.checkpoints = newer;
    }

    /// Moves the floor to the latest checkpoint before event time `cutoff` (taking one now if
    /// the scope has had no input since `cutoff`), forgets the inputs up to it and the
    /// incidents final before it. Must run only when the scope is up to date (no pending
    /// input). Returns `None` when the floor does not move.
    pub fn prune(&mut self, cutoff: Timestamp) -> Option<Pruned> {
        if self.pending.is_some() {
            return None;
        }
        let limit = key_at(cutoff);
        let base = match self.checkpoints.range(..&limit).next_back() {
            Some((key, _)) => key.clone(),
            None => {
                let last = self.last_applied.clone().filter(|l| *l < limit)?;
                self.checkpoints.insert(
                    last.clone(),
                    Checkpoint {
                        incidents: self.incidents.mark(),
                        problems: self.problems.mark(),
                        unmatched: self.unmatched.clone(),
                    },
                );
                last
            }
        };
        if self.floor.as_ref().is_some_and(|f| *f >= base) {
            return None;
        }
        self.checkpoints = self.checkpoints.split_off(&base);
        let mut kept = self.inputs.split_off(&base);
        let base_was_input = kept.remove(&base);
        let mut inputs = std::mem::replace(&mut self.inputs, kept);
        if base_was_input {
            inputs.insert(base.clone());
        }
        let mut incident_marks: Vec<&mut IncidentMark> = Vec::new();
        let mut problem_marks: Vec<&mut ProblemMark> = Vec::new();
        for checkpoint in self.checkpoints.values_mut() {
            incident_marks.push(&mut checkpoint.incidents);
            problem_marks.push(&mut checkpoint.problems);
        }
        let incidents = self
            .incidents
            .forget_final_before(base.0, &mut incident_marks);
        let ids: std::collections::HashSet<String> =
            incidents.iter().map(|i| i.id.clone()).collect();
        self.problems.forget_incidents(&ids, &mut problem_marks);
        self.floor = Some(base);
        Some(Pruned { inputs, incidents })
    }

    /// Counts the final, no longer undoable head of each problem's incident list into its
    /// tally ([`ProblemEngine::fold_final`]): only once the scope has a floor, whose
    /// checkpoint stays the base of every rollback.
    ///
    /// Invariant: a tally counts only incidents this scope has forgotten (final before its
    /// floor, which is at or before the analysis's horizon floor), so no input the analysis
    /// still accepts, late or not, can change their summaries. An incident still held can
    /// have a summary already (the hot span freezes one once it is final before the hot
    /// floor, [`super::hot`]), but a late event between the horizon floor and the hot floor
    /// can still change it: a deep replay drops it and computes it again, which a tally,
    /// never rolled back, could not follow. The first held incident in a list ends its head.
    /// Returns how many incidents it counted.
    pub fn fold_final(
        &mut self,
        final_of: impl Fn(&str) -> Option<crate::problems::CountedIncident>,
    ) -> usize {
        if self.floor.is_none() {
            return 0;
        }
        let marks: Vec<&ProblemMark> = self.checkpoints.values().map(|c| &c.problems).collect();
        let held = &self.incidents;
        self.problems.fold_final(
            |id| if held.holds(id) { None } else { final_of(id) },
            &marks,
        )
    }

    /// Applies one input by key.
    fn apply_input(&mut self, key: &InputKey, all: &Inputs<'_>) {
        let (ts, kind, agent, n) = key;
        if *kind == 0 {
            if let Some(ev) = all.events.get(&(*ts, agent.clone(), *n)) {
                apply_event(&mut self.incidents, &mut self.problems, ev);
            }
        } else if let Some(action) = all.actions.get(&(*ts, *n)) {
            if let Err(e) = apply_action(&mut self.incidents, &mut self.problems, action) {
                self.unmatched.insert(action.id, e);
            }
        }
        self.last_applied = Some(key.clone());
    }
}

/// The smallest input key at event time `ts`.
fn key_at(ts: Timestamp) -> InputKey {
    (ts, 0, String::new(), 0)
}

/// The row of an event's location, if it has one (problem row scope).
fn row_of(payload: &Payload) -> Option<&str> {
    match payload {
        Payload::SensorEvent(e) => e.location.row.as_deref(),
        Payload::DeviceEvent(e) => e.location.row.as_deref(),
        Payload::ZoneEvent(_) | Payload::ReadingSummary(_) => None,
    }
}

/// Applies one action to the engine it is about, forwarding incident changes to problems.
fn apply_action(
    incidents: &mut IncidentEngine,
    problems: &mut ProblemEngine,
    action: &OperatorAction,
) -> Result<(), ActionError> {
    if action.kind.problem().is_some() {
        problems.apply_action(action)?;
        return Ok(());
    }
    let changes = incidents.apply_action(action)?;
    forward(problems, changes);
    Ok(())
}

/// Applies one event to the incident engine and forwards its openings and escalations to the
/// problem engine.
fn apply_event(incidents: &mut IncidentEngine, problems: &mut ProblemEngine, ev: &StoredEvent) {
    let changes = incidents.apply(ev);
    if let Some(row) = row_of(&ev.payload) {
        for change in &changes {
            if let IncidentChange::Opened { id, .. } = change {
                problems.note_row(id, row);
            }
        }
    }
    forward(problems, changes);
}

/// Feeds incident changes to the problem engine.
fn forward(problems: &mut ProblemEngine, changes: Vec<IncidentChange>) {
    for change in changes {
        match change {
            IncidentChange::Opened {
                id,
                fingerprint,
                opened_at,
                severity,
            } => {
                problems.observe_opened(&id, &fingerprint, opened_at, severity);
            }
            IncidentChange::Escalated {
                id,
                fingerprint,
                at,
                severity,
            } => {
                problems.observe_escalated(&id, &fingerprint, at, severity);
            }
            IncidentChange::Sustained {
                id,
                fingerprint,
                at,
                raised_since,
            } => {
                let reason = format!(
                    "{} incident in zone {} raised for {} (SLA rule: sustained excursion)",
                    fingerprint.category,
                    fingerprint.zone,
                    humantime::format_duration(at.since(raised_since))
                );
                problems.observe_sla(&id, &fingerprint, at, reason);
            }
            IncidentChange::MarkedSla {
                id,
                fingerprint,
                at,
            } => {
                let reason = format!(
                    "{} incident in zone {} marked SLA-impacting by an operator",
                    fingerprint.category, fingerprint.zone
                );
                problems.observe_sla(&id, &fingerprint, at, reason);
            }
            IncidentChange::Updated { .. }
            | IncidentChange::AllClear { .. }
            | IncidentChange::Closed { .. } => {}
        }
    }
}
