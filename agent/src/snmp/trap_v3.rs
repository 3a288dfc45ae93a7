//! SNMPv3 notifications in (pure: no I/O, time passed in): the User-based Security Model
//! processing of a received message (RFC 3412 7.2, RFC 3414 3.2) for traps and informs.
//!
//! - **Traps** come from an authoritative sender: keys are localized to the engine id the
//!   message carries, and replays are refused by the sender's clock as last seen (RFC 3414
//!   3.2.7 b).
//! - **Informs** make us authoritative: a sender first discovers our engine id (an empty engine
//!   id gets a `usmStatsUnknownEngineIDs` Report carrying our id, boots and time), then sends
//!   the inform under our id; a message outside our time window gets an authenticated
//!   `usmStatsNotInTimeWindows` Report so the sender resynchronises and resends. The inform is
//!   answered with a Response at the inform's own security level.
//! - Unknown user, wrong digest (auth passphrase or protocol), undecryptable PDU (priv
//!   passphrase or protocol), and a security level other than the user's are refused with a
//!   reason that says which; a reportable message also gets the matching `usmStats` Report.
//!
//! Invariants: our engine boots are [`ENGINE_BOOTS`] forever and our engine time is seconds
//! since [`ENGINE_TIME_EPOCH`], so both only grow across restarts without any stored state
//! (as long as the wall clock does not go back). The expensive part of the keys (1 MiB hashed
//! per passphrase) is done once per user; localization to an engine is cached per (user,
//! engine) and the cache is bounded. Nothing here panics on a datagram's content.

use super::trap::{v2_notification, Notification};
use super::usm::{self, LocalizedKeys, MasterKeys};
use coldaisle_config::snmp::{SecurityLevel, UsmUser};
use rasn::types::{Integer, ObjectIdentifier, OctetString};
use rasn_smi::v2 as smi2;
use rasn_snmp::v2;
use rasn_snmp::v3::{HeaderData, Message, ScopedPdu, ScopedPduData, USMSecurityParameters};
use std::collections::HashMap;

/// Our snmpEngineBoots (constant: engine time alone keeps growing, see the module invariants).
pub const ENGINE_BOOTS: u32 = 1;
/// Unix time at which our snmpEngineTime is 0 (2020-01-01T00:00:00Z).
pub const ENGINE_TIME_EPOCH: u64 = 1_577_836_800;
/// RFC 3414's time window, seconds.
const TIME_WINDOW: i64 = 150;
/// msgMaxSize we announce (largest UDP payload over IPv4).
const MAX_SIZE: i64 = 65_507;
/// Localized keys kept at most (entries beyond are dropped wholesale and recomputed).
const KEY_CACHE_LIMIT: usize = 4_096;
/// Sender clocks kept at most (same policy).
const CLOCK_LIMIT: usize = 4_096;

const FLAG_AUTH: u8 = 0x01;
const FLAG_PRIV: u8 = 0x02;
const FLAG_REPORTABLE: u8 = 0x04;

/// What the listener's SNMPv3 engine is configured with (part of the reloadable context).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct V3Settings {
    /// Our engine id (`snmp_traps.engine_id`, else derived from the agent id).
    pub engine_id: Vec<u8>,
    /// Accepted users: `[[snmp_traps.users]]`, then every SNMPv3 device's own user.
    pub users: Vec<UsmUser>,
}

impl V3Settings {
    /// The settings `config` asks for.
    #[must_use]
    pub fn of(config: &coldaisle_config::AgentConfig) -> Self {
        let mut users = config.snmp_traps.users.clone();
        for usm in config.devices.iter().filter_map(|d| d.snmp.usm.as_ref()) {
            if !users.contains(usm) {
                users.push(usm.clone());
            }
        }
        V3Settings {
            engine_id: config
                .snmp_traps
                .engine_id
                .clone()
                .unwrap_or_else(|| default_engine_id(&config.agent_id)),
            users,
        }
    }
}

/// Whether `datagram` is an SNMPv3 message (rather than v1/v2c).
#[must_use]
pub fn is_v3(datagram: &[u8]) -> bool {
    rasn::ber::decode::<Message>(datagram).is_ok()
}

/// The receiver for `settings`: the one in `slot` with its users updated, or a new one when
/// there is none yet or the engine id changed (a reload).
pub fn receiver_for<'a>(
    slot: &'a mut Option<V3Receiver>,
    settings: &V3Settings,
) -> &'a mut V3Receiver {
    let receiver = match slot.take() {
        Some(r) if r.engine_id == settings.engine_id => slot.insert(r),
        _ => {
            let seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            slot.insert(V3Receiver::new(
                settings.engine_id.clone(),
                &settings.users,
                seed,
            ))
        }
    };
    receiver.set_users(&settings.users);
    receiver
}

/// The usmStats counters (1.3.6.1.6.3.15.1.1.N.0) a Report can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsmStat {
    /// The message's security level is not the user's.
    UnsupportedSecLevels = 1,
    /// The message is outside the time window.
    NotInTimeWindows = 2,
    /// No such user.
    UnknownUserNames = 3,
    /// The engine id is not ours (or empty: discovery).
    UnknownEngineIds = 4,
    /// The digest does not match.
    WrongDigests = 5,
    /// The scoped PDU could not be decrypted.
    DecryptionErrors = 6,
}

