//! Writes the fix-verification figures on a problem: the zone's inlet figures before and after
//! its resolution ([`crate::verification`]) from the stored roll-ups, and the verdict in its
//! chronicle.
//!
//! [`attach`] is pure (summaries, incidents and `now` come in); [`stored_summaries`] reads the
//! zone's inlet hour roll-ups around the resolution from the store, one summary per bucket
//! (without a store there are no figures: the verification stays pending); [`with_figures`]
//! puts them together for the API routes (problem record, postmortem).

use crate::chronicle::{ChronicleEntry, ChronicleKind};
use crate::incidents::Incident;
use crate::model::ENGINE_ACTOR;
use crate::problems::Problem;
use crate::rollup::{Level, Rollup};
use crate::rollup_store::{HistoryQuery, RollupStore};
use crate::verification::{verify, Verdict, VerificationInput, ZoneIncident};
use coldaisle_core::{ReadingSummary, SensorKind, Timestamp};

/// Upper limit of the recommended inlet band the "time above" figure counts (ASHRAE TC 9.9
/// recommended 27 °C, the inlet warning preset).
pub const RECOMMENDED_HIGH: f64 = 27.0;

/// Least share of each window the data must cover for a verdict.
pub const MIN_COVERAGE: f64 = 0.5;

/// The period whose roll-ups a problem's verification reads: its window before and after the
/// resolution. `None` without a verification window.
pub fn period(problem: &Problem) -> Option<(Timestamp, Timestamp)> {
    let v = problem.verification.as_ref()?;
    let length = v.until.since(v.from);
    Some((v.from.minus(length), v.until))
}

/// Fills `problem`'s verification result from `summaries` (the zone's, any kind: only inlets
/// count) and `incidents` (any; those of the problem's site, zone and category count, and
/// those of its own fingerprint are its pattern) at event time `now`. Once the verdict is in
/// (window over, or a recurrence), its sentence joins the chronicle at the window's end (or
/// the recurrence). A problem without a verification window is left as it is.
pub fn attach(
    problem: &mut Problem,
    summaries: &[ReadingSummary],
    incidents: &[Incident],
    now: Timestamp,
) {
    let Some(window) = problem.verification.as_mut() else {
        return;
    };
    let fp = &problem.fingerprint;
    let zone = fp.zone.split(crate::problems::ROW_SEPARATOR).next();
    let zone_incidents: Vec<ZoneIncident> = incidents
        .iter()
        .filter(|i| {
            i.fingerprint.site == fp.site
                && i.fingerprint.category == fp.category
                && (zone == Some(crate::problems::SITE_WIDE)
                    || Some(i.fingerprint.zone.as_str()) == zone)
        })
        .map(|i| ZoneIncident {
            opened_at: i.opened_at,
            same_pattern: problem.incidents.contains(&i.id),
        })
        .collect();
    let result = verify(&VerificationInput {
        resolved_at: window.from,
        window: window.until.since(window.from),
        now,
        recommended_high: RECOMMENDED_HIGH,
        min_coverage: MIN_COVERAGE,
        summaries,
        incidents: &zone_incidents,
    });
    let at = match &result.verdict {
        Verdict::Pending => None,
        Verdict::Recurred { first, .. } => Some(*first),
        _ => Some(window.until),
    };
    if let Some(at) = at {
        problem.chronicle.push(ChronicleEntry {
            at,
            who: ENGINE_ACTOR.to_string(),
            kind: ChronicleKind::Finding,
            text: format!("fix verification: {}", result.sentence),
        });
        problem.chronicle.sort_by_key(|e| (e.at, e.kind));
    }
    window.result = Some(result);
}

/// `(site, zone)` filter of a problem's place: its zone (the zone part of a row-scoped one),
/// or every zone of its site for a site-wide problem.
fn in_place(problem: &Problem) -> (String, Option<String>) {
    let fp = &problem.fingerprint;
    let zone = fp
        .zone
        .split(crate::problems::ROW_SEPARATOR)
        .next()
        .filter(|z| *z != crate::problems::SITE_WIDE)
        .map(str::to_string);
    (fp.site.clone(), zone)
}

