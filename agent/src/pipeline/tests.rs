use super::*;
use crate::poller::PollError;
use coldaisle_config::detection::LimitLevel;
use coldaisle_core::Category;
use coldaisle_core::SensorEvent;
use std::path::Path;

const CONFIG: &str = r#"
agent_id = "a1"
site = "s1"
state_dir = "/tmp/unused"
summary_interval = "10s"
[mqtt]
host = "127.0.0.1"
[correlation]
window = "5m"
min_sensors = 2
[[devices]]
id = "pdu"
protocol = "snmp"
address = "127.0.0.1:161"
zone = "Z1"
poll_interval = "1s"
timeout = "1s"
[[devices.points]]
sensor = "r1"
kind = "inlet_temp"
rack = "R1"
oid = "1.3.6.1.4.1.1.1"
scale = 0.1
[devices.points.threshold]
high = 27.0
min_duration = "2s"
[[devices.points]]
sensor = "r2"
kind = "inlet_temp"
rack = "R2"
oid = "1.3.6.1.4.1.1.2"
scale = 0.1
[devices.points.threshold]
high = 27.0
min_duration = "2s"
"#;

fn pipeline() -> Pipeline {
    let config = AgentConfig::from_str(CONFIG, Path::new("test.toml")).expect("config");
    Pipeline::new(&config)
}

fn outcome(secs: i64, r1: f64, r2: f64) -> PollOutcome {
    PollOutcome {
        device: 0,
        ts: Timestamp(secs * 1000),
        result: Ok(vec![Ok(r1 * 10.0), Ok(r2 * 10.0)]),
    }
}

#[test]
fn overheat_of_two_racks_makes_sensor_events_and_one_zone_event() {
    let mut p = pipeline();
    let mut all = Vec::new();
    for (t, r1, r2) in [
        (0, 22.0, 22.0),
        (1, 29.0, 28.0),
        (2, 29.5, 28.5),
        (3, 30.0, 29.0),
        (4, 24.0, 24.0),
    ] {
        all.extend(p.observe(&outcome(t, r1, r2)));
    }
    let sensor_events: Vec<_> = all
        .iter()
        .filter_map(|p| match p {
            Payload::SensorEvent(e) => Some((e.sensor.as_str(), e.state, e.ts)),
            _ => None,
        })
        .collect();
    assert_eq!(
        sensor_events,
        vec![
            ("r1", EventState::Raised, Timestamp(3000)),
            ("r2", EventState::Raised, Timestamp(3000)),
            ("r1", EventState::Cleared, Timestamp(4000)),
            ("r2", EventState::Cleared, Timestamp(4000)),
        ]
    );
    let zone_events: Vec<_> = all
        .iter()
        .filter_map(|p| match p {
            Payload::ZoneEvent(e) => Some((e.state, e.category, e.evidence.len())),
            _ => None,
        })
        .collect();
    assert_eq!(
        zone_events,
        vec![
            (EventState::Raised, Category::Thermal, 2),
            (EventState::Cleared, Category::Thermal, 1)
        ]
    );
    let summaries = all.iter().filter(|p| p.is_summary()).count();
    assert_eq!(summaries, 0, "the 10 s summary window has not closed yet");
    all = p.observe(&outcome(11, 22.0, 22.0));
    assert_eq!(
        all.iter().filter(|p| p.is_summary()).count(),
        2,
        "one summary per sensor"
    );
}

#[test]
fn event_values_keep_the_sensors_precision() {
    // Raw tenths × 0.1 give float noise (314 × 0.1 = 31.400000000000002); the event says 31.4.
    let mut p = pipeline();
    let mut all = Vec::new();
    for t in 0..4 {
        all.extend(p.observe(&PollOutcome {
            device: 0,
            ts: Timestamp(t * 1000),
            result: Ok(vec![Ok(314.0), Ok(220.0)]),
        }));
    }
    let raised = sensor_events(&all)
        .into_iter()
        .find(|e| e.sensor == "r1" && e.state == EventState::Raised)
        .expect("r1 raised");
    assert_ne!(314.0 * 0.1, 31.4, "the noise this test is about");
    let json = serde_json::to_string(raised).expect("json");
    assert!(json.contains("\"value\":31.4,"), "{json}");
    assert_eq!(
        readable::sensor_line(raised),
        "r1 raised by threshold: 31.4 °C > 27"
    );
}

