//! Renderings of a [`FacilityReport`]: a plain-text table for terminals, Markdown for tickets
//! and wikis, CSV (one line per rack) for spreadsheets. JSON is the report itself. Each zone
//! ends with its "trending towards the limit" list (open forecasts); in CSV a rack's earliest
//! expected crossing is its last column. Pure.

use super::ashrae::{Band, Standing};
use super::facility::{FacilityReport, ZoneSection};
use super::figures::{Figures, SecsRange};
use std::fmt::Write;

/// An output format of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Plain-text tables.
    Table,
    /// The report's JSON.
    Json,
    /// Markdown.
    Markdown,
    /// CSV, one line per rack.
    Csv,
}

impl Format {
    /// Every format, by name.
    pub const ALL: [(&'static str, Format); 4] = [
        ("table", Format::Table),
        ("json", Format::Json),
        ("markdown", Format::Markdown),
        ("csv", Format::Csv),
    ];

    /// The format named `text`, or an error naming the parameter `what` (`--format`,
    /// `format`) and the choices.
    pub fn parse(text: &str, what: &str) -> Result<Format, String> {
        Self::ALL
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text.trim()))
            .map(|&(_, f)| f)
            .ok_or_else(|| {
                format!("invalid {what} {text:?}: expected table, json, markdown or csv")
            })
    }

    /// The HTTP content type of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Table => "text/plain; charset=utf-8",
            Format::Json => "application/json",
            Format::Markdown => "text/markdown; charset=utf-8",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// `report` in `format`.
pub fn render(report: &FacilityReport, format: Format) -> String {
    match format {
        Format::Table => table(report),
        Format::Json => serde_json::to_string_pretty(report).unwrap_or_default(),
        Format::Markdown => markdown(report),
        Format::Csv => csv(report),
    }
}

/// Header of the rack table (CSV adds site and zone in front).
const RACK_COLUMNS: [&str; 12] = [
    "row",
    "rack",
    "sensors",
    "inlet_now",
    "inlet_avg",
    "inlet_max",
    "inlet_p95",
    "standing",
    "above_recommended",
    "above_allowable",
    "avg_trend",
    "incidents",
];

fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.1}"))
}

fn signed(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:+.1}"))
}

fn standing(s: Option<Standing>) -> &'static str {
    match s {
        None => "-",
        Some(Standing::Recommended) => "recommended",
        Some(Standing::Allowable) => "allowable",
        Some(Standing::OutsideAllowable) => "OUTSIDE",
    }
}

/// `12m` or `12m-1h` (at least – at most).
fn span(r: SecsRange) -> String {
    let one = |s: u64| {
        humantime::format_duration(std::time::Duration::from_secs(s))
            .to_string()
            .replace(' ', "")
    };
    if r.at_least == r.at_most {
        one(r.at_least)
    } else {
        format!("{}-{}", one(r.at_least), one(r.at_most))
    }
}

fn band(b: Band, unit: &str) -> String {
    format!("{}–{} {unit}", b.low, b.high)
}

/// The rack lines of a zone, as cells of [`RACK_COLUMNS`].
fn rack_cells(zone: &ZoneSection) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for row in &zone.rows {
        for rack in &row.racks {
            out.push(vec![
                row.row.clone(),
                rack.rack.clone(),
                rack.sensors.to_string(),
                num(rack.inlet.stats.current),
                num(rack.inlet.stats.avg),
                num(rack.inlet.stats.max),
                num(rack.inlet.p95),
                standing(rack.inlet.worst).to_string(),
                span(rack.inlet.recommended.above),
                span(rack.inlet.allowable.above),
                signed(rack.trend.avg_delta),
                rack.open_incidents.to_string(),
            ]);
        }
    }
    out
}

fn title(report: &FacilityReport) -> String {
    let length = humantime::format_duration(std::time::Duration::from_secs(report.period_secs));
    let env = &report.envelope;
    format!(
        "Report {} from {} to {} ({length}, {:?} roll-ups); ASHRAE {}: recommended {}, allowable {}",
        report.site,
        report.from.to_rfc3339(),
        report.to.to_rfc3339(),
        report.level,
        env.class.0.name(),
        band(env.temperature.recommended, "°C"),
        band(env.temperature.allowable, "°C"),
    )
    .replace("Minute", "minute")
    .replace("Hour", "hour")
    .replace("Day", "day")
}

