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
//! this score sees it. Pure, per sample.
//!
//! Two additions to the paper's score:
//! - **Without its largest term** (the guard that keeps "one glitch never fires"): the score
//!   is that of the short average minus the largest single sample's share of it (`top`, kept
//!   in O(1): each sample's share decays with the average, so the largest is
//!   `max(top · (1 − α), α · x)`), and the long statistics are learned on that trimmed
//!   average: a trimmed mean, the robust estimator that drops the extreme term (Tukey &
//!   McLaughlin, "Less vulnerable confidence and significance procedures for location based
//!   on a single sample: trimming/winsorization 1", Sankhyā A 25, 1963). One glitch is the
//!   largest term while it matters, so it moves the score by at most the share of the
//!   ordinary sample it displaces; a run of two or more is still seen. The floor of the long
//!   spread no longer has to carry that promise and is small ([`SD_FLOOR`]).
//! - **A long mean per hour of day**: the trimmed average's usual level is also learned per
//!   UTC hour-of-day bucket (the baseline's 24, interpolated the same way), and the reference
//!   is the larger of the global and the phase's mean. The baseline's 24 smooth knots miss a
//!   sharp daily edge (a square wave, a machine switched on at 09:00) by the same amount every
//!   day; that recurring model error is the phase's normal, not a surprise (the per-period
//!   mean of a periodically stationary series, Gladyshev, "Periodically correlated random
//!   sequences", Soviet Math. Dokl. 2, 1961). Never more sensitive than the global mean alone.

use serde::{Deserialize, Serialize};

/// Weight of the newest sample in the short average (about the last 10 samples).
pub const SHORT_ALPHA: f64 = 0.2;
/// Samples of memory of the long mean and variance (a week at 5 min).
const LONG_SAMPLES: f64 = 2016.0;
/// Samples of memory of one hour-of-day bucket's long mean (a week of that hour at 5 min).
const PHASE_SAMPLES: f64 = LONG_SAMPLES / PHASES as f64;
/// Hour-of-day buckets (the baseline's).
const PHASES: usize = 24;
/// Samples the long statistics learn before any judgement (a day at 5 min)...
const MIN_SAMPLES: u64 = 288;
/// ... or fewer on sparse data: judged as soon as every hour-of-day bucket has learned this
/// many samples (three days of hourly samples, where 288 samples are 12 days; at 5 min the
/// buckets are full after about as many samples as [`MIN_SAMPLES`]; a sample exactly half
/// way between two bucket centres counts in both, so samples on the hour fill them in a day
/// and a half). Time in days, not in samples, is what a daily cycle needs to be learned.
const MIN_PHASE_SAMPLES: u32 = 3;
/// A single sample's score is capped here (in robust standard deviations), so one spike
/// moves the statistics by a bounded amount: spikes are the band's job.
pub const SCORE_CAP: f64 = 6.0;
/// Smallest long standard deviation of the trimmed short average (in robust standard
/// deviations): keeps a perfectly quiet history from dividing by zero. One glitch cannot
/// raise through it, it is trimmed (see the module's doc). It was 0.25 while the floor alone
/// kept that promise (one sample moved the untrimmed average by up to
/// `SHORT_ALPHA · SCORE_CAP` = 1.2, 4.8 floors); 0.05, 0.09, 0.1 and 0.11 score the same on
/// NAB, 0.15 a window less (BENCHMARKS.md, "Trimmed likelihood").
pub const SD_FLOOR: f64 = 0.1;

/// Running state (stored across restarts; every field defaults).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Likelihood {
    /// Short average of the capped `|z|` (untrimmed).
    pub short: f64,
    /// Long mean of the trimmed short average (`short − top`).
    pub mean: f64,
    /// Long variance of the trimmed short average.
    pub var: f64,
    /// Samples learned.
    pub n: u64,
    /// The largest single sample's share of the short average (its weight times its score,
    /// decaying with the average): `short − top` is the average without its largest term.
    pub top: f64,
    /// Long mean of the trimmed short average per UTC hour of day (empty in older records:
    /// learns afresh).
    pub phase_mean: Vec<f64>,
    /// Samples learned per hour of day.
    pub phase_n: Vec<u32>,
}

