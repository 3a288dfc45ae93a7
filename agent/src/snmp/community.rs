//! One SNMP v1/v2c conversation (I/O) without a buffer of its own: requests are encoded with
//! `rasn-snmp` into a datagram the size of the message, answers are read into the worker
//! thread's one receive buffer and decoded (snmp2's reader, as for v3 answers) into an owned
//! [`Response`] before the buffer is released.
//!
//! Why: snmp2's `AsyncSession` holds two 64 KiB buffers per session, one session per device;
//! at 500 devices that was most of the agent's memory (BENCHMARKS.md, "The agent at fleet
//! scale"). SNMPv3 keeps snmp2's session (USM state, keys, engine discovery).
//!
//! Invariants:
//! - Nothing awaits while the receive buffer is borrowed: a task waits for the socket to be
//!   readable, then reads, decodes and copies out in one synchronous step, so one buffer per
//!   thread serves every device polled on that thread.
//! - Request ids increase per session (wrapping); an answer carrying another id is reported as
//!   [`snmp2::Error::RequestIdMismatch`] (a late answer to an earlier request), one carrying
//!   another community as [`snmp2::Error::CommunityMismatch`], exactly as snmp2's session
//!   reports them, so the caller's retry rules are the same for every version.

use super::session::Response;
use rasn::types::{Integer, ObjectIdentifier, OctetString};
use rasn_snmp::{v1, v2, v2c};
use snmp2::{MessageType, Oid, Pdu};
use std::cell::RefCell;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::Wrapping;
use tokio::net::{lookup_host, UdpSocket};

/// The largest UDP payload over IPv4 (65,535 − 8 − 20): no SNMP answer is larger.
const MAX_DATAGRAM: usize = 65_507;

thread_local! {
    /// The receive buffer of this thread, allocated at its first answer (see the invariants).
    static RECEIVE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Community-based SNMP versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommunityVersion {
    /// SNMPv1 (RFC 1157).
    V1,
    /// SNMPv2c (RFC 1901).
    V2c,
}

/// One request: what to ask for.
#[derive(Debug, Clone, Copy)]
pub enum Request<'a> {
    /// GET of these OIDs.
    Get(&'a [Oid<'static>]),
    /// GETNEXT of one OID.
    GetNext(&'a Oid<'static>),
    /// GETBULK (no non-repeaters) with max-repetitions (v2c only).
    GetBulk(&'a [Oid<'static>], u32),
}

/// A v1/v2c session: a connected UDP socket, the community and the next request id.
#[derive(Debug)]
pub struct CommunitySession {
    /// Connected to the device, so the kernel drops datagrams from anyone else.
    socket: UdpSocket,
    /// Version of every request.
    version: CommunityVersion,
    /// Community sent, and expected back in answers.
    community: Vec<u8>,
    /// Id of the next request.
    next_id: Wrapping<i32>,
}

impl CommunitySession {
    /// Opens a socket connected to `address` (`host:port`); request ids start at `first_id`.
    pub async fn open(
        address: &str,
        version: CommunityVersion,
        community: &[u8],
        first_id: i32,
    ) -> std::io::Result<CommunitySession> {
        let Some(peer) = lookup_host(address).await?.next() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "no address found",
            ));
        };
        let socket = match peer {
            SocketAddr::V4(_) => UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?,
            SocketAddr::V6(_) => UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)).await?,
        };
        socket.connect(peer).await?;
        Ok(CommunitySession {
            socket,
            version,
            community: community.to_vec(),
            next_id: Wrapping(first_id),
        })
    }

    /// Sends `request` and reads its answer. The outer error is snmp2's (I/O, stale answer,
    /// community, undecodable); the inner one a request that cannot be expressed (an OID arc
    /// beyond 32 bits, GETBULK over v1) or an answer that cannot be used.
    pub async fn request(
        &mut self,
        request: Request<'_>,
    ) -> Result<Result<Response, String>, snmp2::Error> {
        let id = self.next_id.0;
        self.next_id += Wrapping(1);
        let datagram = match encode(self.version, &self.community, id, request) {
            Ok(bytes) => bytes,
            Err(detail) => return Ok(Err(detail)),
        };
        self.socket
            .send(&datagram)
            .await
            .map_err(|_| snmp2::Error::Send)?;
        loop {
            self.socket
                .readable()
                .await
                .map_err(|_| snmp2::Error::Receive)?;
            let read = RECEIVE.with(|cell| {
                let mut buffer = cell.borrow_mut();
                if buffer.len() < MAX_DATAGRAM {
                    buffer.resize(MAX_DATAGRAM, 0);
                }
                match self.socket.try_recv(&mut buffer) {
                    Ok(len) => Some(decode(&buffer[..len], id, &self.community)),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
                    Err(_) => Some(Err(snmp2::Error::Receive)),
                }
            });
            if let Some(answer) = read {
                return answer;
            }
        }
    }
}

