use super::*;
use coldaisle_config::detection::{DetectionConfig, LimitLevel};
use coldaisle_core::{EventState, SensorKind};

fn chain(kind: SensorKind) -> SensorDetectors {
    let d = DetectionConfig::default();
    SensorDetectors::new(d.for_kind(kind), None, d.flap_window, d.stale_after)
}

#[test]
fn inlet_runs_limits_rate_stuck_band_and_generic_temperature_only_its_learned_baseline() {
    let names = chain(SensorKind::InletTemp).detector_names().join(",");
    assert_eq!(
        names,
        "impossible_value,threshold,threshold_critical,rate_of_change_15m,rate_of_change_1h,stuck,learned_band,forecast,stale"
    );
    let names = chain(SensorKind::Temperature).detector_names().join(",");
    assert_eq!(names, "impossible_value,stuck,learned_baseline,stale");
}

#[test]
fn the_learned_baseline_is_exported_and_restored_by_name() {
    let mut c = chain(SensorKind::Temperature);
    for i in 0..100i64 {
        c.observe(Timestamp(i * 60_000), 40.0, 40.0 + (i % 3) as f64 * 0.1);
    }
    let exported = c.export();
    let state = exported.get("learned_baseline").expect("exported");
    assert_eq!(state["n"], 100);
    let mut fresh = chain(SensorKind::Temperature);
    assert_eq!(fresh.restore(&exported), exported.len());
    assert_eq!(fresh.export(), exported);
}

#[test]
fn sentinel_is_a_fault_and_reaches_no_thermal_detector() {
    let mut c = chain(SensorKind::InletTemp);
    let mut fired = Vec::new();
    for i in 0..30i64 {
        // 0x7FFF tenths: 3276.7 °C after scaling.
        fired.extend(c.observe(Timestamp(i * 60_000), 32767.0, 3276.7));
    }
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].detector, "impossible_value");
    assert!(fired[0].fault);
    assert_eq!(fired[0].transition.state, EventState::Raised);
}

#[test]
fn point_threshold_replaces_the_warning_high_limit() {
    let d = DetectionConfig::default();
    let point = Threshold {
        high: 25.0,
        hysteresis: 0.5,
        min_duration: Duration::ZERO,
        severity: Severity::Warning,
    };
    let mut c = SensorDetectors::new(
        d.for_kind(SensorKind::InletTemp),
        Some(&point),
        Duration::ZERO,
        d.stale_after,
    );
    let fired = c.observe(Timestamp(0), 25.5, 25.5);
    assert_eq!(fired.len(), 1);
    assert_eq!(
        (fired[0].detector.as_str(), fired[0].transition.limit),
        ("threshold", Some(25.0))
    );
}

#[test]
fn export_restore_keeps_an_open_raise() {
    let d = DetectionConfig::default();
    let point = Threshold {
        high: 27.0,
        hysteresis: 1.0,
        min_duration: Duration::ZERO,
        severity: Severity::Warning,
    };
    let make = || {
        SensorDetectors::new(
            d.for_kind(SensorKind::InletTemp),
            Some(&point),
            d.flap_window,
            d.stale_after,
        )
    };
    let mut before = make();
    assert_eq!(before.observe(Timestamp(0), 29.0, 29.0).len(), 1);
    let saved = serde_json::to_string(&before.export()).expect("json");
    let mut after = make();
    let map: BTreeMap<String, Value> = serde_json::from_str(&saved).expect("json");
    assert!(after.restore(&map) >= 8);
    assert!(
        after.observe(Timestamp(1000), 29.5, 29.5).is_empty(),
        "no second raise"
    );
    let cleared = after.observe(Timestamp(2000), 22.0, 22.0);
    assert_eq!(cleared.len(), 1);
    assert_eq!(cleared[0].transition.state, EventState::Cleared);
}

