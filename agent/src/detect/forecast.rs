//! Predictive warning (issue 15, item 4): when will this sensor cross its limit if the trend
//! holds? A robust slope over the recent window (Theil–Sen: the median of all pairwise slopes,
//! H. Theil 1950, P. K. Sen 1968; a third of the points may be outliers without moving it)
//! extrapolated from the window's robust fitted value now.
//!
//! It raises when the expected crossing lies within `horizon` (default 30 min) and the value is
//! still below the limit, and clears when the trend turns (the expected crossing moves beyond
//! twice the horizon, or the slope is no longer rising) or when the limit is reached (the
//! threshold detector takes over). Pure: time comes with the sample.
//!
//! The chain ([`super::chain`]) runs it against the sensor's upper warning limit when the kind
//! has `forecast` on (`inlet_temp` by default); its events carry the detector name
//! [`coldaisle_core::FORECAST_DETECTOR`] and the expected crossing
//! ([`coldaisle_core::SensorEvent::expected_crossing`]). They bypass the zone correlator, and
//! the collector stores and reports them but never opens an incident or pages for them.

use super::Transition;
use coldaisle_core::Timestamp;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

pub use coldaisle_config::detection::ForecastSettings;

/// Fewest samples in the window before any forecast (a slope of fewer points is noise).
const MIN_SAMPLES: usize = 6;

/// Most samples kept (Theil–Sen is quadratic in them).
const MAX_SAMPLES: usize = 60;

/// The forecaster's state (stored across restarts).
///
/// In memory a sample is 8 bytes (its time as milliseconds after the state's `base` and
/// its value as `f32`, ample for a sensor reading), half of a `(Timestamp, f64)` pair: up to
/// [`MAX_SAMPLES`] of them per inlet sensor. Stored (serde) as before, `samples` a list of
/// `[millis, value]` pairs, so records of either layout load; a value is stored as the `f64`
/// of the `f32`'s shortest decimal form (`22.1`, not `22.100000381469727`), the same through
/// a `serde_json::Value` tree and through the in-place writer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "StoredForecast", into = "StoredForecast")]
pub struct ForecastState {
    /// Time every sample's offset counts from (the first sample kept, after a rebase).
    base: Timestamp,
    /// Recent samples, oldest first: (milliseconds after `base`, value).
    samples: VecDeque<(u32, f32)>,
    /// Open forecast: since, expected crossing.
    raised: Option<(Timestamp, Timestamp)>,
}

/// The stored form of [`ForecastState`]: the samples with their own timestamps.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct StoredForecast {
    /// Recent samples, oldest first (loaded as `f32`).
    samples: Vec<(Timestamp, f64)>,
    /// Open forecast: since, expected crossing.
    raised: Option<(Timestamp, Timestamp)>,
}

impl From<StoredForecast> for ForecastState {
    fn from(stored: StoredForecast) -> Self {
        let mut state = ForecastState {
            raised: stored.raised,
            ..ForecastState::default()
        };
        for (ts, value) in stored.samples {
            #[allow(clippy::cast_possible_truncation)]
            state.push(ts, value as f32);
        }
        state
    }
}

impl From<ForecastState> for StoredForecast {
    fn from(state: ForecastState) -> Self {
        StoredForecast {
            samples: state.iter().map(|(t, v)| (t, shortest_f64(v))).collect(),
            raised: state.raised,
        }
    }
}

/// The `f64` nearest to the shortest decimal that reads back as `v` (`22.1f32` → `22.1`, where
/// `f64::from` gives `22.100000381469727`): what a stored sample is written as.
fn shortest_f64(v: f32) -> f64 {
    v.to_string().parse().unwrap_or_else(|_| f64::from(v))
}

impl Default for ForecastState {
    fn default() -> Self {
        ForecastState {
            base: Timestamp(0),
            samples: VecDeque::new(),
            raised: None,
        }
    }
}

/// Equal when the samples (with their times) and the open forecast are: the base is a detail.
impl PartialEq for ForecastState {
    fn eq(&self, other: &Self) -> bool {
        self.raised == other.raised && self.iter().eq(other.iter())
    }
}

