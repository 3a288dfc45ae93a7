//! The collector's configuration: broker, store, HTTP API and the incident/problem rules.

use crate::error::{ConfigError, KeyPath, Problem};
use crate::mqtt::MqttConfig;
use crate::source::SourceFile;
use coldaisle_core::Severity;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The collector's TOML document.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCollectorConfig {
    /// Collector id (MQTT client id suffix).
    pub collector_id: String,
    /// Directory of the embedded store.
    pub state_dir: PathBuf,
    /// Log level or filter (`info`, `warn,coldaisle_agent=debug`); applied again on SIGHUP.
    /// `RUST_LOG` overrides it.
    #[serde(default)]
    pub log_level: Option<String>,
    /// Sites this collector serves; empty means all (`+`). Collectors that split the fleet
    /// list disjoint sites so each zone's events reach exactly one collector.
    #[serde(default)]
    pub sites: Vec<String>,
    /// Broker connection.
    pub mqtt: MqttConfig,
    /// HTTP API.
    #[serde(default)]
    pub http: HttpConfig,
    /// Incident rules.
    #[serde(default)]
    pub incidents: IncidentConfig,
    /// Problem rules.
    #[serde(default)]
    pub problems: ProblemConfig,
    /// Pagers, routes and noise control (see [`crate::notify`]).
    #[serde(default)]
    pub notify: crate::notify::NotifyConfig,
    /// An agent from which neither a batch nor a status arrived for this long is reported
    /// `silent` on the API and in the log.
    #[serde(default = "default_agent_silence", with = "humantime_serde")]
    pub agent_silence: Duration,
    /// Bounds on agent batches (see [`crate::trust::IngestConfig`]).
    #[serde(default)]
    pub ingest: crate::trust::IngestConfig,
    /// The agents this collector accepts, with their site (and zones). With neither this
    /// nor `agents_file`, the first site an agent is seen with is recorded and enforced.
    #[serde(default)]
    pub agents: Vec<crate::trust::AgentEntry>,
    /// A file of more `[[agents]]` entries, read at start and again on SIGHUP.
    #[serde(default)]
    pub agents_file: Option<PathBuf>,
    /// Where the data lives (see [`crate::store`]): sled in `state_dir` by default.
    #[serde(default)]
    pub store: crate::store::StoreConfig,
    /// How long each roll-up level of reading summaries is kept.
    #[serde(default)]
    pub retention: RetentionConfig,
    /// Zone reports: the ASHRAE class the bands come from, when a sensor counts as stale.
    #[serde(default)]
    pub report: ReportConfig,
    /// Failover and site partitions on a shared store (see [`crate::cluster`]); absent, the
    /// collector is alone and always active.
    #[serde(default)]
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

/// The ASHRAE thermal guideline class of the data hall (`[report] ashrae_class`): it sets the
/// allowable temperature, humidity and dew-point limits the reports compare against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AshraeClass {
    /// Class A1 (enterprise servers, storage): allowable 15–32 °C.
    #[default]
    A1,
    /// Class A2 (volume servers): allowable 10–35 °C.
    A2,
    /// Class A3: allowable 5–40 °C.
    A3,
    /// Class A4: allowable 5–45 °C.
    A4,
}

impl AshraeClass {
    /// Every class, as written in the config.
    pub const ALL: [(&'static str, AshraeClass); 4] = [
        ("A1", AshraeClass::A1),
        ("A2", AshraeClass::A2),
        ("A3", AshraeClass::A3),
        ("A4", AshraeClass::A4),
    ];

    /// The class named `text` (case-insensitive), if any.
    pub fn parse(text: &str) -> Option<AshraeClass> {
        Self::ALL
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text.trim()))
            .map(|&(_, class)| class)
    }

    /// The class's name (`A1`…).
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, class)| *class == self)
            .map_or("A1", |(name, _)| name)
    }
}

