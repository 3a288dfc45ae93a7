//! Simulated SNMP agent (a fake sensor device) on UDP loopback, for the demo and tests.
//!
//! [`SnmpSim::start`] binds `127.0.0.1:0` and serves SNMP v1 and v2c `GetRequest`,
//! `GetNextRequest` and (v2c only) `GetBulkRequest` from an in-memory table of OID → value that
//! tests may change while the simulator runs ([`SnmpSim::set`], [`SnmpSim::remove`]).
//!
//! Invariants:
//! - Every message is decoded and encoded with `rasn-snmp`; this module holds no BER code.
//! - Answering a datagram ([`answer`]) is pure: bytes and a table in, an [`Outcome`] out. The
//!   server task only owns the socket, the delay and the silence switch.
//! - Nothing received from the network can panic the server: datagrams that do not decode as a
//!   v1/v2c message are counted ([`SnmpSim::malformed`]) and dropped; a wrong community is
//!   counted ([`SnmpSim::bad_community`]) and dropped without an answer, like real agents.
//! - The table is ordered by OID arcs (numeric per arc), which is SNMP's lexicographic order,
//!   so GETNEXT is a range lookup.
//! - Dropping the [`SnmpSim`] handle aborts the server task and any delayed answers.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rasn::types::{Any, Integer, ObjectIdentifier, OctetString};
use rasn_smi::{v1 as smi1, v2 as smi2};
use rasn_snmp::{v1, v2, v2c};
use tokio::net::UdpSocket;
use tokio::task::{JoinHandle, JoinSet};

/// Largest answer the simulator sends (the largest UDP payload over IPv4).
const MAX_RESPONSE_BYTES: usize = 65_507;

/// Upper bound on varbinds in one GETBULK answer, so a huge `max-repetitions` cannot make the
/// simulator loop for long; RFC 3416 lets an agent return fewer repetitions than asked.
const MAX_BULK_VARBINDS: usize = 2_048;

/// Receive buffer size: any UDP datagram fits.
const RECV_BUFFER_BYTES: usize = 65_536;

/// A value the simulated device reports for one OID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimValue {
    /// `INTEGER` (SNMP's Integer32; larger values are encoded as is, which strict managers
    /// may reject).
    Integer(i64),
    /// `Gauge32` (same wire type as `Unsigned32`).
    Gauge(u32),
    /// `Counter32`.
    Counter32(u32),
    /// `OCTET STRING`, raw bytes (text or binary such as a MAC address).
    OctetString(Vec<u8>),
    /// `TimeTicks`, hundredths of a second.
    TimeTicks(u32),
}

/// The rack power OIDs the built-in profiles read (`config/profiles/*.toml` quote the MIB
/// lines), as the simulator's helpers serve them.
pub mod power_oids {
    /// PowerNet-MIB rPDU2DeviceStatusPower, PDU 1 (hundredths of kW).
    pub const RPDU2_DEVICE_POWER: &str = "1.3.6.1.4.1.318.1.1.26.4.3.1.5.1";
    /// PowerNet-MIB rPDU2PhaseStatusPower, phase 1 (hundredths of kW).
    pub const RPDU2_PHASE1_POWER: &str = "1.3.6.1.4.1.318.1.1.26.6.3.1.7.1";
    /// PowerNet-MIB rPDU2PhaseStatusCurrent, phase 1 (tenths of A).
    pub const RPDU2_PHASE1_CURRENT: &str = "1.3.6.1.4.1.318.1.1.26.6.3.1.5.1";
    /// PDU2-MIB measurementsInletSensorValue, PDU 1, inlet 1, activePower(5).
    pub const PX2_INLET_POWER: &str = "1.3.6.1.4.1.13742.6.5.2.3.1.4.1.1.5";
    /// PDU2-MIB inletSensorDecimalDigits, PDU 1, inlet 1, activePower(5).
    pub const PX2_INLET_POWER_DIGITS: &str = "1.3.6.1.4.1.13742.6.3.3.4.1.7.1.1.5";
    /// PDU2-MIB measurementsInletSensorValue, PDU 1, inlet 1, rmsCurrent(1).
    pub const PX2_INLET_CURRENT: &str = "1.3.6.1.4.1.13742.6.5.2.3.1.4.1.1.1";
    /// PDU2-MIB inletSensorDecimalDigits, PDU 1, inlet 1, rmsCurrent(1).
    pub const PX2_INLET_CURRENT_DIGITS: &str = "1.3.6.1.4.1.13742.6.3.3.4.1.7.1.1.1";
    /// ENTITY-SENSOR-MIB entPhySensorEntry (columns 1 type … 5 operStatus).
    pub const ENT_PHY_SENSOR_ENTRY: &str = "1.3.6.1.2.1.99.1.1.1";
    /// ENTITY-MIB entPhysicalName column.
    pub const ENT_PHYSICAL_NAME: &str = "1.3.6.1.2.1.47.1.1.1.1.7";
    /// UPS-MIB upsOutputPower, line 1 (W).
    pub const UPS_OUTPUT_POWER: &str = "1.3.6.1.2.1.33.1.4.4.1.4.1";
    /// UPS-MIB upsOutputCurrent, line 1 (0.1 A).
    pub const UPS_OUTPUT_CURRENT: &str = "1.3.6.1.2.1.33.1.4.4.1.3.1";
}

/// A dotted OID string that is not a valid SNMP object identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadOid {
    /// The text as given by the caller.
    text: String,
    /// What is wrong with it.
    reason: &'static str,
}

impl fmt::Display for BadOid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid OID {:?}: {}", self.text, self.reason)
    }
}

impl std::error::Error for BadOid {}

/// Parses a dotted OID such as `1.3.6.1.2.1.1.3.0` (a leading dot is accepted, as net-snmp
/// prints them) into arcs that rasn can encode.
fn parse_oid(text: &str) -> Result<Vec<u32>, BadOid> {
    let bad = |reason| BadOid {
        text: text.to_owned(),
        reason,
    };
    let trimmed = text.trim();
    let trimmed = trimmed.strip_prefix('.').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Err(bad("empty"));
    }
    let arcs = trimmed
        .split('.')
        .map(|arc| arc.parse::<u32>())
        .collect::<Result<Vec<u32>, _>>()
        .map_err(|_| bad("every arc must be a number between 0 and 4294967295"))?;
    if arcs.len() < 2 {
        return Err(bad("an OID has at least two arcs"));
    }
    if ObjectIdentifier::new(arcs.clone()).is_none() {
        return Err(bad(
            "first arc must be 0, 1 or 2, and the second at most 39 when the first is 0 or 1",
        ));
    }
    Ok(arcs)
}

/// State shared between the handle and the server task.
struct Shared {
    /// The simulated MIB: value per OID, ordered by arcs so GETNEXT is a range lookup.
    values: Mutex<BTreeMap<Vec<u32>, SimValue>>,
    /// Community string a request must carry to be answered.
    community: Vec<u8>,
    /// Datagrams that did not decode as an SNMP v1/v2c message (v3 included).
    malformed: AtomicU64,
    /// Well-formed requests dropped because of a wrong community.
    bad_community: AtomicU64,
    /// Answers actually sent, so tests can count polls.
    answered: AtomicU64,
    /// Time the device takes to answer; zero answers immediately.
    delay: Mutex<Duration>,
    /// When set, the device is dead: datagrams are read and dropped, nothing is counted.
    silent: AtomicBool,
    /// Largest v2c GET answer sent; a larger one becomes tooBig (a device's message size).
    max_response: AtomicUsize,
    /// When `Some`, the arrival time of every well-formed request with the right community
    /// (answered or not), for benchmarks that measure the poll cadence a device sees.
    arrivals: Mutex<Option<Vec<Instant>>>,
}

