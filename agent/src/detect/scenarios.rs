//! Scenario tests: two weeks of a synthetic inlet temperature (daily cycle, noise, slow drift,
//! single-sample spikes, vendor sentinels, a stuck period and gaps) with three real anomalies,
//! through the whole detector chain with the built-in presets. Checks that each real anomaly
//! is caught by the right detectors and counts the events nobody should have been paged for.

use super::chain::{Fired, SensorDetectors};
use coldaisle_config::detection::DetectionConfig;
use coldaisle_core::{EventState, SensorKind, Timestamp};

const MIN_MS: i64 = 60_000;
const DAY: i64 = 1440;

/// xorshift64: deterministic noise.
struct Noise(u64);
impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 10_000) as f64 / 10_000.0 - 0.5 // -0.5 ..< 0.5
    }
}

/// What happens at a minute: `None` is a gap; `Some((raw, value))` a sample.
fn sample(m: i64, noise: &mut Noise) -> Option<(f64, f64)> {
    let day_phase = (m % DAY) as f64 / DAY as f64 * std::f64::consts::TAU;
    let drift = 0.5 * m as f64 / (14 * DAY) as f64;
    let mut v = 22.0 + 1.5 * day_phase.sin() + drift + 0.5 * noise.next();
    // Gaps: day 4, 02:00–04:00 and day 8, 10:00–10:20.
    if (4 * DAY + 120..4 * DAY + 240).contains(&m) || (8 * DAY + 600..8 * DAY + 620).contains(&m) {
        return None;
    }
    // Spikes: one sample every 487 minutes, +6 °C.
    if m % 487 == 0 && m > 0 {
        v += 6.0;
    }
    // Sentinels: the probe reports -999 (raw) three times on day 3.
    if [3 * DAY + 100, 3 * DAY + 103, 3 * DAY + 900].contains(&m) {
        return Some((-999.0, -99.9));
    }
    // Stuck: day 9, 06:00–12:00 the value freezes where it was (23.8 °C).
    if (9 * DAY + 360..9 * DAY + 720).contains(&m) {
        return Some((238.0, 23.8));
    }
    // Anomaly A: day 6, 13:00–15:00, hot-aisle recirculation: ramps to 29.5 in 10 minutes.
    if (6 * DAY + 780..6 * DAY + 900).contains(&m) {
        let ramp = ((m - (6 * DAY + 780)) as f64 / 10.0).min(1.0);
        v += ramp * (29.5 - 22.0);
    }
    // Anomaly B: day 11, 02:00–03:30: +3 °C inside the limits, ramped over 20 minutes.
    if (11 * DAY + 120..11 * DAY + 210).contains(&m) {
        let ramp = ((m - (11 * DAY + 120)) as f64 / 20.0).min(1.0);
        v += ramp * 3.0;
    }
    // Anomaly C: day 12, 16:00–16:40: 33.5 °C, above the A1 allowable limit.
    if (12 * DAY + 960..12 * DAY + 1000).contains(&m) {
        let ramp = ((m - (12 * DAY + 960)) as f64 / 20.0).min(1.0);
        v += ramp * (33.5 - v);
    }
    Some((v * 10.0, v))
}

fn run() -> Vec<(i64, Fired)> {
    let d = DetectionConfig::default();
    let mut chain = SensorDetectors::new(
        d.for_kind(SensorKind::InletTemp),
        None,
        d.flap_window,
        d.stale_after,
    );
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::new();
    for m in 0..14 * DAY {
        let Some((raw, value)) = sample(m, &mut noise) else {
            continue;
        };
        let ts = Timestamp(m * MIN_MS);
        out.extend(chain.observe(ts, raw, value).into_iter().map(|f| (m, f)));
    }
    out
}

/// One line per event: `d6 13:05 threshold raised 29.4`.
fn show(events: &[(i64, Fired)]) -> String {
    events
        .iter()
        .map(|(m, f)| {
            format!(
                "d{} {:02}:{:02} {} {:?} {:.2}\n",
                m / DAY,
                (m % DAY) / 60,
                m % 60,
                f.detector,
                f.transition.state,
                f.transition.value
            )
        })
        .collect()
}

