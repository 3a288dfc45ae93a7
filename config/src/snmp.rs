//! SNMP settings of one device (`[devices.snmp]`): protocol version, the SNMPv3 user with its
//! security level, protocols and passphrases (inline, from a file or from an environment
//! variable), and request pacing (per-request timeout, retries, OIDs per request, GETBULK
//! max-repetitions, pause between requests).
//!
//! ```toml
//! [devices.snmp]
//! version = "3"                      # "1", "2c" (default) or "3"; v1/v2c use the device's `community`
//! user = "ops"
//! level = "authPriv"                 # noAuthNoPriv | authNoPriv | authPriv (default: from the passphrases given)
//! auth_protocol = "SHA-256"          # MD5, SHA (SHA-1), SHA-224, SHA-256, SHA-384, SHA-512
//! auth_passphrase_file = "/etc/coldaisle/snmp-auth"   # or auth_passphrase = "…" or auth_passphrase_env = "VAR"
//! priv_protocol = "AES"              # DES, AES (AES-128), AES-192, AES-256
//! priv_passphrase_env = "PDU_PRIV"   # or priv_passphrase = "…" or priv_passphrase_file = "…"
//! request_timeout = "1s"             # one request; default: device timeout / (retries + 1)
//! retries = 1                        # resends after a request timed out
//! retry_backoff = "0ms"              # wait before resend n: retry_backoff × 2^(n-1) (default none)
//! max_oids_per_request = 50          # larger GETs are split; lowered by itself for a device that needs it (below)
//! max_concurrent_requests = 1        # split GETs in flight at once (each its own session), 1..=16
//! max_repetitions = 10               # GETBULK rows per request in table walks
//! pause = "0ms"                      # silence between two requests to the device
//! ```
//!
//! `max_oids_per_request` defaults to [`DEFAULT_MAX_OIDS`] (50). Why 50: in the peers benchmark
//! (BENCHMARKS.md, "Peers side by side on one snmpd") 50 OIDs per GET cost the daemon about a
//! third less CPU and snmpd 40–50 % less per point than 16, and met both goals (≥ 5×
//! snmp_exporter, ≥ 15× collectd) at every size where 16 missed them at 10 targets. An answer
//! of 50 sensor values (OIDs of up to 17 arcs, e.g. APC rPDU2 or ENTITY-SENSOR-MIB columns)
//! takes about 1,300 octets, under the 1,472 of one Ethernet frame, so it is not fragmented.
//! A device with a smaller message size (RFC 3417's minimum is 484 octets: older PDU and UPS
//! cards) is handled by the poller: a tooBig answer, or silence to a large GET while one OID is
//! answered (net-snmp drops an answer above its `sendMessageMaxSize`), halves that device's
//! GETs from then on, logged once with the device id; after a tooBig no point is lost.
//!
//! Passphrases are [`Secret`](crate::Secret)s: their `Debug` never shows them, so a logged
//! config is safe.

use crate::agent::Protocol;
use crate::error::{KeyPath, Problem};
use serde::Deserialize;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Largest GETBULK max-repetitions accepted (a response must still fit in one datagram).
pub const MAX_REPETITIONS_LIMIT: u32 = 200;
/// Largest number of OIDs per request accepted.
pub const MAX_OIDS_LIMIT: usize = 128;
/// `max_oids_per_request` when not set (see the module docs for why 50).
pub const DEFAULT_MAX_OIDS: usize = 50;
/// Largest number of concurrent requests to one device accepted.
pub const MAX_CONCURRENT_LIMIT: usize = 16;

/// Passphrases are the crate's [`Secret`](crate::Secret): never shown by `Debug`.
pub use crate::mqtt::Secret;

/// SNMP protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum SnmpVersion {
    /// SNMPv1 (community; no GETBULK, no Counter64).
    V1,
    /// SNMPv2c (community).
    #[default]
    V2c,
    /// SNMPv3 (user-based security model).
    V3,
}

impl FromStr for SnmpVersion {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "1" | "v1" => Ok(SnmpVersion::V1),
            "2c" | "v2c" | "2" => Ok(SnmpVersion::V2c),
            "3" | "v3" => Ok(SnmpVersion::V3),
            _ => Err(format!("unknown SNMP version `{text}`; use 1, 2c or 3")),
        }
    }
}

impl TryFrom<String> for SnmpVersion {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl SnmpVersion {
    /// The name net-snmp's `-v` takes.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            SnmpVersion::V1 => "1",
            SnmpVersion::V2c => "2c",
            SnmpVersion::V3 => "3",
        }
    }
}

/// SNMPv3 security level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum SecurityLevel {
    /// Neither authentication nor privacy.
    NoAuthNoPriv,
    /// Authentication (HMAC), no encryption.
    AuthNoPriv,
    /// Authentication and encryption.
    AuthPriv,
}

