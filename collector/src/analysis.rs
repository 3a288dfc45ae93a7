//! Order-independent, idempotent analysis: splits the stored events and operator actions into
//! independent scopes ([`scope`]), each with its own incident and problem engines ([`shard`]),
//! and feeds each scope its inputs in one canonical order.
//!
//! Invariants:
//! - The result (incidents at a given `now`, problems) is a function of the SET of ingested
//!   events only: not of the delivery order, not of duplicates. It is exactly the result of one
//!   in-order pass over every input, because scopes share no state (see [`scope`] for why the
//!   split is exact, id collisions included) and each scope is itself an in-order pass.
//! - Events are applied in [`OrderKey`] order `(ts, agent, seq)`. An event whose key is above
//!   every key its scope applied so far is applied incrementally; an earlier (late) one takes
//!   its own scope (site / zone / category, or the problem scope it feeds) back to the scope's
//!   latest checkpoint before it and replays from there ([`shard`]), never the other scopes.
//! - `(agent, seq)` identifies an event: a second copy is ignored (the contract guarantees the
//!   copies are identical; if they were not, the first copy would win).
//! - Reading summaries do not take part: they are neither kept nor applied.
//! - Operator actions ([`OperatorAction`]) are inputs too: they are applied in the same pass,
//!   ordered by [`InputKey`] (an action after every event of its millisecond), in the scope of
//!   the id they name, with the same incremental-or-replay rule, so the result is a function of
//!   the set of events and actions. An action whose target does not exist at its time is kept
//!   and reported by [`Analysis::unmatched_actions`], never applied elsewhere.
//!
//! - Memory is bounded by the horizon ([`horizon`]): every [`horizon::prune_every`] of event
//!   time, [`Analysis::prune`] forgets the inputs and final incidents before the floor
//!   ([`prune`]); an event or action before the floor is counted as too late and changes
//!   nothing. The results above therefore hold for everything that depends only on inputs
//!   from the floor on (held incidents, problems, their causes and signatures).
//!
//! - With a hot span ([`hot`]), event bodies older than it leave memory (the store keeps them,
//!   indexed by scope); the engines do not change, a late event before the hot floor replays
//!   its scope reading the events before the hot floor through a [`history::ScopeHistory`],
//!   and the read side uses summaries frozen when the incidents became final before the hot
//!   floor. The results above are unchanged. The engines let the timelines of incidents
//!   final before the hot floor go too: [`Analysis::incidents`] shows such an incident with
//!   its stored head counted, not listed ([`crate::incidents::StoredTimeline`]), and
//!   [`Analysis::incident_with_history`] reads it back ([`stored_timeline`]).
//!
//! Because incident and problem ids come from their content, a late event that moves an
//! incident's opening time earlier also changes its id; consumers that need to track changes
//! should diff [`Analysis::incidents`] before and after an ingest that returned `true`.

#[cfg(test)]
mod equivalence_tests;
mod footprint;
pub mod history;
pub mod horizon;
pub mod hot;
#[cfg(test)]
mod hot_tests;
mod prune;
#[cfg(test)]
mod prune_tests;
mod scope;
mod shard;
mod snapshot;
pub mod stored_timeline;
#[cfg(test)]
mod tally_tests;
mod zone_index;

use crate::actions::{ActionKey, ActionKind, ActionRecord, OperatorAction, ProblemStatus};
use crate::cause::ProbableCause;
use crate::chronicle::{ChronicleEntry, ChronicleKind};
use crate::incidents::{fingerprint_of, Incident, IncidentRules, IncidentStatus};
use crate::model::{ActionError, OrderKey, ENGINE_ACTOR};
use crate::problems::{Problem, ProblemRules};
use coldaisle_core::wire::Payload;
use coldaisle_core::Timestamp;
use history::ScopeHistory;
use scope::Partition;
use shard::{Cold, Inputs, Shard};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

pub use crate::model::StoredEvent;
pub use footprint::Footprint;
pub use prune::Pruned;
pub use snapshot::{Snapshot, SnapshotError, SnapshotRef};

/// `(site, zone)` of an event.
fn place_of(payload: &Payload) -> Option<(&str, &str)> {
    match payload {
        Payload::SensorEvent(e) => Some((&e.location.site, &e.location.zone)),
        Payload::DeviceEvent(e) => Some((&e.location.site, &e.location.zone)),
        Payload::ZoneEvent(e) => Some((&e.site, &e.zone)),
        Payload::ReadingSummary(_) => None,
    }
}

/// Total order of all inputs: event time, then events (0) before actions (1), then agent and
/// seq for events, action id for actions.
pub type InputKey = (Timestamp, u8, String, u64);

fn event_input_key(key: &OrderKey) -> InputKey {
    (key.0, 0, key.1.clone(), key.2)
}

fn action_input_key(key: &ActionKey) -> InputKey {
    (key.0, 1, String::new(), key.1)
}

/// The incident or problem id an action names.
fn target_of(kind: &ActionKind) -> &str {
    kind.incident()
        .or_else(|| kind.problem())
        .unwrap_or_default()
}