/// Zone report settings (`[report]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    /// ASHRAE class: `A1` (default), `A2`, `A3` or `A4`; validated by [`ReportConfig::class`].
    #[serde(default = "default_ashrae_class")]
    pub ashrae_class: String,
    /// A sensor whose latest summary is older than this at the end of a report's period is
    /// listed as stale (default 10 minutes).
    #[serde(default = "default_stale_after", with = "humantime_serde")]
    pub stale_after: Duration,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            ashrae_class: default_ashrae_class(),
            stale_after: default_stale_after(),
        }
    }
}

impl ReportConfig {
    /// The configured class (validation guarantees it parses; A1 otherwise).
    pub fn class(&self) -> AshraeClass {
        AshraeClass::parse(&self.ashrae_class).unwrap_or_default()
    }
}

fn default_ashrae_class() -> String {
    "A1".into()
}

fn default_stale_after() -> Duration {
    Duration::from_secs(600)
}

fn validate_report(report: &ReportConfig, root: &KeyPath) -> Result<(), Problem> {
    let at = root.key("report");
    if AshraeClass::parse(&report.ashrae_class).is_none() {
        return Err(Problem::new(
            at.key("ashrae_class"),
            format!(
                "unknown ASHRAE class {:?}: expected one of A1, A2, A3, A4",
                report.ashrae_class
            ),
        ));
    }
    if report.stale_after.is_zero() {
        return Err(Problem::new(at.key("stale_after"), "must be above zero"));
    }
    Ok(())
}

/// Retention of the reading-summary roll-ups (`[retention]`); each level is compacted in the
/// background once its buckets are older than this.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// One-minute buckets (default 7 days).
    #[serde(default = "default_minute_retention", with = "humantime_serde")]
    pub minute: Duration,
    /// One-hour buckets (default 90 days); at least `minute`.
    #[serde(default = "default_hour_retention", with = "humantime_serde")]
    pub hour: Duration,
    /// One-day buckets (default 3 years); at least `hour`.
    #[serde(default = "default_day_retention", with = "humantime_serde")]
    pub day: Duration,
    /// How often compaction runs (default 10 minutes).
    #[serde(default = "default_compact_every", with = "humantime_serde")]
    pub compact_every: Duration,
    /// Raw records older than this (by event time) are deleted by compaction, unless an open
    /// incident or problem still needs them (default 45 days: the 30-day problem window plus a
    /// margin); at least `problems.window`.
    #[serde(default = "default_records_retention", with = "humantime_serde")]
    pub records: Duration,
    /// Write a checkpoint of the analysis after this many new records (default 100 000).
    #[serde(default = "default_checkpoint_records")]
    pub checkpoint_records: u64,
    /// Write one at the latest this long after the last, if anything changed (default 5
    /// minutes); and always at a graceful shutdown.
    #[serde(default = "default_checkpoint_every", with = "humantime_serde")]
    pub checkpoint_every: Duration,
}

fn default_minute_retention() -> Duration {
    Duration::from_secs(7 * 86_400)
}
fn default_hour_retention() -> Duration {
    Duration::from_secs(90 * 86_400)
}
fn default_day_retention() -> Duration {
    Duration::from_secs(3 * 365 * 86_400)
}
fn default_compact_every() -> Duration {
    Duration::from_secs(600)
}
fn default_records_retention() -> Duration {
    Duration::from_secs(45 * 86_400)
}
fn default_checkpoint_records() -> u64 {
    100_000
}
fn default_checkpoint_every() -> Duration {
    Duration::from_secs(300)
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            minute: default_minute_retention(),
            hour: default_hour_retention(),
            day: default_day_retention(),
            compact_every: default_compact_every(),
            records: default_records_retention(),
            checkpoint_records: default_checkpoint_records(),
            checkpoint_every: default_checkpoint_every(),
        }
    }
}