#[test]
fn unreachable_device_raises_once_and_clears() {
    let mut p = pipeline();
    let failed = |t: i64| PollOutcome {
        device: 0,
        ts: Timestamp(t * 1000),
        result: Err(PollError::Timeout(std::time::Duration::from_secs(1))),
    };
    let mut device_events = Vec::new();
    for o in [failed(0), failed(1), outcome(2, 22.0, 22.0), failed(3)] {
        for payload in p.observe(&o) {
            if let Payload::DeviceEvent(e) = payload {
                device_events.push((e.state, e.ts.millis() / 1000, e.reason.is_empty()));
            }
        }
    }
    assert_eq!(
        device_events,
        vec![
            (EventState::Raised, 0, false),
            (EventState::Cleared, 2, true),
            (EventState::Raised, 3, false)
        ]
    );
}

#[test]
fn unreadable_point_does_not_poison_others() {
    let mut p = pipeline();
    let mut raised = Vec::new();
    for t in 0..4 {
        let o = PollOutcome {
            device: 0,
            ts: Timestamp(t * 1000),
            result: Ok(vec![Err("noSuchInstance".into()), Ok(300.0)]),
        };
        raised.extend(p.observe(&o).into_iter().filter(is_raise));
    }
    assert_eq!(raised.len(), 1, "r2 still raises: {raised:?}");
}

fn pipeline_from(text: &str) -> Pipeline {
    let config = AgentConfig::from_str(text, Path::new("test.toml")).expect("config");
    Pipeline::new(&config)
}

fn sensor_events(payloads: &[Payload]) -> Vec<&SensorEvent> {
    payloads
        .iter()
        .filter_map(|p| match p {
            Payload::SensorEvent(e) => Some(e),
            _ => None,
        })
        .collect()
}

const PROBE: &str = r#"
agent_id = "a1"
site = "s1"
state_dir = "/tmp/unused"
[mqtt]
host = "127.0.0.1"
[correlation]
min_sensors = 1
[[devices]]
id = "pdu"
protocol = "snmp"
address = "127.0.0.1:161"
zone = "Z1"
rack = "R1"
profile = "apc-rpdu2"
[[devices.points]]
sensor = "r1-inlet"
profile_point = "probe1_temp"
[[devices.points]]
sensor = "r1-rh"
profile_point = "probe1_humidity"
[[devices]]
id = "inrow"
protocol = "modbus"
address = "127.0.0.1:502"
zone = "Z1"
profile = "apc-inrow-modbus"
[[devices.points]]
sensor = "supply"
profile_point = "supply_air"
[[devices.points]]
sensor = "return"
profile_point = "return_air"
"#;

fn probe(secs: i64, celsius: f64, rh: f64) -> PollOutcome {
    PollOutcome {
        device: 0,
        ts: Timestamp(secs * 1000),
        result: Ok(vec![Ok(celsius * 10.0), Ok(rh)]),
    }
}

fn inrow(secs: i64, supply_c: f64, return_c: f64) -> PollOutcome {
    let tenths_f = |c: f64| (c * 9.0 / 5.0 + 32.0) * 10.0;
    PollOutcome {
        device: 1,
        ts: Timestamp(secs * 1000),
        result: Ok(vec![Ok(tenths_f(supply_c)), Ok(tenths_f(return_c))]),
    }
}

#[test]
fn dew_point_is_derived_per_rack_and_judged_with_ashrae_limits() {
    let mut p = pipeline_from(PROBE);
    assert_eq!(
        p.derived_ids(),
        vec!["r1-rh.dew_point", "inrow.delta_t", "r1-inlet.over_supply"]
    );
    let mut all = Vec::new();
    // 26 °C (inside the warning band) at 70 %RH → dew point 20.1 °C: above A1's 17 °C.
    for s in (0..=400).step_by(30) {
        all.extend(p.observe(&probe(s, 26.0, 70.0)));
    }
    let events = sensor_events(&all);
    let dp: Vec<_> = events
        .iter()
        .filter(|e| e.sensor == "r1-rh.dew_point")
        .map(|e| (e.detector.as_str(), e.state, e.severity, e.category, e.kind))
        .collect();
    assert_eq!(
        dp,
        vec![
            (
                "threshold",
                EventState::Raised,
                coldaisle_core::Severity::Warning,
                Category::Humidity,
                coldaisle_core::SensorKind::DewPoint
            ),
            (
                "threshold_critical",
                EventState::Raised,
                coldaisle_core::Severity::Critical,
                Category::Humidity,
                coldaisle_core::SensorKind::DewPoint
            ),
        ]
    );
    let e = events
        .iter()
        .find(|e| e.detector == "threshold_critical")
        .expect("critical");
    assert!(
        (e.value - 20.1).abs() < 0.2 && e.limit == Some(17.0),
        "{e:?}"
    );
    assert_eq!(
        e.ts.since(e.first_ts),
        std::time::Duration::from_secs(300),
        "duration shown"
    );
    // RH 70 % is not above the 70 % warning limit and inlet 26 °C is fine: nothing else.
    assert_eq!(events.len(), 2, "{events:?}");
}

