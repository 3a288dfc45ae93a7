//! Anomaly likelihood of a residual stream: how unusual the recent run of residuals is,
//! against the sensor's own history of such runs.
//!
//! Method (Ahmad, Lavin, Purdy & Agha, "Unsupervised real-time anomaly detection for
//! streaming data", Neurocomputing 262, 2017, section 4.2; the score NAB's HTM detectors
//! report): the raw score of each sample (here `|z|`, the residual in robust standard
//! deviations, capped) is averaged over the last few samples (an EWMA of about 10 samples);
//! the long-run mean and variance of that short average are learned (an EWMA over about a
//! week of samples); the likelihood is the Gaussian tail of the current short average,
//! expressed as its distance from the long mean in long standard deviations (the paper
//! thresholds the tail probability at 1e-5, 4.26 standard deviations; the baseline raises at
//! 5, a tail of 3e-7, see `baseline.rs`). A band on single values misses a run of residuals
//! that are each inside it but together unusual (a noisier phase, a small persistent offset);
//! this score sees it. Pure, per sample, four numbers of state.

use serde::{Deserialize, Serialize};

/// Weight of the newest sample in the short average (about the last 10 samples).
pub const SHORT_ALPHA: f64 = 0.2;
/// Samples of memory of the long mean and variance (a week at 5 min).
const LONG_SAMPLES: f64 = 2016.0;
/// Samples the long statistics learn before any judgement.
const MIN_SAMPLES: u64 = 288;
/// A single sample's score is capped here (in robust standard deviations), so one spike
/// moves the statistics by a bounded amount: spikes are the band's job.
pub const SCORE_CAP: f64 = 6.0;
/// Smallest long standard deviation of the short average (in robust standard deviations).
/// One sample moves the short average by at most `SHORT_ALPHA · SCORE_CAP` = 1.2, that is
/// 4.8 of these: below any threshold of 5 or more, so one glitch alone never raises.
pub const SD_FLOOR: f64 = 0.25;

/// Running state (stored across restarts; every field defaults).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Likelihood {
    /// Short average of the capped `|z|`.
    pub short: f64,
    /// Long mean of the short average.
    pub mean: f64,
    /// Long variance of the short average.
    pub var: f64,
    /// Samples learned.
    pub n: u64,
}

impl Likelihood {
    /// Feeds one sample's `z`; returns the current short average's distance from its long
    /// mean in long standard deviations (`None` while the statistics are young). The score
    /// is computed before the statistics learn the sample.
    pub fn observe(&mut self, z: f64) -> Option<f64> {
        let x = if z.is_finite() {
            z.abs().min(SCORE_CAP)
        } else {
            SCORE_CAP
        };
        self.short += SHORT_ALPHA * (x - self.short);
        let score = (self.n >= MIN_SAMPLES)
            .then(|| (self.short - self.mean) / self.var.sqrt().max(SD_FLOOR));
        let a = (1.0 / (self.n as f64 + 1.0)).max(1.0 / LONG_SAMPLES);
        let d = self.short - self.mean;
        self.mean += a * d;
        self.var = (1.0 - a) * (self.var + a * d * d);
        self.n = self.n.saturating_add(1);
        score
    }

    /// Forgets the recent residuals (after a change point: the level re-learnt explains them).
    pub fn forget_recent(&mut self) {
        self.short = self.mean;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic noise in [-1, 1).
    fn noise(i: u64) -> f64 {
        ((i * 7919 + 13) % 101) as f64 / 50.5 - 1.0
    }

    #[test]
    fn quiet_while_young_then_low_on_stationary_noise() {
        let mut l = Likelihood::default();
        for i in 0..MIN_SAMPLES {
            assert_eq!(l.observe(noise(i)), None);
        }
        let worst = (MIN_SAMPLES..5000)
            .filter_map(|i| l.observe(noise(i)))
            .fold(f64::MIN, f64::max);
        assert!(worst < 5.0, "{worst}");
    }

    #[test]
    fn a_run_of_residuals_each_inside_the_band_is_unlikely() {
        let mut l = Likelihood::default();
        for i in 0..3000 {
            l.observe(0.5 * noise(i));
        }
        // Ten samples at 3 σ: each inside a 6 σ band, together far beyond the usual.
        let top = (0..10)
            .filter_map(|_| l.observe(3.0))
            .fold(f64::MIN, f64::max);
        assert!(top > 5.0, "{top}");
    }

    #[test]
    fn one_spike_is_capped_and_a_non_finite_z_is_safe() {
        let mut l = Likelihood::default();
        for i in 0..3000 {
            l.observe(noise(i));
        }
        let before = l.clone();
        l.observe(f64::INFINITY);
        assert!(l.short.is_finite() && l.mean.is_finite() && l.var.is_finite());
        assert!(l.short - before.short <= SHORT_ALPHA * SCORE_CAP);
    }

    /// The bound that keeps "one glitch never fires": after a perfectly quiet history (the
    /// smallest long spread), one sample at the cap scores below 5, then decays.
    #[test]
    fn one_sample_alone_never_scores_five() {
        let mut l = Likelihood::default();
        for _ in 0..3000 {
            l.observe(0.0);
        }
        let scores: Vec<f64> = std::iter::once(f64::INFINITY)
            .chain(std::iter::repeat_n(0.0, 5))
            .filter_map(|z| l.observe(z))
            .collect();
        assert_eq!(scores.len(), 6);
        assert!(scores.iter().all(|s| *s < 5.0), "{scores:?}");
        assert!(scores[0] > 4.0, "the glitch is seen: {scores:?}");
    }

    #[test]
    fn state_round_trips_and_an_empty_record_decodes() {
        let mut l = Likelihood::default();
        for i in 0..400 {
            l.observe(noise(i));
        }
        let json = serde_json::to_string(&l).expect("encode");
        let back: Likelihood = serde_json::from_str(&json).expect("decode");
        assert_eq!(back.n, l.n);
        for (a, b) in [
            (back.short, l.short),
            (back.mean, l.mean),
            (back.var, l.var),
        ] {
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} {b}");
        }
        assert_eq!(
            serde_json::from_str::<Likelihood>("{}").expect("old"),
            Likelihood::default()
        );
    }
}