/// What became of one SNMPv3 datagram.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// An accepted notification; for an inform, `reply` is the Response to send once the
    /// notification was handed on.
    Notification {
        /// The notification.
        notification: Notification,
        /// The inform's Response.
        reply: Option<Vec<u8>>,
    },
    /// Engine discovery or time synchronisation by a sender: send `report` back.
    Discovery {
        /// The Report to send.
        report: Vec<u8>,
    },
    /// Refused: why (naming the user and what is wrong), and a Report to send if the sender
    /// asked for one.
    Refused {
        /// The reason, for the log.
        reason: String,
        /// The Report to send, if any.
        report: Option<Vec<u8>>,
    },
}

/// A sender engine's clock as last seen in an authentic message (RFC 3414 3.2.7 b).
#[derive(Debug, Clone, Copy)]
struct Clock {
    boots: i64,
    time: i64,
    /// Our Unix time when `time` was seen.
    seen_at: u64,
}

/// One accepted user with its master keys.
struct User {
    config: UsmUser,
    master: MasterKeys,
}

/// The receiving SNMPv3 engine of the notification listener.
pub struct V3Receiver {
    engine_id: Vec<u8>,
    users: Vec<User>,
    keys: HashMap<(usize, Vec<u8>), LocalizedKeys>,
    clocks: HashMap<Vec<u8>, Clock>,
    counters: [u32; 7],
    salt: u64,
}

impl std::fmt::Debug for V3Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V3Receiver")
            .field("engine_id", &hex(&self.engine_id))
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

/// Hex text of bytes (engine ids in logs).
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Our default engine id when `snmp_traps.engine_id` is not set: RFC 3411 format 4 (text)
/// under enterprise 0, followed by (at most 27 bytes of) the agent id.
#[must_use]
pub fn default_engine_id(agent_id: &str) -> Vec<u8> {
    let mut id = vec![0x80, 0x00, 0x00, 0x00, 0x04];
    id.extend(agent_id.bytes().take(27));
    if id.len() < 6 {
        id.push(b'-');
    }
    id
}

/// Our snmpEngineTime at Unix time `now`.
#[must_use]
pub fn engine_time(now: u64) -> u32 {
    u32::try_from(now.saturating_sub(ENGINE_TIME_EPOCH).min(i32::MAX as u64)).unwrap_or(0)
}

fn level_of(flags: u8) -> Option<SecurityLevel> {
    match (flags & FLAG_AUTH != 0, flags & FLAG_PRIV != 0) {
        (false, false) => Some(SecurityLevel::NoAuthNoPriv),
        (true, false) => Some(SecurityLevel::AuthNoPriv),
        (true, true) => Some(SecurityLevel::AuthPriv),
        (false, true) => None,
    }
}

fn flags_of(level: SecurityLevel) -> u8 {
    match level {
        SecurityLevel::NoAuthNoPriv => 0,
        SecurityLevel::AuthNoPriv => FLAG_AUTH,
        SecurityLevel::AuthPriv => FLAG_AUTH | FLAG_PRIV,
    }
}

fn int(i: &Integer) -> i64 {
    i64::try_from(i).unwrap_or(-1)
}

/// Position of the last occurrence of `needle` in `hay` (`needle` not empty).
fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len().max(1)).rposition(|w| w == needle)
}

/// Position of the first occurrence of `needle` in `hay` (`needle` not empty).
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len().max(1)).position(|w| w == needle)
}

/// `datagram` with its authentication parameters zeroed (what the digest covers), or `None`
/// if they cannot be located.
fn zeroed_auth(datagram: &[u8], security_parameters: &[u8], auth: &[u8]) -> Option<Vec<u8>> {
    let outer = find(datagram, security_parameters)?;
    let len = u8::try_from(auth.len()).ok()?;
    let mut tlv = vec![0x04, len];
    tlv.extend_from_slice(auth);
    let inner = rfind(security_parameters, &tlv)? + 2;
    let at = outer + inner;
    let mut copy = datagram.to_vec();
    copy.get_mut(at..at + auth.len())?.fill(0);
    Some(copy)
}

/// The request-id of any PDU.
fn request_id_of(pdus: &v2::Pdus) -> i32 {
    match pdus {
        v2::Pdus::GetRequest(v2::GetRequest(p))
        | v2::Pdus::GetNextRequest(v2::GetNextRequest(p))
        | v2::Pdus::Response(v2::Response(p))
        | v2::Pdus::SetRequest(v2::SetRequest(p))
        | v2::Pdus::InformRequest(v2::InformRequest(p))
        | v2::Pdus::Trap(v2::Trap(p))
        | v2::Pdus::Report(v2::Report(p)) => p.request_id,
        v2::Pdus::GetBulkRequest(v2::GetBulkRequest(p)) => p.request_id,
    }
}

/// What a received message says about its security, once decoded.
struct Incoming {
    msg_id: i64,
    /// The PDU's request-id when the scoped PDU is in clear (else 0), echoed in Reports.
    request_id: i32,
    level: SecurityLevel,
    reportable: bool,
    usm: USMSecurityParameters,
    user_name: String,
}

impl V3Receiver {
    /// A receiver with engine id `engine_id` accepting `users`; `salt_seed` starts the
    /// privacy salt counter (pass something that differs between runs, e.g. the time in ns).
    #[must_use]
    pub fn new(engine_id: Vec<u8>, users: &[UsmUser], salt_seed: u64) -> Self {
        let mut r = V3Receiver {
            engine_id,
            users: Vec::new(),
            keys: HashMap::new(),
            clocks: HashMap::new(),
            counters: [0; 7],
            salt: salt_seed,
        };
        r.set_users(users);
        r
    }