impl Shared {
    /// Locks the table; a panic elsewhere while holding the lock cannot corrupt a `BTreeMap`
    /// insert/remove in a way we care about, so poisoning is ignored.
    fn values(&self) -> MutexGuard<'_, BTreeMap<Vec<u32>, SimValue>> {
        self.values
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Locks the arrival log; poisoning is ignored (a `Vec` push cannot be left half done).
    fn arrivals(&self) -> MutexGuard<'_, Option<Vec<Instant>>> {
        self.arrivals
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Current answer delay.
    fn delay(&self) -> Duration {
        *self
            .delay
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Handle on a running simulated SNMP agent; dropping it stops the agent.
pub struct SnmpSim {
    /// Address the agent listens on (loopback, ephemeral port).
    addr: SocketAddr,
    /// State shared with the server task.
    shared: Arc<Shared>,
    /// The server task, aborted on drop.
    task: JoinHandle<()>,
}

impl fmt::Debug for SnmpSim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnmpSim")
            .field("addr", &self.addr)
            .field("oids", &self.shared.values().len())
            .finish_non_exhaustive()
    }
}

impl SnmpSim {
    /// Binds `127.0.0.1:0` and starts answering requests that carry `community`, with an empty
    /// table. Must be called inside a tokio runtime.
    pub async fn start(community: &str) -> std::io::Result<SnmpSim> {
        let socket = Arc::new(UdpSocket::bind(("127.0.0.1", 0)).await?);
        let addr = socket.local_addr()?;
        let shared = Arc::new(Shared {
            values: Mutex::new(BTreeMap::new()),
            community: community.as_bytes().to_vec(),
            malformed: AtomicU64::new(0),
            bad_community: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            delay: Mutex::new(Duration::ZERO),
            silent: AtomicBool::new(false),
            max_response: AtomicUsize::new(MAX_RESPONSE_BYTES),
            arrivals: Mutex::new(None),
        });
        let task = tokio::spawn(serve(socket, Arc::clone(&shared)));
        Ok(SnmpSim { addr, shared, task })
    }

    /// Address to poll (`127.0.0.1:<port>`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets (or replaces) the value of `oid`, a dotted string such as
    /// `"1.3.6.1.4.1.318.1.1.26.10.2.2.1.8.1"`. Seen by the next request.
    pub fn set(&self, oid: &str, value: SimValue) -> Result<(), BadOid> {
        let arcs = parse_oid(oid)?;
        self.shared.values().insert(arcs, value);
        Ok(())
    }

    /// Serves an APC rPDU2's rack power the way PowerNet-MIB encodes it (see
    /// `config/profiles/apc-rpdu2.toml`): device and phase-1 power in hundredths of kW
    /// (rPDU2DeviceStatusPower, rPDU2PhaseStatusPower) and phase-1 current in tenths of A
    /// (rPDU2PhaseStatusCurrent).
    pub fn set_rpdu2_power(&self, kw: f64, amps: f64) -> Result<(), BadOid> {
        let hundredths = SimValue::Integer((kw * 100.0).round() as i64);
        self.set(power_oids::RPDU2_DEVICE_POWER, hundredths.clone())?;
        self.set(power_oids::RPDU2_PHASE1_POWER, hundredths)?;
        self.set(
            power_oids::RPDU2_PHASE1_CURRENT,
            SimValue::Integer((amps * 10.0).round() as i64),
        )
    }

    /// Serves a Raritan PX2's inlet 1 active power (W) and RMS current (A) the way PDU2-MIB
    /// encodes them: measurementsInletSensorValue as an unsigned integer scaled by
    /// inletSensorDecimalDigits (0 digits for watts, 3 for amperes here).
    pub fn set_px2_inlet_power(&self, kw: f64, amps: f64) -> Result<(), BadOid> {
        let gauge = |v: f64| SimValue::Gauge(v.round().clamp(0.0, f64::from(u32::MAX)) as u32);
        self.set(power_oids::PX2_INLET_POWER, gauge(kw * 1000.0))?;
        self.set(power_oids::PX2_INLET_POWER_DIGITS, SimValue::Gauge(0))?;
        self.set(power_oids::PX2_INLET_CURRENT, gauge(amps * 1000.0))?;
        self.set(power_oids::PX2_INLET_CURRENT_DIGITS, SimValue::Gauge(3))
    }

    /// Serves two ENTITY-SENSOR-MIB rows named `{name}-power` (watts(6), scale units(9),
    /// precision 1: tenths of W) and `{name}-current` (amperes(5), scale milli(8), precision
    /// 0: mA) at entPhysicalIndex `index` and `index + 1`, both operStatus ok(1).
    pub fn set_entity_power_rows(
        &self,
        index: u32,
        name: &str,
        kw: f64,
        amps: f64,
    ) -> Result<(), BadOid> {
        let rows = [
            (
                index,
                format!("{name}-power"),
                6,
                9,
                1,
                (kw * 10_000.0).round(),
            ),
            (
                index + 1,
                format!("{name}-current"),
                5,
                8,
                0,
                (amps * 1000.0).round(),
            ),
        ];
        for (i, row_name, ty, scale, precision, value) in rows {
            let column = |c: u32| format!("{}.{c}.{i}", power_oids::ENT_PHY_SENSOR_ENTRY);
            self.set(&column(1), SimValue::Integer(ty))?;
            self.set(&column(2), SimValue::Integer(scale))?;
            self.set(&column(3), SimValue::Integer(precision))?;
            self.set(&column(4), SimValue::Integer(value as i64))?;
            self.set(&column(5), SimValue::Integer(1))?;
            self.set(
                &format!("{}.{i}", power_oids::ENT_PHYSICAL_NAME),
                SimValue::OctetString(row_name.into_bytes()),
            )?;
        }
        Ok(())
    }

    /// Serves UPS-MIB output line 1: upsOutputPower in W, upsOutputCurrent in 0.1 A.
    pub fn set_ups_output(&self, kw: f64, amps: f64) -> Result<(), BadOid> {
        self.set(
            power_oids::UPS_OUTPUT_POWER,
            SimValue::Integer((kw * 1000.0).round() as i64),
        )?;
        self.set(
            power_oids::UPS_OUTPUT_CURRENT,
            SimValue::Integer((amps * 10.0).round() as i64),
        )
    }

    /// Removes `oid` from the table, returning its previous value if it had one.
    pub fn remove(&self, oid: &str) -> Result<Option<SimValue>, BadOid> {
        let arcs = parse_oid(oid)?;
        Ok(self.shared.values().remove(&arcs))
    }

    /// Makes every answer wait `delay` before it is sent (a slow device); zero disables it.
    /// Answers are computed when the request arrives; requests are still read meanwhile.
    pub fn set_delay(&self, delay: Duration) {
        *self
            .shared
            .delay
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = delay;
    }

