//! Operator actions: acknowledge, annotate and resolve an incident, mark it SLA-impacting, move a
//! problem through its lifecycle, record its root cause and workaround.
//!
//! Pure data. An action is a durable, timestamped input exactly like an agent's event: the
//! collector stores it (see [`crate::action_log`]) and [`crate::analysis::Analysis`] applies it
//! in event-time order together with the events, so a rebuild or a replay of the same events and
//! actions gives the same incidents and problems.
//!
//! Invariants:
//! - `id` is assigned by the action log, strictly increasing, never reused; `(at, id)` orders
//!   actions among themselves, and an action applies after every event of the same millisecond.
//! - Actions name incidents and problems by id. Ids are content-derived, so an action keeps its
//!   target across restarts; if a late event moves an incident's opening time (and so its id),
//!   actions on the old id no longer match anything and are reported as unmatched, never
//!   applied to another incident.

use coldaisle_core::Timestamp;
use serde::{Deserialize, Serialize};

/// One operator action as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorAction {
    /// Sequence number assigned by the action log (1, 2, ...).
    pub id: u64,
    /// When the action takes effect (wall clock of the collector when it was recorded, or the
    /// time the operator gave).
    pub at: Timestamp,
    /// Who did it (a person, or the tool that acted for them).
    pub actor: String,
    /// What was done.
    pub kind: ActionKind,
}

/// What an operator did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ActionKind {
    /// Someone took ownership of an incident.
    Acknowledge {
        /// Incident id.
        incident: String,
    },
    /// A free-text note on an incident.
    NoteIncident {
        /// Incident id.
        incident: String,
        /// The note.
        text: String,
    },
    /// Resolve an incident by hand: it ends now; a later raise of its fingerprint opens a new one.
    ResolveIncident {
        /// Incident id.
        incident: String,
        /// Why, shown on the chronicle.
        #[serde(default)]
        reason: String,
    },
    /// Mark an incident SLA-impacting: it opens (or links to) a problem.
    MarkSla {
        /// Incident id.
        incident: String,
    },
    /// A free-text note on a problem.
    NoteProblem {
        /// Problem id.
        problem: String,
        /// The note.
        text: String,
    },
    /// Move a problem to another lifecycle state.
    SetProblemStatus {
        /// Problem id.
        problem: String,
        /// The new state.
        status: ProblemStatus,
    },
    /// Record the root cause and workaround of a problem; it becomes a known error unless
    /// already resolved.
    SetRootCause {
        /// Problem id.
        problem: String,
        /// The root cause, in words.
        root_cause: String,
        /// What to do when it happens again until the fix lands.
        workaround: String,
    },
}

impl ActionKind {
    /// The incident the action is about, if it is about an incident.
    pub fn incident(&self) -> Option<&str> {
        match self {
            ActionKind::Acknowledge { incident }
            | ActionKind::NoteIncident { incident, .. }
            | ActionKind::ResolveIncident { incident, .. }
            | ActionKind::MarkSla { incident } => Some(incident),
            _ => None,
        }
    }

    /// The problem the action is about, if it is about a problem.
    pub fn problem(&self) -> Option<&str> {
        match self {
            ActionKind::NoteProblem { problem, .. }
            | ActionKind::SetProblemStatus { problem, .. }
            | ActionKind::SetRootCause { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// One line for a chronicle, e.g. `acknowledged` or `note: fan tray replaced`.
    pub fn describe(&self) -> String {
        match self {
            ActionKind::Acknowledge { .. } => "acknowledged".to_string(),
            ActionKind::NoteIncident { text, .. } | ActionKind::NoteProblem { text, .. } => {
                format!("note: {text}")
            }
            ActionKind::ResolveIncident { reason, .. } if reason.is_empty() => {
                "resolved by hand".to_string()
            }
            ActionKind::ResolveIncident { reason, .. } => format!("resolved by hand: {reason}"),
            ActionKind::MarkSla { .. } => "marked SLA-impacting".to_string(),
            ActionKind::SetProblemStatus { status, .. } => {
                format!("status set to {}", status.as_str())
            }
            ActionKind::SetRootCause {
                root_cause,
                workaround,
                ..
            } => format!("root cause: {root_cause}; workaround: {workaround}"),
        }
    }
}

/// Order in which actions are applied among themselves.
pub type ActionKey = (Timestamp, u64);

impl OperatorAction {
    /// The key this action is applied in order of.
    pub fn key(&self) -> ActionKey {
        (self.at, self.id)
    }
}

/// What an operator did, as shown on a chronicle or a problem's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: String,
    /// What, in words.
    pub text: String,
}

impl From<&OperatorAction> for ActionRecord {
    fn from(action: &OperatorAction) -> Self {
        ActionRecord {
            at: action.at,
            actor: action.actor.clone(),
            text: action.kind.describe(),
        }
    }
}

/// Lifecycle of a problem: open → investigating → known error → resolved.
///
/// The engine creates problems as [`ProblemStatus::Open`]; the other states are operator
/// decisions. Any state but `Resolved` counts as open for linking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemStatus {
    /// Created, nobody looked at it yet.
    Open,
    /// Someone is looking for the root cause.
    Investigating,
    /// Root cause and workaround known, fix pending.
    KnownError,
    /// Fixed; later incidents of the fingerprint may open a new problem.
    Resolved,
}

impl ProblemStatus {
    /// The snake_case name used in the API and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemStatus::Open => "open",
            ProblemStatus::Investigating => "investigating",
            ProblemStatus::KnownError => "known_error",
            ProblemStatus::Resolved => "resolved",
        }
    }

    /// True unless resolved: later incidents of the fingerprint link to such a problem.
    pub fn is_open(self) -> bool {
        self != ProblemStatus::Resolved
    }
}