impl FromStr for SecurityLevel {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "noauthnopriv" | "noauth" | "nanp" => Ok(SecurityLevel::NoAuthNoPriv),
            "authnopriv" | "auth" | "anp" => Ok(SecurityLevel::AuthNoPriv),
            "authpriv" | "priv" | "ap" => Ok(SecurityLevel::AuthPriv),
            _ => Err(format!(
                "unknown security level `{text}`; use noAuthNoPriv, authNoPriv or authPriv"
            )),
        }
    }
}

impl TryFrom<String> for SecurityLevel {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl SecurityLevel {
    /// The name net-snmp's `-l` takes.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            SecurityLevel::NoAuthNoPriv => "noAuthNoPriv",
            SecurityLevel::AuthNoPriv => "authNoPriv",
            SecurityLevel::AuthPriv => "authPriv",
        }
    }
}

/// SNMPv3 authentication protocol (HMAC digest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum AuthProtocol {
    /// HMAC-MD5-96.
    Md5,
    /// HMAC-SHA-96 (SHA-1).
    #[default]
    Sha1,
    /// HMAC-SHA-224 (RFC 7860).
    Sha224,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-384.
    Sha384,
    /// HMAC-SHA-512.
    Sha512,
}

impl FromStr for AuthProtocol {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_uppercase().replace('_', "-").as_str() {
            "MD5" => Ok(AuthProtocol::Md5),
            "SHA" | "SHA1" | "SHA-1" => Ok(AuthProtocol::Sha1),
            "SHA224" | "SHA-224" => Ok(AuthProtocol::Sha224),
            "SHA256" | "SHA-256" => Ok(AuthProtocol::Sha256),
            "SHA384" | "SHA-384" => Ok(AuthProtocol::Sha384),
            "SHA512" | "SHA-512" => Ok(AuthProtocol::Sha512),
            _ => Err(format!(
                "unknown auth protocol `{text}`; use MD5, SHA, SHA-224, SHA-256, SHA-384 or SHA-512"
            )),
        }
    }
}

impl TryFrom<String> for AuthProtocol {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl AuthProtocol {
    /// The name net-snmp's `-a` takes.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            AuthProtocol::Md5 => "MD5",
            AuthProtocol::Sha1 => "SHA",
            AuthProtocol::Sha224 => "SHA-224",
            AuthProtocol::Sha256 => "SHA-256",
            AuthProtocol::Sha384 => "SHA-384",
            AuthProtocol::Sha512 => "SHA-512",
        }
    }
}

/// SNMPv3 privacy protocol (cipher).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum PrivProtocol {
    /// CBC-DES (RFC 3414); weak, for old devices only.
    Des,
    /// CFB128-AES-128 (RFC 3826).
    #[default]
    Aes128,
    /// CFB128-AES-192 (key extension as net-snmp does it).
    Aes192,
    /// CFB128-AES-256 (key extension as net-snmp does it).
    Aes256,
}

impl FromStr for PrivProtocol {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_uppercase().replace('_', "-").as_str() {
            "DES" => Ok(PrivProtocol::Des),
            "AES" | "AES128" | "AES-128" => Ok(PrivProtocol::Aes128),
            "AES192" | "AES-192" => Ok(PrivProtocol::Aes192),
            "AES256" | "AES-256" => Ok(PrivProtocol::Aes256),
            _ => Err(format!(
                "unknown privacy protocol `{text}`; use DES, AES, AES-192 or AES-256"
            )),
        }
    }
}

impl TryFrom<String> for PrivProtocol {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl PrivProtocol {
    /// The name net-snmp's `-x` takes.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            PrivProtocol::Des => "DES",
            PrivProtocol::Aes128 => "AES",
            PrivProtocol::Aes192 => "AES-192",
            PrivProtocol::Aes256 => "AES-256",
        }
    }
}

