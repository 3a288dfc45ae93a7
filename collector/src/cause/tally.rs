//! A problem's probable cause kept as running counts (issue 13 part 11): how many of its
//! incidents point to each kind of cause, and the first incident's cause of each kind (the
//! one a problem's cause quotes), instead of every incident's cause.
//!
//! Invariant: adding causes in the problem's incident-list order gives exactly
//! [`super::of_problem`] of that list, whether they are added at once or a head of the list
//! first and the rest later. At most one cause is kept per [`CauseKind`].

use super::{CauseKind, ProbableCause};
use serde::{Deserialize, Serialize};

/// The causes of a problem's incidents so far, counted by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CauseTally {
    /// Causes added.
    counted: usize,
    /// Per kind, in the order each kind first appeared: how many, and the first cause of it.
    kinds: Vec<KindCount>,
}

/// One kind's count and its first cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct KindCount {
    kind: CauseKind,
    incidents: usize,
    first: ProbableCause,
}

impl CauseTally {
    /// Adds the next incident's cause, in the problem's list order.
    pub fn add(&mut self, cause: &ProbableCause) {
        self.counted += 1;
        match self.kinds.iter_mut().find(|k| k.kind == cause.kind) {
            Some(entry) => entry.incidents += 1,
            None => self.kinds.push(KindCount {
                kind: cause.kind,
                incidents: 1,
                first: cause.clone(),
            }),
        }
    }

    /// The problem's probable cause: the most frequent known kind (ties broken by the kinds'
    /// fixed rank), else the first kind seen, quoting the first incident of that kind.
    pub fn problem_cause(&self) -> Option<ProbableCause> {
        let winner = self
            .kinds
            .iter()
            .filter(|k| k.kind != CauseKind::Unknown)
            .max_by(|a, b| {
                a.incidents
                    .cmp(&b.incidents)
                    .then(b.kind.cmp_rank().cmp(&a.kind.cmp_rank()))
            })
            .or_else(|| self.kinds.first())?;
        let mut evidence = vec![format!(
            "{} of {} linked incidents point to this cause",
            winner.incidents, self.counted
        )];
        evidence.extend(winner.first.evidence.iter().cloned());
        Some(ProbableCause {
            kind: winner.kind,
            summary: winner.first.summary.clone(),
            evidence,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The computation before the tally: every cause in a list.
    fn of_list(causes: &[ProbableCause]) -> Option<ProbableCause> {
        let mut counts: Vec<(CauseKind, usize, &ProbableCause)> = Vec::new();
        for c in causes {
            match counts.iter_mut().find(|(k, _, _)| *k == c.kind) {
                Some(entry) => entry.1 += 1,
                None => counts.push((c.kind, 1, c)),
            }
        }
        let (kind, n, example) = counts
            .iter()
            .filter(|(k, _, _)| *k != CauseKind::Unknown)
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp_rank().cmp(&a.0.cmp_rank())))
            .or_else(|| counts.first())
            .copied()?;
        let mut evidence = vec![format!(
            "{n} of {} linked incidents point to this cause",
            causes.len()
        )];
        evidence.extend(example.evidence.iter().cloned());
        Some(ProbableCause {
            kind,
            summary: example.summary.clone(),
            evidence,
        })
    }

    fn cause() -> impl Strategy<Value = ProbableCause> {
        (0u8..5, 0u32..1000).prop_map(|(k, tag)| ProbableCause {
            kind: [
                CauseKind::CoolingCapacity,
                CauseKind::Airflow,
                CauseKind::RackDensity,
                CauseKind::SensorFault,
                CauseKind::Unknown,
            ][k as usize],
            summary: format!("summary {tag}"),
            evidence: vec![format!("evidence {tag}")],
        })
    }

    proptest! {
        /// Head first, then the rest (through a JSON round trip, as a checkpoint does): the
        /// same cause as the whole list.
        #[test]
        fn a_tally_gives_the_cause_of_the_whole_list(
            causes in proptest::collection::vec(cause(), 0..30),
            split in 0usize..30,
        ) {
            let split = split.min(causes.len());
            let mut head = CauseTally::default();
            causes[..split].iter().for_each(|c| head.add(c));
            let json = serde_json::to_string(&head).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut tally: CauseTally = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
            causes[split..].iter().for_each(|c| tally.add(c));
            prop_assert_eq!(tally.problem_cause(), of_list(&causes));
            prop_assert!(tally.kinds.len() <= 5);
        }
    }
}
