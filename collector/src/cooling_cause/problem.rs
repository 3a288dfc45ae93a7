//! A problem's probable cause from the readings of its incidents (issue 15, item 5): each
//! linked incident's readings verdict ([`super::explain`]) is one vote; the kind with the most
//! votes wins (a tie goes to the kind whose latest incident is the most recent), and the
//! evidence is that latest incident's, which quotes values and times.
//!
//! [`refine`] puts the verdict over the event-only cause the analysis filled in
//! ([`super::merge`]): a problem whose incidents have no cooling-unit readings to judge by
//! keeps its event cause, and a sensor-fault verdict of the events stays.
//!
//! Pure: verdicts in, a cause out.

use crate::cause::{CauseKind, ProbableCause};
use crate::problems::Problem;
use coldaisle_core::Timestamp;

/// The readings verdict of one incident linked to a problem.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentVerdict {
    /// The incident's id.
    pub incident: String,
    /// When it opened (the readings are judged around this time).
    pub opened_at: Timestamp,
    /// What its zone's readings say; `None` when they do not decide (no readings, no inlet
    /// rose, or no supply air to judge by).
    pub cause: Option<ProbableCause>,
}

/// The majority readings cause over `verdicts`, or `None` when no incident's readings decide.
/// The first evidence line counts the votes; the latest incident of the winning kind gives the
/// summary and the rest of the evidence.
pub fn of_incidents(verdicts: &[IncidentVerdict]) -> Option<ProbableCause> {
    let judged: Vec<(&IncidentVerdict, &ProbableCause)> = verdicts
        .iter()
        .filter_map(|v| v.cause.as_ref().map(|c| (v, c)))
        .collect();
    // Per kind: votes and the latest incident that voted for it.
    let mut tally: Vec<(CauseKind, usize, &IncidentVerdict, &ProbableCause)> = Vec::new();
    for (v, c) in &judged {
        match tally.iter_mut().find(|t| t.0 == c.kind) {
            Some(t) => {
                t.1 += 1;
                if (v.opened_at, &v.incident) > (t.2.opened_at, &t.2.incident) {
                    t.2 = v;
                    t.3 = c;
                }
            }
            None => tally.push((c.kind, 1, v, c)),
        }
    }
    let (_, votes, latest, cause) = tally.into_iter().max_by(|a, b| {
        (a.1, a.2.opened_at, &a.2.incident).cmp(&(b.1, b.2.opened_at, &b.2.incident))
    })?;
    let undecided = verdicts.len() - judged.len();
    let mut evidence = vec![format!(
        "the readings of {votes} of {} linked incidents point to this cause ({undecided} without readings that decide)",
        verdicts.len()
    )];
    evidence.push(format!(
        "latest: incident {} opened {}",
        latest.incident,
        latest.opened_at.to_rfc3339()
    ));
    evidence.extend(cause.evidence.iter().cloned());
    Some(ProbableCause {
        kind: cause.kind,
        summary: cause.summary.clone(),
        evidence,
    })
}

/// `problem`'s probable cause with the readings of its incidents over it ([`of_incidents`],
/// then [`super::merge`]); without an event cause the readings cause stands alone.
pub fn refine(problem: &mut Problem, verdicts: &[IncidentVerdict]) {
    let readings = of_incidents(verdicts);
    problem.probable_cause = match problem.probable_cause.take() {
        Some(events) => Some(super::merge(events, readings)),
        None => readings,
    };
}
