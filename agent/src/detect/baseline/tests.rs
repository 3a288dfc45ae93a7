use super::*;
use coldaisle_core::{EventState, Severity};
use std::time::Duration;

fn settings() -> BaselineSettings {
    BaselineSettings {
        k: 6.0,
        spike_k: 12.0,
        min_width: 0.5,
        min_duration: Duration::from_secs(600),
        warmup: Duration::from_secs(24 * 3600),
        severity: Severity::Info,
    }
}

/// Deterministic noise in [-0.5, 0.5).
fn noise(i: i64) -> f64 {
    ((i * 7919 + 13) % 101) as f64 / 101.0 - 0.5
}

/// A machine temperature: 60 °C with a ±5 °C daily cycle and ±0.3 noise, one sample per 5 min.
fn machine(i: i64) -> f64 {
    let day = (i as f64) / 288.0 * std::f64::consts::TAU;
    60.0 + 5.0 * day.sin() + 0.6 * noise(i)
}

const STEP_MS: i64 = 300_000;

fn run(
    d: &mut BaselineDetector,
    from: i64,
    to: i64,
    f: impl Fn(i64) -> f64,
) -> Vec<(i64, Transition)> {
    (from..to)
        .filter_map(|i| d.observe(Timestamp(i * STEP_MS), f(i)).map(|t| (i, t)))
        .collect()
}

#[test]
fn learns_a_daily_cycle_without_a_single_raise() {
    let mut d = BaselineDetector::new(settings());
    let out = run(&mut d, 0, 14 * 288, machine);
    assert!(out.is_empty(), "{out:?}");
    let (base, width) = d.band_at(Timestamp(14 * 288 * STEP_MS)).expect("warm");
    assert!((base - machine(14 * 288)).abs() < 1.5, "{base}");
    assert!(
        width < 4.0,
        "the cycle is in the baseline, not in the spread: {width}"
    );
}

#[test]
fn a_level_shift_is_one_change_point_then_the_new_normal() {
    let mut d = BaselineDetector::new(settings());
    let shifted = |i: i64| machine(i) + if i >= 5 * 288 { 8.0 } else { 0.0 };
    let out = run(&mut d, 0, 12 * 288, shifted);
    let raises: Vec<i64> = out
        .iter()
        .filter(|(_, t)| t.state == EventState::Raised)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(raises.len(), 1, "{out:?}");
    assert!(
        (5 * 288..5 * 288 + 6).contains(&raises[0]),
        "early: {raises:?}"
    );
    assert_eq!(out.len(), 2, "raised once, cleared once: {out:?}");
    assert_eq!(out[1].1.state, EventState::Cleared);
    assert!(
        out[1].0 < 5 * 288 + 12,
        "re-learned within an hour: {out:?}"
    );
    assert!(d.state.change_points >= 1);
}

fn raised_rows(out: &[(i64, Transition)]) -> Vec<i64> {
    out.iter()
        .filter(|(_, t)| t.state == EventState::Raised)
        .map(|(i, _)| *i)
        .collect()
}

/// A machine that stops for three hours (20 °C down) and comes back: the stop is raised once;
/// the return to the level it left is a recovery, not a second event. The same return two
/// days later is a change of its own and is raised.
#[test]
fn a_return_to_the_level_before_a_change_point_is_a_recovery_within_a_day() {
    let start = 5 * 288;
    let stop = |len: i64| {
        move |i: i64| {
            machine(i)
                - if (start..start + len).contains(&i) {
                    20.0
                } else {
                    0.0
                }
        }
    };
    let mut d = BaselineDetector::new(settings());
    let out = run(&mut d, 0, 8 * 288, stop(36));
    let raises = raised_rows(&out);
    assert_eq!(raises.len(), 1, "{out:?}");
    assert!((start..start + 6).contains(&raises[0]), "{out:?}");
    assert!(d.state.change_points >= 2, "{}", d.state.change_points);

    let mut d = BaselineDetector::new(settings());
    let out = run(&mut d, 0, 10 * 288, stop(2 * 288));
    let raises = raised_rows(&out);
    assert_eq!(raises.len(), 2, "{out:?}");
    assert!(
        (start + 2 * 288..start + 2 * 288 + 6).contains(&raises[1]),
        "{out:?}"
    );
}

