//! Learned seasonal baseline with change points: the detector of kinds without room-air
//! physics (the generic `temperature`), where no fixed limit or rate means anything and the
//! sensor's own history is the only reference.
//!
//! Method: a robust additive Holt–Winters decomposition (Gelper, Fried & Croux, "Robust
//! forecasting with exponential and Holt–Winters smoothing", Journal of Forecasting 29(3),
//! 2010) with a Page–Hinkley change-point test on its residuals (E. S. Page, "Continuous
//! inspection schemes", Biometrika 41, 1954):
//!
//! - The baseline at time `t` is `level + seasonal(t)`, the seasonal offset interpolated
//!   between the two nearest of 24 UTC hour-of-day buckets (the daily cycle is learned, not
//!   flagged, and has no steps at the full hour). The residual `r = x − baseline` is scaled by a
//!   robust spread `σ = 1.2533 · MAD` (an EWMA of clipped absolute residuals, 1.2533 makes it
//!   a standard deviation for Gaussian noise), `z = r / σ`, with `k · σ ≥ min_width`.
//! - The spread is learned per phase as well (one per hour-of-day bucket, interpolated like
//!   the offsets) and `σ(t)` is the larger of the global and the phase's spread: a
//!   periodic-variance (seasonal heteroscedasticity) model of the residual, the scale half of
//!   a periodic ARMA/GARCH fit (Bollerslev & Ghysels, "Periodic autoregressive conditional
//!   heteroscedasticity", J. Business & Economic Statistics 14(2), 1996). 24 smooth knots
//!   cannot follow a daily cycle with a sharp edge (a square wave, a machine switched on at
//!   09:00): their model error there recurs every day at the same phase. The global spread,
//!   learned mostly where the model fits, judged that recurring error as an excursion each
//!   day; the phase's own spread learns it as that phase's normal, and the band widens only
//!   there (elsewhere the global spread keeps it as narrow as before).
//! - Learning is Huber-clipped: the level, the bucket's seasonal offset and the spread move by
//!   `ψ(z) = clip(z, ±2) · σ`, so a spike or a fault moves the baseline by at most a couple of
//!   spreads times the smoothing factor and an excursion cannot teach the spread to include
//!   itself. Smoothing factors come from time constants (level 12 h, seasonal offset 2 days of
//!   that hour, spread 1 day), so the poll interval does not change the memory; a young
//!   baseline (and a young hour of day) learns as a running mean.
//! - Page–Hinkley on `clip(z, ±1.5k)` with drift `δ = 0.33k` and threshold `λ = 2k` (k the
//!   band in spreads) sums evidence of a sustained shift: a lone spike adds at most 1.17k, so
//!   it takes at least two extreme samples; a shift of k crosses λ in three samples, one of
//!   k/2 in about twelve; a shift smaller than k/3 never does (that is the band's job).
//!   When it crosses, the shift is a *change point*: it is raised (if not already) and the
//!   level re-learns at once (`level = x − seasonal(t)`), so a sensor that moved to a new
//!   normal (a machine's new set point, a relocated probe) is judged against it from then on
//!   instead of alarming for days; the raise clears on the next sample back near the baseline.
//!   A change point back to the level the last one left (more than half way), within a day,
//!   is the end of that shift (a machine stopped and restarted, a load that came back): the
//!   level re-learns and nothing is raised, since the shift's start already was. NAB counts
//!   only the first detection in a window and every later one outside it as a false alarm;
//!   on its real machine and ambient temperatures this rule took the false alarms from 23 to
//!   16 and lost no window (BENCHMARKS.md, "Fewer repeat raises").
//! - Otherwise a value outside `±k·σ` for `min_duration` is raised (one glitch never fires),
//!   and beyond `±spike_k·σ` at once, and so is the second of three consecutive samples
//!   outside `±k·σ` (and [`RUN_MIN_WIDTHS`] resolutions) on the same side: a "2 of 3 beyond
//!   the limit" run rule (Western Electric, *Statistical Quality Control Handbook*, 1956) with
//!   the limit at `k` = 6 spreads, where two samples are as unlikely as one beyond 12σ, and one
//!   glitch alone still never fires. The raise clears when back within 80 % of `k·σ` (or when
//!   a change point has re-learned the level there).
//! - Anomaly likelihood ([`super::likelihood`]; Ahmad, Lavin, Purdy & Agha, Neurocomputing
//!   262, 2017, the score of NAB's HTM detectors): the capped `|z|` of each sample is averaged
//!   over about 10 samples, and that average is compared with its own long-run mean and
//!   spread (a week of samples). A run of residuals each inside the band but together unusual
//!   (a noisier stretch, a small persistent offset, a cycle that lost its shape) is raised
//!   when the average is 5 long standard deviations above its usual (the larger of its global
//!   and its hour of day's long mean, so an error of the model that recurs at one daily phase
//!   is usual there), and cleared when below 2;
//!   a change point forgets the recent residuals (the re-learnt level explains them). Three
//!   guards keep the band's promises: only the part of a residual beyond `min_width` counts
//!   (a quantised sensor's steps are no run of surprises); a sample beyond `k` is the band's,
//!   not this rule's; and the average is trimmed of its largest single term, so one sample
//!   alone never carries it ([`super::likelihood`]): one glitch still never fires. On NAB's four
//!   families this rule took the score from 55.6 to 65.8 (BENCHMARKS.md, "Anomaly
//!   likelihood"); trimmed in place of a wide floor, with the hour-of-day mean and the 2-of-3
//!   rule, to 67.8 (BENCHMARKS.md, "Trimmed likelihood").
//! - Alarm-rate control: a raise leaves 1.5 times its distance from the baseline as a floor of
//!   the band that decays over 3 days, so a sensor whose normal life has spikes (or that just
//!   had an event) raises again only on a clearly larger surprise. It decays in wall time,
//!   not in learning time (which counts at most `MAX_STEP_SECS` between samples): on hourly
//!   samples it lasted six times longer and hid the next large spike (NAB's four families
//!   67.8 → 71.5, BENCHMARKS.md, "Window by window").
//! - Nothing is judged during `warmup`. Pure: time comes with the sample; O(1) per sample and
//!   a fixed state (24 offsets and a few numbers) that is stored across restarts.