/// Incident and problem analysis over a set of stored events.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// Rules of the incident engine, for new scopes.
    incident_rules: IncidentRules,
    /// Rules of the problem engine, for new scopes.
    problem_rules: ProblemRules,
    /// How inputs are split into scopes (follows from the problem rules).
    partition: Partition,
    /// How problems' recurrence signatures are judged (site time zone, minimum, alpha).
    signature: crate::recurrence::SignatureSettings,
    /// Every incident-relevant event ingested, in application order (the scopes hold keys).
    events: BTreeMap<OrderKey, StoredEvent>,
    /// The keys of `events` by `(site, zone)`, kept in step with it: what the probable cause
    /// reads ([`zone_index`]).
    by_zone: zone_index::ZoneIndex,
    /// `(agent, seq)` of every event in `events`, to drop duplicates.
    seen: HashSet<(String, u64)>,
    /// Every operator action ingested, in application order.
    actions: BTreeMap<ActionKey, OperatorAction>,
    /// Ids of the actions held, to drop duplicates.
    action_ids: HashSet<u64>,
    /// The scopes, by scope key (see [`scope`]).
    shards: BTreeMap<String, Shard>,
    /// Actions that matched nothing at their time, by id, with the reason: the union of the
    /// scopes' own lists, kept in step with them.
    unmatched: BTreeMap<u64, ActionError>,
    /// Pager deliveries by subject (incident or problem id), for chronicles. Not an input of
    /// the engines: kept across replays.
    notifications: HashMap<String, Vec<ActionRecord>>,
    /// How many scope replays late inputs caused (for metrics).
    rebuilds: u64,
    /// While loading in bulk ([`Analysis::begin_bulk`]): the scopes that got inputs not applied
    /// yet. `None` otherwise, and then every scope's engines are up to date.
    bulk: Option<HashSet<String>>,
    /// The horizon of the rules ([`horizon::horizon`]).
    horizon: std::time::Duration,
    /// Inputs before it are too late ([`prune`]); `None` until the first prune.
    floor: Option<Timestamp>,
    /// Event time of the next automatic prune.
    next_prune: Option<Timestamp>,
    /// Inputs refused as too late.
    too_late: u64,
    /// Summaries of incidents final before the floor, by id ([`prune::ArchivedIncident`]).
    archive: BTreeMap<String, prune::ArchivedIncident>,
    /// Events kept in `events` past their scope's floor (or cold boundary) only as evidence
    /// ([`prune`], [`hot`]): zone evidence of held incidents, density evidence of problems.
    evidence: BTreeSet<OrderKey>,
    /// How much event time before the latest event the scopes' event bodies stay in memory
    /// ([`hot`]); `None`: all of them within the horizon.
    hot_span: Option<std::time::Duration>,
    /// Scope events before it have left memory ([`hot`]); `None` until the first trim.
    hot_floor: Option<Timestamp>,
    /// Event time of the next automatic trim.
    next_trim: Option<Timestamp>,
    /// Failed reads of the stored history ([`hot`]).
    history_errors: u64,
    /// `(site, zone)` of events before the hot floor ingested since the last catch-up, with
    /// the earliest event time of each: their zones' frozen summaries may change ([`hot`]).
    cold_places: BTreeMap<(String, String), Timestamp>,
    /// Events that left memory with the hot span, by minute of event time (from the floor
    /// on): what [`Analysis::events_between`] adds to the events held.
    cold_counts: BTreeMap<i64, u64>,
}

impl Analysis {
    /// An empty analysis with the given rules.
    pub fn new(incident_rules: IncidentRules, problem_rules: ProblemRules) -> Self {
        let horizon = horizon::horizon(&incident_rules, &problem_rules);
        Analysis {
            partition: Partition::for_rules(&problem_rules),
            incident_rules,
            problem_rules,
            signature: crate::recurrence::SignatureSettings::default(),
            events: BTreeMap::new(),
            by_zone: zone_index::ZoneIndex::default(),
            seen: HashSet::new(),
            actions: BTreeMap::new(),
            action_ids: HashSet::new(),
            shards: BTreeMap::new(),
            unmatched: BTreeMap::new(),
            notifications: HashMap::new(),
            rebuilds: 0,
            bulk: None,
            horizon,
            floor: None,
            next_prune: None,
            too_late: 0,
            archive: BTreeMap::new(),
            evidence: BTreeSet::new(),
            hot_span: None,
            hot_floor: None,
            next_trim: None,
            history_errors: 0,
            cold_places: BTreeMap::new(),
            cold_counts: BTreeMap::new(),
        }
    }

    /// How problems' recurrence signatures are judged (carried over when a checkpoint
    /// replaces the analysis).
    pub fn signature_settings(&self) -> &crate::recurrence::SignatureSettings {
        &self.signature
    }

    /// Judges problems' recurrence signatures with `settings` instead of the defaults (UTC,
    /// at least 4 incidents, α = 0.05). Read-side only: no engine state depends on it.
    pub fn with_signature_settings(
        mut self,
        settings: crate::recurrence::SignatureSettings,
    ) -> Self {
        self.signature = settings;
        self
    }

    /// Starts loading in bulk (the rebuild from the store at startup or after a reload): inputs
    /// are only recorded until [`Analysis::end_bulk`], which replays each scope that got any
    /// once. Records come from the store by `(agent, seq)`, not in event time, so ingesting
    /// them one by one would replay a scope for nearly every record of the second agent on.
    /// Until `end_bulk`, queries see the state before `begin_bulk`, and
    /// [`Analysis::ingest_action`] answers `Ok(true)` without checking its target.
    pub fn begin_bulk(&mut self) {
        self.bulk.get_or_insert_with(HashSet::new);
    }

    /// Ends loading in bulk: brings every scope that got inputs since [`Analysis::begin_bulk`]
    /// up to date (going back to a checkpoint only if some input came before its last one). Returns how many actions matched nothing at their time.
    /// For an analysis without a hot span; see [`Analysis::end_bulk_with_history`].
    pub fn end_bulk(&mut self) -> usize {
        self.end_bulk_with_history(&hot::NoHistory)
    }

    /// [`Analysis::end_bulk`], reading the scopes' events before the hot floor from `history`
    /// when a replay needs them ([`hot`]).
    pub fn end_bulk_with_history(&mut self, history: &dyn ScopeHistory) -> usize {
        if let Some(touched) = self.bulk.take() {
            self.catch_up_scopes(touched.into_iter().collect(), history);
        }
        self.prune_if_due();
        self.trim_if_due();
        self.unmatched.len()
    }

