//! Incident metrics per zone and category over a period, computed from what the analysis holds:
//! MTTA, MTTR, recurrence, noise reduction (raw events → incidents → pages) and the problems
//! that account for most incidents.
//!
//! Pure: incidents, problems, the event count and the page count come in with the period.

use crate::incidents::Incident;
use crate::problems::Problem;
use coldaisle_core::Timestamp;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Metrics of one (site, zone, category) over the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamMetrics {
    /// Site.
    pub site: String,
    /// Zone.
    pub zone: String,
    /// Category.
    pub category: String,
    /// Incidents opened in the period.
    pub incidents: usize,
    /// Of those, acknowledged.
    pub acknowledged: usize,
    /// Of those, resolved.
    pub resolved: usize,
    /// Mean time to acknowledge, seconds (acknowledged incidents only).
    pub mtta_secs: Option<f64>,
    /// Mean time to resolve, seconds (resolved incidents only).
    pub mttr_secs: Option<f64>,
    /// Share of the incidents linked to a problem (recurring or SLA-impacting), 0..1.
    pub recurrence_rate: f64,
}

/// A problem ranked by the incidents it accounts for in the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopProblem {
    /// Problem id.
    pub id: String,
    /// Its status.
    pub status: String,
    /// Why it opened.
    pub reason: String,
    /// Linked incidents opened in the period.
    pub incidents: usize,
}

/// The metrics document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// Period start (inclusive).
    pub from: Timestamp,
    /// Period end (exclusive).
    pub to: Timestamp,
    /// Raw events (sensor, zone, device) held by the analysis in the period.
    pub raw_events: usize,
    /// Incidents opened in the period.
    pub incidents: usize,
    /// Pages delivered in the period (trigger notifications).
    pub pages: usize,
    /// Per stream, sorted by site, zone, category.
    pub streams: Vec<StreamMetrics>,
    /// Problems by incidents in the period, most first (at most 10).
    pub top_problems: Vec<TopProblem>,
}

fn mean(values: &[Duration]) -> Option<f64> {
    (!values.is_empty())
        .then(|| values.iter().map(Duration::as_secs_f64).sum::<f64>() / values.len() as f64)
}

/// Computes the metrics of incidents opened in `[from, to)`.
pub fn metrics(
    incidents: &[Incident],
    problems: &[Problem],
    raw_events: usize,
    pages: usize,
    from: Timestamp,
    to: Timestamp,
) -> Metrics {
    let in_period: Vec<&Incident> = incidents
        .iter()
        .filter(|i| i.opened_at >= from && i.opened_at < to)
        .collect();
    let mut groups: BTreeMap<(String, String, String), Vec<&Incident>> = BTreeMap::new();
    for i in &in_period {
        let fp = &i.fingerprint;
        groups
            .entry((
                fp.site.clone(),
                fp.zone.clone(),
                fp.category.as_str().to_string(),
            ))
            .or_default()
            .push(i);
    }
    let streams = groups
        .into_iter()
        .map(|((site, zone, category), list)| {
            let tta: Vec<Duration> = list
                .iter()
                .filter_map(|i| i.acknowledged.as_ref().map(|a| a.at.since(i.opened_at)))
                .collect();
            let ttr: Vec<Duration> = list
                .iter()
                .filter_map(|i| i.resolved_at.map(|r| r.since(i.opened_at)))
                .collect();
            let linked = list.iter().filter(|i| i.problem.is_some()).count();
            StreamMetrics {
                site,
                zone,
                category,
                incidents: list.len(),
                acknowledged: tta.len(),
                resolved: ttr.len(),
                mtta_secs: mean(&tta),
                mttr_secs: mean(&ttr),
                recurrence_rate: linked as f64 / list.len() as f64,
            }
        })
        .collect();
    let mut top: Vec<TopProblem> = problems
        .iter()
        .map(|p| TopProblem {
            id: p.id.clone(),
            status: p.status.as_str().to_string(),
            reason: p.reason.clone(),
            incidents: in_period
                .iter()
                .filter(|i| i.problem.as_deref() == Some(p.id.as_str()))
                .count(),
        })
        .filter(|t| t.incidents > 0)
        .collect();
    top.sort_by(|a, b| b.incidents.cmp(&a.incidents).then(a.id.cmp(&b.id)));
    top.truncate(10);
    Metrics {
        from,
        to,
        raw_events,
        incidents: in_period.len(),
        pages,
        streams,
        top_problems: top,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::actions::{ActionKind, OperatorAction};
    use crate::analysis::Analysis;
    use crate::incidents::tests::{sensor, MIN, T0};
    use crate::incidents::IncidentRules;
    use crate::problems::ProblemRules;
    use coldaisle_core::EventState::{Cleared, Raised};
    use coldaisle_core::Severity::Warning;

    #[test]
    fn mtta_mttr_recurrence_and_top_problems() {
        let mut a = Analysis::new(IncidentRules::default(), ProblemRules::default());
        const DAY: i64 = 86_400_000;
        for k in 0..3_i64 {
            let t = T0 + k * DAY;
            a.ingest(sensor(
                "a1",
                k as u64 * 2 + 1,
                "Z1",
                "r1",
                Raised,
                Warning,
                28.0,
                t,
            ));
            a.ingest(sensor(
                "a1",
                k as u64 * 2 + 2,
                "Z1",
                "r1",
                Cleared,
                Warning,
                26.0,
                t + 5 * MIN,
            ));
        }
        a.ingest(sensor("a1", 9, "Z2", "r2", Raised, Warning, 28.0, T0));
        a.ingest_action(OperatorAction {
            id: 1,
            at: Timestamp(T0 + 2 * MIN),
            actor: "ann".into(),
            kind: ActionKind::Acknowledge {
                incident: format!("inc-dc1-z1-thermal-{T0}"),
            },
        })
        .unwrap();
        let now = Timestamp(T0 + 10 * DAY);
        let m = metrics(
            &a.incidents(now),
            &a.problems(),
            a.events_between(Timestamp(T0), now),
            2,
            Timestamp(T0),
            now,
        );
        assert_eq!(a.events_between(Timestamp(T0 + 1), now), 5);
        assert_eq!((m.raw_events, m.incidents, m.pages), (7, 4, 2));
        let z1 = &m.streams[0];
        assert_eq!(
            (z1.zone.as_str(), z1.incidents, z1.acknowledged, z1.resolved),
            ("Z1", 3, 1, 3)
        );
        assert_eq!(z1.mtta_secs, Some(120.0));
        // Each resolves 5 min after opening + the 15 min quiet period.
        assert_eq!(z1.mttr_secs, Some(1200.0));
        assert_eq!(z1.recurrence_rate, 1.0);
        let z2 = &m.streams[1];
        assert_eq!(
            (z2.incidents, z2.mttr_secs, z2.recurrence_rate),
            (1, None, 0.0)
        );
        assert_eq!(m.top_problems.len(), 1);
        assert_eq!(m.top_problems[0].incidents, 3);
        // A period that starts after the first day leaves it out.
        let later = metrics(
            &a.incidents(now),
            &a.problems(),
            0,
            0,
            Timestamp(T0 + DAY),
            now,
        );
        assert_eq!(later.streams[0].incidents, 2);
    }
}
