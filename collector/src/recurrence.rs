//! Recurrence signature of a problem: *when* its incidents happen, *where* (which racks), and
//! whether their peaks are getting worse, each judged with a stated test and said in words.
//!
//! Pure: the caller passes the incidents (open time, racks with their peaks) and the site's
//! offset from UTC; nothing reads a clock or a store, so a rebuild gives the same signature.
//!
//! - **Time of day**: each incident's local open time is an angle on the 24-hour circle. The
//!   circular mean direction, the mean resultant length `R̄` and the circular standard
//!   deviation `√(−2 ln R̄)` describe it; the **Rayleigh test** (H₀: uniform around the clock)
//!   judges it, with the p-value approximation of Zar (1999, eq. 27.4)
//!   `p ≈ exp(√(1 + 4n + 4(n² − Rₙ²)) − (1 + 2n))`, `Rₙ = n·R̄`. Angles make a window that wraps
//!   midnight (22:00–02:00) as concentrated as one at noon.
//! - When the test rejects H₀ at `alpha`, the signature names the shortest whole-hour window
//!   (at most [`MAX_WINDOW_HOURS`]) holding at least [`WINDOW_SHARE`] of the incidents, in words:
//!   "5 of 6 incidents between 14:00 and 16:00 on weekdays".
//! - **Day of week**: counts per local weekday; "on weekdays" / "at weekends" is said when every
//!   incident of the window falls on one side. The share of weekday incidents is judged with an
//!   exact one-sided binomial test against 5/7 (recorded, not required for the words).
//! - **Racks**: ranked by the number of incidents they took part in, then by their highest peak.
//! - **Peaks**: the **Mann–Kendall** trend test on the incident peaks in time order (normal
//!   approximation with continuity correction and the tie correction of the variance), with
//!   the **Theil–Sen** slope (median of pairwise slopes, per incident) as the size of the trend.
//!
//! Fewer than `min_incidents` incidents are too few to call a pattern: the signature then says
//! so and makes no time-of-day or trend claim.

mod tally;
pub use tally::SignatureTally;
#[cfg(test)]
mod reference;

use crate::model::StoredEvent;
use coldaisle_core::wire::Payload;
use coldaisle_core::{EventState, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest window the words may name, in hours.
pub const MAX_WINDOW_HOURS: u32 = 8;
/// Share of the incidents the named window must hold.
pub const WINDOW_SHARE: f64 = 0.75;
const DAY_MS: i64 = 86_400_000;
const MINUTE_MS: i64 = 60_000;
const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// One rack's part in an incident.
#[derive(Debug, Clone, PartialEq)]
pub struct RackPeak {
    /// Rack id.
    pub rack: String,
    /// Highest value the rack reached during the incident (°C for thermal problems).
    pub peak: f64,
}

/// One incident of the problem, as the signature needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentPoint {
    /// When the incident opened (UTC).
    pub opened_at: Timestamp,
    /// The racks involved, with their peaks (may be empty when unknown).
    pub racks: Vec<RackPeak>,
}

impl IncidentPoint {
    /// The incident's peak: the highest of its racks' peaks.
    fn peak(&self) -> Option<f64> {
        self.racks
            .iter()
            .map(|r| r.peak)
            .filter(|p| p.is_finite())
            .reduce(f64::max)
    }
}

impl IncidentPoint {
    /// The point of an incident that opened at `opened_at` with these events (its timeline):
    /// every raised sensor event that names a rack counts for that rack, with the highest value
    /// it raised at as the rack's peak.
    pub fn of_events(opened_at: Timestamp, events: &[&StoredEvent]) -> IncidentPoint {
        let mut peaks: BTreeMap<&str, f64> = BTreeMap::new();
        for event in events {
            let Payload::SensorEvent(s) = &event.payload else {
                continue;
            };
            let Some(rack) = s.location.rack.as_deref() else {
                continue;
            };
            if s.state != EventState::Raised || !s.value.is_finite() {
                continue;
            }
            let peak = peaks.entry(rack).or_insert(f64::NEG_INFINITY);
            *peak = peak.max(s.value);
        }
        IncidentPoint {
            opened_at,
            racks: peaks
                .into_iter()
                .map(|(rack, peak)| RackPeak {
                    rack: rack.to_string(),
                    peak,
                })
                .collect(),
        }
    }
}