    /// Brings `scopes` up to date (each applies its pending inputs, or goes back and replays),
    /// keeping the unmatched list in step; around replays that reach before the hot floor,
    /// drops and recomputes the frozen summaries they can change ([`hot`]).
    fn catch_up_scopes(&mut self, scopes: Vec<String>, history: &dyn ScopeHistory) {
        let deep: Vec<(String, Timestamp)> = scopes
            .iter()
            .filter_map(|scope| {
                let shard = self.shards.get(scope)?;
                let from = shard.pending().filter(|p| shard.is_cold(p))?;
                Some((scope.clone(), from.0))
            })
            .collect();
        let deep_replay = !deep.is_empty() || !self.cold_places.is_empty();
        let unfreeze = if deep_replay {
            self.summaries_a_deep_replay_can_change(&deep)
        } else {
            Vec::new()
        };
        let all = Inputs {
            events: &self.events,
            actions: &self.actions,
        };
        let mut errors = Vec::new();
        let mut failed: HashSet<String> = HashSet::new();
        for scope in scopes {
            let Some(shard) = self.shards.get_mut(&scope) else {
                continue;
            };
            let cold = Cold {
                history,
                selector: self.partition.selector(&scope),
            };
            let before: Vec<u64> = shard.unmatched.keys().copied().collect();
            match shard.catch_up(&all, &cold) {
                Ok(true) => self.rebuilds += 1,
                Ok(false) => {}
                Err(e) => {
                    errors.push(e);
                    failed.insert(scope.clone());
                }
            }
            sync_unmatched(&mut self.unmatched, &before, &shard.unmatched);
        }
        for e in &errors {
            self.note_history_error(e);
        }
        if deep_replay {
            // A scope whose replay failed is as it was: its summaries stay, and its retry
            // (still a deep replay) drops and recomputes them.
            for (scope, id) in unfreeze {
                if !failed.contains(&scope) {
                    self.archive.remove(&id);
                }
            }
            let replayed: Vec<(String, Timestamp)> = deep
                .into_iter()
                .filter(|(scope, _)| !failed.contains(scope))
                .collect();
            self.refreeze_after_deep_replay(&replayed, history);
        }
    }

    /// An empty analysis that keeps everything in one scope: what the split must equal.
    #[cfg(test)]
    fn whole(incident_rules: IncidentRules, problem_rules: ProblemRules) -> Self {
        Analysis {
            partition: Partition::Whole,
            ..Analysis::new(incident_rules, problem_rules)
        }
    }

    /// Adds one event. Returns `true` if it changed the input set; `false` for a duplicate
    /// `(agent, seq)`, a reading summary, or an event before the floor (counted as too late),
    /// which change nothing. For an analysis without a hot span; see
    /// [`Analysis::ingest_with_history`].
    pub fn ingest(&mut self, ev: StoredEvent) -> bool {
        self.ingest_with_history(ev, &hot::NoHistory)
    }

    /// [`Analysis::ingest`], reading the scope's events before the hot floor from `history`
    /// if the event is late enough to need them ([`hot`]). `history` must already hold `ev`
    /// (the daemon stores a record before it applies it).
    pub fn ingest_with_history(&mut self, ev: StoredEvent, history: &dyn ScopeHistory) -> bool {
        if ev.payload.is_summary() || self.seen.contains(&(ev.agent.clone(), ev.seq)) {
            return false;
        }
        if self.is_too_late(ev.payload.ts()) {
            return false;
        }
        self.seen.insert((ev.agent.clone(), ev.seq));
        let key = ev.order_key();
        let scope = fingerprint_of(&ev.payload).map(|f| self.partition.of_fingerprint(&f));
        if self.is_cold(key.0) && scope.is_some() {
            // Read from the history by its scope's replay; held only while it is evidence.
            self.note_cold_event(&ev);
            self.evidence.insert(key.clone());
        }
        self.by_zone.insert(&key, &ev);
        self.events.insert(key.clone(), ev);
        if let Some(scope) = scope {
            self.add_input(scope, event_input_key(&key), history);
        }
        self.prune_if_due();
        self.trim_if_due();
        true
    }

    /// Adds one operator action. Returns `Ok(true)` if it was applied, `Ok(false)` for a
    /// duplicate id or an action before the floor (counted as too late), and the reason if it
    /// matched nothing at its time (it is kept all the same, so a later rebuild sees the same
    /// inputs).
    pub fn ingest_action(&mut self, action: OperatorAction) -> Result<bool, ActionError> {
        self.ingest_action_with_history(action, &hot::NoHistory)
    }

    /// [`Analysis::ingest_action`], reading the scope's events before the hot floor from
    /// `history` if the action is late enough to need them ([`hot`]).
    pub fn ingest_action_with_history(
        &mut self,
        action: OperatorAction,
        history: &dyn ScopeHistory,
    ) -> Result<bool, ActionError> {
        if self.action_ids.contains(&action.id) || self.is_too_late(action.at) {
            return Ok(false);
        }
        self.action_ids.insert(action.id);
        let key = action.key();
        let id = action.id;
        let scope = self.partition.of_id(target_of(&action.kind));
        self.actions.insert(key, action);
        self.add_input(scope, action_input_key(&key), history);
        match self.unmatched.get(&id) {
            Some(e) => Err(e.clone()),
            None => Ok(true),
        }
    }

    /// Adds many actions at once (the rebuild at startup): one replay per scope at most instead
    /// of one per late action. Returns how many matched nothing at their time.
    pub fn ingest_actions(&mut self, actions: impl IntoIterator<Item = OperatorAction>) -> usize {
        let was_bulk = self.bulk.is_some();
        self.begin_bulk();
        for action in actions {
            let _ = self.ingest_action(action);
        }
        if was_bulk {
            return self.unmatched.len();
        }
        self.end_bulk()
    }

    /// Adds one input (already in `events` or `actions`) to its scope, applying it or replaying
    /// the scope, and keeps the unmatched list in step.
    fn add_input(&mut self, scope: String, key: InputKey, history: &dyn ScopeHistory) {
        if let Some(touched) = &mut self.bulk {
            touched.insert(scope.clone());
            self.shard_mut(&scope).add_unapplied(key);
            return;
        }
        self.shard_mut(&scope).add_unapplied(key);
        self.catch_up_scopes(vec![scope], history);
    }

