//! The read boundary of the readings cause: the API and report routes call this to put the
//! readings verdict ([`super::explain`]) on the incidents and problems they answer, so the
//! analysis engines stay event-only and pure.
//!
//! Where an incident's readings come from: the stored roll-ups (no summary is held in
//! memory), one-minute buckets while the incident is within their retention, one-hour
//! buckets after that (the level [`RollupStore::serving_level`] picks), with the windows
//! widened to whole buckets ([`windows_at`]), so a 20-day-old incident is still judged from
//! its readings. A state without a store judges from no readings (the event cause stays).
//!
//! The sensors left out as faulty ([`faulty_sensors`]) are named by the zone's sensor-fault
//! events around the opening: those the analysis holds (its hot span, a day by default),
//! and, with a store, those of the store's scope index (every event that has a fingerprint is
//! indexed by `site-zone-category`: one range read per category over the windows,
//! [`stored_faulty`]), so an incident older than the hot span still leaves its faulty
//! sensors out.
//!
//! What needs the state is taken under one read lock; the store is read without it, on a
//! blocking thread. A store error leaves that incident undecided (logged), never fails the
//! route.

use super::problem::{refine, IncidentVerdict};
use super::{explain, faulty_sensors, merge, Windows};
use crate::analysis::history::{zone_selectors, HistoryError, ScopeHistory};
use crate::incidents::Incident;
use crate::problems::{Problem, ROW_SEPARATOR, SITE_WIDE};
use crate::rollup::Level;
use crate::rollup_store::{HistoryQuery, RollupStore};
use crate::state::{CollectorState, SharedState, StoredHistory};
use coldaisle_core::{Category, ReadingSummary, Timestamp};
use std::collections::BTreeSet;
use std::time::Duration;

/// `base` widened for buckets of `level`: a baseline of at least three buckets and a peak
/// window of at least one bucket each side of the opening (one-minute buckets leave the
/// defaults as they are; hour buckets judge the three hours before against the two around).
pub fn windows_at(level: Level, base: Windows) -> Windows {
    let bucket = Duration::from_millis(u64::try_from(level.bucket_ms()).unwrap_or(0));
    Windows {
        before: base.before.max(bucket * 3),
        around: base.around.max(bucket),
    }
}

/// The roll-ups of `(site, zone)` around `opened` as summaries (one per sensor and bucket),
/// read at the finest level still kept at `now`, with the windows fitted to that level.
/// Blocking (a store read).
pub fn from_rollups(
    store: &RollupStore,
    site: &str,
    zone: &str,
    opened: Timestamp,
    windows: Windows,
    now: Timestamp,
) -> Result<(Vec<ReadingSummary>, Windows), coldaisle_store::StoreError> {
    let mut query = HistoryQuery {
        site: site.to_string(),
        zone: Some(zone.to_string()),
        rack: None,
        sensor: None,
        from: opened.minus(windows.before),
        to: opened.plus(windows.around),
    };
    let level = store.serving_level(&query, now);
    let fitted = windows_at(level, windows);
    query.from = opened.minus(fitted.before);
    query.to = opened.plus(fitted.around);
    let summaries = store
        .buckets_at(&query, level)?
        .iter()
        .map(|b| crate::fix_figures::summary_of(b, level.bucket_ms()))
        .collect();
    Ok((summaries, fitted))
}

/// The sensors of `(site, zone)` that a sensor-fault event stored in `history` names between
/// `from` and `to` (both included): one range read of the scope index per category.
/// Blocking (a store read).
pub fn stored_faulty(
    history: &dyn ScopeHistory,
    site: &str,
    zone: &str,
    from: Timestamp,
    to: Timestamp,
) -> Result<BTreeSet<String>, HistoryError> {
    let start = (from, String::new(), 0);
    let end = (to.plus(Duration::from_millis(1)), String::new(), 0);
    let mut faulty = BTreeSet::new();
    for selector in zone_selectors(site, zone) {
        let events = history.events(&selector, &start, &end)?;
        faulty.extend(faulty_sensors(&events, site, zone, from, to));
    }
    Ok(faulty)
}

/// One incident to judge: where and when, and the sensors not to trust.
#[derive(Debug, Clone)]
struct Job {
    incident: String,
    opened_at: Timestamp,
    site: String,
    zone: String,
    faulty: BTreeSet<String>,
}

impl Job {
    /// The job of a held incident (thermal only), taken under the state's read lock.
    fn of_incident(state: &CollectorState, incident: &Incident) -> Option<Job> {
        let fp = &incident.fingerprint;
        (fp.category == Category::Thermal)
            .then(|| Job::new(state, &incident.id, incident.opened_at, &fp.site, &fp.zone))
    }

    fn new(state: &CollectorState, id: &str, opened_at: Timestamp, site: &str, zone: &str) -> Job {
        let windows = Windows::default();
        let faulty = faulty_sensors(
            state.analysis.events(),
            site,
            zone,
            opened_at.minus(windows.before),
            opened_at.plus(windows.around),
        );
        Job {
            incident: id.to_string(),
            opened_at,
            site: site.to_string(),
            zone: zone.to_string(),
            faulty,
        }
    }

