//! `coldaisle-agent replay`: runs a CSV of `timestamp,value` through exactly the detector chain
//! the daemon runs for a sensor ([`crate::detect::chain::SensorDetectors`], flap gates
//! included) and prints one JSON object per line for every event transition.
//!
//! Settings: `--kind` alone uses the built-in presets of that kind; `--config FILE --sensor ID`
//! uses that config's `[detection]` table and the sensor's own `threshold` and kind. Input:
//! a header row, then `timestamp,value` rows; timestamps in RFC 3339 or `YYYY-MM-DD HH:MM:SS`
//! (UTC), in time order; an empty value is a poll without a reading (feeds the stale
//! detector). `--unit F` converts values to °C first; sentinel checks see the value as written.
//! The output depends on nothing but the input and the settings: same input, same bytes.

use crate::detect::chain::{Fired, SensorDetectors};
use anyhow::Context as _;
use coldaisle_config::detection::DetectionConfig;
use coldaisle_config::{AgentConfig, Threshold};
use coldaisle_core::{Category, EventState, SensorKind, Severity, Timestamp};
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

/// Runs `csv` (the file's text) through the detectors; returns the JSON lines.
pub fn replay(csv: &str, settings: &ReplaySettings) -> anyhow::Result<String> {
    let d = &settings.detection;
    let mut chain = SensorDetectors::new(
        d.for_kind(settings.kind),
        settings.point.as_ref(),
        d.flap_window,
        d.stale_after,
    );
    let category = settings.kind.category();
    let mut out = String::new();
    let mut previous: Option<Timestamp> = None;
    for (index, row) in csv.lines().enumerate().skip(1) {
        let line_no = index + 1;
        let row = row.trim();
        if row.is_empty() {
            continue;
        }
        let mut fields = row.split(',').map(|f| f.trim().trim_matches('"'));
        let ts_text = fields.next().unwrap_or("");
        let value_text = fields.next().unwrap_or("");
        let ts = Timestamp::parse(ts_text).map_err(|e| {
            anyhow::anyhow!(
                "line {line_no}: timestamp `{ts_text}`: {e} (expected RFC 3339 or YYYY-MM-DD HH:MM:SS)"
            )
        })?;
        if previous.is_some_and(|p| ts < p) {
            anyhow::bail!("line {line_no}: timestamp {ts_text} is earlier than the row before; sort the file by time");
        }
        previous = Some(ts);
        let fired = if value_text.is_empty() {
            chain.missing(ts)
        } else {
            let raw: f64 = value_text
                .parse()
                .map_err(|e| anyhow::anyhow!("line {line_no}: value `{value_text}`: {e}"))?;
            let value = if settings.fahrenheit {
                (raw - 32.0) * 5.0 / 9.0
            } else {
                raw
            };
            chain.observe(ts, raw, value)
        };
        for f in fired {
            push_line(&mut out, &f, category)?;
        }
    }
    Ok(out)
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
            })
        }
        _ => Ok(ReplaySettings {
            kind: kind.context("give --kind KIND, or --config FILE --sensor ID")?,
            detection: DetectionConfig::default(),
            point: None,
            fahrenheit,
        }),
    }
}

/// The `replay` command: reads the CSV, prints the transitions on stdout.
pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    let settings = settings(args)?;
    let text = std::fs::read_to_string(&args.csv)
        .with_context(|| format!("reading {}", args.csv.display()))?;
    let out = replay(&text, &settings).with_context(|| args.csv.display().to_string())?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing to stdout")
}

#[cfg(test)]
mod tests;
