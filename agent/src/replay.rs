//! `coldaisle-agent replay`: runs a CSV of `timestamp,value` through exactly the detector chain
//! the daemon runs for a sensor ([`crate::detect::chain::SensorDetectors`], flap gates
//! included) and prints one JSON object per line for every event transition.
//!
//! Settings: `--kind` alone uses the built-in presets of that kind; `--config FILE --sensor ID`
//! uses that config's `[detection]` table and the sensor's own `threshold` and kind. Input:
//! a header row, then `timestamp,value` rows; timestamps in RFC 3339 or `YYYY-MM-DD HH:MM:SS`
//! (UTC); an empty value is a poll without a reading (feeds the stale detector). Real exports
//! are accepted as they are ([`input`]): rows that step back in time are skipped and counted
//! (or sorted with `--sort`), duplicate timestamps and gaps are counted, and the run ends with
//! a summary on stderr (rows, skipped, duplicates, gaps, raises, clears). `--unit F` converts values to °C first; sentinel checks see the value as written.
//! A `forecast` line (inlet kinds by default) carries `expected_crossing`, when the trend
//! reaches its `limit`. The output depends on nothing but the input and the settings: same
//! input, same bytes.

use crate::detect::chain::{Fired, SensorDetectors};
use anyhow::Context as _;
use coldaisle_config::detection::DetectionConfig;
use coldaisle_config::{AgentConfig, Threshold};
use coldaisle_core::{Category, EventState, SensorKind, Severity};
use serde::Serialize;
use std::io::Write as _;
use std::path::PathBuf;

/// Command-line arguments of `replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// CSV file with a header row and `timestamp,value` rows.
    #[arg(long)]
    pub csv: PathBuf,
    /// Sensor kind (e.g. inlet_temp, humidity, temperature); implied by --sensor.
    #[arg(long)]
    pub kind: Option<String>,
    /// Agent config whose `[detection]` settings and sensor to use.
    #[arg(long, requires = "sensor")]
    pub config: Option<PathBuf>,
    /// Sensor id in --config.
    #[arg(long, requires = "config")]
    pub sensor: Option<String>,
    /// Unit of the values: C or F.
    #[arg(long, default_value = "C")]
    pub unit: String,
    /// Sort the rows by time first (otherwise rows that step back in time are skipped).
    #[arg(long)]
    pub sort: bool,
}

/// The settings of one replay.
#[derive(Debug, Clone)]
pub struct ReplaySettings {
    /// Sensor kind.
    pub kind: SensorKind,
    /// Detector settings.
    pub detection: DetectionConfig,
    /// The sensor's own threshold, if any.
    pub point: Option<Threshold>,
    /// Values are °F.
    pub fahrenheit: bool,
    /// Sort the rows by time instead of skipping those that step back.
    pub sort: bool,
}

/// One output line.
#[derive(Debug, Serialize)]
struct Line<'a> {
    ts: String,
    state: EventState,
    detector: &'a str,
    severity: Severity,
    category: Category,
    value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<f64>,
    first_ts: String,
    duration_s: f64,
    /// A forecast raise: when the trend reaches `limit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    expected_crossing: Option<String>,
}

/// Parses a kind name as written in configs (`inlet_temp`, ...).
pub fn parse_kind(text: &str) -> Result<SensorKind, String> {
    coldaisle_config::detection::ALL_KINDS
        .into_iter()
        .find(|k| k.as_str() == text)
        .ok_or_else(|| {
            let known: Vec<&str> = coldaisle_config::detection::ALL_KINDS
                .iter()
                .map(|k| k.as_str())
                .collect();
            format!("unknown kind `{text}`; known: {}", known.join(", "))
        })
}

/// What one replay produced: the JSON lines and the summary for stderr.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    /// One JSON object per transition, newline-terminated (stdout).
    pub lines: String,
    /// Counts over the run (stderr).
    pub summary: Summary,
}

/// Counts of one replay, printed on stderr when it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Data rows in the file.
    pub rows: usize,
    /// Line numbers of rows skipped for stepping back in time.
    pub skipped: Vec<usize>,
    /// Rows that repeat the previous row's timestamp.
    pub duplicates: usize,
    /// Gaps between rows (longer than [`input::GAP_FACTOR`] usual steps).
    pub gaps: Vec<input::Gap>,
    /// Raises forwarded.
    pub raises: usize,
    /// Clears forwarded.
    pub clears: usize,
}

/// At most this many skipped line numbers are listed in the summary.
const LISTED_LINES: usize = 5;

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "replay: {} rows, {} skipped",
            self.rows,
            self.skipped.len()
        )?;
        if !self.skipped.is_empty() {
            let listed: Vec<String> = self
                .skipped
                .iter()
                .take(LISTED_LINES)
                .map(usize::to_string)
                .collect();
            let more = if self.skipped.len() > LISTED_LINES {
                ", …"
            } else {
                ""
            };
            write!(
                f,
                " (earlier than a row before them: line {}{more}; --sort replays them in order)",
                listed.join(", ")
            )?;
        }
        write!(f, ", {} duplicate timestamps", self.duplicates)?;
        write!(f, ", {} gaps", self.gaps.len())?;
        if let Some(g) = self.gaps.iter().max_by_key(|g| g.length()) {
            write!(
                f,
                " (longest {} from {})",
                humantime::format_duration(g.length()),
                g.from
            )?;
        }
        write!(f, ", {} raises, {} clears", self.raises, self.clears)
    }
}

