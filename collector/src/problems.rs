//! The problem engine: groups recurring or SLA-impacting incidents of one fingerprint into a
//! problem record.
//!
//! Pure: no I/O, no wall clock. It is fed the incident engine's openings (and escalations) in
//! event-time order and decides, by event time only:
//! - **Recurrence**: when the incidents of a fingerprint opened within `(t - window, t]` (not
//!   already linked to a problem) reach `min_incidents` and the fingerprint has no open problem,
//!   a problem opens at `t` linking them all.
//! - **SLA**: an incident opened (or escalated) at or above `sla_severity` opens a problem on its
//!   own when the fingerprint has no open problem.
//! - **Linking**: while a fingerprint has an open problem, every later incident of it links to
//!   that problem instead of opening another.
//!
//! - **Sustained / marked**: an incident whose sources stayed raised for the configured time
//!   ([`crate::incidents::IncidentChange::Sustained`]) or that an operator marked SLA-impacting
//!   counts as SLA-impacting too.
//! - **Lifecycle**: operators move a problem open → investigating → known error (root cause and
//!   workaround recorded) → resolved, by actions applied in event-time order with the events.
//! - **Reopen**: once a fingerprint has a problem, it never gets another: when a rule trips again
//!   after its problem was resolved, that problem is reopened (status open, the new incidents
//!   linked, the reopening on its history), not duplicated.
//! - **Fix verification**: resolving a problem opens a verification window of
//!   `verification_window` (event time) on it ([`FixVerification`]). One incident of its
//!   fingerprint opening inside the window reopens it at once, recorded on the window as the
//!   evidence; after the window the recurrence rule applies again. The before/after figures
//!   are the reader's ([`crate::verification`] from the zone's roll-ups).
//!
//! Problem ids depend only on content (fingerprint and opening time).

mod tally;
pub use tally::{CountedIncident, ProblemTally};

use crate::actions::{ActionKind, ActionRecord, OperatorAction, ProblemStatus};
use crate::cause::ProbableCause;
use crate::model::{content_id, fnv1a32, ActionError, ENGINE_ACTOR};
use coldaisle_core::{Fingerprint, Severity, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

/// Configuration of the problem engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemRules {
    /// How many incidents of one fingerprint within `window` make a problem.
    pub min_incidents: usize,
    /// The rolling window of the recurrence rule, by event time.
    #[serde(with = "crate::model::duration_text")]
    pub window: Duration,
    /// Incidents at or above this severity open a problem on their own; `None` disables the rule.
    pub sla_severity: Option<Severity>,
    /// What one problem covers: a zone (default), a row of a zone (incidents count under the
    /// row of the event that opened them; the problem's fingerprint has zone `Z1/R3`) or a whole
    /// site (incidents of every zone of the site count together; the problem's fingerprint has
    /// zone `*`).
    #[serde(default, skip_serializing_if = "ProblemScope::is_zone")]
    pub scope: ProblemScope,
    /// How far before a problem opens a step-up of rack power in its zone is quoted as density
    /// evidence in its probable cause (read side, see [`crate::cause::density_steps`]).
    #[serde(
        default = "default_density_lookback",
        with = "crate::model::duration_text",
        skip_serializing_if = "is_default_density_lookback"
    )]
    pub density_lookback: Duration,
    /// How long after a resolution the fix is verified: an incident of the fingerprint opening
    /// inside it reopens the problem at once, and at its end the before/after figures are
    /// written on the problem.
    #[serde(
        default = "default_verification_window",
        with = "crate::model::duration_text",
        skip_serializing_if = "is_default_verification_window"
    )]
    pub verification_window: Duration,
}

fn default_density_lookback() -> Duration {
    crate::cause::DEFAULT_DENSITY_LOOKBACK
}

fn is_default_density_lookback(d: &Duration) -> bool {
    *d == crate::cause::DEFAULT_DENSITY_LOOKBACK
}

fn default_verification_window() -> Duration {
    crate::verification::DEFAULT_WINDOW
}

fn is_default_verification_window(d: &Duration) -> bool {
    *d == crate::verification::DEFAULT_WINDOW
}

/// What one problem covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemScope {
    /// One zone and category.
    #[default]
    Zone,
    /// One site and category, all zones together.
    Site,
    /// One row of a zone and category: an incident counts under the row of the event that
    /// opened it (see [`ProblemEngine::note_row`]); an incident without a row stays zone-level.
    Row,
}

impl ProblemScope {
    fn is_zone(&self) -> bool {
        *self == ProblemScope::Zone
    }
}

/// `zone Z1`, `row R3 of zone Z1` for a row-scoped fingerprint, or `site dc1` for a
/// site-scoped one.
fn place(fingerprint: &Fingerprint) -> String {
    if fingerprint.zone == SITE_WIDE {
        format!("site {}", fingerprint.site)
    } else if let Some((zone, row)) = fingerprint.zone.split_once(ROW_SEPARATOR) {
        format!("row {row} of zone {zone}")
    } else {
        format!("zone {}", fingerprint.zone)
    }
}

