//! SNMP notifications in: decoding v1 traps, v2c traps and v2c informs with `rasn-snmp` (pure,
//! [`decode_notification`]), the acknowledgement an inform needs, the device a notification
//! came from ([`TrapContext::device`], through `trap_sources`), and a UDP listener ([`listen`]) that turns them into
//! [`TrapEvent`]s tied to the device's location.
//!
//! Invariants: a datagram from an address that is no configured SNMP device, or with a
//! community the listener does not accept, is dropped (counted in the log) and never
//! acknowledged; an inform is acknowledged only after it was decoded and handed on. SNMPv3
//! messages go through [`trap_v3::V3Receiver`] (USM: users, keys, discovery, time window);
//! its Reports are sent at once, its inform Responses after the hand-on like v2c ones.

use super::trap_v3;
use super::value::VarValue;
use coldaisle_config::Device;
use coldaisle_core::Location;
use rasn::types::ObjectIdentifier;
use rasn_smi::v2 as smi2;
use rasn_snmp::{v1, v2, v2c};
use std::net::SocketAddr;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

/// snmpTrapOID.0: the second varbind of every v2 notification names the notification.
pub const SNMP_TRAP_OID: [u64; 11] = [1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0];

/// A decoded notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// "1", "2c" or "3".
    pub version: &'static str,
    /// Community it carried (compare, never log); empty for SNMPv3.
    pub community: Vec<u8>,
    /// SNMPv3: the user it was authenticated as (`None` for v1/v2c).
    pub user: Option<String>,
    /// The notification's OID (v1 traps mapped as RFC 3584 section 3.1 says).
    pub trap_oid: Vec<u64>,
    /// Its varbinds (sysUpTime.0 and snmpTrapOID.0 included for v2).
    pub varbinds: Vec<(Vec<u64>, VarValue)>,
    /// For an inform: the Response datagram to send back.
    pub inform_ack: Option<Vec<u8>>,
}

/// A notification from a configured device.
#[derive(Debug, Clone, PartialEq)]
pub struct TrapEvent {
    /// Device id.
    pub device: String,
    /// Where the device is.
    pub location: Location,
    /// Sender address.
    pub source: SocketAddr,
    /// The notification.
    pub notification: Notification,
}

fn arcs(oid: &ObjectIdentifier) -> Vec<u64> {
    oid.iter().map(|a| u64::from(*a)).collect()
}

fn value_of(syntax: &smi2::ObjectSyntax) -> VarValue {
    match syntax {
        smi2::ObjectSyntax::Simple(smi2::SimpleSyntax::Integer(n)) => {
            i64::try_from(n).map_or(VarValue::Other("INTEGER (out of range)"), VarValue::Integer)
        }
        smi2::ObjectSyntax::Simple(smi2::SimpleSyntax::String(s)) => {
            VarValue::OctetString(s.to_vec())
        }
        smi2::ObjectSyntax::Simple(smi2::SimpleSyntax::ObjectId(o)) => {
            VarValue::ObjectIdentifier(arcs(o))
        }
        smi2::ObjectSyntax::ApplicationWide(app) => match app {
            smi2::ApplicationSyntax::Address(a) => {
                let b: &[u8] = &*a.0;
                <[u8; 4]>::try_from(b).map_or(VarValue::Other("IpAddress"), VarValue::IpAddress)
            }
            smi2::ApplicationSyntax::Counter(c) => VarValue::Counter32(c.0),
            smi2::ApplicationSyntax::Ticks(t) => VarValue::Timeticks(t.0),
            smi2::ApplicationSyntax::Arbitrary(_) => VarValue::Other("Opaque"),
            smi2::ApplicationSyntax::BigCounter(c) => VarValue::Counter64(c.0),
            smi2::ApplicationSyntax::Unsigned(g) => VarValue::Gauge32(g.0),
        },
    }
}

fn v2_varbinds(list: &[v2::VarBind]) -> Vec<(Vec<u64>, VarValue)> {
    list.iter()
        .map(|vb| {
            let value = match &vb.value {
                v2::VarBindValue::Value(v) => value_of(v),
                v2::VarBindValue::Unspecified => VarValue::Null,
                v2::VarBindValue::NoSuchObject => VarValue::NoSuchObject,
                v2::VarBindValue::NoSuchInstance => VarValue::NoSuchInstance,
                v2::VarBindValue::EndOfMibView => VarValue::EndOfMibView,
            };
            (arcs(&vb.name), value)
        })
        .collect()
}

