//! A problem's probable cause, recurrence signature (and, once written, its fix verification)
//! as lines of text, shared by the terminal rendering ([`crate::render`]), the Markdown postmortem
//! ([`crate::postmortem`]) and the reports, so all of them say the same thing.
//!
//! Pure: reads only the [`Problem`] the analysis returned.

use crate::problems::Problem;

/// The signature in lines: when the incidents happen (with the test and its p-value, or "too
/// few incidents to call a pattern"), by day, the racks ranked, and the peaks' trend. Empty
/// when the problem carries no signature.
pub fn signature_lines(problem: &Problem) -> Vec<String> {
    problem
        .signature
        .as_ref()
        .map(|s| parts(&s.summary))
        .unwrap_or_default()
}

/// The `; `-separated parts of a summary, leaving a `; ` inside parentheses alone (the trend
/// part says "(Theil–Sen; Mann–Kendall p = …)").
fn parts(summary: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0_i32;
    let mut current = String::new();
    let mut chars = summary.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ';' if depth <= 0 && chars.peek() == Some(&' ') => {
                chars.next();
                out.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    out.push(current);
    out
}

/// The probable cause in lines: the summary, then each evidence line (indented by the
/// caller). Empty without a cause. On the API's problem record the cause is the readings
/// verdict of its incidents when they decide ([`crate::cooling_cause::read`]).
pub fn cause_lines(problem: &Problem) -> Vec<String> {
    let Some(cause) = &problem.probable_cause else {
        return Vec::new();
    };
    std::iter::once(cause.summary.clone())
        .chain(cause.evidence.iter().map(|e| format!("- {e}")))
        .collect()
}

/// The fix verification in lines: the window, the recurrence that reopened the problem, and
/// once in, the figures before and after with the verdict. Empty before any resolution.
pub fn verification_lines(problem: &Problem) -> Vec<String> {
    let Some(v) = &problem.verification else {
        return Vec::new();
    };
    let mut lines = vec![format!(
        "window {} → {}",
        v.from.to_rfc3339(),
        v.until.to_rfc3339()
    )];
    if let Some(r) = &v.recurred {
        lines.push(format!(
            "recurred: incident {} at {} reopened the problem",
            r.incident,
            r.at.to_rfc3339()
        ));
    }
    match &v.result {
        Some(result) => lines.push(result.sentence.clone()),
        None => lines.push(format!(
            "figures: read /api/v1/problems/{} (computed from the roll-ups)",
            problem.id
        )),
    }
    lines
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::recurrence::{signature, IncidentPoint, RackPeak, SignatureSettings};
    use coldaisle_core::Timestamp;

    #[test]
    fn signature_lines_are_the_summary_parts() {
        let points: Vec<IncidentPoint> = (0..2)
            .map(|d| IncidentPoint {
                opened_at: Timestamp(1_793_577_600_000 + d * 86_400_000),
                racks: vec![RackPeak {
                    rack: "R07".into(),
                    peak: 29.0,
                }],
            })
            .collect();
        let mut problem: Problem = serde_json::from_value(serde_json::json!({
            "id": "prb-x", "fingerprint": {"site": "dc1", "zone": "Z1", "category": "thermal"},
            "status": "open", "opened_at": 0, "trigger": "recurrence", "reason": "r",
            "incidents": []
        }))
        .unwrap();
        assert!(signature_lines(&problem).is_empty());
        problem.signature = Some(signature(&points, &SignatureSettings::default()));
        let lines = signature_lines(&problem);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains("too few to call a pattern"), "{lines:?}");
        assert!(
            lines[1].starts_with("racks: R07 (2, peak 29.0)"),
            "{lines:?}"
        );
    }

    #[test]
    fn cause_lines_are_the_summary_then_the_evidence() {
        use crate::cause::{CauseKind, ProbableCause};
        let mut problem: Problem = serde_json::from_value(serde_json::json!({
            "id": "prb-x", "fingerprint": {"site": "dc1", "zone": "Z1", "category": "thermal"},
            "status": "open", "opened_at": 0, "trigger": "recurrence", "reason": "r",
            "incidents": []
        }))
        .unwrap();
        assert!(cause_lines(&problem).is_empty());
        problem.probable_cause = Some(ProbableCause {
            kind: CauseKind::CoolingCapacity,
            summary: "cooling capacity (from the readings)".into(),
            evidence: vec!["supply rose".into(), "inlets rose".into()],
        });
        assert_eq!(
            cause_lines(&problem),
            [
                "cooling capacity (from the readings)",
                "- supply rose",
                "- inlets rose"
            ]
        );
    }

    #[test]
    fn a_semicolon_inside_parentheses_does_not_split() {
        assert_eq!(
            parts("a (x; y); b; c (d)"),
            ["a (x; y)", "b", "c (d)"].map(String::from)
        );
        assert_eq!(parts("one"), ["one".to_string()]);
    }
}