    /// Limits a GET answer to `bytes` (a device's message size): a larger answer becomes
    /// tooBig with no varbinds, as RFC 3416 4.2.1 says.
    pub fn set_max_response_bytes(&self, bytes: usize) {
        self.shared.max_response.store(bytes, Ordering::SeqCst);
    }

    /// When `silent` is true the device plays dead: requests are read and dropped without an
    /// answer (also answers still waiting on [`SnmpSim::set_delay`] are not sent).
    pub fn set_silent(&self, silent: bool) {
        self.shared.silent.store(silent, Ordering::SeqCst);
    }

    /// Number of datagrams that could not be decoded as an SNMP v1/v2c message.
    pub fn malformed(&self) -> u64 {
        self.shared.malformed.load(Ordering::SeqCst)
    }

    /// Number of well-formed requests dropped because their community was wrong.
    pub fn bad_community(&self) -> u64 {
        self.shared.bad_community.load(Ordering::SeqCst)
    }

    /// Number of answers sent so far.
    pub fn answered(&self) -> u64 {
        self.shared.answered.load(Ordering::SeqCst)
    }

    /// Starts (or restarts, emptied) recording the arrival time of every request that carries
    /// the right community and decodes, silent or not; read them with
    /// [`SnmpSim::take_arrivals`].
    pub fn record_arrivals(&self) {
        *self.arrivals() = Some(Vec::new());
    }

    /// The arrival times recorded since [`SnmpSim::record_arrivals`] (or the previous take),
    /// oldest first; empty when recording is off.
    pub fn take_arrivals(&self) -> Vec<Instant> {
        self.arrivals()
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Locks the arrival log (poisoning ignored, as for the table).
    fn arrivals(&self) -> MutexGuard<'_, Option<Vec<Instant>>> {
        self.shared.arrivals()
    }
}

impl Drop for SnmpSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Server loop: read a datagram, answer it (now or after the delay), repeat until aborted.
/// Delayed answers live in a `JoinSet` owned by this task, so aborting it cancels them too.
/// The tooBig answer (same request-id, no varbinds: RFC 3416 4.2.1) for a v2c Response that
/// exceeds the simulated device's message size; `None` for anything else.
fn too_big_instead(reply: &[u8]) -> Option<Vec<u8>> {
    let message = rasn::ber::decode::<v2c::Message<v2::Pdus>>(reply).ok()?;
    let v2::Pdus::Response(v2::Response(pdu)) = message.data else {
        return None;
    };
    let too_big = v2c::Message {
        version: message.version,
        community: message.community,
        data: v2::Pdus::Response(v2::Response(v2::Pdu {
            request_id: pdu.request_id,
            error_status: v2::Pdu::ERROR_STATUS_TOO_BIG,
            error_index: 0,
            variable_bindings: Vec::new(),
        })),
    };
    rasn::ber::encode(&too_big).ok()
}

async fn serve(socket: Arc<UdpSocket>, shared: Arc<Shared>) {
    let mut buf = vec![0u8; RECV_BUFFER_BYTES];
    let mut delayed = JoinSet::new();
    loop {
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(err) => {
                tracing::debug!(%err, "snmp sim: receive failed");
                continue;
            }
        };
        let arrived = Instant::now();
        while delayed.try_join_next().is_some() {}
        if shared.silent.load(Ordering::SeqCst) {
            if let Some(log) = shared.arrivals().as_mut() {
                log.push(arrived);
            }
            continue;
        }
        let datagram = buf.get(..len).unwrap_or_default();
        let outcome = answer(&shared.values(), &shared.community, datagram);
        if let (Outcome::Reply(_), Some(log)) = (&outcome, shared.arrivals().as_mut()) {
            log.push(arrived);
        }
        let reply = match outcome {
            Outcome::Reply(reply) if reply.len() > shared.max_response.load(Ordering::SeqCst) => {
                too_big_instead(&reply).unwrap_or(reply)
            }
            Outcome::Reply(reply) => reply,
            Outcome::Malformed(reason) => {
                shared.malformed.fetch_add(1, Ordering::SeqCst);
                tracing::debug!(%peer, reason, "snmp sim: malformed datagram dropped");
                continue;
            }
            Outcome::BadCommunity => {
                shared.bad_community.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            Outcome::Ignored(reason) => {
                tracing::debug!(%peer, reason, "snmp sim: datagram ignored");
                continue;
            }
        };
        let delay = shared.delay();
        if delay.is_zero() {
            send_reply(&socket, &shared, &reply, peer).await;
        } else {
            let socket = Arc::clone(&socket);
            let shared = Arc::clone(&shared);
            delayed.spawn(async move {
                tokio::time::sleep(delay).await;
                if !shared.silent.load(Ordering::SeqCst) {
                    send_reply(&socket, &shared, &reply, peer).await;
                }
            });
        }
    }
}

/// Sends one answer and counts it.
async fn send_reply(socket: &UdpSocket, shared: &Shared, reply: &[u8], peer: SocketAddr) {
    match socket.send_to(reply, peer).await {
        Ok(_) => {
            shared.answered.fetch_add(1, Ordering::SeqCst);
        }
        Err(err) => tracing::debug!(%peer, %err, "snmp sim: send failed"),
    }
}

/// What to do with one received datagram.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Send these bytes back to the sender.
    Reply(Vec<u8>),
    /// Not an SNMP v1/v2c message we can decode; the reason is for logs.
    Malformed(&'static str),
    /// A request with the wrong community: dropped silently.
    BadCommunity,
    /// Well-formed but not something an agent answers (a response, a trap, ...).
    Ignored(&'static str),
}

/// SNMP version numbers as carried in the message header.
const VERSION_1: i64 = 0;
/// See [`VERSION_1`].
const VERSION_2C: i64 = 1;

/// Answers one datagram against `values`. Pure: no I/O, no clock.
///
/// The version is read first by decoding the datagram as `v2c::Message<Any>` (version,
/// community, then any PDU), then the whole datagram is decoded again with the v1 or v2c types.
fn answer(values: &BTreeMap<Vec<u32>, SimValue>, community: &[u8], datagram: &[u8]) -> Outcome {
    let Ok(header) = rasn::ber::decode::<v2c::Message<Any>>(datagram) else {
        return Outcome::Malformed("not an SNMP v1/v2c message");
    };
    match i64::try_from(&header.version) {
        Ok(VERSION_1) => match rasn::ber::decode::<v1::Message<v1::Pdus>>(datagram) {
            Ok(message) if message.community.as_ref() != community => Outcome::BadCommunity,
            Ok(message) => answer_v1(values, message),
            Err(_) => Outcome::Malformed("undecodable SNMPv1 PDU"),
        },
        Ok(VERSION_2C) => match rasn::ber::decode::<v2c::Message<v2::Pdus>>(datagram) {
            Ok(message) if message.community.as_ref() != community => Outcome::BadCommunity,
            Ok(message) => answer_v2c(values, message),
            Err(_) => Outcome::Malformed("undecodable SNMPv2c PDU"),
        },
        _ => Outcome::Malformed("unsupported SNMP version"),
    }
}

/// Value of `oid` itself, if the table has it.
fn lookup<'a>(values: &'a BTreeMap<Vec<u32>, SimValue>, oid: &[u32]) -> Option<&'a SimValue> {
    values.get(oid)
}