/// Decoded varbinds: OID and value.
pub type Varbinds = Vec<(Vec<u64>, VarValue)>;

/// The snmpTrapOID.0 and varbinds of a v2 Trap or InformRequest PDU (v2c and v3).
pub(super) fn v2_notification(pdu: &v2::Pdu) -> Result<(Vec<u64>, Varbinds), String> {
    let varbinds = v2_varbinds(&pdu.variable_bindings);
    let trap_oid = varbinds
        .iter()
        .find(|(oid, _)| oid.as_slice() == SNMP_TRAP_OID)
        .and_then(|(_, v)| match v {
            VarValue::ObjectIdentifier(o) => Some(o.clone()),
            _ => None,
        })
        .ok_or("notification without snmpTrapOID.0")?;
    Ok((trap_oid, varbinds))
}

/// Decodes a v1 Trap, v2c Trap or v2c InformRequest datagram (and builds an inform's
/// acknowledgement). Anything else is an error saying what it was; SNMPv3 messages need
/// the USM state of [`trap_v3::V3Receiver`].
pub fn decode_notification(datagram: &[u8]) -> Result<Notification, String> {
    let header = match rasn::ber::decode::<v2c::Message<rasn::types::Any>>(datagram) {
        Ok(header) => header,
        // A v3 message has a header sequence where v1/v2c have the community.
        Err(_) if rasn::ber::decode::<rasn_snmp::v3::Message>(datagram).is_ok() => {
            return Err("an SNMPv3 message (decoded by trap_v3::V3Receiver)".into())
        }
        Err(e) => return Err(format!("not an SNMP v1/v2c message: {e}")),
    };
    let version = i64::try_from(&header.version).unwrap_or(-1);
    match version {
        0 => {
            let message = rasn::ber::decode::<v1::Message<v1::Pdus>>(datagram)
                .map_err(|e| format!("undecodable SNMPv1 message: {e}"))?;
            let v1::Pdus::Trap(trap) = message.data else {
                return Err("SNMPv1 message is not a Trap".into());
            };
            let generic = i64::try_from(&trap.generic_trap).unwrap_or(-1);
            let specific = i64::try_from(&trap.specific_trap).unwrap_or(0);
            // RFC 3584 3.1: generic traps map to snmpTraps.(generic+1), enterprise-specific
            // ones to enterprise.0.specific.
            let trap_oid = match generic {
                0..=5 => vec![1, 3, 6, 1, 6, 3, 1, 1, 5, generic as u64 + 1],
                _ => {
                    let mut o = arcs(&trap.enterprise);
                    o.extend([0, u64::try_from(specific).unwrap_or(0)]);
                    o
                }
            };
            let varbinds =
                trap.variable_bindings
                    .iter()
                    .map(|vb| {
                        let value = match &vb.value {
                            rasn_smi::v1::ObjectSyntax::Simple(
                                rasn_smi::v1::SimpleSyntax::Number(n),
                            ) => i64::try_from(n)
                                .map_or(VarValue::Other("INTEGER"), VarValue::Integer),
                            rasn_smi::v1::ObjectSyntax::Simple(
                                rasn_smi::v1::SimpleSyntax::String(s),
                            ) => VarValue::OctetString(s.to_vec()),
                            _ => VarValue::Other("SNMPv1 value"),
                        };
                        (arcs(&vb.name), value)
                    })
                    .collect();
            Ok(Notification {
                version: "1",
                community: message.community.to_vec(),
                user: None,
                trap_oid,
                varbinds,
                inform_ack: None,
            })
        }
        1 => {
            let message = rasn::ber::decode::<v2c::Message<v2::Pdus>>(datagram)
                .map_err(|e| format!("undecodable SNMPv2c message: {e}"))?;
            let (pdu, inform) = match message.data {
                v2::Pdus::Trap(v2::Trap(pdu)) => (pdu, false),
                v2::Pdus::InformRequest(v2::InformRequest(pdu)) => (pdu, true),
                _ => return Err("SNMPv2c message is neither a Trap nor an InformRequest".into()),
            };
            let (trap_oid, varbinds) = v2_notification(&pdu)?;
            let inform_ack = if inform {
                let response = v2c::Message {
                    version: message.version.clone(),
                    community: message.community.clone(),
                    data: v2::Pdus::Response(v2::Response(v2::Pdu {
                        request_id: pdu.request_id,
                        error_status: v2::Pdu::ERROR_STATUS_NO_ERROR,
                        error_index: 0,
                        variable_bindings: pdu.variable_bindings.clone(),
                    })),
                };
                Some(
                    rasn::ber::encode(&response)
                        .map_err(|e| format!("encoding the inform acknowledgement: {e}"))?,
                )
            } else {
                None
            };
            Ok(Notification {
                version: "2c",
                community: message.community.to_vec(),
                user: None,
                trap_oid,
                varbinds,
                inform_ack,
            })
        }
        3 => Err("an SNMPv3 message (decoded by trap_v3::V3Receiver)".into()),
        other => Err(format!("unknown SNMP version field {other}")),
    }
}

