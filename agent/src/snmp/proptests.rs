//! Randomised decode tests: datagrams (valid, truncated, oversized, random) through snmp2's
//! decoder and our varbind copy, random varbind values through [`value`](super::value) and
//! random responses through [`point_readings`](super::poll::point_readings). Nothing may
//! panic; every failure must be an error value.

use super::poll::point_readings;
use super::session::Response;
use super::value::{numeric, VarValue};
use proptest::prelude::*;
use snmp2::{Pdu, Value};

/// A valid v2c GetResponse for 1.3.6.1.2.1.1.3.0 = INTEGER 215 (net-snmp encoding).
const RESPONSE: [u8; 42] = [
    0x30, 0x28, 0x02, 0x01, 0x01, 0x04, 0x06, b'p', b'u', b'b', b'l', b'i', b'c', 0xa2, 0x1b, 0x02,
    0x01, 0x01, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30, 0x10, 0x30, 0x0e, 0x06, 0x08, 0x2b, 0x06,
    0x01, 0x02, 0x01, 0x01, 0x03, 0x00, 0x02, 0x02, 0x00, 0xd7,
];

/// A v2c Trap or InformRequest (community "public", request-id 7): sysUpTime.0 = 5,
/// snmpTrapOID.0 = 1.3.6.1.4.1.318.0.58, then an INTEGER varbind.
fn notification(inform: bool) -> Vec<u8> {
    use rasn::types::{Integer, ObjectIdentifier};
    use rasn_smi::{v1 as smi1, v2 as smi2};
    use rasn_snmp::{v2, v2c};
    let oid = |arcs: &[u32]| ObjectIdentifier::new(arcs.to_vec()).expect("valid OID");
    let pdu = v2::Pdu {
        request_id: 7,
        error_status: 0,
        error_index: 0,
        variable_bindings: vec![
            v2::VarBind {
                name: oid(&[1, 3, 6, 1, 2, 1, 1, 3, 0]),
                value: v2::VarBindValue::Value(smi2::ObjectSyntax::ApplicationWide(
                    smi2::ApplicationSyntax::Ticks(smi1::TimeTicks(5)),
                )),
            },
            v2::VarBind {
                name: oid(&[1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0]),
                value: v2::VarBindValue::Value(smi2::ObjectSyntax::Simple(
                    smi2::SimpleSyntax::ObjectId(oid(&[1, 3, 6, 1, 4, 1, 318, 0, 58])),
                )),
            },
            v2::VarBind {
                name: oid(&[1, 3, 6, 1, 4, 1, 318, 9, 1]),
                value: v2::VarBindValue::Value(smi2::ObjectSyntax::Simple(
                    smi2::SimpleSyntax::Integer(Integer::from(-40)),
                )),
            },
        ],
    };
    let data = if inform {
        v2::Pdus::InformRequest(v2::InformRequest(pdu))
    } else {
        v2::Pdus::Trap(v2::Trap(pdu))
    };
    rasn::ber::encode(&v2c::Message {
        version: Integer::from(1),
        community: b"public".to_vec().into(),
        data,
    })
    .expect("encodes")
}

#[test]
fn notifications_decode_and_informs_are_acknowledged() {
    let trap = super::trap::decode_notification(&notification(false)).expect("trap");
    assert_eq!(trap.trap_oid, vec![1, 3, 6, 1, 4, 1, 318, 0, 58]);
    assert_eq!(
        trap.varbinds[2],
        (vec![1, 3, 6, 1, 4, 1, 318, 9, 1], VarValue::Integer(-40))
    );
    assert!(trap.inform_ack.is_none());
    let inform = super::trap::decode_notification(&notification(true)).expect("inform");
    let ack = inform.inform_ack.expect("ack");
    let response = Pdu::from_bytes(&ack).expect("ack decodes");
    assert_eq!(response.message_type, snmp2::MessageType::Response);
    assert_eq!(response.req_id, 7);
}