fn raised_in(events: &[(i64, Fired)], detector: &str, from: i64, to: i64) -> usize {
    events
        .iter()
        .filter(|(m, f)| {
            f.detector == detector
                && f.transition.state == EventState::Raised
                && (from..to).contains(m)
        })
        .count()
}

#[test]
fn two_weeks_catch_every_real_anomaly_and_page_for_nothing_else() {
    let events = run();
    let a = (6 * DAY + 780, 6 * DAY + 960);
    let b = (11 * DAY + 120, 11 * DAY + 240);
    let c = (12 * DAY + 960, 12 * DAY + 1060);
    let stuck = (9 * DAY + 360, 9 * DAY + 730);
    let sentinels = (3 * DAY + 100, 3 * DAY + 910);
    // A: overheat → warning threshold, fast rise (and fast fall when it ends: ASHRAE's rate
    // limit holds both ways), departure from the learned band.
    assert_eq!(
        raised_in(&events, "threshold", a.0, a.1),
        1,
        "{}",
        show(&events)
    );
    assert_eq!(
        raised_in(&events, "rate_of_change_15m", a.0, a.1),
        2,
        "{}",
        show(&events)
    );
    assert_eq!(
        raised_in(&events, "learned_band", a.0, a.1),
        1,
        "{}",
        show(&events)
    );
    assert_eq!(raised_in(&events, "threshold_critical", a.0, a.1), 0);
    // B: inside the fixed limits, slow enough for the rate: only the learned band sees it.
    assert_eq!(
        raised_in(&events, "learned_band", b.0, b.1),
        1,
        "{}",
        show(&events)
    );
    assert_eq!(raised_in(&events, "threshold", b.0, b.1), 0);
    // C: above the A1 allowable limit → critical.
    assert_eq!(
        raised_in(&events, "threshold_critical", c.0, c.1),
        1,
        "{}",
        show(&events)
    );
    // Sensor faults: the sentinels and the frozen probe, category `device` (fault = true).
    assert_eq!(
        raised_in(&events, "impossible_value", sentinels.0, sentinels.1),
        2,
        "{}",
        show(&events)
    );
    assert_eq!(
        raised_in(&events, "stuck", stuck.0, stuck.1),
        1,
        "{}",
        show(&events)
    );
    // A probe frozen at its last value drifts away from the daily cycle: the learned band
    // (severity info) may notice that before the 4 h stuck timer; nothing that pages may.
    for detector in [
        "threshold",
        "threshold_critical",
        "rate_of_change_15m",
        "rate_of_change_1h",
    ] {
        assert_eq!(
            raised_in(&events, detector, stuck.0, stuck.1),
            0,
            "{}",
            show(&events)
        );
    }
    assert!(events
        .iter()
        .filter(|(_, f)| ["impossible_value", "stuck"].contains(&f.detector.as_str()))
        .all(|(_, f)| f.fault));
    // Everything else is a false event: spikes, gaps, noise, the daily cycle and the drift
    // must not page anyone.
    let windows = [a, b, c, stuck, sentinels];
    let false_events: Vec<_> = events
        .iter()
        .filter(|(m, _)| !windows.iter().any(|w| (w.0..w.1).contains(m)))
        .collect();
    assert!(
        false_events.is_empty(),
        "false events:\n{}",
        show(&false_events.into_iter().cloned().collect::<Vec<_>>())
    );
    // Every raise is eventually cleared (nothing left open at the end).
    let raises = events
        .iter()
        .filter(|(_, f)| f.transition.state == EventState::Raised)
        .count();
    let clears = events.len() - raises;
    assert_eq!(raises, clears, "{}", show(&events));
}

#[test]
fn the_scenario_is_deterministic() {
    let render = |e: Vec<(i64, Fired)>| format!("{e:?}");
    assert_eq!(render(run()), render(run()));
}