use super::likelihood::Likelihood;
use super::threshold::Side;
use super::Transition;
use coldaisle_config::detection::BaselineSettings;
use coldaisle_core::Timestamp;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Time constant of the level, seconds.
const LEVEL_TAU: f64 = 12.0 * 3600.0;
/// Time constant of a bucket's seasonal offset, seconds of that bucket's own time (2 days).
const SEASONAL_TAU: f64 = 2.0 * 3600.0;
/// Time constant of a bucket's spread, seconds of that bucket's own time (7 days): a phase
/// sees 12 samples a day at 5 min, so its spread needs a longer memory than the global one.
const PHASE_SCALE_TAU: f64 = 7.0 * 3600.0;
/// Time constant of the spread, seconds.
const SCALE_TAU: f64 = 24.0 * 3600.0;
/// Longest gap between samples that still counts as learning time.
const MAX_STEP_SECS: f64 = 600.0;
/// Huber clipping of residuals while learning, in spreads.
const HUBER_C: f64 = 2.0;
/// Page–Hinkley, in units of `k`: clipping of z, drift and threshold.
const PH_CLIP: f64 = 1.5;
const PH_DRIFT: f64 = 0.33;
const PH_LAMBDA: f64 = 2.0;
/// Samples over which the level re-learns (as their median) after a change point.
const RELEARN_SAMPLES: usize = 12;
/// A change point back to the level from before the last change point, within this many
/// seconds of it, is a recovery: the level re-learns, nothing is raised (1 day).
const RECOVERY_SECS: u64 = 86_400;
/// "Back": the new level is closer to the old one than this share of the shift it ends.
const RECOVERY_SHARE: f64 = 0.5;
/// Time constant with which the band forgets the last raise's distance, seconds (3 days).
/// The band after a raise is at least this many times the raise's distance.
const SURPRISE_FACTOR: f64 = 1.5;
/// Time constant of that floor, seconds.
const SURPRISE_TAU: f64 = 3.0 * 86_400.0;
/// Mean absolute deviation → standard deviation for Gaussian noise (√(π/2)).
const MAD_TO_SIGMA: f64 = 1.2533;
/// Smallest spread relative to the level, and absolute, when `min_width` is 0 (a series in a
/// unit where no floor is known): far below any real noise, they only keep `z` finite.
const SIGMA_FLOOR_REL: f64 = 1e-9;
const SIGMA_FLOOR_ABS: f64 = 1e-12;
/// The likelihood rule raises when the recent residuals' short average is this many long
/// standard deviations above its usual (a Gaussian tail of 3e-7; the paper's 1e-5, 4.26,
/// raised on NAB's stationary synthetic series), and its raise clears below
/// [`LIKELIHOOD_CLEAR`].
const LIKELIHOOD_RAISE: f64 = 5.0;
const LIKELIHOOD_CLEAR: f64 = 2.0;
/// The 2-of-3 run rule counts a sample outside only this many `min_width` from the baseline
/// or further: a band at its floor is one resolution step wide, and two samples one step out
/// are a quantised sensor's steps, not a run (the property test's flat series with rare
/// ±0.3 steps raised without it).
const RUN_MIN_WIDTHS: f64 = 2.0;
/// Share of the band the value must be back inside to clear.
const CLEAR_RATIO: f64 = 0.8;
const BUCKETS: usize = 24;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// The detector's state (stored across restarts; every field defaults, so a state written by
/// an older version decodes and learns on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BaselineState {
    /// Level (the baseline without its daily cycle).
    pub level: f64,
    /// Seasonal offset per UTC hour of day.
    pub seasonal: Vec<f64>,
    /// Samples learned per hour of day.
    pub seasonal_n: Vec<u32>,
    /// Spread per hour of day (EWMA of clipped absolute residuals at that phase).
    pub phase_spread: Vec<f64>,
    /// Spread: EWMA of clipped absolute residuals.
    pub spread: f64,
    /// Samples learned.
    pub n: u64,
    /// Learning since (warm-up start).
    pub since: Option<Timestamp>,
    /// Change points found.
    pub change_points: u64,
    /// [`SURPRISE_FACTOR`] times the distance from the baseline of the last raise, decaying
    /// with [`SURPRISE_TAU`]: the band is at least this wide, so a sensor whose normal has
    /// spikes raises again only on a larger surprise than the last one (alarm-rate control).
    pub surprise: f64,
    /// Deseasonalised samples since the last change point, while the level re-learns.
    pub relearn: Vec<f64>,
    /// The level before the last change point and when it was left: a change point back to
    /// it within [`RECOVERY_SECS`] is a recovery, not a new event.
    pub before_change: Option<(f64, Timestamp)>,
    /// Anomaly likelihood of the recent residuals ([`super::likelihood`]).
    pub likelihood: Likelihood,
    /// The current raise came from the likelihood rule (it clears on the likelihood).
    pub likely: bool,
    /// Which side of the band (`±k·σ`) each of the two previous samples was outside, if any:
    /// the second sample outside on one side within three raises at once.
    pub recent_outside: [Option<Side>; 2],
    last_ts: Option<Timestamp>,
    ph_up: f64,
    ph_down: f64,
    pending: Option<(Timestamp, Side)>,
    raised: Option<(Timestamp, Side)>,
}