/// `problem_window`: `problems.window`, which raw records must outlive.
fn validate_retention(
    r: &RetentionConfig,
    problem_window: Duration,
    root: &KeyPath,
) -> Result<(), Problem> {
    let key = |name: &str| root.key("retention").key(name);
    if r.checkpoint_records == 0 {
        return Err(Problem::new(
            key("checkpoint_records"),
            "must be above zero",
        ));
    }
    for (name, d) in [
        ("minute", r.minute),
        ("compact_every", r.compact_every),
        ("checkpoint_every", r.checkpoint_every),
    ] {
        if d.is_zero() {
            return Err(Problem::new(key(name), "must be above zero"));
        }
    }
    if r.hour < r.minute {
        return Err(Problem::new(
            key("hour"),
            "must be at least retention.minute",
        ));
    }
    if r.day < r.hour {
        return Err(Problem::new(key("day"), "must be at least retention.hour"));
    }
    if r.records < problem_window {
        return Err(Problem::new(
            key("records"),
            "must be at least problems.window (the problem rule reads that far back)",
        ));
    }
    Ok(())
}

fn default_agent_silence() -> Duration {
    Duration::from_secs(5 * 60)
}

/// HTTP API settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address. Without `tokens_file` it must be a loopback address.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// File of API tokens (one `name scopes sha256-hex` line each; see the collector's `auth`
    /// module and `coldaisle-collector token new`). Absent: the API is open to anyone who can
    /// reach it, so it may only listen on loopback. Re-read on SIGHUP.
    #[serde(default)]
    pub tokens_file: Option<PathBuf>,
    /// Largest request body accepted (bytes); larger bodies answer `413`.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// HTTPS: certificate chain and key (PEM files, re-read on SIGHUP). Absent: plain HTTP.
    #[serde(default)]
    pub tls: Option<HttpTlsConfig>,
    /// `GET /metrics` from a loopback peer needs no token (a Prometheus on the same host
    /// scrapes without one); every other peer and route still needs its token.
    #[serde(default)]
    pub metrics_open_on_loopback: bool,
}

/// TLS of the HTTP API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTlsConfig {
    /// PEM certificate chain, the server's certificate first.
    pub cert_file: PathBuf,
    /// PEM private key of the certificate.
    pub key_file: PathBuf,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_max_body_bytes() -> usize {
    64 * 1024
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_listen(),
            tokens_file: None,
            max_body_bytes: default_max_body_bytes(),
            tls: None,
            metrics_open_on_loopback: false,
        }
    }
}

/// Incident rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentConfig {
    /// An incident resolves when all its sources have cleared and none raised again for this
    /// long (event time).
    #[serde(default = "default_quiet_period", with = "humantime_serde")]
    pub quiet_period: Duration,
}

fn default_quiet_period() -> Duration {
    Duration::from_secs(15 * 60)
}

impl Default for IncidentConfig {
    fn default() -> Self {
        IncidentConfig {
            quiet_period: default_quiet_period(),
        }
    }
}

/// Problem rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProblemConfig {
    /// Incidents of one fingerprint needed within `window` to open a problem.
    #[serde(default = "default_min_incidents")]
    pub min_incidents: usize,
    /// Rolling window (event time).
    #[serde(default = "default_window", with = "humantime_serde")]
    pub window: Duration,
    /// An incident at or above this severity opens a problem on its own (SLA-impacting);
    /// `"none"` disables the rule.
    #[serde(default = "default_sla_severity")]
    pub sla_severity: SlaSeverity,
    /// An incident whose sources stay raised this long (event time; e.g. inlets above the
    /// allowable limit for `30m`) is SLA-impacting too; absent disables the rule.
    #[serde(default, with = "humantime_serde")]
    pub sla_sustained: Option<Duration>,
    /// What one problem covers: `zone` (default), `row` (incidents count under the row of the
    /// event that opened them; no row: zone-level) or `site` (all zones of a site together).
    #[serde(default)]
    pub scope: ProblemScopeConfig,
    /// How far before a problem opens a step-up of rack power in its zone is quoted as density
    /// evidence in its probable cause (event time).
    #[serde(default = "default_density_lookback", with = "humantime_serde")]
    pub density_lookback: Duration,
    /// After a problem is resolved, how long the fix is verified: an incident of its pattern
    /// inside the window reopens it, and at the end the zone's figures before and after are
    /// written on it.
    #[serde(default = "default_verification_window", with = "humantime_serde")]
    pub verification_window: Duration,
    /// The site's offset from UTC (`"+01:00"`, `"-05:00"`, `"Z"`), so a problem's recurrence
    /// signature speaks in the site's local time ("5 of 6 incidents between 14:00 and 16:00
    /// on weekdays"). A fixed offset: daylight saving time is not followed. Default UTC.
    #[serde(default)]
    pub utc_offset: UtcOffset,
}

