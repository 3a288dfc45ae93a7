//! Scores the agent's detector chain (exactly what `coldaisle-agent replay` runs:
//! `coldaisle_agent::replay::detect`) on public labelled data, NAB-style (standard profile),
//! next to NAB's published detectors scored by the same scorer on the same files.
//!
//! ```text
//! cargo run --release -p coldaisle-benches --bin detect_eval -- \
//!     [--nab DIR] [--skab DIR] [--detectors numentaTM,ARTime,...] [--explain]
//! ```
//! `--explain` prints, per file, every window (hit or missed) and every raise of the chain
//! (its detector and whether it fell in a window, in the probationary period or is a false
//! alarm), to see which rule fires where, and each published detector's verdict per window.
//! `DIR` is a checkout or a bare git mirror (defaults: `/work/.mirror/numenta+NAB/repo`,
//! `/work/.mirror/waico+SKAB/repo`). Each raise of the chain is one detection on its row; a
//! published detector detects where its `anomaly_score` reaches its standard-profile threshold
//! (`config/thresholds.json`). NAB's series are not temperatures, so for them the two
//! sensor-fault rules about thermometers are off: the valid range is opened (the
//! impossible-value check would otherwise judge CPU percent or bytes as a broken thermometer)
//! and the stuck rule (a byte count of zero for four hours is no frozen probe); NAB's real
//! temperature files (`realKnownCause/*temperature*`, °F)
//! and SKAB (°C) run with the defaults as they are.

use anyhow::Context as _;
use coldaisle_agent::replay::{self, input::Row, ReplaySettings};
use coldaisle_benches::eval::data::{self, Repo, Series};
use coldaisle_benches::eval::score::{self, Score, STANDARD};
use coldaisle_config::detection::{resolve_detection, RawDetection, RawKindDetection};
use coldaisle_core::{EventState, SensorKind, Timestamp};
use std::collections::BTreeMap;
use std::path::PathBuf;

const NAB_FAMILIES: [&str; 4] = [
    "realAWSCloudwatch",
    "realTraffic",
    "realAdExchange",
    "artificialWithAnomaly",
];
/// Real temperature series of NAB (°F): where the issue's false alarms were seen.
const NAB_TEMPERATURE: [&str; 2] = [
    "realKnownCause/ambient_temperature_system_failure.csv",
    "realKnownCause/machine_temperature_system_failure.csv",
];
const DEFAULT_DETECTORS: &str =
    "numentaTM,numenta,htmjava,ARTime,contextOSE,knncad,relativeEntropy,twitterADVec,windowedGaussian,skyline,bayesChangePt,randomCutForest,null";
const SKAB_FOLDERS: [&str; 3] = ["valve1", "valve2", "other"];
const SKAB_CHANNELS: [&str; 2] = ["Temperature", "Thermocouple"];
const OURS: &str = "coldaisle";
/// The baseline's smallest band width for NAB's series that are not temperatures: none (the
/// preset's 0.5 is a thermometer's resolution, and no floor is known for a CPU load or a
/// price; see `settings`). 0.05 and 0.005 score the same (BENCHMARKS.md).
const UNITLESS_MIN_WIDTH: f64 = 0.0;

struct Args {
    nab: PathBuf,
    skab: PathBuf,
    detectors: Vec<String>,
    explain: bool,
    /// The baseline's `min_width` for NAB's series that are not temperatures.
    unitless_min_width: f64,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        nab: PathBuf::from("/work/.mirror/numenta+NAB/repo"),
        skab: PathBuf::from("/work/.mirror/waico+SKAB/repo"),
        detectors: DEFAULT_DETECTORS.split(',').map(String::from).collect(),
        explain: false,
        unitless_min_width: UNITLESS_MIN_WIDTH,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--explain" {
            a.explain = true;
            continue;
        }
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--nab" => a.nab = value.into(),
            "--skab" => a.skab = value.into(),
            "--detectors" => a.detectors = value.split(',').map(String::from).collect(),
            "--unitless-min-width" => {
                a.unitless_min_width = value.parse().context("--unitless-min-width")?;
            }
            other => anyhow::bail!("unknown argument {other}; see the doc comment of detect_eval"),
        }
    }
    Ok(a)
}

