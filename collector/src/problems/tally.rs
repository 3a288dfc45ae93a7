//! What a problem keeps of the incidents it counted once they are final (issue 13 part 11):
//! running counts for its probable cause ([`CauseTally`]) and its recurrence signature
//! ([`SignatureTally`]), so that the analysis can forget those incidents' summaries however
//! long the problem stays open.
//!
//! Invariants:
//! - A tally covers a *head* of the problem's incident list: the first `folded` ids, added in
//!   list order. The rest of the list is read incident by incident, after the head, so the
//!   cause and signature equal those of the whole list read one by one.
//! - The head only grows, and only over incidents that are final (their cause and peaks can no
//!   longer change) and whose link no rollback can undo (before every rollback mark of the
//!   scope, see [`super::ProblemEngine::fold_final`]): a tally is never rolled back. "Final"
//!   is the caller's to ensure: the analysis offers only incidents their scope has forgotten
//!   (final before the horizon floor), never a summary the hot span froze that a late event
//!   can still change (`crate::analysis` `Shard::fold_final`).

use crate::cause::{CauseTally, ProbableCause};
use crate::recurrence::{IncidentPoint, Signature, SignatureSettings, SignatureTally};
use coldaisle_core::Timestamp;
use serde::{Deserialize, Serialize};

/// An incident as a problem's cause and signature read it: what the analysis summarises when
/// the incident is final.
#[derive(Debug, Clone, PartialEq)]
pub struct CountedIncident {
    /// When it opened.
    pub opened_at: Timestamp,
    /// Its probable cause.
    pub cause: ProbableCause,
    /// Its racks and peaks.
    pub point: IncidentPoint,
}

/// The running counts of the head of one problem's incident list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProblemTally {
    /// How many ids at the head of the problem's incident list are counted here.
    folded: usize,
    /// When the earliest of them opened (the records from there on are still needed while the
    /// problem is open, see `Analysis::oldest_needed_time`).
    first_opened: Option<Timestamp>,
    /// Their causes, counted by kind.
    cause: CauseTally,
    /// Their times, racks and peaks.
    signature: SignatureTally,
}

impl ProblemTally {
    /// Counts the incident at list position `self.folded` (the next one).
    pub(super) fn fold(&mut self, incident: &CountedIncident) {
        let t = incident.opened_at;
        self.first_opened = Some(self.first_opened.map_or(t, |f| f.min(t)));
        self.cause.add(&incident.cause);
        self.signature.add(&incident.point, self.folded as u64);
        self.folded += 1;
    }

    /// How many ids at the head of the problem's list are counted here (the others are read
    /// one by one).
    pub fn folded(&self) -> usize {
        self.folded
    }

    /// When the earliest counted incident opened.
    pub fn first_opened(&self) -> Option<Timestamp> {
        self.first_opened
    }

    /// The problem's probable cause and signature: `tally` (if any) plus `rest`, the incidents
    /// of the list after its head, with their list positions, in list order.
    pub fn read(
        tally: Option<&ProblemTally>,
        rest: impl IntoIterator<Item = (usize, ProbableCause, IncidentPoint)>,
        settings: &SignatureSettings,
    ) -> (Option<ProbableCause>, Signature) {
        let (mut cause, mut signature) = tally
            .map(|t| (t.cause.clone(), t.signature.clone()))
            .unwrap_or_default();
        for (position, c, point) in rest {
            cause.add(&c);
            signature.add(&point, position as u64);
        }
        (cause.problem_cause(), signature.signature(settings))
    }
}