impl Default for BaselineState {
    fn default() -> Self {
        BaselineState {
            level: 0.0,
            seasonal: vec![0.0; BUCKETS],
            seasonal_n: vec![0; BUCKETS],
            phase_spread: vec![0.0; BUCKETS],
            spread: 0.0,
            n: 0,
            since: None,
            change_points: 0,
            surprise: 0.0,
            relearn: Vec::new(),
            before_change: None,
            likelihood: Likelihood::default(),
            likely: false,
            recent_outside: [None; 2],
            last_ts: None,
            ph_up: 0.0,
            ph_down: 0.0,
            pending: None,
            raised: None,
        }
    }
}

/// One sensor's learned-baseline detector.
#[derive(Debug, Clone)]
pub struct BaselineDetector {
    /// Shared with every sensor of the same settings (issue 18).
    config: Arc<BaselineSettings>,
    /// Current state.
    pub state: BaselineState,
}

/// `1 − e^(−dt/τ)`, at least `1/n` while young (a running mean first).
fn alpha(dt: f64, tau: f64, n: u64) -> f64 {
    let young = 1.0 / (n as f64 + 1.0);
    (1.0 - (-dt / tau).exp()).max(young).min(1.0)
}

impl BaselineDetector {
    /// A detector that has learned nothing yet.
    pub fn new(config: impl Into<Arc<BaselineSettings>>) -> Self {
        BaselineDetector {
            config: config.into(),
            state: BaselineState::default(),
        }
    }

