//! Markdown postmortem timelines of an incident or a problem.
//!
//! Pure: renders what the analysis reports (an [`Incident`] with its chronicle, a [`Problem`]
//! with its incidents) as a Markdown document an operator can paste into a review.

use crate::cause::ProbableCause;
use crate::chronicle::ChronicleKind;
use crate::incidents::Incident;
use crate::problems::Problem;
use coldaisle_core::Timestamp;
use std::fmt::Write as _;

fn cause_section(out: &mut String, cause: Option<&ProbableCause>) {
    let Some(cause) = cause else {
        return;
    };
    let _ = writeln!(out, "## Probable cause\n\n{}\n", cause.summary);
    for line in &cause.evidence {
        let _ = writeln!(out, "- {line}");
    }
    out.push('\n');
}

fn kind_label(kind: ChronicleKind) -> &'static str {
    match kind {
        ChronicleKind::Event => "event",
        ChronicleKind::StateChange => "state",
        ChronicleKind::Operator => "operator",
        ChronicleKind::Notification => "notification",
        ChronicleKind::Finding => "finding",
    }
}

/// Escapes the characters that would break a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The postmortem of one incident: summary, probable cause, workaround, then the chronicle as
/// a table.
pub fn incident_postmortem(incident: &Incident) -> String {
    let mut out = String::new();
    let fp = &incident.fingerprint;
    let _ = writeln!(out, "# Incident {}\n", incident.id);
    let _ = writeln!(
        out,
        "- Site / zone / category: {} / {} / {}",
        fp.site, fp.zone, fp.category
    );
    let _ = writeln!(out, "- Severity: {}", incident.severity.as_str());
    let status = match incident.status {
        crate::incidents::IncidentStatus::Open => "open",
        crate::incidents::IncidentStatus::Resolved => "resolved",
    };
    let _ = writeln!(out, "- Status: {status}");
    let _ = writeln!(out, "- Opened: {}", incident.opened_at.to_rfc3339());
    if let Some(ack) = &incident.acknowledged {
        let _ = writeln!(
            out,
            "- Acknowledged: {} by {} (after {})",
            ack.at.to_rfc3339(),
            ack.actor,
            humantime::format_duration(ack.at.since(incident.opened_at))
        );
    }
    if let Some(resolved) = incident.resolved_at {
        let by = incident
            .resolved_by_hand
            .as_ref()
            .map(|r| format!(" by {}", r.actor))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "- Resolved: {}{by} (duration {})",
            resolved.to_rfc3339(),
            humantime::format_duration(resolved.since(incident.opened_at))
        );
    }
    if let Some(problem) = &incident.problem {
        let _ = writeln!(out, "- Problem: {problem}");
    }
    if let Some(workaround) = &incident.workaround {
        let _ = writeln!(out, "- Workaround (known error): {workaround}");
    }
    out.push('\n');
    cause_section(&mut out, incident.probable_cause.as_ref());
    let _ = writeln!(
        out,
        "## Timeline\n\n| time (UTC) | who | kind | what |\n|---|---|---|---|"
    );
    for entry in &incident.chronicle {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            entry.at.to_rfc3339(),
            cell(&entry.who),
            kind_label(entry.kind),
            cell(&entry.text)
        );
    }
    out
}

/// The postmortem of one problem: summary, root cause and workaround, history, and one line
/// per linked incident (those found in `incidents`).
pub fn problem_postmortem(problem: &Problem, incidents: &[Incident]) -> String {
    let mut out = String::new();
    let fp = &problem.fingerprint;
    let _ = writeln!(out, "# Problem {}\n", problem.id);
    let _ = writeln!(
        out,
        "- Site / zone / category: {} / {} / {}",
        fp.site, fp.zone, fp.category
    );
    let _ = writeln!(out, "- Status: {}", problem.status.as_str());
    let _ = writeln!(
        out,
        "- Opened: {} ({})",
        problem.opened_at.to_rfc3339(),
        problem.reason
    );
    if problem.reopened > 0 {
        let _ = writeln!(out, "- Reopened: {} time(s)", problem.reopened);
    }
    let _ = writeln!(
        out,
        "- Root cause: {}",
        problem.root_cause.as_deref().unwrap_or("not known yet")
    );
    if let Some(workaround) = &problem.workaround {
        let _ = writeln!(out, "- Workaround: {workaround}");
    }
    out.push('\n');
    cause_section(&mut out, problem.probable_cause.as_ref());
    let signature = crate::problem_text::signature_lines(problem);
    if !signature.is_empty() {
        let _ = writeln!(out, "## Recurrence signature\n");
        for text in signature {
            let _ = writeln!(out, "- {text}");
        }
        out.push('\n');
    }
    let verification = crate::problem_text::verification_lines(problem);
    if !verification.is_empty() {
        let _ = writeln!(out, "## Fix verification\n");
        for text in verification {
            let _ = writeln!(out, "- {text}");
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "## History\n\n| time (UTC) | who | what |\n|---|---|---|"
    );
    // The chronicle adds pager deliveries to the history; a bare record has only its history.
    let lines: Vec<(Timestamp, &str, &str)> = if problem.chronicle.is_empty() {
        problem
            .history
            .iter()
            .map(|h| (h.at, h.actor.as_str(), h.text.as_str()))
            .collect()
    } else {
        problem
            .chronicle
            .iter()
            .map(|c| (c.at, c.who.as_str(), c.text.as_str()))
            .collect()
    };
    for (at, who, what) in lines {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            at.to_rfc3339(),
            cell(who),
            cell(what)
        );
    }
    let _ = writeln!(
        out,
        "\n## Incidents\n\n| incident | opened (UTC) | severity | duration | acknowledged by |\n|---|---|---|---|---|"
    );
    for id in &problem.incidents {
        match incidents.iter().find(|i| &i.id == id) {
            Some(i) => {
                let duration = i
                    .resolved_at
                    .map(|r| humantime::format_duration(r.since(i.opened_at)).to_string())
                    .unwrap_or_else(|| "open".to_string());
                let ack = i.acknowledged.as_ref().map_or("-", |a| a.actor.as_str());
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {duration} | {} |",
                    i.id,
                    i.opened_at.to_rfc3339(),
                    i.severity.as_str(),
                    cell(ack)
                );
            }
            None => {
                let _ = writeln!(out, "| {id} | - | - | - | - |");
            }
        }
    }
    out
}
