//! The incident engine: turns stored events into incidents, one stream per fingerprint
//! `(site, zone, category)`.
//!
//! Pure: no I/O, no wall clock, no randomness. Events come in with their own event time and the
//! caller passes "now" explicitly when it asks for the incidents, so replaying the same events
//! gives the same incidents.
//!
//! Invariants:
//! - Events are applied in order of [`OrderKey`](crate::model::OrderKey) `(payload.ts(), agent, seq)`; the caller
//!   guarantees it (see [`crate::analysis::Analysis`], which rebuilds on late events).
//! - An incident covers the half-open interval `[opened_at, resolved_at)`. Once its last raised
//!   source has cleared at time `c`, it stays open for the quiet period `q`: a raise of the same
//!   fingerprint at `ts < c + q` joins it again; a raise at `ts >= c + q` opens a new incident and
//!   the previous one is final with `resolved_at = c + q`. `incidents(now)` uses the same
//!   boundary: with no raised source and `now >= c + q` the incident is resolved.
//! - Incident ids depend only on the incident's content (fingerprint and opening time), never on
//!   the processing order.

use crate::actions::{ActionKind, ActionRecord, OperatorAction};
use crate::cause::ProbableCause;
use crate::chronicle::ChronicleEntry;
use crate::model::{
    content_id, duration_text, fnv1a32, optional_duration_text, ActionError, StoredEvent,
    ENGINE_ACTOR,
};
use coldaisle_core::wire::Payload;
use coldaisle_core::{
    Category, DeviceEvent, EventState, Fingerprint, SensorEvent, Severity, Timestamp, ZoneEvent,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

/// Severity given to device events, which carry none: an unreachable device needs attention
/// during working hours but is not, by itself, an emergency.
pub const DEVICE_EVENT_SEVERITY: Severity = Severity::Warning;

/// Configuration of the incident engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentRules {
    /// How long an incident stays open after its last raised source cleared; a raise of the same
    /// fingerprint within it rejoins the incident instead of opening a new one.
    #[serde(with = "duration_text")]
    pub quiet_period: Duration,
    /// An incident whose sources stay raised for at least this long (event time) is reported
    /// once as [`IncidentChange::Sustained`] (the "above the limit for longer than T" SLA rule);
    /// `None` disables it.
    #[serde(
        default,
        with = "optional_duration_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub sustained_after: Option<Duration>,
}

impl Default for IncidentRules {
    /// A quiet period of 15 minutes.
    fn default() -> Self {
        IncidentRules {
            quiet_period: Duration::from_secs(15 * 60),
            sustained_after: None,
        }
    }
}

/// Whether an incident is still going on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// A source is raised, or the quiet period after the last clear has not elapsed.
    Open,
    /// No source raised and the quiet period elapsed (or a later incident of the fingerprint
    /// exists).
    Resolved,
}

/// What kind of entry a timeline line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimelineKind {
    /// A detector transition on one sensor.
    SensorEvent,
    /// A zone-level correlation from an agent.
    ZoneEvent,
    /// A device became unreachable or answers again.
    DeviceEvent,
}

/// One line of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Event time.
    pub ts: Timestamp,
    /// Agent that sent the event.
    pub agent: String,
    /// The event's per-agent sequence number.
    pub seq: u64,
    /// What kind of event it was.
    pub kind: TimelineKind,
    /// Raised or cleared.
    pub state: EventState,
    /// Severity the event carried ([`DEVICE_EVENT_SEVERITY`] for device events).
    pub severity: Severity,
    /// Human-readable description, e.g. `inlet_temp r12-inlet raised by threshold: 29.1 °C > 27.0`.
    pub text: String,
}

/// The head of an incident's timeline that is read from the store instead of memory.
///
/// Invariant: the head is the first `events` events of the incident's fingerprint (those
/// [`timeline_entry`] turns into an entry) with an order key at or after `from`: every event
/// of the fingerprint between an incident's first and last event joins it (see the module
/// doc), so that is exactly its first `events` timeline entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTimeline {
    /// Event time of the incident's first event.
    pub ts: Timestamp,
    /// Agent of the incident's first event.
    pub agent: String,
    /// Sequence number of the incident's first event.
    pub seq: u64,
    /// How many timeline entries, from the first, are in the store.
    pub events: usize,
    /// The words of those entries' texts that are not numbers ([`text_words`]), so that a
    /// report can still tell which sensors the incident names. After a deep replay shortened
    /// the head, it may still hold words of entries past the head (never fewer).
    pub words: BTreeSet<String>,
}

impl StoredTimeline {
    /// The order key of the incident's first event.
    pub fn from_key(&self) -> crate::model::OrderKey {
        (self.ts, self.agent.clone(), self.seq)
    }
}

/// The words of a timeline text as a report matches them: split on whitespace, punctuation
/// trimmed.
pub fn text_words(text: &str) -> impl Iterator<Item = &str> {
    text.split_whitespace()
        .map(|word| word.trim_matches(|c| matches!(c, ',' | ';' | ':' | '(' | ')' | '[' | ']')))
}

impl Incident {
    /// How many events the incident has: the stored head and the timeline held.
    pub fn event_count(&self) -> usize {
        self.stored_timeline.as_ref().map_or(0, |s| s.events) + self.timeline.len()
    }

    /// True if a word of its timeline's texts (held or stored) is `word`.
    pub fn names_word(&self, word: &str) -> bool {
        self.stored_timeline
            .as_ref()
            .is_some_and(|s| s.words.contains(word))
            || self
                .timeline
                .iter()
                .any(|entry| text_words(&entry.text).any(|w| w == word))
    }
}