/// How the signature is judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignatureSettings {
    /// Site local time = UTC + this many minutes (e.g. 60 for CET, −300 for EST).
    pub utc_offset_minutes: i32,
    /// Fewest incidents for any pattern or trend claim.
    pub min_incidents: usize,
    /// Significance level of the tests.
    pub alpha: f64,
}

impl Default for SignatureSettings {
    fn default() -> Self {
        SignatureSettings {
            utc_offset_minutes: 0,
            min_incidents: 4,
            alpha: 0.05,
        }
    }
}

/// A window of local clock time: `start_hour` to `start_hour + hours` (mod 24).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourWindow {
    /// First hour of the window (0–23, local).
    pub start_hour: u32,
    /// Length in hours.
    pub hours: u32,
    /// Incidents that opened inside it.
    pub count: usize,
    /// Of those, how many on Monday–Friday.
    pub weekdays: usize,
}

impl HourWindow {
    #[cfg(test)]
    fn contains(&self, minute_of_day: i64) -> bool {
        let start = i64::from(self.start_hour) * 60;
        (minute_of_day - start).rem_euclid(24 * 60) < i64::from(self.hours) * 60
    }

    fn end_hour(&self) -> u32 {
        (self.start_hour + self.hours) % 24
    }
}

/// The time-of-day profile and its Rayleigh test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeOfDay {
    /// Circular mean of the local open times, in hours (0 ≤ h < 24).
    pub mean_hour: f64,
    /// Mean resultant length R̄ (0: spread evenly, 1: all at the same minute).
    pub resultant_length: f64,
    /// Circular standard deviation √(−2 ln R̄), in hours.
    pub circular_sd_hours: f64,
    /// Rayleigh statistic Z = n·R̄².
    pub rayleigh_z: f64,
    /// Rayleigh test p-value (H₀: uniform around the clock).
    pub p_value: f64,
    /// Whether H₀ is rejected at the settings' `alpha`.
    pub concentrated: bool,
    /// The window named in words (only when concentrated).
    pub window: Option<HourWindow>,
}

/// Incidents per local day of week and the weekday share's binomial test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayOfWeek {
    /// Incidents per day, Monday first.
    pub by_day: [usize; 7],
    /// Incidents on Monday–Friday.
    pub weekdays: usize,
    /// One-sided exact binomial p-value of at least `weekdays` weekday incidents when each
    /// incident falls on a weekday with probability 5/7.
    pub weekday_p_value: f64,
}

/// A rack's part in the problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RackRank {
    /// Rack id.
    pub rack: String,
    /// Incidents the rack took part in.
    pub incidents: usize,
    /// Its highest peak over them.
    pub max_peak: f64,
}

/// Direction of the peaks' trend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrendDirection {
    /// Peaks rise significantly from incident to incident.
    Worsening,
    /// Peaks fall significantly.
    Improving,
    /// No significant trend.
    Stable,
}

/// The Mann–Kendall test and Theil–Sen slope of the incident peaks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeakTrend {
    /// Incidents with a known peak.
    pub n: usize,
    /// Mann–Kendall S statistic.
    pub s: i64,
    /// Normal score of S (continuity-corrected).
    pub z: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// Theil–Sen slope: change of the peak per incident.
    pub slope_per_incident: f64,
    /// The verdict at the settings' `alpha`.
    pub direction: TrendDirection,
}

