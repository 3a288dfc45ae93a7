//! Forgetting what is past the horizon ([`super::horizon`]): moves the analysis's floor,
//! forgets each scope's inputs and final incidents before it, keeps compact summaries of the
//! incidents that problems count, and the density evidence that problems still read.
//!
//! Invariants (besides the horizon's):
//! - An incident is summarised ([`ArchivedIncident`]) once it is final before the floor: no
//!   input the analysis still accepts can join it or add to its zone's evidence, so its
//!   summary equals what a full rebuild would compute. An event its scope forgot stays held as
//!   *evidence* while a held incident of its zone that is not final before the floor opened
//!   less than [`COOLING_LEAD`] after it, so such an incident's own and zone events are all
//!   held and its cause is computed from them on read (and they are still held when it becomes
//!   final and gets its summary).
//! - A summary whose incident is no longer held keeps its cause's text only if it is the first
//!   summary of its cause's kind in its problem's incident list (what the problem's probable
//!   cause can quote); the others keep the kind (what the problem's cause counts). The
//!   problem's cause is therefore the same as from full summaries.
//! - Once a problem's tally counts a summary (`crate::problems::ProblemEngine::fold_final`,
//!   after the scopes moved their floors), the problem no longer reads it: it is forgotten
//!   like an uncounted one, so the summaries held do not grow while a problem stays open.
//!   A tally counts only summaries of incidents their scope no longer holds (final before
//!   its floor, `Shard::fold_final`): with a hot span, a held incident's summary can still be
//!   dropped and recomputed by a deep replay ([`super::hot`]), a counted one never is.
//! - Idempotence without the old keys: the `(agent, seq)` of a forgotten event is forgotten
//!   too. A second copy of it carries the same event time, before the floor, so it is refused
//!   as too late and changes nothing; the store, which keys records by `(agent, seq)`, never
//!   hands a stored record to the analysis twice anyway.

use super::Analysis;
use crate::cause::{ProbableCause, COOLING_LEAD};
use crate::incidents::Incident;
use crate::model::{OrderKey, StoredEvent};
use crate::recurrence::{IncidentPoint, RackPeak};
use coldaisle_core::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;

/// What the analysis keeps of an incident final before the floor: what the reports read from
/// its events, computed while they were all held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct ArchivedIncident {
    /// When it opened (the problem window counts it from here).
    pub opened_at: Timestamp,
    /// Its probable cause.
    pub cause: ProbableCause,
    /// Its racks with their peaks, for its problem's recurrence signature.
    pub racks: Vec<(String, f64)>,
}

impl ArchivedIncident {
    /// Drops its cause's text, keeping its kind (see `Analysis::slim_counted_summaries`).
    fn slim(&mut self) {
        self.cause.summary = String::new();
        self.cause.evidence = Vec::new();
    }

    /// True if its cause's text was dropped (or was empty).
    pub(super) fn is_slim(&self) -> bool {
        self.cause.summary.is_empty() && self.cause.evidence.is_empty()
    }

    /// The incident as its problem's tally counts it (`crate::problems::ProblemTally`).
    fn counted(&self) -> crate::problems::CountedIncident {
        crate::problems::CountedIncident {
            opened_at: self.opened_at,
            cause: self.cause.clone(),
            point: self.point(),
        }
    }

    /// The incident as the recurrence signature reads it.
    pub fn point(&self) -> IncidentPoint {
        IncidentPoint {
            opened_at: self.opened_at,
            racks: self
                .racks
                .iter()
                .map(|(rack, peak)| RackPeak {
                    rack: rack.clone(),
                    peak: *peak,
                })
                .collect(),
        }
    }
}

/// What one prune forgot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Events dropped from memory.
    pub events: usize,
    /// Incidents forgotten by their engines (kept as summaries while a problem needs them).
    pub incidents: usize,
}

impl Analysis {
    /// Forgets what is past the horizon as of event time `now` (the latest event time held,
    /// normally): see [`super::horizon`] for what stays. Does nothing while loading in bulk.
    /// Runs by itself every [`super::horizon::prune_every`] of event time; callers may run it
    /// any time (before a checkpoint, say).
    pub fn prune(&mut self, now: Timestamp) -> Pruned {
        if self.bulk.is_some() {
            return Pruned::default();
        }
        let floor = self.floor.map_or(now.minus(self.horizon), |old| {
            old.max(now.minus(self.horizon))
        });
        self.archive_final_before(floor);
        let mut pruned = Pruned::default();
        for shard in self.shards.values_mut() {
            if let Some(p) = shard.prune(floor) {
                pruned.incidents += p.incidents.len();
                self.evidence.extend(
                    p.inputs
                        .into_iter()
                        .filter(|(_, kind, _, _)| *kind == 0)
                        .map(|(ts, _, agent, seq)| (ts, agent, seq)),
                );
            }
        }
        let archive = &self.archive;
        for shard in self.shards.values_mut() {
            shard.fold_final(|id| archive.get(id).map(ArchivedIncident::counted));
        }
        let pin_at = self.hot_floor.map_or(floor, |hot| hot.max(floor));
        pruned.events += self.sweep_evidence(pin_at, Some(floor));
        self.forget_unneeded_summaries(floor);
        super::hot::forget_cold_counts_before(&mut self.cold_counts, floor);
        self.slim_counted_summaries();
        self.floor = Some(floor);
        pruned
    }