impl ForecastState {
    /// The samples with their timestamps, oldest first.
    fn iter(&self) -> impl Iterator<Item = (Timestamp, f32)> + '_ {
        let base = self.base.millis();
        self.samples
            .iter()
            .map(move |&(offset, v)| (Timestamp(base + i64::from(offset)), v))
    }

    /// Time of the oldest sample.
    fn front_time(&self) -> Option<Timestamp> {
        self.iter().next().map(|(t, _)| t)
    }

    /// Appends a sample. When `ts` does not fit as an offset from the base (49 days past it,
    /// or before it: a clock step back), the base moves to the oldest sample; when it still
    /// does not fit, the older samples are dropped and the trend starts again from `ts`.
    fn push(&mut self, ts: Timestamp, value: f32) {
        if self.samples.is_empty() {
            self.base = ts;
        }
        if self.offset(ts).is_none() {
            if let Some(front) = self.front_time() {
                self.rebase(front);
            }
        }
        let offset = match self.offset(ts) {
            Some(offset) => offset,
            None => {
                self.samples.clear();
                self.base = ts;
                0
            }
        };
        self.samples.push_back((offset, value));
    }

    /// Milliseconds from the base to `ts`, when they fit.
    fn offset(&self, ts: Timestamp) -> Option<u32> {
        u32::try_from(ts.millis().checked_sub(self.base.millis())?).ok()
    }

    /// Makes `base` (not after the oldest sample) the new base.
    fn rebase(&mut self, base: Timestamp) {
        let shift = base.millis() - self.base.millis();
        for (offset, _) in &mut self.samples {
            *offset = u32::try_from(i64::from(*offset) - shift).unwrap_or(0);
        }
        self.base = base;
    }
}

/// One sensor's forecaster against an upper limit.
#[derive(Debug, Clone)]
pub struct Forecaster {
    /// Shared with every sensor of the kind (issue 18).
    settings: Arc<ForecastSettings>,
    limit: f64,
    /// Current state.
    pub state: ForecastState,
}

thread_local! {
    /// Scratch for the pairwise slopes and then the intercepts of a fit (n(n − 1)/2 slopes:
    /// 1,770 at [`MAX_SAMPLES`], 14 KiB), one per thread and reused by every fit on it, so a
    /// fit allocates nothing and no sensor holds a buffer of its own.
    static SCRATCH: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// [`theil_sen`] as it was before selection: each median by sorting a fresh vector. The
/// reference the selection is checked against (bit for bit) and benchmarked against
/// (`examples/detector_bench.rs`); the detectors do not call it.
pub fn theil_sen_by_sorting(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    fn median_sorted(mut v: Vec<f64>) -> Option<f64> {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(v[n / 2]),
            _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        }
    }
    let mut slopes = Vec::with_capacity(points.len() * points.len() / 2);
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            if b.0 != a.0 {
                slopes.push((b.1 - a.1) / (b.0 - a.0));
            }
        }
    }
    let slope = median_sorted(slopes)?;
    let intercept = median_sorted(points.iter().map(|p| p.1 - slope * p.0).collect())?;
    Some((slope, intercept))
}

/// Theil–Sen fit of `(x, y)` points: slope (median of pairwise slopes) and intercept (median of
/// `y − slope·x`). `None` with fewer than two distinct x.
///
/// The medians are found by selection ([`median`], linear time) in a per-thread scratch buffer,
/// not by sorting a fresh vector: the same values, bit for bit, as the sorted medians (test
/// `selection_gives_the_sorted_medians_bit_for_bit`), so the forecast's events are unchanged.
pub fn theil_sen(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    SCRATCH.with(|scratch| {
        // Not re-entered: nothing below calls back into `theil_sen`.
        let mut v = scratch.borrow_mut();
        v.clear();
        for (i, a) in points.iter().enumerate() {
            for b in &points[i + 1..] {
                if b.0 != a.0 {
                    v.push((b.1 - a.1) / (b.0 - a.0));
                }
            }
        }
        let slope = median(&mut v)?;
        v.clear();
        v.extend(points.iter().map(|p| p.1 - slope * p.0));
        Some((slope, median(&mut v)?))
    })
}