/// Separates zone and row in a row-scoped problem's fingerprint zone (`Z1/R3`).
pub const ROW_SEPARATOR: char = '/';

/// The zone of a site-scoped problem's fingerprint.
pub const SITE_WIDE: &str = "*";

impl Default for ProblemRules {
    /// At least 3 incidents within 30 days; any critical incident; density evidence from 4
    /// weeks back; a 14-day verification window.
    fn default() -> Self {
        ProblemRules {
            min_incidents: 3,
            window: Duration::from_secs(30 * 24 * 3600),
            sla_severity: Some(Severity::Critical),
            scope: ProblemScope::Zone,
            density_lookback: crate::cause::DEFAULT_DENSITY_LOOKBACK,
            verification_window: crate::verification::DEFAULT_WINDOW,
        }
    }
}

/// Which rule opened a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemTrigger {
    /// Enough incidents of the fingerprint within the window.
    Recurrence,
    /// One incident at or above the SLA severity.
    Sla,
}

/// A problem record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// Stable id, e.g. `prb-dc1-z1-thermal-1764072000000`.
    pub id: String,
    /// The stream of incidents it groups.
    pub fingerprint: Fingerprint,
    /// Where it is in its lifecycle.
    pub status: ProblemStatus,
    /// Event time of the incident opening (or escalation) that tripped a rule.
    pub opened_at: Timestamp,
    /// Which rule opened it.
    pub trigger: ProblemTrigger,
    /// Why, in words, e.g. `3 thermal incidents in zone Z1 within 30 days`.
    pub reason: String,
    /// Ids of the incidents that tripped the rule, then of every later linked incident.
    pub incidents: Vec<String>,
    /// Root cause, once known.
    #[serde(default)]
    pub root_cause: Option<String>,
    /// Workaround until the fix lands; shown on every linked incident.
    #[serde(default)]
    pub workaround: Option<String>,
    /// When it was last resolved, if it is resolved.
    #[serde(default)]
    pub resolved_at: Option<Timestamp>,
    /// How many times it was reopened because its pattern returned.
    #[serde(default)]
    pub reopened: u32,
    /// Every lifecycle change, reopening and note, with who and when, in order.
    #[serde(default)]
    pub history: Vec<ActionRecord>,
    /// Probable cause explained from the evidence of its incidents (filled by the analysis).
    #[serde(default)]
    pub probable_cause: Option<ProbableCause>,
    /// When and where its incidents happen and whether their peaks worsen (filled by the
    /// analysis from its incidents, see [`crate::recurrence`]).
    #[serde(default)]
    pub signature: Option<crate::recurrence::Signature>,
    /// The verification of its latest fix: opened when it was resolved (see the module
    /// documentation), figures filled by the reader once the window ended.
    #[serde(default)]
    pub verification: Option<FixVerification>,
    /// Its history merged with the pager deliveries about it, in time order (filled by the
    /// analysis, see [`crate::analysis::Analysis`]).
    #[serde(default)]
    pub chronicle: Vec<crate::chronicle::ChronicleEntry>,
}

/// The verification window of a problem's latest resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FixVerification {
    /// When the problem was resolved (the fix applied): the window starts here.
    pub from: Timestamp,
    /// When the window ends (`from` + `verification_window`).
    pub until: Timestamp,
    /// The first incident of the problem's pattern inside the window, which reopened it.
    #[serde(default)]
    pub recurred: Option<Recurrence>,
    /// The zone's figures before and after and the verdict (filled by the reader from the
    /// roll-ups, see `crate::fix_figures`; `None` in the engine).
    #[serde(default)]
    pub result: Option<crate::verification::Verification>,
}

/// An incident that came back inside a verification window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recurrence {
    /// Its id.
    pub incident: String,
    /// When it opened.
    pub at: Timestamp,
}

/// What observing an incident changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum ProblemChange {
    /// A new problem opened.
    Opened {
        /// Id of the problem.
        id: String,
        /// Its fingerprint.
        fingerprint: Fingerprint,
        /// When it opened.
        opened_at: Timestamp,
        /// Which rule opened it.
        trigger: ProblemTrigger,
        /// Why, in words.
        reason: String,
        /// The incidents that tripped it.
        incidents: Vec<String>,
    },
    /// A resolved problem's rule tripped again: it is open again with new incidents.
    Reopened {
        /// Id of the problem.
        id: String,
        /// When.
        at: Timestamp,
        /// Why, in words.
        reason: String,
        /// The incidents that tripped it again.
        incidents: Vec<String>,
    },
    /// An operator changed the problem (status, root cause, note).
    Changed {
        /// Id of the problem.
        id: String,
        /// What changed, in words.
        text: String,
    },
    /// An incident was linked to an existing open problem.
    Linked {
        /// Id of the problem.
        problem: String,
        /// Id of the incident.
        incident: String,
    },
}