    /// Runs [`Analysis::prune`] if the latest event time has passed the next prune time, which
    /// is on the grid the scopes' sparse checkpoints share ([`super::horizon::next_prune`]).
    pub(super) fn prune_if_due(&mut self) {
        if self.bulk.is_some() {
            return;
        }
        let Some(latest) = self.latest_event_time() else {
            return;
        };
        if self.next_prune.is_some_and(|next| latest < next) {
            return;
        }
        self.prune(latest);
        self.next_prune = Some(super::horizon::next_prune(latest, self.horizon));
    }

    /// Per `(site, zone)`: [`COOLING_LEAD`] before the opening of its oldest held incident
    /// that is not final before the floor (its cause is computed from its zone's events on
    /// read). Incidents final before the floor have their summary, so they need nothing.
    fn zone_pins(&self, floor: Timestamp) -> BTreeMap<(String, String), Timestamp> {
        let mut pins: BTreeMap<(String, String), Timestamp> = BTreeMap::new();
        for shard in self.shards.values() {
            for (fp, opened) in shard.incidents.unfinal(floor) {
                let pin = opened.minus(COOLING_LEAD);
                pins.entry((fp.site.clone(), fp.zone.clone()))
                    .and_modify(|p| *p = (*p).min(pin))
                    .or_insert(pin);
            }
        }
        pins
    }

    /// Summarises every held incident final before `floor` that has no summary yet, while all
    /// the events it reads are held.
    pub(super) fn archive_final_before(&mut self, floor: Timestamp) {
        let newly: Vec<Incident> = self
            .shards
            .values()
            .flat_map(|s| {
                s.incidents
                    .final_before(floor, |id| self.archive.contains_key(id))
            })
            .collect();
        for incident in newly {
            let summary = ArchivedIncident {
                opened_at: incident.opened_at,
                cause: self.cause_from_events(&incident),
                racks: self
                    .point_from_events(&incident)
                    .racks
                    .into_iter()
                    .map(|r| (r.rack, r.peak))
                    .collect(),
            };
            self.archive.insert(incident.id, summary);
        }
    }

    /// Drops the events forgotten by their scopes that no held incident or problem reads any
    /// more: zone evidence older than its zone's pin ([`Analysis::zone_pins`] as of `pin_at`:
    /// the floor, or the hot floor when it is later), density evidence older than
    /// `density_lookback` before `density_floor` (the horizon floor; `None` keeps it all) and
    /// outside every problem's look-back. Returns how many events it dropped.
    pub(super) fn sweep_evidence(
        &mut self,
        pin_at: Timestamp,
        density_floor: Option<Timestamp>,
    ) -> usize {
        let pins = self.zone_pins(pin_at);
        let lookback = self.problem_rules.density_lookback;
        let keep_from = density_floor.map_or(Timestamp(i64::MIN), |f| f.minus(lookback));
        let windows: Vec<(Timestamp, Timestamp)> = self
            .shards
            .values()
            .flat_map(|s| s.problems.problems())
            .map(|p| (p.opened_at.minus(lookback), p.opened_at))
            .collect();
        let (events, seen, by_zone) = (&mut self.events, &mut self.seen, &mut self.by_zone);
        let (cold_counts, floor) = (&mut self.cold_counts, self.floor);
        let before = self.evidence.len();
        self.evidence.retain(|key| {
            let Some(ev) = events.get(key) else {
                return false;
            };
            let ts = key.0;
            let zone = super::place_of(&ev.payload)
                .and_then(|(site, zone)| pins.get(&(site.to_string(), zone.to_string())))
                .is_some_and(|pin| ts >= *pin);
            let density = crate::cause::is_density_evidence(ev)
                && (ts >= keep_from || windows.iter().any(|(a, b)| *a <= ts && ts <= *b));
            if !(zone || density) {
                if let Some(ev) = events.remove(key) {
                    by_zone.remove(key, &ev);
                    seen.remove(&(ev.agent, ev.seq));
                    if floor.is_none_or(|f| ts >= f) {
                        super::hot::count_cold(cold_counts, ts);
                    }
                }
            }
            zone || density
        });
        before - self.evidence.len()
    }