/// First entry strictly after `oid` in SNMP order.
fn lookup_next<'a>(
    values: &'a BTreeMap<Vec<u32>, SimValue>,
    oid: &[u32],
) -> Option<(&'a Vec<u32>, &'a SimValue)> {
    values
        .range::<[u32], _>((Bound::Excluded(oid), Bound::Unbounded))
        .next()
}

/// Builds an object identifier from arcs that came from the table or from a decoded request,
/// so they are valid.
fn object_id(arcs: &[u32]) -> ObjectIdentifier {
    ObjectIdentifier::new_unchecked(arcs.to_vec().into())
}

/// 1-based varbind position for `error-index`.
fn error_index(position: usize) -> u32 {
    u32::try_from(position.saturating_add(1)).unwrap_or(u32::MAX)
}

/// Encodes an answer, or reports why not (never expected: our values always encode).
fn encode<T: rasn::Encode>(message: &T) -> Option<Vec<u8>> {
    match rasn::ber::encode(message) {
        Ok(bytes) => Some(bytes),
        Err(err) => {
            tracing::warn!(%err, "snmp sim: cannot encode answer");
            None
        }
    }
}

/// SMIv1 syntax of a value (used in v1 answers).
fn v1_syntax(value: &SimValue) -> smi1::ObjectSyntax {
    match value {
        SimValue::Integer(n) => Integer::from(*n).into(),
        SimValue::Gauge(n) => smi1::Gauge(*n).into(),
        SimValue::Counter32(n) => smi1::Counter(*n).into(),
        SimValue::OctetString(bytes) => OctetString::from(bytes.clone()).into(),
        SimValue::TimeTicks(n) => smi1::TimeTicks(*n).into(),
    }
}

/// SMIv2 syntax of a value (used in v2c answers).
fn v2_syntax(value: &SimValue) -> smi2::ObjectSyntax {
    match value {
        SimValue::Integer(n) => {
            smi2::ObjectSyntax::Simple(smi2::SimpleSyntax::Integer(Integer::from(*n)))
        }
        SimValue::Gauge(n) => {
            smi2::ObjectSyntax::ApplicationWide(smi2::ApplicationSyntax::Unsigned(smi1::Gauge(*n)))
        }
        SimValue::Counter32(n) => {
            smi2::ObjectSyntax::ApplicationWide(smi2::ApplicationSyntax::Counter(smi1::Counter(*n)))
        }
        SimValue::OctetString(bytes) => {
            smi2::ObjectSyntax::Simple(smi2::SimpleSyntax::String(OctetString::from(bytes.clone())))
        }
        SimValue::TimeTicks(n) => {
            smi2::ObjectSyntax::ApplicationWide(smi2::ApplicationSyntax::Ticks(smi1::TimeTicks(*n)))
        }
    }
}

/// Answers an SNMPv1 message: GET and GETNEXT; any missing object makes the whole request
/// fail with `noSuchName` pointing at the first failing varbind (RFC 1157 §4.1.2, §4.1.3).
fn answer_v1(values: &BTreeMap<Vec<u32>, SimValue>, message: v1::Message<v1::Pdus>) -> Outcome {
    let (request, next) = match message.data {
        v1::Pdus::GetRequest(v1::GetRequest(pdu)) => (pdu, false),
        v1::Pdus::GetNextRequest(v1::GetNextRequest(pdu)) => (pdu, true),
        v1::Pdus::SetRequest(v1::SetRequest(pdu)) => {
            // Read-only device: RFC 1157 agents answer noSuchName for objects they won't write.
            let response = v1::Pdu {
                error_status: Integer::from(v1::Pdu::ERROR_STATUS_NO_SUCH_NAME),
                error_index: Integer::from(1u32),
                ..pdu
            };
            return reply_v1(message.community, response);
        }
        v1::Pdus::GetResponse(_) => return Outcome::Ignored("SNMPv1 GetResponse"),
        v1::Pdus::Trap(_) => return Outcome::Ignored("SNMPv1 Trap"),
    };
    let mut bindings = Vec::with_capacity(request.variable_bindings.len());
    let mut missing = None;
    for (position, binding) in request.variable_bindings.iter().enumerate() {
        let found = if next {
            lookup_next(values, &binding.name).map(|(oid, value)| (object_id(oid), value))
        } else {
            lookup(values, &binding.name).map(|value| (binding.name.clone(), value))
        };
        let Some((name, value)) = found else {
            missing = Some(position);
            break;
        };
        bindings.push(v1::VarBind {
            name,
            value: v1_syntax(value),
        });
    }
    if let Some(position) = missing {
        let response = v1::Pdu {
            error_status: Integer::from(v1::Pdu::ERROR_STATUS_NO_SUCH_NAME),
            error_index: Integer::from(error_index(position)),
            ..request
        };
        return reply_v1(message.community, response);
    }
    let response = v1::Pdu {
        request_id: request.request_id.clone(),
        error_status: Integer::from(v1::Pdu::ERROR_STATUS_NO_ERROR),
        error_index: Integer::ZERO,
        variable_bindings: bindings,
    };
    let fallback = v1::Pdu {
        error_status: Integer::from(v1::Pdu::ERROR_STATUS_TOO_BIG),
        error_index: Integer::ZERO,
        ..request
    };
    match reply_v1(message.community.clone(), response) {
        Outcome::Reply(bytes) if bytes.len() > MAX_RESPONSE_BYTES => {
            reply_v1(message.community, fallback)
        }
        other => other,
    }
}

/// Wraps a v1 PDU in a GetResponse message and encodes it.
fn reply_v1(community: OctetString, pdu: v1::Pdu) -> Outcome {
    let message = v1::Message {
        version: Integer::from(VERSION_1),
        community,
        data: v1::Pdus::GetResponse(v1::GetResponse(pdu)),
    };
    match encode(&message) {
        Some(bytes) => Outcome::Reply(bytes),
        None => Outcome::Ignored("SNMPv1 answer could not be encoded"),
    }
}

/// v2c answer for GET of one name.
fn get_v2(values: &BTreeMap<Vec<u32>, SimValue>, name: &ObjectIdentifier) -> v2::VarBind {
    let value = match lookup(values, name) {
        Some(value) => v2::VarBindValue::Value(v2_syntax(value)),
        None => v2::VarBindValue::NoSuchObject,
    };
    v2::VarBind {
        name: name.clone(),
        value,
    }
}

/// v2c answer for GETNEXT of one name: the next object, or `endOfMibView` under the same name.
fn get_next_v2(values: &BTreeMap<Vec<u32>, SimValue>, name: &ObjectIdentifier) -> v2::VarBind {
    match lookup_next(values, name) {
        Some((oid, value)) => v2::VarBind {
            name: object_id(oid),
            value: v2::VarBindValue::Value(v2_syntax(value)),
        },
        None => v2::VarBind {
            name: name.clone(),
            value: v2::VarBindValue::EndOfMibView,
        },
    }
}

