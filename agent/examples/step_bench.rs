//! Step-change detector throughput by window size (BENCHMARKS.md records the numbers).
//!
//! `cargo run --release -q -p coldaisle-agent --example step_bench`
//!
//! One core. The detector keeps the samples of `reference + min_duration` (1 h 30 min with the
//! defaults) and sorts both windows on every sample, so its cost grows with the poll rate:
//! 60 s polling keeps 90 samples, 10 s keeps 540, 1 s keeps the 4096-sample cap; the test runs
//! at most once a minute, so faster polling pays mostly for the window upkeep. Input: rack
//! power around 4 kW with ±0.15 kW noise and a 2 kW step every 6 hours (so the detector fires).

use coldaisle_agent::detect::step::StepDetector;
use coldaisle_config::detection::DetectionConfig;
use coldaisle_core::{SensorKind, Timestamp};
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let settings = DetectionConfig::default()
        .for_kind(SensorKind::RackPower)
        .step
        .clone()
        .expect("rack_power has a step detector");
    println!("poll interval  kept samples  k samples/s  µs/sample  transitions");
    for (poll_ms, samples) in [
        (60_000i64, 200_000usize),
        (10_000, 100_000),
        (1_000, 1_000_000),
    ] {
        let mut d = StepDetector::new(settings.clone());
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut fired = 0;
        let start = Instant::now();
        for i in 0..samples {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ts = i as i64 * poll_ms;
            let level = if (ts / (6 * 3_600_000)) % 2 == 0 {
                4.0
            } else {
                6.0
            };
            let v = level + ((x % 1000) as f64 / 1000.0 - 0.5) * 0.3;
            fired += usize::from(black_box(d.observe(Timestamp(ts), v)).is_some());
        }
        let secs = start.elapsed().as_secs_f64();
        let kept = (90 * 60_000 / poll_ms).min(4096);
        println!(
            "{:>10} s  {kept:>12}  {:>11.1}  {:>9.2}  {fired}",
            poll_ms / 1000,
            samples as f64 / secs / 1e3,
            secs / samples as f64 * 1e6
        );
    }
}
