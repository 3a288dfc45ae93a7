//! Timelines read back from the store: the timeline of an incident final before the hot floor
//! leaves memory ([`crate::incidents::IncidentEngine::store_timelines_final_before`], at each
//! trim, [`super::hot`]), and the read side that needs it whole (the incident API, tests
//! comparing with an analysis that holds everything) reads its head back through the scope
//! index ([`ScopeHistory`]).
//!
//! The head of an incident's timeline is the first `events` events of its fingerprint from
//! its first event's order key on ([`crate::incidents::StoredTimeline`]), so one range scan
//! of its scope, from that key to the first entry still held (or past its last event), gives
//! it back in order.

use super::history::{HistoryError, ScopeHistory};
use super::{incident_chronicle, prune, Analysis};
use crate::incidents::{timeline_entry, Incident, TimelineEntry};
use coldaisle_core::Timestamp;

/// The store answered fewer events than an incident's stored head counts (retention deleted
/// them, or the index lost them).
#[derive(Debug, thiserror::Error)]
#[error("incident {id}: {found} of the {expected} timeline events stored for it were found")]
pub struct MissingTimelineEvents {
    /// The incident.
    pub id: String,
    /// Events of its head found in the store.
    pub found: usize,
    /// Events its head counts.
    pub expected: usize,
}

impl Analysis {
    /// One incident as of event time `now` ([`Analysis::incident`]) with its whole timeline
    /// and chronicle: a stored head is read back from `history`.
    pub fn incident_with_history(
        &self,
        id: &str,
        now: Timestamp,
        history: &dyn ScopeHistory,
    ) -> Result<Option<Incident>, HistoryError> {
        let Some(mut incident) = self.incident(id, now) else {
            return Ok(None);
        };
        self.read_stored_timeline(&mut incident, history)?;
        Ok(Some(incident))
    }

    /// Every incident as of event time `now` ([`Analysis::incidents`]) with its whole
    /// timeline and chronicle (one range scan per incident with a stored head).
    pub fn incidents_with_history(
        &self,
        now: Timestamp,
        history: &dyn ScopeHistory,
    ) -> Result<Vec<Incident>, HistoryError> {
        let mut all = self.incidents(now);
        for incident in &mut all {
            self.read_stored_timeline(incident, history)?;
        }
        Ok(all)
    }

    /// Puts the stored head of `incident`'s timeline (if any) back in front of the entries
    /// held, and rebuilds its chronicle. On error the incident is unchanged.
    pub fn read_stored_timeline(
        &self,
        incident: &mut Incident,
        history: &dyn ScopeHistory,
    ) -> Result<(), HistoryError> {
        let Some(stored) = &incident.stored_timeline else {
            return Ok(());
        };
        let selector = self.history_selector(&incident.fingerprint);
        let to = incident.timeline.first().map_or_else(
            || prune::after(incident.last_event_at),
            |t| (t.ts, t.agent.clone(), t.seq),
        );
        let events = history.events(&selector, &stored.from_key(), &to)?;
        let mut head: Vec<TimelineEntry> = events
            .iter()
            .filter_map(timeline_entry)
            .filter(|(fp, _)| *fp == incident.fingerprint)
            .map(|(_, entry)| entry)
            .take(stored.events)
            .collect();
        if head.len() < stored.events {
            return Err(HistoryError {
                scope: selector.name().to_string(),
                source: Box::new(MissingTimelineEvents {
                    id: incident.id.clone(),
                    found: head.len(),
                    expected: stored.events,
                }),
            });
        }
        head.append(&mut incident.timeline);
        incident.timeline = head;
        incident.stored_timeline = None;
        let delivered = self.delivered(&incident.id);
        incident.chronicle = incident_chronicle(incident, delivered);
        Ok(())
    }
}