/// Per-fingerprint state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Stream {
    /// Unlinked incidents opened within the window of the latest observation, oldest first.
    recent: VecDeque<(String, Timestamp)>,
    /// Index of the fingerprint's open problem, if any.
    open_problem: Option<usize>,
}

/// What a [`ProblemEngine`] looked like at one point (see [`ProblemEngine::mark`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProblemMark {
    /// The changeable fields of every problem that existed, in opening order.
    problems: Vec<ProblemFields>,
    /// State of each fingerprint.
    #[serde(with = "crate::model::pairs")]
    streams: HashMap<Fingerprint, Stream>,
    /// Incidents observed.
    observed: HashSet<String>,
    /// Problem of each linked incident.
    links: HashMap<String, String>,
    /// Row of each incident (row scope).
    rows: HashMap<String, String>,
}

/// The fields of one problem that change after it opened, and the lengths of its lists.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProblemFields {
    status: ProblemStatus,
    resolved_at: Option<Timestamp>,
    reopened: u32,
    root_cause: Option<String>,
    workaround: Option<String>,
    incidents: usize,
    history: usize,
    verification: Option<FixVerification>,
}

/// The problem state machine; see the module documentation for its rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProblemEngine {
    /// Configuration.
    rules: ProblemRules,
    /// Every problem, in opening order.
    problems: Vec<Problem>,
    /// Index into `problems` by id.
    by_id: HashMap<String, usize>,
    /// State of each fingerprint.
    #[serde(with = "crate::model::pairs")]
    streams: HashMap<Fingerprint, Stream>,
    /// Every incident observed, to make observations idempotent.
    observed: HashSet<String>,
    /// Problem id of each linked incident.
    links: HashMap<String, String>,
    /// Row of the event that opened each incident (row scope only).
    rows: HashMap<String, String>,
    /// Running counts of the final head of each problem's incident list, by index into
    /// `problems` (see [`ProblemEngine::fold_final`]); never rolled back. Absent in
    /// checkpoints written before issue 13 part 11: every incident is then read one by one.
    #[serde(default)]
    tallies: BTreeMap<usize, ProblemTally>,
}

impl ProblemEngine {
    /// An engine with no problems.
    pub fn new(rules: ProblemRules) -> Self {
        ProblemEngine {
            rules,
            problems: Vec::new(),
            by_id: HashMap::new(),
            streams: HashMap::new(),
            observed: HashSet::new(),
            links: HashMap::new(),
            rows: HashMap::new(),
            tallies: BTreeMap::new(),
        }
    }

    /// The rules the engine runs with.
    pub fn rules(&self) -> &ProblemRules {
        &self.rules
    }

    /// Observes a newly opened incident. Calls must come in `opened_at` order (event order);
    /// observing the same incident id again changes nothing.
    pub fn observe_opened(
        &mut self,
        id: &str,
        fingerprint: &Fingerprint,
        opened_at: Timestamp,
        severity: Severity,
    ) -> Option<ProblemChange> {
        if !self.observed.insert(id.to_string()) {
            return None;
        }
        let scoped = self.scoped(id, fingerprint);
        let fingerprint = &scoped;
        if let Some(change) = self.link_to_open(id, fingerprint) {
            return Some(change);
        }
        if let Some(change) = self.recur_in_verification(id, fingerprint, opened_at) {
            return Some(change);
        }
        let window = self.rules.window;
        let min = self.rules.min_incidents;
        let stream = self.streams.entry(fingerprint.clone()).or_default();
        stream.recent.push_back((id.to_string(), opened_at));
        let horizon = opened_at.minus(window);
        while stream.recent.front().is_some_and(|(_, t)| *t <= horizon) {
            stream.recent.pop_front();
        }
        if stream.recent.len() >= min {
            let incidents: Vec<String> = stream.recent.drain(..).map(|(i, _)| i).collect();
            let reason = format!(
                "{} {} incidents in {} within {}",
                incidents.len(),
                fingerprint.category,
                place(fingerprint),
                describe(window)
            );
            return Some(self.open(
                fingerprint,
                opened_at,
                ProblemTrigger::Recurrence,
                reason,
                incidents,
            ));
        }
        if self.is_sla(severity) {
            let reason = format!(
                "{} {} incident in {} (SLA rule: {} or worse)",
                severity.as_str(),
                fingerprint.category,
                place(fingerprint),
                self.sla_name()
            );
            return Some(self.open_for_one(id, fingerprint, opened_at, reason));
        }
        None
    }