    /// The scope `scope`, created empty if new.
    fn shard_mut(&mut self, scope: &str) -> &mut Shard {
        self.shards
            .entry(scope.to_string())
            .or_insert_with(|| Shard::new(&self.incident_rules, &self.problem_rules))
    }

    /// Which indexed events ([`history`]) make up the scope of events of `fingerprint`: what
    /// a replay of that scope reads from a [`history::ScopeHistory`].
    pub fn history_selector(
        &self,
        fingerprint: &coldaisle_core::Fingerprint,
    ) -> history::ScopeSelector {
        self.partition
            .selector(&self.partition.of_fingerprint(fingerprint))
    }

    /// The scope an incident or problem id lives in, if it has any input.
    fn shard_of_id(&self, id: &str) -> Option<&Shard> {
        self.shards.get(&self.partition.of_id(id))
    }

    /// Checks, without changing anything, that an action of `kind` at `at` would apply: its
    /// incident or problem exists, and a manual resolve targets an incident still open at `at`.
    /// The API calls it before storing an action, to answer a clear error instead.
    pub fn check_action(&self, kind: &ActionKind, at: Timestamp) -> Result<(), ActionError> {
        let shard = self.shard_of_id(target_of(kind));
        if let Some(id) = kind.incident() {
            let incident = shard
                .and_then(|s| s.incidents.incident(id, at))
                .ok_or_else(|| ActionError::UnknownIncident(id.to_string()))?;
            if matches!(kind, ActionKind::ResolveIncident { .. })
                && incident.status == IncidentStatus::Resolved
            {
                return Err(ActionError::AlreadyResolved {
                    id: id.to_string(),
                    resolved_at: incident.resolved_at.unwrap_or(at),
                });
            }
        }
        if let Some(id) = kind.problem() {
            shard
                .and_then(|s| s.problems.problem(id))
                .ok_or_else(|| ActionError::UnknownProblem(id.to_string()))?;
        }
        Ok(())
    }

    /// Every incident as of event time `now`, with its problem filled in, ordered by opening time
    /// then id.
    pub fn incidents(&self, now: Timestamp) -> Vec<Incident> {
        let mut all = Vec::new();
        for shard in self.shards.values() {
            let start = all.len();
            all.extend(shard.incidents.incidents(now));
            for incident in &mut all[start..] {
                self.fill_problem(shard, incident);
            }
        }
        all.sort_by(|a, b| (a.opened_at, &a.id).cmp(&(b.opened_at, &b.id)));
        all
    }

    /// One incident as of event time `now`, with its problem filled in.
    pub fn incident(&self, id: &str, now: Timestamp) -> Option<Incident> {
        let shard = self.shard_of_id(id)?;
        let mut incident = shard.incidents.incident(id, now)?;
        self.fill_problem(shard, &mut incident);
        Some(incident)
    }

    fn fill_problem(&self, shard: &Shard, incident: &mut Incident) {
        incident.problem = shard.problems.problem_of(&incident.id).map(str::to_string);
        incident.workaround = incident
            .problem
            .as_deref()
            .and_then(|p| shard.problems.problem(p))
            .filter(|p| p.status == ProblemStatus::KnownError)
            .and_then(|p| p.workaround.clone());
        incident.probable_cause = Some(self.cause_of(incident));
        let delivered = self.delivered(&incident.id);
        incident.chronicle = incident_chronicle(incident, delivered);
    }