/// Decodes an answer to request `id` into an owned [`Response`] (pure).
fn decode(
    datagram: &[u8],
    id: i32,
    community: &[u8],
) -> Result<Result<Response, String>, snmp2::Error> {
    let pdu = Pdu::from_bytes(datagram)?;
    if pdu.message_type != MessageType::Response {
        return Err(snmp2::Error::AsnWrongType);
    }
    if pdu.req_id != id {
        return Err(snmp2::Error::RequestIdMismatch);
    }
    if pdu.community != community {
        return Err(snmp2::Error::CommunityMismatch);
    }
    Ok(Response::from_pdu(pdu))
}

/// The object identifier of `oid` for rasn (SNMP arcs are 32-bit, RFC 2578 §7.1.3).
fn object_id(oid: &Oid<'_>) -> Result<ObjectIdentifier, String> {
    let arcs: Option<Vec<u32>> = oid
        .iter()
        .and_then(|arcs| arcs.map(|arc| u32::try_from(arc).ok()).collect());
    arcs.and_then(ObjectIdentifier::new)
        .ok_or_else(|| format!("OID {oid} cannot be sent (an arc beyond 32 bits)"))
}

/// The datagram of request `id` (pure).
pub fn encode(
    version: CommunityVersion,
    community: &[u8],
    id: i32,
    request: Request<'_>,
) -> Result<Vec<u8>, String> {
    let (oids, bulk): (Vec<ObjectIdentifier>, Option<u32>) = match request {
        Request::Get(oids) => (oids.iter().map(object_id).collect::<Result<_, _>>()?, None),
        Request::GetNext(oid) => (vec![object_id(oid)?], None),
        Request::GetBulk(oids, max_repetitions) => (
            oids.iter().map(object_id).collect::<Result<_, _>>()?,
            Some(max_repetitions),
        ),
    };
    let community = OctetString::from_slice(community);
    let encoded = match version {
        CommunityVersion::V1 => {
            let pdu = v1::Pdu {
                request_id: Integer::from(id),
                error_status: Integer::from(0),
                error_index: Integer::from(0),
                variable_bindings: oids
                    .into_iter()
                    .map(|name| v1::VarBind {
                        name,
                        value: rasn_smi::v1::SimpleSyntax::Empty.into(),
                    })
                    .collect(),
            };
            let data = match request {
                Request::Get(_) => v1::Pdus::GetRequest(v1::GetRequest(pdu)),
                Request::GetNext(_) => v1::Pdus::GetNextRequest(v1::GetNextRequest(pdu)),
                Request::GetBulk(..) => return Err("GETBULK does not exist in SNMPv1".into()),
            };
            rasn::ber::encode(&v1::Message {
                version: Integer::from(0),
                community,
                data,
            })
        }
        CommunityVersion::V2c => {
            let variable_bindings = oids
                .into_iter()
                .map(|name| v2::VarBind {
                    name,
                    value: v2::VarBindValue::Unspecified,
                })
                .collect();
            let data = match bulk {
                Some(max_repetitions) => {
                    v2::Pdus::GetBulkRequest(v2::GetBulkRequest(v2::BulkPdu {
                        request_id: id,
                        non_repeaters: 0,
                        max_repetitions,
                        variable_bindings,
                    }))
                }
                None => {
                    let pdu = v2::Pdu {
                        request_id: id,
                        error_status: 0,
                        error_index: 0,
                        variable_bindings,
                    };
                    match request {
                        Request::GetNext(_) => v2::Pdus::GetNextRequest(v2::GetNextRequest(pdu)),
                        _ => v2::Pdus::GetRequest(v2::GetRequest(pdu)),
                    }
                }
            };
            rasn::ber::encode(&v2c::Message {
                version: Integer::from(1),
                community,
                data,
            })
        }
    };
    encoded.map_err(|e| format!("request could not be encoded: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use snmp2::Value;

    fn oid(arcs: &[u64]) -> Oid<'static> {
        Oid::from(arcs).expect("valid OID")
    }

    #[test]
    fn v2c_get_decodes_as_the_same_request() {
        let oids = [
            oid(&[1, 3, 6, 1, 2, 1, 1, 3, 0]),
            oid(&[1, 3, 6, 1, 4, 1, 99, 4_000_000_000]),
        ];
        let bytes =
            encode(CommunityVersion::V2c, b"public", 42, Request::Get(&oids)).expect("encodes");
        let message: v2c::Message<v2::Pdus> = rasn::ber::decode(&bytes).expect("decodes");
        assert_eq!(message.community.as_ref(), b"public");
        let v2::Pdus::GetRequest(v2::GetRequest(pdu)) = message.data else {
            panic!("not a GET: {:?}", message.data);
        };
        assert_eq!(pdu.request_id, 42);
        let names: Vec<Vec<u32>> = pdu
            .variable_bindings
            .iter()
            .map(|vb| vb.name.to_vec())
            .collect();
        assert_eq!(
            names,
            vec![
                vec![1, 3, 6, 1, 2, 1, 1, 3, 0],
                vec![1, 3, 6, 1, 4, 1, 99, 4_000_000_000]
            ]
        );
        // snmp2's reader (the one answers go through) reads it too.
        let read = Pdu::from_bytes(&bytes).expect("snmp2 reads it");
        assert_eq!(read.message_type, MessageType::GetRequest);
        assert_eq!(read.req_id, 42);
    }

    #[test]
    fn v1_getnext_and_v2c_getbulk_carry_their_kind() {
        let start = oid(&[1, 3, 6, 1, 2, 1, 2]);
        let bytes =
            encode(CommunityVersion::V1, b"c", -7, Request::GetNext(&start)).expect("encodes");
        let message: v1::Message<v1::Pdus> = rasn::ber::decode(&bytes).expect("decodes");
        assert!(matches!(message.data, v1::Pdus::GetNextRequest(_)));
        assert_eq!(message.version, Integer::from(0));

        let columns = [start.clone()];
        let bytes = encode(
            CommunityVersion::V2c,
            b"c",
            9,
            Request::GetBulk(&columns, 25),
        )
        .expect("encodes");
        let message: v2c::Message<v2::Pdus> = rasn::ber::decode(&bytes).expect("decodes");
        let v2::Pdus::GetBulkRequest(v2::GetBulkRequest(bulk)) = message.data else {
            panic!("not a GETBULK");
        };
        assert_eq!((bulk.request_id, bulk.max_repetitions), (9, 25));

        assert!(encode(CommunityVersion::V1, b"c", 1, Request::GetBulk(&columns, 5)).is_err());
    }

    #[test]
    fn an_arc_beyond_32_bits_is_refused_not_truncated() {
        let too_big = [oid(&[1, 3, 6, 1, 4, 1, 5_000_000_000])];
        let err =
            encode(CommunityVersion::V2c, b"c", 1, Request::Get(&too_big)).expect_err("refused");
        assert!(err.contains("32 bits"), "{err}");
    }

    /// A v2c Response as a device sends it.
    fn answer(id: i32, community: &[u8]) -> Vec<u8> {
        let message = v2c::Message {
            version: Integer::from(1),
            community: OctetString::from_slice(community),
            data: v2::Pdus::Response(v2::Response(v2::Pdu {
                request_id: id,
                error_status: 0,
                error_index: 0,
                variable_bindings: vec![v2::VarBind {
                    name: ObjectIdentifier::new(vec![1, 3, 6, 1, 2, 1, 1, 3, 0]).expect("oid"),
                    value: v2::VarBindValue::Value(Integer::from(235).into()),
                }],
            })),
        };
        rasn::ber::encode(&message).expect("encodes")
    }

    #[test]
    fn answers_are_matched_by_id_and_community() {
        let good = decode(&answer(5, b"public"), 5, b"public")
            .expect("decodes")
            .expect("usable");
        assert_eq!(good.error_status, 0);
        assert_eq!(good.varbinds.len(), 1);
        assert_eq!(good.varbinds[0].0, vec![1, 3, 6, 1, 2, 1, 1, 3, 0]);
        assert_eq!(
            good.varbinds[0].1,
            super::super::value::VarValue::from_snmp(&Value::Integer(235))
        );
        assert!(matches!(
            decode(&answer(4, b"public"), 5, b"public"),
            Err(snmp2::Error::RequestIdMismatch)
        ));
        assert!(matches!(
            decode(&answer(5, b"private"), 5, b"public"),
            Err(snmp2::Error::CommunityMismatch)
        ));
        assert!(decode(b"\x30\x03\x02\x01", 5, b"public").is_err());
    }
}