    /// Observes that an incident became more severe at event time `at`. If it is not linked yet
    /// and now meets the SLA rule, it opens a problem on its own (or links to the fingerprint's
    /// open problem). Unknown or already linked incidents change nothing.
    pub fn observe_escalated(
        &mut self,
        id: &str,
        fingerprint: &Fingerprint,
        at: Timestamp,
        severity: Severity,
    ) -> Option<ProblemChange> {
        if !self.is_sla(severity) {
            return None;
        }
        let reason = format!(
            "{} incident in zone {} escalated to {} (SLA rule: {} or worse)",
            fingerprint.category,
            fingerprint.zone,
            severity.as_str(),
            self.sla_name()
        );
        self.observe_sla(id, fingerprint, at, reason)
    }

    /// Observes that an incident turned SLA-impacting at event time `at` for another reason than
    /// its severity (`reason` says which: sustained excursion, marked by a person). Like an
    /// escalation, it opens (or reopens, or links to) the fingerprint's problem unless the
    /// incident is linked already.
    pub fn observe_sla(
        &mut self,
        id: &str,
        fingerprint: &Fingerprint,
        at: Timestamp,
        reason: String,
    ) -> Option<ProblemChange> {
        if !self.observed.contains(id) || self.links.contains_key(id) {
            return None;
        }
        let scoped = self.scoped(id, fingerprint);
        let fingerprint = &scoped;
        if let Some(change) = self.link_to_open(id, fingerprint) {
            return Some(change);
        }
        Some(self.open_for_one(id, fingerprint, at, reason))
    }

    /// Applies an operator action about a problem at its time. Actions must come in event-time
    /// order with the incident observations.
    pub fn apply_action(&mut self, action: &OperatorAction) -> Result<ProblemChange, ActionError> {
        let Some(id) = action.kind.problem() else {
            return Err(ActionError::NotAnIncidentAction);
        };
        let &index = self
            .by_id
            .get(id)
            .ok_or_else(|| ActionError::UnknownProblem(id.to_string()))?;
        let problem = &mut self.problems[index];
        match &action.kind {
            ActionKind::SetProblemStatus { status, .. } => {
                let resolving =
                    *status == ProblemStatus::Resolved && problem.status != ProblemStatus::Resolved;
                problem.status = *status;
                problem.resolved_at = (*status == ProblemStatus::Resolved).then_some(action.at);
                if resolving {
                    problem.verification = Some(FixVerification {
                        from: action.at,
                        until: action.at.plus(self.rules.verification_window),
                        recurred: None,
                        result: None,
                    });
                }
            }
            ActionKind::SetRootCause {
                root_cause,
                workaround,
                ..
            } => {
                problem.root_cause = Some(root_cause.clone());
                problem.workaround = Some(workaround.clone());
                if problem.status != ProblemStatus::Resolved {
                    problem.status = ProblemStatus::KnownError;
                }
            }
            _ => {}
        }
        let record = ActionRecord::from(action);
        let text = record.text.clone();
        problem.history.push(record);
        Ok(ProblemChange::Changed {
            id: id.to_string(),
            text,
        })
    }

    /// Where the engine is now, to come back to with [`ProblemEngine::rollback`]. Costs the
    /// small fields of each problem and the per-incident maps, never a problem's history or
    /// incident list (they only grow, so going back truncates them).
    pub fn mark(&self) -> ProblemMark {
        ProblemMark {
            problems: self
                .problems
                .iter()
                .map(|p| ProblemFields {
                    status: p.status,
                    resolved_at: p.resolved_at,
                    reopened: p.reopened,
                    root_cause: p.root_cause.clone(),
                    workaround: p.workaround.clone(),
                    incidents: p.incidents.len(),
                    history: p.history.len(),
                    verification: p.verification.clone(),
                })
                .collect(),
            streams: self.streams.clone(),
            observed: self.observed.clone(),
            links: self.links.clone(),
            rows: self.rows.clone(),
        }
    }

    /// Goes back to `mark`. The engine must have got here from `mark` by observations and
    /// actions (never by a rollback to an earlier mark in between); it is then exactly the
    /// engine that `mark` was taken of.
    pub fn rollback(&mut self, mark: &ProblemMark) {
        for problem in self
            .problems
            .drain(mark.problems.len().min(self.problems.len())..)
        {
            self.by_id.remove(&problem.id);
        }
        // Never more than nothing: a tally only covers problems every mark knows.
        self.tallies.retain(|index, _| *index < mark.problems.len());
        for (problem, fields) in self.problems.iter_mut().zip(&mark.problems) {
            problem.status = fields.status;
            problem.resolved_at = fields.resolved_at;
            problem.reopened = fields.reopened;
            problem.root_cause.clone_from(&fields.root_cause);
            problem.workaround.clone_from(&fields.workaround);
            problem.incidents.truncate(fields.incidents);
            problem.history.truncate(fields.history);
            problem.verification.clone_from(&fields.verification);
        }
        self.streams.clone_from(&mark.streams);
        self.observed.clone_from(&mark.observed);
        self.links.clone_from(&mark.links);
        self.rows.clone_from(&mark.rows);
    }