/// Two days at 4 kW (a little noise), then the rack's density goes up to 6.1 kW for six hours:
/// one `step_change` raise with the levels, and the learned band re-learns instead of raising
/// for the new level; a real departure from the new level still raises the band.
#[test]
fn a_power_step_is_reported_once_and_the_band_relearns_the_new_level() {
    let mut c = chain(SensorKind::RackPower);
    let t0 = 1_764_028_800_000_i64; // a UTC midnight
    let minute = 60_000;
    let noise = |i: i64| [0.0, 0.05, -0.05, 0.1, -0.1][(i % 5) as usize];
    let mut fired = Vec::new();
    let mut i = 0;
    let mut feed = |c: &mut SensorDetectors, minutes: i64, level: f64, fired: &mut Vec<Fired>| {
        for _ in 0..minutes {
            let v = level + noise(i);
            fired.extend(c.observe(Timestamp(t0 + i * minute), v, v));
            i += 1;
        }
    };
    feed(&mut c, 2 * 24 * 60, 4.0, &mut fired);
    assert!(fired.is_empty(), "steady load fires nothing: {fired:?}");
    feed(&mut c, 6 * 60, 6.1, &mut fired);
    let raised: Vec<&Fired> = fired
        .iter()
        .filter(|f| f.transition.state == EventState::Raised)
        .collect();
    assert_eq!(raised.len(), 1, "{fired:?}");
    assert_eq!(raised[0].detector, "step_change");
    let t = &raised[0].transition;
    assert!((t.value - 6.1).abs() < 0.2 && t.limit.is_some_and(|l| (l - 4.0).abs() < 0.2));
    // A second rise (8.5 kW held for an hour) is a second step, measured from the new level.
    fired.clear();
    feed(&mut c, 60, 8.5, &mut fired);
    let raised: Vec<&Fired> = fired
        .iter()
        .filter(|f| f.transition.state == EventState::Raised)
        .collect();
    assert_eq!(raised.len(), 1, "{fired:?}");
    assert_eq!(raised[0].detector, "step_change");
    assert!(raised[0]
        .transition
        .limit
        .is_some_and(|l| (l - 6.1).abs() < 0.2));
}

/// Without a step (the level only wanders outside the band for a while and comes back), the
/// band still judges: shifting it is the step detector's call only.
#[test]
fn a_band_shift_needs_a_confirmed_step() {
    let mut band = super::super::band::BandDetector::new(
        DetectionConfig::default()
            .for_kind(SensorKind::RackPower)
            .band
            .clone()
            .unwrap_or_else(|| panic!("rack power has a band")),
    );
    let t0 = 1_764_028_800_000_i64;
    for i in 0..(2 * 24 * 60) {
        band.observe(
            Timestamp(t0 + i * 60_000),
            4.0 + [0.0, 0.1][(i % 2) as usize],
        );
    }
    let ts = Timestamp(t0 + 2 * 24 * 60 * 60_000);
    let (low, high) = band.band_at(ts).unwrap_or_else(|| panic!("warmed up"));
    assert!(low < 4.0 && high > 4.1 && high < 6.0, "{low}..{high}");
    assert_eq!(band.shift_level(2.0, ts, 6.0), None);
    let (low2, high2) = band.band_at(ts).unwrap_or_else(|| panic!("warmed up"));
    assert!((low2 - low - 2.0).abs() < 1e-9 && (high2 - high - 2.0).abs() < 1e-9);
    assert_eq!(band.shift_level(f64::NAN, ts, 6.0), None);
}

/// A slow climb toward a point's own 25 °C threshold: the forecast aims at that limit, says
/// when, bypasses no other detector, survives an export/restore, and clears when the climb
/// turns back before the limit.
#[test]
fn the_forecast_aims_at_the_point_threshold_and_survives_a_restart() {
    let d = DetectionConfig::default();
    let point = Threshold {
        high: 25.0,
        hysteresis: 0.5,
        min_duration: Duration::ZERO,
        severity: Severity::Warning,
    };
    let make = || {
        SensorDetectors::new(
            d.for_kind(SensorKind::InletTemp),
            Some(&point),
            d.flap_window,
            d.stale_after,
        )
    };
    // 20 °C, then +0.1 °C a minute from minute 30 (25 °C at minute 80), turning at minute 70.
    let value = |m: i64| match m {
        ..=29 => 20.0,
        30..=69 => 20.0 + 0.1 * (m - 30) as f64,
        _ => 24.0 - 0.1 * (m - 70) as f64,
    };
    let mut c = make();
    let mut fired = Vec::new();
    for m in 0..66 {
        fired.extend(c.observe(Timestamp(m * 60_000), value(m), value(m)));
    }
    assert_eq!(fired.len(), 1, "{fired:?}");
    let raise = &fired[0];
    assert_eq!(raise.detector, "forecast");
    assert!(!raise.fault);
    assert_eq!(raise.transition.limit, Some(25.0));
    let crossing = raise.expected_crossing.expect("crossing").millis() / 60_000;
    assert!((78..=82).contains(&crossing), "{crossing}");
    let mut after = make();
    let saved = c.export();
    assert!(saved.contains_key("forecast"));
    after.restore(&saved);
    let mut rest = Vec::new();
    for m in 66..120 {
        rest.extend(after.observe(Timestamp(m * 60_000), value(m), value(m)));
    }
    assert_eq!(rest.len(), 1, "only the clear, no second raise: {rest:?}");
    assert_eq!(rest[0].detector, "forecast");
    assert_eq!(rest[0].transition.state, EventState::Cleared);
    assert_eq!(rest[0].expected_crossing, None);
}

