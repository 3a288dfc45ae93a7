//! Poll-interval jitter as a device sees it (pure): from the arrival times of one device's
//! requests, each gap between two polls against the configured interval.
//!
//! Jitter of one gap = |gap − interval| ÷ interval, recorded in parts per million in an
//! hdrhistogram so p99 and max come out of every healthy device's gaps together.

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use std::time::{Duration, Instant};

/// Gaps of every device, in parts per million of the interval.
pub struct Jitter {
    /// |gap − interval| ÷ interval × 10⁶ of every gap recorded.
    ppm: Histogram<u64>,
    /// The configured poll interval.
    interval: Duration,
}

impl Jitter {
    /// An empty record for devices polled every `interval`.
    pub fn new(interval: Duration) -> Result<Jitter> {
        Ok(Jitter {
            ppm: Histogram::new_with_bounds(1, 100_000_000, 3).context("jitter histogram")?,
            interval,
        })
    }

    /// Records the gaps between consecutive `arrivals` (oldest first) of one device, one
    /// request per poll. A device with fewer than two arrivals adds nothing.
    pub fn record(&mut self, arrivals: &[Instant]) -> Result<()> {
        let interval = self.interval.as_secs_f64();
        for pair in arrivals.windows(2) {
            let gap = pair[1].saturating_duration_since(pair[0]).as_secs_f64();
            let ppm = ((gap - interval).abs() / interval * 1e6).round() as u64;
            self.ppm
                .record(ppm.max(1))
                .context("recording a poll gap")?;
        }
        Ok(())
    }

    /// Number of gaps recorded.
    pub fn gaps(&self) -> u64 {
        self.ppm.len()
    }

    /// Jitter at `quantile` (0..=1), in percent of the interval.
    pub fn percent_at(&self, quantile: f64) -> f64 {
        self.ppm.value_at_quantile(quantile) as f64 / 1e4
    }

    /// Largest jitter seen, in percent of the interval.
    pub fn max_percent(&self) -> f64 {
        self.ppm.max() as f64 / 1e4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_measured_against_the_interval() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut jitter = Jitter::new(Duration::from_secs(10)).expect("histogram");
        // Gaps 10.0 s, 10.1 s (1 %), 9.5 s (5 %).
        jitter
            .record(&[at(0), at(10_000), at(20_100), at(29_600)])
            .expect("record");
        jitter.record(&[at(5)]).expect("one arrival: no gap");
        assert_eq!(jitter.gaps(), 3);
        assert!(
            (jitter.max_percent() - 5.0).abs() < 0.01,
            "{}",
            jitter.max_percent()
        );
        assert!((jitter.percent_at(0.5) - 1.0).abs() < 0.01);
        assert!(jitter.percent_at(0.0) < 0.001);
    }
}