/// `[devices.snmp]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSnmpSettings {
    /// "1", "2c" (default) or "3".
    #[serde(default)]
    pub version: Option<SnmpVersion>,
    /// SNMPv3 user name.
    #[serde(default)]
    pub user: Option<String>,
    /// SNMPv3 security level; default from the passphrases given.
    #[serde(default)]
    pub level: Option<SecurityLevel>,
    /// Authentication protocol (default SHA).
    #[serde(default)]
    pub auth_protocol: Option<AuthProtocol>,
    /// Authentication passphrase inline (prefer `_file` or `_env`).
    #[serde(default)]
    pub auth_passphrase: Option<String>,
    /// File holding the authentication passphrase (first line).
    #[serde(default)]
    pub auth_passphrase_file: Option<PathBuf>,
    /// Environment variable holding the authentication passphrase.
    #[serde(default)]
    pub auth_passphrase_env: Option<String>,
    /// Privacy protocol (default AES).
    #[serde(default)]
    pub priv_protocol: Option<PrivProtocol>,
    /// Privacy passphrase inline (prefer `_file` or `_env`).
    #[serde(default)]
    pub priv_passphrase: Option<String>,
    /// File holding the privacy passphrase (first line).
    #[serde(default)]
    pub priv_passphrase_file: Option<PathBuf>,
    /// Environment variable holding the privacy passphrase.
    #[serde(default)]
    pub priv_passphrase_env: Option<String>,
    /// SNMPv3 context name (default empty).
    #[serde(default)]
    pub context: Option<String>,
    /// Deadline of one request.
    #[serde(default, with = "humantime_serde")]
    pub request_timeout: Option<Duration>,
    /// Resends after a request timed out.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Wait before the first resend, doubled for each further one.
    #[serde(default, with = "humantime_serde")]
    pub retry_backoff: Option<Duration>,
    /// Most OIDs in one GET.
    #[serde(default)]
    pub max_oids_per_request: Option<usize>,
    /// GETs of one poll in flight at once.
    #[serde(default)]
    pub max_concurrent_requests: Option<usize>,
    /// GETBULK max-repetitions of table walks.
    #[serde(default)]
    pub max_repetitions: Option<u32>,
    /// Silence between two requests.
    #[serde(default, with = "humantime_serde")]
    pub pause: Option<Duration>,
}

/// The SNMPv3 user of a device, resolved (passphrases read).
#[derive(Debug, Clone, PartialEq)]
pub struct UsmUser {
    /// User name.
    pub user: String,
    /// Security level.
    pub level: SecurityLevel,
    /// Authentication protocol (used from authNoPriv up).
    pub auth_protocol: AuthProtocol,
    /// Authentication passphrase (authNoPriv, authPriv).
    pub auth_passphrase: Option<Secret>,
    /// Privacy protocol (authPriv).
    pub priv_protocol: PrivProtocol,
    /// Privacy passphrase (authPriv).
    pub priv_passphrase: Option<Secret>,
    /// Context name.
    pub context: String,
}

/// Resolved SNMP settings of a device.
#[derive(Debug, Clone, PartialEq)]
pub struct SnmpSettings {
    /// Protocol version.
    pub version: SnmpVersion,
    /// The v3 user (version 3 only).
    pub usm: Option<UsmUser>,
    /// Deadline of one request.
    pub request_timeout: Duration,
    /// Resends after a timeout.
    pub retries: u32,
    /// Wait before the first resend, doubled for each further one (zero: resend at once).
    pub retry_backoff: Duration,
    /// Most OIDs in one GET.
    pub max_oids_per_request: usize,
    /// GETs of one poll in flight at once (1: one after the other).
    pub max_concurrent_requests: usize,
    /// GETBULK max-repetitions.
    pub max_repetitions: u32,
    /// Silence between two requests.
    pub pause: Duration,
    /// Row selection and decoding of each point, in sensor order (empty until resolved).
    pub points: Vec<SnmpPoint>,
}

impl SnmpSettings {
    /// Defaults for a device with deadline `device_timeout`: v2c, one retry,
    /// [`DEFAULT_MAX_OIDS`] OIDs per GET.
    #[must_use]
    pub fn defaults(device_timeout: Duration) -> SnmpSettings {
        SnmpSettings {
            version: SnmpVersion::V2c,
            usm: None,
            request_timeout: (device_timeout / 2).max(Duration::from_millis(1)),
            retries: 1,
            retry_backoff: Duration::ZERO,
            max_oids_per_request: DEFAULT_MAX_OIDS,
            max_concurrent_requests: 1,
            max_repetitions: 10,
            pause: Duration::ZERO,
            points: Vec::new(),
        }
    }
}

/// Reads a secret given inline, from a file or from an environment variable (at most one).
pub fn read_secret(
    inline: Option<&str>,
    file: Option<&std::path::Path>,
    env: Option<&str>,
) -> Result<Option<Secret>, String> {
    let given =
        usize::from(inline.is_some()) + usize::from(file.is_some()) + usize::from(env.is_some());
    if given > 1 {
        return Err("give the passphrase one way only: inline, `_file` or `_env`".into());
    }
    if let Some(text) = inline {
        return Ok(Some(Secret::from(text)));
    }
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        return Ok(Some(Secret::from(text.lines().next().unwrap_or(""))));
    }
    if let Some(var) = env {
        return std::env::var(var)
            .map(|v| Some(Secret::from(v)))
            .map_err(|_| format!("environment variable {var} is not set (or not UTF-8)"));
    }
    Ok(None)
}