    /// Drops the summaries of incidents no longer held that no problem counts one by one
    /// (a problem's tally counts the head of its list) and none can count any more (opened a
    /// whole problem window before the floor).
    fn forget_unneeded_summaries(&mut self, floor: Timestamp) {
        let counted: HashSet<&str> = self
            .shards
            .values()
            .flat_map(|s| s.problems.unfolded_incidents())
            .filter_map(|id| self.archive.get_key_value(id).map(|(k, _)| k.as_str()))
            .collect();
        let window_start = floor.minus(self.problem_rules.window);
        let drop: Vec<String> = self
            .archive
            .iter()
            .filter(|(id, a)| {
                a.opened_at < window_start
                    && !counted.contains(id.as_str())
                    && self.shard_of_id(id).is_none_or(|s| !s.incidents.holds(id))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in drop {
            self.archive.remove(&id);
        }
    }

    /// Drops the text (summary, evidence) of each summary whose incident is no longer held and
    /// that is not the first of its cause's kind, among the summaries, in its problem's
    /// incident list. A problem's probable cause ([`crate::cause::of_problem`]) reads only the
    /// kind of its incidents' causes, and the text of the first incident of the winning kind:
    /// the first *summary* of each kind keeps its text, so the first incident of each kind
    /// (a summary, or a held incident earlier in the list) still has it. Lists only grow at
    /// the end (a rollback truncates the end), so a summary's predecessors in the list stay.
    /// The text of a held incident's summary is kept: [`Analysis::cause_of`] reads it.
    fn slim_counted_summaries(&mut self) {
        let mut slim: Vec<String> = Vec::new();
        for shard in self.shards.values() {
            for problem in shard.problems.problems() {
                let mut kinds: Vec<crate::cause::CauseKind> = Vec::new();
                for id in &problem.incidents {
                    let Some(summary) = self.archive.get(id) else {
                        continue;
                    };
                    let kind = summary.cause.kind;
                    if !kinds.contains(&kind) {
                        kinds.push(kind);
                    } else if !summary.is_slim() && !shard.incidents.holds(id) {
                        slim.push(id.clone());
                    }
                }
            }
        }
        for id in slim {
            if let Some(summary) = self.archive.get_mut(&id) {
                summary.slim();
            }
        }
    }

    /// The event-time floor: events and actions before it are too late (see
    /// [`super::horizon`]); `None` until the first prune that moved it.
    pub fn floor(&self) -> Option<Timestamp> {
        self.floor
    }

    /// Events and actions refused because they were older than the floor (stored by the
    /// caller, applied to nothing).
    pub fn too_late(&self) -> u64 {
        self.too_late
    }

    /// True (and counted) if an input at event time `ts` is before the floor.
    pub(super) fn is_too_late(&mut self, ts: Timestamp) -> bool {
        let late = self.floor.is_some_and(|floor| ts < floor);
        self.too_late += u64::from(late);
        late
    }
}

/// The events of an incident's timeline that `events` holds: those of its stored head (the
/// first events of its fingerprint from the head's first key, [`crate::incidents::StoredTimeline`])
/// and those of the timeline held.
pub(super) fn timeline_events<'a>(
    events: &'a std::collections::BTreeMap<OrderKey, StoredEvent>,
    incident: &Incident,
) -> Vec<&'a StoredEvent> {
    let mut own = Vec::new();
    if let Some(stored) = &incident.stored_timeline {
        let end = match incident.timeline.first() {
            Some(t) => Bound::Excluded((t.ts, t.agent.clone(), t.seq)),
            None => Bound::Excluded(after(incident.last_event_at)),
        };
        let fp = Some(&incident.fingerprint);
        own.extend(
            events
                .range((Bound::Included(stored.from_key()), end))
                .map(|(_, ev)| ev)
                .filter(|ev| crate::incidents::fingerprint_of(&ev.payload).as_ref() == fp)
                .take(stored.events),
        );
    }
    own.extend(
        incident
            .timeline
            .iter()
            .filter_map(|t| events.get(&(t.ts, t.agent.clone(), t.seq))),
    );
    own
}

/// The smallest order key after every event at event time `ts`.
pub(super) fn after(ts: Timestamp) -> OrderKey {
    (
        ts.plus(std::time::Duration::from_millis(1)),
        String::new(),
        0,
    )
}