/// The median of `v` (the mean of the two middle values when their number is even), ordered by
/// [`f64::total_cmp`]; reorders `v`. By selection, O(n): the same value a full sort gives.
fn median(v: &mut [f64]) -> Option<f64> {
    let n = v.len();
    if n == 0 {
        return None;
    }
    let (lower, &mut upper, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    if n % 2 == 1 {
        return Some(upper);
    }
    // `lower` holds the n/2 values ordered before `upper`: its greatest is the other middle one.
    let below = lower.iter().copied().max_by(f64::total_cmp)?;
    Some((below + upper) / 2.0)
}

impl Forecaster {
    /// The limit it forecasts against.
    pub fn limit(&self) -> f64 {
        self.limit
    }

    /// A forecaster against `limit` (the sensor's upper warning limit).
    pub fn new(settings: impl Into<Arc<ForecastSettings>>, limit: f64) -> Self {
        Forecaster {
            settings: settings.into(),
            limit,
            state: ForecastState::default(),
        }
    }

    /// The expected crossing of the open forecast, if one is raised.
    pub fn expected_crossing(&self) -> Option<Timestamp> {
        self.state.raised.map(|r| r.1)
    }

    /// Fitted value now and the time the trend reaches the limit (None: not rising). x is
    /// seconds before `now`, so the intercept is the fitted value now.
    fn project(&self, now: Timestamp) -> Option<(f64, Option<Timestamp>)> {
        let points: Vec<(f64, f64)> = self
            .state
            .iter()
            .map(|(t, v)| (-now.since(t).as_secs_f64(), f64::from(v)))
            .collect();
        let (slope, now_value) = theil_sen(&points)?;
        if slope <= 0.0 {
            return Some((now_value, None));
        }
        let secs = ((self.limit - now_value) / slope).max(0.0);
        Some((now_value, Some(now.plus(Duration::from_secs_f64(secs)))))
    }

    /// Feeds one valid sample (time order per sensor).
    pub fn observe(&mut self, ts: Timestamp, value: f64) -> Option<Transition> {
        let st = &mut self.state;
        // Readings are f32 in the window (ample for a sensor); the comparisons below use the
        // reading as given.
        #[allow(clippy::cast_possible_truncation)]
        st.push(ts, value as f32);
        while st
            .front_time()
            .is_some_and(|t| ts.since(t) > self.settings.window)
            || st.samples.len() > MAX_SAMPLES
        {
            st.samples.pop_front();
        }
        if self.state.samples.len() < MIN_SAMPLES {
            return None;
        }
        let (fitted, crossing) = self.project(ts)?;
        let horizon = self.settings.horizon;
        match (self.state.raised, crossing) {
            (None, Some(eta)) if value < self.limit && eta.since(ts) <= horizon => {
                self.state.raised = Some((ts, eta));
                Some(Transition::raised(fitted, Some(self.limit), ts, ts))
            }
            (Some((since, _)), Some(eta)) if value < self.limit && eta.since(ts) <= horizon * 2 => {
                self.state.raised = Some((since, eta));
                None
            }
            (Some((since, _)), _) => {
                self.state.raised = None;
                Some(Transition::cleared(fitted, Some(self.limit), since, ts))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldaisle_core::EventState;

    #[test]
    fn theil_sen_ignores_an_outlier_that_least_squares_would_follow() {
        let mut points: Vec<(f64, f64)> = (0..10)
            .map(|i| (f64::from(i), 2.0 * f64::from(i) + 1.0))
            .collect();
        points[7].1 = 500.0;
        let (slope, intercept) = theil_sen(&points).expect("fit");
        assert!((slope - 2.0).abs() < 1e-9, "{slope}");
        assert!((intercept - 1.0).abs() < 1e-9, "{intercept}");
        assert!(theil_sen(&[(1.0, 1.0)]).is_none());
    }

    #[test]
    fn selection_gives_the_sorted_medians_bit_for_bit() {
        // xorshift: windows of 2..=60 points, readings with 0.1 °C steps (many equal slopes
        // and values, so ties around the median are common), some with repeated times.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut fits = 0;
        for round in 0..3_000 {
            let n = 2 + (next() % 59) as usize;
            let points: Vec<(f64, f64)> = (0..n)
                .map(|i| {
                    let t = if round % 5 == 0 {
                        (i / 2) as f64
                    } else {
                        i as f64
                    };
                    (-30.0 * t, 20.0 + (next() % 40) as f64 / 10.0)
                })
                .collect();
            let got = theil_sen(&points);
            let want = theil_sen_by_sorting(&points);
            let bits = |f: Option<(f64, f64)>| f.map(|(s, i)| (s.to_bits(), i.to_bits()));
            assert_eq!(bits(got), bits(want), "{points:?}");
            fits += usize::from(got.is_some());
        }
        assert!(fits > 2_500, "{fits}");
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0, 4.0]), Some(2.5));
    }

    /// One sample a minute; `f` gives the value of minute `m`.
    fn run(
        d: &mut Forecaster,
        minutes: std::ops::Range<i64>,
        f: impl Fn(i64) -> f64,
    ) -> Vec<(i64, Transition)> {
        minutes
            .filter_map(|m| d.observe(Timestamp(m * 60_000), f(m)).map(|t| (m, t)))
            .collect()
    }

    #[test]
    fn a_steady_climb_is_forecast_before_the_limit_and_cleared_when_it_turns() {
        // 22 °C, then from minute 60 rising 0.1 °C a minute toward 27 °C (reached at minute
        // 110), turning back down at minute 90 (at 25 °C).
        let value = |m: i64| {
            if m < 60 {
                22.0
            } else if m < 90 {
                22.0 + 0.1 * (m - 60) as f64
            } else {
                25.0 - 0.1 * (m - 90) as f64
            }
        };
        let mut d = Forecaster::new(ForecastSettings::default(), 27.0);
        let out = run(&mut d, 0..150, value);
        assert_eq!(out.len(), 2, "{out:?}");
        let (raised_at, raised) = &out[0];
        assert_eq!(raised.state, EventState::Raised);
        // Within 30 min of the crossing at minute 110, and well before it.
        assert!((80..=90).contains(raised_at), "{out:?}");
        assert_eq!(raised.limit, Some(27.0));
        let (cleared_at, cleared) = &out[1];
        assert_eq!(cleared.state, EventState::Cleared);
        assert!(
            (90..=110).contains(cleared_at),
            "cleared once the trend turned: {out:?}"
        );
    }

    #[test]
    fn the_expected_crossing_is_where_the_trend_meets_the_limit() {
        let mut d = Forecaster::new(ForecastSettings::default(), 27.0);
        // 0.2 °C a minute from 20 °C: 27 °C at minute 35.
        let out = run(&mut d, 0..20, |m| 20.0 + 0.2 * m as f64);
        assert_eq!(out.len(), 1, "{out:?}");
        let eta = d.expected_crossing().expect("raised");
        assert_eq!(eta.millis() / 60_000, 35, "{eta}");
    }

    #[test]
    fn state_round_trips_and_an_empty_state_decodes() {
        let mut d = Forecaster::new(ForecastSettings::default(), 27.0);
        run(&mut d, 0..20, |m| 20.0 + 0.2 * m as f64);
        let json = serde_json::to_value(&d.state).expect("encode");
        let back: ForecastState = serde_json::from_value(json).expect("decode");
        assert_eq!(back, d.state);
        let empty: ForecastState = serde_json::from_str("{}").expect("decode");
        assert_eq!(empty, ForecastState::default());
    }

    #[test]
    fn a_record_of_the_f64_layout_loads_and_the_stored_shape_is_unchanged() {
        let old = r#"{"samples":[[1700000000000,22.100000000000001],[1700000030000,22.2]],"raised":[1700000000000,1700000600000]}"#;
        let state: ForecastState = serde_json::from_str(old).expect("decode");
        let t0 = Timestamp(1_700_000_000_000);
        let t1 = Timestamp(1_700_000_030_000);
        assert_eq!(
            state.iter().collect::<Vec<_>>(),
            vec![(t0, 22.1), (t1, 22.2)]
        );
        assert_eq!(state.raised, Some((t0, Timestamp(1_700_000_600_000))));
        let json = serde_json::to_string(&state).expect("encode");
        assert_eq!(
            json,
            r#"{"samples":[[1700000000000,22.1],[1700000030000,22.2]],"raised":[1700000000000,1700000600000]}"#
        );
    }

    #[test]
    fn samples_keep_their_times_across_a_rebase_and_a_clock_step_back() {
        let mut st = ForecastState::default();
        st.push(Timestamp(0), 1.0);
        st.push(Timestamp(1_000), 2.0);
        st.samples.pop_front();
        // 49.7 days after the first base: only fits from the oldest sample kept.
        let far = Timestamp(1_000 + i64::from(u32::MAX));
        st.push(far, 3.0);
        assert_eq!(st.base, Timestamp(1_000));
        assert_eq!(
            st.iter().collect::<Vec<_>>(),
            vec![(Timestamp(1_000), 2.0), (far, 3.0)]
        );
        // Before the oldest sample (the clock stepped back): the trend starts again.
        st.push(Timestamp(500), 4.0);
        assert_eq!(st.iter().collect::<Vec<_>>(), vec![(Timestamp(500), 4.0)]);
    }

    #[test]
    fn a_state_equals_its_reload_whatever_its_base() {
        let mut st = ForecastState::default();
        for m in 0..5 {
            st.push(Timestamp(m * 60_000), 20.0 + m as f32);
        }
        st.samples.pop_front();
        let back: ForecastState =
            serde_json::from_str(&serde_json::to_string(&st).expect("encode")).expect("decode");
        assert_ne!(back.base, st.base);
        assert_eq!(back, st);
    }

    #[test]
    fn flat_noise_and_a_spike_never_forecast() {
        let mut d = Forecaster::new(ForecastSettings::default(), 27.0);
        let out = run(&mut d, 0..600, |m| {
            if m == 300 {
                26.9
            } else {
                22.0 + ((m * 7) % 5) as f64 * 0.1
            }
        });
        assert!(out.is_empty(), "{out:?}");
    }
}