#[test]
fn cooler_losing_its_delta_t_raises_a_cooling_event() {
    let mut p = pipeline_from(PROBE);
    let mut all = Vec::new();
    for s in (0..=300).step_by(30) {
        all.extend(p.observe(&inrow(s, 18.0, 30.0)));
    }
    assert!(sensor_events(&all).is_empty());
    // Compressor off: supply rises to return, ΔT 1 °C for more than 10 minutes.
    for s in (330..=1200).step_by(30) {
        all.extend(p.observe(&inrow(s, 28.0, 29.0)));
    }
    let events = sensor_events(&all);
    let dt: Vec<_> = events
        .iter()
        .filter(|e| e.sensor == "inrow.delta_t")
        .map(|e| (e.detector.as_str(), e.state, e.category, e.limit))
        .collect();
    assert_eq!(
        dt,
        vec![(
            "threshold",
            EventState::Raised,
            Category::Cooling,
            Some(3.0)
        )]
    );
}

#[test]
fn sensor_faults_are_device_events_and_never_make_zone_events() {
    let mut p = pipeline_from(PROBE);
    let mut all = Vec::new();
    for s in 0..5 {
        // 0x7FFF tenths and an RH of 32767: vendor "no probe" sentinels.
        all.extend(p.observe(&PollOutcome {
            device: 0,
            ts: Timestamp(s * 1000),
            result: Ok(vec![Ok(32767.0), Ok(32767.0)]),
        }));
    }
    let events = sensor_events(&all);
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events
        .iter()
        .all(|e| e.category == Category::Device && e.detector == "impossible_value"));
    assert!(
        !all.iter().any(|p| matches!(p, Payload::ZoneEvent(_))),
        "min_sensors = 1, yet faults are not thermal"
    );
    assert!(
        !all.iter().any(|p| p.is_summary()),
        "impossible values are not summarised"
    );
}

#[test]
fn single_sensor_makes_a_zone_event_when_min_sensors_is_one() {
    let text = CONFIG.replace("min_sensors = 2", "min_sensors = 1");
    let mut p = pipeline_from(&text);
    let mut zone = Vec::new();
    for (t, r1) in [(0, 22.0), (1, 29.0), (2, 29.0), (3, 29.0), (4, 22.0)] {
        for payload in p.observe(&outcome(t, r1, 22.0)) {
            if let Payload::ZoneEvent(z) = payload {
                zone.push((z.state, z.evidence.len()));
            }
        }
    }
    assert_eq!(
        zone,
        vec![(EventState::Raised, 1), (EventState::Cleared, 1)]
    );
}

#[test]
fn flapping_is_counted_not_forwarded() {
    let mut p = pipeline();
    let mut raises = 0;
    // r1 crosses 27 °C for 3 s every 10 s: raise, clear, then flaps within the 10 min window.
    for cycle in 0..6 {
        let base = cycle * 10;
        for (t, v) in [(0, 29.0), (1, 29.0), (2, 29.0), (3, 29.0), (4, 22.0)] {
            raises += p
                .observe(&outcome(base + t, v, 22.0))
                .iter()
                .filter(|x| matches!(x, Payload::SensorEvent(e) if e.state == EventState::Raised))
                .count();
        }
    }
    assert_eq!(raises, 1, "only the first raise goes out");
    assert_eq!(p.flaps(), 5);
}

