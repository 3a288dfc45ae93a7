//! A recurrence signature kept as running counts, so that a problem holds what its signature
//! needs instead of every counted incident (issue 13 part 11).
//!
//! Invariants:
//! - **Exact, not approximated.** Each statistic of [`super::Signature`] is a function of
//!   counts that adding an incident updates exactly: incidents per UTC minute of the week
//!   (the Rayleigh sums, the hour windows and the day counts in any site offset, including
//!   offsets that are not whole hours), per rack (incidents, highest peak), and each incident's
//!   peak in time order (Mann–Kendall and Theil–Sen need every one: the only part that grows
//!   with the incidents, 24 bytes each).
//! - **Order-free.** The tally of a set of incidents does not depend on the order they were
//!   added in: the Rayleigh sums are taken over the minutes in ascending order when the
//!   signature is read, never accumulated as floats on each add, and the peaks are kept
//!   sorted by `(opened_at, order)`. [`super::signature`] of a slice is the tally of the slice.
//! - Bounded: at most 10,080 minute counts and one count per rack of the problem's zone(s),
//!   however long the problem stays open.

use super::{
    binomial_upper_tail, peak_trend, rayleigh_p, words, DayOfWeek, HourWindow, IncidentPoint,
    RackRank, Signature, SignatureSettings, TimeOfDay, DAY_MS, MAX_WINDOW_HOURS, MINUTE_MS,
    WINDOW_SHARE,
};
use coldaisle_core::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::f64::consts::PI;

/// Minutes in a day.
const DAY_MINUTES: i64 = 24 * 60;

/// The running counts of a problem's incidents that its signature is computed from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SignatureTally {
    /// Incidents added.
    incidents: usize,
    /// When the latest of them opened.
    last_at: Option<Timestamp>,
    /// Incidents per UTC minute of the week (`weekday × 1440 + minute`, Monday = 0): the site
    /// offset is applied when the signature is read, so a changed offset needs no recount.
    week_minutes: BTreeMap<u16, u32>,
    /// Per rack: incidents it took part in and its highest finite peak.
    racks: BTreeMap<String, RackCount>,
    /// Each incident's peak, with its opening time and its order among incidents that opened
    /// at the same time, sorted by both.
    peaks: Vec<(Timestamp, u64, f64)>,
}

/// One rack's running counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct RackCount {
    /// Incidents it took part in.
    incidents: usize,
    /// Its highest finite peak over them (`None`: no finite peak yet).
    max_peak: Option<f64>,
}

impl SignatureTally {
    /// Adds one incident. `order` ranks it among incidents that opened at the same
    /// millisecond (the problem's list order); it is never added twice by the caller.
    pub fn add(&mut self, incident: &IncidentPoint, order: u64) {
        let t = incident.opened_at;
        self.incidents += 1;
        self.last_at = Some(self.last_at.map_or(t, |last| last.max(t)));
        let (weekday, minute) = week_minute(t.millis(), 0);
        *self
            .week_minutes
            .entry((weekday * DAY_MINUTES + minute) as u16)
            .or_default() += 1;
        let mut seen: Vec<&str> = Vec::new();
        for r in &incident.racks {
            let entry = self.racks.entry(r.rack.clone()).or_default();
            if !seen.contains(&r.rack.as_str()) {
                entry.incidents += 1;
                seen.push(&r.rack);
            }
            if r.peak.is_finite() {
                entry.max_peak = Some(entry.max_peak.map_or(r.peak, |m| m.max(r.peak)));
            }
        }
        if let Some(peak) = incident.peak() {
            let at = self
                .peaks
                .partition_point(|(ts, o, _)| (*ts, *o) <= (t, order));
            self.peaks.insert(at, (t, order, peak));
        }
    }

    /// Incidents added.
    pub fn incidents(&self) -> usize {
        self.incidents
    }