#[test]
fn a_sustained_excursion_is_raised_after_min_duration_and_cleared() {
    let mut d = BaselineDetector::new(settings());
    run(&mut d, 0, 3 * 288, machine);
    // A slow climb of 0.5 °C per sample for an hour, then back: outside ±6σ for a while.
    let bump = |i: i64| {
        let j = i - 3 * 288;
        machine(i)
            + if (0..12).contains(&j) {
                0.5 * j as f64
            } else {
                0.0
            }
    };
    let out = run(&mut d, 3 * 288, 4 * 288, bump);
    assert!(
        out.first()
            .is_some_and(|(_, t)| t.state == EventState::Raised),
        "{out:?}"
    );
    assert!(
        out.iter().any(|(_, t)| t.state == EventState::Cleared),
        "{out:?}"
    );
}

#[test]
fn one_glitch_never_fires_and_a_huge_spike_fires_at_once() {
    let mut d = BaselineDetector::new(settings());
    run(&mut d, 0, 3 * 288, machine);
    let sigma = d.sigma();
    let glitch = |i: i64| machine(i) + if i == 3 * 288 + 5 { 8.0 * sigma } else { 0.0 };
    let out = run(&mut d, 3 * 288, 4 * 288, glitch);
    assert!(out.is_empty(), "{out:?}");
    let spike = |i: i64| machine(i) + if i == 4 * 288 + 5 { 40.0 * sigma } else { 0.0 };
    let out = run(&mut d, 4 * 288, 5 * 288, spike);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0].0, 4 * 288 + 5);
    assert_eq!(out[0].1.state, EventState::Raised);
    assert_eq!(out[1].1.state, EventState::Cleared);
}

/// The floor a raise leaves (alarm-rate control) forgets in wall time: on hourly samples it
/// falls to 1/e in `SURPRISE_TAU` (72 samples), not six times slower (the learning step cap),
/// so the same spike four days later raises again.
#[test]
fn the_floor_a_raise_leaves_forgets_in_wall_time_on_hourly_samples() {
    const HOUR: i64 = 3_600_000;
    let flat = |i: i64| 20.0 + 0.6 * noise(i);
    let mut d = BaselineDetector::new(settings());
    for i in 0..240 {
        assert!(d.observe(Timestamp(i * HOUR), flat(i)).is_none(), "{i}");
    }
    let spike = 40.0 * d.sigma();
    let raised = |d: &mut BaselineDetector, i: i64| {
        d.observe(Timestamp(i * HOUR), flat(i) + spike)
            .is_some_and(|t| t.state == EventState::Raised)
    };
    assert!(raised(&mut d, 240));
    assert!(
        d.observe(Timestamp(241 * HOUR), flat(241)).is_some(),
        "cleared"
    );
    let floor = d.state.surprise;
    assert!(floor > spike, "{floor} {spike}");
    for i in 242..314 {
        assert!(d.observe(Timestamp(i * HOUR), flat(i)).is_none(), "{i}");
    }
    // 72 samples, 72 hours later: 1/e of it (with the 600 s cap it was e^(−1/6)).
    let ratio = d.state.surprise / floor;
    assert!((ratio - (-1.0_f64).exp()).abs() < 1e-6, "{ratio}");
    for i in 314..336 {
        d.observe(Timestamp(i * HOUR), flat(i));
    }
    assert!(raised(&mut d, 336), "the same spike four days later");
}