#[test]
fn open_raises_survive_a_restart_through_the_stored_state() {
    let mut before = pipeline();
    for t in 0..4 {
        before.observe(&outcome(t, 29.0, 29.0));
    }
    let stored = serde_json::to_vec(&before.export_state()).expect("json");
    let mut after = pipeline();
    let state: PipelineState = serde_json::from_slice(&stored).expect("json");
    assert!(after.restore_state(&state) > 10);
    let still_hot = after.observe(&outcome(5, 29.0, 29.0));
    assert!(
        !still_hot.iter().any(is_raise),
        "no second raise: {still_hot:?}"
    );
    let cool = after.observe(&outcome(6, 22.0, 22.0));
    let kinds: Vec<_> = cool
        .iter()
        .filter_map(|p| match p {
            Payload::SensorEvent(e) => Some(format!("{}:{:?}", e.sensor, e.state)),
            Payload::ZoneEvent(z) => Some(format!("zone:{:?}", z.state)),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, vec!["r1:Cleared", "r2:Cleared", "zone:Cleared"]);
}

#[test]
fn a_point_that_keeps_failing_goes_stale_as_a_device_event() {
    let mut p = pipeline();
    let mut events = Vec::new();
    for t in (0..=900).step_by(30) {
        let o = PollOutcome {
            device: 0,
            ts: Timestamp(t * 1000),
            result: Ok(vec![Err("noSuchInstance".into()), Ok(220.0)]),
        };
        for payload in p.observe(&o) {
            if let Payload::SensorEvent(e) = payload {
                events.push((e.sensor, e.detector, e.category, e.ts.millis() / 1000));
            }
        }
    }
    assert_eq!(
        events,
        vec![("r1".to_string(), "stale".to_string(), Category::Device, 600)]
    );
}

#[test]
fn inlet_far_above_the_cooling_supply_raises_before_the_inlet_limit() {
    let mut p = pipeline_from(PROBE);
    let mut all = Vec::new();
    // Supply 18 °C, rack inlet 26.5 °C (below 27): 8.5 °C of recirculated exhaust.
    for s in (0..=900).step_by(30) {
        all.extend(p.observe(&inrow(s, 18.0, 30.0)));
        all.extend(p.observe(&probe(s, 26.5, 40.0)));
    }
    let events: Vec<_> = sensor_events(&all)
        .iter()
        .map(|e| (e.sensor.clone(), e.detector.clone(), e.category, e.limit))
        .collect();
    assert_eq!(
        events,
        vec![(
            "r1-inlet.over_supply".to_string(),
            "threshold".to_string(),
            Category::Thermal,
            Some(8.0)
        )]
    );
}

#[test]
fn a_derived_signal_is_the_same_evidence_as_its_sensor() {
    // min_sensors = 2 and one rack: its humidity and its derived dew point are one sensor.
    let mut p = pipeline_from(&PROBE.replace("min_sensors = 1", "min_sensors = 2"));
    let mut all = Vec::new();
    for s in (0..=400).step_by(30) {
        all.extend(p.observe(&probe(s, 26.0, 85.0)));
    }
    let raised: Vec<_> = sensor_events(&all)
        .iter()
        .filter(|e| e.category == Category::Humidity)
        .map(|e| e.sensor.clone())
        .collect();
    assert!(raised.contains(&"r1-rh".to_string()), "{raised:?}");
    assert!(
        raised.contains(&"r1-rh.dew_point".to_string()),
        "{raised:?}"
    );
    assert!(
        !all.iter().any(|p| matches!(p, Payload::ZoneEvent(_))),
        "one rack is not a zone event"
    );
}

/// Both racks climb slowly toward 27 °C (0.1 °C a poll): each gets a `forecast` event with its
/// expected crossing, category thermal, but no zone event: a forecast is not evidence.
#[test]
fn forecasts_of_two_racks_carry_their_crossing_and_make_no_zone_event() {
    let mut p = pipeline();
    let mut all = Vec::new();
    for t in 0..40 {
        let v = 22.0 + 0.1 * t as f64;
        all.extend(p.observe(&outcome(t, v, v)));
    }
    let forecasts: Vec<&SensorEvent> = all
        .iter()
        .filter_map(|p| match p {
            Payload::SensorEvent(e) if e.is_forecast() => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(forecasts.len(), 2, "{all:?}");
    for e in &forecasts {
        assert_eq!(e.state, EventState::Raised);
        assert_eq!(e.category, Category::Thermal);
        assert_eq!(e.limit, Some(27.0));
        // 27 °C is reached at t = 50 s.
        let crossing = e.expected_crossing.expect("crossing").millis();
        assert!((48_000..=52_000).contains(&crossing), "{e:?}");
    }
    assert!(
        !all.iter().any(|p| matches!(p, Payload::ZoneEvent(_))),
        "{all:?}"
    );
}

#[test]
fn the_state_written_in_place_decodes_as_the_exported_state() {
    let mut p = pipeline();
    for t in 0..4 {
        p.observe(&outcome(t, 29.0, 29.0));
    }
    let mut written = Vec::new();
    p.write_state(&mut written).expect("written");
    let read: PipelineState = serde_json::from_slice(&written).expect("decodes");
    let exported = p.export_state();
    assert!(exported.correlator.is_object(), "{:?}", exported.correlator);
    assert_eq!(read, exported);
}

#[test]
fn a_state_stored_by_the_value_tree_save_still_restores() {
    use crate::detector_state::{save_record, Source, StateStore};
    let mut before = pipeline();
    for t in 0..4 {
        before.observe(&outcome(t, 29.0, 29.0));
    }
    // The record as the code before `write_state` stored it: the `Value` tree, encoded, in
    // the sled tree of the agents before the state file.
    let dir = tempfile::tempdir().expect("tempdir");
    let old: std::sync::Arc<dyn coldaisle_store::KvStore> =
        std::sync::Arc::new(coldaisle_store::MemoryStore::default());
    let bytes = serde_json::to_vec(&before.export_state()).expect("json");
    save_record(old.as_ref(), bytes).expect("old save");
    let from_old = StateStore::new(dir.path(), old).load().expect("loads");
    let new_dir = tempfile::tempdir().expect("tempdir");
    let mut new = StateStore::new(
        new_dir.path(),
        std::sync::Arc::new(coldaisle_store::MemoryStore::default()),
    );
    new.save(&before).expect("new save");
    let (from_old, old_source) = from_old.expect("stored");
    let (from_new, new_source) = new.load().expect("loads").expect("stored");
    assert_eq!((old_source, new_source), (Source::SledRecord, Source::File));
    assert_eq!(from_old, from_new);
    let mut after = pipeline();
    let restored = after.restore_state(&from_old);
    assert!(restored > 10, "{restored}");
    let still_hot = after.observe(&outcome(5, 29.0, 29.0));
    assert!(!still_hot.iter().any(is_raise), "{still_hot:?}");
}

/// Issue 18: the pipeline makes each kind's settings once; sensors of a kind point at them,
/// and a point with its own threshold holds its own level only.
#[test]
fn sensors_of_a_kind_share_their_settings_and_an_override_has_its_own_level() {
    let text = format!(
        "{CONFIG}{}",
        r#"
[[devices.points]]
sensor = "r3"
kind = "inlet_temp"
rack = "R3"
oid = "1.3.6.1.4.1.1.3"
[[devices.points]]
sensor = "r4"
kind = "inlet_temp"
rack = "R4"
oid = "1.3.6.1.4.1.1.4"
"#
    );
    let p = pipeline_from(&text);
    let levels = |j: usize| -> Vec<&LimitLevel> {
        p.devices[0].sensors[j]
            .detectors
            .threshold_levels()
            .collect()
    };
    let (own, r3, r4) = (levels(0), levels(2), levels(3));
    assert_eq!(
        own[0].min_duration,
        Duration::from_secs(2),
        "r1's own threshold"
    );
    assert_ne!(
        r3[0].min_duration,
        Duration::from_secs(2),
        "r3 took r1's threshold"
    );
    assert!(
        std::ptr::eq(r3[0], r4[0]),
        "r3 and r4 each copied the warning level"
    );
    assert!(
        std::ptr::eq(r3[1], r4[1]),
        "r3 and r4 each copied the critical level"
    );
    assert!(
        !std::ptr::eq(own[0], r3[0]),
        "the override changed the shared level"
    );
    assert!(
        std::ptr::eq(own[1], r3[1]),
        "the override copied the critical level"
    );
    assert!(std::ptr::eq(
        p.devices[0].sensors[2].detectors.impossible_sentinels(),
        p.devices[0].sensors[3].detectors.impossible_sentinels()
    ));
}