    /// Forgets the per-incident bookkeeping (observed, rows, link) of incidents the incident
    /// engine forgot ([`crate::incidents::IncidentEngine::forget_final_before`]), here and in
    /// `marks`. Problems keep the ids in their incident lists.
    pub fn forget_incidents(&mut self, ids: &HashSet<String>, marks: &mut [&mut ProblemMark]) {
        let forget = |observed: &mut HashSet<String>,
                      links: &mut HashMap<String, String>,
                      rows: &mut HashMap<String, String>| {
            observed.retain(|id| !ids.contains(id));
            links.retain(|id, _| !ids.contains(id));
            rows.retain(|id, _| !ids.contains(id));
        };
        forget(&mut self.observed, &mut self.links, &mut self.rows);
        for mark in marks.iter_mut() {
            forget(&mut mark.observed, &mut mark.links, &mut mark.rows);
        }
    }

    /// Counts into each problem's tally ([`ProblemTally`]) the head of its incident list that
    /// is final and that no rollback can undo: ids before the list length that every mark in
    /// `marks` recorded for it (a problem some mark does not know is skipped), while `final_of`
    /// knows the incident (the first one it does not know ends the head, which stays in list
    /// order). `marks` must be every rollback mark the engine can still go back to, and not
    /// empty (without a mark the scope can restart from nothing, so nothing is counted).
    /// Returns how many incidents it counted.
    pub fn fold_final(
        &mut self,
        final_of: impl Fn(&str) -> Option<CountedIncident>,
        marks: &[&ProblemMark],
    ) -> usize {
        if marks.is_empty() {
            return 0;
        }
        let mut counted = 0;
        for (index, problem) in self.problems.iter().enumerate() {
            let Some(limit) = marks
                .iter()
                .map(|m| m.problems.get(index).map(|f| f.incidents))
                .min()
                .flatten()
            else {
                continue;
            };
            let limit = limit.min(problem.incidents.len());
            let start = self.tallies.get(&index).map_or(0, ProblemTally::folded);
            for id in problem.incidents.get(start..limit).unwrap_or_default() {
                let Some(incident) = final_of(id) else {
                    break;
                };
                self.tallies.entry(index).or_default().fold(&incident);
                counted += 1;
            }
        }
        counted
    }

    /// The running counts of the final head of problem `id`'s incident list, if any.
    pub fn tally(&self, id: &str) -> Option<&ProblemTally> {
        self.by_id.get(id).and_then(|i| self.tallies.get(i))
    }

    /// The ids of every problem's incidents that its tally does not count yet (their summaries
    /// are still read one by one).
    pub fn unfolded_incidents(&self) -> impl Iterator<Item = &String> {
        self.problems
            .iter()
            .enumerate()
            .flat_map(|(index, problem)| {
                let folded = self.tallies.get(&index).map_or(0, ProblemTally::folded);
                problem.incidents.get(folded..).unwrap_or_default()
            })
    }

    /// Every problem, ordered by opening time then id.
    pub fn problems(&self) -> Vec<Problem> {
        let mut all = self.problems.clone();
        all.sort_by(|a, b| (a.opened_at, &a.id).cmp(&(b.opened_at, &b.id)));
        all
    }

    /// One problem by id.
    pub fn problem(&self, id: &str) -> Option<&Problem> {
        self.by_id.get(id).map(|&i| &self.problems[i])
    }

    /// The id of the problem an incident is linked to, if any.
    pub fn problem_of(&self, incident_id: &str) -> Option<&str> {
        self.links.get(incident_id).map(String::as_str)
    }

    /// Records the row of the event that opened incident `id`, before it is observed; only the
    /// row scope keeps it (the first row noted wins).
    pub fn note_row(&mut self, id: &str, row: &str) {
        if self.rules.scope == ProblemScope::Row && !self.rows.contains_key(id) {
            self.rows.insert(id.to_string(), row.to_string());
        }
    }

    /// The fingerprint a problem of incident `id` with this fingerprint is kept under.
    fn scoped(&self, id: &str, fingerprint: &Fingerprint) -> Fingerprint {
        match self.rules.scope {
            ProblemScope::Zone => fingerprint.clone(),
            ProblemScope::Row => match self.rows.get(id) {
                Some(row) => Fingerprint {
                    zone: format!("{}{ROW_SEPARATOR}{row}", fingerprint.zone),
                    ..fingerprint.clone()
                },
                None => fingerprint.clone(),
            },
            ProblemScope::Site => Fingerprint {
                zone: SITE_WIDE.to_string(),
                ..fingerprint.clone()
            },
        }
    }