/// An incident as reported at some time `now`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// Stable id, e.g. `inc-dc1-z1-thermal-1764072000000`.
    pub id: String,
    /// The stream this incident belongs to.
    pub fingerprint: Fingerprint,
    /// Open or resolved at the `now` it was asked for.
    pub status: IncidentStatus,
    /// Highest severity of the raised events of the incident.
    pub severity: Severity,
    /// Event time of the raise that opened it.
    pub opened_at: Timestamp,
    /// When it resolved: last clear + quiet period; `None` while open.
    pub resolved_at: Option<Timestamp>,
    /// Event time of the latest event applied to it.
    pub last_event_at: Timestamp,
    /// Sources still raised (`sensor:{sensor}:{detector}`, `zone`, `device:{device}`), sorted.
    pub active_sources: Vec<String>,
    /// Every event applied to the incident, in application order, after the head that
    /// `stored_timeline` says is in the store.
    pub timeline: Vec<TimelineEntry>,
    /// The head of the timeline that left memory (an incident final before the analysis's
    /// hot floor, [`crate::analysis::hot`]): its events are read back from the store's scope
    /// index ([`crate::analysis::Analysis::incident_with_history`]). `None`: `timeline` is
    /// whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_timeline: Option<StoredTimeline>,
    /// Id of the problem the incident is linked to (filled by [`crate::analysis::Analysis`]).
    pub problem: Option<String>,
    /// The first acknowledgement, if someone acknowledged it.
    #[serde(default)]
    pub acknowledged: Option<ActionRecord>,
    /// Set when an operator resolved it by hand (then `resolved_at` is that time).
    #[serde(default)]
    pub resolved_by_hand: Option<ActionRecord>,
    /// Every operator action on it (acknowledgements, notes, manual resolve, SLA mark), in order.
    #[serde(default)]
    pub actions: Vec<ActionRecord>,
    /// State changes decided by the engine (opened, escalated, all clear, sustained), in order.
    #[serde(default)]
    pub state_changes: Vec<ActionRecord>,
    /// Workaround of its problem when that problem is a known error (filled by the analysis).
    #[serde(default)]
    pub workaround: Option<String>,
    /// Probable cause explained from the evidence (filled by the analysis).
    #[serde(default)]
    pub probable_cause: Option<ProbableCause>,
    /// Every event, state change, operator action and notification, in time order (filled by
    /// the analysis; see [`crate::chronicle`]).
    #[serde(default)]
    pub chronicle: Vec<ChronicleEntry>,
}

/// What applying one event changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum IncidentChange {
    /// A new incident opened.
    Opened {
        /// Id of the new incident.
        id: String,
        /// Its fingerprint.
        fingerprint: Fingerprint,
        /// Event time of the raise that opened it.
        opened_at: Timestamp,
        /// Severity of that raise.
        severity: Severity,
    },
    /// An existing incident received an event (its timeline grew).
    Updated {
        /// Id of the incident.
        id: String,
    },
    /// A raise made an existing incident more severe.
    Escalated {
        /// Id of the incident.
        id: String,
        /// Its fingerprint.
        fingerprint: Fingerprint,
        /// Event time of the raise.
        at: Timestamp,
        /// The new severity.
        severity: Severity,
    },
    /// The incident's sources have all cleared; it resolves unless a raise comes within the
    /// quiet period.
    AllClear {
        /// Id of the incident.
        id: String,
        /// Event time of the last clear.
        at: Timestamp,
        /// When it will be resolved if nothing else is raised.
        resolves_at: Timestamp,
    },
    /// The incident's sources have stayed raised for the configured `sustained_after`.
    Sustained {
        /// Id of the incident.
        id: String,
        /// Its fingerprint.
        fingerprint: Fingerprint,
        /// Event time of the event that showed it.
        at: Timestamp,
        /// Since when its sources have been raised without interruption.
        raised_since: Timestamp,
    },
    /// An operator marked the incident SLA-impacting.
    MarkedSla {
        /// Id of the incident.
        id: String,
        /// Its fingerprint.
        fingerprint: Fingerprint,
        /// When.
        at: Timestamp,
    },
    /// A new incident of the same fingerprint opened, or an operator resolved it, so this one
    /// is final.
    Closed {
        /// Id of the incident.
        id: String,
        /// Its final resolution time.
        resolved_at: Timestamp,
    },
}

/// What the engine keeps per incident besides its reported form.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IncidentState {
    /// The reported form; `status` and `resolved_at` are computed on demand.
    incident: Incident,
    /// Raised sources (the sorted set behind `incident.active_sources`).
    active: BTreeSet<String>,
    /// Event time at which the active set last became empty.
    last_clear: Option<Timestamp>,
    /// Set once a later incident of the fingerprint opened or an operator resolved it: the
    /// final resolution time.
    closed_at: Option<Timestamp>,
    /// Event time since which the active set has been non-empty without interruption.
    raised_since: Option<Timestamp>,
    /// True once [`IncidentChange::Sustained`] was reported (it is reported once).
    sustained: bool,
}

impl IncidentState {
    /// When the incident resolves if nothing is raised again: last clear + quiet period.
    fn resolves_at(&self, quiet: Duration) -> Option<Timestamp> {
        if self.active.is_empty() {
            self.last_clear.map(|c| c.plus(quiet))
        } else {
            None
        }
    }

    /// True if an event at `ts` still belongs to this incident.
    fn is_live_at(&self, ts: Timestamp, quiet: Duration) -> bool {
        self.closed_at.is_none() && self.resolves_at(quiet).is_none_or(|r| ts < r)
    }

    /// True if nothing from event time `until` on can change it: resolved before `until` (by
    /// the quiet period, a later incident or an operator), with no event, state change or
    /// action at or after it.
    fn is_final_before(&self, until: Timestamp, quiet: Duration) -> bool {
        let resolved = self.closed_at.or_else(|| self.resolves_at(quiet));
        let last_action = self.incident.actions.last().map(|a| a.at);
        let last_change = self.incident.state_changes.last().map(|a| a.at);
        resolved.is_some_and(|r| r < until)
            && self.incident.last_event_at < until
            && last_action.is_none_or(|a| a < until)
            && last_change.is_none_or(|a| a < until)
    }

    /// Records an engine-decided state change.
    fn note_change(&mut self, at: Timestamp, text: String) {
        self.incident.state_changes.push(ActionRecord {
            at,
            actor: ENGINE_ACTOR.to_string(),
            text,
        });
    }
}

/// An event reduced to what the incident engine needs.
struct Classified {
    fingerprint: Fingerprint,
    source: String,
    state: EventState,
    severity: Severity,
    kind: TimelineKind,
    text: String,
}

impl Classified {
    /// The timeline entry of `ev` (classified as `self`); takes the text.
    fn take_entry(&mut self, ev: &StoredEvent) -> TimelineEntry {
        TimelineEntry {
            ts: ev.payload.ts(),
            agent: ev.agent.clone(),
            seq: ev.seq,
            kind: self.kind,
            state: self.state,
            severity: self.severity,
            text: std::mem::take(&mut self.text),
        }
    }
}