/// A fixed offset from UTC, written `+HH:MM`, `-HH:MM` or `Z` (within ±14:00).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct UtcOffset {
    /// Local time minus UTC, in minutes.
    pub minutes: i32,
}

impl TryFrom<String> for UtcOffset {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let bad =
            || format!("{text:?} is not a UTC offset; write e.g. \"+01:00\", \"-05:00\" or \"Z\"");
        let t = text.trim();
        if t.eq_ignore_ascii_case("z") {
            return Ok(UtcOffset { minutes: 0 });
        }
        let (sign, rest) = match t.as_bytes().first() {
            Some(b'+') => (1, &t[1..]),
            Some(b'-') => (-1, &t[1..]),
            _ => return Err(bad()),
        };
        let (h, m) = rest.split_once(':').ok_or_else(bad)?;
        let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
        if !two_digits(h) || !two_digits(m) {
            return Err(bad());
        }
        let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if m >= 60 || h * 60 + m > 14 * 60 {
            return Err(bad());
        }
        Ok(UtcOffset {
            minutes: sign * (h * 60 + m),
        })
    }
}

/// The `problems.scope` setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemScopeConfig {
    /// One problem per zone and category.
    #[default]
    Zone,
    /// One problem per site and category.
    Site,
    /// One problem per row of a zone and category.
    Row,
}

/// The SLA-impact severity setting: a severity or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaSeverity {
    /// No SLA rule.
    None,
    /// Warning and above.
    Warning,
    /// Critical only.
    Critical,
}

impl SlaSeverity {
    /// The severity threshold, if the rule is on.
    pub fn severity(self) -> Option<Severity> {
        match self {
            SlaSeverity::None => None,
            SlaSeverity::Warning => Some(Severity::Warning),
            SlaSeverity::Critical => Some(Severity::Critical),
        }
    }
}

fn default_min_incidents() -> usize {
    3
}
fn default_window() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}
fn default_density_lookback() -> Duration {
    Duration::from_secs(28 * 24 * 3600)
}
fn default_verification_window() -> Duration {
    Duration::from_secs(14 * 24 * 3600)
}
fn default_sla_severity() -> SlaSeverity {
    SlaSeverity::Critical
}

impl Default for ProblemConfig {
    fn default() -> Self {
        ProblemConfig {
            min_incidents: default_min_incidents(),
            window: default_window(),
            sla_severity: default_sla_severity(),
            sla_sustained: None,
            scope: ProblemScopeConfig::Zone,
            density_lookback: default_density_lookback(),
            verification_window: default_verification_window(),
            utc_offset: UtcOffset::default(),
        }
    }
}

/// The validated collector configuration.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    /// As written (validated).
    pub raw: RawCollectorConfig,
    /// Broker password (from `password_file` when given).
    pub mqtt_password: Option<crate::mqtt::Secret>,
    /// TLS material for the broker connection, if configured.
    pub mqtt_tls: Option<crate::mqtt::TlsMaterial>,
    /// PostgreSQL password (from `[store] password_file`).
    pub store_password: Option<crate::mqtt::Secret>,
}

impl CollectorConfig {
    /// Loads and validates a collector config file.
    pub fn load(path: &Path) -> Result<CollectorConfig, ConfigError> {
        let file = SourceFile::read(path)?;
        Self::from_source(&file)
    }