    fn is_sla(&self, severity: Severity) -> bool {
        self.rules.sla_severity.is_some_and(|s| severity >= s)
    }

    fn sla_name(&self) -> &'static str {
        self.rules.sla_severity.map_or("none", Severity::as_str)
    }

    /// Links `id` to the fingerprint's open problem, if there is one.
    fn link_to_open(&mut self, id: &str, fingerprint: &Fingerprint) -> Option<ProblemChange> {
        let index = self.streams.get(fingerprint)?.open_problem?;
        let problem = &mut self.problems[index];
        if !problem.status.is_open() {
            return None;
        }
        problem.incidents.push(id.to_string());
        self.links.insert(id.to_string(), problem.id.clone());
        Some(ProblemChange::Linked {
            problem: problem.id.clone(),
            incident: id.to_string(),
        })
    }

    /// Reopens the fingerprint's resolved problem when incident `id` opened at `at` inside the
    /// verification window of its fix: one incident of the pattern is enough, and the window
    /// records it as the evidence.
    fn recur_in_verification(
        &mut self,
        id: &str,
        fingerprint: &Fingerprint,
        at: Timestamp,
    ) -> Option<ProblemChange> {
        let index = self.streams.get(fingerprint)?.open_problem?;
        let problem = &mut self.problems[index];
        let window = problem.verification.as_mut()?;
        if problem.status != ProblemStatus::Resolved || at < window.from || at >= window.until {
            return None;
        }
        window.recurred = Some(Recurrence {
            incident: id.to_string(),
            at,
        });
        let reason = format!(
            "recurred inside the verification window: incident {id} opened {} after the fix (window {})",
            humantime::format_duration(at.since(window.from)),
            describe(window.until.since(window.from))
        );
        let incidents = vec![id.to_string()];
        Some(self.open(
            fingerprint,
            at,
            ProblemTrigger::Recurrence,
            reason,
            incidents,
        ))
    }

    /// Opens an SLA problem for the single incident `id`.
    fn open_for_one(
        &mut self,
        id: &str,
        fingerprint: &Fingerprint,
        at: Timestamp,
        reason: String,
    ) -> ProblemChange {
        if let Some(stream) = self.streams.get_mut(fingerprint) {
            stream.recent.retain(|(i, _)| i != id);
        }
        self.open(
            fingerprint,
            at,
            ProblemTrigger::Sla,
            reason,
            vec![id.to_string()],
        )
    }

    fn open(
        &mut self,
        fingerprint: &Fingerprint,
        at: Timestamp,
        trigger: ProblemTrigger,
        reason: String,
        incidents: Vec<String>,
    ) -> ProblemChange {
        let existing = self.streams.get(fingerprint).and_then(|s| s.open_problem);
        if let Some(index) = existing {
            // The fingerprint had a problem, now resolved (an open one would have linked).
            let problem = &mut self.problems[index];
            for incident in &incidents {
                self.links.insert(incident.clone(), problem.id.clone());
            }
            problem.incidents.extend(incidents.iter().cloned());
            problem.status = ProblemStatus::Open;
            problem.resolved_at = None;
            problem.reopened += 1;
            problem.history.push(ActionRecord {
                at,
                actor: ENGINE_ACTOR.to_string(),
                text: format!("reopened: {reason}"),
            });
            return ProblemChange::Reopened {
                id: problem.id.clone(),
                at,
                reason,
                incidents,
            };
        }
        let mut id = content_id("prb", fingerprint, at);
        if self.by_id.contains_key(&id) {
            id = format!("{id}-{:08x}", fnv1a32(&fingerprint.to_string()));
        }
        for incident in &incidents {
            self.links.insert(incident.clone(), id.clone());
        }
        let index = self.problems.len();
        self.problems.push(Problem {
            id: id.clone(),
            fingerprint: fingerprint.clone(),
            status: ProblemStatus::Open,
            opened_at: at,
            trigger,
            reason: reason.clone(),
            incidents: incidents.clone(),
            root_cause: None,
            workaround: None,
            resolved_at: None,
            reopened: 0,
            history: vec![ActionRecord {
                at,
                actor: ENGINE_ACTOR.to_string(),
                text: format!("opened: {reason}"),
            }],
            probable_cause: None,
            signature: None,
            verification: None,
            chronicle: Vec::new(),
        });
        self.by_id.insert(id.clone(), index);
        self.streams
            .entry(fingerprint.clone())
            .or_default()
            .open_problem = Some(index);
        ProblemChange::Opened {
            id,
            fingerprint: fingerprint.clone(),
            opened_at: at,
            trigger,
            reason,
            incidents,
        }
    }
}