    /// Our engine id.
    #[must_use]
    pub fn engine_id(&self) -> &[u8] {
        &self.engine_id
    }

    /// Replaces the accepted users (after a reload); keys of unchanged users are kept.
    pub fn set_users(&mut self, users: &[UsmUser]) {
        let unchanged = users.len() == self.users.len()
            && users.iter().zip(&self.users).all(|(a, b)| *a == b.config);
        if unchanged {
            return;
        }
        self.users = users
            .iter()
            .map(|u| User {
                master: usm::master_keys(u),
                config: u.clone(),
            })
            .collect();
        self.keys.clear();
    }

    /// How often each usmStats condition was met.
    #[must_use]
    pub fn counter(&self, stat: UsmStat) -> u32 {
        self.counters[stat as usize]
    }

    fn keys(&mut self, user: usize, engine_id: &[u8]) -> LocalizedKeys {
        if self.keys.len() >= KEY_CACHE_LIMIT {
            self.keys.clear();
        }
        let users = &self.users;
        self.keys
            .entry((user, engine_id.to_vec()))
            .or_insert_with(|| {
                usm::localized_keys(&users[user].config, &users[user].master, engine_id)
            })
            .clone()
    }

    /// Processes one SNMPv3 datagram received at Unix time `now`.
    pub fn receive(&mut self, datagram: &[u8], now: u64) -> Outcome {
        let refused = |reason: String| Outcome::Refused {
            reason,
            report: None,
        };
        let message = match rasn::ber::decode::<Message>(datagram) {
            Ok(m) => m,
            Err(e) => return refused(format!("undecodable SNMPv3 message: {e}")),
        };
        if int(&message.global_data.security_model) != 3 {
            return refused(format!(
                "SNMPv3 security model {} is not USM (3)",
                int(&message.global_data.security_model)
            ));
        }
        let flags = message.global_data.flags.first().copied().unwrap_or(0);
        let Some(level) = level_of(flags) else {
            return refused("SNMPv3 message with privacy but no authentication".into());
        };
        let usm = match rasn::ber::decode::<USMSecurityParameters>(&message.security_parameters) {
            Ok(u) => u,
            Err(e) => return refused(format!("undecodable USM security parameters: {e}")),
        };
        let incoming = Incoming {
            msg_id: int(&message.global_data.message_id),
            request_id: match &message.scoped_data {
                ScopedPduData::CleartextPdu(p) => request_id_of(&p.data),
                ScopedPduData::EncryptedPdu(_) => 0,
            },
            level,
            reportable: flags & FLAG_REPORTABLE != 0,
            user_name: String::from_utf8_lossy(&usm.user_name).into_owned(),
            usm,
        };
        let engine = incoming.usm.authoritative_engine_id.to_vec();
        if engine.is_empty() {
            if !incoming.reportable {
                return refused("SNMPv3 message without an engine id".into());
            }
            self.counters[UsmStat::UnknownEngineIds as usize] += 1;
            return Outcome::Discovery {
                report: self.report(&incoming, UsmStat::UnknownEngineIds, None, now),
            };
        }
        let authoritative = engine == self.engine_id;
        let named: Vec<usize> = (0..self.users.len())
            .filter(|&i| self.users[i].config.user == incoming.user_name)
            .collect();
        if named.is_empty() {
            return self.refuse(
                &incoming,
                UsmStat::UnknownUserNames,
                format!(
                    "unknown SNMPv3 user `{}` (not in [[snmp_traps.users]] nor a device's v3 user)",
                    incoming.user_name
                ),
                now,
            );
        }
        let candidates: Vec<usize> = named
            .iter()
            .copied()
            .filter(|&i| self.users[i].config.level == level)
            .collect();
        if candidates.is_empty() {
            let configured = self.users[named[0]].config.level;
            return self.refuse(
                &incoming,
                UsmStat::UnsupportedSecLevels,
                format!(
                    "SNMPv3 user `{}` sent {} but is configured for {}",
                    incoming.user_name,
                    level.name(),
                    configured.name()
                ),
                now,
            );
        }
        // Authentication: the first candidate whose digest matches.
        let mut chosen = None;
        if level == SecurityLevel::NoAuthNoPriv {
            chosen = Some(candidates[0]);
        } else {
            let auth = incoming.usm.authentication_parameters.to_vec();
            let zeroed = zeroed_auth(datagram, &message.security_parameters, &auth);
            for &i in &candidates {
                let protocol = self.users[i].config.auth_protocol;
                let keys = self.keys(i, &engine);
                let matches = auth.len() == usm::digest_len(protocol)
                    && zeroed.as_ref().is_some_and(|z| {
                        usm::digests_equal(&usm::digest(protocol, &keys.auth, z), &auth)
                    });
                if matches {
                    chosen = Some(i);
                    break;
                }
            }
        }
        let Some(user) = chosen else {
            return self.refuse(
                &incoming,
                UsmStat::WrongDigests,
                format!(
                    "SNMPv3 user `{}`: wrong auth passphrase or auth protocol (digest mismatch)",
                    incoming.user_name
                ),
                now,
            );
        };
        let keys = self.keys(user, &engine);
        if level != SecurityLevel::NoAuthNoPriv {
            if let Some(reason) = self.check_time(&incoming, &engine, authoritative, now) {
                self.counters[UsmStat::NotInTimeWindows as usize] += 1;
                if authoritative {
                    return Outcome::Discovery {
                        report: self.report(
                            &incoming,
                            UsmStat::NotInTimeWindows,
                            Some((user, &keys)),
                            now,
                        ),
                    };
                }
                return refused(reason);
            }
        }
        let scoped = match (&message.scoped_data, level) {
            (ScopedPduData::CleartextPdu(p), SecurityLevel::NoAuthNoPriv)
            | (ScopedPduData::CleartextPdu(p), SecurityLevel::AuthNoPriv) => p.clone(),
            (ScopedPduData::EncryptedPdu(bytes), SecurityLevel::AuthPriv) => {
                let config = &self.users[user].config;
                let plain = usm::decrypt(
                    config.priv_protocol,
                    &keys.privacy,
                    u32::try_from(int(&incoming.usm.authoritative_engine_boots)).unwrap_or(0),
                    u32::try_from(int(&incoming.usm.authoritative_engine_time)).unwrap_or(0),
                    &incoming.usm.privacy_parameters,
                    bytes,
                );
                match plain.map_err(|e| e.to_string()).and_then(|p| {
                    rasn::ber::decode_with_remainder::<ScopedPdu>(&p)
                        .map(|(s, _)| s)
                        .map_err(|e| e.to_string())
                }) {
                    Ok(s) => s,
                    Err(e) => {
                        let reason = format!(
                            "SNMPv3 user `{}`: scoped PDU not decryptable with its priv passphrase and {} ({e})",
                            incoming.user_name,
                            config.priv_protocol.name()
                        );
                        return self.refuse(&incoming, UsmStat::DecryptionErrors, reason, now);
                    }
                }
            }
            _ => return refused("SNMPv3 privacy flag and scoped PDU disagree".into()),
        };
        self.accept(&incoming, authoritative, user, &keys, scoped, now)
    }

