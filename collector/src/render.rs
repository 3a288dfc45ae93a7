//! Plain-text rendering of reports and problems for operators: fixed-width tables, RFC 3339
//! times, no colours, so the output reads the same in a terminal, a log or an e-mail.
//!
//! Pure: strings in, strings out. Missing figures are shown as `-`.

use crate::actions::ProblemStatus;
use crate::problems::{Problem, ProblemTrigger};
use crate::report::{IncidentSummary, ProblemSummary, ZoneReport};
use std::fmt::Write as _;
use std::time::Duration;

/// The zone report as text: a header, the rack table, then open incidents, incidents resolved
/// within the window, and the zone's problems.
pub fn render_zone_report(report: &ZoneReport) -> String {
    let mut out = String::new();
    let window = humantime::format_duration(Duration::from_secs(report.window_secs));
    line(
        &mut out,
        format!("Zone {} (site {})", report.zone, report.site),
    );
    line(
        &mut out,
        format!(
            "Generated {}, window {window} (readings from {})",
            report.generated_at.to_rfc3339(),
            report
                .generated_at
                .minus(Duration::from_secs(report.window_secs))
                .to_rfc3339()
        ),
    );
    out.push('\n');

    if report.racks.is_empty() {
        line(&mut out, "Racks: none reported".to_string());
    } else {
        let mut table = Table::new(&[
            ("RACK", Align::Left),
            ("SENSORS", Align::Right),
            ("INLET LAST", Align::Right),
            ("AVG", Align::Right),
            ("MAX °C", Align::Right),
            ("OPEN INCIDENTS", Align::Right),
        ]);
        for rack in &report.racks {
            table.row(vec![
                rack.rack.clone(),
                rack.sensors.to_string(),
                celsius(rack.inlet_last),
                celsius(rack.inlet_avg),
                celsius(rack.inlet_max),
                rack.open_incidents.to_string(),
            ]);
        }
        table.write(&mut out, "");
    }
    out.push('\n');

    render_open_incidents(&mut out, &report.open_incidents);
    out.push('\n');
    render_recent_incidents(&mut out, &report.recent_incidents);
    out.push('\n');
    render_problem_list(&mut out, &report.problems);
    render_forecasts(&mut out, &report.forecasts);
    out
}

/// Open forecasts, only when there are some (a zone without any reads as before).
fn render_forecasts(out: &mut String, forecasts: &[crate::report::forecasts::OpenForecast]) {
    if forecasts.is_empty() {
        return;
    }
    out.push('\n');
    line(
        out,
        format!(
            "Forecasts: trend reaches the limit soon ({}):",
            forecasts.len()
        ),
    );
    let mut table = Table::new(&[
        ("SENSOR", Align::Left),
        ("RACK", Align::Left),
        ("VALUE", Align::Right),
        ("LIMIT", Align::Right),
        ("RAISED", Align::Left),
        ("EXPECTED CROSSING", Align::Left),
    ]);
    for f in forecasts {
        table.row(vec![
            f.sensor.clone(),
            f.rack.clone().unwrap_or_else(|| "-".to_string()),
            format!("{:.1}", f.value),
            f.limit
                .map_or_else(|| "-".to_string(), |l| format!("{l:.1}")),
            f.raised_at.to_rfc3339(),
            f.expected_crossing
                .map_or_else(|| "-".to_string(), |t| t.to_rfc3339()),
        ]);
    }
    table.write(out, "");
}

fn render_open_incidents(out: &mut String, incidents: &[IncidentSummary]) {
    if incidents.is_empty() {
        line(out, "Open incidents: none".to_string());
        return;
    }
    line(out, format!("Open incidents ({}):", incidents.len()));
    let mut table = Table::new(&[
        ("ID", Align::Left),
        ("SEVERITY", Align::Left),
        ("OPENED", Align::Left),
        ("CATEGORY", Align::Left),
        ("ACTIVE SOURCES", Align::Left),
    ]);
    for i in incidents {
        let sources = if i.active_sources.is_empty() {
            "none (quiet period)".to_string()
        } else {
            i.active_sources.join(", ")
        };
        table.row(vec![
            i.id.clone(),
            i.severity.as_str().to_string(),
            i.opened_at.to_rfc3339(),
            i.category.as_str().to_string(),
            sources,
        ]);
    }
    table.write(out, "  ");
}

