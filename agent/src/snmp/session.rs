//! One SNMP conversation with one device (I/O): v1, v2c or v3 (USM, every level, auth and
//! privacy protocol snmp2 supports), with a per-request timeout, retries with exponential
//! backoff ([`retry_delay`]), a pause between requests and SNMPv3 engine handling.
//!
//! v1 and v2c requests go through [`super::community`] (no buffer per device), v3 through
//! snmp2's `AsyncSession` (USM state, engine discovery, keys).
//!
//! Invariants:
//! - The session (v1/v2c: socket and request ids; v3: snmp2's session), and with it the SNMPv3 engine id, boots/time and the localised keys, is
//!   kept across polls and across timed-out or cancelled requests (snmp2 reserves request ids
//!   before sending, so a late answer is recognised as stale). Engine discovery and key
//!   localisation therefore run once per engine; the session is dropped only when the engine
//!   changed, the user was rejected or a stale answer was read (a fresh socket then leaves every
//!   late answer behind).
//! - Time-window resynchronisation (`AuthUpdated`, notInTimeWindow, engine boots increased) is
//!   retried transparently and never counts as a retry.
//! - A v3 failure is diagnosed before it is reported: a noAuthNoPriv probe tells an unknown user
//!   apart, an authNoPriv probe tells a wrong auth passphrase from a wrong priv passphrase.
//!   Passphrases never appear in errors or logs.

use super::community::{CommunitySession, CommunityVersion, Request};
use super::value::{oid_arcs, VarValue};
use coldaisle_config::snmp::{
    AuthProtocol, PrivProtocol, SecurityLevel, SnmpSettings, SnmpVersion, UsmUser,
};
use snmp2::v3::{self, AuthErrorKind};
use snmp2::{AsyncSession, Oid, Pdu};
use std::time::Duration;
use tokio::time::{timeout, Instant};

/// Wait before resend number `attempt` (1 for the first resend): `backoff × 2^(attempt-1)`,
/// saturating (pure).
pub fn retry_delay(backoff: Duration, attempt: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX);
    backoff.saturating_mul(factor)
}

/// The settings one request's retry loop reads.
#[derive(Debug, Clone, Copy)]
struct RetrySettings {
    retries: u32,
    retry_backoff: Duration,
    request_timeout: Duration,
}

/// sysUpTime.0, asked by the diagnosis probes.
const SYS_UPTIME: [u64; 9] = [1, 3, 6, 1, 2, 1, 1, 3, 0];
/// Resynchronisations (time window, engine change) allowed within one request.
const MAX_RESYNCS: u32 = 3;

/// Where and how to talk SNMP to one device.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port`.
    pub address: String,
    /// v1/v2c community.
    pub community: String,
    /// Version, v3 user, timeouts and pacing.
    pub settings: SnmpSettings,
}

/// Why an SNMP request failed; every message names the device address.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SnmpError {
    /// No answer, every attempt timed out.
    #[error("no answer from {address} ({attempts} attempt(s), {per_request:?} each)")]
    Timeout {
        /// Device.
        address: String,
        /// Requests sent.
        attempts: u32,
        /// Deadline of each.
        per_request: Duration,
    },
    /// The device does not know the SNMPv3 user.
    #[error(
        "{address}: unknown SNMPv3 user `{user}` (the agent reports usmStatsUnknownUserNames)"
    )]
    UnknownUser {
        /// Device.
        address: String,
        /// User name.
        user: String,
    },
    /// The device rejected the authentication digest.
    #[error("{address}: authentication failed for SNMPv3 user `{user}`: wrong auth passphrase or auth protocol (using {protocol})")]
    WrongAuth {
        /// Device.
        address: String,
        /// User name.
        user: String,
        /// Auth protocol used.
        protocol: &'static str,
    },
    /// Authentication succeeds but encrypted requests are not understood.
    #[error("{address}: SNMPv3 user `{user}` authenticates but encrypted requests fail: wrong priv passphrase or privacy protocol (using {protocol})")]
    WrongPriv {
        /// Device.
        address: String,
        /// User name.
        user: String,
        /// Privacy protocol used.
        protocol: &'static str,
    },
    /// SNMPv3 engine discovery failed or the engine keeps changing.
    #[error("{address}: SNMPv3 engine discovery failed: {detail}")]
    Engine {
        /// Device.
        address: String,
        /// What happened.
        detail: String,
    },
    /// Socket or name resolution failure.
    #[error("{address}: {detail}")]
    Io {
        /// Device.
        address: String,
        /// What happened.
        detail: String,
    },
    /// An answer that cannot be used.
    #[error("{address}: {detail}")]
    Protocol {
        /// Device.
        address: String,
        /// What happened.
        detail: String,
    },
}