    /// The signature of the incidents added, under `settings`.
    pub fn signature(&self, settings: &SignatureSettings) -> Signature {
        let local = self.local_counts(settings.utc_offset_minutes);
        let n = self.incidents;
        let enough = n >= settings.min_incidents.max(2);
        let day_of_week = local.day_of_week(n);
        let time_of_day = enough.then(|| local.time_of_day(n, settings.alpha));
        let peaks: Vec<f64> = self.peaks.iter().map(|(_, _, p)| *p).collect();
        let trend = (enough && peaks.len() >= settings.min_incidents.max(3))
            .then(|| peak_trend(&peaks, settings.alpha));
        let racks = self.ranked_racks();
        let summary = words(
            n,
            settings,
            time_of_day.as_ref(),
            &day_of_week,
            &racks,
            trend.as_ref(),
        );
        Signature {
            incidents: n,
            last_at: self.last_at,
            enough,
            time_of_day,
            day_of_week,
            racks,
            trend,
            summary,
        }
    }

    /// The minute counts moved to local time (`offset` minutes east of UTC).
    fn local_counts(&self, offset: i32) -> LocalCounts {
        let mut local = LocalCounts {
            minutes: vec![0; DAY_MINUTES as usize],
            hours: [[0; 7]; 24],
        };
        for (&key, &count) in &self.week_minutes {
            let key = i64::from(key);
            let shifted = key % DAY_MINUTES + i64::from(offset);
            let minute = shifted.rem_euclid(DAY_MINUTES);
            let weekday = (key / DAY_MINUTES + shifted.div_euclid(DAY_MINUTES)).rem_euclid(7);
            local.minutes[minute as usize] += count;
            local.hours[(minute / 60) as usize][weekday as usize] += count;
        }
        local
    }

    /// Racks, most involved first, then by highest peak, then by name.
    fn ranked_racks(&self) -> Vec<RackRank> {
        let mut racks: Vec<RackRank> = self
            .racks
            .iter()
            .map(|(rack, count)| RackRank {
                rack: rack.clone(),
                incidents: count.incidents,
                max_peak: count.max_peak.unwrap_or(f64::NEG_INFINITY),
            })
            .collect();
        racks.sort_by(|a, b| {
            b.incidents
                .cmp(&a.incidents)
                .then(b.max_peak.total_cmp(&a.max_peak))
                .then(a.rack.cmp(&b.rack))
        });
        racks
    }
}

/// `(weekday, minute of the day)` of `millis` moved by `offset_minutes`, Monday = 0.
fn week_minute(millis: i64, offset_minutes: i64) -> (i64, i64) {
    let t = millis + offset_minutes * MINUTE_MS;
    let minute = t.rem_euclid(DAY_MS) / MINUTE_MS;
    // 1970-01-01 was a Thursday (index 3 with Monday = 0).
    let weekday = (t.div_euclid(DAY_MS) + 3).rem_euclid(7);
    (weekday, minute)
}

/// Incidents by local minute of the day and by local hour and weekday.
struct LocalCounts {
    /// Incidents per local minute of the day.
    minutes: Vec<u32>,
    /// Incidents per local hour and weekday (Monday first).
    hours: [[u32; 7]; 24],
}

impl LocalCounts {
    fn day_of_week(&self, n: usize) -> DayOfWeek {
        let mut by_day = [0usize; 7];
        for hour in &self.hours {
            for (day, count) in hour.iter().enumerate() {
                by_day[day] += *count as usize;
            }
        }
        let weekdays = by_day[..5].iter().sum();
        DayOfWeek {
            by_day,
            weekdays,
            weekday_p_value: binomial_upper_tail(n, weekdays, 5.0 / 7.0),
        }
    }

