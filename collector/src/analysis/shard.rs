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
        }
    }

    /// Adds the input `key` (already in `all`) and brings the engines up to date. Returns
    /// `true` if it had to go back (a late input).
    pub fn add(&mut self, key: InputKey, all: &Inputs<'_>) -> bool {
        self.add_unapplied(key);
        self.catch_up(all)
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
    pub fn catch_up(&mut self, all: &Inputs<'_>) -> bool {
        let Some(from) = self.pending.take() else {
            return false;
        };
        let late = self.last_applied.as_ref().is_some_and(|last| from <= *last);
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
        for key in inputs.range((start, Bound::Unbounded)) {
            self.apply_input(key, all);
            self.checkpoint_if_due();
        }
        self.inputs = inputs;
        late
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
    /// checkpoint stays the base of every rollback. Returns how many incidents it counted.
    pub fn fold_final(
        &mut self,
        final_of: impl Fn(&str) -> Option<crate::problems::CountedIncident>,
    ) -> usize {
        if self.floor.is_none() {
            return 0;
        }
        let marks: Vec<&ProblemMark> = self.checkpoints.values().map(|c| &c.problems).collect();
        self.problems.fold_final(final_of, &marks)
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