fn secret(
    inline: Option<&String>,
    file: Option<&PathBuf>,
    env: Option<&String>,
    at: &KeyPath,
    name: &str,
) -> Result<Option<Secret>, Problem> {
    let value = read_secret(
        inline.map(String::as_str),
        file.map(PathBuf::as_path),
        env.map(String::as_str),
    )
    .map_err(|e| Problem::new(at.key(name), e))?;
    if let Some(s) = &value {
        if s.expose().len() < 8 {
            return Err(Problem::new(
                at.key(name),
                "SNMPv3 passphrases have at least 8 characters (RFC 3414, net-snmp)",
            ));
        }
    }
    Ok(value)
}

/// The SNMPv3 user keys as written, in `[devices.snmp]` and in `[[snmp_traps.users]]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUsmUser {
    /// SNMPv3 user name.
    #[serde(default)]
    pub user: Option<String>,
    /// Security level; default from the passphrases given.
    #[serde(default)]
    pub level: Option<SecurityLevel>,
    /// Authentication protocol (default SHA).
    #[serde(default)]
    pub auth_protocol: Option<AuthProtocol>,
    /// Authentication passphrase inline (prefer `_file` or `_env`).
    #[serde(default)]
    pub auth_passphrase: Option<String>,
    /// File holding the authentication passphrase (first line).
    #[serde(default)]
    pub auth_passphrase_file: Option<PathBuf>,
    /// Environment variable holding the authentication passphrase.
    #[serde(default)]
    pub auth_passphrase_env: Option<String>,
    /// Privacy protocol (default AES-128).
    #[serde(default)]
    pub priv_protocol: Option<PrivProtocol>,
    /// Privacy passphrase inline (prefer `_file` or `_env`).
    #[serde(default)]
    pub priv_passphrase: Option<String>,
    /// File holding the privacy passphrase (first line).
    #[serde(default)]
    pub priv_passphrase_file: Option<PathBuf>,
    /// Environment variable holding the privacy passphrase.
    #[serde(default)]
    pub priv_passphrase_env: Option<String>,
    /// SNMPv3 context name (default empty).
    #[serde(default)]
    pub context: Option<String>,
}

impl RawSnmpSettings {
    /// The SNMPv3 user keys of this table.
    fn usm_part(&self) -> RawUsmUser {
        RawUsmUser {
            user: self.user.clone(),
            level: self.level,
            auth_protocol: self.auth_protocol,
            auth_passphrase: self.auth_passphrase.clone(),
            auth_passphrase_file: self.auth_passphrase_file.clone(),
            auth_passphrase_env: self.auth_passphrase_env.clone(),
            priv_protocol: self.priv_protocol,
            priv_passphrase: self.priv_passphrase.clone(),
            priv_passphrase_file: self.priv_passphrase_file.clone(),
            priv_passphrase_env: self.priv_passphrase_env.clone(),
            context: self.context.clone(),
        }
    }
}

/// Validates an SNMPv3 user at `at`: a name of 1..=32 bytes, passphrases of at least 8
/// characters read one way each, and a level that matches the passphrases given.
pub(crate) fn resolve_usm(raw: &RawUsmUser, at: &KeyPath) -> Result<UsmUser, Problem> {
    let user = raw
        .user
        .clone()
        .filter(|u| !u.is_empty() && u.len() <= 32)
        .ok_or_else(|| Problem::new(at.key("user"), "SNMPv3 needs a user name (1..=32 bytes)"))?;
    let auth = secret(
        raw.auth_passphrase.as_ref(),
        raw.auth_passphrase_file.as_ref(),
        raw.auth_passphrase_env.as_ref(),
        at,
        "auth_passphrase",
    )?;
    let privacy = secret(
        raw.priv_passphrase.as_ref(),
        raw.priv_passphrase_file.as_ref(),
        raw.priv_passphrase_env.as_ref(),
        at,
        "priv_passphrase",
    )?;
    let level = raw.level.unwrap_or(match (&auth, &privacy) {
        (Some(_), Some(_)) => SecurityLevel::AuthPriv,
        (Some(_), None) => SecurityLevel::AuthNoPriv,
        _ => SecurityLevel::NoAuthNoPriv,
    });
    match level {
        SecurityLevel::NoAuthNoPriv if auth.is_some() || privacy.is_some() => {
            return Err(Problem::new(
                at.key("level"),
                "noAuthNoPriv takes no passphrases",
            ))
        }
        SecurityLevel::AuthNoPriv if auth.is_none() || privacy.is_some() => {
            return Err(Problem::new(
                at.key("auth_passphrase"),
                "authNoPriv needs an auth passphrase and no priv passphrase",
            ))
        }
        SecurityLevel::AuthPriv if auth.is_none() || privacy.is_none() => {
            return Err(Problem::new(
                at.key(if auth.is_none() {
                    "auth_passphrase"
                } else {
                    "priv_passphrase"
                }),
                "authPriv needs both an auth and a priv passphrase",
            ))
        }
        _ => {}
    }
    Ok(UsmUser {
        user,
        level,
        auth_protocol: raw.auth_protocol.unwrap_or_default(),
        auth_passphrase: auth,
        priv_protocol: raw.priv_protocol.unwrap_or_default(),
        priv_passphrase: privacy,
        context: raw.context.clone().unwrap_or_default(),
    })
}