fn render_recent_incidents(out: &mut String, incidents: &[IncidentSummary]) {
    if incidents.is_empty() {
        line(out, "Resolved within the window: none".to_string());
        return;
    }
    line(
        out,
        format!("Resolved within the window ({}):", incidents.len()),
    );
    let mut table = Table::new(&[
        ("ID", Align::Left),
        ("SEVERITY", Align::Left),
        ("OPENED", Align::Left),
        ("RESOLVED", Align::Left),
        ("CATEGORY", Align::Left),
    ]);
    for i in incidents {
        table.row(vec![
            i.id.clone(),
            i.severity.as_str().to_string(),
            i.opened_at.to_rfc3339(),
            i.resolved_at
                .map_or_else(|| "-".to_string(), |t| t.to_rfc3339()),
            i.category.as_str().to_string(),
        ]);
    }
    table.write(out, "  ");
}

fn render_problem_list(out: &mut String, problems: &[ProblemSummary]) {
    if problems.is_empty() {
        line(out, "Problems: none".to_string());
        return;
    }
    line(out, format!("Problems ({}):", problems.len()));
    for p in problems {
        line(
            out,
            format!(
                "  {}  {}  opened {}  {}",
                p.id,
                status_name(p.status),
                p.opened_at.to_rfc3339(),
                p.category
            ),
        );
        line(out, format!("    reason: {}", p.reason));
        line(
            out,
            format!(
                "    linked incidents ({}): {}",
                p.incidents.len(),
                list_or_none(&p.incidents)
            ),
        );
        problem_story_lines(out, p);
    }
}

/// One problem as a multi-line block: id, fingerprint, status, opening, rule, reason and linked
/// incidents (one per line).
pub fn render_problem(problem: &Problem) -> String {
    let mut out = String::new();
    line(&mut out, format!("Problem {}", problem.id));
    let fields = [
        ("fingerprint", problem.fingerprint.to_string()),
        ("status", status_name(problem.status).to_string()),
        ("opened", problem.opened_at.to_rfc3339()),
        ("trigger", trigger_name(problem.trigger).to_string()),
        ("reason", problem.reason.clone()),
    ];
    for (name, value) in fields {
        line(&mut out, format!("  {:<12} {value}", format!("{name}:")));
    }
    if problem.incidents.is_empty() {
        line(&mut out, "  linked incidents: none".to_string());
    } else {
        line(
            &mut out,
            format!("  linked incidents ({}):", problem.incidents.len()),
        );
        for id in &problem.incidents {
            line(&mut out, format!("    {id}"));
        }
    }
    let cause = crate::problem_text::cause_lines(problem);
    if !cause.is_empty() {
        line(&mut out, "  probable cause:".to_string());
        for text in cause {
            line(&mut out, format!("    {text}"));
        }
    }
    let signature = crate::problem_text::signature_lines(problem);
    if !signature.is_empty() {
        line(&mut out, "  recurrence signature:".to_string());
        for text in signature {
            line(&mut out, format!("    {text}"));
        }
    }
    let verification = crate::problem_text::verification_lines(problem);
    if !verification.is_empty() {
        line(&mut out, "  fix verification:".to_string());
        for text in verification {
            line(&mut out, format!("    {text}"));
        }
    }
    out
}

/// A problem's recurrence signature and fix verification under its report line (issue 19);
/// nothing when it has neither.
pub fn problem_story_lines(out: &mut String, problem: &ProblemSummary) {
    for (title, lines) in [
        ("signature", &problem.signature),
        ("fix verification", &problem.verification),
    ] {
        if let Some((first, rest)) = lines.split_first() {
            line(out, format!("    {title}: {first}"));
            for text in rest {
                line(out, format!("      {text}"));
            }
        }
    }
}

/// Operator-facing name of a problem status.
fn status_name(status: ProblemStatus) -> &'static str {
    match status {
        ProblemStatus::Open => "open",
        ProblemStatus::Investigating => "investigating",
        ProblemStatus::KnownError => "known error",
        ProblemStatus::Resolved => "resolved",
    }
}

/// Operator-facing name of the rule that opened a problem.
fn trigger_name(trigger: ProblemTrigger) -> &'static str {
    match trigger {
        ProblemTrigger::Recurrence => "recurrence",
        ProblemTrigger::Sla => "SLA",
    }
}