    /// The verdict from the zone's roll-ups (none without a store), leaving out the sensors
    /// faulty by the events held and by those stored (`history`). Blocking.
    fn judge(
        mut self,
        store: Option<&RollupStore>,
        history: Option<&StoredHistory>,
        now: Timestamp,
    ) -> IncidentVerdict {
        if let Some(history) = history {
            let windows = Windows::default();
            match stored_faulty(
                history.0.as_ref(),
                &self.site,
                &self.zone,
                self.opened_at.minus(windows.before),
                self.opened_at.plus(windows.around),
            ) {
                Ok(stored) => self.faulty.extend(stored),
                Err(e) => tracing::error!(
                    incident = %self.incident,
                    error = %e,
                    "reading the zone's stored fault events failed; only those held are left out"
                ),
            }
        }
        let (summaries, windows) = match store {
            Some(store) => match from_rollups(
                store,
                &self.site,
                &self.zone,
                self.opened_at,
                Windows::default(),
                now,
            ) {
                Ok(read) => read,
                Err(e) => {
                    tracing::error!(
                        incident = %self.incident,
                        error = %e,
                        "reading the zone's roll-ups for the probable cause failed; readings left out"
                    );
                    (Vec::new(), Windows::default())
                }
            },
            None => (Vec::new(), Windows::default()),
        };
        let refs: Vec<&ReadingSummary> = summaries.iter().collect();
        IncidentVerdict {
            cause: explain(&refs, self.opened_at, windows, &self.faulty),
            incident: self.incident,
            opened_at: self.opened_at,
        }
    }
}

/// When an incident opened, read from its content id (`inc-<site>-<zone>-<category>-<ms>`,
/// with an optional 8-hex-digit suffix): the opening of an incident the analysis no longer
/// holds.
pub fn opened_at_of_id(id: &str) -> Option<Timestamp> {
    let mut parts = id.rsplit('-');
    let last = parts.next()?;
    let millis = if last.len() >= 10 && last.bytes().all(|b| b.is_ascii_digit()) {
        last
    } else {
        parts.next()?
    };
    millis.parse().ok().map(Timestamp)
}

/// The jobs of `problem`'s incidents: held ones from the analysis, others (archived) placed in
/// the problem's zone at the time their id says. A site-wide problem's archived incidents are
/// left out (their zone is unknown here).
fn problem_jobs(state: &CollectorState, problem: &Problem, now: Timestamp) -> Vec<Job> {
    let fp = &problem.fingerprint;
    if fp.category != Category::Thermal {
        return Vec::new();
    }
    let zone = fp
        .zone
        .split(ROW_SEPARATOR)
        .next()
        .filter(|z| *z != SITE_WIDE);
    problem
        .incidents
        .iter()
        .filter_map(|id| match state.analysis.incident(id, now) {
            Some(incident) => Job::of_incident(state, &incident),
            None => {
                let opened = opened_at_of_id(id)?;
                Some(Job::new(state, id, opened, &fp.site, zone?))
            }
        })
        .collect()
}

/// `problems` with their probable cause read from the readings of their incidents
/// ([`super::problem::refine`]), at event time `now`.
pub async fn problems_with_cause(
    state: &SharedState,
    mut problems: Vec<Problem>,
    now: Timestamp,
) -> Vec<Problem> {
    let (jobs, store, now) = {
        let state = state.read().await;
        let now = crate::report::incident_time(&state, now);
        let jobs: Vec<Vec<Job>> = problems
            .iter()
            .map(|p| problem_jobs(&state, p, now))
            .collect();
        (jobs, (state.rollups.clone(), state.history.clone()), now)
    };
    let verdicts = judge_all(jobs, store, now).await;
    for (problem, verdicts) in problems.iter_mut().zip(verdicts) {
        if !verdicts.is_empty() {
            refine(problem, &verdicts);
        }
    }
    problems
}

/// `problem` with its probable cause read from its incidents' readings.
pub async fn problem_with_cause(state: &SharedState, problem: Problem, now: Timestamp) -> Problem {
    let mut one = problems_with_cause(state, vec![problem.clone()], now).await;
    one.pop().unwrap_or(problem)
}

/// `incident` (thermal) with the readings cause merged over its event cause ([`merge`]),
/// read from the zone's roll-ups.
pub async fn incident_with_cause(
    state: &SharedState,
    mut incident: Incident,
    now: Timestamp,
) -> Incident {
    if incident.probable_cause.is_none() {
        return incident;
    }
    let (job, store) = {
        let state = state.read().await;
        (
            Job::of_incident(&state, &incident),
            (state.rollups.clone(), state.history.clone()),
        )
    };
    let Some(job) = job else {
        return incident;
    };
    let mut verdicts = judge_all(vec![vec![job]], store, now).await;
    let readings = verdicts
        .pop()
        .and_then(|mut v| v.pop())
        .and_then(|v| v.cause);
    if let Some(events) = incident.probable_cause.take() {
        incident.probable_cause = Some(merge(events, readings));
    }
    incident
}

/// Every job judged on a blocking thread (store reads); a failed task leaves every verdict
/// out (logged).
async fn judge_all(
    jobs: Vec<Vec<Job>>,
    (store, history): (Option<RollupStore>, Option<StoredHistory>),
    now: Timestamp,
) -> Vec<Vec<IncidentVerdict>> {
    let count = jobs.len();
    let judged = tokio::task::spawn_blocking(move || {
        jobs.into_iter()
            .map(|list| {
                list.into_iter()
                    .map(|job| job.judge(store.as_ref(), history.as_ref(), now))
                    .collect()
            })
            .collect::<Vec<Vec<IncidentVerdict>>>()
    })
    .await;
    judged.unwrap_or_else(|e| {
        tracing::error!(error = %e, "the probable-cause task failed; readings left out");
        vec![Vec::new(); count]
    })
}