impl Likelihood {
    /// Feeds one sample's `z` at `phase` (the two hour-of-day buckets around the sample and
    /// the weight of the second, as the baseline's `buckets_of` gives them); returns the
    /// trimmed short average's distance above its reference in long standard deviations
    /// (`None` while the statistics are young). The score is computed before the statistics
    /// learn the sample.
    pub fn observe(&mut self, z: f64, phase: (usize, usize, f64)) -> Option<f64> {
        if self.phase_mean.len() != PHASES || self.phase_n.len() != PHASES {
            self.phase_mean = vec![0.0; PHASES];
            self.phase_n = vec![0; PHASES];
        }
        let x = if z.is_finite() {
            z.abs().min(SCORE_CAP)
        } else {
            SCORE_CAP
        };
        self.short += SHORT_ALPHA * (x - self.short);
        self.top = (self.top * (1.0 - SHORT_ALPHA)).max(SHORT_ALPHA * x);
        let trimmed = self.short - self.top;
        let reference = self.mean.max(self.phase_reference(phase));
        let sd = self.var.sqrt().max(SD_FLOOR);
        let score = self.warm().then(|| (trimmed - reference) / sd);
        let a = (1.0 / (self.n as f64 + 1.0)).max(1.0 / LONG_SAMPLES);
        let d = trimmed - self.mean;
        self.mean += a * d;
        self.var = (1.0 - a) * (self.var + a * d * d);
        self.n = self.n.saturating_add(1);
        let (b0, b1, f) = phase;
        for (bucket, share) in [(b0, 1.0 - f), (b1, f)] {
            if let (Some(m), Some(n)) = (
                self.phase_mean.get_mut(bucket),
                self.phase_n.get_mut(bucket),
            ) {
                let a = (1.0 / (f64::from(*n) + 1.0)).max(1.0 / PHASE_SAMPLES) * share;
                *m += a * (trimmed - *m);
                if share >= 0.5 {
                    *n = n.saturating_add(1);
                }
            }
        }
        score
    }

    /// Whether the statistics judge: after [`MIN_SAMPLES`] samples, or once every hour of
    /// day has [`MIN_PHASE_SAMPLES`] (whichever comes first).
    fn warm(&self) -> bool {
        self.n >= MIN_SAMPLES
            || (self.phase_n.len() == PHASES
                && self.phase_n.iter().all(|n| *n >= MIN_PHASE_SAMPLES))
    }

    /// The phase's long mean at `phase` (interpolated), or the global mean while either
    /// bucket has learned nothing.
    fn phase_reference(&self, (b0, b1, f): (usize, usize, f64)) -> f64 {
        let learned = |b: usize| self.phase_n.get(b).is_some_and(|n| *n > 0);
        if !(learned(b0) && learned(b1)) {
            return self.mean;
        }
        let m = |b: usize| self.phase_mean.get(b).copied().unwrap_or(self.mean);
        (1.0 - f) * m(b0) + f * m(b1)
    }

