//! The outbox benchmarks' record (`delivery`, `outbox_append`): one sensor event of about 280
//! bytes of JSON, the size of a single-sensor payload an agent appends. Pure.

use coldaisle_core::wire::Payload;
use coldaisle_core::{
    Category, EventState, Location, SensorEvent, SensorKind, Severity, Timestamp,
};

/// Event `n`: a threshold raise (even `n`) or clear (odd `n`) of one of 40 inlet sensors in
/// 4 zones, event time `n` milliseconds after 2023-11-14T22:13:20Z.
pub fn event(n: u64) -> Payload {
    Payload::SensorEvent(SensorEvent {
        sensor: format!("r{:02}-inlet", n % 40),
        kind: SensorKind::InletTemp,
        location: Location {
            site: "bench".into(),
            zone: format!("Z{}", n % 4),
            row: Some("A".into()),
            rack: Some(format!("R{:02}", n % 40)),
        },
        category: Category::Thermal,
        detector: "threshold".into(),
        state: if n % 2 == 0 {
            EventState::Raised
        } else {
            EventState::Cleared
        },
        severity: Severity::Warning,
        value: 27.5,
        limit: Some(27.0),
        first_ts: Timestamp(1_700_000_000_000 + n as i64),
        ts: Timestamp(1_700_000_000_000 + n as i64),
        expected_crossing: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_alternate_and_are_about_280_bytes() {
        let sizes: Vec<usize> = (0..80)
            .map(|n| serde_json::to_vec(&event(n)).map_or(0, |v| v.len()))
            .collect();
        assert!(sizes.iter().all(|&s| (250..320).contains(&s)), "{sizes:?}");
        let Payload::SensorEvent(raised) = event(0) else {
            panic!("not a sensor event")
        };
        let Payload::SensorEvent(cleared) = event(41) else {
            panic!("not a sensor event")
        };
        assert_eq!(raised.state, EventState::Raised);
        assert_eq!(cleared.state, EventState::Cleared);
        assert_eq!(cleared.sensor, "r01-inlet");
        assert_eq!(cleared.location.zone, "Z1");
    }
}