#[test]
fn no_forecast_without_an_upper_limit() {
    let names = chain(SensorKind::Temperature).detector_names().join(",");
    assert!(!names.contains("forecast"), "{names}");
    use coldaisle_config::detection::{resolve_detection, RawDetection, RawKindDetection};
    let raw = RawDetection {
        temperature: Some(RawKindDetection {
            forecast: Some(true),
            ..RawKindDetection::default()
        }),
        ..RawDetection::default()
    };
    let d = resolve_detection(&raw).expect("valid");
    assert!(d.for_kind(SensorKind::Temperature).forecast.is_some());
    let c = SensorDetectors::new(
        d.for_kind(SensorKind::Temperature),
        None,
        d.flap_window,
        d.stale_after,
    );
    assert!(!c.detector_names().iter().any(|n| n == "forecast"));
}

#[test]
fn the_export_view_writes_the_same_object_as_export() {
    let mut c = chain(SensorKind::InletTemp);
    for m in 0..90i64 {
        // A slow rise past the warning limit: limits, rates, band and forecast all hold state.
        c.observe(Timestamp(m * 60_000), 0.0, 20.0 + m as f64 * 0.1);
    }
    let exported = c.export();
    assert!(exported.contains_key("forecast") && exported.contains_key("threshold.flap"));
    let written = serde_json::to_vec(&c.export_view()).expect("json");
    let read: BTreeMap<String, Value> = serde_json::from_slice(&written).expect("decodes");
    // Compared through JSON text on both sides: parsing a float back may differ from the
    // `f64` in its last bit, for the old and the new writer alike.
    let old = serde_json::to_vec(&exported).expect("json");
    let read_old: BTreeMap<String, Value> = serde_json::from_slice(&old).expect("decodes");
    assert_eq!(read, read_old);
    let mut fresh = chain(SensorKind::InletTemp);
    assert_eq!(fresh.restore(&read), exported.len());
    assert_eq!(
        fresh.export().keys().collect::<Vec<_>>(),
        exported.keys().collect::<Vec<_>>()
    );
}

/// Memory (issue 18): a slot stores neither its name (derived from its detector) nor the flap
/// window (one per chain). 272 bytes before: a 24-byte `String` and a 16-byte window more, and
/// an allocation per name. 232 → 216 bytes when the settings were shared per kind (part 9: a
/// detector holds an `Arc` of its settings, not a copy).
#[test]
fn a_slot_holds_no_name_and_no_flap_window() {
    let size = std::mem::size_of::<Slot>();
    assert!(size <= 216, "slot: {size} bytes");
}

/// The derived names are the stored ones: an inlet chain's state keeps its keys, so states
/// saved before (when each slot held its name) restore whole.
#[test]
fn the_stored_state_keeps_its_detector_names() {
    let c = chain(SensorKind::InletTemp);
    let keys: Vec<String> = c.export().into_keys().collect();
    let mut expected: Vec<String> = [
        "impossible_value",
        "stale",
        "forecast",
        "threshold",
        "threshold_critical",
        "rate_of_change_15m",
        "rate_of_change_1h",
        "stuck",
        "learned_band",
    ]
    .iter()
    .map(|n| (*n).to_string())
    .collect();
    for gated in [
        "impossible_value",
        "threshold",
        "threshold_critical",
        "rate_of_change_15m",
        "rate_of_change_1h",
        "stuck",
        "learned_band",
    ] {
        expected.push(format!("{gated}.flap"));
    }
    expected.sort();
    assert_eq!(keys, expected);
    let power = chain(SensorKind::RackPower).export();
    assert!(power.contains_key("step_change") && power.contains_key("step_change.flap"));
}

/// The threshold levels of a chain, in slot order.
fn levels(c: &SensorDetectors) -> Vec<&LimitLevel> {
    c.threshold_levels().collect()
}

