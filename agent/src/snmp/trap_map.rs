//! What a device's notification means (pure): a [`TrapEvent`] whose OID the `[snmp_traps]`
//! mappings know becomes a [`SensorEvent`] of detector `trap`, tied to the device's location,
//! with the mapping's category, kind, severity and state.
//!
//! Invariants: the event's sensor id is `{device}.trap.{mapping name}`, plus `.{instance}` when
//! the mapping has an `instance_oid` and the notification carries it, so a `cleared` mapping
//! with the same name as a `raised` one ends the condition it raised (the collector pairs
//! them by sensor and detector); the value is the numeric varbind under the mapping's
//! `value_oid` times the mapping's `scale`, or 0 when it names none or the varbind is absent or not a number (the
//! notification itself is the evidence, not a reading). Notifications without a mapping give
//! no event.

use super::trap::TrapEvent;
use super::value::VarValue;
use coldaisle_config::snmp_traps::SnmpTraps;
use coldaisle_core::wire::Payload;
use coldaisle_core::{SensorEvent, Timestamp};

/// Detector name of events made from notifications.
pub const DETECTOR: &str = "trap";

/// The instance a notification names under `prefix`: the OID's suffix for a table column
/// (`emsProbeStatusProbeIndex.3` → `3`), the value for a scalar (`mtrapargsInteger.0 = 2` →
/// `2`), kept to letters, digits, '-' and '_' (others become '_'), at most 32 characters.
fn instance(varbinds: &[(Vec<u64>, VarValue)], prefix: &[u64]) -> Option<String> {
    let (oid, value) = varbinds.iter().find(|(oid, _)| oid.starts_with(prefix))?;
    let suffix = &oid[prefix.len()..];
    let text = match (suffix, value) {
        ([] | [0], VarValue::Integer(n)) => n.to_string(),
        ([] | [0], VarValue::Gauge32(n)) => n.to_string(),
        ([] | [0], VarValue::OctetString(s)) => String::from_utf8_lossy(s).trim().to_string(),
        ([] | [0], _) => return None,
        (arcs, _) => arcs
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("_"),
    };
    let clean: String = text
        .chars()
        .take(32)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    (!clean.is_empty()).then_some(clean)
}

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
    let instance = mapping
        .instance_oid
        .as_ref()
        .and_then(|prefix| instance(&event.notification.varbinds, prefix));
    let sensor = match instance {
        Some(i) => format!("{}.trap.{}.{i}", event.device, mapping.name),
        None => format!("{}.trap.{}", event.device, mapping.name),
    };
    Some(Payload::SensorEvent(SensorEvent {
        sensor,
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
        expected_crossing: None,
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
                user: None,
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
                instance_oid: None,
            }],
            ..SnmpTraps::default()
        }
    }

    #[test]
    fn instances_tell_probes_of_one_device_apart() {
        let traps = SnmpTraps {
            mappings: coldaisle_config::snmp_traps::builtin_mappings(),
            ..SnmpTraps::default()
        };
        let sensor =
            |oid: Vec<u64>, varbinds| match to_payload(&event(oid, varbinds), &traps, Timestamp(1))
            {
                Some(Payload::SensorEvent(s)) => s.sensor,
                other => panic!("{other:?}"),
            };
        let probe = |n: u64| {
            vec![(
                vec![1, 3, 6, 1, 4, 1, 318, 1, 1, 10, 3, 13, 1, 1, 1, n],
                VarValue::Integer(n as i64),
            )]
        };
        // envHighTempThresholdViolation (253) from probes 1 and 2, and probe 2's clear (254).
        let env = |n| vec![1, 3, 6, 1, 4, 1, 318, 0, n];
        assert_eq!(sensor(env(253), probe(1)), "pdu-7.trap.env_temp_high.1");
        assert_eq!(sensor(env(253), probe(2)), "pdu-7.trap.env_temp_high.2");
        assert_eq!(sensor(env(254), probe(2)), "pdu-7.trap.env_temp_high.2");
        // apcEnv* carries the sensor number as the value of the scalar mtrapargsInteger.0.
        let args = vec![(
            vec![1, 3, 6, 1, 4, 1, 318, 2, 3, 1, 0],
            VarValue::Integer(4),
        )];
        assert_eq!(sensor(env(521), args), "pdu-7.trap.apc_env_temp_high.4");
        // Cisco: the entPhysicalIndex suffix of entSensorValue, not the reading.
        let cisco = vec![(
            vec![1, 3, 6, 1, 4, 1, 9, 9, 91, 1, 1, 1, 1, 4, 1007],
            VarValue::Integer(41),
        )];
        assert_eq!(
            sensor(vec![1, 3, 6, 1, 4, 1, 9, 9, 91, 2, 0, 1], cisco),
            "pdu-7.trap.ent_sensor_threshold.1007"
        );
        // Without the varbind: no instance; a hostile text is cleaned.
        assert_eq!(sensor(env(253), vec![]), "pdu-7.trap.env_temp_high");
        let text = vec![(
            vec![1, 3, 6, 1, 4, 1, 318, 2, 3, 1, 0],
            VarValue::OctetString(b"a/b+#c".to_vec()),
        )];
        assert_eq!(
            sensor(env(521), text),
            "pdu-7.trap.apc_env_temp_high.a_b__c"
        );
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

    /// An APC SNMPv1 TRAP-TYPE (ENTERPRISE apc, generic 6) as a PDU sends it.
    fn apc_v1_trap(specific: u32, varbinds: Vec<(Vec<u32>, i64)>) -> Vec<u8> {
        use rasn::types::{Integer, ObjectIdentifier};
        use rasn_smi::v1 as smi1;
        use rasn_snmp::v1;
        let oid = |arcs: Vec<u32>| ObjectIdentifier::new(arcs).expect("valid OID");
        let trap = v1::Trap {
            enterprise: oid(vec![1, 3, 6, 1, 4, 1, 318]),
            agent_addr: smi1::NetworkAddress::Internet(smi1::IpAddress([10, 0, 0, 7].into())),
            generic_trap: Integer::from(6),
            specific_trap: Integer::from(specific),
            time_stamp: smi1::TimeTicks(1234),
            variable_bindings: varbinds
                .into_iter()
                .map(|(name, n)| v1::VarBind {
                    name: oid(name),
                    value: smi1::ObjectSyntax::Simple(smi1::SimpleSyntax::Number(Integer::from(n))),
                })
                .collect(),
        };
        rasn::ber::encode(&v1::Message {
            version: Integer::from(0),
            community: b"public".to_vec().into(),
            data: v1::Pdus::Trap(trap),
        })
        .expect("encodes")
    }

    #[test]
    fn apc_v1_traps_map_to_the_builtin_raise_and_clear() {
        let traps = SnmpTraps {
            mappings: coldaisle_config::snmp_traps::builtin_mappings(),
            ..SnmpTraps::default()
        };
        let now = Timestamp(2_000);
        let of = |bytes: Vec<u8>| {
            let notification = crate::snmp::trap::decode_notification(&bytes).expect("decodes");
            let mut e = event(vec![], vec![]);
            e.notification = notification;
            match to_payload(&e, &traps, now) {
                Some(Payload::SensorEvent(s)) => s,
                other => panic!("not a sensor event: {other:?}"),
            }
        };
        // envHighHumidityThresholdViolation (257) with emsProbeStatusProbeHumidity.1 = 71 %RH.
        let humidity = [1, 3, 6, 1, 4, 1, 318, 1, 1, 10, 3, 13, 1, 1, 6, 1].to_vec();
        let raised = of(apc_v1_trap(257, vec![(humidity.clone(), 71)]));
        assert_eq!(raised.sensor, "pdu-7.trap.env_humidity_high");
        assert_eq!(raised.category, Category::Humidity);
        assert_eq!(raised.kind, SensorKind::Humidity);
        assert_eq!(raised.severity, Severity::Critical);
        assert_eq!(raised.state, EventState::Raised);
        assert!((raised.value - 71.0).abs() < 1e-9, "{}", raised.value);
        assert_eq!(raised.location.zone, "Z7");
        // Its clear (258) ends the same sensor's raise.
        let cleared = of(apc_v1_trap(258, vec![(humidity, 55)]));
        assert_eq!(cleared.sensor, raised.sensor);
        assert_eq!(cleared.state, EventState::Cleared);
        // apcEnvHighTempThresholdViolation (521) of sensor 2 (mtrapargsInteger): a thermal
        // warning without a value.
        let hot = of(apc_v1_trap(
            521,
            vec![(vec![1, 3, 6, 1, 4, 1, 318, 2, 3, 1], 2)],
        ));
        assert_eq!(hot.sensor, "pdu-7.trap.apc_env_temp_high.2");
        assert_eq!(hot.category, Category::Thermal);
        assert_eq!(hot.severity, Severity::Warning);
        assert_eq!(hot.value, 0.0);
        // airCriticalCondition (306): cooling.
        assert_eq!(of(apc_v1_trap(306, vec![])).category, Category::Cooling);
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