/// The recurrence signature of a problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    /// Incidents considered.
    pub incidents: usize,
    /// When the latest of them opened (None without incidents).
    #[serde(default)]
    pub last_at: Option<Timestamp>,
    /// Whether there were enough incidents to judge a pattern or a trend.
    pub enough: bool,
    /// Time-of-day profile (None when too few incidents).
    pub time_of_day: Option<TimeOfDay>,
    /// Day-of-week profile (always counted).
    pub day_of_week: DayOfWeek,
    /// Racks involved, most involved first.
    pub racks: Vec<RackRank>,
    /// Trend of the peaks (None when too few incidents with peaks).
    pub trend: Option<PeakTrend>,
    /// The signature in words, for the problem record and reports.
    pub summary: String,
}

/// Computes the signature of `incidents` (any order) under `settings`: their running tally
/// ([`SignatureTally`]), in the slice's order among incidents that opened at the same time.
pub fn signature(incidents: &[IncidentPoint], settings: &SignatureSettings) -> Signature {
    let mut tally = SignatureTally::default();
    for (order, incident) in incidents.iter().enumerate() {
        tally.add(incident, order as u64);
    }
    tally.signature(settings)
}

/// Rayleigh test p-value, Zar (1999) eq. 27.4, clamped to [0, 1].
fn rayleigh_p(n: f64, r_n: f64) -> f64 {
    let p = ((1.0 + 4.0 * n + 4.0 * (n * n - r_n * r_n)).sqrt() - (1.0 + 2.0 * n)).exp();
    p.clamp(0.0, 1.0)
}

/// Mann–Kendall test with the Theil–Sen slope, on values in time order.
fn peak_trend(values: &[f64], alpha: f64) -> PeakTrend {
    let n = values.len();
    let mut s: i64 = 0;
    let mut slopes = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            let d = values[j] - values[i];
            s += if d > 0.0 {
                1
            } else if d < 0.0 {
                -1
            } else {
                0
            };
            slopes.push(d / (j - i) as f64);
        }
    }
    // Variance with the tie correction: Σ t(t−1)(2t+5) over groups of equal values.
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut ties = 0.0;
    let mut k = 0;
    while k < n {
        let mut t = 1;
        while k + t < n && sorted[k + t] == sorted[k] {
            t += 1;
        }
        let t = t as f64;
        ties += t * (t - 1.0) * (2.0 * t + 5.0);
        k += t as usize;
    }
    let nf = n as f64;
    let var = (nf * (nf - 1.0) * (2.0 * nf + 5.0) - ties) / 18.0;
    let z = if var <= 0.0 || s == 0 {
        0.0
    } else {
        (s as f64 - s.signum() as f64) / var.sqrt()
    };
    let p_value = (2.0 * (1.0 - normal_cdf(z.abs()))).clamp(0.0, 1.0);
    slopes.sort_by(f64::total_cmp);
    let slope = median_sorted(&slopes).unwrap_or(0.0);
    let direction = if p_value < alpha && s > 0 {
        TrendDirection::Worsening
    } else if p_value < alpha && s < 0 {
        TrendDirection::Improving
    } else {
        TrendDirection::Stable
    };
    PeakTrend {
        n,
        s,
        z,
        p_value,
        slope_per_incident: slope,
        direction,
    }
}

fn median_sorted(v: &[f64]) -> Option<f64> {
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// Standard normal CDF via the complementary error function (Numerical Recipes `erfcc`,
/// fractional error below 1.2e-7).
fn normal_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * z);
    let erfc = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        1.0 - erfc / 2.0
    } else {
        erfc / 2.0
    }
}

/// P(X ≥ k) for X ~ Binomial(n, p), exact.
fn binomial_upper_tail(n: usize, k: usize, p: f64) -> f64 {
    let mut total = 0.0;
    for i in k..=n {
        total += binomial_coefficient(n, i) * p.powi(i as i32) * (1.0 - p).powi((n - i) as i32);
    }
    total.clamp(0.0, 1.0)
}