    /// Forgets the recent residuals (after a change point: the level re-learnt explains them).
    pub fn forget_recent(&mut self) {
        self.short = self.mean;
        self.top = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic noise in [-1, 1).
    fn noise(i: u64) -> f64 {
        ((i * 7919 + 13) % 101) as f64 / 50.5 - 1.0
    }

    /// The phase of sample `i` at one sample per 5 minutes (whole hours: one bucket).
    fn phase(i: u64) -> (usize, usize, f64) {
        let hour = usize::try_from(i / 12 % 24).unwrap_or(0);
        (hour, (hour + 1) % PHASES, 0.0)
    }

    #[test]
    fn quiet_while_young_then_low_on_stationary_noise() {
        let mut l = Likelihood::default();
        // At 5 min the last hour of day has its samples after about a day (`MIN_SAMPLES`).
        for i in 0..23 * 12 + u64::from(MIN_PHASE_SAMPLES) - 1 {
            assert_eq!(l.observe(noise(i), phase(i)), None);
        }
        let worst = (MIN_SAMPLES..5000)
            .filter_map(|i| l.observe(noise(i), phase(i)))
            .fold(f64::MIN, f64::max);
        assert!(worst < 5.0, "{worst}");
    }

    /// Hourly samples: judged once every hour of day has [`MIN_PHASE_SAMPLES`] samples (three
    /// days, 72 samples), not after [`MIN_SAMPLES`] (twelve days); not a sample earlier.
    #[test]
    fn sparse_samples_judge_after_days_not_after_288_samples() {
        let hourly = |i: u64| {
            let hour = usize::try_from(i % 24).unwrap_or(0);
            // A quarter past the bucket's centre: that bucket alone counts the sample.
            (hour, (hour + 1) % PHASES, 0.25)
        };
        let mut l = Likelihood::default();
        let first = (0..MIN_SAMPLES)
            .position(|i| l.observe(noise(i), hourly(i)).is_some())
            .and_then(|p| u64::try_from(p).ok());
        // The 72nd sample (index 71) completes the third day of the last hour; the score is
        // computed before a sample is learned, so the 73rd is the first judged.
        let days = u64::from(MIN_PHASE_SAMPLES);
        assert_eq!(first, Some(24 * days));
        // One sample per 5 min for less than a day: every bucket is not yet full.
        let mut dense = Likelihood::default();
        assert!((0..250).all(|i| dense.observe(noise(i), phase(i)).is_none()));
    }

    #[test]
    fn a_run_of_residuals_each_inside_the_band_is_unlikely() {
        let mut l = Likelihood::default();
        for i in 0..3000 {
            l.observe(0.5 * noise(i), phase(i));
        }
        // Ten samples at 3 σ: each inside a 6 σ band, together far beyond the usual.
        let top = (3000..3010)
            .filter_map(|i| l.observe(3.0, phase(i)))
            .fold(f64::MIN, f64::max);
        assert!(top > 5.0, "{top}");
    }

    #[test]
    fn one_spike_is_capped_and_a_non_finite_z_is_safe() {
        let mut l = Likelihood::default();
        for i in 0..3000 {
            l.observe(noise(i), phase(i));
        }
        let before = l.clone();
        l.observe(f64::INFINITY, phase(3000));
        assert!(l.short.is_finite() && l.mean.is_finite() && l.var.is_finite());
        assert!(l.top.is_finite() && l.phase_mean.iter().all(|m| m.is_finite()));
        assert!(l.short - before.short <= SHORT_ALPHA * SCORE_CAP);
    }

    /// The promise "one glitch never fires": after a perfectly quiet history (the smallest
    /// long spread), one sample at the cap moves the trimmed score not at all, on it and
    /// after it; two in a row are far beyond 5.
    #[test]
    fn one_sample_alone_is_trimmed_two_are_not() {
        let mut l = Likelihood::default();
        for i in 0..3000 {
            l.observe(0.0, phase(i));
        }
        let scores: Vec<f64> = std::iter::once(f64::INFINITY)
            .chain(std::iter::repeat_n(0.0, 5))
            .zip(3000..)
            .filter_map(|(z, i)| l.observe(z, phase(i)))
            .collect();
        assert_eq!(scores.len(), 6);
        assert!(scores.iter().all(|s| s.abs() < 1e-9), "{scores:?}");
        let pair: Vec<f64> = [SCORE_CAP, SCORE_CAP]
            .into_iter()
            .zip(3100..)
            .filter_map(|(z, i)| l.observe(z, phase(i)))
            .collect();
        assert!(pair.last().is_some_and(|s| *s > 5.0), "{pair:?}");
    }

    /// On noise, one glitch moves the trimmed score by at most the share of the ordinary
    /// sample it displaces as the largest term: far less than the glitch's own share.
    #[test]
    fn one_glitch_on_noise_moves_the_score_by_one_ordinary_share_at_most() {
        let mut quiet = Likelihood::default();
        for i in 0..3000 {
            quiet.observe(noise(i), phase(i));
        }
        let mut glitched = quiet.clone();
        let sd = quiet.var.sqrt().max(SD_FLOOR);
        let ordinary = SHORT_ALPHA / sd; // a share of a sample at |z| ≤ 1, in long sds
        for i in 3000..3020 {
            let z = if i == 3000 { SCORE_CAP } else { noise(i) };
            let (a, b) = (
                quiet.observe(noise(i), phase(i)),
                glitched.observe(z, phase(i)),
            );
            let (a, b) = (a.unwrap_or(0.0), b.unwrap_or(0.0));
            assert!(b - a <= ordinary + 1e-9, "sample {i}: {a} → {b}");
        }
    }

    /// A residual that recurs every day at the same hour (a model's error at a sharp daily
    /// edge) becomes that hour's normal; a run a little larger at another hour is not.
    #[test]
    fn a_daily_recurring_run_is_the_phase_normal() {
        let edge = |i: u64| if i % 288 / 12 == 9 { 3.0 } else { 0.0 };
        let mut l = Likelihood::default();
        for i in 0..14 * 288 {
            l.observe(edge(i) + 0.1 * noise(i), phase(i));
        }
        let at_nine = (14 * 288..15 * 288)
            .filter_map(|i| l.observe(edge(i) + 0.1 * noise(i), phase(i)))
            .fold(f64::MIN, f64::max);
        assert!(at_nine < 5.0, "09:00 is usual: {at_nine}");
        let three = 15 * 288 + 15 * 12;
        for i in 15 * 288..three {
            l.observe(edge(i) + 0.1 * noise(i), phase(i));
        }
        let at_three = (three..three + 12)
            .filter_map(|i| l.observe(4.0, phase(i)))
            .fold(f64::MIN, f64::max);
        assert!(at_three > 5.0, "15:00 is not: {at_three}");
    }

    #[test]
    fn state_round_trips_and_an_older_record_decodes() {
        let mut l = Likelihood::default();
        for i in 0..400 {
            l.observe(noise(i), phase(i));
        }
        let json = serde_json::to_string(&l).expect("encode");
        let back: Likelihood = serde_json::from_str(&json).expect("decode");
        assert_eq!(back.n, l.n);
        assert_eq!(back.phase_n, l.phase_n);
        let pairs = [
            (back.short, l.short),
            (back.mean, l.mean),
            (back.var, l.var),
            (back.top, l.top),
        ];
        let phases = back
            .phase_mean
            .iter()
            .copied()
            .zip(l.phase_mean.iter().copied());
        for (a, b) in pairs.into_iter().chain(phases) {
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} {b}");
        }
        assert_eq!(
            serde_json::from_str::<Likelihood>("{}").expect("old"),
            Likelihood::default()
        );
        // A record of the version before the trimming and the phases: it learns on.
        let mut old: Likelihood =
            serde_json::from_str(r#"{"short": 0.8, "mean": 0.8, "var": 0.01, "n": 5000}"#)
                .expect("older record");
        assert!(old.phase_mean.is_empty());
        assert!(old.observe(0.5, phase(0)).is_some());
        assert_eq!(old.phase_mean.len(), PHASES);
    }
}