/// A window in words: whole days as `30 days`, anything else in humantime form.
fn describe(window: Duration) -> String {
    let days = window.as_secs() / 86_400;
    if days > 0 && Duration::from_secs(days * 86_400) == window {
        if days == 1 {
            "1 day".to_string()
        } else {
            format!("{days} days")
        }
    } else {
        humantime::format_duration(window).to_string()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use coldaisle_core::Category;
    use Severity::{Critical, Warning};

    const T0: i64 = 1_764_072_000_000;
    const DAY: i64 = 86_400_000;

    fn fp(zone: &str) -> Fingerprint {
        Fingerprint {
            site: "dc1".into(),
            zone: zone.into(),
            category: Category::Thermal,
        }
    }

    fn engine() -> ProblemEngine {
        ProblemEngine::new(ProblemRules::default())
    }

    fn inc(t: i64) -> String {
        format!("inc-dc1-z1-thermal-{t}")
    }

    /// Observes warning incidents of Z1 at the given times.
    fn observe(e: &mut ProblemEngine, times: &[i64]) -> Vec<Option<ProblemChange>> {
        times
            .iter()
            .map(|&t| e.observe_opened(&inc(t), &fp("Z1"), Timestamp(t), Warning))
            .collect()
    }

    #[test]
    fn two_incidents_make_no_problem() {
        let mut e = engine();
        assert_eq!(observe(&mut e, &[T0, T0 + DAY]), vec![None, None]);
        assert!(e.problems().is_empty());
        assert_eq!(e.problem_of(&inc(T0)), None);
    }

    #[test]
    fn three_within_window_open_one_problem_and_a_fourth_links() {
        let mut e = engine();
        let times = [T0, T0 + 10 * DAY, T0 + 29 * DAY];
        let changes = observe(&mut e, &times);
        let id = format!("prb-dc1-z1-thermal-{}", T0 + 29 * DAY);
        assert_eq!(changes[0], None);
        assert_eq!(changes[1], None);
        assert_eq!(
            changes[2],
            Some(ProblemChange::Opened {
                id: id.clone(),
                fingerprint: fp("Z1"),
                opened_at: Timestamp(T0 + 29 * DAY),
                trigger: ProblemTrigger::Recurrence,
                reason: "3 thermal incidents in zone Z1 within 30 days".into(),
                incidents: times.iter().map(|&t| inc(t)).collect(),
            })
        );
        // A fourth one, even much later, links to the open problem.
        let later = T0 + 100 * DAY;
        assert_eq!(
            observe(&mut e, &[later]),
            vec![Some(ProblemChange::Linked {
                problem: id.clone(),
                incident: inc(later)
            })]
        );
        let problems = e.problems();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].incidents.len(), 4);
        assert_eq!(problems[0].status, ProblemStatus::Open);
        for t in times.iter().chain([&later]) {
            assert_eq!(e.problem_of(&inc(*t)), Some(id.as_str()));
        }
        assert_eq!(e.problem(&id).unwrap().incidents[3], inc(later));
        // Observing again changes nothing.
        assert_eq!(observe(&mut e, &[later, T0]), vec![None, None]);
        assert_eq!(e.problems(), problems);
    }

    #[test]
    fn three_spread_over_more_than_the_window_make_none() {
        let mut e = engine();
        assert_eq!(
            observe(&mut e, &[T0, T0 + 15 * DAY, T0 + 31 * DAY]),
            vec![None, None, None]
        );
        // The window is (t - 30 days, t]: exactly 30 days apart does not count either.
        let mut e = engine();
        assert_eq!(
            observe(&mut e, &[T0, T0 + 15 * DAY, T0 + 30 * DAY]),
            vec![None, None, None]
        );
        // ...but the sliding window trips as soon as three fit.
        assert!(observe(&mut e, &[T0 + 31 * DAY])[0].is_some());
        assert_eq!(e.problems()[0].incidents.len(), 3);
    }

    #[test]
    fn fingerprints_are_counted_separately() {
        let mut e = engine();
        for (i, zone) in ["Z1", "Z2", "Z1", "Z2"].iter().enumerate() {
            let t = T0 + i as i64 * DAY;
            assert_eq!(
                e.observe_opened(&inc(t), &fp(zone), Timestamp(t), Warning),
                None
            );
        }
    }

    #[test]
    fn critical_incident_opens_sla_problem_and_escalation_does_too() {
        let mut e = engine();
        let change = e.observe_opened(&inc(T0), &fp("Z2"), Timestamp(T0), Critical);
        let Some(ProblemChange::Opened {
            id,
            trigger,
            reason,
            incidents,
            ..
        }) = change
        else {
            panic!("expected a problem, got {change:?}");
        };
        assert_eq!(trigger, ProblemTrigger::Sla);
        assert_eq!(
            reason,
            "critical thermal incident in zone Z2 (SLA rule: critical or worse)"
        );
        assert_eq!(incidents, vec![inc(T0)]);
        assert_eq!(id, format!("prb-dc1-z2-thermal-{T0}"));

        let mut e = engine();
        assert_eq!(
            e.observe_opened(&inc(T0), &fp("Z1"), Timestamp(T0), Warning),
            None
        );
        assert_eq!(
            e.observe_escalated("unknown", &fp("Z1"), Timestamp(T0 + 1), Critical),
            None
        );
        let change = e.observe_escalated(&inc(T0), &fp("Z1"), Timestamp(T0 + 5), Critical);
        assert!(
            matches!(&change, Some(ProblemChange::Opened { trigger: ProblemTrigger::Sla, id, .. })
                if *id == format!("prb-dc1-z1-thermal-{}", T0 + 5))
        );
        // Already linked: a second escalation changes nothing.
        assert_eq!(
            e.observe_escalated(&inc(T0), &fp("Z1"), Timestamp(T0 + 6), Critical),
            None
        );
    }

    #[test]
    fn sla_rule_can_be_disabled() {
        let mut e = ProblemEngine::new(ProblemRules {
            sla_severity: None,
            ..ProblemRules::default()
        });
        assert_eq!(
            e.observe_opened(&inc(T0), &fp("Z1"), Timestamp(T0), Critical),
            None
        );
    }

    /// A final incident of [`inc`]'s form, counted with an airflow cause.
    fn counted(id: &str) -> Option<CountedIncident> {
        let t: i64 = id.rsplit('-').next()?.parse().ok()?;
        Some(CountedIncident {
            opened_at: Timestamp(t),
            cause: ProbableCause {
                kind: crate::cause::CauseKind::Airflow,
                summary: format!("airflow {t}"),
                evidence: Vec::new(),
            },
            point: crate::recurrence::IncidentPoint {
                opened_at: Timestamp(t),
                racks: Vec::new(),
            },
        })
    }

    #[test]
    fn a_tally_counts_only_what_every_mark_holds_and_no_rollback_undoes_it() {
        let mut e = engine();
        observe(&mut e, &[T0, T0 + DAY]);
        let before_problem = e.mark();
        observe(&mut e, &[T0 + 2 * DAY]);
        let opened = e.mark();
        observe(&mut e, &[T0 + 3 * DAY, T0 + 4 * DAY]);
        let id = e.problems()[0].id.clone();
        // No mark, or a mark from before the problem: nothing can be counted.
        assert_eq!(e.fold_final(counted, &[]), 0);
        assert_eq!(e.fold_final(counted, &[&before_problem, &opened]), 0);
        assert!(e.tally(&id).is_none());
        // Up to the shortest list any mark holds (3 ids when it opened), in list order.
        assert_eq!(e.fold_final(counted, &[&opened]), 3);
        let tally = e.tally(&id).unwrap();
        assert_eq!(
            (tally.folded(), tally.first_opened()),
            (3, Some(Timestamp(T0)))
        );
        assert_eq!(
            e.unfolded_incidents().cloned().collect::<Vec<_>>(),
            vec![inc(T0 + 3 * DAY), inc(T0 + 4 * DAY)]
        );
        // A rollback to that mark keeps the tally; the next fold stops at the first incident
        // that is not final.
        e.rollback(&opened);
        assert_eq!(e.tally(&id).map(ProblemTally::folded), Some(3));
        observe(&mut e, &[T0 + 3 * DAY, T0 + 4 * DAY, T0 + 5 * DAY]);
        let later = e.mark();
        let not_final = inc(T0 + 4 * DAY);
        let final_of = |i: &str| (i != not_final).then(|| counted(i)).flatten();
        assert_eq!(e.fold_final(final_of, &[&later]), 1);
        assert_eq!(e.tally(&id).map(ProblemTally::folded), Some(4));
        // Through JSON (a checkpoint) the tally stays; without it (an older checkpoint) the
        // engine loads with none.
        let json = serde_json::to_value(&e).unwrap();
        let back: ProblemEngine = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back.tally(&id), e.tally(&id));
        let mut old = json;
        old.as_object_mut().unwrap().remove("tallies");
        let old: ProblemEngine = serde_json::from_value(old).unwrap();
        assert!(old.tally(&id).is_none());
        assert_eq!(old.problems(), e.problems());
    }

    #[test]
    fn rules_serialise_with_humantime_durations() {
        let json = serde_json::to_string(&ProblemRules::default()).unwrap();
        assert_eq!(
            json,
            r#"{"min_incidents":3,"window":"30days","sla_severity":"critical"}"#
        );
        assert_eq!(
            serde_json::from_str::<ProblemRules>(&json).unwrap(),
            ProblemRules::default()
        );
        assert_eq!(describe(Duration::from_secs(90)), "1m 30s");
    }
}