    /// RFC 3414 3.2.7: `None` when the message is timely, else why not.
    fn check_time(
        &mut self,
        incoming: &Incoming,
        engine: &[u8],
        authoritative: bool,
        now: u64,
    ) -> Option<String> {
        let boots = int(&incoming.usm.authoritative_engine_boots);
        let time = int(&incoming.usm.authoritative_engine_time);
        if authoritative {
            let ours = i64::from(engine_time(now));
            if boots != i64::from(ENGINE_BOOTS) || (time - ours).abs() > TIME_WINDOW {
                return Some(format!(
                    "SNMPv3 message outside our time window (boots {boots}, time {time}; ours {ENGINE_BOOTS}, {ours})"
                ));
            }
            return None;
        }
        if boots >= i64::from(i32::MAX) || boots < 0 || time < 0 {
            return Some(format!(
                "SNMPv3 sender engine {} at the end of its boots",
                hex(engine)
            ));
        }
        let known = self.clocks.get(engine).copied();
        if let Some(c) = known {
            let elapsed = i64::try_from(now.saturating_sub(c.seen_at)).unwrap_or(i64::MAX);
            let latest = c.time.saturating_add(elapsed);
            if boots < c.boots || (boots == c.boots && time < latest - TIME_WINDOW) {
                return Some(format!(
                    "SNMPv3 message from engine {} is older than its clock (boots {boots}, time {time}; seen boots {}, time ≈{latest}): a replay or a stale resend",
                    hex(engine),
                    c.boots
                ));
            }
        }
        let newer = known.is_none_or(|c| boots > c.boots || (boots == c.boots && time > c.time));
        if newer {
            if self.clocks.len() >= CLOCK_LIMIT {
                self.clocks.clear();
            }
            self.clocks.insert(
                engine.to_vec(),
                Clock {
                    boots,
                    time,
                    seen_at: now,
                },
            );
        }
        None
    }

    fn refuse(&mut self, incoming: &Incoming, stat: UsmStat, reason: String, now: u64) -> Outcome {
        self.counters[stat as usize] += 1;
        let report = incoming
            .reportable
            .then(|| self.report(incoming, stat, None, now));
        Outcome::Refused { reason, report }
    }

    fn accept(
        &mut self,
        incoming: &Incoming,
        authoritative: bool,
        user: usize,
        keys: &LocalizedKeys,
        scoped: ScopedPdu,
        now: u64,
    ) -> Outcome {
        let (pdu, inform) = match scoped.data {
            v2::Pdus::Trap(v2::Trap(pdu)) => (pdu, false),
            v2::Pdus::InformRequest(v2::InformRequest(pdu)) => (pdu, true),
            _ => {
                return Outcome::Refused {
                    reason: "SNMPv3 message is neither a Trap nor an InformRequest".into(),
                    report: None,
                }
            }
        };
        if inform && !authoritative {
            // The sender did not discover us: tell it our engine id.
            return self.refuse(
                incoming,
                UsmStat::UnknownEngineIds,
                format!(
                    "SNMPv3 inform under engine id {} instead of ours ({})",
                    hex(&incoming.usm.authoritative_engine_id),
                    hex(&self.engine_id)
                ),
                now,
            );
        }
        let (trap_oid, varbinds) = match v2_notification(&pdu) {
            Ok(n) => n,
            Err(reason) => {
                return Outcome::Refused {
                    reason,
                    report: None,
                }
            }
        };
        let reply = inform.then(|| {
            let response = v2::Pdus::Response(v2::Response(v2::Pdu {
                request_id: pdu.request_id,
                error_status: v2::Pdu::ERROR_STATUS_NO_ERROR,
                error_index: 0,
                variable_bindings: pdu.variable_bindings.clone(),
            }));
            self.build(
                incoming,
                incoming.level,
                Some((user, keys)),
                Some((&scoped.engine_id, &scoped.name)),
                response,
                now,
            )
        });
        let reply = match reply {
            Some(Err(reason)) => {
                return Outcome::Refused {
                    reason,
                    report: None,
                }
            }
            Some(Ok(bytes)) => Some(bytes),
            None => None,
        };
        Outcome::Notification {
            notification: Notification {
                version: "3",
                community: Vec::new(),
                user: Some(incoming.user_name.clone()),
                trap_oid,
                varbinds,
                inform_ack: None,
            },
            reply,
        }
    }