/// The fingerprint of `ev` and the timeline entry it makes in that fingerprint's incident;
/// `None` for events that open no incident (see [`fingerprint_of`]).
pub fn timeline_entry(ev: &StoredEvent) -> Option<(Fingerprint, TimelineEntry)> {
    classify(&ev.payload).map(|mut c| {
        let entry = c.take_entry(ev);
        (c.fingerprint, entry)
    })
}

/// What an [`IncidentEngine`] looked like at one point (see [`IncidentEngine::mark`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IncidentMark {
    /// The changeable fields of every incident that existed, in opening order.
    incidents: Vec<IncidentFields>,
    /// The latest incident of each fingerprint.
    #[serde(with = "crate::model::pairs")]
    current: HashMap<Fingerprint, usize>,
    /// Orphan clears so far.
    orphan_clears: u64,
}

/// The fields of one incident that change after it opened, and the lengths of its lists.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IncidentFields {
    active: BTreeSet<String>,
    last_clear: Option<Timestamp>,
    closed_at: Option<Timestamp>,
    raised_since: Option<Timestamp>,
    sustained: bool,
    severity: Severity,
    last_event_at: Timestamp,
    acknowledged: Option<ActionRecord>,
    resolved_by_hand: Option<ActionRecord>,
    timeline: usize,
    state_changes: usize,
    actions: usize,
}

/// The incident state machine; see the module documentation for its rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IncidentEngine {
    /// Configuration.
    rules: IncidentRules,
    /// Every incident, in opening order.
    incidents: Vec<IncidentState>,
    /// Index into `incidents` by id.
    by_id: HashMap<String, usize>,
    /// The latest incident of each fingerprint (the only one events can still join).
    #[serde(with = "crate::model::pairs")]
    current: HashMap<Fingerprint, usize>,
    /// Ids already taken, to disambiguate the rare sanitised-id collision deterministically.
    taken_ids: HashSet<String>,
    /// Clears that matched no live incident.
    orphan_clears: u64,
}

impl IncidentEngine {
    /// An engine with no incidents.
    pub fn new(rules: IncidentRules) -> Self {
        IncidentEngine {
            rules,
            incidents: Vec::new(),
            by_id: HashMap::new(),
            current: HashMap::new(),
            taken_ids: HashSet::new(),
            orphan_clears: 0,
        }
    }

    /// The rules the engine runs with.
    pub fn rules(&self) -> &IncidentRules {
        &self.rules
    }

    /// Applies one event. Events must come in [`OrderKey`](crate::model::OrderKey) order. Reading summaries are ignored.
    pub fn apply(&mut self, ev: &StoredEvent) -> Vec<IncidentChange> {
        let Some(mut c) = classify(&ev.payload) else {
            return Vec::new();
        };
        let ts = ev.payload.ts();
        let quiet = self.rules.quiet_period;
        let entry = c.take_entry(ev);
        let live = self
            .current
            .get(&c.fingerprint)
            .copied()
            .filter(|&i| self.incidents[i].is_live_at(ts, quiet));
        let since_before = live.and_then(|i| self.incidents[i].raised_since);
        let fingerprint = c.fingerprint.clone();
        let mut changes = Vec::new();
        match (c.state, live) {
            (EventState::Raised, Some(i)) => {
                let state = &mut self.incidents[i];
                if state.active.is_empty() {
                    state.raised_since = Some(ts);
                }
                state.active.insert(c.source);
                state.last_clear = None;
                state.incident.timeline.push(entry);
                state.incident.last_event_at = ts;
                changes.push(IncidentChange::Updated {
                    id: state.incident.id.clone(),
                });
                if c.severity > state.incident.severity {
                    state.incident.severity = c.severity;
                    state.note_change(ts, format!("escalated to {}", c.severity.as_str()));
                    changes.push(IncidentChange::Escalated {
                        id: state.incident.id.clone(),
                        fingerprint: c.fingerprint,
                        at: ts,
                        severity: c.severity,
                    });
                }
            }
            (EventState::Raised, None) => {
                if let Some(&previous) = self.current.get(&c.fingerprint) {
                    let state = &mut self.incidents[previous];
                    let resolved_at = state.resolves_at(quiet);
                    if let (Some(resolved_at), None) = (resolved_at, state.closed_at) {
                        state.closed_at = Some(resolved_at);
                        state.note_change(resolved_at, "resolved (quiet period over)".to_string());
                        changes.push(IncidentChange::Closed {
                            id: state.incident.id.clone(),
                            resolved_at,
                        });
                    }
                }
                let id = self.new_id(&c.fingerprint, ts);
                let incident = Incident {
                    id: id.clone(),
                    fingerprint: c.fingerprint.clone(),
                    status: IncidentStatus::Open,
                    severity: c.severity,
                    opened_at: ts,
                    resolved_at: None,
                    last_event_at: ts,
                    active_sources: Vec::new(),
                    timeline: vec![entry],
                    stored_timeline: None,
                    problem: None,
                    acknowledged: None,
                    resolved_by_hand: None,
                    actions: Vec::new(),
                    state_changes: Vec::new(),
                    workaround: None,
                    probable_cause: None,
                    chronicle: Vec::new(),
                };
                let index = self.incidents.len();
                let mut state = IncidentState {
                    incident,
                    active: BTreeSet::from([c.source]),
                    last_clear: None,
                    closed_at: None,
                    raised_since: Some(ts),
                    sustained: false,
                };
                state.note_change(ts, format!("opened ({})", c.severity.as_str()));
                self.incidents.push(state);
                self.by_id.insert(id.clone(), index);
                self.current.insert(c.fingerprint.clone(), index);
                changes.push(IncidentChange::Opened {
                    id,
                    fingerprint: c.fingerprint,
                    opened_at: ts,
                    severity: c.severity,
                });
            }
            (EventState::Cleared, Some(i)) => {
                let state = &mut self.incidents[i];
                let was_raised = state.active.remove(&c.source);
                state.incident.timeline.push(entry);
                state.incident.last_event_at = ts;
                changes.push(IncidentChange::Updated {
                    id: state.incident.id.clone(),
                });
                if was_raised && state.active.is_empty() {
                    state.last_clear = Some(ts);
                    state.raised_since = None;
                    state.note_change(
                        ts,
                        format!(
                            "all sources clear; resolves at {} unless raised again",
                            ts.plus(quiet).to_rfc3339()
                        ),
                    );
                    changes.push(IncidentChange::AllClear {
                        id: state.incident.id.clone(),
                        at: ts,
                        resolves_at: ts.plus(quiet),
                    });
                }
            }
            (EventState::Cleared, None) => {
                self.orphan_clears += 1;
            }
        }
        if let Some(i) = live.or_else(|| self.current.get(&fingerprint).copied()) {
            // A clear that ends a long excursion shows its length too.
            let since = self.incidents[i].raised_since.or(since_before);
            self.check_sustained(i, since, ts, &mut changes);
        }
        changes
    }

