//! What a device's notification means (pure): a [`TrapEvent`] whose OID the `[snmp_traps]`
//! mappings know becomes a [`SensorEvent`] of detector `trap`, tied to the device's location,
//! with the mapping's category, kind, severity and state.
//!
//! Invariants: the event's sensor id is `{device}.trap.{mapping name}`, so a `cleared` mapping
//! with the same name as a `raised` one ends the condition it raised (the collector pairs
//! them by sensor and detector); the value is the numeric varbind under the mapping's
//! `value_oid` times the mapping's `scale`, or 0 when it names none or the varbind is absent or not a number (the
//! notification itself is the evidence, not a reading). Notifications without a mapping give
//! no event.

use super::trap::TrapEvent;
use coldaisle_config::snmp_traps::SnmpTraps;
use coldaisle_core::wire::Payload;
use coldaisle_core::{SensorEvent, Timestamp};

/// Detector name of events made from notifications.
pub const DETECTOR: &str = "trap";

/// The payload for `event`, or `None` when no mapping knows its OID.
pub fn to_payload(event: &TrapEvent, traps: &SnmpTraps, now: Timestamp) -> Option<Payload> {
    let mapping = traps.mapping(&event.notification.trap_oid)?;
    let value = mapping
        .value_oid
        .as_ref()
        .and_then(|prefix| {
            event
                .notification
                .varbinds
                .iter()
                .find(|(oid, _)| oid.starts_with(prefix))
        })
        .and_then(|(_, v)| v.numeric().ok())
        .map_or(0.0, |raw| raw * mapping.scale);
    Some(Payload::SensorEvent(SensorEvent {
        sensor: format!("{}.trap.{}", event.device, mapping.name),
        kind: mapping.kind,
        location: event.location.clone(),
        category: mapping.category,
        detector: DETECTOR.to_string(),
        state: mapping.state,
        severity: mapping.severity,
        value,
        limit: None,
        first_ts: now,
        ts: now,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snmp::trap::Notification;
    use crate::snmp::value::VarValue;
    use coldaisle_config::snmp_traps::TrapMapping;
    use coldaisle_core::{Category, EventState, Location, SensorKind, Severity};

    fn event(oid: Vec<u64>, varbinds: Vec<(Vec<u64>, VarValue)>) -> TrapEvent {
        TrapEvent {
            device: "pdu-7".into(),
            location: Location {
                site: "lab".into(),
                zone: "Z7".into(),
                row: None,
                rack: Some("R3".into()),
            },
            source: "127.0.0.1:5000".parse().unwrap(),
            notification: Notification {
                version: "2c",
                community: b"public".to_vec(),
                trap_oid: oid,
                varbinds,
                inform_ack: None,
            },
        }
    }

    fn traps() -> SnmpTraps {
        SnmpTraps {
            listen: None,
            communities: vec!["public".into()],
            mappings: vec![TrapMapping {
                oid: vec![1, 3, 6, 1, 4, 1, 318, 0, 58],
                name: "temp_high".into(),
                category: Category::Thermal,
                kind: SensorKind::InletTemp,
                severity: Severity::Critical,
                state: EventState::Raised,
                value_oid: Some(vec![1, 3, 6, 1, 4, 1, 318, 1]),
                scale: 0.1,
            }],
        }
    }

    #[test]
    fn mapped_trap_becomes_a_sensor_event_of_the_device() {
        let now = Timestamp(1_000);
        let e = event(
            vec![1, 3, 6, 1, 4, 1, 318, 0, 58],
            vec![
                (vec![1, 3, 6, 1, 2, 1, 1, 3, 0], VarValue::Timeticks(5)),
                (vec![1, 3, 6, 1, 4, 1, 318, 1, 9, 1], VarValue::Integer(315)),
            ],
        );
        let Some(Payload::SensorEvent(s)) = to_payload(&e, &traps(), now) else {
            panic!("no sensor event");
        };
        assert_eq!(s.sensor, "pdu-7.trap.temp_high");
        assert_eq!(s.detector, "trap");
        assert_eq!(s.location.zone, "Z7");
        assert_eq!(s.category, Category::Thermal);
        assert_eq!(s.severity, Severity::Critical);
        assert_eq!(s.state, EventState::Raised);
        assert!((s.value - 31.5).abs() < 1e-9, "{}", s.value);
        assert_eq!(s.ts, now);
    }

    #[test]
    fn missing_or_non_numeric_value_is_zero_and_unmapped_is_none() {
        let now = Timestamp(1_000);
        let e = event(
            vec![1, 3, 6, 1, 4, 1, 318, 0, 58],
            vec![(
                vec![1, 3, 6, 1, 4, 1, 318, 1, 2],
                VarValue::OctetString(b"hot".to_vec()),
            )],
        );
        let Some(Payload::SensorEvent(s)) = to_payload(&e, &traps(), now) else {
            panic!("no sensor event");
        };
        assert_eq!(s.value, 0.0);
        assert!(to_payload(
            &event(vec![1, 3, 6, 1, 4, 1, 318, 0, 59], vec![]),
            &traps(),
            now
        )
        .is_none());
    }
}