/// A response copied out of the session's buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// error-status (0 = noError; v1 2 = noSuchName).
    pub error_status: u32,
    /// error-index (1-based varbind position).
    pub error_index: u32,
    /// The varbinds, OIDs as arcs.
    pub varbinds: Vec<(Vec<u64>, VarValue)>,
}

impl Response {
    /// Copies an answer out of the buffer it was read into.
    pub(super) fn from_pdu(pdu: Pdu<'_>) -> Result<Response, String> {
        let mut varbinds = Vec::new();
        for (oid, value) in pdu.varbinds {
            let arcs = oid_arcs(&oid)
                .ok_or_else(|| format!("answer OID {oid} has an arc beyond 64 bits"))?;
            varbinds.push((arcs, VarValue::from_snmp(&value)));
        }
        Ok(Response {
            error_status: pdu.error_status,
            error_index: pdu.error_index,
            varbinds,
        })
    }
}

/// net-snmp's name of an error-status.
#[must_use]
pub fn error_status_name(status: u32) -> &'static str {
    match status {
        0 => "noError",
        1 => "tooBig",
        2 => "noSuchName",
        3 => "badValue",
        4 => "readOnly",
        5 => "genErr",
        6 => "noAccess",
        13 => "resourceUnavailable",
        16 => "authorizationError",
        _ => "error",
    }
}

/// A client for one device; see the module invariants.
pub struct SnmpClient {
    /// The device and settings.
    target: Target,
    /// The open session (with the v3 engine state), if any.
    session: Option<Session>,
    /// When the last request finished, for the pause between requests.
    last_request: Option<Instant>,
    /// Requests sent (including retries and discovery), for tests and benchmarks.
    requests: u64,
    /// Engine discoveries run (v3), for tests: once per engine.
    discoveries: u64,
}

impl std::fmt::Debug for SnmpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnmpClient")
            .field("address", &self.target.address)
            .field("version", &self.target.settings.version)
            .field("open", &self.session.is_some())
            .finish()
    }
}

impl SnmpClient {
    /// A client; nothing is sent until the first request.
    #[must_use]
    pub fn new(target: Target) -> SnmpClient {
        SnmpClient {
            target,
            session: None,
            last_request: None,
            requests: 0,
            discoveries: 0,
        }
    }

    /// The device and settings.
    #[must_use]
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Requests sent so far (every attempt and discovery counts).
    #[must_use]
    pub fn requests_sent(&self) -> u64 {
        self.requests
    }

    /// SNMPv3 engine discoveries (and key localisations) run so far.
    #[must_use]
    pub fn discoveries(&self) -> u64 {
        self.discoveries
    }

    /// Forgets the session (the next request opens a new socket and, for v3, rediscovers).
    pub fn reset(&mut self) {
        self.session = None;
    }