/// GETBULK varbinds per RFC 3416 §4.2.3, with at most `max_repetitions` rows; stops after the
/// first row where every repeater is at `endOfMibView`.
fn get_bulk_v2(
    values: &BTreeMap<Vec<u32>, SimValue>,
    bulk: &v2::BulkPdu,
    max_repetitions: usize,
) -> Vec<v2::VarBind> {
    let requested = &bulk.variable_bindings;
    let non_repeaters = usize::try_from(bulk.non_repeaters)
        .unwrap_or(usize::MAX)
        .min(requested.len());
    let (singles, repeaters) = requested.split_at(non_repeaters);
    let mut out: Vec<v2::VarBind> = singles
        .iter()
        .map(|binding| get_next_v2(values, &binding.name))
        .collect();
    let mut cursors: Vec<ObjectIdentifier> = repeaters.iter().map(|b| b.name.clone()).collect();
    for _ in 0..max_repetitions {
        if cursors.is_empty() {
            break;
        }
        let row: Vec<v2::VarBind> = cursors
            .iter()
            .map(|cursor| get_next_v2(values, cursor))
            .collect();
        let all_ended = row
            .iter()
            .all(|binding| binding.value == v2::VarBindValue::EndOfMibView);
        cursors = row.iter().map(|binding| binding.name.clone()).collect();
        out.extend(row);
        if all_ended || out.len() >= MAX_BULK_VARBINDS {
            break;
        }
    }
    out
}

/// Answers an SNMPv2c message: GET, GETNEXT and GETBULK with per-varbind exceptions
/// (`noSuchObject`, `endOfMibView`).
fn answer_v2c(values: &BTreeMap<Vec<u32>, SimValue>, message: v2c::Message<v2::Pdus>) -> Outcome {
    let community = message.community;
    let (request_id, bindings) = match message.data {
        v2::Pdus::GetRequest(v2::GetRequest(pdu)) => {
            let bindings = pdu
                .variable_bindings
                .iter()
                .map(|binding| get_v2(values, &binding.name))
                .collect();
            (pdu.request_id, bindings)
        }
        v2::Pdus::GetNextRequest(v2::GetNextRequest(pdu)) => {
            let bindings = pdu
                .variable_bindings
                .iter()
                .map(|binding| get_next_v2(values, &binding.name))
                .collect();
            (pdu.request_id, bindings)
        }
        v2::Pdus::GetBulkRequest(v2::GetBulkRequest(bulk)) => {
            return answer_bulk_v2c(values, community, &bulk);
        }
        v2::Pdus::SetRequest(v2::SetRequest(pdu)) => {
            // Read-only device, as a read-only community on net-snmp: noAccess.
            let response = v2::Pdu {
                error_status: v2::Pdu::ERROR_STATUS_NO_ACCESS,
                error_index: 1,
                ..pdu
            };
            return reply_v2c(community, response);
        }
        v2::Pdus::Response(_) => return Outcome::Ignored("SNMPv2c Response"),
        v2::Pdus::InformRequest(_) => return Outcome::Ignored("SNMPv2c InformRequest"),
        v2::Pdus::Trap(_) => return Outcome::Ignored("SNMPv2c Trap"),
        v2::Pdus::Report(_) => return Outcome::Ignored("SNMPv2c Report"),
    };
    let response = v2::Pdu {
        request_id,
        error_status: v2::Pdu::ERROR_STATUS_NO_ERROR,
        error_index: 0,
        variable_bindings: bindings,
    };
    match reply_v2c(community.clone(), response) {
        Outcome::Reply(bytes) if bytes.len() > MAX_RESPONSE_BYTES => {
            // RFC 3416 §4.2.1: tooBig answers carry no varbinds.
            let too_big = v2::Pdu {
                request_id,
                error_status: v2::Pdu::ERROR_STATUS_TOO_BIG,
                error_index: 0,
                variable_bindings: Vec::new(),
            };
            reply_v2c(community, too_big)
        }
        other => other,
    }
}

/// Answers a GETBULK, halving the repetitions until the answer fits in one datagram.
fn answer_bulk_v2c(
    values: &BTreeMap<Vec<u32>, SimValue>,
    community: OctetString,
    bulk: &v2::BulkPdu,
) -> Outcome {
    let mut repetitions = usize::try_from(bulk.max_repetitions).unwrap_or(usize::MAX);
    loop {
        let response = v2::Pdu {
            request_id: bulk.request_id,
            error_status: v2::Pdu::ERROR_STATUS_NO_ERROR,
            error_index: 0,
            variable_bindings: get_bulk_v2(values, bulk, repetitions),
        };
        match reply_v2c(community.clone(), response) {
            Outcome::Reply(bytes) if bytes.len() > MAX_RESPONSE_BYTES && repetitions > 0 => {
                repetitions /= 2;
            }
            Outcome::Reply(bytes) if bytes.len() > MAX_RESPONSE_BYTES => {
                let too_big = v2::Pdu {
                    request_id: bulk.request_id,
                    error_status: v2::Pdu::ERROR_STATUS_TOO_BIG,
                    error_index: 0,
                    variable_bindings: Vec::new(),
                };
                return reply_v2c(community, too_big);
            }
            other => return other,
        }
    }
}