    /// Reports [`IncidentChange::Sustained`] once, when the incident at `index` has had raised
    /// sources without interruption for `sustained_after` as of event time `ts`.
    fn check_sustained(
        &mut self,
        index: usize,
        since: Option<Timestamp>,
        ts: Timestamp,
        changes: &mut Vec<IncidentChange>,
    ) {
        let (Some(after), Some(since)) = (self.rules.sustained_after, since) else {
            return;
        };
        let state = &mut self.incidents[index];
        if state.sustained || state.closed_at.is_some() || ts < since.plus(after) {
            return;
        }
        state.sustained = true;
        state.note_change(
            ts,
            format!(
                "raised for {} without interruption (since {})",
                humantime::format_duration(ts.since(since)),
                since.to_rfc3339()
            ),
        );
        changes.push(IncidentChange::Sustained {
            id: state.incident.id.clone(),
            fingerprint: state.incident.fingerprint.clone(),
            at: ts,
            raised_since: since,
        });
    }

    /// Applies an operator action about an incident at its time `action.at`. Actions must come
    /// in event-time order with the events (see [`crate::analysis::Analysis`]).
    pub fn apply_action(
        &mut self,
        action: &OperatorAction,
    ) -> Result<Vec<IncidentChange>, ActionError> {
        let id = action
            .kind
            .incident()
            .ok_or(ActionError::NotAnIncidentAction)?;
        let &index = self
            .by_id
            .get(id)
            .ok_or_else(|| ActionError::UnknownIncident(id.to_string()))?;
        let quiet = self.rules.quiet_period;
        let state = &mut self.incidents[index];
        let record = ActionRecord::from(action);
        let mut changes = Vec::new();
        match &action.kind {
            ActionKind::Acknowledge { .. } if state.incident.acknowledged.is_none() => {
                state.incident.acknowledged = Some(record.clone());
            }
            ActionKind::ResolveIncident { .. } => {
                let resolved = state
                    .closed_at
                    .or_else(|| state.resolves_at(quiet).filter(|&r| r <= action.at));
                if let Some(resolved_at) = resolved {
                    return Err(ActionError::AlreadyResolved {
                        id: id.to_string(),
                        resolved_at,
                    });
                }
                state.closed_at = Some(action.at);
                state.incident.resolved_by_hand = Some(record.clone());
                changes.push(IncidentChange::Closed {
                    id: id.to_string(),
                    resolved_at: action.at,
                });
            }
            ActionKind::MarkSla { .. } => changes.push(IncidentChange::MarkedSla {
                id: id.to_string(),
                fingerprint: state.incident.fingerprint.clone(),
                at: action.at,
            }),
            _ => {}
        }
        state.incident.actions.push(record);
        Ok(changes)
    }

    /// Where the engine is now, to come back to with [`IncidentEngine::rollback`]. Costs the
    /// small fields of each incident, never its timeline: timelines, state changes and actions
    /// only grow, so going back truncates them.
    pub fn mark(&self) -> IncidentMark {
        IncidentMark {
            incidents: self
                .incidents
                .iter()
                .map(|s| IncidentFields {
                    active: s.active.clone(),
                    last_clear: s.last_clear,
                    closed_at: s.closed_at,
                    raised_since: s.raised_since,
                    sustained: s.sustained,
                    severity: s.incident.severity,
                    last_event_at: s.incident.last_event_at,
                    acknowledged: s.incident.acknowledged.clone(),
                    resolved_by_hand: s.incident.resolved_by_hand.clone(),
                    timeline: s.incident.event_count(),
                    state_changes: s.incident.state_changes.len(),
                    actions: s.incident.actions.len(),
                })
                .collect(),
            current: self.current.clone(),
            orphan_clears: self.orphan_clears,
        }
    }

    /// Goes back to `mark`. The engine must have got here from `mark` by applying events and
    /// actions (never by a rollback to an earlier mark in between); it is then exactly the
    /// engine that `mark` was taken of.
    pub fn rollback(&mut self, mark: &IncidentMark) {
        for state in self
            .incidents
            .drain(mark.incidents.len().min(self.incidents.len())..)
        {
            self.by_id.remove(&state.incident.id);
            self.taken_ids.remove(&state.incident.id);
        }
        for (state, fields) in self.incidents.iter_mut().zip(&mark.incidents) {
            state.active.clone_from(&fields.active);
            state.last_clear = fields.last_clear;
            state.closed_at = fields.closed_at;
            state.raised_since = fields.raised_since;
            state.sustained = fields.sustained;
            let incident = &mut state.incident;
            incident.severity = fields.severity;
            incident.last_event_at = fields.last_event_at;
            incident.acknowledged.clone_from(&fields.acknowledged);
            incident
                .resolved_by_hand
                .clone_from(&fields.resolved_by_hand);
            truncate_timeline(incident, fields.timeline);
            incident.state_changes.truncate(fields.state_changes);
            incident.actions.truncate(fields.actions);
        }
        self.current.clone_from(&mark.current);
        self.orphan_clears = mark.orphan_clears;
    }

    /// Fingerprint and opening time of every incident held that is not final before `until`
    /// (see [`IncidentEngine::forget_final_before`]).
    pub fn unfinal(&self, until: Timestamp) -> impl Iterator<Item = (&Fingerprint, Timestamp)> {
        let quiet = self.rules.quiet_period;
        self.incidents
            .iter()
            .filter(move |s| !s.is_final_before(until, quiet))
            .map(|s| (&s.incident.fingerprint, s.incident.opened_at))
    }

    /// Ids of the incidents held that are not final before `until`, with their fingerprints:
    /// the ones an input at `until` or later can still change.
    pub fn unfinal_ids(&self, until: Timestamp) -> impl Iterator<Item = (&str, &Fingerprint)> {
        let quiet = self.rules.quiet_period;
        self.incidents
            .iter()
            .filter(move |s| !s.is_final_before(until, quiet))
            .map(|s| (s.incident.id.as_str(), &s.incident.fingerprint))
    }

