//! The chronicle of an incident: every event, engine state change, operator action and
//! notification, merged into one time-ordered list saying who or what did it and when.
//!
//! The chronicle of a problem: its history (engine changes and operator actions) merged with the
//! pager deliveries about it.
//!
//! Pure: built from an [`Incident`] or a [`Problem`] and the notification records the caller
//! passes in.

use crate::actions::ActionRecord;
use crate::incidents::{Incident, ENGINE_ACTOR};
use crate::problems::Problem;
use coldaisle_core::Timestamp;
use serde::{Deserialize, Serialize};

/// What kind of line a chronicle entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChronicleKind {
    /// An agent's event (sensor, zone or device).
    Event,
    /// A state change the engine decided (opened, escalated, all clear, resolved).
    StateChange,
    /// An operator's action (acknowledgement, note, manual resolve, SLA mark).
    Operator,
    /// A notification sent to a pager.
    Notification,
}

/// One line of a chronicle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChronicleEntry {
    /// When.
    pub at: Timestamp,
    /// Who or what: an agent id, `coldaisle` for the engine, an operator, a pager route.
    pub who: String,
    /// What kind of line it is.
    pub kind: ChronicleKind,
    /// What happened, in words.
    pub text: String,
}

/// The chronicle of `incident` with `notifications` (pager deliveries about it), in time order;
/// within one millisecond: events, then state changes, operator actions, notifications.
pub fn of_incident(incident: &Incident, notifications: &[ActionRecord]) -> Vec<ChronicleEntry> {
    let mut all: Vec<ChronicleEntry> = incident
        .timeline
        .iter()
        .map(|e| ChronicleEntry {
            at: e.ts,
            who: format!("agent {}", e.agent),
            kind: ChronicleKind::Event,
            text: e.text.clone(),
        })
        .collect();
    let mut add = |records: &[ActionRecord], kind: ChronicleKind| {
        all.extend(records.iter().map(|r| ChronicleEntry {
            at: r.at,
            who: r.actor.clone(),
            kind,
            text: r.text.clone(),
        }));
    };
    add(&incident.state_changes, ChronicleKind::StateChange);
    add(&incident.actions, ChronicleKind::Operator);
    add(notifications, ChronicleKind::Notification);
    // Stable: entries of one kind keep their recorded order.
    all.sort_by_key(|e| (e.at, e.kind));
    all
}

/// The chronicle of `problem` with `notifications` (pager deliveries about it), in time order:
/// its history (engine lines as state changes, the rest as operator actions) and deliveries.
pub fn of_problem(problem: &Problem, notifications: &[ActionRecord]) -> Vec<ChronicleEntry> {
    let mut all: Vec<ChronicleEntry> = problem
        .history
        .iter()
        .map(|r| ChronicleEntry {
            at: r.at,
            who: r.actor.clone(),
            kind: if r.actor == ENGINE_ACTOR {
                ChronicleKind::StateChange
            } else {
                ChronicleKind::Operator
            },
            text: r.text.clone(),
        })
        .chain(notifications.iter().map(|r| ChronicleEntry {
            at: r.at,
            who: r.actor.clone(),
            kind: ChronicleKind::Notification,
            text: r.text.clone(),
        }))
        .collect();
    all.sort_by_key(|e| (e.at, e.kind));
    all
}