    /// A Report carrying `stat`'s counter: authenticated (authNoPriv) when `auth` gives the
    /// user and keys (time window), otherwise noAuthNoPriv.
    fn report(
        &mut self,
        incoming: &Incoming,
        stat: UsmStat,
        auth: Option<(usize, &LocalizedKeys)>,
        now: u64,
    ) -> Vec<u8> {
        let request_id = incoming.request_id;
        let pdu = v2::Pdus::Report(v2::Report(v2::Pdu {
            request_id,
            error_status: v2::Pdu::ERROR_STATUS_NO_ERROR,
            error_index: 0,
            variable_bindings: vec![v2::VarBind {
                name: ObjectIdentifier::new_unchecked(
                    vec![1, 3, 6, 1, 6, 3, 15, 1, 1, stat as u32, 0].into(),
                ),
                value: v2::VarBindValue::Value(smi2::ObjectSyntax::from(rasn_smi::v1::Counter(
                    self.counters[stat as usize],
                ))),
            }],
        }));
        let level = if auth.is_some() {
            SecurityLevel::AuthNoPriv
        } else {
            SecurityLevel::NoAuthNoPriv
        };
        // Encoding our own well-formed values cannot fail; an empty datagram is never sent.
        self.build(incoming, level, auth, None, pdu, now)
            .unwrap_or_default()
    }

    /// Encodes, encrypts and signs a message from us (authoritative) at `level`; `context`
    /// is the request's contextEngineID and contextName to echo (a Report uses ours and "").
    fn build(
        &mut self,
        incoming: &Incoming,
        level: SecurityLevel,
        user: Option<(usize, &LocalizedKeys)>,
        context: Option<(&[u8], &OctetString)>,
        pdu: v2::Pdus,
        now: u64,
    ) -> Result<Vec<u8>, String> {
        self.salt = self.salt.wrapping_add(1);
        let empty = OctetString::from_static(b"");
        let (context_engine_id, context_name) =
            context.unwrap_or((self.engine_id.as_slice(), &empty));
        let header = Header {
            engine_id: &self.engine_id,
            boots: ENGINE_BOOTS,
            time: engine_time(now),
            msg_id: incoming.msg_id,
            level,
            reportable: false,
            user_name: incoming.user_name.as_bytes(),
            context_engine_id,
            context_name,
            salt: self.salt,
        };
        let user = user.map(|(i, keys)| (&self.users[i].config, keys));
        encode(&header, user, pdu)
    }
}

/// The envelope of an SNMPv3 message to encode.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    /// Authoritative engine id (ours for Reports and Responses; the sender's for traps).
    pub engine_id: &'a [u8],
    /// Authoritative engine boots.
    pub boots: u32,
    /// Authoritative engine time.
    pub time: u32,
    /// msgID.
    pub msg_id: i64,
    /// Security level (needs a user with keys above noAuthNoPriv).
    pub level: SecurityLevel,
    /// Whether a Report is asked for.
    pub reportable: bool,
    /// USM user name.
    pub user_name: &'a [u8],
    /// contextEngineID of the scoped PDU (a Response echoes the request's).
    pub context_engine_id: &'a [u8],
    /// Context name.
    pub context_name: &'a OctetString,
    /// Privacy salt (unique per message under one key).
    pub salt: u64,
}