    /// Same as [`CollectorConfig::load`] from text; `origin` names the file in errors.
    pub fn from_str(text: &str, origin: &Path) -> Result<CollectorConfig, ConfigError> {
        let file = SourceFile {
            path: origin.to_path_buf(),
            text: text.to_string(),
        };
        Self::from_source(&file)
    }

    fn from_source(file: &SourceFile) -> Result<CollectorConfig, ConfigError> {
        let raw: RawCollectorConfig = file.parse()?;
        validate(&raw).map_err(|p| file.invalid(p))?;
        let mqtt_password = raw
            .mqtt
            .resolve_password(&KeyPath::default().key("mqtt"))
            .map_err(|p| file.invalid(p))?;
        let mqtt_tls = raw
            .mqtt
            .resolve_tls(&KeyPath::default().key("mqtt"))
            .map_err(|p| file.invalid(p))?;
        let store_password = raw
            .store
            .resolve(&KeyPath::default().key("store"))
            .map_err(|p| file.invalid(p))?;
        Ok(CollectorConfig {
            raw,
            mqtt_password,
            mqtt_tls,
            store_password,
        })
    }
}

fn validate(raw: &RawCollectorConfig) -> Result<(), Problem> {
    let root = KeyPath::default();
    if raw.collector_id.is_empty() || raw.collector_id.contains(['/', '+', '#', ' ']) {
        return Err(Problem::new(
            root.key("collector_id"),
            "must be non-empty and contain no '/', '+', '#' or spaces",
        ));
    }
    for (i, site) in raw.sites.iter().enumerate() {
        if site.is_empty() || site.contains(['/', '+', '#', ' ']) {
            return Err(Problem::new(
                root.key("sites").index(i),
                "a site name must be non-empty and contain no '/', '+', '#' or spaces",
            ));
        }
    }
    if raw.problems.min_incidents == 0 {
        return Err(Problem::new(
            root.key("problems").key("min_incidents"),
            "must be at least 1",
        ));
    }
    if raw.problems.window.is_zero() {
        return Err(Problem::new(
            root.key("problems").key("window"),
            "must be above zero",
        ));
    }
    for (name, value) in [
        ("density_lookback", raw.problems.density_lookback),
        ("verification_window", raw.problems.verification_window),
    ] {
        if value.is_zero() {
            return Err(Problem::new(
                root.key("problems").key(name),
                "must be above zero",
            ));
        }
    }
    if raw.agent_silence.is_zero() {
        return Err(Problem::new(
            root.key("agent_silence"),
            "must be above zero",
        ));
    }
    validate_http(&raw.http, &root.key("http"))?;
    crate::notify::validate(&raw.notify, &root)?;
    crate::trust::validate_ingest(&raw.ingest, &root)?;
    crate::trust::validate_agents(&raw.agents, &root)?;
    validate_retention(&raw.retention, raw.problems.window, &root)?;
    validate_report(&raw.report, &root)?;
    if let Some(cluster) = &raw.cluster {
        crate::cluster::validate(cluster, &raw.store, &root.key("cluster"))?;
    }
    Ok(())
}