    /// Every incident held that is final before `until` and not `skip`ped (by id), as
    /// reported then.
    pub fn final_before(&self, until: Timestamp, skip: impl Fn(&str) -> bool) -> Vec<Incident> {
        let quiet = self.rules.quiet_period;
        self.incidents
            .iter()
            .filter(|s| !skip(&s.incident.id) && s.is_final_before(until, quiet))
            .map(|s| self.report(s, until))
            .collect()
    }

    /// Lets the timelines of the incidents final before `until` leave memory: each becomes a
    /// [`StoredTimeline`] head, read back from the store on demand. Nothing from `until` on
    /// can add to them; a rollback to a mark before an incident's last event shortens the
    /// head instead of the timeline ([`IncidentEngine::rollback`]). Returns how many entries
    /// left memory.
    pub fn store_timelines_final_before(&mut self, until: Timestamp) -> usize {
        let quiet = self.rules.quiet_period;
        let mut released = 0;
        for state in &mut self.incidents {
            if state.incident.timeline.is_empty() || !state.is_final_before(until, quiet) {
                continue;
            }
            released += state.incident.timeline.len();
            store_timeline(&mut state.incident);
        }
        released
    }

    /// True if the engine holds incident `id`.
    pub fn holds(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// Forgets every incident that was final before event time `until`: resolved before it
    /// (by the quiet period, a later incident or an operator) and with no event, state change
    /// or action at or after it, so no input from `until` on can touch it. `marks` (taken of
    /// this engine at inputs from `until` on) forget them too, so a rollback to one of them
    /// stays exact. Returns the forgotten incidents as reported at `until`.
    pub fn forget_final_before(
        &mut self,
        until: Timestamp,
        marks: &mut [&mut IncidentMark],
    ) -> Vec<Incident> {
        let quiet = self.rules.quiet_period;
        let drop: Vec<bool> = self
            .incidents
            .iter()
            .map(|s| s.is_final_before(until, quiet))
            .collect();
        if !drop.contains(&true) {
            return Vec::new();
        }
        // Old index → new index, for the kept ones.
        let mut remap = Vec::with_capacity(drop.len());
        let mut next = 0;
        for &d in &drop {
            remap.push((!d).then_some(next));
            next += usize::from(!d);
        }
        let mut forgotten = Vec::new();
        let states = std::mem::take(&mut self.incidents);
        for (state, d) in states.into_iter().zip(&drop) {
            if *d {
                self.by_id.remove(&state.incident.id);
                self.taken_ids.remove(&state.incident.id);
                forgotten.push(self.report(&state, until));
            } else {
                self.incidents.push(state);
            }
        }
        for (i, state) in self.incidents.iter().enumerate() {
            self.by_id.insert(state.incident.id.clone(), i);
        }
        let reindex = |current: &mut HashMap<Fingerprint, usize>| {
            current.retain(|_, i| match remap.get(*i).copied().flatten() {
                Some(n) => {
                    *i = n;
                    true
                }
                None => false,
            });
        };
        reindex(&mut self.current);
        for mark in marks.iter_mut() {
            let fields = std::mem::take(&mut mark.incidents);
            mark.incidents = fields
                .into_iter()
                .zip(&drop)
                .filter(|(_, d)| !**d)
                .map(|(f, _)| f)
                .collect();
            reindex(&mut mark.current);
        }
        forgotten
    }

    /// Number of clears that matched no live incident (recorded nowhere else).
    pub fn orphan_clears(&self) -> u64 {
        self.orphan_clears
    }

    /// Every incident as of event time `now` (the latest event time seen, or the wall clock),
    /// ordered by opening time then id.
    pub fn incidents(&self, now: Timestamp) -> Vec<Incident> {
        let mut all: Vec<Incident> = self.incidents.iter().map(|s| self.report(s, now)).collect();
        all.sort_by(|a, b| (a.opened_at, &a.id).cmp(&(b.opened_at, &b.id)));
        all
    }

    /// One incident as of event time `now`.
    pub fn incident(&self, id: &str, now: Timestamp) -> Option<Incident> {
        let &index = self.by_id.get(id)?;
        Some(self.report(&self.incidents[index], now))
    }

    /// The reported form of one incident at `now`.
    fn report(&self, state: &IncidentState, now: Timestamp) -> Incident {
        let mut incident = state.incident.clone();
        if let Some(r) = state.resolves_at(self.rules.quiet_period) {
            if state.closed_at.is_none() && now >= r {
                incident.state_changes.push(ActionRecord {
                    at: r,
                    actor: ENGINE_ACTOR.to_string(),
                    text: "resolved (quiet period over)".to_string(),
                });
            }
        }
        incident.active_sources = state.active.iter().cloned().collect();
        let resolved_at = state.closed_at.or_else(|| {
            state
                .resolves_at(self.rules.quiet_period)
                .filter(|&r| now >= r)
        });
        incident.status = if resolved_at.is_some() {
            IncidentStatus::Resolved
        } else {
            IncidentStatus::Open
        };
        incident.resolved_at = resolved_at;
        incident
    }

    /// The content-derived id of an incident of `fingerprint` opened at `opened_at`. If two
    /// fingerprints sanitise to the same id at the same millisecond, the later one (in
    /// [`OrderKey`](crate::model::OrderKey) order, hence deterministically) gets a hash suffix.
    fn new_id(&mut self, fingerprint: &Fingerprint, opened_at: Timestamp) -> String {
        let mut id = content_id("inc", fingerprint, opened_at);
        if self.taken_ids.contains(&id) {
            id = format!("{id}-{:08x}", fnv1a32(&fingerprint.to_string()));
        }
        self.taken_ids.insert(id.clone());
        id
    }
}

/// Moves the whole timeline held of `incident` into its stored head.
fn store_timeline(incident: &mut Incident) {
    let timeline = std::mem::take(&mut incident.timeline);
    let Some(first) = timeline.first() else {
        return;
    };
    let stored = incident
        .stored_timeline
        .get_or_insert_with(|| StoredTimeline {
            ts: first.ts,
            agent: first.agent.clone(),
            seq: first.seq,
            events: 0,
            words: BTreeSet::new(),
        });
    stored.events += timeline.len();
    for entry in &timeline {
        for word in text_words(&entry.text) {
            if !word.is_empty() && word.parse::<f64>().is_err() && !stored.words.contains(word) {
                stored.words.insert(word.to_string());
            }
        }
    }
}

/// Shortens `incident`'s timeline to its first `len` entries, the stored head included: a
/// head longer than that keeps only `len` (its events are still the first ones stored).
fn truncate_timeline(incident: &mut Incident, len: usize) {
    match &mut incident.stored_timeline {
        Some(stored) if stored.events >= len => {
            stored.events = len;
            incident.timeline.clear();
            if len == 0 {
                incident.stored_timeline = None;
            }
        }
        Some(stored) => incident.timeline.truncate(len - stored.events),
        None => incident.timeline.truncate(len),
    }
}

/// The fingerprint (incident stream) an event belongs to; `None` for reading summaries and
/// forecasts, which open no incident.
pub fn fingerprint_of(payload: &Payload) -> Option<Fingerprint> {
    classify(payload).map(|c| c.fingerprint)
}

fn classify(payload: &Payload) -> Option<Classified> {
    match payload {
        // A forecast is a warning about the future, not a condition: no incident, no page
        // (it shows in the zone report, `crate::report::forecasts`).
        Payload::SensorEvent(e) if e.is_forecast() => None,
        Payload::SensorEvent(e) => Some(classify_sensor(e)),
        Payload::ZoneEvent(e) => Some(classify_zone(e)),
        Payload::DeviceEvent(e) => Some(classify_device(e)),
        Payload::ReadingSummary(_) => None,
    }
}

fn classify_sensor(e: &SensorEvent) -> Classified {
    let unit = e.kind.unit();
    let value = if unit.is_empty() {
        format!("{:.1}", e.value)
    } else {
        format!("{:.1} {unit}", e.value)
    };
    let text = match (e.state, e.limit) {
        (EventState::Raised, Some(limit)) => {
            let op = if e.value > limit {
                ">"
            } else if e.value < limit {
                "<"
            } else {
                "="
            };
            format!(
                "{} {} raised by {} ({}): {value} {op} {limit:.1}",
                e.kind.as_str(),
                e.sensor,
                e.detector,
                e.severity.as_str()
            )
        }
        (EventState::Raised, None) => format!(
            "{} {} raised by {} ({}): {value}",
            e.kind.as_str(),
            e.sensor,
            e.detector,
            e.severity.as_str()
        ),
        (EventState::Cleared, Some(limit)) => format!(
            "{} {} cleared by {}: {value} (limit {limit:.1})",
            e.kind.as_str(),
            e.sensor,
            e.detector
        ),
        (EventState::Cleared, None) => format!(
            "{} {} cleared by {}: {value}",
            e.kind.as_str(),
            e.sensor,
            e.detector
        ),
    };
    Classified {
        fingerprint: Fingerprint {
            site: e.location.site.clone(),
            zone: e.location.zone.clone(),
            category: e.category,
        },
        source: format!("sensor:{}:{}", e.sensor, e.detector),
        state: e.state,
        severity: e.severity,
        kind: TimelineKind::SensorEvent,
        text,
    }
}

fn classify_zone(e: &ZoneEvent) -> Classified {
    let state = match e.state {
        EventState::Raised => format!("raised ({})", e.severity.as_str()),
        EventState::Cleared => "cleared".to_string(),
    };
    let mut text = format!("zone {} {} {state}", e.zone, e.category);
    if !e.evidence.is_empty() {
        let n = e.evidence.len();
        let noun = if n == 1 { "sensor" } else { "sensors" };
        let list: Vec<String> = e
            .evidence
            .iter()
            .map(|ev| format!("{} {:.1}", ev.sensor, ev.value))
            .collect();
        text.push_str(&format!(": {n} {noun} ({})", list.join(", ")));
    }
    Classified {
        fingerprint: Fingerprint {
            site: e.site.clone(),
            zone: e.zone.clone(),
            category: e.category,
        },
        source: "zone".to_string(),
        state: e.state,
        severity: e.severity,
        kind: TimelineKind::ZoneEvent,
        text,
    }
}

fn classify_device(e: &DeviceEvent) -> Classified {
    let text = match e.state {
        EventState::Raised if e.reason.is_empty() => format!("device {} unreachable", e.device),
        EventState::Raised => format!("device {} unreachable: {}", e.device, e.reason),
        EventState::Cleared => format!("device {} answering again", e.device),
    };
    Classified {
        fingerprint: Fingerprint {
            site: e.location.site.clone(),
            zone: e.location.zone.clone(),
            category: Category::Device,
        },
        source: format!("device:{}", e.device),
        state: e.state,
        severity: DEVICE_EVENT_SEVERITY,
        kind: TimelineKind::DeviceEvent,
        text,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::too_many_arguments)]
pub(crate) mod tests {
    use super::*;
    use coldaisle_core::{Evidence, Location, SensorKind};