fn figures_line(name: &str, f: &Figures, unit: &str) -> String {
    format!(
        "{name}: now {} {unit} ({}), avg {}, min {}, max {}, p95 {} (at least {}); outside recommended {} above / {} below, outside allowable {} above / {} below",
        num(f.stats.current),
        standing(f.standing),
        num(f.stats.avg),
        num(f.stats.min),
        num(f.stats.max),
        num(f.p95),
        num(f.p95_low),
        span(f.recommended.above),
        span(f.recommended.below),
        span(f.allowable.above),
        span(f.allowable.below),
    )
}

/// Lines common to the table and Markdown after the racks: envelope, cooling, hot spots,
/// sensors, incidents, problems. `bullet` starts a list item.
fn details(zone: &ZoneSection, bullet: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let measure = |name: &str, f: &Option<Figures>, unit: &str| match f {
        Some(f) => figures_line(name, f, unit),
        None => format!("{name}: no sensors"),
    };
    lines.push(measure("Humidity", &zone.humidity, "%RH"));
    lines.push(measure("Dew point", &zone.dew_point, "°C"));
    lines.push(format!("Cooling units ({}):", zone.cooling_units.len()));
    for u in &zone.cooling_units {
        lines.push(format!(
            "{bullet}{}: supply {} (avg {}), return {} (avg {}), ΔT {} (avg {})",
            u.unit,
            num(u.supply.current),
            num(u.supply.avg),
            num(u.return_air.current),
            num(u.return_air.avg),
            num(u.delta_t_current),
            num(u.delta_t_avg),
        ));
    }
    lines.push(format!("Hot spots ({}):", zone.hot_spots.len()));
    for (i, h) in zone.hot_spots.iter().enumerate() {
        lines.push(format!(
            "{bullet}{}. {} (row {}, rack {}): max {}, p95 {}, now {}, above recommended {}, above allowable {}",
            i + 1,
            h.sensor,
            h.row,
            h.rack,
            num(h.max),
            num(h.p95),
            num(h.current),
            span(h.above_recommended),
            span(h.above_allowable),
        ));
    }
    lines.push(format!("Stale sensors ({}):", zone.stale_sensors.len()));
    for s in &zone.stale_sensors {
        lines.push(format!(
            "{bullet}{} ({}, rack {}): last {} at {}",
            s.sensor,
            s.kind.as_str(),
            s.rack,
            num(Some(s.last)),
            s.last_at.to_rfc3339()
        ));
    }
    lines.push(format!("Faulty sensors ({}):", zone.faulty_sensors.len()));
    for f in &zone.faulty_sensors {
        lines.push(format!(
            "{bullet}{} {}{} in {} since {}",
            f.source_kind,
            f.name,
            f.detector
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default(),
            f.incident,
            f.since.to_rfc3339()
        ));
    }
    lines.push(format!("Open incidents ({}):", zone.open_incidents.len()));
    for i in &zone.open_incidents {
        lines.push(format!(
            "{bullet}{} {} {:?} since {}",
            i.id,
            i.category.as_str(),
            i.severity,
            i.opened_at.to_rfc3339()
        ));
    }
    lines.push(format!("Open problems ({}):", zone.open_problems.len()));
    for p in &zone.open_problems {
        lines.push(format!("{bullet}{} {:?}: {}", p.id, p.status, p.reason));
    }
    lines.extend(trending_lines(zone, bullet));
    lines
}

/// The zone's "trending towards the limit" list (open forecasts): sensor, rack, current
/// value, limit and expected crossing time.
fn trending_lines(zone: &ZoneSection, bullet: &str) -> Vec<String> {
    let mut lines = vec![format!(
        "Trending towards the limit ({}):",
        zone.forecasts.len()
    )];
    for f in &zone.forecasts {
        lines.push(format!(
            "{bullet}{}{}: now {}, limit {}, expected to cross at {} (forecast raised {} at {})",
            f.sensor,
            f.rack
                .as_deref()
                .map(|r| format!(" (rack {r})"))
                .unwrap_or_default(),
            num(f.current),
            num(f.limit),
            f.expected_crossing
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "-".into()),
            f.raised_at.to_rfc3339(),
            num(Some(f.value_at_raise)),
        ));
    }
    lines
}