/// Settings of the chain for a series: kind `temperature`, defaults, optionally °F and, for
/// series that are not temperatures (`unitless`: the baseline's `min_width` for them), without
/// the three rules about thermometers: the valid range (impossible value, a sensor-fault rule),
/// the stuck rule, and the baseline's smallest band width (0.5 °C, a thermometer's resolution:
/// wider than the whole noise of a price of 0.10 or a CPU load of 0.1 %).
fn settings(fahrenheit: bool, unitless: Option<f64>) -> anyhow::Result<ReplaySettings> {
    let mut raw = RawDetection::default();
    if let Some(min_width) = unitless {
        raw.temperature = Some(RawKindDetection {
            valid_min: Some(-1e300),
            valid_max: Some(1e300),
            stuck: Some(false),
            baseline_min_width: Some(min_width),
            ..RawKindDetection::default()
        });
    }
    let detection = resolve_detection(&raw).map_err(|p| anyhow::anyhow!("{}", p.message))?;
    Ok(ReplaySettings {
        kind: SensorKind::Temperature,
        detection,
        point: None,
        fahrenheit,
        sort: false,
    })
}

/// Rows of the chain's raises; counts them by detector into `by_detector`, and with `explain`
/// prints the file's windows and raises.
fn chain_detections(
    s: &Series,
    settings: &ReplaySettings,
    by_detector: &mut BTreeMap<String, usize>,
    explain: bool,
) -> Vec<usize> {
    let rows: Vec<Row> =
        s.ts.iter()
            .zip(&s.values)
            .enumerate()
            .map(|(i, (&ts, &v))| Row {
                line: i + 2,
                ts,
                value: Some(v),
            })
            .collect();
    let raises: Vec<(usize, String, f64)> = replay::detect(&rows, settings)
        .iter()
        .filter(|f| f.transition.state == EventState::Raised)
        .map(|f| {
            *by_detector.entry(f.detector.clone()).or_default() += 1;
            let row = s.ts.partition_point(|t| *t < f.transition.ts);
            (row, f.detector.clone(), f.transition.value)
        })
        .collect();
    if explain {
        print_explain(s, &raises);
        let clears = replay::detect(&rows, settings)
            .into_iter()
            .filter(|f| f.transition.state != EventState::Raised)
            .map(|f| s.ts.partition_point(|t| *t < f.transition.ts).to_string())
            .collect::<Vec<_>>();
        println!("  cleared at rows: {}", clears.join(" "));
    }
    raises.into_iter().map(|(row, _, _)| row).collect()
}

/// One file's windows (hit or missed) and the chain's raises, for `--explain`.
fn print_explain(s: &Series, raises: &[(usize, String, f64)]) {
    let at = |row: usize| s.ts.get(row).map_or(-1, |t| t.millis()) / 1000;
    let step = match (s.ts.first(), s.ts.get(1)) {
        (Some(a), Some(b)) => b.since(*a).as_secs(),
        _ => 0,
    };
    let probation = score::probation(s.ts.len());
    println!(
        "\n{}: {} rows, step {step} s, probation until row {probation}",
        s.name,
        s.ts.len()
    );
    for (i, (a, b)) in s.windows.iter().enumerate() {
        let hit = raises.iter().any(|(r, _, _)| (a..=b).contains(&r));
        let verdict = if hit { "hit" } else { "MISSED" };
        println!(
            "  window {i}: rows {a}..={b} (t {}..{}) {verdict}",
            at(*a),
            at(*b)
        );
    }
    for (row, detector, value) in raises {
        let place = match s.windows.iter().position(|(a, b)| (a..=b).contains(&row)) {
            Some(i) => format!("in window {i}"),
            None if *row < probation => "probation".to_string(),
            None => "FALSE ALARM".to_string(),
        };
        println!(
            "  raise row {row} (t {}) {detector} value {value}: {place}",
            at(*row)
        );
    }
}

/// Under `--explain`, a published detector's verdict on each window of the file (the first
/// row it detects inside), to compare window by window with the chain's.
fn print_published_windows(detector: &str, s: &Series, detected: &[usize]) {
    for (i, (a, b)) in s.windows.iter().enumerate() {
        match detected.iter().find(|r| (a..=b).contains(r)) {
            Some(row) => println!("  {detector} window {i}: hit at row {row}"),
            None => println!("  {detector} window {i}: MISSED"),
        }
    }
}

fn days(s: &Series) -> f64 {
    let first = score::probation(s.ts.len());
    match (s.ts.get(first), s.ts.last()) {
        (Some(a), Some(b)) => b.since(*a).as_secs_f64() / 86_400.0,
        _ => 0.0,
    }
}