    /// The notifications delivered for the incident or problem `id`, for its chronicle.
    fn delivered(&self, id: &str) -> &[ActionRecord] {
        self.notifications
            .get(id)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The probable cause of `incident`: its summary's if it is final before the floor, else
    /// from its events and its zone's events around it.
    fn cause_of(&self, incident: &Incident) -> ProbableCause {
        match self.archive.get(&incident.id) {
            Some(summary) => summary.cause.clone(),
            None => self.cause_from_events(incident),
        }
    }

    /// The probable cause of `incident` from its events and its zone's events around it, read
    /// through the zone index: its cost follows the zone's events in the incident's window.
    fn cause_from_events(&self, incident: &Incident) -> ProbableCause {
        let own = prune::timeline_events(&self.events, incident);
        let (from, to) = crate::cause::zone_window(incident.opened_at, incident.last_event_at);
        let fp = &incident.fingerprint;
        let zone: Vec<&StoredEvent> = self
            .by_zone
            .between(&fp.site, &fp.zone, from, to)
            .filter_map(|key| self.events.get(key))
            .collect();
        crate::cause::explain(&own, &zone)
    }

    /// [`Analysis::cause_from_events`] by scanning every event held in the window, without
    /// the index: what the index must equal (tests).
    #[cfg(test)]
    fn cause_by_scan(&self, incident: &Incident) -> ProbableCause {
        let own = prune::timeline_events(&self.events, incident);
        let (from, to) = crate::cause::zone_window(incident.opened_at, incident.last_event_at);
        let fp = &incident.fingerprint;
        let zone: Vec<&StoredEvent> = self
            .events
            .range((from, String::new(), 0)..)
            .take_while(|((ts, _, _), _)| *ts <= to)
            .map(|(_, e)| e)
            .filter(|e| {
                place_of(&e.payload).is_some_and(|(site, zone)| site == fp.site && zone == fp.zone)
            })
            .collect();
        crate::cause::explain(&own, &zone)
    }

    /// Checks the zone index against the events held (the same keys, each under its own
    /// place) and, for every incident held as of `now`, the indexed cause against the scan.
    /// Returns how many incidents it compared (tests).
    #[cfg(test)]
    fn check_zone_index(&self, now: Timestamp) -> Result<usize, String> {
        let mut indexed: Vec<(&str, &str, &OrderKey)> = self.by_zone.entries();
        indexed.sort();
        let mut held: Vec<(&str, &str, &OrderKey)> = self
            .events
            .iter()
            .filter_map(|(key, e)| place_of(&e.payload).map(|(site, zone)| (site, zone, key)))
            .collect();
        held.sort();
        if indexed != held {
            return Err(format!(
                "zone index out of step: {} keys indexed, {} events with a place held",
                indexed.len(),
                held.len()
            ));
        }
        let mut compared = 0;
        for shard in self.shards.values() {
            for incident in shard.incidents.incidents(now) {
                let (indexed, scanned) = (
                    self.cause_from_events(&incident),
                    self.cause_by_scan(&incident),
                );
                if indexed != scanned {
                    return Err(format!(
                        "incident {}: indexed cause {indexed:?} != scanned {scanned:?}",
                        incident.id
                    ));
                }
                compared += 1;
            }
        }
        Ok(compared)
    }

    /// A problem with its probable cause and signature filled in from its incidents: the
    /// final head of its list from its tally, the others one by one (held ones from their
    /// events, the others from their summaries).
    fn with_cause(&self, shard: &Shard, problem: &Problem) -> Problem {
        let tally = shard.problems.tally(&problem.id);
        let rest = problem
            .incidents
            .iter()
            .enumerate()
            .skip(tally.map_or(0, crate::problems::ProblemTally::folded))
            .filter_map(|(position, id)| {
                if let Some(summary) = self.archive.get(id) {
                    return Some((position, summary.cause.clone(), summary.point()));
                }
                let incident = shard.incidents.incident(id, Timestamp(i64::MAX))?;
                Some((
                    position,
                    self.cause_from_events(&incident),
                    self.point_from_events(&incident),
                ))
            });
        let (cause, signature) = crate::problems::ProblemTally::read(tally, rest, &self.signature);
        let mut problem = problem.clone();
        problem.probable_cause =
            cause.map(|cause| crate::cause::with_density(cause, &self.density_before(&problem)));
        problem.signature = Some(signature);
        let delivered = self.delivered(&problem.id);
        problem.chronicle = problem_chronicle(&problem, delivered);
        problem
    }

    /// Rack power step-ups in the problem's zone (every zone of its site for a site-wide
    /// problem) during the `density_lookback` before it opened, read through the zone index
    /// in order-key order (the steps' sums depend on it): its cost follows the zone's events
    /// of the look-back, not every event held.
    fn density_before(&self, problem: &Problem) -> Vec<crate::cause::DensityStep> {
        let fp = &problem.fingerprint;
        let from = problem.opened_at.minus(self.problem_rules.density_lookback);
        let keys: Vec<&OrderKey> = match density_zone(problem) {
            Some(zone) => self
                .by_zone
                .between(&fp.site, zone, from, problem.opened_at)
                .collect(),
            None => self.by_zone.site_between(&fp.site, from, problem.opened_at),
        };
        let events: Vec<&StoredEvent> = keys
            .into_iter()
            .filter_map(|key| self.events.get(key))
            .collect();
        crate::cause::density_steps(&events)
    }

    /// [`Analysis::density_before`] by scanning every event held in the look-back, without the
    /// index: what the index must equal (tests).
    #[cfg(test)]
    fn density_by_scan(&self, problem: &Problem) -> Vec<crate::cause::DensityStep> {
        let fp = &problem.fingerprint;
        let zone = density_zone(problem);
        let from = problem.opened_at.minus(self.problem_rules.density_lookback);
        let events: Vec<&StoredEvent> = self
            .events
            .range((from, String::new(), 0)..)
            .take_while(|((ts, _, _), _)| *ts <= problem.opened_at)
            .map(|(_, e)| e)
            .filter(|e| {
                place_of(&e.payload)
                    .is_some_and(|(s, z)| s == fp.site && zone.is_none_or(|zone| zone == z))
            })
            .collect();
        crate::cause::density_steps(&events)
    }

    /// Checks, for every problem held, the indexed density evidence against the scan. Returns
    /// how many problems it compared (tests).
    #[cfg(test)]
    fn check_density_index(&self) -> Result<usize, String> {
        let mut compared = 0;
        for shard in self.shards.values() {
            for problem in shard.problems.problems() {
                let (indexed, scanned) = (
                    self.density_before(&problem),
                    self.density_by_scan(&problem),
                );
                if indexed != scanned {
                    return Err(format!(
                        "problem {}: indexed density {indexed:?} != scanned {scanned:?}",
                        problem.id
                    ));
                }
                compared += 1;
            }
        }
        Ok(compared)
    }

    /// An incident as the recurrence signature reads it, from its timeline's events.
    fn point_from_events(&self, incident: &Incident) -> crate::recurrence::IncidentPoint {
        let events = prune::timeline_events(&self.events, incident);
        crate::recurrence::IncidentPoint::of_events(incident.opened_at, &events)
    }

    /// Incident-relevant events with event time in `[from, to)` since the floor: those held,
    /// and those that left memory with the hot span ([`hot`]), counted per minute (so the
    /// latter are counted by the minute they fall in: a window's edge before the hot floor is
    /// rounded to the minute).
    pub fn events_between(&self, from: Timestamp, to: Timestamp) -> usize {
        let held = self
            .events
            .range((from, String::new(), 0)..)
            .take_while(|((ts, _, _), _)| *ts < to)
            .count();
        held + hot::cold_count_between(&self.cold_counts, from, to)
    }

    /// Trigger notifications delivered in `[from, to)` (pages).
    pub fn pages_between(&self, from: Timestamp, to: Timestamp) -> usize {
        self.notifications
            .values()
            .flatten()
            .filter(|r| r.at >= from && r.at < to && r.text.starts_with("trigger"))
            .count()
    }

    /// Records a pager delivery about `subject` (an incident or problem id) for its chronicle.
    pub fn record_notification(&mut self, subject: &str, record: ActionRecord) {
        self.notifications
            .entry(subject.to_string())
            .or_default()
            .push(record);
    }

    /// Actions that matched nothing at their time, by action id, with the reason.
    pub fn unmatched_actions(&self) -> &BTreeMap<u64, ActionError> {
        &self.unmatched
    }

    /// Every operator action held, in application order.
    pub fn actions(&self) -> impl Iterator<Item = &OperatorAction> {
        self.actions.values()
    }

    /// Every event held (any scope, forecasts included), in order-key order.
    pub fn events(&self) -> impl Iterator<Item = &StoredEvent> {
        self.events.values()
    }

    /// The stored event behind a timeline entry, looked up by its order key.
    pub fn event(&self, key: &OrderKey) -> Option<&StoredEvent> {
        self.events.get(key)
    }

    /// Every problem, ordered by opening time then id.
    pub fn problems(&self) -> Vec<Problem> {
        let mut all: Vec<Problem> = self
            .shards
            .values()
            .flat_map(|shard| {
                shard
                    .problems
                    .problems()
                    .into_iter()
                    .map(move |p| self.with_cause(shard, &p))
            })
            .collect();
        all.sort_by(|a, b| (a.opened_at, &a.id).cmp(&(b.opened_at, &b.id)));
        all
    }

    /// One problem by id, with its probable cause.
    pub fn problem(&self, id: &str) -> Option<Problem> {
        let shard = self.shard_of_id(id)?;
        shard
            .problems
            .problem(id)
            .map(|p| self.with_cause(shard, p))
    }

    /// Event time of the latest event held: a natural `now` for [`Analysis::incidents`] when
    /// replaying.
    pub fn latest_event_time(&self) -> Option<Timestamp> {
        self.events.last_key_value().map(|((ts, _, _), _)| *ts)
    }

    /// Number of incident-relevant events held.
    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    /// Clears that matched no live incident.
    pub fn orphan_clears(&self) -> u64 {
        self.shards
            .values()
            .map(|shard| shard.incidents.orphan_clears())
            .sum()
    }

    /// How many scope replays late inputs have caused (each replays one scope, not the whole
    /// analysis).
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds
    }