/// Two samples of three beyond the band on one side raise at the second, at once (no
/// waiting for `min_duration`, no likelihood needed: the raise's limit is the band's edge).
#[test]
fn two_of_three_outside_raise_at_once() {
    let mut d = BaselineDetector::new(settings());
    run(&mut d, 0, 4 * 288, machine);
    let at = 4 * 288 + 5;
    let out_by = |i: i64| 8.0 * d.sigma_at(Timestamp(i * STEP_MS));
    let (first, second) = (out_by(at), out_by(at + 2));
    let (base, width) = d.band_at(Timestamp((at + 2) * STEP_MS)).expect("warm");
    let pair = |i: i64| {
        machine(i)
            + match i - at {
                0 => first,
                2 => second,
                _ => 0.0,
            }
    };
    let out = run(&mut d, 4 * 288, 5 * 288, pair);
    let raised = out.first().filter(|(_, t)| t.state == EventState::Raised);
    assert!(raised.is_some_and(|(i, _)| *i == at + 2), "{out:?}");
    let limit = raised.and_then(|(_, t)| t.limit).unwrap_or(f64::NAN);
    assert!(
        (limit - (base + width)).abs() < 0.05 * width,
        "{limit} {base} {width}"
    );
}

/// NAB's `art_daily_perfect_square_wave`: 20 from 18:00 to 09:00, 80 from 09:00 to 18:00, no
/// noise. The 24 smooth knots miss each edge every day at the same phase; the phase's own
/// spread learns that error (the global spread alone raised there every few days).
#[test]
fn a_daily_square_wave_is_learned_not_raised() {
    let square = |i: i64| {
        let hour = (i % 288) / 12;
        if (9..18).contains(&hour) {
            80.0
        } else {
            20.0
        }
    };
    let mut d = BaselineDetector::new(settings());
    let out = run(&mut d, 0, 14 * 288, square);
    assert!(out.is_empty(), "{out:?}");
    // Away from the edges the band stays narrow: the wide band is the edges' alone.
    let noon = Timestamp((14 * 288 + 12 * 12) * STEP_MS);
    let edge = Timestamp((14 * 288 + 9 * 12) * STEP_MS);
    let (_, narrow) = d.band_at(noon).expect("warm");
    let (_, wide) = d.band_at(edge).expect("warm");
    assert!(narrow < wide, "noon ±{narrow}, 09:00 ±{wide}");
    // A real excursion at noon is still raised.
    let out = run(&mut d, 14 * 288 + 144, 14 * 288 + 160, |_| 110.0);
    assert!(
        out.first()
            .is_some_and(|(_, t)| t.state == EventState::Raised),
        "{out:?}"
    );
}

/// With `min_width = 0` (a series in a unit with no known floor) a constant series has no
/// spread at all: the detector stays finite, raises a spike at once, and judges a small series
/// (a price of 0.10 ± 0.004) on its own noise, which the 0.5 floor hid.
#[test]
fn a_zero_floor_keeps_a_constant_series_finite_and_judges_small_units() {
    let unitless = BaselineSettings {
        min_width: 0.0,
        ..settings()
    };
    let mut d = BaselineDetector::new(unitless.clone());
    assert!(run(&mut d, 0, 2 * 288, |_| 0.0).is_empty());
    assert!(d.state.level.is_finite() && d.state.spread.is_finite());
    let out = run(&mut d, 2 * 288, 2 * 288 + 3, |i| {
        if i == 2 * 288 + 1 {
            5.0
        } else {
            0.0
        }
    });
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0].1.state, EventState::Raised);
    assert!(out[0].1.limit.is_some_and(f64::is_finite), "{out:?}");
    assert!(serde_json::to_string(&d.state).is_ok());

    let price = |i: i64| 0.10 + 0.008 * noise(i);
    let jump = |i: i64| price(i) + if i >= 3 * 288 { 0.05 } else { 0.0 };
    let mut small = BaselineDetector::new(unitless);
    let mut floored = BaselineDetector::new(settings());
    assert!(run(&mut small, 0, 3 * 288, price).is_empty());
    assert!(run(&mut floored, 0, 3 * 288, price).is_empty());
    let (_, narrow) = small.band_at(Timestamp(3 * 288 * STEP_MS)).expect("warm");
    let (_, wide) = floored.band_at(Timestamp(3 * 288 * STEP_MS)).expect("warm");
    assert!(narrow < 0.05 && wide >= 0.5, "±{narrow} vs ±{wide}");
    let out = run(&mut small, 3 * 288, 3 * 288 + 12, jump);
    assert!(
        out.iter().any(|(_, t)| t.state == EventState::Raised),
        "{out:?}"
    );
}