/// Validates `[devices.snmp]` of the device at `at` (whose deadline is `device_timeout`).
pub(crate) fn resolve(
    raw: Option<&RawSnmpSettings>,
    protocol: Protocol,
    device_timeout: Duration,
    at: &KeyPath,
) -> Result<SnmpSettings, Problem> {
    let mut settings = SnmpSettings::defaults(device_timeout);
    let Some(raw) = raw else {
        return Ok(settings);
    };
    let at = at.key("snmp");
    if protocol != Protocol::Snmp {
        return Err(Problem::new(at, "only SNMP devices have SNMP settings"));
    }
    settings.version = raw.version.unwrap_or_default();
    if let Some(r) = raw.retries {
        if r > 10 {
            return Err(Problem::new(at.key("retries"), "at most 10"));
        }
        settings.retries = r;
    }
    settings.request_timeout = match raw.request_timeout {
        Some(t) if t.is_zero() || t > device_timeout => {
            return Err(Problem::new(
                at.key("request_timeout"),
                "must be above zero and at most the device's timeout",
            ))
        }
        Some(t) => t,
        None => (device_timeout / (settings.retries + 1)).max(Duration::from_millis(1)),
    };
    if let Some(n) = raw.max_oids_per_request {
        if n == 0 || n > MAX_OIDS_LIMIT {
            return Err(Problem::new(
                at.key("max_oids_per_request"),
                format!("must be 1..={MAX_OIDS_LIMIT}"),
            ));
        }
        settings.max_oids_per_request = n;
    }
    if let Some(n) = raw.max_concurrent_requests {
        if n == 0 || n > MAX_CONCURRENT_LIMIT {
            return Err(Problem::new(
                at.key("max_concurrent_requests"),
                format!("must be 1..={MAX_CONCURRENT_LIMIT}"),
            ));
        }
        settings.max_concurrent_requests = n;
    }
    if let Some(n) = raw.max_repetitions {
        if n == 0 || n > MAX_REPETITIONS_LIMIT {
            return Err(Problem::new(
                at.key("max_repetitions"),
                format!("must be 1..={MAX_REPETITIONS_LIMIT}"),
            ));
        }
        settings.max_repetitions = n;
    }
    settings.retry_backoff = raw.retry_backoff.unwrap_or(Duration::ZERO);
    if settings.retry_backoff >= device_timeout {
        return Err(Problem::new(
            at.key("retry_backoff"),
            "must be below the device's timeout",
        ));
    }
    settings.pause = raw.pause.unwrap_or(Duration::ZERO);
    if settings.pause >= device_timeout {
        return Err(Problem::new(
            at.key("pause"),
            "must be below the device's timeout",
        ));
    }
    let v3_keys = raw.user.is_some()
        || raw.level.is_some()
        || raw.auth_protocol.is_some()
        || raw.priv_protocol.is_some()
        || raw.auth_passphrase.is_some()
        || raw.auth_passphrase_file.is_some()
        || raw.auth_passphrase_env.is_some()
        || raw.priv_passphrase.is_some()
        || raw.priv_passphrase_file.is_some()
        || raw.priv_passphrase_env.is_some()
        || raw.context.is_some();
    if settings.version != SnmpVersion::V3 {
        if v3_keys {
            return Err(Problem::new(
                at.key("version"),
                "user, level, protocols and passphrases need `version = \"3\"`",
            ));
        }
        return Ok(settings);
    }
    settings.usm = Some(resolve_usm(&raw.usm_part(), &at)?);
    Ok(settings)
}

/// How one point's value is read from a table row (`[devices.points.snmp]`, also in profiles).
///
/// ```toml
/// [[devices.points]]
/// sensor = "r12-inlet"
/// kind = "inlet_temp"
/// oid = "1.3.6.1.2.1.99.1.1.1.4"            # the value column (entPhySensorValue)
/// [devices.points.snmp]
/// name_column = "1.3.6.1.2.1.47.1.1.1.1.7"  # entPhysicalName: the row whose name is row_name
/// row_name = "Inlet Temp 1"
/// decode = "entity-sensor"                  # plain | entity-sensor | decimal-digits | units
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSnmpPoint {
    /// Fixed row index appended to the column (`"3"`, `"1.2"`).
    #[serde(default)]
    pub index: Option<String>,
    /// Column whose values name the rows (entPhysicalName, rPDU2 sensor name, ...).
    #[serde(default)]
    pub name_column: Option<String>,
    /// The row name to look for in `name_column` (exact match after trimming).
    #[serde(default)]
    pub row_name: Option<String>,
    /// How the row's columns combine into the value.
    #[serde(default)]
    pub decode: Option<Decode>,
    /// `decode = "decimal-digits"`: column holding the number of decimal digits.
    #[serde(default)]
    pub digits_column: Option<String>,
    /// `decode = "units"`: column holding the unit (1 = °C, 2 = °F).
    #[serde(default)]
    pub units_column: Option<String>,
}

