//! Fix verification figures: did the zone get better after a problem was resolved?
//!
//! Pure: the caller passes the zone's inlet reading summaries and its incidents around the
//! resolution time, the window (default [`DEFAULT_WINDOW`], 14 days) and the evaluation time;
//! the module compares the window *before* the resolution, `[resolved − window, resolved)`,
//! with the window *after* it, `[resolved, resolved + window)`:
//!
//! - **Peak inlet variance**: the zone's peak inlet temperature per hour (the highest `max` of
//!   any inlet summary ending in that hour) and the population variance of those hourly peaks.
//!   Hours without data are left out, never counted as zero, so a gap does not fake a change.
//! - **Time above the recommended band**: the union of the summary intervals whose `max` is
//!   above `recommended_high` (overlapping sensors count once), clipped to the window.
//! - **Coverage**: the union of all summary intervals over the window's length. Below
//!   `min_coverage` on either side the figures are still given but the verdict is
//!   [`Verdict::InsufficientData`].
//! - **Incidents per week**: incidents opened in each window ÷ its length in weeks.
//!
//! The decision: incidents *of the same pattern* (as the caller judged them) opened inside the
//! after-window make [`Verdict::Recurred`] at once, even before the window ends; otherwise the
//! verdict waits for the window's end ([`Verdict::Pending`]) and is then
//! [`Verdict::Improved`] when no figure got worse and at least one got better, else
//! [`Verdict::NotImproved`].

use coldaisle_core::{ReadingSummary, SensorKind, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Default verification window: 14 days.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(14 * 86_400);
const HOUR_MS: i64 = 3_600_000;
const WEEK_MS: f64 = 7.0 * 86_400_000.0;

/// An incident of the zone, as verification needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneIncident {
    /// When it opened.
    pub opened_at: Timestamp,
    /// Whether it matches the resolved problem's pattern (same zone, category and signature,
    /// as the problem engine judges it): only those count as a recurrence.
    pub same_pattern: bool,
}

/// What to verify and how.
#[derive(Debug, Clone, PartialEq)]
pub struct VerificationInput<'a> {
    /// When the problem was resolved (the fix applied).
    pub resolved_at: Timestamp,
    /// Length of each window.
    pub window: Duration,
    /// The evaluation time (the after-window is complete once `now ≥ resolved_at + window`).
    pub now: Timestamp,
    /// Upper limit of the recommended inlet band (ASHRAE: 27 °C).
    pub recommended_high: f64,
    /// Least share of each window the data must cover for a verdict (e.g. 0.5).
    pub min_coverage: f64,
    /// The zone's reading summaries (kinds other than `inlet_temp` are ignored).
    pub summaries: &'a [ReadingSummary],
    /// The zone's incidents around the resolution.
    pub incidents: &'a [ZoneIncident],
}

/// The figures of one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowFigures {
    /// Window start (inclusive).
    pub from: Timestamp,
    /// Window end (exclusive).
    pub to: Timestamp,
    /// Hours with inlet data.
    pub hours_with_data: usize,
    /// Population variance of the hourly peak inlet temperature (°C²); None without data.
    pub peak_variance: Option<f64>,
    /// Highest inlet temperature seen.
    pub peak: Option<f64>,
    /// Time above the recommended band.
    pub time_above: Duration,
    /// Share of the window covered by data (0–1).
    pub coverage: f64,
    /// Incidents opened in the window.
    pub incidents: usize,
    /// Incidents per week.
    pub incidents_per_week: f64,
}

/// The verdict of a verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Verdict {
    /// The after-window has not ended and nothing recurred yet.
    Pending,
    /// Incidents of the same pattern happened inside the after-window: reopen.
    Recurred {
        /// The first of them.
        first: Timestamp,
        /// How many.
        count: usize,
    },
    /// Too little data on one side to compare.
    InsufficientData,
    /// No figure worse and at least one better.
    Improved,
    /// Otherwise.
    NotImproved,
}

