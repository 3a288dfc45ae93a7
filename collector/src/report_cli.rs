//! `coldaisle-collector report` and `status`: clients of `GET /api/v1/report` and
//! `GET /api/v1/agents`. Flags are checked here (clap names the flag in its error); the
//! collector renders the report in the asked format (each zone with its sensors trending
//! towards the limit: the open forecasts, see [`crate::report::forecasts`]), the agent summary
//! is rendered here.

use crate::ops_cli::ApiClient;
use anyhow::Context as _;
use clap::{Args, ValueEnum};
use coldaisle_core::wire::Status;
use coldaisle_core::Timestamp;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Where the API is and how to call it (as the other API clients).
#[derive(Debug, Args)]
pub struct Endpoint {
    /// Collector API base URL; defaults to the `http.listen` of `--config`.
    #[arg(long)]
    url: Option<String>,
    /// Collector config file (for the API address).
    #[arg(long, short, default_value = "/etc/coldaisle/collector.toml")]
    config: PathBuf,
    /// File holding the API bearer token; or set $COLDAISLE_API_TOKEN_FILE or
    /// $COLDAISLE_API_TOKEN.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// PEM file of CA certificates to trust for an HTTPS API (besides the system's); or set
    /// $COLDAISLE_API_CA_FILE.
    #[arg(long)]
    ca_file: Option<PathBuf>,
}

impl Endpoint {
    fn client(&self) -> anyhow::Result<ApiClient> {
        ApiClient::new(
            self.url.as_deref(),
            &self.config,
            self.token_file.as_deref(),
        )?
        .with_ca_file(self.ca_file.as_deref())
    }
}

/// Output formats of `report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Plain-text tables.
    Table,
    /// The report's JSON (the API's shape).
    Json,
    /// Markdown, for tickets and wikis.
    Markdown,
    /// CSV, one line per rack.
    Csv,
}

impl ReportFormat {
    fn name(self) -> &'static str {
        match self {
            ReportFormat::Table => "table",
            ReportFormat::Json => "json",
            ReportFormat::Markdown => "markdown",
            ReportFormat::Csv => "csv",
        }
    }
}

/// Flags of `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Site; may be left out when the zone (or the collector) has only one.
    #[arg(long)]
    site: Option<String>,
    /// Zone; without it, every zone of the site.
    #[arg(long)]
    zone: Option<String>,
    /// Period ending now, e.g. `24h`, `7d`, `30d` (the default is 24h).
    #[arg(long, value_parser = duration_text, conflicts_with_all = ["from", "to"])]
    since: Option<String>,
    /// Start of the period (RFC 3339, e.g. `2026-11-01T00:00:00Z`).
    #[arg(long, value_parser = time_text)]
    from: Option<String>,
    /// End of the period (RFC 3339; default now). Needs `--from`.
    #[arg(long, value_parser = time_text, requires = "from")]
    to: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    format: ReportFormat,
    #[command(flatten)]
    endpoint: Endpoint,
}

/// A positive humantime duration, kept as written for the API.
fn duration_text(text: &str) -> Result<String, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{e}; expected a duration such as 24h or 7d"))?;
    if d.is_zero() {
        return Err("must be above zero".into());
    }
    Ok(text.trim().to_string())
}

/// An RFC 3339 time, kept as written for the API.
fn time_text(text: &str) -> Result<String, String> {
    Timestamp::parse(text.trim())
        .map(|_| text.trim().to_string())
        .map_err(|e| format!("{e}; expected RFC 3339 such as 2026-11-25T12:00:00Z"))
}

/// `value` made safe inside a query string (RFC 3339 offsets carry `+`, which a server reads
/// as a space).
pub fn query_escape(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '_' | '.' | '~' | ':' => c.to_string(),
            other => {
                let mut buf = [0u8; 4];
                other
                    .encode_utf8(&mut buf)
                    .bytes()
                    .map(|b| format!("%{b:02X}"))
                    .collect()
            }
        })
        .collect()
}

/// The API path of a report request.
fn report_path(args: &ReportArgs) -> String {
    let mut path = format!("/api/v1/report?format={}", args.format.name());
    for (name, value) in [
        ("site", &args.site),
        ("zone", &args.zone),
        ("since", &args.since),
        ("from", &args.from),
        ("to", &args.to),
    ] {
        if let Some(value) = value {
            let _ = write!(path, "&{name}={}", query_escape(value));
        }
    }
    path
}

/// `report`: prints the facility report in the asked format.
pub fn report(args: &ReportArgs) -> anyhow::Result<()> {
    let body = args.endpoint.client()?.call(&report_path(args), None)?;
    if args.format == ReportFormat::Json {
        // Check the shape before printing, so a mismatched collector is an error here.
        let _: coldaisle_collector::report::facility::FacilityReport =
            serde_json::from_str(&body).context("decoding the report")?;
        println!("{body}");
    } else {
        print!("{body}");
    }
    Ok(())
}

/// Flags of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the API's JSON instead of the table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    endpoint: Endpoint,
}

/// What `status` reads of one agent in `/api/v1/agents` (other fields are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct AgentRow {
    /// Site of the agent.
    pub site: String,
    /// Highest contiguous seq stored.
    pub acked_upto: u64,
    /// Highest seq received.
    pub highest_seen: u64,
    /// Seqs the agent reported as dropped by its outbox quota.
    pub dropped_by_agent: u64,
    /// Last retained status.
    pub status: Option<Status>,
    /// Last batch or status (collector clock).
    pub last_activity: Option<Timestamp>,
    /// Nothing arrived for longer than `agent_silence`.
    pub silent: bool,
}