/// What the listener needs to know, replaced as a whole on reload.
#[derive(Debug, Clone, Default)]
pub struct TrapContext {
    /// Configured devices (SNMP ones are matched by source IP).
    pub devices: Vec<Device>,
    /// Source address → device of `devices` (host names resolved), see [`super::trap_sources`].
    pub sources: super::trap_sources::SourceTable,
    /// Accepted v1/v2c communities.
    pub communities: Vec<String>,
    /// SNMPv3: our engine id and the users accepted.
    pub v3: super::trap_v3::V3Settings,
}

/// Receives notifications on `socket` until `shutdown` turns true: each one from a configured
/// device with an accepted community becomes a [`TrapEvent`] on `out`; informs are then
/// acknowledged. `context` is read for every datagram, so a reload applies at once.
pub async fn listen(
    socket: UdpSocket,
    context: watch::Receiver<std::sync::Arc<TrapContext>>,
    out: mpsc::Sender<TrapEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 65_535];
    let mut v3 = None;
    loop {
        let (len, source) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "SNMP notification socket");
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let context = context.borrow().clone();
        let Some(device) = context.device(source.ip()) else {
            tracing::info!(%source, "SNMP notification from an unknown address dropped");
            continue;
        };
        let datagram = &buf[..len];
        let (notification, ack) = if trap_v3::is_v3(datagram) {
            let receiver = trap_v3::receiver_for(&mut v3, &context.v3);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            match receiver.receive(datagram, now) {
                trap_v3::Outcome::Notification {
                    notification,
                    reply,
                } => (notification, reply),
                trap_v3::Outcome::Discovery { report } => {
                    tracing::debug!(device = %device.id, %source, "SNMPv3 engine discovery or time synchronisation answered");
                    reply(&socket, &report, source, &device.id).await;
                    continue;
                }
                trap_v3::Outcome::Refused { reason, report } => {
                    tracing::warn!(device = %device.id, %source, error = %reason, "SNMPv3 notification dropped");
                    if let Some(report) = report {
                        reply(&socket, &report, source, &device.id).await;
                    }
                    continue;
                }
            }
        } else {
            let notification = match decode_notification(datagram) {
                Ok(n) => n,
                Err(e) => {
                    tracing::info!(device = %device.id, %source, error = %e, "SNMP notification dropped");
                    continue;
                }
            };
            if !context
                .communities
                .iter()
                .any(|c| c.as_bytes() == notification.community.as_slice())
            {
                tracing::info!(device = %device.id, %source, "SNMP notification with a wrong community dropped");
                continue;
            }
            let ack = notification.inform_ack.clone();
            (notification, ack)
        };
        let event = TrapEvent {
            device: device.id.clone(),
            location: device.location.clone(),
            source,
            notification,
        };
        if out.send(event).await.is_err() {
            return;
        }
        if let Some(ack) = ack {
            reply(&socket, &ack, source, &device.id).await;
        }
    }
}

/// Sends an inform acknowledgement or a Report back to the notification's sender.
async fn reply(socket: &UdpSocket, datagram: &[u8], to: SocketAddr, device: &str) {
    if let Err(e) = socket.send_to(datagram, to).await {
        tracing::warn!(device, source = %to, error = %e, "SNMP reply to a notification not sent");
    }
}