/// The result: both windows, the changes, the verdict and a sentence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// The window before the resolution.
    pub before: WindowFigures,
    /// The window after it (up to `now` while pending).
    pub after: WindowFigures,
    /// Change of the peak inlet variance, in percent of the before value.
    pub variance_change_percent: Option<f64>,
    /// The decision.
    pub verdict: Verdict,
    /// The figures in words, e.g. "peak temperature variance −41 %, incidents 5 → 0".
    pub sentence: String,
}

/// Computes the verification figures and verdict.
pub fn verify(input: &VerificationInput<'_>) -> Verification {
    let window_ms = i64::try_from(input.window.as_millis()).unwrap_or(i64::MAX / 4);
    let start = input.resolved_at.millis().saturating_sub(window_ms);
    let end = input.resolved_at.millis().saturating_add(window_ms);
    let before = figures(input, start, input.resolved_at.millis());
    let after = figures(input, input.resolved_at.millis(), end);
    let variance_change_percent = match (before.peak_variance, after.peak_variance) {
        (Some(b), Some(a)) if b > 0.0 => Some((a - b) / b * 100.0),
        _ => None,
    };
    let recurred: Vec<Timestamp> = {
        let mut v: Vec<Timestamp> = input
            .incidents
            .iter()
            .filter(|i| i.same_pattern)
            .map(|i| i.opened_at)
            .filter(|t| t.millis() >= input.resolved_at.millis() && t.millis() < end)
            .collect();
        v.sort();
        v
    };
    let complete = input.now.millis() >= end;
    let verdict = if let Some(first) = recurred.first() {
        Verdict::Recurred {
            first: *first,
            count: recurred.len(),
        }
    } else if !complete {
        Verdict::Pending
    } else if before.coverage < input.min_coverage || after.coverage < input.min_coverage {
        Verdict::InsufficientData
    } else {
        judge(&before, &after)
    };
    let sentence = sentence(input, &before, &after, variance_change_percent, &verdict);
    Verification {
        before,
        after,
        variance_change_percent,
        verdict,
        sentence,
    }
}

/// Improved when no figure is worse and at least one is better.
fn judge(before: &WindowFigures, after: &WindowFigures) -> Verdict {
    let pairs = [
        (
            before.peak_variance.unwrap_or(0.0),
            after.peak_variance.unwrap_or(0.0),
        ),
        (
            before.time_above.as_secs_f64(),
            after.time_above.as_secs_f64(),
        ),
        (before.incidents_per_week, after.incidents_per_week),
    ];
    let worse = pairs.iter().any(|(b, a)| a > b);
    let better = pairs.iter().any(|(b, a)| a < b);
    if better && !worse {
        Verdict::Improved
    } else {
        Verdict::NotImproved
    }
}

/// The figures over `[from, to)`. A summary belongs to the hour of its midpoint.
fn figures(input: &VerificationInput<'_>, from: i64, to: i64) -> WindowFigures {
    let mut hourly: BTreeMap<i64, f64> = BTreeMap::new();
    let mut covered: Vec<(i64, i64)> = Vec::new();
    let mut above: Vec<(i64, i64)> = Vec::new();
    for s in input
        .summaries
        .iter()
        .filter(|s| s.kind == SensorKind::InletTemp && s.count > 0 && s.max.is_finite())
    {
        let (a, b) = (s.from.millis(), s.to.millis().max(s.from.millis()));
        if b <= from || a >= to {
            continue;
        }
        let hour = (a + (b - a) / 2).clamp(from, to - 1).div_euclid(HOUR_MS);
        let peak = hourly.entry(hour).or_insert(f64::NEG_INFINITY);
        *peak = peak.max(s.max);
        let clipped = (a.max(from), b.min(to));
        covered.push(clipped);
        if s.max > input.recommended_high {
            above.push(clipped);
        }
    }
    let peaks: Vec<f64> = hourly.values().copied().collect();
    let peak_variance = variance(&peaks);
    let span = (to - from).max(1);
    let incidents = input
        .incidents
        .iter()
        .filter(|i| i.opened_at.millis() >= from && i.opened_at.millis() < to)
        .count();
    WindowFigures {
        from: Timestamp(from),
        to: Timestamp(to),
        hours_with_data: peaks.len(),
        peak_variance,
        peak: peaks.iter().copied().reduce(f64::max),
        time_above: Duration::from_millis(union_length(&mut above).max(0) as u64),
        coverage: (union_length(&mut covered) as f64 / span as f64).clamp(0.0, 1.0),
        incidents,
        incidents_per_week: incidents as f64 / (span as f64 / WEEK_MS),
    }
}