fn binomial_coefficient(n: usize, k: usize) -> f64 {
    if k > n {
        return 0.0;
    }
    let k = k.min(n - k);
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

fn clock(hour_fraction: f64) -> String {
    let minutes = (hour_fraction * 60.0).round() as i64 % (24 * 60);
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn words(
    n: usize,
    settings: &SignatureSettings,
    tod: Option<&TimeOfDay>,
    dow: &DayOfWeek,
    racks: &[RackRank],
    trend: Option<&PeakTrend>,
) -> String {
    let mut parts = Vec::new();
    match tod {
        None => parts.push(format!(
            "{n} incident{}: too few to call a pattern (at least {} needed)",
            if n == 1 { "" } else { "s" },
            settings.min_incidents.max(2)
        )),
        Some(t) => match (t.concentrated, t.window) {
            (true, Some(w)) => {
                let days = if w.weekdays == w.count {
                    " on weekdays"
                } else if w.weekdays == 0 {
                    " at weekends"
                } else {
                    ""
                };
                parts.push(format!(
                    "{} of {n} incidents between {:02}:00 and {:02}:00{days} (Rayleigh test p = {}, mean {}, circular SD {:.1} h)",
                    w.count,
                    w.start_hour,
                    w.end_hour(),
                    p_text(t.p_value),
                    clock(t.mean_hour),
                    t.circular_sd_hours
                ));
            }
            (true, None) => parts.push(format!(
                "{n} incidents concentrated around {} (Rayleigh test p = {}, circular SD {:.1} h)",
                clock(t.mean_hour),
                p_text(t.p_value),
                t.circular_sd_hours
            )),
            (false, _) => parts.push(format!(
                "no time-of-day pattern in {n} incidents (Rayleigh test p = {})",
                p_text(t.p_value)
            )),
        },
    }
    if tod.is_some() {
        let busiest = dow
            .by_day
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(d, c)| format!("{} {c}", DAY_NAMES[d]))
            .collect::<Vec<_>>()
            .join(", ");
        parts.push(format!("by day: {busiest}"));
    }
    if !racks.is_empty() {
        let list = racks
            .iter()
            .take(5)
            .map(|r| format!("{} ({}, peak {:.1})", r.rack, r.incidents, r.max_peak))
            .collect::<Vec<_>>()
            .join(", ");
        parts.push(format!("racks: {list}"));
    }
    if let Some(t) = trend {
        let verdict = match t.direction {
            TrendDirection::Worsening => "peaks getting worse",
            TrendDirection::Improving => "peaks getting lower",
            TrendDirection::Stable => "no trend in peaks",
        };
        parts.push(format!(
            "{verdict}: {:+.2} per incident (Theil–Sen; Mann–Kendall p = {})",
            t.slope_per_incident,
            p_text(t.p_value)
        ));
    }
    parts.join("; ")
}

fn p_text(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".to_string()
    } else {
        format!("{p:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_MS: i64 = 3_600_000;
    /// Monday 2026-11-02 00:00 UTC.
    const MONDAY: i64 = 1_793_577_600_000;

    fn at(day: i64, hour: f64, racks: &[(&str, f64)]) -> IncidentPoint {
        IncidentPoint {
            opened_at: Timestamp(MONDAY + day * DAY_MS + (hour * HOUR_MS as f64) as i64),
            racks: racks
                .iter()
                .map(|(r, p)| RackPeak {
                    rack: (*r).to_string(),
                    peak: *p,
                })
                .collect(),
        }
    }

    #[test]
    fn monday_constant_is_a_monday() {
        let t = Timestamp(MONDAY).to_rfc3339();
        assert!(t.starts_with("2026-11-02T00:00"), "{t}");
    }

    #[test]
    fn afternoon_weekday_incidents_are_named_with_their_window_and_test() {
        // Five weekday incidents between 14:00 and 16:00, one on Saturday morning.
        let mut incidents = vec![
            at(0, 14.5, &[("R07", 29.0)]),
            at(1, 15.2, &[("R07", 29.5), ("R08", 28.0)]),
            at(2, 14.1, &[("R07", 30.1)]),
            at(3, 15.8, &[("R08", 28.4)]),
            at(4, 14.9, &[("R07", 30.6)]),
            at(5, 9.0, &[("R01", 27.5)]),
        ];
        let s = signature(&incidents, &SignatureSettings::default());
        let t = s.time_of_day.clone().expect("enough incidents");
        assert!(t.concentrated, "{t:?}");
        assert!(t.p_value < 0.05 && t.p_value > 0.0, "{t:?}");
        let w = t.window.expect("window");
        assert_eq!((w.start_hour, w.hours, w.count, w.weekdays), (14, 2, 5, 5));
        assert!(
            s.summary.starts_with(
                "5 of 6 incidents between 14:00 and 16:00 on weekdays (Rayleigh test p = "
            ),
            "{}",
            s.summary
        );
        assert_eq!(s.racks[0].rack, "R07");
        assert_eq!((s.racks[0].incidents, s.racks[0].max_peak), (4, 30.6));
        assert_eq!(s.racks[1].rack, "R08");
        assert_eq!(s.day_of_week.by_day, [1, 1, 1, 1, 1, 1, 0]);
        assert_eq!(s.day_of_week.weekdays, 5);
        // The test has little power at n = 6: one incident on the opposite side of the clock
        // (03:00) is enough to leave the afternoon cluster unproven (p ≈ 0.07).
        incidents[5] = at(5, 3.0, &[("R01", 27.5)]);
        let t = signature(&incidents, &SignatureSettings::default())
            .time_of_day
            .expect("enough");
        assert!(
            !t.concentrated && t.p_value > 0.05 && t.p_value < 0.1,
            "{t:?}"
        );
    }

    #[test]
    fn too_few_incidents_make_no_claim() {
        let incidents = vec![at(0, 14.0, &[("R07", 29.0)]), at(1, 14.1, &[("R07", 29.0)])];
        let s = signature(&incidents, &SignatureSettings::default());
        assert!(!s.enough);
        assert!(s.time_of_day.is_none() && s.trend.is_none());
        assert!(
            s.summary
                .starts_with("2 incidents: too few to call a pattern (at least 4 needed)"),
            "{}",
            s.summary
        );
        assert_eq!(s.racks.len(), 1, "racks are still listed");
        let none = signature(&[], &SignatureSettings::default());
        assert_eq!(none.incidents, 0);
        assert!(none.summary.starts_with("0 incidents: too few"));
    }

    #[test]
    fn times_spread_around_the_clock_are_not_a_pattern() {
        let incidents: Vec<IncidentPoint> = (0..12)
            .map(|k| at(k, (k * 2) as f64, &[("R01", 28.0)]))
            .collect();
        let s = signature(&incidents, &SignatureSettings::default());
        let t = s.time_of_day.expect("enough");
        assert!(!t.concentrated);
        assert!(
            t.resultant_length < 1e-9,
            "evenly spread: R̄ = {}",
            t.resultant_length
        );
        assert!(t.p_value > 0.5, "{}", t.p_value);
        assert!(t.window.is_none());
        assert!(
            s.summary
                .starts_with("no time-of-day pattern in 12 incidents"),
            "{}",
            s.summary
        );
    }

    #[test]
    fn a_window_across_midnight_is_found_and_its_mean_is_near_midnight() {
        let incidents = vec![
            at(0, 22.5, &[]),
            at(1, 23.5, &[]),
            at(2, 0.5, &[]),
            at(3, 1.5, &[]),
            at(4, 23.0, &[]),
            at(5, 0.9, &[]),
        ];
        let s = signature(&incidents, &SignatureSettings::default());
        let t = s.time_of_day.expect("enough");
        assert!(t.concentrated, "{t:?}");
        let from_midnight = t.mean_hour.min(24.0 - t.mean_hour);
        assert!(from_midnight < 0.5, "mean {}", t.mean_hour);
        let w = t.window.expect("window");
        // The shortest window holding 75 % (5 of 6) wraps midnight: 22:00–01:00.
        assert_eq!(
            (w.start_hour, w.hours, w.end_hour(), w.count),
            (22, 3, 1, 5)
        );
        assert!(
            s.summary
                .starts_with("5 of 6 incidents between 22:00 and 01:00"),
            "{}",
            s.summary
        );
        assert!(s.racks.is_empty() && s.trend.is_none(), "no peaks known");
    }

    #[test]
    fn the_site_offset_moves_the_window_to_local_time() {
        // 13:xx UTC is 14:xx at UTC+1 (CET); all on weekdays.
        let incidents: Vec<IncidentPoint> =
            (0..5).map(|d| at(d, 13.0 + 0.2 * d as f64, &[])).collect();
        let utc = signature(&incidents, &SignatureSettings::default());
        let cet = signature(
            &incidents,
            &SignatureSettings {
                utc_offset_minutes: 60,
                ..SignatureSettings::default()
            },
        );
        let w = |s: &Signature| {
            s.time_of_day
                .as_ref()
                .and_then(|t| t.window)
                .map(|w| w.start_hour)
        };
        assert_eq!(w(&utc), Some(13));
        assert_eq!(w(&cet), Some(14));
        // A negative offset can move an incident to the previous local day (Monday → Sunday).
        let est = signature(
            &[at(0, 2.0, &[])],
            &SignatureSettings {
                utc_offset_minutes: -300,
                ..SignatureSettings::default()
            },
        );
        assert_eq!(est.day_of_week.by_day[6], 1, "Sunday evening in New York");
    }

    #[test]
    fn rising_peaks_are_a_worsening_trend_and_flat_ones_are_not() {
        let rising: Vec<IncidentPoint> = (0..8)
            .map(|k| {
                at(
                    k,
                    14.0,
                    &[(
                        "R07",
                        28.0 + 0.5 * k as f64 + if k % 2 == 0 { 0.1 } else { 0.0 },
                    )],
                )
            })
            .collect();
        let s = signature(&rising, &SignatureSettings::default());
        let t = s.trend.expect("trend");
        assert_eq!(t.direction, TrendDirection::Worsening);
        assert_eq!(t.s, 28, "every pair rises");
        assert!(t.p_value < 0.01, "{}", t.p_value);
        assert!(
            (t.slope_per_incident - 0.5).abs() < 0.06,
            "{}",
            t.slope_per_incident
        );
        assert!(
            s.summary.contains("peaks getting worse: +0.5"),
            "{}",
            s.summary
        );
        let flat: Vec<IncidentPoint> = (0..8)
            .map(|k| {
                at(
                    k,
                    14.0,
                    &[("R07", 28.0 + if k % 2 == 0 { 0.3 } else { -0.3 })],
                )
            })
            .collect();
        let t = signature(&flat, &SignatureSettings::default())
            .trend
            .expect("trend");
        assert_eq!(t.direction, TrendDirection::Stable);
        assert!(t.p_value > 0.3, "{}", t.p_value);
    }

    #[test]
    fn statistics_match_reference_values() {
        // Rayleigh: n = 10, R̄ = 0.5 → Z = 2.5; Zar's approximation gives p ≈ 0.0794 (the series
        // exp(−Z)·(1 + (2Z − Z²)/4n) gives 0.0796).
        let p = rayleigh_p(10.0, 5.0);
        assert!((p - 0.0794).abs() < 0.0005, "{p}");
        assert!((normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
        assert!((normal_cdf(-1.0) - 0.158_655).abs() < 1e-6);
        // P(X ≥ 6 | n = 6, p = 5/7) = (5/7)^6.
        assert!((binomial_upper_tail(6, 6, 5.0 / 7.0) - (5.0f64 / 7.0).powi(6)).abs() < 1e-12);
        assert_eq!(binomial_upper_tail(6, 0, 5.0 / 7.0), 1.0);
    }
}