    /// GET of `oids` (one request; split large sets before calling).
    pub async fn get(&mut self, oids: &[Oid<'static>]) -> Result<Response, SnmpError> {
        self.request(Request::Get(oids)).await
    }

    /// GETNEXT of one OID.
    pub async fn get_next(&mut self, oid: &Oid<'static>) -> Result<Response, SnmpError> {
        self.request(Request::GetNext(oid)).await
    }

    /// GETBULK (no non-repeaters) of `oids` with `max_repetitions` (v2c and v3 only).
    pub async fn get_bulk(
        &mut self,
        oids: &[Oid<'static>],
        max_repetitions: u32,
    ) -> Result<Response, SnmpError> {
        if self.target.settings.version == SnmpVersion::V1 {
            return Err(self.protocol("GETBULK does not exist in SNMPv1".into()));
        }
        self.request(Request::GetBulk(oids, max_repetitions)).await
    }

    fn protocol(&self, detail: String) -> SnmpError {
        SnmpError::Protocol {
            address: self.target.address.clone(),
            detail,
        }
    }

    async fn pace(&mut self) {
        let pause = self.target.settings.pause;
        if let (Some(last), false) = (self.last_request, pause.is_zero()) {
            tokio::time::sleep_until(last + pause).await;
        }
    }

    async fn request(&mut self, op: Request<'_>) -> Result<Response, SnmpError> {
        // Only the retry settings: cloning all settings would copy every point's plan per request.
        let settings = RetrySettings {
            retries: self.target.settings.retries,
            retry_backoff: self.target.settings.retry_backoff,
            request_timeout: self.target.settings.request_timeout,
        };
        let mut attempts = 0u32;
        let mut resyncs = 0u32;
        loop {
            self.pace().await;
            if self.session.is_none() {
                match self.open().await {
                    Ok(()) => {}
                    Err(Opened::TimedOut) => {
                        attempts += 1;
                        if attempts > settings.retries {
                            return Err(self.timeout(attempts));
                        }
                        tokio::time::sleep(retry_delay(settings.retry_backoff, attempts)).await;
                        continue;
                    }
                    Err(Opened::Failed(e)) => return Err(e),
                }
            }
            let Some(session) = self.session.as_mut() else {
                continue;
            };
            self.requests += 1;
            let outcome = timeout(settings.request_timeout, run(session, op)).await;
            self.last_request = Some(Instant::now());
            let error = match outcome {
                Ok(Ok(Ok(response))) => return Ok(response),
                Ok(Ok(Err(detail))) => return Err(self.protocol(detail)),
                Ok(Err(e)) => e,
                Err(_) => {
                    attempts += 1;
                    if attempts > settings.retries {
                        let err = self.timeout(attempts);
                        return Err(self.diagnosed(err, true).await);
                    }
                    let wait = retry_delay(settings.retry_backoff, attempts);
                    tracing::debug!(address = %self.target.address, attempts, backoff = ?wait, "SNMP request timed out, retrying");
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            match error {
                // Engine boots/time learnt from a report: send again with the new values.
                snmp2::Error::AuthUpdated if resyncs < MAX_RESYNCS => resyncs += 1,
                // notInTimeWindow or a rebooted/replaced engine: rediscover, then send again.
                snmp2::Error::AuthFailure(
                    AuthErrorKind::EngineTimeMismatch
                    | AuthErrorKind::EngineBootsMismatch
                    | AuthErrorKind::EngineIdMismatch,
                ) if resyncs < MAX_RESYNCS => {
                    resyncs += 1;
                    tracing::debug!(address = %self.target.address, error = %error, "SNMPv3 engine resynchronisation");
                    self.session = None;
                }
                // A late answer to an earlier request: a fresh socket leaves the others behind.
                snmp2::Error::RequestIdMismatch if resyncs < MAX_RESYNCS => {
                    resyncs += 1;
                    self.session = None;
                }
                other => {
                    let err = self.classify(&other);
                    if matches!(
                        other,
                        snmp2::Error::AuthFailure(_) | snmp2::Error::Crypto(_)
                    ) {
                        self.session = None;
                    }
                    return Err(self.diagnosed(err, false).await);
                }
            }
        }
    }

    fn timeout(&self, attempts: u32) -> SnmpError {
        SnmpError::Timeout {
            address: self.target.address.clone(),
            attempts,
            per_request: self.target.settings.request_timeout,
        }
    }

    fn classify(&self, error: &snmp2::Error) -> SnmpError {
        let address = self.target.address.clone();
        let usm = self.target.settings.usm.as_ref();
        let user = usm.map(|u| u.user.clone()).unwrap_or_default();
        match error {
            snmp2::Error::AuthFailure(AuthErrorKind::SignatureMismatch) => SnmpError::WrongAuth {
                address,
                user,
                protocol: usm.map_or("-", |u| u.auth_protocol.name()),
            },
            snmp2::Error::Crypto(_) => SnmpError::WrongPriv {
                address,
                user,
                protocol: usm.map_or("-", |u| u.priv_protocol.name()),
            },
            snmp2::Error::CommunityMismatch => SnmpError::Protocol {
                address,
                detail: "answer carries another community or user".into(),
            },
            snmp2::Error::Send | snmp2::Error::Receive => SnmpError::Io {
                address,
                detail: format!("{error} (is the port reachable?)"),
            },
            other => SnmpError::Protocol {
                address,
                detail: format!("unusable answer: {other}"),
            },
        }
    }

    /// Replaces a v3 failure by what the probes prove (unknown user, wrong auth or priv).
    async fn diagnosed(&mut self, error: SnmpError, after_timeout: bool) -> SnmpError {
        let Some(usm) = self.target.settings.usm.clone() else {
            return error;
        };
        // A device that never answered discovery is simply down: no probes.
        if after_timeout && self.discoveries == 0 {
            return error;
        }
        if !after_timeout
            && !matches!(
                error,
                SnmpError::Protocol { .. } | SnmpError::WrongPriv { .. }
            )
        {
            return error;
        }
        match diagnose(&self.target, &usm).await {
            Some(found) => found,
            None => error,
        }
    }

    async fn open(&mut self) -> Result<(), Opened> {
        let t = &self.target;
        let address = t.address.as_str();
        let io = |e: std::io::Error| {
            Opened::Failed(SnmpError::Io {
                address: address.to_string(),
                detail: format!("open UDP session: {e}"),
            })
        };
        let session = match (t.settings.version, &t.settings.usm) {
            (SnmpVersion::V1, _) => Session::Community(
                CommunitySession::open(address, CommunityVersion::V1, t.community.as_bytes(), 1)
                    .await
                    .map_err(io)?,
            ),
            (SnmpVersion::V2c, _) => Session::Community(
                CommunitySession::open(address, CommunityVersion::V2c, t.community.as_bytes(), 1)
                    .await
                    .map_err(io)?,
            ),
            (SnmpVersion::V3, Some(usm)) => {
                let mut session = AsyncSession::new_v3(address, 1, security(usm, usm.level))
                    .await
                    .map_err(io)?;
                self.requests += 1;
                self.discoveries += 1;
                match timeout(t.settings.request_timeout, session.init()).await {
                    Err(_) => return Err(Opened::TimedOut),
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        return Err(Opened::Failed(SnmpError::Engine {
                            address: address.to_string(),
                            detail: format!("{e} (does the device speak SNMPv3?)"),
                        }))
                    }
                }
                Session::V3(Box::new(session))
            }
            (SnmpVersion::V3, None) => {
                return Err(Opened::Failed(SnmpError::Engine {
                    address: address.to_string(),
                    detail: "no SNMPv3 user configured".into(),
                }))
            }
        };
        self.session = Some(session);
        Ok(())
    }
}

/// An open conversation: v1/v2c without buffers of its own, v3 through snmp2 (boxed: it holds
/// its two 64 KiB buffers inline only behind the box).
enum Session {
    /// v1 or v2c.
    Community(CommunitySession),
    /// v3 (USM).
    V3(Box<AsyncSession>),
}

/// Why a session could not be opened.
enum Opened {
    /// Discovery got no answer in time (counts as an attempt).
    TimedOut,
    /// Anything else (final).
    Failed(SnmpError),
}

async fn run(
    session: &mut Session,
    op: Request<'_>,
) -> Result<Result<Response, String>, snmp2::Error> {
    let session = match session {
        Session::Community(session) => return session.request(op).await,
        Session::V3(session) => session,
    };
    let pdu = match op {
        Request::Get(oids) => {
            let refs: Vec<&Oid<'_>> = oids.iter().collect();
            session.get_many(&refs).await?
        }
        Request::GetNext(oid) => session.getnext(oid).await?,
        Request::GetBulk(oids, max_repetitions) => {
            let refs: Vec<&Oid<'_>> = oids.iter().collect();
            session.getbulk(&refs, 0, max_repetitions).await?
        }
    };
    Ok(Response::from_pdu(pdu))
}

/// snmp2's security settings for `usm` at `level` (diagnosis probes lower the level).
fn security(usm: &UsmUser, level: SecurityLevel) -> v3::Security {
    let auth_pass = usm
        .auth_passphrase
        .as_ref()
        .map(|s| s.expose().as_bytes())
        .unwrap_or_default();
    let auth = match level {
        SecurityLevel::NoAuthNoPriv => v3::Auth::NoAuthNoPriv,
        SecurityLevel::AuthNoPriv => v3::Auth::AuthNoPriv,
        SecurityLevel::AuthPriv => v3::Auth::AuthPriv {
            cipher: cipher(usm.priv_protocol),
            privacy_password: usm
                .priv_passphrase
                .as_ref()
                .map(|s| s.expose().as_bytes().to_vec())
                .unwrap_or_default(),
        },
    };
    v3::Security::new(usm.user.as_bytes(), auth_pass)
        .with_auth_protocol(auth_protocol(usm.auth_protocol))
        .with_auth(auth)
        // net-snmp's AES-192/256 extend short keys the Blumenthal way.
        .with_key_extension_method(v3::KeyExtension::Blumenthal)
        .with_context_name(&usm.context)
}

fn auth_protocol(p: AuthProtocol) -> v3::AuthProtocol {
    match p {
        AuthProtocol::Md5 => v3::AuthProtocol::Md5,
        AuthProtocol::Sha1 => v3::AuthProtocol::Sha1,
        AuthProtocol::Sha224 => v3::AuthProtocol::Sha224,
        AuthProtocol::Sha256 => v3::AuthProtocol::Sha256,
        AuthProtocol::Sha384 => v3::AuthProtocol::Sha384,
        AuthProtocol::Sha512 => v3::AuthProtocol::Sha512,
    }
}

fn cipher(p: PrivProtocol) -> v3::Cipher {
    match p {
        PrivProtocol::Des => v3::Cipher::Des,
        PrivProtocol::Aes128 => v3::Cipher::Aes128,
        PrivProtocol::Aes192 => v3::Cipher::Aes192,
        PrivProtocol::Aes256 => v3::Cipher::Aes256,
    }
}

/// What a probe at a lower security level got.
enum Probe {
    /// An authenticated (or plain) response, whatever its error-status: the level works.
    Answered,
    /// A report or an authentication failure: the level is refused.
    Refused,
    /// No answer or something else: proves nothing.
    Unknown,
}

async fn probe(target: &Target, usm: &UsmUser, level: SecurityLevel) -> Probe {
    let Ok(oid) = Oid::from(&SYS_UPTIME) else {
        return Probe::Unknown;
    };
    let per = target.settings.request_timeout;
    let Ok(mut session) =
        AsyncSession::new_v3(target.address.as_str(), 7, security(usm, level)).await
    else {
        return Probe::Unknown;
    };
    match timeout(per, session.init()).await {
        Ok(Ok(())) => {}
        _ => return Probe::Unknown,
    }
    for _ in 0..MAX_RESYNCS {
        match timeout(per, session.get(&oid)).await {
            Ok(Ok(_)) => return Probe::Answered,
            Ok(Err(snmp2::Error::AuthUpdated)) => continue,
            Ok(Err(
                snmp2::Error::AsnWrongType
                | snmp2::Error::AuthFailure(
                    AuthErrorKind::NotAuthenticated | AuthErrorKind::SignatureMismatch,
                ),
            )) => return Probe::Refused,
            _ => return Probe::Unknown,
        }
    }
    Probe::Unknown
}

/// Which part of the v3 credentials is wrong, proven with probes at lower security levels.
async fn diagnose(target: &Target, usm: &UsmUser) -> Option<SnmpError> {
    let address = target.address.clone();
    let user = usm.user.clone();
    match probe(target, usm, SecurityLevel::NoAuthNoPriv).await {
        Probe::Refused => return Some(SnmpError::UnknownUser { address, user }),
        Probe::Unknown => return None,
        Probe::Answered => {}
    }
    if usm.level == SecurityLevel::NoAuthNoPriv {
        return None;
    }
    match probe(target, usm, SecurityLevel::AuthNoPriv).await {
        Probe::Refused => Some(SnmpError::WrongAuth {
            address,
            user,
            protocol: usm.auth_protocol.name(),
        }),
        Probe::Answered if usm.level == SecurityLevel::AuthPriv => Some(SnmpError::WrongPriv {
            address,
            user,
            protocol: usm.priv_protocol.name(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod backoff_tests {
    use super::*;

    #[test]
    fn delay_doubles_per_resend_and_saturates() {
        let b = Duration::from_millis(100);
        assert_eq!(retry_delay(b, 1), b);
        assert_eq!(retry_delay(b, 2), b * 2);
        assert_eq!(retry_delay(b, 3), b * 4);
        assert_eq!(retry_delay(Duration::ZERO, 5), Duration::ZERO);
        assert_eq!(retry_delay(Duration::MAX, 40), Duration::MAX);
    }

    #[tokio::test]
    async fn resends_to_a_silent_device_wait_the_backoff() {
        // A device that never answers: every datagram is counted, none answered.
        let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = silent.local_addr().unwrap().to_string();
        let counter = tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let mut n = 0;
            while tokio::time::timeout(Duration::from_millis(700), silent.recv_from(&mut buf))
                .await
                .is_ok()
            {
                n += 1;
            }
            n
        });
        let mut settings = SnmpSettings::defaults(Duration::from_secs(2));
        settings.request_timeout = Duration::from_millis(50);
        settings.retries = 2;
        settings.retry_backoff = Duration::from_millis(100);
        let mut client = SnmpClient::new(Target {
            address,
            community: "public".into(),
            settings,
        });
        let oid = Oid::from(&[1, 3, 6, 1, 2, 1, 1, 3, 0]).unwrap();
        let started = Instant::now();
        assert!(client.get(&[oid]).await.is_err());
        // 3 sends of 50 ms plus 100 ms and 200 ms of backoff (without backoff: 150 ms).
        assert!(
            started.elapsed() >= Duration::from_millis(450),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(client.requests_sent(), 3);
        assert_eq!(counter.await.unwrap(), 3);
    }
}