    /// The Rayleigh sums over the minutes in ascending order, each minute's angle times its
    /// count.
    fn time_of_day(&self, n: usize, alpha: f64) -> TimeOfDay {
        let n = n as f64;
        let (mut c, mut s) = (0.0, 0.0);
        for (minute, &count) in self.minutes.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let angle = minute as f64 / (24.0 * 60.0) * 2.0 * PI;
            c += f64::from(count) * angle.cos();
            s += f64::from(count) * angle.sin();
        }
        let r_n = (c * c + s * s).sqrt();
        let r_bar = (r_n / n).min(1.0);
        let mean_angle = s.atan2(c).rem_euclid(2.0 * PI);
        let to_hours = 24.0 / (2.0 * PI);
        let sd = if r_bar > 0.0 {
            (-2.0 * r_bar.ln()).max(0.0).sqrt() * to_hours
        } else {
            f64::INFINITY
        };
        let p = rayleigh_p(n, r_n);
        let concentrated = p < alpha;
        TimeOfDay {
            mean_hour: mean_angle * to_hours,
            resultant_length: r_bar,
            circular_sd_hours: sd,
            rayleigh_z: n * r_bar * r_bar,
            p_value: p,
            concentrated,
            window: concentrated
                .then(|| self.shortest_window(n as usize))
                .flatten(),
        }
    }

    /// The shortest whole-hour window holding at least [`WINDOW_SHARE`] of the `n` incidents;
    /// among equally short ones, the one holding most, then the earliest start. Windows start
    /// and end on whole hours, so hour counts decide them exactly.
    fn shortest_window(&self, n: usize) -> Option<HourWindow> {
        let need = (WINDOW_SHARE * n as f64).ceil() as usize;
        for hours in 1..=MAX_WINDOW_HOURS {
            let best = (0..24)
                .map(|start_hour| {
                    let mut w = HourWindow {
                        start_hour,
                        hours,
                        count: 0,
                        weekdays: 0,
                    };
                    for k in 0..hours {
                        let by_day = &self.hours[((start_hour + k) % 24) as usize];
                        w.count += by_day.iter().map(|c| *c as usize).sum::<usize>();
                        w.weekdays += by_day[..5].iter().map(|c| *c as usize).sum::<usize>();
                    }
                    w
                })
                .filter(|w| w.count >= need)
                .max_by_key(|w| (w.count, std::cmp::Reverse(w.start_hour)));
            if best.is_some() {
                return best;
            }
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::reference::signature_by_points;
    use super::super::{signature, RackPeak, TrendDirection};
    use super::*;
    use proptest::prelude::*;

    /// Monday 2026-11-02 00:00 UTC.
    const MONDAY: i64 = 1_793_577_600_000;

    fn point(minute: i64, racks: &[(u8, f64)]) -> IncidentPoint {
        IncidentPoint {
            opened_at: Timestamp(MONDAY + minute * MINUTE_MS),
            racks: racks
                .iter()
                .map(|(r, p)| RackPeak {
                    rack: format!("R{r}"),
                    peak: *p,
                })
                .collect(),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    /// The tally's signature against the per-incident computation: every count, window, rack
    /// and trend figure equal, the Rayleigh figures equal up to the float rounding of the
    /// summation order (the reference sums in time order, the tally by minute), and the words
    /// equal (they round those figures).
    fn assert_same(tally: &Signature, reference: &Signature) {
        assert_eq!(tally.incidents, reference.incidents);
        assert_eq!(tally.last_at, reference.last_at);
        assert_eq!(tally.enough, reference.enough);
        assert_eq!(tally.day_of_week, reference.day_of_week);
        assert_eq!(tally.racks, reference.racks);
        assert_eq!(tally.trend, reference.trend);
        assert_eq!(tally.summary, reference.summary);
        match (&tally.time_of_day, &reference.time_of_day) {
            (None, None) => {}
            (Some(a), Some(b)) => {
                assert!(close(a.resultant_length, b.resultant_length), "{a:?} {b:?}");
                assert!(close(a.rayleigh_z, b.rayleigh_z), "{a:?} {b:?}");
                assert!(close(a.p_value, b.p_value), "{a:?} {b:?}");
                // The mean direction is undefined when R̄ is 0; on the circle 0 h is 24 h.
                let apart = (a.mean_hour - b.mean_hour).rem_euclid(24.0);
                assert!(
                    a.resultant_length < 1e-9 || apart.min(24.0 - apart) < 1e-9,
                    "{a:?} {b:?}"
                );
                assert!(
                    a.circular_sd_hours == b.circular_sd_hours
                        || close(a.circular_sd_hours, b.circular_sd_hours)
                        || a.resultant_length < 1e-9,
                    "{a:?} {b:?}"
                );
                assert_eq!(a.concentrated, b.concentrated);
                assert_eq!(a.window, b.window);
            }
            (a, b) => panic!("time of day differs: {a:?} vs {b:?}"),
        }
    }

    /// Incidents clustered in an afternoon, on random days of four weeks, with racks and peaks
    /// (some equal, some missing), so that windows, ties and trends all occur.
    fn incident() -> impl Strategy<Value = IncidentPoint> {
        (
            0i64..28,
            prop_oneof![0i64..1440, 840i64..960],
            0i64..2,
            // Quarter degrees: exact in binary, so a JSON round trip keeps them bit for bit.
            proptest::collection::vec(
                (0u8..4, (100u32..128).prop_map(|q| f64::from(q) / 4.0)),
                0..3,
            ),
        )
            .prop_map(|(day, minute, same, racks)| point(day * 1440 + minute + same, &racks))
    }

    fn settings() -> impl Strategy<Value = SignatureSettings> {
        (
            prop_oneof![Just(0), Just(60), Just(-300), Just(330), -720i32..840],
            2usize..6,
        )
            .prop_map(|(utc_offset_minutes, min_incidents)| SignatureSettings {
                utc_offset_minutes,
                min_incidents,
                alpha: 0.05,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// The running tally gives the signature of the per-incident computation, for random
        /// incident sets and site offsets.
        #[test]
        fn the_tally_gives_the_per_incident_signature(
            incidents in proptest::collection::vec(incident(), 0..60),
            settings in settings(),
        ) {
            assert_same(&signature(&incidents, &settings), &signature_by_points(&incidents, &settings));
        }

        /// Split at any point, added in any order (a folded head and the rest read later), the
        /// tally equals the tally of the slice in order, bit for bit.
        #[test]
        fn a_tally_does_not_depend_on_the_order_of_adds(
            incidents in proptest::collection::vec(incident(), 0..40),
            split in 0usize..40,
            settings in settings(),
        ) {
            let split = split.min(incidents.len());
            let mut head = SignatureTally::default();
            for (k, incident) in incidents.iter().enumerate().take(split).rev() {
                head.add(incident, k as u64);
            }
            let json = serde_json::to_string(&head).unwrap();
            let mut tally: SignatureTally = serde_json::from_str(&json).unwrap();
            for (k, incident) in incidents.iter().enumerate().skip(split) {
                tally.add(incident, k as u64);
            }
            prop_assert_eq!(tally.signature(&settings), signature(&incidents, &settings));
        }
    }

    #[test]
    fn an_afternoon_pattern_and_a_trend_come_out_of_the_tally() {
        let incidents: Vec<IncidentPoint> = (0..8)
            .map(|d| point(d * 1440 + 14 * 60 + d, &[(7, 28.0 + 0.5 * d as f64)]))
            .collect();
        let mut tally = SignatureTally::default();
        for (k, incident) in incidents.iter().enumerate() {
            tally.add(incident, k as u64);
        }
        let s = tally.signature(&SignatureSettings::default());
        let w = s.time_of_day.as_ref().and_then(|t| t.window).unwrap();
        assert_eq!((w.start_hour, w.hours, w.count), (14, 1, 8));
        assert_eq!(
            s.trend.as_ref().unwrap().direction,
            TrendDirection::Worsening
        );
        assert_eq!((s.racks[0].incidents, s.racks[0].max_peak), (8, 31.5));
        assert_eq!(tally.incidents(), 8);
        assert_same(
            &s,
            &signature_by_points(&incidents, &SignatureSettings::default()),
        );
    }

    #[test]
    fn an_offset_of_half_an_hour_moves_incidents_across_the_hour_and_the_day() {
        // Sunday 23:40 UTC is Monday 05:10 at UTC+05:30.
        let sunday_late = point(6 * 1440 + 23 * 60 + 40, &[]);
        let settings = SignatureSettings {
            utc_offset_minutes: 330,
            ..SignatureSettings::default()
        };
        let s = signature(std::slice::from_ref(&sunday_late), &settings);
        assert_eq!(s.day_of_week.by_day, [1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            week_minute(sunday_late.opened_at.millis(), 330),
            (0, 5 * 60 + 10)
        );
    }
}