    /// The oldest event time the analysis still needs from the store, as of the latest event
    /// held: the opening of every open incident, and of every incident linked to a problem
    /// that is not resolved or whose fix is still under verification. `None` when nothing is
    /// open (or nothing is held). Raw-record retention ([`crate::retention`]) deletes no record
    /// at or after it. Read-only; clones each scope's incidents, so call it rarely.
    pub fn oldest_needed_time(&self) -> Option<Timestamp> {
        let now = self.latest_event_time()?;
        let mut oldest: Option<Timestamp> = None;
        let mut need = |t: Timestamp| oldest = Some(oldest.map_or(t, |o| o.min(t)));
        for shard in self.shards.values() {
            let incidents = shard.incidents.incidents(now);
            let opened: HashMap<&str, Timestamp> = incidents
                .iter()
                .map(|i| (i.id.as_str(), i.opened_at))
                .collect();
            for incident in &incidents {
                if incident.status == IncidentStatus::Open {
                    need(incident.opened_at);
                }
            }
            for problem in shard.problems.problems() {
                let verifying = problem.verification.as_ref().is_some_and(|v| v.until > now);
                if !problem.status.is_open() && !verifying {
                    continue;
                }
                need(problem.opened_at);
                if let Some(t) = shard
                    .problems
                    .tally(&problem.id)
                    .and_then(|t| t.first_opened())
                {
                    need(t);
                }
                for id in &problem.incidents {
                    // An incident past the floor is held only as its summary.
                    let held = opened.get(id.as_str()).copied();
                    if let Some(t) = held.or_else(|| self.archive.get(id).map(|a| a.opened_at)) {
                        need(t);
                    }
                }
            }
        }
        oldest
    }
}