    /// 2025-11-25T12:00:00Z.
    pub const T0: i64 = 1_764_072_000_000;
    pub const MIN: i64 = 60_000;

    pub fn loc(zone: &str, rack: &str) -> Location {
        Location {
            site: "dc1".into(),
            zone: zone.into(),
            row: None,
            rack: Some(rack.into()),
        }
    }

    /// A threshold event on an inlet sensor.
    pub fn sensor(
        agent: &str,
        seq: u64,
        zone: &str,
        sensor: &str,
        state: EventState,
        severity: Severity,
        value: f64,
        ts: i64,
    ) -> StoredEvent {
        StoredEvent {
            agent: agent.into(),
            seq,
            payload: Payload::SensorEvent(SensorEvent {
                sensor: sensor.into(),
                kind: SensorKind::InletTemp,
                location: loc(zone, "R1"),
                category: Category::Thermal,
                detector: "threshold".into(),
                state,
                severity,
                value,
                limit: Some(27.0),
                first_ts: Timestamp(ts),
                ts: Timestamp(ts),
                expected_crossing: None,
            }),
        }
    }

    pub fn zone(
        agent: &str,
        seq: u64,
        zone: &str,
        state: EventState,
        severity: Severity,
        sensors: &[&str],
        ts: i64,
    ) -> StoredEvent {
        StoredEvent {
            agent: agent.into(),
            seq,
            payload: Payload::ZoneEvent(ZoneEvent {
                site: "dc1".into(),
                zone: zone.into(),
                category: Category::Thermal,
                state,
                severity,
                evidence: sensors
                    .iter()
                    .map(|s| Evidence {
                        sensor: (*s).into(),
                        rack: None,
                        value: 29.1,
                        ts: Timestamp(ts),
                    })
                    .collect(),
                ts: Timestamp(ts),
            }),
        }
    }