/// How a row's columns combine into one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decode {
    /// The value as is (then the point's scale and offset).
    #[default]
    Plain,
    /// ENTITY-SENSOR-MIB (RFC 3433): value × 10^scale × 10^-precision from the sibling columns
    /// entPhySensorType (1), Scale (2), Precision (3); entPhySensorOperStatus (5) ≠ ok is a
    /// sensor fault. `oid` is the entPhySensorValue column (…99.1.1.1.4).
    EntitySensor,
    /// value ÷ 10^digits, digits read from `digits_column` of the same row (Raritan PX2).
    DecimalDigits,
    /// A temperature whose unit is in `units_column` of the same row: 1 = °C, 2 = °F
    /// (APC environmental probes); converted to °C.
    Units,
}

/// Which row of a column a point reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowSelector {
    /// The point's `oid` is a complete instance OID.
    Instance,
    /// A fixed index appended to the column.
    Index(Vec<u64>),
    /// The row whose `column` value equals `name`, found by walking the column.
    Name {
        /// The naming column.
        column: Vec<u64>,
        /// The name looked for.
        name: String,
    },
}

/// A resolved SNMP point: row selection and decoding (the OID itself is the sensor's source).
#[derive(Debug, Clone, PartialEq)]
pub struct SnmpPoint {
    /// Which row.
    pub row: RowSelector,
    /// How the value is computed.
    pub decode: Decode,
    /// Further columns of the row the decode reads, in the order [`Decode`] documents:
    /// entity-sensor: type, scale, precision, operStatus; decimal-digits: digits; units: unit.
    pub extra_columns: Vec<Vec<u64>>,
}

impl SnmpPoint {
    /// A plain point reading a complete instance OID.
    #[must_use]
    pub fn plain() -> SnmpPoint {
        SnmpPoint {
            row: RowSelector::Instance,
            decode: Decode::Plain,
            extra_columns: Vec::new(),
        }
    }
}

fn oid_key(text: &str, at: &KeyPath) -> Result<Vec<u64>, Problem> {
    crate::agent::parse_oid(text).ok_or_else(|| {
        Problem::new(
            at.clone(),
            format!("`{text}` is not a dotted numeric OID like 1.3.6.1.2.1.1.1.0"),
        )
    })
}

/// Resolves `[devices.points.snmp]` of each point (merged over its profile point's) into
/// `settings.points`, in sensor order; a point's resolved `oid` is its column.
pub(crate) fn resolve_points(
    settings: &mut SnmpSettings,
    raw_points: &[crate::agent::RawPoint],
    sensors: &[crate::agent::Sensor],
    profile: Option<&crate::profile::Profile>,
    at: &KeyPath,
) -> Result<(), Problem> {
    settings.points.clear();
    let columns: Vec<Option<Vec<u64>>> = sensors
        .iter()
        .map(|s| match &s.source {
            crate::agent::SensorSource::Snmp { oid } => Some(oid.clone()),
            crate::agent::SensorSource::Modbus { .. } => None,
        })
        .collect();
    for (j, (point, column)) in raw_points.iter().zip(&columns).enumerate() {
        let at = at.key("points").index(j).key("snmp");
        let base = point
            .profile_point
            .as_ref()
            .and_then(|name| profile.and_then(|p| p.point(name)))
            .and_then(|p| p.snmp.clone())
            .unwrap_or_default();
        let own = point.snmp.clone().unwrap_or_default();
        if point.snmp.is_some() && column.is_none() {
            return Err(Problem::new(at, "only SNMP points have SNMP row settings"));
        }
        let Some(column) = column else {
            settings.points.push(SnmpPoint::plain());
            continue;
        };
        settings.points.push(point_spec(column, own, base, &at)?);
    }
    Ok(())
}