/// Scores of every detector over one group of series.
type Table = BTreeMap<String, Score>;

fn add(table: &mut Table, detector: &str, s: &Series, detected: &[usize]) {
    let weights = score::row_weights(s.ts.len(), &s.windows, STANDARD);
    let sc = score::score(&weights, detected, STANDARD, days(s));
    table.entry(detector.to_string()).or_default().add(&sc);
}

/// A published detector's detections on a NAB file, and how far our score of the file is from
/// the sum of NAB's own `S(t)_standard` column (NAB's per-row score contributions: a check of
/// our scorer against NAB's code).
fn published(
    nab: &Repo,
    detector: &str,
    file: &str,
    threshold: f64,
    s: &Series,
) -> anyhow::Result<(Vec<usize>, f64)> {
    let (family, name) = file.split_once('/').context("file path")?;
    let text = nab.read(&format!("results/{detector}/{family}/{detector}_{name}"))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .context("empty result file")?
        .split(',')
        .collect();
    let col = |c: &str| header.iter().position(|h| *h == c);
    let score_col = col("anomaly_score").context("no anomaly_score column")?;
    let st_col = col("S(t)_standard");
    let mut detected = Vec::new();
    let mut theirs = 0.0;
    for (i, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        let v: f64 = f.get(score_col).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        if v >= threshold {
            detected.push(i);
        }
        theirs += st_col
            .and_then(|c| f.get(c)?.parse::<f64>().ok())
            .unwrap_or(0.0);
    }
    let weights = score::row_weights(s.ts.len(), &s.windows, STANDARD);
    let ours = score::score(&weights, &detected, STANDARD, 0.0).raw;
    // ARTime's files (added later, written by its own code) hold every row's weight in that
    // column, not the row's contribution, so their sum is no check.
    let deviation = if st_col.is_some() && detector != "ARTime" {
        (theirs - ours).abs()
    } else {
        0.0
    };
    Ok((detected, deviation))
}

fn print(title: &str, table: &Table, by_detector: &BTreeMap<String, usize>) {
    println!("\n### {title}\n");
    println!("| detector | windows hit | false alarms | per sensor-day | raw score | NAB score |");
    println!("|---|---|---|---|---|---|");
    let mut rows: Vec<(&String, &Score)> = table.iter().collect();
    rows.sort_by(|a, b| {
        b.1.normalised(STANDARD)
            .total_cmp(&a.1.normalised(STANDARD))
    });
    for (name, s) in rows {
        let bold = if name == OURS { "**" } else { "" };
        println!(
            "| {bold}{name}{bold} | {}/{} | {} | {:.3} | {:.2} | {:.1} |",
            s.hit,
            s.windows,
            s.false_alarms,
            s.false_alarms_per_day(),
            s.raw,
            s.normalised(STANDARD)
        );
    }
    let counts: Vec<String> = by_detector
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!(
        "\n{OURS} raises by detector (probation included): {}",
        counts.join(", ")
    );
}

fn nab_file(nab: &Repo, labels: &serde_json::Value, file: &str) -> anyhow::Result<Series> {
    let (ts, values) = data::nab_series(file, &nab.read(&format!("data/{file}"))?)?;
    let limits: Vec<(Timestamp, Timestamp)> = labels
        .get(file)
        .and_then(|w| w.as_array())
        .with_context(|| format!("no labels for {file}"))?
        .iter()
        .filter_map(|w| {
            let a = data::parse_time(w.get(0)?.as_str()?).ok()?;
            let b = data::parse_time(w.get(1)?.as_str()?).ok()?;
            Some((a, b))
        })
        .collect();
    let windows = data::windows_to_rows(&ts, &limits);
    Ok(Series {
        name: file.to_string(),
        ts,
        values,
        windows,
    })
}