/// Noise that doubles for two hours: every sample stays inside the ±6σ band, so neither the
/// band nor a change point raises; the anomaly likelihood of the run does, once, and clears
/// when the noise is back to its usual size.
#[test]
fn a_noisier_stretch_inside_the_band_is_raised_by_the_likelihood() {
    let mut d = BaselineDetector::new(settings());
    let quiet = |i: i64| 60.0 + 2.0 * noise(i);
    assert!(run(&mut d, 0, 8 * 288, quiet).is_empty());
    let sigma = d.sigma();
    let start = 8 * 288;
    let noisy = move |i: i64| {
        let burst = (start..start + 24).contains(&i);
        let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
        60.0 + if burst {
            sign * 4.0 * sigma
        } else {
            2.0 * noise(i)
        }
    };
    let out = run(&mut d, start, start + 288, noisy);
    let raises = raised_rows(&out);
    assert_eq!(raises.len(), 1, "{out:?}");
    assert!((start..start + 24).contains(&raises[0]), "{out:?}");
    assert!(d.state.likely || out.len() == 2, "{out:?}");
    assert_eq!(out.len(), 2, "raised once, cleared once: {out:?}");
    assert_eq!(out[1].1.state, EventState::Cleared);
}

#[test]
fn hour_buckets_interpolate_between_centres() {
    let at = |h: i64, m: i64| buckets_of(Timestamp((h * 60 + m) * 60_000));
    assert_eq!(at(10, 30), (10, 11, 0.0));
    assert_eq!(at(11, 0), (10, 11, 0.5));
    assert_eq!(at(0, 15), (23, 0, 0.75));
}

#[test]
fn nothing_is_judged_while_warming_up() {
    let mut d = BaselineDetector::new(settings());
    // Wild swings during the first day: learned, never judged.
    let out = run(&mut d, 0, 287, |i| if i % 2 == 0 { 0.0 } else { 100.0 });
    assert!(out.is_empty());
    assert!(d.band_at(Timestamp(100 * STEP_MS)).is_none());
}

#[test]
fn state_round_trips_and_an_older_state_decodes() {
    let mut d = BaselineDetector::new(settings());
    run(&mut d, 0, 2 * 288, machine);
    let json = serde_json::to_value(&d.state).expect("encode");
    let back: BaselineState = serde_json::from_value(json).expect("decode");
    assert_eq!(back, d.state);
    let old: BaselineState = serde_json::from_str(r#"{"level": 21.5, "n": 10}"#).expect("old");
    assert_eq!(old.level, 21.5);
    assert_eq!(old.seasonal.len(), 24);
    // A record of the version before the recovery rule (no `before_change`) decodes.
    let mut prior = serde_json::to_value(&d.state).expect("encode");
    assert!(prior
        .as_object_mut()
        .map(
            |o| ["before_change", "likelihood", "likely", "recent_outside"]
                .map(|k| o.remove(k).is_some())
        )
        .is_some_and(|removed| removed.iter().all(|r| *r)));
    let prior: BaselineState = serde_json::from_value(prior).expect("decode prior");
    assert_eq!(prior.before_change, None);
    assert_eq!(prior.likelihood.n, 0);
    assert_eq!(prior.level, d.state.level);
}

proptest::proptest! {
    /// A stationary sensor (any level, noise up to ±0.4, any poll interval) never raises.
    #[test]
    fn stationary_noise_never_raises(
        level in -40.0f64..140.0,
        step_secs in 10i64..600,
        noise in proptest::collection::vec(-0.4f64..0.4, 200..400),
    ) {
        let mut d = BaselineDetector::new(BaselineSettings {
            warmup: Duration::from_secs(3600),
            ..settings()
        });
        let mut ts = 0;
        for _ in 0..8 {
            for n in &noise {
                ts += step_secs * 1000;
                proptest::prop_assert!(d.observe(Timestamp(ts), level + n).is_none());
            }
        }
    }
}