/// Runs `csv` (the file's text) through the detectors: the JSON lines and the summary.
pub fn replay(csv: &str, settings: &ReplaySettings) -> anyhow::Result<Replay> {
    let rows = input::parse(csv)?;
    let total = rows.len();
    let ordered = input::order(rows, settings.sort);
    let fired = detect(&ordered.rows, settings);
    let category = settings.kind.category();
    let mut lines = String::new();
    let (mut raises, mut clears) = (0, 0);
    for f in &fired {
        match f.transition.state {
            EventState::Raised => raises += 1,
            EventState::Cleared => clears += 1,
        }
        push_line(&mut lines, f, category)?;
    }
    Ok(Replay {
        lines,
        summary: Summary {
            rows: total,
            skipped: ordered.skipped,
            duplicates: ordered.duplicates,
            gaps: ordered.gaps,
            raises,
            clears,
        },
    })
}

/// Runs time-ordered rows through the sensor's detector chain, exactly as the daemon does
/// ([`SensorDetectors`], flap gates included): every forwarded transition, in order. The
/// evaluation harness (`benches`, `detect_eval`) scores this very function.
pub fn detect(rows: &[input::Row], settings: &ReplaySettings) -> Vec<Fired> {
    let d = &settings.detection;
    let mut chain = SensorDetectors::new(
        d.for_kind(settings.kind),
        settings.point.as_ref(),
        d.flap_window,
        d.stale_after,
    );
    let mut out = Vec::new();
    for row in rows {
        let fired = match row.value {
            None => chain.missing(row.ts),
            Some(raw) => {
                let value = if settings.fahrenheit {
                    (raw - 32.0) * 5.0 / 9.0
                } else {
                    raw
                };
                chain.observe(row.ts, raw, value)
            }
        };
        out.extend(fired);
    }
    out
}

fn push_line(out: &mut String, f: &Fired, category: Category) -> anyhow::Result<()> {
    let t = &f.transition;
    let line = Line {
        ts: t.ts.to_rfc3339(),
        state: t.state,
        detector: &f.detector,
        severity: f.severity,
        category: if f.fault { Category::Device } else { category },
        value: t.value.is_finite().then_some(round(t.value)),
        limit: t.limit.map(round),
        first_ts: t.first_ts.to_rfc3339(),
        duration_s: t.ts.since(t.first_ts).as_secs_f64(),
        expected_crossing: f.expected_crossing.map(|c| c.to_rfc3339()),
    };
    out.push_str(&serde_json::to_string(&line).context("encoding a replay line")?);
    out.push('\n');
    Ok(())
}

/// Values are printed to 1/1000 of their unit (no float noise like `7.899999999999999`).
fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Resolves the arguments into settings (loads the config when given).
pub fn settings(args: &ReplayArgs) -> anyhow::Result<ReplaySettings> {
    let fahrenheit = match args.unit.as_str() {
        "C" | "c" => false,
        "F" | "f" => true,
        other => anyhow::bail!("--unit `{other}`: expected C or F"),
    };
    let kind = args
        .kind
        .as_deref()
        .map(parse_kind)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    match (&args.config, &args.sensor) {
        (Some(path), Some(id)) => {
            let config = AgentConfig::load(path)?;
            let (i, j, sensor) = config
                .devices
                .iter()
                .enumerate()
                .flat_map(|(i, d)| d.sensors.iter().enumerate().map(move |(j, s)| (i, j, s)))
                .find(|(_, _, s)| &s.id == id)
                .with_context(|| format!("{}: no sensor `{id}`", path.display()))?;
            if let Some(k) = kind.filter(|k| *k != sensor.kind) {
                anyhow::bail!(
                    "--kind {} contradicts sensor `{id}`, which is {}",
                    k.as_str(),
                    sensor.kind.as_str()
                );
            }
            Ok(ReplaySettings {
                kind: sensor.kind,
                point: crate::pipeline::point_threshold(&config, i, j),
                detection: config.detection.clone(),
                fahrenheit,
                sort: args.sort,
            })
        }
        _ => Ok(ReplaySettings {
            kind: kind.context("give --kind KIND, or --config FILE --sensor ID")?,
            detection: DetectionConfig::default(),
            point: None,
            fahrenheit,
            sort: args.sort,
        }),
    }
}

/// The `replay` command: reads the CSV, prints the transitions on stdout and the summary on
/// stderr.
pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    let settings = settings(args)?;
    let text = std::fs::read_to_string(&args.csv)
        .with_context(|| format!("reading {}", args.csv.display()))?;
    let out = replay(&text, &settings).with_context(|| args.csv.display().to_string())?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.lines.as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing to stdout")?;
    eprintln!("{}", out.summary);
    Ok(())
}

pub mod input;
#[cfg(test)]
mod tests;