fn run_nab(
    nab: &Repo,
    detectors: &[String],
    explain: bool,
    unitless_min_width: f64,
) -> anyhow::Result<()> {
    let labels: serde_json::Value =
        serde_json::from_str(&nab.read("labels/combined_windows.json")?).context("labels")?;
    let thresholds: serde_json::Value =
        serde_json::from_str(&nab.read("config/thresholds.json")?).context("thresholds")?;
    let open = settings(false, Some(unitless_min_width))?;
    let mut all = Table::new();
    let mut deviation: f64 = 0.0;
    let mut by_all = BTreeMap::new();
    for family in NAB_FAMILIES {
        let mut table = Table::new();
        let mut by = BTreeMap::new();
        for path in nab.list(&format!("data/{family}"))? {
            let file = path.trim_start_matches("data/").to_string();
            let s = nab_file(nab, &labels, &file)?;
            add(
                &mut table,
                OURS,
                &s,
                &chain_detections(&s, &open, &mut by, explain),
            );
            for d in detectors {
                let threshold = thresholds
                    .pointer(&format!("/{d}/standard/threshold"))
                    .and_then(|t| t.as_f64())
                    .with_context(|| format!("no standard threshold for {d}"))?;
                let (detected, dev) = published(nab, d, &file, threshold, &s)
                    .with_context(|| format!("{d} on {file}"))?;
                deviation = deviation.max(dev);
                if explain {
                    print_published_windows(d, &s, &detected);
                }
                add(&mut table, d, &s, &detected);
            }
        }
        for (k, v) in &table {
            all.entry(k.clone()).or_default().add(v);
        }
        print(&format!("NAB {family}"), &table, &by);
        for (k, v) in by {
            *by_all.entry(k).or_default() += v;
        }
    }
    print("NAB, the four families together", &all, &by_all);
    println!(
        "\nScorer check: largest difference between our raw score of a file and the sum of \
         NAB's own `S(t)_standard` column, over all result files read (ARTime's excepted: its \
         column holds every row's weight): {deviation:.2e}"
    );
    let fahrenheit = settings(true, None)?;
    let mut table = Table::new();
    let mut by = BTreeMap::new();
    for file in NAB_TEMPERATURE {
        let s = nab_file(nab, &labels, file)?;
        add(
            &mut table,
            OURS,
            &s,
            &chain_detections(&s, &fahrenheit, &mut by, explain),
        );
        for d in detectors {
            let threshold = thresholds
                .pointer(&format!("/{d}/standard/threshold"))
                .and_then(|t| t.as_f64())
                .unwrap_or(1.0);
            let (detected, _) = published(nab, d, file, threshold, &s)?;
            add(&mut table, d, &s, &detected);
        }
    }
    print(
        "NAB realKnownCause temperatures (ambient, machine; °F, defaults)",
        &table,
        &by,
    );
    let stationary = nab.list("data/artificialNoAnomaly")?;
    let mut table = Table::new();
    let mut by = BTreeMap::new();
    for path in stationary {
        let file = path.trim_start_matches("data/").to_string();
        let s = nab_file(nab, &labels, &file)?;
        add(
            &mut table,
            OURS,
            &s,
            &chain_detections(&s, &open, &mut by, explain),
        );
    }
    print(
        "NAB artificialNoAnomaly (no windows: false alarms only)",
        &table,
        &by,
    );
    Ok(())
}

fn run_skab(skab: &Repo, explain: bool) -> anyhow::Result<()> {
    let defaults = settings(false, None)?;
    let mut table = Table::new();
    let mut by = BTreeMap::new();
    for folder in SKAB_FOLDERS {
        for path in skab.list(&format!("data/{folder}"))? {
            for s in data::skab_series(&path, &skab.read(&path)?, &SKAB_CHANNELS)? {
                add(
                    &mut table,
                    OURS,
                    &s,
                    &chain_detections(&s, &defaults, &mut by, explain),
                );
            }
        }
    }
    print(
        "SKAB valve1, valve2, other (Temperature, Thermocouple; °C, defaults)",
        &table,
        &by,
    );
    let path = "data/anomaly-free/anomaly-free.csv";
    let mut table = Table::new();
    let mut by = BTreeMap::new();
    for s in data::skab_series(path, &skab.read(path)?, &SKAB_CHANNELS)? {
        add(
            &mut table,
            OURS,
            &s,
            &chain_detections(&s, &defaults, &mut by, explain),
        );
    }
    print(
        "SKAB anomaly-free (stationary: false alarms only)",
        &table,
        &by,
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let a = args()?;
    let nab = Repo::open(&a.nab, "fetch github:numenta/NAB")?;
    let skab = Repo::open(&a.skab, "fetch github:waico/SKAB")?;
    run_nab(&nab, &a.detectors, a.explain, a.unitless_min_width)?;
    run_skab(&skab, a.explain)?;
    Ok(())
}