    pub fn device(
        agent: &str,
        seq: u64,
        zone: &str,
        device: &str,
        state: EventState,
        ts: i64,
    ) -> StoredEvent {
        StoredEvent {
            agent: agent.into(),
            seq,
            payload: Payload::DeviceEvent(DeviceEvent {
                device: device.into(),
                location: loc(zone, "R1"),
                state,
                reason: if state == EventState::Raised {
                    "timeout".into()
                } else {
                    String::new()
                },
                ts: Timestamp(ts),
            }),
        }
    }

    use EventState::{Cleared, Raised};
    use Severity::{Critical, Warning};

    fn engine() -> IncidentEngine {
        IncidentEngine::new(IncidentRules {
            quiet_period: Duration::from_secs(15 * 60),
            sustained_after: None,
        })
    }

    fn apply_all(engine: &mut IncidentEngine, events: &[StoredEvent]) -> Vec<IncidentChange> {
        events.iter().flat_map(|e| engine.apply(e)).collect()
    }

    #[test]
    fn raise_opens_with_content_id_and_clear_resolves_after_quiet_period() {
        let mut e = engine();
        let changes = e.apply(&sensor(
            "a1", 1, "Z1", "r1-inlet", Raised, Warning, 29.1, T0,
        ));
        let id = format!("inc-dc1-z1-thermal-{T0}");
        assert_eq!(
            changes,
            vec![IncidentChange::Opened {
                id: id.clone(),
                fingerprint: Fingerprint {
                    site: "dc1".into(),
                    zone: "Z1".into(),
                    category: Category::Thermal
                },
                opened_at: Timestamp(T0),
                severity: Warning,
            }]
        );
        let clear_at = T0 + 5 * MIN;
        let changes = e.apply(&sensor(
            "a1", 2, "Z1", "r1-inlet", Cleared, Warning, 26.0, clear_at,
        ));
        assert!(changes.contains(&IncidentChange::AllClear {
            id: id.clone(),
            at: Timestamp(clear_at),
            resolves_at: Timestamp(clear_at + 15 * MIN),
        }));

        let during_quiet = e.incident(&id, Timestamp(clear_at + 15 * MIN - 1)).unwrap();
        assert_eq!(during_quiet.status, IncidentStatus::Open);
        assert_eq!(during_quiet.resolved_at, None);
        assert!(during_quiet.active_sources.is_empty());

        let after = e.incident(&id, Timestamp(clear_at + 15 * MIN)).unwrap();
        assert_eq!(after.status, IncidentStatus::Resolved);
        assert_eq!(after.resolved_at, Some(Timestamp(clear_at + 15 * MIN)));
        assert!(after.active_sources.is_empty());
        assert_eq!(after.timeline.len(), 2);
        assert_eq!(after.last_event_at, Timestamp(clear_at));
        assert_eq!(
            after.timeline[0].text,
            "inlet_temp r1-inlet raised by threshold (warning): 29.1 °C > 27.0"
        );
    }

