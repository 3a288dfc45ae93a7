//! The chronicle of an incident: every event, engine state change, operator action and
//! notification, merged into one time-ordered list saying who or what did it and when.
//!
//! The chronicle of a problem: its history (engine changes and operator actions) merged with the
//! pager deliveries about it.
//!
//! Pure data: [`crate::analysis::Analysis`] builds the chronicles from an incident's or a
//! problem's records and the notification records it holds.

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
    /// What the analysis concluded about a problem from its incidents and its zone's data
    /// (recurrence signature, fix verification); last within its millisecond.
    Finding,
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

/// The chronicle line of a problem's recurrence signature, at the opening of its latest
/// incident: the signature in words, as the engine judged it then.
pub fn signature_entry(signature: Option<&crate::recurrence::Signature>) -> Option<ChronicleEntry> {
    let signature = signature?;
    Some(ChronicleEntry {
        at: signature.last_at?,
        who: crate::model::ENGINE_ACTOR.to_string(),
        kind: ChronicleKind::Finding,
        text: format!(
            "recurrence signature over {} incidents: {}",
            signature.incidents, signature.summary
        ),
    })
}