/// Wraps a v2 PDU in a Response message and encodes it.
fn reply_v2c(community: OctetString, pdu: v2::Pdu) -> Outcome {
    let message = v2c::Message {
        version: Integer::from(VERSION_2C),
        community,
        data: v2::Pdus::Response(v2::Response(pdu)),
    };
    match encode(&message) {
        Some(bytes) => Outcome::Reply(bytes),
        None => Outcome::Ignored("SNMPv2c answer could not be encoded"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use snmp2::{AsyncSession, Oid, Value};
    use tokio::time::timeout;

    /// Per-request timeout for answers that must come.
    const ANSWER: Duration = Duration::from_secs(2);
    /// Timeout for answers that must not come.
    const NO_ANSWER: Duration = Duration::from_millis(300);

    const TEMP: &str = "1.3.6.1.4.1.318.1.1.26.10.2.2.1.8.1";
    const HUMIDITY: &str = "1.3.6.1.4.1.318.1.1.26.10.2.2.1.10.1";
    const NAME: &str = "1.3.6.1.4.1.318.1.1.26.10.2.2.1.3.1";
    const UPTIME: &str = "1.3.6.1.2.1.1.3.0";

    fn oid(text: &str) -> Oid<'static> {
        let arcs: Vec<u64> = parse_oid(text)
            .expect("test OID")
            .into_iter()
            .map(u64::from)
            .collect();
        Oid::from(&arcs).expect("snmp2 OID")
    }

    /// A simulator with a small APC-like sensor table.
    async fn sensor_sim() -> SnmpSim {
        let sim = SnmpSim::start("public").await.expect("start sim");
        sim.set(TEMP, SimValue::Integer(235)).expect("set");
        sim.set(HUMIDITY, SimValue::Gauge(41)).expect("set");
        sim.set(NAME, SimValue::OctetString(b"Rack A1 inlet".to_vec()))
            .expect("set");
        sim.set(UPTIME, SimValue::TimeTicks(123_456)).expect("set");
        sim
    }

    /// snmp2 sessions carry a 64 KiB receive buffer inline: boxed, so test futures holding
    /// several of them don't overflow the test thread's stack.
    async fn v2c_session(sim: &SnmpSim, community: &str) -> Box<AsyncSession> {
        let session = AsyncSession::new_v2c(sim.addr(), community.as_bytes(), 0)
            .await
            .expect("snmp2 session");
        Box::new(session)
    }

    /// Owned copy of a response value, so assertions don't fight snmp2's borrows.
    #[derive(Debug, PartialEq)]
    enum Got {
        Int(i64),
        Unsigned(u32),
        Counter(u32),
        Ticks(u32),
        Bytes(Vec<u8>),
        NoSuchObject,
        EndOfMibView,
        Other(String),
    }

    fn got(value: &Value<'_>) -> Got {
        match value {
            Value::Integer(n) => Got::Int(*n),
            Value::Unsigned32(n) => Got::Unsigned(*n),
            Value::Counter32(n) => Got::Counter(*n),
            Value::Timeticks(n) => Got::Ticks(*n),
            Value::OctetString(bytes) => Got::Bytes(bytes.to_vec()),
            Value::NoSuchObject => Got::NoSuchObject,
            Value::EndOfMibView => Got::EndOfMibView,
            other => Got::Other(format!("{other:?}")),
        }
    }

    /// (error status, error index, [(oid, value)]) of one response.
    fn rows(pdu: &snmp2::Pdu<'_>) -> (u32, u32, Vec<(String, Got)>) {
        let rows = pdu
            .varbinds
            .clone()
            .map(|(name, value)| (name.to_id_string(), got(&value)))
            .collect();
        (pdu.error_status, pdu.error_index, rows)
    }

    async fn get(session: &mut AsyncSession, name: &str) -> (u32, u32, Vec<(String, Got)>) {
        let pdu = timeout(ANSWER, session.get(&oid(name)))
            .await
            .expect("answer in time")
            .expect("valid answer");
        rows(&pdu)
    }

    #[tokio::test]
    async fn snmp_sim_v2c_get_integer_gauge_string_ticks() {
        let sim = sensor_sim().await;
        let mut session = v2c_session(&sim, "public").await;
        assert_eq!(
            get(&mut session, TEMP).await,
            (0, 0, vec![(TEMP.into(), Got::Int(235))])
        );
        assert_eq!(
            get(&mut session, HUMIDITY).await,
            (0, 0, vec![(HUMIDITY.into(), Got::Unsigned(41))])
        );
        assert_eq!(
            get(&mut session, NAME).await,
            (
                0,
                0,
                vec![(NAME.into(), Got::Bytes(b"Rack A1 inlet".to_vec()))]
            )
        );
        assert_eq!(
            get(&mut session, UPTIME).await,
            (0, 0, vec![(UPTIME.into(), Got::Ticks(123_456))])
        );
        sim.set(UPTIME, SimValue::Counter32(7)).expect("set");
        assert_eq!(
            get(&mut session, UPTIME).await,
            (0, 0, vec![(UPTIME.into(), Got::Counter(7))])
        );
        sim.set(TEMP, SimValue::Integer(-40)).expect("set");
        assert_eq!(
            get(&mut session, TEMP).await,
            (0, 0, vec![(TEMP.into(), Got::Int(-40))])
        );
        assert_eq!(sim.answered(), 6);
    }

    #[tokio::test]
    async fn snmp_sim_v2c_get_many_mixes_values_and_no_such_object() {
        let sim = sensor_sim().await;
        let mut session = v2c_session(&sim, "public").await;
        let missing = "1.3.6.1.4.1.318.1.1.26.10.2.2.1.8.2";
        let pdu = timeout(ANSWER, session.get_many(&[&oid(TEMP), &oid(missing)]))
            .await
            .expect("answer in time")
            .expect("valid answer");
        assert_eq!(
            rows(&pdu),
            (
                0,
                0,
                vec![
                    (TEMP.into(), Got::Int(235)),
                    (missing.into(), Got::NoSuchObject)
                ]
            )
        );
    }

    #[tokio::test]
    async fn snmp_sim_v2c_unknown_oid_is_no_such_object() {
        let sim = sensor_sim().await;
        let mut session = v2c_session(&sim, "public").await;
        let missing = "1.3.6.1.4.1.318.1.1.26.10.2.2.1.8.9";
        assert_eq!(
            get(&mut session, missing).await,
            (0, 0, vec![(missing.into(), Got::NoSuchObject)])
        );
        sim.remove(TEMP).expect("remove");
        assert_eq!(
            get(&mut session, TEMP).await,
            (0, 0, vec![(TEMP.into(), Got::NoSuchObject)])
        );
    }

    #[tokio::test]
    async fn snmp_sim_v2c_getnext_walks_in_numeric_order_then_end_of_mib() {
        let sim = SnmpSim::start("public").await.expect("start");
        // Inserted out of order; .10 must come after .9 (numeric, not string, order) and a
        // prefix before its children.
        for (name, n) in [
            ("1.3.6.1.4.1.9.10", 3),
            ("1.3.6.1.4.1.9.9", 2),
            ("1.3.6.1.4.1.9", 1),
            ("1.3.6.1.4.1.9.9.1", 21),
        ] {
            sim.set(name, SimValue::Integer(n)).expect("set");
        }
        let mut session = v2c_session(&sim, "public").await;
        let mut walked = Vec::new();
        let mut cursor = "1.3.6.1.4.1".to_owned();
        loop {
            let pdu = timeout(ANSWER, session.getnext(&oid(&cursor)))
                .await
                .expect("answer in time")
                .expect("valid answer");
            let (status, _, mut row) = rows(&pdu);
            assert_eq!(status, 0);
            let (name, value) = row.pop().expect("one varbind");
            if value == Got::EndOfMibView {
                assert_eq!(name, cursor, "endOfMibView keeps the requested name");
                break;
            }
            walked.push((name.clone(), value));
            cursor = name;
        }
        assert_eq!(
            walked,
            vec![
                ("1.3.6.1.4.1.9".into(), Got::Int(1)),
                ("1.3.6.1.4.1.9.9".into(), Got::Int(2)),
                ("1.3.6.1.4.1.9.9.1".into(), Got::Int(21)),
                ("1.3.6.1.4.1.9.10".into(), Got::Int(3)),
            ]
        );
    }

    #[tokio::test]
    async fn snmp_sim_v2c_getbulk_returns_rows_and_ends() {
        let sim = SnmpSim::start("public").await.expect("start");
        let table = "1.3.6.1.4.1.318.1.1.26.10.2.2.1";
        for index in 1..=3u32 {
            sim.set(
                &format!("{table}.8.{index}"),
                SimValue::Integer(200 + i64::from(index)),
            )
            .expect("set");
            sim.set(&format!("{table}.10.{index}"), SimValue::Gauge(40 + index))
                .expect("set");
        }
        sim.set(UPTIME, SimValue::TimeTicks(5)).expect("set");
        let mut session = v2c_session(&sim, "public").await;

        // One non-repeater (sysUpTime's parent) then two columns walked side by side.
        let pdu = timeout(
            ANSWER,
            session.getbulk(
                &[
                    &oid("1.3.6.1.2.1.1.3"),
                    &oid(&format!("{table}.8")),
                    &oid(&format!("{table}.10")),
                ],
                1,
                3,
            ),
        )
        .await
        .expect("answer in time")
        .expect("valid answer");
        let (status, _, got_rows) = rows(&pdu);
        assert_eq!(status, 0);
        let expected: Vec<(String, Got)> = vec![
            (UPTIME.into(), Got::Ticks(5)),
            (format!("{table}.8.1"), Got::Int(201)),
            (format!("{table}.10.1"), Got::Unsigned(41)),
            (format!("{table}.8.2"), Got::Int(202)),
            (format!("{table}.10.2"), Got::Unsigned(42)),
            (format!("{table}.8.3"), Got::Int(203)),
            (format!("{table}.10.3"), Got::Unsigned(43)),
        ];
        assert_eq!(got_rows, expected);

        // Past the end: the column .10 runs out, then the whole view ends; the answer stops
        // after the first row that is all endOfMibView.
        let pdu = timeout(
            ANSWER,
            session.getbulk(&[&oid(&format!("{table}.10.2"))], 0, 10),
        )
        .await
        .expect("answer in time")
        .expect("valid answer");
        let (_, _, got_rows) = rows(&pdu);
        assert_eq!(
            got_rows,
            vec![
                (format!("{table}.10.3"), Got::Unsigned(43)),
                (format!("{table}.10.3"), Got::EndOfMibView),
            ]
        );
    }

    #[tokio::test]
    async fn snmp_sim_wrong_community_gets_no_answer() {
        let sim = sensor_sim().await;
        let mut session = v2c_session(&sim, "private").await;
        let result = timeout(NO_ANSWER, session.get(&oid(TEMP))).await;
        assert!(result.is_err(), "wrong community must not be answered");
        assert_eq!(sim.bad_community(), 1);
        assert_eq!(sim.answered(), 0);
        assert_eq!(sim.malformed(), 0);
    }

    #[tokio::test]
    async fn snmp_sim_malformed_datagrams_are_counted_and_server_keeps_answering() {
        let sim = sensor_sim().await;
        let raw = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        // Garbage, an empty datagram, a truncated SEQUENCE, and a valid-looking header with an
        // unsupported version (3 without a v3 body).
        let bad: [&[u8]; 4] = [
            b"\xde\xad\xbe\xef not snmp",
            b"",
            b"\x30\x82\xff\xff\x02\x01",
            b"\x30\x0b\x02\x01\x03\x04\x06public",
        ];
        for datagram in bad {
            raw.send_to(datagram, sim.addr()).await.expect("send");
        }
        // Datagrams are handled in order, so once this answer arrives all four were seen.
        let mut session = v2c_session(&sim, "public").await;
        assert_eq!(
            get(&mut session, TEMP).await,
            (0, 0, vec![(TEMP.into(), Got::Int(235))])
        );
        assert_eq!(sim.malformed(), 4);
        let mut buf = [0u8; 64];
        let stray = timeout(Duration::from_millis(50), raw.recv_from(&mut buf)).await;
        assert!(stray.is_err(), "malformed datagrams get no answer");
    }

    #[tokio::test]
    async fn snmp_sim_v1_get_getnext_and_no_such_name() {
        let sim = sensor_sim().await;
        let mut session = Box::new(
            AsyncSession::new_v1(sim.addr(), b"public", 0)
                .await
                .expect("session"),
        );
        assert_eq!(
            get(&mut session, TEMP).await,
            (0, 0, vec![(TEMP.into(), Got::Int(235))])
        );
        assert_eq!(
            get(&mut session, HUMIDITY).await,
            (0, 0, vec![(HUMIDITY.into(), Got::Unsigned(41))])
        );

        let missing = "1.3.6.1.4.1.318.1.1.26.10.2.2.1.8.9";
        let pdu = timeout(ANSWER, session.get_many(&[&oid(TEMP), &oid(missing)]))
            .await
            .expect("answer in time")
            .expect("valid answer");
        let (status, index, _) = rows(&pdu);
        assert_eq!((status, index), (2, 2), "noSuchName at the second varbind");

        let pdu = timeout(ANSWER, session.getnext(&oid(UPTIME)))
            .await
            .expect("answer in time")
            .expect("valid answer");
        assert_eq!(
            rows(&pdu),
            (
                0,
                0,
                vec![(NAME.into(), Got::Bytes(b"Rack A1 inlet".to_vec()))]
            )
        );

        let pdu = timeout(ANSWER, session.getnext(&oid(HUMIDITY)))
            .await
            .expect("answer in time")
            .expect("valid answer");
        let (status, index, _) = rows(&pdu);
        assert_eq!((status, index), (2, 1), "v1 end of MIB is noSuchName");
    }

    #[tokio::test]
    async fn snmp_sim_delay_and_silence() {
        let sim = sensor_sim().await;
        let mut session = v2c_session(&sim, "public").await;

        sim.set_delay(Duration::from_millis(400));
        let early = timeout(Duration::from_millis(100), session.get(&oid(TEMP))).await;
        assert!(early.is_err(), "a slow device answers late");
        // The late answer to the abandoned request is still queued on the client socket:
        // use a fresh session so its request id doesn't confuse snmp2.
        let mut session = v2c_session(&sim, "public").await;
        let started = std::time::Instant::now();
        assert_eq!(
            get(&mut session, TEMP).await,
            (0, 0, vec![(TEMP.into(), Got::Int(235))])
        );
        assert!(started.elapsed() >= Duration::from_millis(400));

        sim.set_delay(Duration::ZERO);
        sim.set_silent(true);
        let mut session = v2c_session(&sim, "public").await;
        let dead = timeout(NO_ANSWER, session.get(&oid(TEMP))).await;
        assert!(dead.is_err(), "a silent device does not answer");

        sim.set_silent(false);
        let mut session = v2c_session(&sim, "public").await;
        assert_eq!(
            get(&mut session, TEMP).await,
            (0, 0, vec![(TEMP.into(), Got::Int(235))])
        );
    }

    #[tokio::test]
    async fn snmp_sim_records_arrivals_answered_or_silent_not_bad_community() {
        let sim = sensor_sim().await;
        let mut session = v2c_session(&sim, "public").await;
        get(&mut session, TEMP).await;
        assert!(
            sim.take_arrivals().is_empty(),
            "recording is off by default"
        );

        sim.record_arrivals();
        let before = std::time::Instant::now();
        get(&mut session, TEMP).await;
        get(&mut session, TEMP).await;
        let mut wrong = v2c_session(&sim, "private").await;
        let refused = timeout(NO_ANSWER, wrong.get(&oid(TEMP))).await;
        assert!(refused.is_err(), "a wrong community gets no answer");
        sim.set_silent(true);
        let mut session = v2c_session(&sim, "public").await;
        let dead = timeout(NO_ANSWER, session.get(&oid(TEMP))).await;
        assert!(dead.is_err(), "a silent device does not answer");

        let arrivals = sim.take_arrivals();
        assert_eq!(
            arrivals.len(),
            3,
            "two answered and one dropped by the dead device"
        );
        assert!(arrivals.windows(2).all(|w| w[0] <= w[1]));
        assert!(arrivals.iter().all(|&t| t >= before));
        assert!(sim.take_arrivals().is_empty(), "a take empties the log");
    }

    #[tokio::test]
    async fn snmp_sim_drop_stops_answering() {
        let sim = sensor_sim().await;
        let addr = sim.addr();
        drop(sim);
        tokio::task::yield_now().await;
        let mut session = Box::new(
            AsyncSession::new_v2c(addr, b"public", 0)
                .await
                .expect("session"),
        );
        let result = timeout(NO_ANSWER, session.get(&oid(TEMP))).await;
        assert!(
            !matches!(result, Ok(Ok(_))),
            "a dropped simulator must not answer"
        );
    }

    #[test]
    fn snmp_sim_parse_oid_accepts_dotted_and_rejects_garbage() {
        assert_eq!(
            parse_oid("1.3.6.1.2.1.1.3.0"),
            Ok(vec![1, 3, 6, 1, 2, 1, 1, 3, 0])
        );
        assert_eq!(parse_oid(".1.3.6"), Ok(vec![1, 3, 6]));
        for bad in [
            "",
            "1",
            "1.3.x",
            "1..3",
            "3.1",
            "1.40",
            "1.3.4294967296",
            ".",
        ] {
            assert!(parse_oid(bad).is_err(), "{bad:?} must be rejected");
        }
        let sim_err = parse_oid("1.3.x").expect_err("bad");
        assert!(sim_err.to_string().contains("1.3.x"));
    }

    #[test]
    fn snmp_sim_answer_is_pure_and_handles_v1_requests_built_with_rasn() {
        // Every value kind, so a v1 encoding problem in rasn for any of them shows up here.
        let kinds = [
            SimValue::Integer(-7),
            SimValue::Gauge(8),
            SimValue::Counter32(9),
            SimValue::OctetString(b"ten".to_vec()),
            SimValue::TimeTicks(11),
        ];
        let names: Vec<Vec<u32>> = (1..=5u32).map(|i| vec![1, 3, 6, 1, 4, 1, 99, i]).collect();
        let values: BTreeMap<Vec<u32>, SimValue> =
            names.iter().cloned().zip(kinds.iter().cloned()).collect();
        let request = v1::Message {
            version: Integer::from(VERSION_1),
            community: OctetString::from_static(b"public"),
            data: v1::Pdus::GetRequest(v1::GetRequest(v1::Pdu {
                request_id: Integer::from(77),
                error_status: Integer::ZERO,
                error_index: Integer::ZERO,
                variable_bindings: names
                    .iter()
                    .map(|name| v1::VarBind {
                        name: object_id(name),
                        value: smi1::ObjectSyntax::Simple(smi1::SimpleSyntax::Empty),
                    })
                    .collect(),
            })),
        };
        let bytes = rasn::ber::encode(&request).expect("encode request");
        assert_eq!(answer(&values, b"private", &bytes), Outcome::BadCommunity);
        let Outcome::Reply(reply) = answer(&values, b"public", &bytes) else {
            panic!("expected a reply");
        };
        let reply: v1::Message<v1::Pdus> = rasn::ber::decode(&reply).expect("decode reply");
        let v1::Pdus::GetResponse(v1::GetResponse(pdu)) = reply.data else {
            panic!("expected GetResponse");
        };
        assert_eq!(pdu.request_id, Integer::from(77));
        assert_eq!(pdu.error_status, Integer::ZERO);
        let got: Vec<smi1::ObjectSyntax> = pdu
            .variable_bindings
            .into_iter()
            .map(|binding| binding.value)
            .collect();
        let expected: Vec<smi1::ObjectSyntax> = kinds.iter().map(v1_syntax).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn snmp_sim_answer_v1_getbulk_is_malformed() {
        // GetBulk does not exist in SNMPv1: a v1 header with a GetBulk PDU does not decode.
        let request = v2c::Message {
            version: Integer::from(VERSION_1),
            community: OctetString::from_static(b"public"),
            data: v2::Pdus::GetBulkRequest(v2::GetBulkRequest(v2::BulkPdu {
                request_id: 1,
                non_repeaters: 0,
                max_repetitions: 5,
                variable_bindings: vec![v2::VarBind {
                    name: object_id(&[1, 3, 6]),
                    value: v2::VarBindValue::Unspecified,
                }],
            })),
        };
        let bytes = rasn::ber::encode(&request).expect("encode request");
        assert!(matches!(
            answer(&BTreeMap::new(), b"public", &bytes),
            Outcome::Malformed(_)
        ));
    }

    #[test]
    fn snmp_sim_answer_bulk_is_capped() {
        let mut values = BTreeMap::new();
        for index in 0..5_000u32 {
            values.insert(
                vec![1, 3, 6, 1, 4, 1, 99, index],
                SimValue::Counter32(index),
            );
        }
        let request = v2c::Message {
            version: Integer::from(VERSION_2C),
            community: OctetString::from_static(b"public"),
            data: v2::Pdus::GetBulkRequest(v2::GetBulkRequest(v2::BulkPdu {
                request_id: 1,
                non_repeaters: 0,
                max_repetitions: u32::MAX,
                variable_bindings: vec![v2::VarBind {
                    name: object_id(&[1, 3, 6]),
                    value: v2::VarBindValue::Unspecified,
                }],
            })),
        };
        let bytes = rasn::ber::encode(&request).expect("encode request");
        let Outcome::Reply(reply) = answer(&values, b"public", &bytes) else {
            panic!("expected a reply");
        };
        assert!(reply.len() <= MAX_RESPONSE_BYTES);
        let reply: v2c::Message<v2::Pdus> = rasn::ber::decode(&reply).expect("decode reply");
        let v2::Pdus::Response(v2::Response(pdu)) = reply.data else {
            panic!("expected Response");
        };
        assert_eq!(pdu.variable_bindings.len(), MAX_BULK_VARBINDS);
    }

    /// Runs a net-snmp command line tool against the simulator; fails loudly if missing.
    async fn net_snmp(tool: &str, args: &[&str]) -> String {
        let found = std::process::Command::new("which")
            .arg(tool)
            .output()
            .map(|out| out.status.success())
            .unwrap_or(false);
        assert!(
            found,
            "`{tool}` not found: install net-snmp's clients (`apt-get install -y snmp`) to run \
             this interoperability test"
        );
        let output = timeout(
            Duration::from_secs(10),
            tokio::process::Command::new(tool)
                .args(args)
                .env("MIBS", "")
                .output(),
        )
        .await
        .expect("net-snmp tool finished in time")
        .expect("net-snmp tool ran");
        assert!(
            output.status.success(),
            "{tool} {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    #[tokio::test]
    async fn snmp_sim_answers_net_snmp_snmpget_and_snmpbulkwalk() {
        let sim = sensor_sim().await;
        let target = format!("127.0.0.1:{}", sim.addr().port());
        let common = ["-On", "-t", "1", "-r", "0", "-c", "public"];

        for version in ["-v2c", "-v1"] {
            let mut args = vec![version];
            args.extend(common);
            args.extend([target.as_str(), TEMP, NAME, HUMIDITY]);
            let out = net_snmp("snmpget", &args).await;
            assert_eq!(
                out.lines().collect::<Vec<_>>(),
                vec![
                    format!(".{TEMP} = INTEGER: 235"),
                    format!(".{NAME} = STRING: \"Rack A1 inlet\""),
                    format!(".{HUMIDITY} = Gauge32: 41"),
                ],
                "snmpget {version}"
            );
        }

        // Something after the walked subtree, so the walk ends at the subtree's end rather
        // than at endOfMibView (which snmpbulkwalk would print as an extra line).
        sim.set("1.3.6.1.6.3.10.2.1.3.0", SimValue::Integer(1))
            .expect("set");
        let mut args = vec!["-v2c", "-Cr5"];
        args.extend(common);
        args.extend([target.as_str(), "1.3.6.1.4.1.318"]);
        let out = net_snmp("snmpbulkwalk", &args).await;
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            vec![
                format!(".{NAME} = STRING: \"Rack A1 inlet\""),
                format!(".{TEMP} = INTEGER: 235"),
                format!(".{HUMIDITY} = Gauge32: 41"),
            ]
        );
    }
}