    #[test]
    fn raise_within_quiet_period_joins_and_after_it_opens_new() {
        let mut e = engine();
        let clear_at = T0 + MIN;
        apply_all(
            &mut e,
            &[
                sensor("a1", 1, "Z1", "r1-inlet", Raised, Warning, 29.1, T0),
                sensor("a1", 2, "Z1", "r1-inlet", Cleared, Warning, 26.0, clear_at),
                // Within the quiet period: joins.
                sensor(
                    "a1",
                    3,
                    "Z1",
                    "r2-inlet",
                    Raised,
                    Warning,
                    28.0,
                    clear_at + 10 * MIN,
                ),
                sensor(
                    "a1",
                    4,
                    "Z1",
                    "r2-inlet",
                    Cleared,
                    Warning,
                    26.0,
                    clear_at + 11 * MIN,
                ),
            ],
        );
        assert_eq!(e.incidents(Timestamp(clear_at + 11 * MIN)).len(), 1);
        let last_clear = clear_at + 11 * MIN;
        // Exactly at the end of the quiet period: a new incident (the interval is half-open).
        let reopen_at = last_clear + 15 * MIN;
        let changes = e.apply(&sensor(
            "a1", 5, "Z1", "r1-inlet", Raised, Warning, 29.0, reopen_at,
        ));
        let first = format!("inc-dc1-z1-thermal-{T0}");
        let second = format!("inc-dc1-z1-thermal-{reopen_at}");
        assert_eq!(
            changes[0],
            IncidentChange::Closed {
                id: first.clone(),
                resolved_at: Timestamp(reopen_at)
            }
        );
        assert!(matches!(&changes[1], IncidentChange::Opened { id, .. } if *id == second));
        let all = e.incidents(Timestamp(reopen_at));
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].id, first);
        assert_eq!(all[0].status, IncidentStatus::Resolved);
        assert_eq!(all[0].resolved_at, Some(Timestamp(reopen_at)));
        assert_eq!(all[0].timeline.len(), 4);
        assert_eq!(all[1].id, second);
        assert_eq!(all[1].status, IncidentStatus::Open);
        assert_eq!(all[1].active_sources, vec!["sensor:r1-inlet:threshold"]);
    }

    #[test]
    fn severity_is_max_of_raises_and_escalation_is_reported() {
        let mut e = engine();
        let changes = apply_all(
            &mut e,
            &[
                sensor("a1", 1, "Z1", "r1-inlet", Raised, Warning, 28.0, T0),
                sensor("a1", 2, "Z1", "r2-inlet", Raised, Critical, 33.0, T0 + MIN),
                sensor(
                    "a1",
                    3,
                    "Z1",
                    "r2-inlet",
                    Cleared,
                    Critical,
                    26.0,
                    T0 + 2 * MIN,
                ),
                sensor(
                    "a1",
                    4,
                    "Z1",
                    "r3-inlet",
                    Raised,
                    Warning,
                    28.0,
                    T0 + 3 * MIN,
                ),
            ],
        );
        assert_eq!(
            changes
                .iter()
                .filter(|c| matches!(c, IncidentChange::Escalated { .. }))
                .count(),
            1
        );
        let all = e.incidents(Timestamp(T0 + 3 * MIN));
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].severity, Critical);
        assert_eq!(
            all[0].active_sources,
            vec!["sensor:r1-inlet:threshold", "sensor:r3-inlet:threshold"]
        );
    }

    #[test]
    fn timeline_has_every_event_of_every_kind_and_fingerprints_are_separate() {
        let mut e = engine();
        let events = [
            sensor("a1", 1, "Z1", "r1-inlet", Raised, Warning, 29.1, T0),
            sensor("a1", 2, "Z1", "r2-inlet", Raised, Warning, 29.1, T0 + 1),
            zone(
                "a1",
                3,
                "Z1",
                Raised,
                Warning,
                &["r1-inlet", "r2-inlet"],
                T0 + 2,
            ),
            device("a1", 4, "Z1", "pdu-1", Raised, T0 + 3),
            sensor("a1", 5, "Z1", "r1-inlet", Cleared, Warning, 26.0, T0 + 4),
            zone("a1", 6, "Z1", Cleared, Warning, &["r2-inlet"], T0 + 5),
            sensor("a1", 7, "Z1", "r2-inlet", Cleared, Warning, 26.0, T0 + 6),
            device("a1", 8, "Z1", "pdu-1", Cleared, T0 + 7),
        ];
        apply_all(&mut e, &events);
        let all = e.incidents(Timestamp(T0 + 7));
        assert_eq!(all.len(), 2);
        let thermal = &all[0];
        assert_eq!(thermal.fingerprint.category, Category::Thermal);
        assert_eq!(
            thermal.timeline.iter().map(|t| t.seq).collect::<Vec<_>>(),
            vec![1, 2, 3, 5, 6, 7]
        );
        assert_eq!(
            thermal.timeline[2].text,
            "zone Z1 thermal raised (warning): 2 sensors (r1-inlet 29.1, r2-inlet 29.1)"
        );
        assert_eq!(thermal.timeline[2].kind, TimelineKind::ZoneEvent);
        let dev = &all[1];
        assert_eq!(dev.fingerprint.category, Category::Device);
        assert_eq!(dev.id, format!("inc-dc1-z1-device-{}", T0 + 3));
        assert_eq!(dev.timeline.len(), 2);
        assert_eq!(dev.timeline[0].text, "device pdu-1 unreachable: timeout");
        assert_eq!(dev.timeline[1].text, "device pdu-1 answering again");
        assert_eq!(dev.severity, DEVICE_EVENT_SEVERITY);
        // Resolved once the quiet period after the last clear has elapsed.
        let later = e.incidents(Timestamp(T0 + 7 + 15 * MIN));
        assert!(later.iter().all(|i| i.status == IncidentStatus::Resolved));
        assert_eq!(later[0].resolved_at, Some(Timestamp(T0 + 6 + 15 * MIN)));
    }

    #[test]
    fn clearing_an_unraised_source_only_adds_to_timeline() {
        let mut e = engine();
        apply_all(
            &mut e,
            &[
                sensor("a1", 1, "Z1", "r1-inlet", Raised, Warning, 29.1, T0),
                sensor("a1", 2, "Z1", "r1-inlet", Cleared, Warning, 26.0, T0 + MIN),
                // After the all-clear, within the quiet period: a stray zone clear.
                zone("a1", 3, "Z1", Cleared, Warning, &[], T0 + 5 * MIN),
            ],
        );
        let inc = &e.incidents(Timestamp(T0 + 16 * MIN))[0];
        assert_eq!(inc.timeline.len(), 3);
        assert_eq!(inc.timeline[2].text, "zone Z1 thermal cleared");
        // The stray clear does not move the resolution time.
        assert_eq!(inc.status, IncidentStatus::Resolved);
        assert_eq!(inc.resolved_at, Some(Timestamp(T0 + 16 * MIN)));
        assert_eq!(e.orphan_clears(), 0);
    }

    #[test]
    fn orphan_clears_are_counted_not_recorded() {
        let mut e = engine();
        assert!(e
            .apply(&sensor(
                "a1", 1, "Z1", "r1-inlet", Cleared, Warning, 26.0, T0
            ))
            .is_empty());
        apply_all(
            &mut e,
            &[
                sensor("a1", 2, "Z1", "r1-inlet", Raised, Warning, 29.1, T0 + MIN),
                sensor(
                    "a1",
                    3,
                    "Z1",
                    "r1-inlet",
                    Cleared,
                    Warning,
                    26.0,
                    T0 + 2 * MIN,
                ),
                // After the quiet period: the incident is resolved, nothing to attach to.
                sensor(
                    "a1",
                    4,
                    "Z1",
                    "r1-inlet",
                    Cleared,
                    Warning,
                    26.0,
                    T0 + 30 * MIN,
                ),
            ],
        );
        assert_eq!(e.orphan_clears(), 2);
        let all = e.incidents(Timestamp(T0 + 30 * MIN));
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].timeline.len(), 2);
        assert_eq!(all[0].last_event_at, Timestamp(T0 + 2 * MIN));
    }

    #[test]
    fn summaries_are_ignored() {
        let mut e = engine();
        let ev = StoredEvent {
            agent: "a1".into(),
            seq: 1,
            payload: Payload::ReadingSummary(coldaisle_core::ReadingSummary {
                sensor: "r1-inlet".into(),
                kind: SensorKind::InletTemp,
                location: loc("Z1", "R1"),
                from: Timestamp(T0),
                to: Timestamp(T0 + MIN),
                count: 1,
                min: 30.0,
                max: 30.0,
                sum: 30.0,
                last: 30.0,
            }),
        };
        assert!(e.apply(&ev).is_empty());
        assert!(e.incidents(Timestamp(T0)).is_empty());
    }

    #[test]
    fn ids_are_sanitised_and_collisions_disambiguated() {
        let fp = |site: &str, zone: &str| Fingerprint {
            site: site.into(),
            zone: zone.into(),
            category: Category::Thermal,
        };
        assert_eq!(
            content_id("inc", &fp("DC 1", "Hall_A/Z1"), Timestamp(5)),
            "inc-dc-1-hall-a-z1-thermal-5"
        );
        let mut e = engine();
        let a = e.new_id(&fp("dc-1", "z1"), Timestamp(5));
        let b = e.new_id(&fp("dc", "1-z1"), Timestamp(5));
        assert_eq!(a, "inc-dc-1-z1-thermal-5");
        assert_ne!(a, b);
        assert!(b.starts_with("inc-dc-1-z1-thermal-5-"));
    }

    #[test]
    fn rules_round_trip_as_humantime() {
        let rules = IncidentRules::default();
        let json = serde_json::to_string(&rules).unwrap();
        assert_eq!(json, r#"{"quiet_period":"15m"}"#);
        assert_eq!(serde_json::from_str::<IncidentRules>(&json).unwrap(), rules);
    }
}