fn celsius(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"))
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

/// Appends `text` and a newline.
fn line(out: &mut String, text: String) {
    out.push_str(&text);
    out.push('\n');
}

/// Column alignment.
#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}

/// A fixed-width table: every column as wide as its widest cell (in characters), two spaces
/// between columns, trailing spaces trimmed.
struct Table {
    headers: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(headers: &[(&'static str, Align)]) -> Self {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn write(&self, out: &mut String, indent: &str) {
        let mut widths: Vec<usize> = self
            .headers
            .iter()
            .map(|(h, _)| h.chars().count())
            .collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let header: Vec<String> = self.headers.iter().map(|(h, _)| h.to_string()).collect();
        for cells in std::iter::once(&header).chain(&self.rows) {
            let mut text = String::from(indent);
            for (i, ((cell, width), (_, align))) in
                cells.iter().zip(&widths).zip(&self.headers).enumerate()
            {
                if i > 0 {
                    text.push_str("  ");
                }
                // Writing to a String cannot fail.
                let _ = match align {
                    Align::Left => write!(text, "{cell:<width$}"),
                    Align::Right => write!(text, "{cell:>width$}"),
                };
            }
            line(out, text.trim_end().to_string());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::report::tests::{report_at, sample, HOUR, T0};
    use coldaisle_core::Timestamp;

    fn report_text() -> String {
        let st = sample();
        let report = report_at(
            &st,
            Some("dc1"),
            "Z1",
            Timestamp(T0 + 24 * HOUR),
            Duration::from_secs(24 * 3600),
        )
        .unwrap();
        render_zone_report(&report)
    }

    #[test]
    fn zone_report_has_header_table_and_sections() {
        let text = report_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Zone Z1 (site dc1)");
        assert_eq!(
            lines[1],
            "Generated 2025-11-26T12:00:00.000Z, window 1day (readings from 2025-11-25T12:00:00.000Z)"
        );
        assert_eq!(
            lines[3],
            "RACK       SENSORS  INLET LAST   AVG  MAX °C  OPEN INCIDENTS"
        );
        assert_eq!(
            lines[4],
            "R2               2        27.0  25.9    35.0               1"
        );
        assert_eq!(
            lines[5],
            "R10              2        20.0  20.0    20.0               0"
        );
        assert_eq!(
            lines[6],
            "(no rack)        1           -     -       -               0"
        );
        assert!(text.contains("Open incidents (1):\n  ID "));
        let open = lines
            .iter()
            .find(|l| l.contains("critical"))
            .unwrap()
            .to_string();
        assert!(open.starts_with("  inc-dc1-z1-thermal-"), "{open}");
        assert!(open.contains("2025-11-26T11:45:00.000Z  thermal   sensor:r2-a:threshold"));
        assert!(text.contains("Resolved within the window (1):"));
        assert!(text.contains("Problems (1):\n  prb-dc1-z1-thermal-"));
        assert!(text.contains(
            "    reason: critical thermal incident in zone Z1 (SLA rule: critical or worse)\n"
        ));
        assert!(text.contains("    linked incidents (1): inc-dc1-z1-thermal-"));
        assert!(
            text.contains("\n    signature: 1 incident: too few to call a pattern (at least 4 needed)\n      racks: R2 "),
            "{text}"
        );
        assert!(!text.contains("fix verification"), "not resolved: {text}");
        assert!(!text.contains('\x1b'), "no colours");
        assert!(text.lines().all(|l| l == l.trim_end()));
    }

    #[test]
    fn empty_sections_say_none() {
        let report = ZoneReport {
            site: "dc1".into(),
            zone: "Z1".into(),
            generated_at: Timestamp(T0),
            window_secs: 3600,
            racks: Vec::new(),
            open_incidents: Vec::new(),
            recent_incidents: Vec::new(),
            problems: Vec::new(),
            rollup_level: None,
            forecasts: Vec::new(),
        };
        let text = render_zone_report(&report);
        for expected in [
            "Racks: none reported",
            "Open incidents: none",
            "Resolved within the window: none",
            "Problems: none",
        ] {
            assert!(text.contains(expected), "{expected} missing in:\n{text}");
        }
        assert!(
            !text.contains("Forecasts"),
            "no section without forecasts: {text}"
        );
    }

    #[test]
    fn problem_block_lists_every_field() {
        let st = sample();
        let problem = st.analysis.problems().remove(0);
        let text = render_problem(&problem);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], format!("Problem {}", problem.id));
        assert_eq!(lines[1], "  fingerprint: dc1/Z1/thermal");
        assert_eq!(lines[2], "  status:      open");
        assert_eq!(lines[3], "  opened:      2025-11-26T11:45:00.000Z");
        assert_eq!(lines[4], "  trigger:     SLA");
        assert!(lines[5].starts_with("  reason:      critical thermal incident"));
        assert_eq!(lines[6], "  linked incidents (1):");
        assert_eq!(lines[7], format!("    {}", problem.incidents[0]));
        assert_eq!(lines[8], "  probable cause:");
        let cause = problem.probable_cause.as_ref().unwrap();
        assert_eq!(lines[9], format!("    {}", cause.summary));
        let signature = 10 + cause.evidence.len();
        assert_eq!(
            lines[signature - 1],
            format!("    - {}", cause.evidence.last().unwrap())
        );
        assert_eq!(lines[signature], "  recurrence signature:");
        assert!(
            lines[signature + 1].contains("too few to call a pattern"),
            "{text}"
        );
        assert!(lines[signature + 2].starts_with("    racks: "), "{text}");
        assert_eq!(lines.len(), signature + 3);
    }
}
