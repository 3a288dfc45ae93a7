//! One scope of the analysis (see [`super::scope`]): its own incident and problem engines fed
//! with its own inputs, in [`InputKey`] order.
//!
//! Invariant: the engines hold exactly the state of one in-order pass over `inputs`. An input
//! whose key is above `last_applied` is applied incrementally; an earlier (late) one makes the
//! scope replay its inputs, never another scope's.

use super::InputKey;
use crate::actions::{ActionKey, OperatorAction};
use crate::incidents::{IncidentChange, IncidentEngine, IncidentRules};
use crate::model::{ActionError, OrderKey, StoredEvent};
use crate::problems::{ProblemEngine, ProblemRules};
use coldaisle_core::wire::Payload;
use std::collections::{BTreeMap, BTreeSet};

/// Every input of the analysis, by key: the shards hold only keys into these maps.
pub(super) struct Inputs<'a> {
    /// Events by order key.
    pub events: &'a BTreeMap<OrderKey, StoredEvent>,
    /// Operator actions by action key.
    pub actions: &'a BTreeMap<ActionKey, OperatorAction>,
}

/// The incident and problem state of one scope.
#[derive(Debug, Clone)]
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
        }
    }

    /// Adds the input `key` (already in `all`) and brings the engines up to date: applies it
    /// alone if it comes after everything applied, replays the scope otherwise. Returns `true`
    /// if it replayed.
    pub fn add(&mut self, key: InputKey, all: &Inputs<'_>) -> bool {
        let in_order = self.last_applied.as_ref().is_none_or(|last| key > *last);
        self.inputs.insert(key.clone());
        if in_order {
            self.apply_input(&key, all);
        } else {
            self.replay(all);
        }
        !in_order
    }

    /// Adds the input `key` without applying it: the caller calls [`Shard::replay`] after a
    /// batch.
    pub fn add_unapplied(&mut self, key: InputKey) {
        self.inputs.insert(key);
    }

    /// Rebuilds the engines from this scope's inputs.
    pub fn replay(&mut self, all: &Inputs<'_>) {
        self.incidents = IncidentEngine::new(self.incidents.rules().clone());
        self.problems = ProblemEngine::new(self.problems.rules().clone());
        self.unmatched.clear();
        self.last_applied = None;
        let keys = std::mem::take(&mut self.inputs);
        for key in &keys {
            self.apply_input(key, all);
        }
        self.inputs = keys;
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