/// Encodes `pdu` as an SNMPv3 message: the scoped PDU encrypted and the whole message signed
/// with `user`'s localized keys as `header.level` says (a level above noAuthNoPriv without a
/// user is sent at noAuthNoPriv).
pub fn encode(
    header: &Header<'_>,
    user: Option<(&UsmUser, &LocalizedKeys)>,
    pdu: v2::Pdus,
) -> Result<Vec<u8>, String> {
    let scoped = ScopedPdu {
        engine_id: header.context_engine_id.to_vec().into(),
        name: header.context_name.clone(),
        data: pdu,
    };
    let (level, user) = match user {
        Some(u) => (header.level, Some(u)),
        None => (SecurityLevel::NoAuthNoPriv, None),
    };
    let (scoped_data, priv_params) = match (user, level) {
        (Some((c, keys)), SecurityLevel::AuthPriv) => {
            let plain = rasn::ber::encode(&scoped).map_err(|e| format!("encoding: {e}"))?;
            let (cipher, salt) = usm::encrypt(
                c.priv_protocol,
                &keys.privacy,
                header.boots,
                header.time,
                header.salt,
                &plain,
            )
            .map_err(|e| e.to_string())?;
            (ScopedPduData::EncryptedPdu(cipher.into()), salt)
        }
        _ => (ScopedPduData::CleartextPdu(scoped), Vec::new()),
    };
    let auth_len = match (user, level) {
        (Some((c, _)), SecurityLevel::AuthNoPriv | SecurityLevel::AuthPriv) => {
            usm::digest_len(c.auth_protocol)
        }
        _ => 0,
    };
    let security = USMSecurityParameters {
        authoritative_engine_id: header.engine_id.to_vec().into(),
        authoritative_engine_boots: Integer::from(i64::from(header.boots)),
        authoritative_engine_time: Integer::from(i64::from(header.time)),
        user_name: header.user_name.to_vec().into(),
        authentication_parameters: vec![0u8; auth_len].into(),
        privacy_parameters: priv_params.clone().into(),
    };
    let security = rasn::ber::encode(&security).map_err(|e| format!("encoding: {e}"))?;
    let mut flags = flags_of(level);
    if header.reportable {
        flags |= FLAG_REPORTABLE;
    }
    let message = Message {
        version: Integer::from(3),
        global_data: HeaderData {
            message_id: Integer::from(header.msg_id),
            max_size: Integer::from(MAX_SIZE),
            flags: vec![flags].into(),
            security_model: Integer::from(3),
        },
        security_parameters: security.clone().into(),
        scoped_data,
    };
    let mut bytes = rasn::ber::encode(&message).map_err(|e| format!("encoding: {e}"))?;
    if let (Some((c, keys)), true) = (user, auth_len > 0) {
        // The digest fills the zeroed authentication parameters: the second-to-last field
        // of the security parameters, right before the privacy parameters' TLV.
        let outer = find(&bytes, &security).ok_or("security parameters not found")?;
        let at = outer + security.len() - (2 + priv_params.len()) - auth_len;
        let digest = usm::digest(c.auth_protocol, &keys.auth, &bytes);
        bytes
            .get_mut(at..at + auth_len)
            .ok_or("digest position out of range")?
            .copy_from_slice(&digest);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldaisle_config::snmp::{AuthProtocol, PrivProtocol};
    use proptest::prelude::*;

    const NOW: u64 = 1_764_000_000;
    const SENDER: &[u8] = b"\x80\x00\x1f\x88\x80sender-engine";

    fn user(name: &str, auth: &str, privacy: &str) -> UsmUser {
        UsmUser {
            user: name.into(),
            level: SecurityLevel::AuthPriv,
            auth_protocol: AuthProtocol::Sha256,
            auth_passphrase: Some(auth.into()),
            priv_protocol: PrivProtocol::Aes128,
            priv_passphrase: Some(privacy.into()),
            context: String::new(),
        }
    }

    fn receiver() -> V3Receiver {
        V3Receiver::new(
            default_engine_id("agent-1"),
            &[user("ops", "authpass1", "privpass1")],
            7,
        )
    }

    fn varbinds(oid: &[u32]) -> Vec<v2::VarBind> {
        vec![
            v2::VarBind {
                name: ObjectIdentifier::new_unchecked(vec![1, 3, 6, 1, 2, 1, 1, 3, 0].into()),
                value: v2::VarBindValue::Value(smi2::ObjectSyntax::from(rasn_smi::v1::TimeTicks(
                    5,
                ))),
            },
            v2::VarBind {
                name: ObjectIdentifier::new_unchecked(vec![1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0].into()),
                value: v2::VarBindValue::Value(smi2::ObjectSyntax::from(
                    ObjectIdentifier::new_unchecked(oid.to_vec().into()),
                )),
            },
        ]
    }

    fn pdu(request_id: i32) -> v2::Pdu {
        v2::Pdu {
            request_id,
            error_status: 0,
            error_index: 0,
            variable_bindings: varbinds(&[1, 3, 6, 1, 4, 1, 318, 0, 58]),
        }
    }

    /// A message as a sender would send it, signed/encrypted with `as_user`'s keys.
    #[allow(clippy::too_many_arguments)]
    fn message(
        as_user: &UsmUser,
        engine: &[u8],
        boots: u32,
        time: u32,
        level: SecurityLevel,
        reportable: bool,
        pdus: v2::Pdus,
    ) -> Vec<u8> {
        let keys = usm::localized_keys(as_user, &usm::master_keys(as_user), engine);
        let context = OctetString::from_static(b"");
        let header = Header {
            engine_id: engine,
            boots,
            time,
            msg_id: 4242,
            level,
            reportable,
            user_name: as_user.user.as_bytes(),
            context_engine_id: engine,
            context_name: &context,
            salt: 99,
        };
        encode(&header, Some((as_user, &keys)), pdus).unwrap()
    }

    fn trap(as_user: &UsmUser, time: u32) -> Vec<u8> {
        message(
            as_user,
            SENDER,
            3,
            time,
            as_user.level,
            false,
            v2::Pdus::Trap(v2::Trap(pdu(11))),
        )
    }

    fn refused(outcome: Outcome) -> String {
        match outcome {
            Outcome::Refused { reason, .. } => reason,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn auth_priv_trap_is_accepted_under_the_senders_engine() {
        let mut r = receiver();
        match r.receive(&trap(&user("ops", "authpass1", "privpass1"), 500), NOW) {
            Outcome::Notification {
                notification,
                reply,
            } => {
                assert_eq!(notification.version, "3");
                assert_eq!(notification.user.as_deref(), Some("ops"));
                assert_eq!(notification.trap_oid, vec![1, 3, 6, 1, 4, 1, 318, 0, 58]);
                assert_eq!(notification.varbinds.len(), 2);
                assert_eq!(reply, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_protocol_pair_round_trips() {
        for auth in [
            AuthProtocol::Md5,
            AuthProtocol::Sha1,
            AuthProtocol::Sha224,
            AuthProtocol::Sha256,
            AuthProtocol::Sha384,
            AuthProtocol::Sha512,
        ] {
            for privacy in [
                PrivProtocol::Des,
                PrivProtocol::Aes128,
                PrivProtocol::Aes192,
                PrivProtocol::Aes256,
            ] {
                let mut u = user("ops", "authpass1", "privpass1");
                u.auth_protocol = auth;
                u.priv_protocol = privacy;
                let mut r = V3Receiver::new(default_engine_id("a"), &[u.clone()], 1);
                assert!(
                    matches!(r.receive(&trap(&u, 10), NOW), Outcome::Notification { .. }),
                    "{auth:?}/{privacy:?}"
                );
            }
        }
    }

    #[test]
    fn wrong_credentials_and_levels_say_which() {
        let mut r = receiver();
        let reason = refused(r.receive(&trap(&user("ops", "authpass2", "privpass1"), 1), NOW));
        assert!(reason.contains("wrong auth passphrase"), "{reason}");
        let reason = refused(r.receive(&trap(&user("ops", "authpass1", "privpass2"), 2), NOW));
        assert!(reason.contains("not decryptable"), "{reason}");
        let reason = refused(r.receive(&trap(&user("bob", "authpass1", "privpass1"), 3), NOW));
        assert!(reason.contains("unknown SNMPv3 user `bob`"), "{reason}");
        let mut low = user("ops", "authpass1", "privpass1");
        low.level = SecurityLevel::AuthNoPriv;
        let reason = refused(r.receive(&trap(&low, 4), NOW));
        assert!(
            reason.contains("sent authNoPriv but is configured for authPriv"),
            "{reason}"
        );
        assert_eq!(r.counter(UsmStat::WrongDigests), 1);
        assert_eq!(r.counter(UsmStat::DecryptionErrors), 1);
        assert_eq!(r.counter(UsmStat::UnknownUserNames), 1);
        assert_eq!(r.counter(UsmStat::UnsupportedSecLevels), 1);
    }

    #[test]
    fn a_replayed_trap_is_refused_by_the_senders_clock() {
        let mut r = receiver();
        let u = user("ops", "authpass1", "privpass1");
        assert!(matches!(
            r.receive(&trap(&u, 10_000), NOW),
            Outcome::Notification { .. }
        ));
        // 100 s later the sender's clock is at ≈10 100: a message stamped 9 000 is stale.
        let reason = refused(r.receive(&trap(&u, 9_000), NOW + 100));
        assert!(reason.contains("older than its clock"), "{reason}");
        assert!(matches!(
            r.receive(&trap(&u, 10_090), NOW + 100),
            Outcome::Notification { .. }
        ));
    }

    fn decode(bytes: &[u8]) -> (Message, USMSecurityParameters) {
        let m = rasn::ber::decode::<Message>(bytes).unwrap();
        let u = rasn::ber::decode::<USMSecurityParameters>(&m.security_parameters).unwrap();
        (m, u)
    }

    fn report_stat(m: &Message) -> Vec<u32> {
        match &m.scoped_data {
            ScopedPduData::CleartextPdu(ScopedPdu {
                data: v2::Pdus::Report(v2::Report(p)),
                ..
            }) => p.variable_bindings[0].name.to_vec(),
            other => panic!("not a clear Report: {other:?}"),
        }
    }

    #[test]
    fn inform_discovery_time_sync_and_acknowledgement() {
        let mut r = receiver();
        let ours = r.engine_id().to_vec();
        let u = user("ops", "authpass1", "privpass1");
        // 1. Discovery: empty engine id, noAuthNoPriv, reportable, empty GET.
        let probe_user = UsmUser {
            user: String::new(),
            level: SecurityLevel::NoAuthNoPriv,
            auth_passphrase: None,
            priv_passphrase: None,
            ..u.clone()
        };
        let probe = message(
            &probe_user,
            b"",
            0,
            0,
            SecurityLevel::NoAuthNoPriv,
            true,
            v2::Pdus::GetRequest(v2::GetRequest(v2::Pdu {
                request_id: 77,
                error_status: 0,
                error_index: 0,
                variable_bindings: vec![],
            })),
        );
        let Outcome::Discovery { report } = r.receive(&probe, NOW) else {
            panic!("no discovery report")
        };
        let (m, usm_params) = decode(&report);
        assert_eq!(usm_params.authoritative_engine_id.to_vec(), ours);
        assert_eq!(int(&usm_params.authoritative_engine_boots), 1);
        assert_eq!(
            int(&usm_params.authoritative_engine_time),
            i64::from(engine_time(NOW))
        );
        assert_eq!(int(&m.global_data.message_id), 4242);
        assert_eq!(report_stat(&m), vec![1, 3, 6, 1, 6, 3, 15, 1, 1, 4, 0]);
        // 2. An inform with a stale time gets an authenticated notInTimeWindow Report.
        let inform = |time: u32| {
            message(
                &u,
                &ours,
                1,
                time,
                SecurityLevel::AuthPriv,
                true,
                v2::Pdus::InformRequest(v2::InformRequest(pdu(31))),
            )
        };
        let Outcome::Discovery { report } = r.receive(&inform(5), NOW) else {
            panic!("no time window report")
        };
        let (m, _) = decode(&report);
        assert_eq!(m.global_data.flags.to_vec(), vec![FLAG_AUTH]);
        assert_eq!(report_stat(&m), vec![1, 3, 6, 1, 6, 3, 15, 1, 1, 2, 0]);
        // The report is signed with the user's key: our own receiver logic verifies it.
        let keys = usm::localized_keys(&u, &usm::master_keys(&u), &ours);
        let (_, usm_params) = decode(&report);
        let zeroed = zeroed_auth(
            &report,
            &m.security_parameters,
            &usm_params.authentication_parameters,
        )
        .unwrap();
        assert!(usm::digests_equal(
            &usm::digest(u.auth_protocol, &keys.auth, &zeroed),
            &usm_params.authentication_parameters
        ));
        // 3. In time: accepted, and the Response is encrypted with the same request-id.
        let Outcome::Notification {
            notification,
            reply: Some(reply),
        } = r.receive(&inform(engine_time(NOW) - 3), NOW)
        else {
            panic!("inform not accepted")
        };
        assert_eq!(notification.user.as_deref(), Some("ops"));
        let (m, usm_params) = decode(&reply);
        assert_eq!(int(&m.global_data.message_id), 4242);
        assert_eq!(m.global_data.flags.to_vec(), vec![FLAG_AUTH | FLAG_PRIV]);
        let ScopedPduData::EncryptedPdu(cipher) = &m.scoped_data else {
            panic!("response in clear")
        };
        let plain = usm::decrypt(
            u.priv_protocol,
            &keys.privacy,
            1,
            engine_time(NOW),
            &usm_params.privacy_parameters,
            cipher,
        )
        .unwrap();
        let (scoped, _) = rasn::ber::decode_with_remainder::<ScopedPdu>(&plain).unwrap();
        match scoped.data {
            v2::Pdus::Response(v2::Response(p)) => assert_eq!(p.request_id, 31),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_inform_under_a_foreign_engine_id_is_sent_to_discovery() {
        let mut r = receiver();
        let u = user("ops", "authpass1", "privpass1");
        let m = message(
            &u,
            SENDER,
            1,
            1,
            SecurityLevel::AuthPriv,
            true,
            v2::Pdus::InformRequest(v2::InformRequest(pdu(5))),
        );
        match r.receive(&m, NOW) {
            Outcome::Refused {
                reason,
                report: Some(report),
            } => {
                assert!(reason.contains("instead of ours"), "{reason}");
                assert_eq!(
                    report_stat(&decode(&report).0),
                    vec![1, 3, 6, 1, 6, 3, 15, 1, 1, 4, 0]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn settings_take_trap_users_then_device_users_and_derive_the_engine_id() {
        let text = "agent_id = \"site-a\"\nsite = \"lab\"\nstate_dir = \"/tmp/unused\"\n[mqtt]\nhost = \"h\"\n\
            [snmp_traps]\n[[snmp_traps.users]]\nuser = \"traps\"\nauth_passphrase = \"authpass1\"\n\
            [[devices]]\nid = \"pdu\"\nprotocol = \"snmp\"\naddress = \"10.0.0.5\"\nzone = \"Z1\"\n\
            [devices.snmp]\nversion = \"3\"\nuser = \"ops\"\nauth_passphrase = \"authpass2\"\n\
            [[devices.points]]\nsensor = \"t\"\nkind = \"inlet_temp\"\noid = \"1.3.6.1.2.1.1.3.0\"\n";
        let config =
            coldaisle_config::AgentConfig::from_str(text, std::path::Path::new("a.toml")).unwrap();
        let settings = V3Settings::of(&config);
        let names: Vec<&str> = settings.users.iter().map(|u| u.user.as_str()).collect();
        assert_eq!(names, vec!["traps", "ops"]);
        assert_eq!(settings.engine_id, b"\x80\x00\x00\x00\x04site-a".to_vec());
    }

    thread_local! {
        /// One receiver for all cases (its keys take 1 MiB of hashing to make).
        static SHARED: std::cell::RefCell<V3Receiver> = std::cell::RefCell::new(receiver());
        static GOOD: Vec<u8> = trap(&user("ops", "authpass1", "privpass1"), 77);
    }

    proptest! {
        #[test]
        fn arbitrary_or_damaged_datagrams_never_panic(
            noise in proptest::collection::vec(any::<u8>(), 0..300),
            cut in 0usize..400,
            flip in 0usize..400,
        ) {
            let good = GOOD.with(Clone::clone);
            SHARED.with(|r| -> Result<(), TestCaseError> {
                let mut r = r.borrow_mut();
                let _ = r.receive(&noise, NOW);
                let _ = r.receive(&good[..cut.min(good.len())], NOW);
                let mut damaged = good.clone();
                let at = flip % damaged.len();
                damaged[at] ^= 0x5a;
                // A flipped byte is refused (the digest covers the whole message) or, if it
                // changed nothing that matters, decodes to the same trap: never a wrong one.
                if let Outcome::Notification { notification, .. } = r.receive(&damaged, NOW) {
                    prop_assert_eq!(notification.trap_oid, vec![1, 3, 6, 1, 4, 1, 318, 0, 58]);
                }
                Ok(())
            })?;
        }
    }
}
