//! Detector throughput and memory per sensor (BENCHMARKS.md records the numbers).
//!
//! `cargo run --release -p coldaisle-agent --example detector_bench [SAMPLES] [SENSORS]`
//! (defaults 20,000,000 samples per detector and 100,000 sensors for the memory; `benches/run.sh`
//! runs fewer, to fit its time budget)
//!
//! One core: each detector alone (the forecast at windows of 15, 30 and 60 samples), then the
//! whole per-sensor chain of an inlet temperature (impossible value, two limit levels, two rate
//! windows, stuck, learned band, forecast, flap gates, stale), fed a 30-second series with a daily cycle and noise. Memory: heap per sensor of
//! 100,000 inlet chains after two hours of samples, measured as growth of the resident set.

use coldaisle_agent::detect::band::BandDetector;
use coldaisle_agent::detect::chain::SensorDetectors;
use coldaisle_agent::detect::fault::ImpossibleValue;
use coldaisle_agent::detect::forecast::{
    theil_sen, theil_sen_by_sorting, ForecastSettings, Forecaster,
};
use coldaisle_agent::detect::rate::RateDetector;
use coldaisle_agent::detect::stuck::StuckDetector;
use coldaisle_agent::detect::threshold::ThresholdDetector;
use coldaisle_config::detection::DetectionConfig;
use coldaisle_core::{SensorKind, Timestamp};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Resident set size in bytes (Linux `/proc/self/status`), 0 if unknown.
fn rss() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<i64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Samples per detector unless the first argument says otherwise.
const DEFAULT_SAMPLES: usize = 20_000_000;
/// Sensors of the memory measurement unless the second argument says otherwise.
const DEFAULT_SENSORS: usize = 100_000;
const STEP_MS: i64 = 30_000;

fn series(len: usize) -> Vec<f64> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let day = (i as f64 * 30.0 / 86_400.0) * std::f64::consts::TAU;
            22.0 + 1.5 * day.sin() + ((x % 1000) as f64 / 1000.0 - 0.5) * 0.4
        })
        .collect()
}

fn measure(name: &str, values: &[f64], n: usize, mut f: impl FnMut(Timestamp, f64) -> usize) {
    let start = Instant::now();
    let mut fired = 0;
    for i in 0..n {
        let v = values[i % values.len()];
        fired += f(Timestamp(i as i64 * STEP_MS), v);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{name:<28} {:>8.1} M samples/s  ({n} samples, {fired} transitions, {secs:.2} s)",
        n as f64 / secs / 1e6
    );
}

/// The `i`-th argument as a positive count, or `default`.
fn count_arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .and_then(|a| a.replace('_', "").parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(default)
}

fn main() {
    let n_samples = count_arg(1, DEFAULT_SAMPLES);
    let sensors = count_arg(2, DEFAULT_SENSORS);
    let d = DetectionConfig::default();
    let inlet = d.for_kind(SensorKind::InletTemp);
    let values = series(2880 * 22); // whole days: the daily cycle wraps without a jump
    println!("one core, inlet_temp presets, 30 s samples with a daily cycle and noise");
    let mut t = ThresholdDetector::new(inlet.levels[0].clone());
    measure("threshold (one level)", &values, n_samples, |ts, v| {
        black_box(t.observe(ts, v)).is_some() as usize
    });
    let mut r = RateDetector::new(inlet.rates[0].clone());
    measure("rate_of_change_15m", &values, n_samples / 4, |ts, v| {
        black_box(r.observe(ts, v)).is_some() as usize
    });
    let mut s = StuckDetector::new(inlet.stuck.clone().expect("preset"));
    measure("stuck", &values, n_samples, |ts, v| {
        black_box(s.observe(ts, v)).is_some() as usize
    });
    let mut b = BandDetector::new(inlet.band.clone().expect("preset"));
    measure("learned_band", &values, n_samples / 4, |ts, v| {
        black_box(b.observe(ts, v)).is_some() as usize
    });
    let mut iv = ImpossibleValue::new(inlet.valid_range, inlet.sentinels.clone());
    measure("impossible_value", &values, n_samples, |ts, v| {
        black_box(iv.observe(ts, v * 10.0, v)).1.is_some() as usize
    });
    // The forecast slot: a Theil–Sen fit over the window on every sample, quadratic in the
    // window's samples (15, 30 and 60 samples of 30 s: 7 min, 14.5 min and 29.5 min).
    for samples in [15_u32, 30, 60] {
        let settings = ForecastSettings {
            window: Duration::from_millis(STEP_MS as u64) * (samples - 1),
            ..ForecastSettings::default()
        };
        let mut f = Forecaster::new(settings, 27.0);
        let n = n_samples / (10 * samples as usize);
        let start = Instant::now();
        measure(
            &format!("forecast ({samples} samples)"),
            &values,
            n,
            |ts, v| black_box(f.observe(ts, v)).is_some() as usize,
        );
        println!(
            "{:<28} {:>8.2} µs per sample",
            "",
            start.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    }
    // The fit alone, as it is (medians by selection in a reused buffer) and as it was (medians
    // by sorting fresh vectors), on the same windows of the series: the before/after of the
    // forecast's cost in one run.
    for samples in [15_usize, 30, 60] {
        let windows: Vec<Vec<(f64, f64)>> = (0..1000)
            .map(|k| {
                (0..samples)
                    .map(|i| (-30.0 * (samples - 1 - i) as f64, values[k * 7 + i]))
                    .collect()
            })
            .collect();
        let n = n_samples / (10 * samples);
        for (name, fit) in [
            (
                "selection",
                theil_sen as fn(&[(f64, f64)]) -> Option<(f64, f64)>,
            ),
            ("sorted (before)", theil_sen_by_sorting),
        ] {
            let start = Instant::now();
            for i in 0..n {
                black_box(fit(black_box(&windows[i % windows.len()])));
            }
            println!(
                "{:<28} {:>8.2} µs per fit",
                format!("fit {samples}, {name}"),
                start.elapsed().as_secs_f64() * 1e6 / n as f64
            );
        }
    }
    let mut chain = SensorDetectors::new(inlet, None, d.flap_window, d.stale_after);
    measure("full inlet chain", &values, n_samples / 10, |ts, v| {
        black_box(chain.observe(ts, v * 10.0, v)).len()
    });

    // Memory per sensor.
    let before = rss();
    let mut chains: Vec<SensorDetectors> = (0..sensors)
        .map(|_| SensorDetectors::new(inlet, None, d.flap_window, d.stale_after))
        .collect();
    for i in 0..240 {
        for (k, c) in chains.iter_mut().enumerate() {
            let v = values[(i + k) % values.len()];
            black_box(c.observe(Timestamp(i as i64 * STEP_MS), v * 10.0, v));
        }
    }
    let after = rss();
    let state = serde_json::to_vec(&chains[0].export()).map_or(0, |v| v.len());
    println!(
        "memory: {:.0} bytes per inlet sensor (RSS growth over {sensors} chains after 2 h of samples); stored state {state} bytes of JSON",
        (after - before) as f64 / sensors as f64
    );
}