    /// The baseline at `ts` and the distance that counts as outside, once warm.
    pub fn band_at(&self, ts: Timestamp) -> Option<(f64, f64)> {
        let warm = self
            .state
            .since
            .is_some_and(|s| ts.since(s) >= self.config.warmup);
        warm.then(|| {
            let base = self.state.level + self.seasonal(ts);
            let sigma = self.sigma_at(ts);
            (base, self.k(sigma) * sigma)
        })
    }

    /// The seasonal offset at `ts`: linear between the two nearest hour-of-day centres.
    fn seasonal(&self, ts: Timestamp) -> f64 {
        interpolate(&self.state.seasonal, ts)
    }

    /// The band in spreads of `sigma`: `k`, or wider while a recent surprise lasts.
    fn k(&self, sigma: f64) -> f64 {
        self.config.k.max(self.state.surprise / sigma)
    }

    /// The global robust standard deviation (at least `min_width / k`, and never zero: with
    /// `min_width = 0` a constant series would otherwise divide by a zero spread).
    fn sigma(&self) -> f64 {
        (MAD_TO_SIGMA * self.state.spread)
            .max(self.config.min_width / self.config.k)
            .max(SIGMA_FLOOR_REL * self.state.level.abs())
            .max(SIGMA_FLOOR_ABS)
    }

    /// The robust standard deviation at `ts`: the global one or the phase's, the larger.
    fn sigma_at(&self, ts: Timestamp) -> f64 {
        self.sigma()
            .max(MAD_TO_SIGMA * interpolate(&self.state.phase_spread, ts))
    }