/// An API without tokens is open to whoever reaches it: only loopback may serve it.
fn validate_http(http: &HttpConfig, at: &KeyPath) -> Result<(), Problem> {
    if http.tokens_file.is_none() && !http.listen.ip().is_loopback() {
        return Err(Problem::new(
            at.key("listen"),
            format!(
                "{} is not a loopback address and no http.tokens_file is set: the API would \
                 let anyone who reaches it read and act; set tokens_file (create tokens with \
                 `coldaisle-collector token new`) or listen on 127.0.0.1",
                http.listen
            ),
        ));
    }
    if let Some(tls) = &http.tls {
        // Read now so check-config catches a missing or non-PEM file; the daemon reads them
        // again at start and on SIGHUP.
        crate::mqtt::read_pem(&tls.cert_file, at.key("tls").key("cert_file"))?;
        crate::mqtt::read_pem(&tls.key_file, at.key("tls").key("key_file"))?;
    }
    if http.max_body_bytes < 1024 {
        return Err(Problem::new(
            at.key("max_body_bytes"),
            "must be at least 1024 (an operator action body needs a few hundred bytes)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(http: &str) -> Result<CollectorConfig, String> {
        let text = format!(
            "collector_id = \"c\"\nstate_dir = \"/tmp/c\"\n[mqtt]\nhost = \"b\"\n[http]\n{http}\n"
        );
        CollectorConfig::from_str(&text, Path::new("collector.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn report_class_is_validated_naming_the_key() {
        let text = |report: &str| {
            format!("collector_id = \"c\"\nstate_dir = \"/tmp/c\"\n[mqtt]\nhost = \"b\"\n[report]\n{report}\n")
        };
        let ok = CollectorConfig::from_str(&text("ashrae_class = \"a3\""), Path::new("c.toml"))
            .map(|c| c.raw.report.class());
        assert_eq!(ok.ok(), Some(AshraeClass::A3));
        let err = CollectorConfig::from_str(&text("ashrae_class = \"B\""), Path::new("c.toml"))
            .map(|_| ())
            .expect_err("class B is not supported")
            .to_string();
        assert!(
            err.contains("report.ashrae_class") && err.contains("A4"),
            "{err}"
        );
        let err = CollectorConfig::from_str(&text("stale_after = \"0s\""), Path::new("c.toml"))
            .map(|_| ())
            .expect_err("zero")
            .to_string();
        assert!(err.contains("report.stale_after"), "{err}");
        let default = load("").map(|c| c.raw.report.class());
        assert_eq!(default, Ok(AshraeClass::A1));
    }

    #[test]
    fn api_without_tokens_listens_only_on_loopback() {
        let ok = load("listen = \"127.0.0.1:9000\"").map_err(|e| e.to_string());
        assert_eq!(ok.map(|c| c.raw.http.max_body_bytes), Ok(64 * 1024));
        assert!(load("listen = \"[::1]:9000\"").is_ok());
        let err = load("listen = \"0.0.0.0:9000\"").err().unwrap_or_default();
        assert!(err.contains("http.listen"), "{err}");
        assert!(err.contains("no http.tokens_file is set"), "{err}");
        let with_tokens = load("listen = \"0.0.0.0:9000\"\ntokens_file = \"/etc/t\"");
        assert!(with_tokens.is_ok(), "{with_tokens:?}");
        let err = load("max_body_bytes = 10").err().unwrap_or_default();
        assert!(err.contains("http.max_body_bytes"), "{err}");
        let err = load(
            "[http.tls]\ncert_file = \"/nonexistent/c.pem\"\nkey_file = \"/nonexistent/k.pem\"",
        )
        .err()
        .unwrap_or_default();
        assert!(err.contains("http.tls.cert_file"), "{err}");
    }
}

#[cfg(test)]
mod retention_tests {
    use super::CollectorConfig;
    use std::path::Path;
    use std::time::Duration;

    const BASE: &str =
        "collector_id = \"c1\"\nstate_dir = \"/tmp/x\"\n[mqtt]\nhost = \"127.0.0.1\"\n";

    fn load(extra: &str) -> Result<CollectorConfig, String> {
        CollectorConfig::from_str(&format!("{BASE}{extra}"), Path::new("collector.toml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn retention_defaults_and_overrides() {
        let c = load("").expect("defaults");
        assert_eq!(c.raw.retention.minute, Duration::from_secs(7 * 86_400));
        assert_eq!(c.raw.retention.hour, Duration::from_secs(90 * 86_400));
        assert_eq!(c.raw.retention.day, Duration::from_secs(3 * 365 * 86_400));
        assert_eq!(c.raw.retention.records, Duration::from_secs(45 * 86_400));
        let c = load("[retention]\nminute = \"2d\"\nhour = \"30d\"\n").expect("overrides");
        assert_eq!(c.raw.retention.minute, Duration::from_secs(2 * 86_400));
        assert_eq!(c.raw.retention.hour, Duration::from_secs(30 * 86_400));
    }

    #[test]
    fn retention_errors_name_the_key() {
        for (extra, key) in [
            ("[retention]\nminute = \"0s\"\n", "retention.minute"),
            (
                "[retention]\nminute = \"10d\"\nhour = \"1d\"\n",
                "retention.hour",
            ),
            ("[retention]\nday = \"1d\"\n", "retention.day"),
            (
                "[retention]\ncompact_every = \"0s\"\n",
                "retention.compact_every",
            ),
            (
                "[retention]\ncheckpoint_every = \"0s\"\n",
                "retention.checkpoint_every",
            ),
            (
                "[retention]\ncheckpoint_records = 0\n",
                "retention.checkpoint_records",
            ),
            ("[retention]\nrecords = \"29d\"\n", "retention.records"),
            (
                "[problems]\nwindow = \"60d\"\n[retention]\nrecords = \"50d\"\n",
                "retention.records",
            ),
            ("[retention]\nweek = \"1d\"\n", "week"),
        ] {
            let err = load(extra).expect_err(extra);
            assert!(err.contains(key), "{extra}: {err}");
        }
    }
}

#[cfg(test)]
mod problem_window_tests {
    use super::CollectorConfig;
    use std::path::Path;
    use std::time::Duration;

    fn load(extra: &str) -> Result<CollectorConfig, String> {
        let text = format!(
            "collector_id = \"c1\"\nstate_dir = \"/tmp/x\"\n[mqtt]\nhost = \"127.0.0.1\"\n{extra}"
        );
        CollectorConfig::from_str(&text, Path::new("collector.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn verification_and_density_windows_default_override_and_name_the_key() {
        let c = load("").expect("defaults");
        assert_eq!(
            c.raw.problems.verification_window,
            Duration::from_secs(14 * 86_400)
        );
        assert_eq!(
            c.raw.problems.density_lookback,
            Duration::from_secs(28 * 86_400)
        );
        let c = load("[problems]\nverification_window = \"2h\"\ndensity_lookback = \"7d\"\n")
            .expect("overrides");
        assert_eq!(
            c.raw.problems.verification_window,
            Duration::from_secs(7200)
        );
        assert_eq!(
            c.raw.problems.density_lookback,
            Duration::from_secs(7 * 86_400)
        );
        for key in ["verification_window", "density_lookback"] {
            let err = load(&format!("[problems]\n{key} = \"0s\"\n")).expect_err(key);
            assert!(err.contains(&format!("problems.{key}")), "{err}");
            assert!(err.contains("must be above zero"), "{err}");
        }
        let err = load("[problems]\nverification_window = \"soon\"\n").expect_err("not a duration");
        // A parse error points at the key's line.
        assert!(err.contains("collector.toml:6:"), "{err}");
        assert!(err.contains("expected a duration"), "{err}");
    }

    #[test]
    fn the_site_utc_offset_is_parsed_and_a_bad_one_named() {
        assert_eq!(
            load("").expect("default").raw.problems.utc_offset.minutes,
            0
        );
        for (text, minutes) in [("+01:00", 60), ("-05:30", -330), ("Z", 0), ("+14:00", 840)] {
            let c = load(&format!("[problems]\nutc_offset = \"{text}\"\n")).expect(text);
            assert_eq!(c.raw.problems.utc_offset.minutes, minutes, "{text}");
        }
        for text in ["CET", "+1", "+01:60", "+15:00", "01:00", ""] {
            let err = load(&format!("[problems]\nutc_offset = \"{text}\"\n")).expect_err(text);
            assert!(err.contains("collector.toml:6:"), "{err}");
            assert!(err.contains("is not a UTC offset"), "{err}");
        }
    }
}