/// One point's row selection and decode from its own `[devices.points.snmp]` merged over its
/// profile point's; `column` is the point's `oid`. Errors are located under `at`.
pub fn point_spec(
    column: &[u64],
    own: RawSnmpPoint,
    base: RawSnmpPoint,
    at: &KeyPath,
) -> Result<SnmpPoint, Problem> {
    let at = at.clone();
    // The point's own row choice wins over the profile's (an `index` drops its naming column).
    let (index, name_column, row_name) = if own.index.is_some() {
        (own.index, own.name_column, own.row_name)
    } else {
        (
            base.index.filter(|_| own.row_name.is_none()),
            own.name_column.or(base.name_column),
            own.row_name.or(base.row_name),
        )
    };
    let row = match (index, name_column, row_name) {
        (None, None, None) => RowSelector::Instance,
        // A naming column without a row name (e.g. from a profile) is unused with an index.
        (Some(i), _, None) => RowSelector::Index(oid_key_index(&i, &at.key("index"))?),
        (None, Some(c), Some(n)) if !n.trim().is_empty() => RowSelector::Name {
            column: oid_key(&c, &at.key("name_column"))?,
            name: n.trim().to_string(),
        },
        (None, Some(_), _) | (None, None, Some(_)) => {
            return Err(Problem::new(
                at.key("row_name"),
                "a row chosen by name needs both `name_column` and a non-empty `row_name`",
            ))
        }
        (Some(_), _, _) => {
            return Err(Problem::new(
                at.key("index"),
                "choose the row either by `index` or by `name_column` + `row_name`",
            ))
        }
    };
    let decode = own.decode.or(base.decode).unwrap_or_default();
    let extra_columns = match decode {
        Decode::Plain => Vec::new(),
        Decode::EntitySensor => {
            if column.len() < 2 {
                return Err(Problem::new(
                    at.key("decode"),
                    "entity-sensor needs the entPhySensorValue column as `oid`",
                ));
            }
            let entry = &column[..column.len() - 1];
            [1u64, 2, 3, 5]
                .iter()
                .map(|c| {
                    let mut o = entry.to_vec();
                    o.push(*c);
                    o
                })
                .collect()
        }
        Decode::DecimalDigits => {
            let c = own.digits_column.or(base.digits_column).ok_or_else(|| {
                Problem::new(
                    at.key("digits_column"),
                    "decimal-digits needs `digits_column`",
                )
            })?;
            vec![oid_key(&c, &at.key("digits_column"))?]
        }
        Decode::Units => {
            let c = own.units_column.or(base.units_column).ok_or_else(|| {
                Problem::new(at.key("units_column"), "units needs `units_column`")
            })?;
            vec![oid_key(&c, &at.key("units_column"))?]
        }
    };
    if decode == Decode::EntitySensor && row == RowSelector::Instance {
        return Err(Problem::new(
            at.key("decode"),
            "entity-sensor reads a table row: give `index` or `name_column` + `row_name`",
        ));
    }
    Ok(SnmpPoint {
        row,
        decode,
        extra_columns,
    })
}