/// `status`: one line per agent.
pub fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let body = args.endpoint.client()?.call("/api/v1/agents", None)?;
    if args.json {
        println!("{body}");
        return Ok(());
    }
    let agents: BTreeMap<String, AgentRow> =
        serde_json::from_str(&body).context("decoding /api/v1/agents")?;
    print!("{}", render_status(&agents, Timestamp::now()));
    Ok(())
}

/// The agent table at `now` (pure). Columns: state (`online`, `offline` as the agent last
/// said, `silent` when nothing arrived for too long), last seen and its age, lag (records the
/// agent still holds unacknowledged, and seqs missing at the collector), clock skew, and
/// records dropped (seqs reported dropped, and the agent's own drop counters).
pub fn render_status(agents: &BTreeMap<String, AgentRow>, now: Timestamp) -> String {
    let header = [
        "AGENT",
        "SITE",
        "STATE",
        "LAST SEEN",
        "AGE",
        "PENDING",
        "MISSING",
        "SKEW",
        "DROPPED",
    ];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    let (mut online, mut offline) = (0, 0);
    for (id, a) in agents {
        let stats = a.status.as_ref().map(|s| &s.stats);
        let state = if a.silent {
            "silent".to_string()
        } else {
            a.status
                .as_ref()
                .map_or_else(|| "-".into(), |s| s.state.clone())
        };
        if state == "online" {
            online += 1;
        } else {
            offline += 1;
        }
        let age = a.last_activity.map_or_else(
            || "-".into(),
            |t| {
                let secs = u64::try_from(now.0.saturating_sub(t.0).max(0) / 1000).unwrap_or(0);
                humantime::format_duration(std::time::Duration::from_secs(secs))
                    .to_string()
                    .replace(' ', "")
            },
        );
        let dropped = stats.map_or(0, |s| s.dropped_summaries + s.dropped_events);
        lines.push(vec![
            id.clone(),
            a.site.clone(),
            state,
            a.last_activity
                .map_or_else(|| "-".into(), |t| t.to_rfc3339()),
            age,
            stats.map_or_else(|| "-".into(), |s| s.outbox_pending_records.to_string()),
            a.highest_seen.saturating_sub(a.acked_upto).to_string(),
            stats
                .and_then(|s| s.clock_skew_ms)
                .map_or_else(|| "-".into(), |ms| format!("{ms:+}ms")),
            format!("{} ({} at agent)", a.dropped_by_agent, dropped),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!(
        "{} agents: {online} online, {offline} offline or silent\n",
        agents.len()
    );
    for line in lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        report: ReportArgs,
    }

    fn parse(args: &[&str]) -> Result<ReportArgs, String> {
        Cli::try_parse_from([&["report"][..], args].concat())
            .map(|c| c.report)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn report_flags_build_the_query() {
        let args = parse(&[
            "--site", "dc1", "--zone", "Z 1", "--since", "7d", "--format", "csv",
        ])
        .expect("valid");
        assert_eq!(
            report_path(&args),
            "/api/v1/report?format=csv&site=dc1&zone=Z%201&since=7d"
        );
        let args = parse(&[
            "--from",
            "2026-11-01 00:00:00",
            "--to",
            "2026-11-02T00:00:00Z",
        ])
        .expect("valid");
        assert_eq!(
            report_path(&args),
            "/api/v1/report?format=table&from=2026-11-01%2000:00:00&to=2026-11-02T00:00:00Z"
        );
    }

    #[test]
    fn bad_report_flags_are_named() {
        for (args, flag) in [
            (&["--since", "soon"][..], "--since"),
            (&["--since", "0s"][..], "--since"),
            (&["--from", "yesterday"][..], "--from"),
            (&["--to", "2026-11-01T00:00:00Z"][..], "--from"),
            (
                &["--since", "1h", "--from", "2026-11-01T00:00:00Z"][..],
                "--from",
            ),
            (&["--format", "pdf"][..], "--format"),
        ] {
            let err = parse(args).expect_err("invalid");
            assert!(err.contains(flag), "{args:?}: {err}");
        }
    }

    #[test]
    fn status_table_counts_and_columns() {
        let json = r#"{
          "a1": {"site": "dc1", "acked_upto": 90, "highest_seen": 95, "dropped_by_agent": 3,
                 "status": {"state": "online", "agent": "a1", "version": "1", "config_hash": "h",
                            "ts": 1000, "stats": {"outbox_pending_records": 7,
                            "dropped_summaries": 2, "dropped_events": 1, "clock_skew_ms": -250}},
                 "last_activity": 50000, "silent": false, "records": 90},
          "a2": {"site": "dc2", "acked_upto": 5, "highest_seen": 5, "dropped_by_agent": 0,
                 "status": null, "last_activity": null, "silent": true}
        }"#;
        let agents: BTreeMap<String, AgentRow> = serde_json::from_str(json).expect("agents");
        let text = render_status(&agents, Timestamp(110_000));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "2 agents: 1 online, 1 offline or silent");
        let a1: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            a1,
            vec![
                "a1",
                "dc1",
                "online",
                "1970-01-01T00:00:50.000Z",
                "1m",
                "7",
                "5",
                "-250ms",
                "3",
                "(3",
                "at",
                "agent)"
            ]
        );
        assert!(
            lines[3].starts_with("a2") && lines[3].contains("silent"),
            "{text}"
        );
    }
}