    /// Feeds one valid sample (time order per sensor).
    pub fn observe(&mut self, ts: Timestamp, value: f64) -> Option<Transition> {
        if self.state.seasonal.len() != BUCKETS || self.state.seasonal_n.len() != BUCKETS {
            self.state.seasonal = vec![0.0; BUCKETS];
            self.state.seasonal_n = vec![0; BUCKETS];
        }
        if self.state.phase_spread.len() != BUCKETS {
            // Not from this version: the phases learn afresh (the global spread is the floor).
            self.state.phase_spread = vec![0.0; BUCKETS];
        }
        let st = &mut self.state;
        // Wall time since the last sample; learning counts at most `MAX_STEP_SECS` of it.
        let elapsed = st.last_ts.map_or(0.0, |l| ts.since(l).as_secs_f64());
        let dt = elapsed.min(MAX_STEP_SECS);
        st.last_ts = Some(ts);
        let since = *st.since.get_or_insert(ts);
        if st.n == 0 {
            st.level = value;
            st.n = 1;
            return None;
        }
        let base = self.state.level + self.seasonal(ts);
        let sigma = self.sigma_at(ts);
        let residual = value - base;
        let z = residual / sigma;
        let judged = ts.since(since) >= self.config.warmup;
        let relearning = !self.state.relearn.is_empty();
        if relearning {
            self.relearn(value - (base - self.state.level));
        } else {
            self.learn(ts, dt, z, sigma, judged);
        }
        if !judged {
            return None;
        }
        // The alarm-rate floor forgets in wall time, whatever the poll interval (hourly
        // samples capped at `MAX_STEP_SECS` kept it six times longer than `SURPRISE_TAU`).
        self.state.surprise *= (-elapsed / SURPRISE_TAU).exp();
        let k = self.k(sigma);
        let st = &mut self.state;
        // Outside for the run rule: beyond the band and beyond a few resolution steps.
        let far = residual.abs() >= RUN_MIN_WIDTHS * self.config.min_width;
        let outside = if z > k && far {
            Some(Side::High)
        } else if z < -k && far {
            Some(Side::Low)
        } else {
            None
        };
        let before = st.recent_outside;
        st.recent_outside = [before[1], outside];
        // Two of the last three samples outside on the same side (one glitch stays silent).
        let two_of_three = !relearning && outside.is_some() && before.contains(&outside);
        let likelihood = if relearning {
            None
        } else {
            // Only the part beyond `min_width` counts (a dead zone of one resolution): a
            // quantised sensor's steps are no run of surprises, however narrow its band.
            let counted = (residual.abs() - self.config.min_width).max(0.0) / sigma;
            st.likelihood.observe(counted, buckets_of(ts))
        };
        // Page–Hinkley (idle while the level re-learns).
        let zc = if relearning {
            0.0
        } else {
            z.clamp(-PH_CLIP * k, PH_CLIP * k)
        };
        st.ph_up = (st.ph_up + zc - PH_DRIFT * k).max(0.0);
        st.ph_down = (st.ph_down - zc - PH_DRIFT * k).max(0.0);
        let lambda = PH_LAMBDA * k;
        let width = k * sigma;
        let edge = |side: Side, w: f64| match side {
            Side::High => base + w,
            Side::Low => base - w,
        };
        if st.ph_up > lambda || st.ph_down > lambda {
            let side = if st.ph_up > lambda {
                Side::High
            } else {
                Side::Low
            };
            st.ph_up = 0.0;
            st.ph_down = 0.0;
            st.change_points += 1;
            let left = st.level;
            st.level = value - (base - st.level);
            st.relearn = vec![st.level];
            st.likelihood.forget_recent();
            // Back to where the last change point left from, soon: the shift ended.
            let recovery = st.before_change.is_some_and(|(old, at)| {
                ts.since(at).as_secs() <= RECOVERY_SECS
                    && (st.level - old).abs() < RECOVERY_SHARE * (left - old).abs()
            });
            st.before_change = (!recovery).then_some((left, ts));
            if st.raised.is_some() {
                return None;
            }
            if recovery {
                st.pending = None;
                return None;
            }
            let first = match st.pending {
                Some((t, s)) if s == side => t,
                _ => ts,
            };
            st.pending = None;
            st.raised = Some((first, side));
            st.likely = false;
            st.surprise = st.surprise.max(SURPRISE_FACTOR * residual.abs());
            return Some(Transition::raised(
                value,
                Some(edge(side, width)),
                first,
                ts,
            ));
        }
        if let Some((first, side)) = st.raised {
            // Back near the baseline itself: the floor a raise leaves must not clear it.
            let back_k = self.config.k * CLEAR_RATIO;
            let back = if st.likely {
                likelihood.is_none_or(|l| l < LIKELIHOOD_CLEAR)
            } else {
                match side {
                    Side::High => z < back_k,
                    Side::Low => z > -back_k,
                }
            };
            if back {
                st.likely = false;
                st.raised = None;
                st.pending = None;
                return Some(Transition::cleared(
                    value,
                    Some(edge(side, back_k * sigma)),
                    first,
                    ts,
                ));
            }
            return None;
        }
        if relearning {
            st.pending = None;
            return None;
        }
        if likelihood.is_some_and(|l| l > LIKELIHOOD_RAISE) && z.abs() < self.config.k {
            let side = if residual >= 0.0 {
                Side::High
            } else {
                Side::Low
            };
            st.pending = None;
            st.raised = Some((ts, side));
            st.likely = true;
            return Some(Transition::raised(value, Some(edge(side, width)), ts, ts));
        }
        let side = if z > k {
            Side::High
        } else if z < -k {
            Side::Low
        } else {
            st.pending = None;
            return None;
        };
        let first = match st.pending {
            Some((t, s)) if s == side => t,
            _ => ts,
        };
        st.pending = Some((first, side));
        let spike = (self.config.spike_k > 0.0
            && z.abs() >= self.config.spike_k * k / self.config.k)
            || two_of_three;
        if !spike && ts.since(first) < self.config.min_duration {
            return None;
        }
        st.raised = Some((first, side));
        st.likely = false;
        st.surprise = st.surprise.max(SURPRISE_FACTOR * residual.abs());
        Some(Transition::raised(
            value,
            Some(edge(side, width)),
            first,
            ts,
        ))
    }