fn oid_key_index(text: &str, at: &KeyPath) -> Result<Vec<u64>, Problem> {
    let arcs: Option<Vec<u64>> = text
        .trim()
        .trim_start_matches('.')
        .split('.')
        .map(|a| a.parse().ok())
        .collect();
    arcs.filter(|a| !a.is_empty()).ok_or_else(|| {
        Problem::new(
            at.clone(),
            format!("`{text}` is not a numeric index like 3 or 1.2"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawSnmpSettings {
        toml::from_str(text).expect("toml")
    }

    fn at() -> KeyPath {
        KeyPath::default().key("devices").index(0)
    }

    #[test]
    fn retry_backoff_and_concurrency_default_and_are_bounded() {
        let t = Duration::from_secs(2);
        let s = resolve(Some(&raw("retries = 3")), Protocol::Snmp, t, &at()).expect("valid");
        assert_eq!(s.retry_backoff, Duration::ZERO);
        let s = resolve(
            Some(&raw("retry_backoff = \"200ms\"")),
            Protocol::Snmp,
            t,
            &at(),
        )
        .expect("valid");
        assert_eq!(s.retry_backoff, Duration::from_millis(200));
        assert_eq!(s.max_concurrent_requests, 1);
        let e = resolve(
            Some(&raw("max_concurrent_requests = 17")),
            Protocol::Snmp,
            t,
            &at(),
        )
        .expect_err("too many");
        assert!(
            format!("{e:?}").contains("max_concurrent_requests"),
            "{e:?}"
        );
        let e = resolve(
            Some(&raw("retry_backoff = \"2s\"")),
            Protocol::Snmp,
            t,
            &at(),
        )
        .expect_err("too long");
        assert!(format!("{e:?}").contains("retry_backoff"), "{e:?}");
    }

    #[test]
    fn v3_auth_priv_from_env_and_secrets_never_print() {
        std::env::set_var("COLDAISLE_TEST_PRIV", "privpass99");
        let s = resolve(
            Some(&raw(r#"version = "3"
user = "ops"
auth_protocol = "SHA-512"
auth_passphrase = "authpass99"
priv_protocol = "AES-256"
priv_passphrase_env = "COLDAISLE_TEST_PRIV"
max_repetitions = 25"#)),
            Protocol::Snmp,
            Duration::from_secs(4),
            &at(),
        )
        .expect("valid");
        let usm = s.usm.clone().expect("usm");
        assert_eq!(usm.level, SecurityLevel::AuthPriv);
        assert_eq!(usm.auth_protocol, AuthProtocol::Sha512);
        assert_eq!(usm.priv_protocol, PrivProtocol::Aes256);
        assert_eq!(
            usm.priv_passphrase.as_ref().map(Secret::expose),
            Some("privpass99")
        );
        assert_eq!(s.max_repetitions, 25);
        assert_eq!(s.request_timeout, Duration::from_secs(2));
        let printed = format!("{s:?}");
        assert!(
            !printed.contains("authpass99") && !printed.contains("privpass99"),
            "{printed}"
        );
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (r#"user = "ops""#, "devices[0].snmp.version"),
            (r#"version = "3""#, "devices[0].snmp.user"),
            (
                "version = \"3\"\nuser = \"u\"\nlevel = \"authPriv\"\nauth_passphrase = \"12345678\"",
                "devices[0].snmp.priv_passphrase",
            ),
            (
                "version = \"3\"\nuser = \"u\"\nauth_passphrase = \"short\"",
                "devices[0].snmp.auth_passphrase",
            ),
            (
                "version = \"3\"\nuser = \"u\"\nauth_passphrase = \"12345678\"\nauth_passphrase_env = \"X\"",
                "devices[0].snmp.auth_passphrase",
            ),
            ("max_repetitions = 0", "devices[0].snmp.max_repetitions"),
            ("request_timeout = \"10s\"", "devices[0].snmp.request_timeout"),
        ];
        for (text, key) in cases {
            let err = resolve(
                Some(&raw(text)),
                Protocol::Snmp,
                Duration::from_secs(5),
                &at(),
            )
            .expect_err(text);
            assert_eq!(err.path.to_string(), key, "{text}: {}", err.message);
        }
        assert!(resolve(
            Some(&raw("")),
            Protocol::Modbus,
            Duration::from_secs(5),
            &at()
        )
        .is_err());
    }

    fn device(points: &str) -> Result<crate::AgentConfig, crate::ConfigError> {
        crate::AgentConfig::from_str(
            &format!(
                "agent_id = \"a\"\nsite = \"s\"\nstate_dir = \"/tmp/x\"\n[mqtt]\nhost = \"h\"\n\
                 [[devices]]\nid = \"d\"\nprotocol = \"snmp\"\naddress = \"10.0.0.1\"\nzone = \"z\"\n\
                 profile = \"entity-sensor\"\n{points}"
            ),
            std::path::Path::new("t.toml"),
        )
    }

    #[test]
    fn table_points_resolve_rows_and_sibling_columns() {
        let c = device(
            "[[devices.points]]\nsensor = \"a\"\nprofile_point = \"temperature\"\nsnmp = { row_name = \"Inlet\" }\n\
             [[devices.points]]\nsensor = \"b\"\nprofile_point = \"temperature\"\nsnmp = { index = \"7\" }\n\
             [[devices.points]]\nsensor = \"c\"\nkind = \"humidity\"\noid = \"1.3.6.1.4.1.9.9.1.0\"\n",
        )
        .expect("valid");
        let points = &c.devices[0].snmp.points;
        assert_eq!(
            points[0].row,
            RowSelector::Name {
                column: vec![1, 3, 6, 1, 2, 1, 47, 1, 1, 1, 1, 7],
                name: "Inlet".into()
            }
        );
        assert_eq!(points[0].decode, Decode::EntitySensor);
        assert_eq!(
            points[0]
                .extra_columns
                .iter()
                .map(|c| c[c.len() - 1])
                .collect::<Vec<_>>(),
            vec![1, 2, 3, 5]
        );
        assert_eq!(points[1].row, RowSelector::Index(vec![7]));
        assert_eq!(points[2], SnmpPoint::plain());
        // An entity-sensor point needs a row; the error names the key.
        let err = device("[[devices.points]]\nsensor = \"a\"\nprofile_point = \"temperature\"\n")
            .expect_err("row needed")
            .to_string();
        assert!(err.contains("devices[0].points[0].snmp.row_name"), "{err}");
        let err = device("[[devices.points]]\nsensor = \"a\"\nkind = \"humidity\"\noid = \"1.3.6.1.2\"\nsnmp = { decode = \"units\" }\n")
            .expect_err("units column needed")
            .to_string();
        assert!(err.contains("units_column"), "{err}");
    }

    #[test]
    fn names_parse_like_net_snmp() {
        assert_eq!("SHA".parse(), Ok(AuthProtocol::Sha1));
        assert_eq!("sha-384".parse(), Ok(AuthProtocol::Sha384));
        assert_eq!("AES".parse(), Ok(PrivProtocol::Aes128));
        assert_eq!("2c".parse(), Ok(SnmpVersion::V2c));
        assert_eq!("authPriv".parse(), Ok(SecurityLevel::AuthPriv));
        assert!("SHA-3".parse::<AuthProtocol>().is_err());
    }
}