/// Decodes like the session does and copies every varbind out.
fn decode(bytes: &[u8]) -> Result<Vec<(Vec<u64>, VarValue)>, String> {
    let pdu = Pdu::from_bytes(bytes).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (oid, value) in pdu.varbinds {
        let arcs = super::value::oid_arcs(&oid).ok_or("arc beyond 64 bits")?;
        out.push((arcs, VarValue::from_snmp(&value)));
    }
    Ok(out)
}

#[test]
fn the_reference_datagram_decodes() {
    let varbinds = decode(&RESPONSE).expect("valid response");
    assert_eq!(
        varbinds,
        vec![(vec![1, 3, 6, 1, 2, 1, 1, 3, 0], VarValue::Integer(215))]
    );
}

fn var_value() -> impl Strategy<Value = VarValue> {
    prop_oneof![
        any::<i64>().prop_map(VarValue::Integer),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(VarValue::OctetString),
        "[ -~]{0,12}".prop_map(|s| VarValue::OctetString(s.into_bytes())),
        any::<u32>().prop_map(VarValue::Counter32),
        any::<u32>().prop_map(VarValue::Gauge32),
        any::<u32>().prop_map(VarValue::Timeticks),
        any::<u64>().prop_map(VarValue::Counter64),
        proptest::collection::vec(any::<u64>(), 0..12).prop_map(VarValue::ObjectIdentifier),
        any::<[u8; 4]>().prop_map(VarValue::IpAddress),
        Just(VarValue::Null),
        Just(VarValue::NoSuchObject),
        Just(VarValue::NoSuchInstance),
        Just(VarValue::EndOfMibView),
    ]
}

proptest! {
    #[test]
    fn truncated_datagrams_are_errors(cut in 0usize..RESPONSE.len()) {
        prop_assert!(decode(&RESPONSE[..cut]).is_err());
    }

    #[test]
    fn mutated_or_oversized_datagrams_never_panic(
        flips in proptest::collection::vec((0usize..42, any::<u8>()), 0..6),
        tail in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = RESPONSE.to_vec();
        for (at, byte) in flips {
            bytes[at] = byte;
        }
        bytes.extend(tail);
        let _ = decode(&bytes);
    }

    #[test]
    fn random_datagrams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
        let _ = super::trap::decode_notification(&bytes);
    }

    #[test]
    fn truncated_or_mutated_notifications_are_errors_not_panics(
        cut in 0usize..60,
        flips in proptest::collection::vec((0usize..60, any::<u8>()), 0..4),
        inform in any::<bool>(),
    ) {
        let full = notification(inform);
        prop_assert!(super::trap::decode_notification(&full[..cut.min(full.len() - 1)]).is_err());
        let mut bytes = full.clone();
        for (at, byte) in flips {
            if let Some(b) = bytes.get_mut(at) {
                *b = byte;
            }
        }
        let _ = super::trap::decode_notification(&bytes);
    }

    #[test]
    fn values_are_finite_numbers_or_errors(value in var_value()) {
        let text = value.to_string();
        prop_assert!(!text.is_empty());
        match value.numeric() {
            Ok(n) => prop_assert!(n.is_finite()),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn octet_strings_parse_like_numbers_or_fail(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        if let Ok(n) = numeric(&Value::OctetString(&bytes)) {
            prop_assert!(n.is_finite());
        }
    }

    #[test]
    fn responses_of_any_shape_give_one_reading_per_point(
        asked in proptest::collection::vec(proptest::collection::vec(0u64..5, 1..4), 0..8),
        answers in proptest::collection::vec((proptest::collection::vec(0u64..5, 1..4), var_value()), 0..10),
        status in prop_oneof![Just(0u32), 0u32..20],
        index in 0u32..12,
    ) {
        let response = Response { error_status: status, error_index: index, varbinds: answers };
        let readings = point_readings(&response, &asked);
        prop_assert_eq!(readings.len(), asked.len());
        for n in readings.into_iter().flatten() {
            prop_assert!(n.is_finite());
        }
    }
}