    /// After a change point: the level is the median of the deseasonalised samples since, for
    /// [`RELEARN_SAMPLES`] samples (a burst that ends at once does not become the new normal).
    fn relearn(&mut self, deseasonalised: f64) {
        let st = &mut self.state;
        st.relearn.push(deseasonalised);
        let mut sorted = st.relearn.clone();
        sorted.sort_by(f64::total_cmp);
        if let Some(m) = sorted.get(sorted.len() / 2) {
            st.level = *m;
        }
        if st.relearn.len() >= RELEARN_SAMPLES {
            st.relearn.clear();
        }
    }

    /// Update of level, the bucket's seasonal offset and the spread; Huber-clipped once warm
    /// (while warming up the spread is still unknown, so nothing is clipped).
    fn learn(&mut self, ts: Timestamp, dt: f64, z: f64, sigma: f64, warm: bool) {
        let (b0, b1, f) = buckets_of(ts);
        let st = &mut self.state;
        let c = if warm { HUBER_C } else { f64::INFINITY };
        let psi = z.clamp(-c, c) * sigma;
        let a_level = alpha(dt, LEVEL_TAU, st.n);
        st.level += a_level * psi;
        // Each of the two nearest hours learns its share of the residual.
        let clipped = (z.abs() * sigma).min(c * sigma);
        for (b, share) in [(b0, 1.0 - f), (b1, f)] {
            if let (Some(s), Some(n), Some(p)) = (
                st.seasonal.get_mut(b),
                st.seasonal_n.get_mut(b),
                st.phase_spread.get_mut(b),
            ) {
                let young = u64::from(*n);
                *s += alpha(dt, SEASONAL_TAU, young) * share * (1.0 - a_level) * psi;
                *p += alpha(dt, PHASE_SCALE_TAU, young) * share * (clipped - *p);
                if share >= 0.5 {
                    *n = n.saturating_add(1);
                }
            }
        }
        st.spread += alpha(dt, SCALE_TAU, st.n) * (clipped - st.spread);
        st.n = st.n.saturating_add(1);
    }
}

/// A per-hour-of-day table at `ts`: linear between the two nearest hour-of-day centres.
fn interpolate(table: &[f64], ts: Timestamp) -> f64 {
    let (b0, b1, f) = buckets_of(ts);
    let v = |b: usize| table.get(b).copied().unwrap_or(0.0);
    (1.0 - f) * v(b0) + f * v(b1)
}

/// The two hour-of-day buckets whose centres (hh:30) surround `ts`, and the weight of the
/// second.
fn buckets_of(ts: Timestamp) -> (usize, usize, f64) {
    let in_day = ts.millis().rem_euclid(DAY_MS);
    let from_centre = (in_day - HOUR_MS / 2).rem_euclid(DAY_MS);
    let b0 = usize::try_from(from_centre / HOUR_MS).unwrap_or(0) % BUCKETS;
    let f = (from_centre % HOUR_MS) as f64 / HOUR_MS as f64;
    (b0, (b0 + 1) % BUCKETS, f)
}

#[cfg(test)]
mod tests;
