//! The signature as it was computed before the running tally (issue 13 part 11): from the
//! list of incidents, summing each incident's angle in time order. Kept for tests only, as the
//! reference the tally ([`super::tally`]) is compared with.

use super::*;
use std::f64::consts::PI;

/// Computes the signature of `incidents` (any order) under `settings`.
pub(super) fn signature_by_points(
    incidents: &[IncidentPoint],
    settings: &SignatureSettings,
) -> Signature {
    let mut sorted: Vec<&IncidentPoint> = incidents.iter().collect();
    sorted.sort_by_key(|i| i.opened_at);
    let offset_ms = i64::from(settings.utc_offset_minutes) * MINUTE_MS;
    let local: Vec<(i64, usize)> = sorted
        .iter()
        .map(|i| {
            let t = i.opened_at.millis() + offset_ms;
            let minute = t.rem_euclid(DAY_MS) / MINUTE_MS;
            // 1970-01-01 was a Thursday (index 3 with Monday = 0).
            let weekday = (t.div_euclid(DAY_MS) + 3).rem_euclid(7) as usize;
            (minute, weekday)
        })
        .collect();
    let n = sorted.len();
    let enough = n >= settings.min_incidents.max(2);
    let day_of_week = day_of_week(&local);
    let time_of_day = enough.then(|| time_of_day(&local, settings.alpha));
    let peaks: Vec<f64> = sorted.iter().filter_map(|i| i.peak()).collect();
    let trend = (enough && peaks.len() >= settings.min_incidents.max(3))
        .then(|| peak_trend(&peaks, settings.alpha));
    let racks = rank_racks(&sorted);
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
        last_at: sorted.last().map(|i| i.opened_at),
        enough,
        time_of_day,
        day_of_week,
        racks,
        trend,
        summary,
    }
}

fn day_of_week(local: &[(i64, usize)]) -> DayOfWeek {
    let mut by_day = [0usize; 7];
    for &(_, d) in local {
        by_day[d] += 1;
    }
    let weekdays = by_day[..5].iter().sum();
    DayOfWeek {
        by_day,
        weekdays,
        weekday_p_value: binomial_upper_tail(local.len(), weekdays, 5.0 / 7.0),
    }
}

fn time_of_day(local: &[(i64, usize)], alpha: f64) -> TimeOfDay {
    let n = local.len() as f64;
    let (mut c, mut s) = (0.0, 0.0);
    for &(minute, _) in local {
        let angle = minute as f64 / (24.0 * 60.0) * 2.0 * PI;
        c += angle.cos();
        s += angle.sin();
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
        window: concentrated.then(|| shortest_window(local)).flatten(),
    }
}

/// The shortest whole-hour window holding at least [`WINDOW_SHARE`] of the incidents; among
/// equally short ones, the one holding most, then the earliest start.
fn shortest_window(local: &[(i64, usize)]) -> Option<HourWindow> {
    let need = (WINDOW_SHARE * local.len() as f64).ceil() as usize;
    for hours in 1..=MAX_WINDOW_HOURS {
        let best = (0..24)
            .map(|start_hour| {
                let mut w = HourWindow {
                    start_hour,
                    hours,
                    count: 0,
                    weekdays: 0,
                };
                for &(minute, day) in local {
                    if w.contains(minute) {
                        w.count += 1;
                        w.weekdays += usize::from(day < 5);
                    }
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

fn rank_racks(sorted: &[&IncidentPoint]) -> Vec<RackRank> {
    let mut by_rack: BTreeMap<&str, RackRank> = BTreeMap::new();
    for incident in sorted {
        let mut seen: Vec<&str> = Vec::new();
        for r in &incident.racks {
            let entry = by_rack.entry(&r.rack).or_insert_with(|| RackRank {
                rack: r.rack.clone(),
                incidents: 0,
                max_peak: f64::NEG_INFINITY,
            });
            if !seen.contains(&r.rack.as_str()) {
                entry.incidents += 1;
                seen.push(&r.rack);
            }
            if r.peak.is_finite() {
                entry.max_peak = entry.max_peak.max(r.peak);
            }
        }
    }
    let mut racks: Vec<RackRank> = by_rack.into_values().collect();
    racks.sort_by(|a, b| {
        b.incidents
            .cmp(&a.incidents)
            .then(b.max_peak.total_cmp(&a.max_peak))
            .then(a.rack.cmp(&b.rack))
    });
    racks
}