/// The earliest expected crossing of `rack`'s open forecasts (CSV column `forecast_crossing`),
/// empty without one.
fn rack_crossing(zone: &ZoneSection, rack: &str) -> String {
    zone.forecasts
        .iter()
        .filter(|f| f.rack.as_deref() == Some(rack))
        .filter_map(|f| f.expected_crossing)
        .min()
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

fn zone_head(zone: &ZoneSection) -> String {
    format!(
        "{}; trend vs previous period: avg {}, max {}",
        figures_line("Inlet", &zone.inlet, "°C"),
        signed(zone.trend.avg_delta),
        signed(zone.trend.max_delta)
    )
}

fn table(report: &FacilityReport) -> String {
    let mut out = format!("{}\n", title(report));
    for zone in &report.zones {
        let _ = writeln!(out, "\nZone {}\n{}", zone.zone, zone_head(zone));
        let mut cells = vec![RACK_COLUMNS.iter().map(|c| c.to_uppercase()).collect()];
        cells.extend(rack_cells(zone));
        let widths: Vec<usize> = (0..RACK_COLUMNS.len())
            .map(|i| {
                cells
                    .iter()
                    .map(|r: &Vec<String>| r[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for line in &cells {
            let padded: Vec<String> = line
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            let _ = writeln!(out, "{}", padded.join("  ").trim_end());
        }
        for line in details(zone, "  ") {
            let _ = writeln!(out, "{line}");
        }
    }
    if report.zones.is_empty() {
        out.push_str("No zone.\n");
    }
    out
}

fn markdown(report: &FacilityReport) -> String {
    let mut out = format!("# {}\n", title(report));
    for zone in &report.zones {
        let _ = writeln!(out, "\n## Zone {}\n\n{}\n", zone.zone, zone_head(zone));
        let _ = writeln!(out, "| {} |", RACK_COLUMNS.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(RACK_COLUMNS.len()));
        for line in rack_cells(zone) {
            let cells: Vec<String> = line.iter().map(|c| c.replace('|', "\\|")).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        out.push('\n');
        for line in details(zone, "- ") {
            if line.starts_with("- ") {
                let _ = writeln!(out, "{line}");
            } else {
                let _ = writeln!(out, "\n**{line}**\n");
            }
        }
    }
    out
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

fn csv(report: &FacilityReport) -> String {
    let mut out = format!("site,zone,{},forecast_crossing\n", RACK_COLUMNS.join(","));
    for zone in &report.zones {
        for line in rack_cells(zone) {
            let mut fields = vec![csv_field(&report.site), csv_field(&zone.zone)];
            fields.extend(line.iter().map(|c| csv_field(c)));
            fields.push(csv_field(&rack_crossing(
                zone,
                line.get(1).map(String::as_str).unwrap_or_default(),
            )));
            let _ = writeln!(out, "{}", fields.join(","));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ashrae::{AshraeClass, Envelope};
    use crate::report::facility::{build, BucketParts, Inputs};
    use crate::report::figures::tests::{bucket, MIN};
    use crate::rollup::{Level, Rollup};
    use coldaisle_core::{SensorKind, Timestamp};
    use std::time::Duration;

    fn report(buckets: &[Rollup]) -> FacilityReport {
        build(&Inputs {
            site: "dc1",
            zones: &["Z1".to_string()],
            from: Timestamp(0),
            to: Timestamp(10 * MIN),
            level: Level::Minute,
            buckets: BucketParts::whole(buckets),
            previous_level: Level::Minute,
            previous: &[],
            incidents: &[],
            problems: &[],
            envelope: Envelope::of(AshraeClass::A1),
            stale_after: Duration::from_secs(600),
        })
    }

    fn sample() -> FacilityReport {
        report(&[
            bucket(
                "s1",
                SensorKind::InletTemp,
                Some("R1"),
                0,
                6,
                (20.0, 22.0, 24.0),
            ),
            bucket(
                "s2",
                SensorKind::InletTemp,
                Some("R,2"),
                0,
                6,
                (28.0, 29.0, 33.0),
            ),
        ])
    }

    #[test]
    fn formats_parse_by_name_and_name_the_parameter() {
        assert_eq!(Format::parse("Markdown", "--format"), Ok(Format::Markdown));
        let err = Format::parse("pdf", "--format").expect_err("unknown");
        assert!(err.starts_with("invalid --format \"pdf\""), "{err}");
    }

    #[test]
    fn csv_has_one_quoted_line_per_rack() {
        let text = render(&sample(), Format::Csv);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            format!("site,zone,{},forecast_crossing", RACK_COLUMNS.join(","))
        );
        // Natural order: ',' sorts before '1'.
        assert_eq!(
            lines[1],
            "dc1,Z1,A,\"R,2\",1,29.0,29.0,33.0,33.0,OUTSIDE,1m,0s-1m,-,0,"
        );
        assert_eq!(
            lines[2],
            "dc1,Z1,A,R1,1,22.0,22.0,24.0,24.0,recommended,0s,0s,-,0,"
        );
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn table_and_markdown_show_racks_and_details() {
        let report = sample();
        let table = render(&report, Format::Table);
        assert!(
            table.starts_with("Report dc1 from 1970-01-01T00:00:00.000Z"),
            "{table}"
        );
        assert!(
            table.contains("(10m, minute roll-ups); ASHRAE A1: recommended 18–27 °C"),
            "{table}"
        );
        assert!(
            table.contains("Hot spots (1):\n  1. s2 (row A, rack R,2): max 33.0"),
            "{table}"
        );
        assert!(table.contains("Humidity: no sensors"), "{table}");
        let header = table
            .lines()
            .find(|l| l.starts_with("ROW"))
            .expect("header");
        assert!(header.contains("INLET_P95"), "{header}");
        let markdown = render(&report, Format::Markdown);
        assert!(markdown.contains("| A | R1 | 1 | 22.0 |"), "{markdown}");
        assert!(markdown.contains("**Hot spots (1):**"), "{markdown}");
        let json: serde_json::Value =
            serde_json::from_str(&render(&report, Format::Json)).expect("json");
        assert_eq!(json["zones"][0]["hot_spots"][0]["sensor"], "s2");
        // An empty site still renders.
        let empty = FacilityReport {
            zones: Vec::new(),
            ..report
        };
        assert!(render(&empty, Format::Table).ends_with("No zone.\n"));
    }

    #[test]
    fn every_format_lists_the_sensors_trending_towards_the_limit() {
        use crate::report::forecasts::TrendingSensor;
        let mut report = sample();
        assert!(render(&report, Format::Table).contains("Trending towards the limit (0):"));
        report.zones[0].forecasts = vec![TrendingSensor {
            sensor: "s1".into(),
            rack: Some("R1".into()),
            current: Some(25.4),
            value_at_raise: 24.9,
            limit: Some(27.0),
            raised_at: Timestamp(5 * MIN),
            expected_crossing: Some(Timestamp(20 * MIN)),
        }];
        let line =
            "s1 (rack R1): now 25.4, limit 27.0, expected to cross at 1970-01-01T00:20:00.000Z";
        let table = render(&report, Format::Table);
        assert!(table.contains("Trending towards the limit (1):"), "{table}");
        assert!(table.contains(&format!("  {line}")), "{table}");
        let markdown = render(&report, Format::Markdown);
        assert!(
            markdown.contains("**Trending towards the limit (1):**"),
            "{markdown}"
        );
        assert!(markdown.contains(&format!("- {line}")), "{markdown}");
        let csv = render(&report, Format::Csv);
        let r1 = csv.lines().find(|l| l.contains(",R1,")).expect("R1 line");
        assert!(r1.ends_with(",0,1970-01-01T00:20:00.000Z"), "{csv}");
        let json: serde_json::Value =
            serde_json::from_str(&render(&report, Format::Json)).expect("json");
        let f = &json["zones"][0]["forecasts"][0];
        assert_eq!(
            (f["sensor"].as_str(), f["current"].as_f64()),
            (Some("s1"), Some(25.4))
        );
        assert_eq!(f["expected_crossing"], 20 * MIN);
    }
}