/// Population variance; None for no values.
fn variance(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    Some(values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n)
}

/// Total length of the union of intervals (sorts them in place).
fn union_length(intervals: &mut [(i64, i64)]) -> i64 {
    intervals.sort_unstable();
    let mut total = 0;
    let mut current: Option<(i64, i64)> = None;
    for &(a, b) in intervals.iter() {
        current = match current {
            Some((ca, cb)) if a <= cb => Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                total += cb - ca;
                Some((a, b))
            }
            None => Some((a, b)),
        };
    }
    if let Some((ca, cb)) = current {
        total += cb - ca;
    }
    total
}

fn hours(d: Duration) -> String {
    format!("{:.1} h", d.as_secs_f64() / 3600.0)
}

fn sentence(
    input: &VerificationInput<'_>,
    before: &WindowFigures,
    after: &WindowFigures,
    variance_change: Option<f64>,
    verdict: &Verdict,
) -> String {
    let mut parts = Vec::new();
    match variance_change {
        Some(c) => parts.push(format!(
            "peak temperature variance {}{:.0} %",
            if c < 0.0 { "−" } else { "+" },
            c.abs()
        )),
        None => parts.push("peak temperature variance not comparable".to_string()),
    }
    parts.push(format!(
        "incidents {} → {}",
        before.incidents, after.incidents
    ));
    parts.push(format!(
        "time above {:.0} °C {} → {}",
        input.recommended_high,
        hours(before.time_above),
        hours(after.time_above)
    ));
    if before.coverage < 0.999 || after.coverage < 0.999 {
        parts.push(format!(
            "data coverage {:.0} % / {:.0} %",
            before.coverage * 100.0,
            after.coverage * 100.0
        ));
    }
    let days = input.window.as_secs() / 86_400;
    let verdict = match verdict {
        Verdict::Pending => format!("verification window ({days} days) still open"),
        Verdict::Recurred { first, count } => format!(
            "recurred inside the window: {count} incident{} of the same pattern, first at {}",
            if *count == 1 { "" } else { "s" },
            first.to_rfc3339()
        ),
        Verdict::InsufficientData => "too little data to verify".to_string(),
        Verdict::Improved => format!("improved over {days} days"),
        Verdict::NotImproved => format!("not improved over {days} days"),
    };
    format!("{}; {verdict}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldaisle_core::Location;

    const DAY_MS: i64 = 86_400_000;
    /// 2026-11-16 00:00 UTC: the resolution time.
    const RESOLVED: i64 = 1_794_787_200_000;

    fn summary(from_ms: i64, max: f64) -> ReadingSummary {
        ReadingSummary {
            sensor: "Z1-R07-inlet".into(),
            kind: SensorKind::InletTemp,
            location: Location {
                site: "s1".into(),
                zone: "Z1".into(),
                row: None,
                rack: Some("R07".into()),
            },
            from: Timestamp(from_ms),
            to: Timestamp(from_ms + HOUR_MS),
            count: 60,
            min: max - 1.0,
            max,
            sum: (max - 0.5) * 60.0,
            last: max - 0.5,
        }
    }

    /// Hourly summaries over `[from, from + days)`, peak `peak(hour index)`, skipping hours
    /// for which `gap` is true.
    fn hourly(
        from: i64,
        days: i64,
        peak: impl Fn(i64) -> f64,
        gap: impl Fn(i64) -> bool,
    ) -> Vec<ReadingSummary> {
        (0..days * 24)
            .filter(|h| !gap(*h))
            .map(|h| summary(from + h * HOUR_MS, peak(h)))
            .collect()
    }

    fn input<'a>(
        summaries: &'a [ReadingSummary],
        incidents: &'a [ZoneIncident],
        now: i64,
    ) -> VerificationInput<'a> {
        VerificationInput {
            resolved_at: Timestamp(RESOLVED),
            window: DEFAULT_WINDOW,
            now: Timestamp(now),
            recommended_high: 27.0,
            min_coverage: 0.5,
            summaries,
            incidents,
        }
    }

    fn incident(day: f64, same_pattern: bool) -> ZoneIncident {
        ZoneIncident {
            opened_at: Timestamp(RESOLVED + (day * DAY_MS as f64) as i64),
            same_pattern,
        }
    }

    /// 23 °C with `peak` at 14:00 and 15:00 every day.
    fn afternoon_peak(peak: f64) -> impl Fn(i64) -> f64 {
        move |h| {
            if matches!(h % 24, 14 | 15) {
                peak
            } else {
                23.0
            }
        }
    }

    /// Before: a daily afternoon peak of 29 °C (2 h above 27 °C a day) over 23 °C nights.
    /// After: peaks of 25 °C, without the hours `after_gap` says are missing.
    fn story_with_gaps(after_gap: impl Fn(i64) -> bool) -> Vec<ReadingSummary> {
        let mut s = hourly(RESOLVED - 14 * DAY_MS, 14, afternoon_peak(29.0), |_| false);
        s.extend(hourly(RESOLVED, 14, afternoon_peak(25.0), after_gap));
        s
    }

    /// [`story_with_gaps`] without gaps.
    fn story() -> Vec<ReadingSummary> {
        story_with_gaps(|_| false)
    }

    #[test]
    fn a_fix_that_works_is_improved_with_its_figures_in_words() {
        let summaries = story();
        let incidents: Vec<ZoneIncident> = [-13.0, -10.0, -7.0, -4.0, -1.0]
            .iter()
            .map(|d| incident(*d, true))
            .collect();
        let v = verify(&input(&summaries, &incidents, RESOLVED + 15 * DAY_MS));
        assert_eq!(v.verdict, Verdict::Improved);
        assert_eq!((v.before.incidents, v.after.incidents), (5, 0));
        assert!((v.before.incidents_per_week - 2.5).abs() < 1e-9);
        // Hourly peaks: 2 of 24 hours at 29, 22 at 23 → variance = 36·(2/24)(22/24) = 2.75.
        let b = v.before.peak_variance.expect("before variance");
        let a = v.after.peak_variance.expect("after variance");
        assert!((b - 2.75).abs() < 1e-9, "{b}");
        assert!((a - 4.0 * (2.0 / 24.0) * (22.0 / 24.0)).abs() < 1e-9, "{a}");
        let change = v.variance_change_percent.expect("change");
        assert!((change - (-88.888_888)).abs() < 1e-3, "{change}");
        assert_eq!(v.before.time_above, Duration::from_secs(14 * 2 * 3600));
        assert_eq!(v.after.time_above, Duration::ZERO);
        assert!((v.before.coverage - 1.0).abs() < 1e-9);
        assert_eq!(
            v.sentence,
            "peak temperature variance −89 %, incidents 5 → 0, time above 27 °C 28.0 h → 0.0 h; improved over 14 days"
        );
    }

    #[test]
    fn a_same_pattern_incident_inside_the_window_is_a_recurrence_at_once() {
        let summaries = story();
        let incidents = vec![
            incident(-3.0, true),
            incident(2.0, false),
            incident(5.5, true),
            incident(9.0, true),
            incident(15.0, true),
        ];
        // Evaluated on day 10: the window is still open but the recurrence is decided.
        let v = verify(&input(&summaries, &incidents, RESOLVED + 10 * DAY_MS));
        assert_eq!(
            v.verdict,
            Verdict::Recurred {
                first: Timestamp(RESOLVED + 5 * DAY_MS + DAY_MS / 2),
                count: 2
            }
        );
        assert_eq!(
            v.after.incidents, 3,
            "all incidents inside the window are counted"
        );
        assert!(v.sentence.contains("recurred inside the window: 2 incidents of the same pattern, first at 2026-11-21T12:00:00.000Z"), "{}", v.sentence);
        let other_only = [incident(2.0, false)];
        let v = verify(&input(&summaries, &other_only, RESOLVED + 3 * DAY_MS));
        assert_eq!(v.verdict, Verdict::Pending, "other patterns do not reopen");
        assert!(
            v.sentence
                .ends_with("verification window (14 days) still open"),
            "{}",
            v.sentence
        );
    }

    #[test]
    fn gaps_are_left_out_of_the_variance_and_reported_as_coverage() {
        // Same story, but the after-window lost every night's data (18:00–08:00): the
        // remaining hours are daytime, and the variance is of the hours that exist.
        let summaries = story_with_gaps(|h| !(8..18).contains(&(h % 24)));
        let v = verify(&input(&summaries, &[], RESOLVED + 15 * DAY_MS));
        assert_eq!(v.after.hours_with_data, 14 * 10);
        let a = v.after.peak_variance.expect("after variance");
        assert!((a - 4.0 * (2.0 / 10.0) * (8.0 / 10.0)).abs() < 1e-9, "{a}");
        assert!(
            (v.after.coverage - 10.0 / 24.0).abs() < 1e-9,
            "{}",
            v.after.coverage
        );
        assert_eq!(
            v.verdict,
            Verdict::InsufficientData,
            "10 of 24 hours is below 50 %"
        );
        assert!(
            v.sentence.contains("data coverage 100 % / 42 %"),
            "{}",
            v.sentence
        );
        assert!(
            v.sentence.ends_with("too little data to verify"),
            "{}",
            v.sentence
        );
        // With a lower bar the same data gives a verdict.
        let mut lenient = input(&summaries, &[], RESOLVED + 15 * DAY_MS);
        lenient.min_coverage = 0.4;
        assert_eq!(verify(&lenient).verdict, Verdict::Improved);
    }

    #[test]
    fn no_data_at_all_is_not_comparable() {
        let v = verify(&input(&[], &[], RESOLVED + 15 * DAY_MS));
        assert_eq!(v.verdict, Verdict::InsufficientData);
        assert_eq!(v.before.peak_variance, None);
        assert_eq!(v.variance_change_percent, None);
        assert!(
            v.sentence
                .starts_with("peak temperature variance not comparable, incidents 0 → 0"),
            "{}",
            v.sentence
        );
    }

    #[test]
    fn a_worse_figure_is_not_an_improvement_and_overlaps_count_once() {
        // Before: flat 23 °C. After: the same, plus two sensors above 27 °C over the same hour.
        let mut summaries = hourly(RESOLVED - 14 * DAY_MS, 28, |_| 23.0, |_| false);
        let mut hot = summary(RESOLVED + DAY_MS, 28.0);
        summaries.push(hot.clone());
        hot.sensor = "Z1-R08-inlet".into();
        summaries.push(hot);
        let v = verify(&input(&summaries, &[], RESOLVED + 15 * DAY_MS));
        assert_eq!(
            v.after.time_above,
            Duration::from_secs(3600),
            "one hour, not two"
        );
        assert_eq!(v.verdict, Verdict::NotImproved);
        assert_eq!(v.variance_change_percent, None, "before variance is zero");
    }

    #[test]
    fn union_length_merges_overlaps_and_touching_intervals() {
        let mut v = vec![(10, 20), (0, 5), (15, 30), (30, 40), (50, 55)];
        assert_eq!(union_length(&mut v), 5 + 30 + 5);
        assert_eq!(union_length(&mut []), 0);
    }
}