/// Every `Arc` a [`ChainSettings`] holds, with how many hold it.
fn holders(s: &ChainSettings) -> Vec<usize> {
    let mut n: Vec<usize> = s.levels.iter().map(Arc::strong_count).collect();
    n.extend(s.rates.iter().map(Arc::strong_count));
    n.extend(s.stuck.iter().map(Arc::strong_count));
    n.extend(s.band.iter().map(Arc::strong_count));
    n.extend(s.baseline.iter().map(Arc::strong_count));
    n.extend(s.step.iter().map(Arc::strong_count));
    n.extend(s.forecast.iter().map(Arc::strong_count));
    n.push(Arc::strong_count(&s.sentinels));
    n
}

/// Issue 18: two chains of the same kind point at one allocation of each setting.
#[test]
fn two_chains_of_a_kind_share_one_settings_allocation() {
    let d = DetectionConfig::default();
    let shared = ChainSettings::new(d.for_kind(SensorKind::InletTemp));
    // limits ×2, rates ×2, stuck, band, forecast, sentinels
    assert_eq!(holders(&shared), vec![1; 8]);
    let a = SensorDetectors::with_settings(&shared, None, d.flap_window, d.stale_after);
    let b = SensorDetectors::with_settings(&shared, None, d.flap_window, d.stale_after);
    assert_eq!(holders(&shared), vec![3; 8], "settings and both chains");
    let (la, lb) = (levels(&a), levels(&b));
    assert_eq!(la.len(), 2);
    for (x, y) in la.iter().zip(&lb) {
        assert!(std::ptr::eq(*x, *y), "a level copied instead of shared");
    }
    assert!(std::ptr::eq(
        a.impossible_sentinels(),
        b.impossible_sentinels()
    ));
    drop((a, b));
    assert_eq!(holders(&shared), vec![1; 8]);
}

/// Issue 18: a point's own threshold is that sensor's own level; its other settings stay shared
/// and the kind's level is untouched for the other sensors.
#[test]
fn a_sensor_with_an_override_gets_its_own_level() {
    let d = DetectionConfig::default();
    let shared = ChainSettings::new(d.for_kind(SensorKind::InletTemp));
    let point = Threshold {
        high: 25.0,
        hysteresis: 0.5,
        min_duration: Duration::ZERO,
        severity: Severity::Warning,
    };
    let own = SensorDetectors::with_settings(&shared, Some(&point), d.flap_window, d.stale_after);
    let plain = SensorDetectors::with_settings(&shared, None, d.flap_window, d.stale_after);
    // the warning level (first): only the plain chain shares it; everything else both do
    assert_eq!(holders(&shared), vec![2, 3, 3, 3, 3, 3, 3, 3]);
    let (lo, lp) = (levels(&own), levels(&plain));
    assert_eq!(lo[0].high, Some(25.0));
    assert_eq!(lo[0].hysteresis, 0.5);
    assert_ne!(lp[0].high, Some(25.0), "the kind's level was changed");
    assert!(!std::ptr::eq(lo[0], lp[0]));
    assert!(std::ptr::eq(lo[1], lp[1]), "the critical level is shared");
}

/// Shared settings change nothing a chain does: the same samples give the same events and
/// the same stored state as a chain with its own copy.
#[test]
fn shared_settings_give_the_same_output_and_state() {
    let d = DetectionConfig::default();
    let kind = d.for_kind(SensorKind::InletTemp);
    let shared = ChainSettings::new(kind);
    let mut own = SensorDetectors::new(kind, None, d.flap_window, d.stale_after);
    let mut sharing = SensorDetectors::with_settings(&shared, None, d.flap_window, d.stale_after);
    let mut fired = 0;
    for i in 0..2_000_i64 {
        let ts = Timestamp(1_700_000_000_000 + i * 10_000);
        // a slow rise with a jump, then a flat line (limits, rates, band, stuck all judge it)
        let v = 20.0 + (i as f64) * 0.01 + if i > 800 { 6.0 } else { 0.0 };
        let v = if i > 1_500 { 30.0 } else { v };
        let (a, b) = (own.observe(ts, v, v), sharing.observe(ts, v, v));
        fired += a.len();
        assert_eq!(a, b, "sample {i}");
    }
    assert!(
        fired > 0,
        "the input fired nothing: the comparison proves little"
    );
    assert_eq!(own.export(), sharing.export());
}
