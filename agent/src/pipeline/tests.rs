use super::*;
use crate::poller::PollError;
use coldaisle_core::Category;
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
