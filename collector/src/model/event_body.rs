//! The body of a [`super::StoredEvent`] as the store's scope index keeps it: the payload alone
//! (the index key already holds event time, agent and seq), so that a late event's replay reads
//! its scope's events in one range scan, without looking up and decoding each whole record.
//!
//! Layout: byte 0 is the layout version [`BODY_V1`]; byte 1 names the payload's variant
//! ([`Payload`]'s internal `type` tag as one letter); the rest is the variant's own JSON
//! (serde, as in the record, without the tag). Decoding goes straight into the variant's
//! struct: no buffering of an internally tagged enum, no record envelope (schema, site,
//! agent's clock), and no second lookup. The content is serde's, so a field added to an event
//! type is carried like in the record (no hand-written field list to keep in step).
//!
//! Invariant: [`BODY_V1`] is a control character, which no agent id (the first byte of the
//! record key an index entry of the older layout holds) ever starts with, so a reader tells
//! the two layouts apart by the first byte ([`is_body`]).

use coldaisle_core::wire::Payload;

/// Byte 0 of a body in this layout.
pub const BODY_V1: u8 = 0x01;

/// Why a body could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Shorter than the two header bytes.
    #[error("event body of {0} bytes has no header")]
    Truncated(usize),
    /// A layout version this build does not know.
    #[error("event body layout {0:#04x} is unknown")]
    Version(u8),
    /// A variant letter this build does not know.
    #[error("event body variant {0:#04x} is unknown")]
    Variant(u8),
    /// The variant's JSON does not (de)serialise.
    #[error("event body JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// True if `value` is a body in this layout (not a record key of the older index layout).
pub fn is_body(value: &[u8]) -> bool {
    value.first() == Some(&BODY_V1)
}

/// The body of `payload`.
pub fn encode(payload: &Payload) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::with_capacity(256);
    out.push(BODY_V1);
    match payload {
        Payload::SensorEvent(e) => {
            out.push(b's');
            serde_json::to_writer(&mut out, e)?;
        }
        Payload::ZoneEvent(e) => {
            out.push(b'z');
            serde_json::to_writer(&mut out, e)?;
        }
        Payload::DeviceEvent(e) => {
            out.push(b'd');
            serde_json::to_writer(&mut out, e)?;
        }
        Payload::ReadingSummary(s) => {
            out.push(b'r');
            serde_json::to_writer(&mut out, s)?;
        }
    }
    Ok(out)
}

/// The payload of a body written by [`encode`].
pub fn decode(body: &[u8]) -> Result<Payload, BodyError> {
    let [version, variant, json @ ..] = body else {
        return Err(BodyError::Truncated(body.len()));
    };
    if *version != BODY_V1 {
        return Err(BodyError::Version(*version));
    }
    Ok(match variant {
        b's' => Payload::SensorEvent(serde_json::from_slice(json)?),
        b'z' => Payload::ZoneEvent(serde_json::from_slice(json)?),
        b'd' => Payload::DeviceEvent(serde_json::from_slice(json)?),
        b'r' => Payload::ReadingSummary(serde_json::from_slice(json)?),
        other => return Err(BodyError::Variant(*other)),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::incidents::tests::{device, sensor, zone, MIN, T0};
    use coldaisle_core::{EventState, Location, ReadingSummary, SensorKind, Severity, Timestamp};

    fn payloads() -> Vec<Payload> {
        let mut with_options = sensor(
            "a1",
            1,
            "Z1",
            "r1",
            EventState::Raised,
            Severity::Critical,
            33.5,
            T0,
        )
        .payload;
        if let Payload::SensorEvent(e) = &mut with_options {
            e.limit = Some(32.0);
            e.expected_crossing = Some(Timestamp(T0 + 30 * MIN));
            e.location.row = Some("row é".into());
        }
        vec![
            with_options,
            sensor(
                "a1",
                2,
                "Z1",
                "r2",
                EventState::Cleared,
                Severity::Warning,
                -4.25,
                -T0,
            )
            .payload,
            zone(
                "a2",
                3,
                "Z2",
                EventState::Raised,
                Severity::Warning,
                &["r1", "r2"],
                T0 + MIN,
            )
            .payload,
            device("a2", 4, "Z2", "pdu-1", EventState::Raised, T0 + 2 * MIN).payload,
            Payload::ReadingSummary(ReadingSummary {
                sensor: "t1".into(),
                kind: SensorKind::InletTemp,
                location: Location {
                    site: "dc1".into(),
                    zone: "Z1".into(),
                    row: None,
                    rack: Some("r1".into()),
                },
                from: Timestamp(T0),
                to: Timestamp(T0 + MIN),
                count: 12,
                min: 21.0,
                max: 22.5,
                sum: 261.0,
                last: 22.0,
            }),
        ]
    }

    #[test]
    fn every_variant_comes_back_as_it_went_in() {
        for payload in payloads() {
            let body = encode(&payload).unwrap();
            assert!(is_body(&body));
            assert_eq!(decode(&body).unwrap(), payload);
            // Leaner than the record's own JSON of the payload (no `type` tag).
            assert!(body.len() < serde_json::to_vec(&payload).unwrap().len());
        }
    }

    #[test]
    fn bodies_of_other_layouts_are_refused_by_name() {
        let body = encode(&payloads()[0]).unwrap();
        assert!(matches!(decode(&body[..1]), Err(BodyError::Truncated(1))));
        let mut other = body.clone();
        other[0] = 0x02;
        assert!(matches!(decode(&other), Err(BodyError::Version(2))));
        other[0] = BODY_V1;
        other[1] = b'x';
        assert!(matches!(decode(&other), Err(BodyError::Variant(b'x'))));
        other[1] = b'z';
        assert!(matches!(decode(&other), Err(BodyError::Json(_))));
        // A record key of the older index layout (agent id first) is not a body.
        assert!(!is_body(b"agent-1\0\0\0\0\0\0\0\0\x07"));
    }
}