/// The inlet roll-ups of `problem`'s zone over its verification [`period`], one summary per
/// stored hour bucket (the figures are hourly peaks; hours the retention dropped count as
/// gaps). Blocking (a store read).
pub fn stored_summaries(
    problem: &Problem,
    rollups: &RollupStore,
) -> Result<Vec<ReadingSummary>, coldaisle_store::StoreError> {
    let Some((from, to)) = period(problem) else {
        return Ok(Vec::new());
    };
    let (site, zone) = in_place(problem);
    let query = HistoryQuery {
        site,
        zone,
        rack: None,
        sensor: None,
        from,
        to,
    };
    let level = Level::Hour;
    Ok(rollups
        .buckets_at(&query, level)?
        .iter()
        .filter(|b| b.kind == SensorKind::InletTemp)
        .map(|b| summary_of(b, level.bucket_ms()))
        .collect())
}

/// `problem` with its verification figures from the collector's state at `now`: what
/// [`attach`] needs is taken under the caller's read lock, the store is read without it.
pub async fn with_figures(
    state: &crate::state::SharedState,
    mut problem: Problem,
    now: Timestamp,
) -> Problem {
    if problem.verification.is_none() {
        return problem;
    }
    let (incidents, rollups, now) = {
        let state = state.read().await;
        let now = crate::report::incident_time(&state, now);
        (state.analysis.incidents(now), state.rollups.clone(), now)
    };
    let unverified = problem.clone();
    let read = tokio::task::spawn_blocking(move || {
        let summaries = match &rollups {
            Some(store) => stored_summaries(&problem, store),
            None => Ok(Vec::new()),
        };
        match summaries {
            Ok(summaries) => attach(&mut problem, &summaries, &incidents, now),
            Err(e) => tracing::error!(
                problem = %problem.id,
                error = %e,
                "reading the zone's roll-ups for the fix verification failed; figures left out"
            ),
        }
        problem
    })
    .await;
    read.unwrap_or_else(|e| {
        tracing::error!(problem = %unverified.id, error = %e, "the fix verification task failed; figures left out");
        unverified
    })
}

/// One roll-up bucket as a summary over the bucket.
pub(crate) fn summary_of(bucket: &Rollup, bucket_ms: i64) -> ReadingSummary {
    ReadingSummary {
        sensor: bucket.sensor.clone(),
        kind: bucket.kind,
        location: bucket.location.clone(),
        from: bucket.start,
        to: Timestamp(bucket.start.millis().saturating_add(bucket_ms)),
        count: u32::try_from(bucket.count).unwrap_or(u32::MAX),
        min: bucket.min,
        max: bucket.max,
        sum: bucket.sum,
        last: bucket.last,
    }
}

/// Fills the verification lines of `report`'s problems under verification with their figures
/// ([`with_figures`]), so a zone report shows a fix's result, not only its window.
pub async fn report_figures(
    state: &crate::state::SharedState,
    report: &mut crate::report::ZoneReport,
    now: Timestamp,
) {
    if report.problems.iter().all(|p| p.verification.is_empty()) {
        return;
    }
    // One pass over the problems for the whole report.
    let mut verified: std::collections::HashMap<String, Problem> = {
        let state = state.read().await;
        state
            .analysis
            .problems()
            .into_iter()
            .filter(|p| p.verification.is_some())
            .map(|p| (p.id.clone(), p))
            .collect()
    };
    for summary in report.problems.iter_mut() {
        if summary.verification.is_empty() {
            continue;
        }
        if let Some(problem) = verified.remove(&summary.id) {
            let problem = with_figures(state, problem, now).await;
            summary.verification = crate::problem_text::verification_lines(&problem);
        }
    }
}