/// The chronicle of `incident` with `notifications` (pager deliveries about it), in time order;
/// within one millisecond: events, then state changes, operator actions, notifications.
fn incident_chronicle(incident: &Incident, notifications: &[ActionRecord]) -> Vec<ChronicleEntry> {
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
fn problem_chronicle(problem: &Problem, notifications: &[ActionRecord]) -> Vec<ChronicleEntry> {
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
        .chain(crate::chronicle::signature_entry(
            problem.signature.as_ref(),
        ))
        .collect();
    all.sort_by_key(|e| (e.at, e.kind));
    all
}

/// The zone whose events are a problem's density evidence: its fingerprint's zone without
/// the row; `None` for a site-wide problem (every zone of its site).
fn density_zone(problem: &Problem) -> Option<&str> {
    let zone = problem
        .fingerprint
        .zone
        .split(crate::problems::ROW_SEPARATOR)
        .next();
    zone.filter(|z| *z != crate::problems::SITE_WIDE)
}

/// Replaces a scope's old unmatched actions (`before`) in the union `all` by its current ones.
fn sync_unmatched(
    all: &mut BTreeMap<u64, ActionError>,
    before: &[u64],
    now: &BTreeMap<u64, ActionError>,
) {
    for id in before {
        all.remove(id);
    }
    all.extend(now.iter().map(|(id, e)| (*id, e.clone())));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::incidents::tests::{device, sensor, zone, MIN, T0};
    use crate::incidents::IncidentStatus;
    use crate::problems::ProblemTrigger;
    use coldaisle_core::wire::Payload;
    use coldaisle_core::{
        Category, EventState, Location, ReadingSummary, SensorEvent, SensorKind, Severity,
    };
    use EventState::{Cleared, Raised};
    use Severity::{Critical, Warning};

    const DAY: i64 = 86_400_000;

    fn analysis() -> Analysis {
        Analysis::new(IncidentRules::default(), ProblemRules::default())
    }

    /// A humidity event (its own fingerprint).
    fn humidity(agent: &str, state: EventState, ts: i64) -> StoredEvent {
        StoredEvent {
            agent: agent.into(),
            seq: 0,
            payload: Payload::SensorEvent(SensorEvent {
                sensor: "z1-rh".into(),
                kind: SensorKind::Humidity,
                location: Location {
                    site: "dc1".into(),
                    zone: "Z1".into(),
                    row: None,
                    rack: None,
                },
                category: Category::Humidity,
                detector: "threshold".into(),
                state,
                severity: Warning,
                value: 71.0,
                limit: Some(70.0),
                first_ts: coldaisle_core::Timestamp(ts),
                ts: coldaisle_core::Timestamp(ts),
                expected_crossing: None,
            }),
        }
    }

    fn summary(agent: &str, ts: i64) -> StoredEvent {
        StoredEvent {
            agent: agent.into(),
            seq: 0,
            payload: Payload::ReadingSummary(ReadingSummary {
                sensor: "r1-inlet".into(),
                kind: SensorKind::InletTemp,
                location: Location {
                    site: "dc1".into(),
                    zone: "Z1".into(),
                    row: None,
                    rack: None,
                },
                from: coldaisle_core::Timestamp(ts - MIN),
                to: coldaisle_core::Timestamp(ts),
                count: 6,
                min: 22.0,
                max: 23.0,
                sum: 135.0,
                last: 22.5,
            }),
        }
    }

    /// A realistic month: two zones, agent a1 for Z1 and a2 for Z2, several sensors, zone and
    /// device events, three overheats in Z1 and one spike in Z2 (escalating to critical), a
    /// humidity excursion, an orphan clear, summaries, and events of both agents at the same
    /// millisecond. Seqs are assigned per agent in event-time order, as agents do.
    fn month() -> Vec<StoredEvent> {
        let mut events = Vec::new();
        for (k, day) in [0, 8, 20].into_iter().enumerate() {
            let b = T0 + day * DAY;
            events.extend([
                sensor("a1", 0, "Z1", "r1-inlet", Raised, Warning, 28.5, b),
                sensor("a1", 0, "Z1", "r2-inlet", Raised, Warning, 28.9, b + MIN),
                zone(
                    "a1",
                    0,
                    "Z1",
                    Raised,
                    Warning,
                    &["r1-inlet", "r2-inlet"],
                    b + MIN,
                ),
                sensor(
                    "a1",
                    0,
                    "Z1",
                    "r3-inlet",
                    Raised,
                    Warning,
                    29.4,
                    b + 3 * MIN,
                ),
                sensor(
                    "a1",
                    0,
                    "Z1",
                    "r1-inlet",
                    Cleared,
                    Warning,
                    26.0,
                    b + 20 * MIN,
                ),
                sensor(
                    "a1",
                    0,
                    "Z1",
                    "r2-inlet",
                    Cleared,
                    Warning,
                    26.1,
                    b + 22 * MIN,
                ),
                zone("a1", 0, "Z1", Cleared, Warning, &["r2-inlet"], b + 22 * MIN),
                sensor(
                    "a1",
                    0,
                    "Z1",
                    "r3-inlet",
                    Cleared,
                    Warning,
                    26.2,
                    b + 25 * MIN,
                ),
                summary("a1", b + 30 * MIN),
            ]);
            if k == 1 {
                // A relapse within the quiet period joins the same incident.
                events.extend([
                    sensor(
                        "a1",
                        0,
                        "Z1",
                        "r1-inlet",
                        Raised,
                        Warning,
                        28.1,
                        b + 32 * MIN,
                    ),
                    sensor(
                        "a1",
                        0,
                        "Z1",
                        "r1-inlet",
                        Cleared,
                        Warning,
                        26.0,
                        b + 35 * MIN,
                    ),
                ]);
            }
        }
        let z2 = T0 + 12 * DAY;
        events.extend([
            // Orphan clear: a2 restarted and re-sent a clear nobody raised.
            sensor("a2", 0, "Z2", "r23-inlet", Cleared, Warning, 25.0, T0 + DAY),
            sensor("a2", 0, "Z2", "r21-inlet", Raised, Warning, 28.0, z2),
            sensor("a2", 0, "Z2", "r22-inlet", Raised, Critical, 33.5, z2),
            // Same millisecond as a2's raises, from the other agent.
            device("a1", 0, "Z1", "pdu-z1", Raised, z2),
            device("a1", 0, "Z1", "pdu-z1", Cleared, z2 + 3 * MIN),
            zone(
                "a2",
                0,
                "Z2",
                Raised,
                Critical,
                &["r21-inlet", "r22-inlet"],
                z2 + MIN,
            ),
            sensor(
                "a2",
                0,
                "Z2",
                "r22-inlet",
                Cleared,
                Critical,
                26.0,
                z2 + 10 * MIN,
            ),
            sensor(
                "a2",
                0,
                "Z2",
                "r21-inlet",
                Cleared,
                Warning,
                26.0,
                z2 + 11 * MIN,
            ),
            zone("a2", 0, "Z2", Cleared, Critical, &[], z2 + 11 * MIN),
            device("a2", 0, "Z2", "crac-2", Raised, T0 + 14 * DAY),
            device("a2", 0, "Z2", "crac-2", Cleared, T0 + 14 * DAY + 2 * MIN),
            humidity("a1", Raised, T0 + 3 * DAY),
            humidity("a1", Cleared, T0 + 3 * DAY + 40 * MIN),
        ]);
        // Stable sort: events listed in order within one timestamp keep it.
        events.sort_by_key(|e| e.payload.ts());
        let mut next = std::collections::HashMap::new();
        for e in &mut events {
            let seq = next.entry(e.agent.clone()).or_insert(100_u64);
            *seq += 1;
            e.seq = *seq;
        }
        // In application order, so that ingesting the list as is never rebuilds.
        events.sort_by_key(StoredEvent::order_key);
        events
    }

    /// The whole observable state as JSON.
    fn snapshot(a: &Analysis, now: Timestamp) -> String {
        serde_json::to_string_pretty(&(a.incidents(now), a.problems())).unwrap()
    }

    fn ingest_all(events: &[StoredEvent]) -> Analysis {
        let mut a = analysis();
        for e in events {
            a.ingest(e.clone());
        }
        a
    }

    /// Tiny deterministic generator (Knuth's MMIX LCG): no `rand` needed.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 33) % n as u64) as usize
        }
    }

    #[test]
    fn realistic_month_gives_expected_incidents_and_problems() {
        let events = month();
        let a = ingest_all(&events);
        assert_eq!(a.rebuilds(), 0);
        assert_eq!(a.orphan_clears(), 1);
        let now = a.latest_event_time().unwrap();
        let incidents = a.incidents(now);
        let ids: Vec<&str> = incidents.iter().map(|i| i.id.as_str()).collect();
        let z2 = T0 + 12 * DAY;
        assert_eq!(
            ids,
            vec![
                format!("inc-dc1-z1-thermal-{T0}"),
                format!("inc-dc1-z1-humidity-{}", T0 + 3 * DAY),
                format!("inc-dc1-z1-thermal-{}", T0 + 8 * DAY),
                format!("inc-dc1-z1-device-{z2}"),
                format!("inc-dc1-z2-thermal-{z2}"),
                format!("inc-dc1-z2-device-{}", T0 + 14 * DAY),
                format!("inc-dc1-z1-thermal-{}", T0 + 20 * DAY),
            ]
        );
        assert!(
            incidents
                .iter()
                .all(|i| i.status == IncidentStatus::Resolved
                    || i.opened_at.millis() == T0 + 20 * DAY)
        );
        // The relapse joined the second overheat: 8 events + 2.
        assert_eq!(incidents[2].timeline.len(), 10);
        assert_eq!(incidents[4].severity, Critical);

        let problems = a.problems();
        assert_eq!(problems.len(), 2);
        let sla = &problems[0];
        assert_eq!(sla.id, format!("prb-dc1-z2-thermal-{z2}"));
        assert_eq!(sla.trigger, ProblemTrigger::Sla);
        assert_eq!(sla.incidents, vec![format!("inc-dc1-z2-thermal-{z2}")]);
        let recurring = &problems[1];
        assert_eq!(
            recurring.id,
            format!("prb-dc1-z1-thermal-{}", T0 + 20 * DAY)
        );
        assert_eq!(recurring.trigger, ProblemTrigger::Recurrence);
        assert_eq!(
            recurring.reason,
            "3 thermal incidents in zone Z1 within 30 days"
        );
        assert_eq!(recurring.incidents, vec![ids[0], ids[2], ids[6]]);
        assert_eq!(incidents[0].problem.as_deref(), Some(recurring.id.as_str()));
        assert_eq!(incidents[1].problem, None);
        assert_eq!(
            a.incident(ids[4], now).unwrap().problem.as_deref(),
            Some(sla.id.as_str())
        );
        assert_eq!(a.problem(&sla.id).as_ref(), Some(sla));
    }

    #[test]
    fn duplicate_delivery_changes_nothing() {
        let events = month();
        let mut a = ingest_all(&events);
        let now = a.latest_event_time().unwrap();
        let before = snapshot(&a, now);
        let count = a.event_count();
        for e in events.iter().rev() {
            assert!(!a.ingest(e.clone()));
        }
        assert_eq!(snapshot(&a, now), before);
        assert_eq!(a.event_count(), count);
        assert_eq!(a.rebuilds(), 0);
    }

    #[test]
    fn any_delivery_order_with_duplicates_gives_the_in_order_result() {
        let events = month();
        let reference = ingest_all(&events);
        let now = reference.latest_event_time().unwrap();
        let expected = snapshot(&reference, now);
        let mut rebuilds = 0;
        for seed in 0..300_u64 {
            let mut rng = Lcg(seed);
            let mut shuffled = events.clone();
            // Redeliver some events (as after a reconnect) ...
            for _ in 0..rng.below(10) {
                let i = rng.below(events.len());
                shuffled.push(events[i].clone());
            }
            // ... then deliver everything in a random order (Fisher-Yates).
            for i in (1..shuffled.len()).rev() {
                let j = rng.below(i + 1);
                shuffled.swap(i, j);
            }
            let a = ingest_all(&shuffled);
            assert_eq!(snapshot(&a, now), expected, "seed {seed}");
            assert_eq!(a.orphan_clears(), reference.orphan_clears(), "seed {seed}");
            rebuilds += a.rebuilds();
        }
        // The shuffles did exercise the late-event path.
        assert!(rebuilds > 300);
    }

    #[test]
    fn late_event_rebuilds_and_reopens_earlier() {
        let mut a = analysis();
        assert!(a.ingest(sensor(
            "a1",
            2,
            "Z1",
            "r2-inlet",
            Raised,
            Warning,
            28.0,
            T0 + MIN
        )));
        assert_eq!(
            a.incidents(Timestamp(T0 + MIN))[0].id,
            format!("inc-dc1-z1-thermal-{}", T0 + MIN)
        );
        // The earlier raise arrives late: the incident now opened at T0 (its id follows).
        assert!(a.ingest(sensor("a1", 1, "Z1", "r1-inlet", Raised, Warning, 28.0, T0)));
        assert_eq!(a.rebuilds(), 1);
        let all = a.incidents(Timestamp(T0 + MIN));
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].id, format!("inc-dc1-z1-thermal-{T0}"));
        assert_eq!(all[0].timeline.len(), 2);
        assert_eq!(
            a.incident(&format!("inc-dc1-z1-thermal-{}", T0 + MIN), Timestamp(T0)),
            None
        );
    }

    #[test]
    fn summaries_are_not_kept() {
        let mut a = analysis();
        let mut s = summary("a1", T0);
        s.seq = 7;
        assert!(!a.ingest(s));
        assert_eq!(a.event_count(), 0);
        assert_eq!(a.latest_event_time(), None);
    }
}
