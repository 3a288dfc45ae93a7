//! The agent's configuration: identity, broker, correlation and the devices to poll.
//!
//! Loading is two steps: [`RawAgentConfig`] is exactly what the TOML says; [`AgentConfig`] is the
//! validated, resolved form the agent runs on (profiles applied, defaults filled, secrets read).

use crate::error::{ConfigError, KeyPath, Problem};
use crate::mqtt::MqttConfig;
use crate::profile::{Profile, ProfilePoint, Profiles};
use crate::source::SourceFile;
use coldaisle_core::registers::{RegisterType, WordOrder};
use coldaisle_core::{Location, SensorKind, Severity};
use serde::Deserialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The agent's TOML document as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgentConfig {
    /// Agent id, unique in the fleet; part of MQTT topics.
    pub agent_id: String,
    /// Site this agent serves; part of MQTT topics.
    pub site: String,
    /// Directory for the outbox and detector state.
    pub state_dir: PathBuf,
    /// Log level or filter (`info`, `warn,coldaisle_agent=debug`); applied again on SIGHUP.
    /// `RUST_LOG` overrides it.
    #[serde(default)]
    pub log_level: Option<String>,
    /// How often each sensor's readings are summarised and sent for reports.
    #[serde(default = "default_summary_interval", with = "humantime_serde")]
    pub summary_interval: Duration,
    /// Resend everything above the last ack when no ack came for this long.
    #[serde(default = "default_resend_after", with = "humantime_serde")]
    pub resend_after: Duration,
    /// Republish the retained status (config hash, poll and outbox statistics) this often
    /// while connected (also on every connect and after a reload).
    #[serde(default = "default_status_every", with = "humantime_serde")]
    pub status_every: Duration,
    /// Byte quota of the outbox; above it the oldest reading summaries, then the oldest
    /// events are dropped (counted and logged, and reported to the collector as gaps).
    #[serde(default = "default_outbox_max_bytes")]
    pub outbox_max_bytes: u64,
    /// Broker connection.
    pub mqtt: MqttConfig,
    /// Zone correlation settings.
    #[serde(default)]
    pub correlation: CorrelationConfig,
    /// Detector settings per sensor kind (`config/src/detection.rs`).
    #[serde(default)]
    pub detection: crate::detection::RawDetection,
    /// Devices to poll.
    #[serde(default)]
    pub devices: Vec<RawDevice>,
    /// SNMP notification listener (`[snmp_traps]`, `config/src/snmp_traps.rs`).
    #[serde(default)]
    pub snmp_traps: Option<crate::snmp_traps::RawSnmpTraps>,
    /// Prometheus `/metrics` endpoint (`[metrics]`); absent: no HTTP server.
    #[serde(default)]
    pub metrics: Option<RawMetrics>,
}

/// `[metrics]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// TCP `IP:PORT` serving `GET /metrics` (e.g. `127.0.0.1:9478`); absent: off.
    #[serde(default)]
    pub listen: Option<String>,
}

fn default_summary_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_status_every() -> Duration {
    Duration::from_secs(60)
}
fn default_resend_after() -> Duration {
    Duration::from_secs(30)
}
fn default_outbox_max_bytes() -> u64 {
    256 * 1024 * 1024
}

/// Zone correlation: sensors of one zone and category raised within `window` become one
/// zone event once at least `min_sensors` of them are raised.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrelationConfig {
    /// Raises further apart than this do not correlate.
    #[serde(default = "default_window", with = "humantime_serde")]
    pub window: Duration,
    /// Sensors needed for a zone event (1 lets a single sensor make one).
    #[serde(default = "default_min_sensors")]
    pub min_sensors: usize,
}

fn default_window() -> Duration {
    Duration::from_secs(300)
}
fn default_min_sensors() -> usize {
    2
}

impl Default for CorrelationConfig {
    fn default() -> Self {
        CorrelationConfig {
            window: default_window(),
            min_sensors: default_min_sensors(),
        }
    }
}

/// Device protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// SNMP over UDP.
    Snmp,
    /// Modbus: TCP by default; RTU on a serial line or RTU over TCP per `[devices.modbus]`.
    Modbus,
}

/// A device as written in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDevice {
    /// Device id, unique within the agent.
    pub id: String,
    /// Protocol spoken.
    pub protocol: Protocol,
    /// `host:port` (port defaults to 161 for SNMP, 502 for Modbus), or the serial device
    /// (e.g. `/dev/ttyUSB0`) of a Modbus RTU device.
    pub address: String,
    /// Zone the device is in (default zone of its points; the zone of its unreachable events).
    pub zone: String,
    /// Row, default for its points.
    #[serde(default)]
    pub row: Option<String>,
    /// Rack, default for its points.
    #[serde(default)]
    pub rack: Option<String>,
    /// Device profile name (see `config/profiles/`) providing point defaults.
    #[serde(default)]
    pub profile: Option<String>,
    /// Time between polls.
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Deadline of one whole poll of the device.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// SNMP community (v2c).
    #[serde(default)]
    pub community: Option<String>,
    /// Modbus unit id (slave id).
    #[serde(default)]
    pub unit_id: Option<u8>,
    /// Modbus transport, serial line, request planning and pacing (`[devices.modbus]`).
    #[serde(default)]
    pub modbus: Option<crate::modbus::RawModbusSettings>,
    /// SNMP version, v3 user and request pacing (`[devices.snmp]`, `config/src/snmp.rs`).
    #[serde(default)]
    pub snmp: Option<crate::snmp::RawSnmpSettings>,
    /// The device's points, each mapped to a sensor.
    #[serde(default)]
    pub points: Vec<RawPoint>,
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

/// Register table of a Modbus point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegisterTable {
    /// Holding registers (function code 3).
    Holding,
    /// Input registers (function code 4).
    Input,
    /// Coils (function code 1): bool points, read as 0 or 1.
    Coil,
    /// Discrete inputs (function code 2): bool points, read as 0 or 1.
    Discrete,
}

impl RegisterTable {
    /// Whether the table holds single bits (coils, discrete inputs) rather than registers.
    #[must_use]
    pub fn is_bits(self) -> bool {
        matches!(self, RegisterTable::Coil | RegisterTable::Discrete)
    }
}

/// Unit of a value as the device reports it (after scale and offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum SourceUnit {
    /// Degrees Celsius, or a non-temperature unit: no conversion.
    #[default]
    C,
    /// Degrees Fahrenheit: converted to °C at the edge.
    F,
}

/// A point as written in the config: a device value mapped to a sensor.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPoint {
    /// Sensor id, unique within the site.
    pub sensor: String,
    /// Name of a point of the device's profile to take defaults from.
    #[serde(default)]
    pub profile_point: Option<String>,
    /// What the sensor measures.
    #[serde(default)]
    pub kind: Option<SensorKind>,
    /// Zone, if not the device's.
    #[serde(default)]
    pub zone: Option<String>,
    /// Row, if not the device's.
    #[serde(default)]
    pub row: Option<String>,
    /// Rack, if not the device's.
    #[serde(default)]
    pub rack: Option<String>,
    /// SNMP OID, dotted numeric.
    #[serde(default)]
    pub oid: Option<String>,
    /// Modbus table.
    #[serde(default)]
    pub table: Option<RegisterTable>,
    /// Modbus register address (0-based).
    #[serde(default)]
    pub register: Option<u16>,
    /// Modbus data type.
    #[serde(default, rename = "type")]
    pub data_type: Option<RegisterType>,
    /// Modbus word order.
    #[serde(default)]
    pub order: Option<WordOrder>,
    /// Modbus: one bit (0 = least significant) of an integer register value, read as 0 or 1;
    /// names one state of an alarm or status word.
    #[serde(default)]
    pub bit: Option<u8>,
    /// Multiplier applied to the raw value.
    #[serde(default)]
    pub scale: Option<f64>,
    /// Added after scaling.
    #[serde(default)]
    pub offset: Option<f64>,
    /// Unit after scale and offset.
    #[serde(default)]
    pub unit: Option<SourceUnit>,
    /// Threshold detector; inlet temperatures default to the ASHRAE recommended limit.
    #[serde(default)]
    pub threshold: Option<RawThreshold>,
    /// SNMP table row selection and decoding (`[devices.points.snmp]`, `config/src/snmp.rs`).
    #[serde(default)]
    pub snmp: Option<crate::snmp::RawSnmpPoint>,
}

/// Threshold detector settings as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawThreshold {
    /// Raise when the value is above this.
    pub high: f64,
    /// Clear when the value falls below `high - hysteresis`.
    #[serde(default = "default_hysteresis")]
    pub hysteresis: f64,
    /// The value must stay above `high` this long before the event is raised.
    #[serde(default, with = "humantime_serde")]
    pub min_duration: Option<Duration>,
    /// Severity of the event.
    #[serde(default)]
    pub severity: Severity,
}

fn default_hysteresis() -> f64 {
    1.0
}

/// A validated threshold detector configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// Raise above this.
    pub high: f64,
    /// Clear below `high - hysteresis`.
    pub hysteresis: f64,
    /// Minimum time above `high` before raising.
    pub min_duration: Duration,
    /// Severity of the raised event.
    pub severity: Severity,
}

impl Threshold {
    /// The default for a sensor kind: inlet temperatures get the ASHRAE TC 9.9 recommended
    /// upper limit (27 °C) with 1 °C hysteresis and 5 minutes' duration; other kinds get none.
    pub fn default_for(kind: SensorKind) -> Option<Threshold> {
        match kind {
            SensorKind::InletTemp => Some(Threshold {
                high: 27.0,
                hysteresis: 1.0,
                min_duration: Duration::from_secs(300),
                severity: Severity::Warning,
            }),
            _ => None,
        }
    }
}

/// Where a sensor's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum SensorSource {
    /// An SNMP OID (dotted numeric).
    Snmp {
        /// The OID's arcs.
        oid: Vec<u64>,
    },
    /// Modbus registers.
    Modbus {
        /// Holding or input.
        table: RegisterTable,
        /// First register.
        register: u16,
        /// Data type (gives the register count).
        data_type: RegisterType,
        /// Word order.
        order: WordOrder,
        /// One bit of the integer value (alarm and status words), read as 0 or 1.
        bit: Option<u8>,
    },
}

/// A validated sensor: one point of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct Sensor {
    /// Sensor id, unique within the site.
    pub id: String,
    /// What it measures.
    pub kind: SensorKind,
    /// Where it is.
    pub location: Location,
    /// Where its value comes from.
    pub source: SensorSource,
    /// Multiplier applied to the raw value.
    pub scale: f64,
    /// Added after scaling.
    pub offset: f64,
    /// Unit after scale and offset (°F is converted to °C).
    pub unit: SourceUnit,
    /// Threshold detector, if any.
    pub threshold: Option<Threshold>,
}

impl Sensor {
    /// Normalises a raw device value: scale, offset, then °F → °C when needed.
    pub fn normalise(&self, raw: f64) -> f64 {
        let value = raw * self.scale + self.offset;
        match self.unit {
            SourceUnit::C => value,
            SourceUnit::F => (value - 32.0) * 5.0 / 9.0,
        }
    }
}

/// A validated device.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// Device id, unique within the agent.
    pub id: String,
    /// Protocol spoken.
    pub protocol: Protocol,
    /// `host:port`, port filled in.
    pub address: String,
    /// Where the device is.
    pub location: Location,
    /// Time between polls.
    pub poll_interval: Duration,
    /// Deadline of one poll.
    pub timeout: Duration,
    /// SNMP community (SNMP devices).
    pub community: String,
    /// Modbus unit id (Modbus devices).
    pub unit_id: u8,
    /// Modbus transport and request settings (defaults for SNMP devices, unused).
    pub modbus: crate::modbus::ModbusSettings,
    /// SNMP version, v3 user and request settings (defaults for Modbus devices, unused).
    pub snmp: crate::snmp::SnmpSettings,
    /// Its sensors.
    pub sensors: Vec<Sensor>,
}

/// The validated agent configuration the agent runs on.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// As written (for `check-config --verbose` and the config hash).
    pub raw: RawAgentConfig,
    /// Agent id.
    pub agent_id: String,
    /// Site.
    pub site: String,
    /// State directory.
    pub state_dir: PathBuf,
    /// Summary interval.
    pub summary_interval: Duration,
    /// Resend timeout.
    pub resend_after: Duration,
    /// Broker settings.
    pub mqtt: MqttConfig,
    /// Broker password (read from `password_file` when given).
    pub mqtt_password: Option<crate::mqtt::Secret>,
    /// TLS material for the broker connection, if configured.
    pub mqtt_tls: Option<crate::mqtt::TlsMaterial>,
    /// Correlation settings.
    pub correlation: CorrelationConfig,
    /// Detector settings per sensor kind.
    pub detection: crate::detection::DetectionConfig,
    /// Devices.
    pub devices: Vec<Device>,
    /// SNMP notification listener and trap meanings (`config/src/snmp_traps.rs`).
    pub snmp_traps: crate::snmp_traps::SnmpTraps,
    /// Where `/metrics` is served (`[metrics] listen`); `None`: off.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// A stable hash of the file's text, reported in the agent's status.
    pub config_hash: String,
}

impl AgentConfig {
    /// Loads, validates and resolves an agent config file with the built-in profiles.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let file = SourceFile::read(path)?;
        Self::from_source(&file)
    }

    /// Same as [`AgentConfig::load`] from text; `origin` names the file in errors.
    pub fn from_str(text: &str, origin: &Path) -> Result<AgentConfig, ConfigError> {
        let file = SourceFile {
            path: origin.to_path_buf(),
            text: text.to_string(),
        };
        Self::from_source(&file)
    }

    fn from_source(file: &SourceFile) -> Result<AgentConfig, ConfigError> {
        let raw: RawAgentConfig = file.parse()?;
        let profiles = Profiles::builtin().map_err(|p| file.invalid(p))?;
        resolve(raw, &profiles, &file.text).map_err(|p| file.invalid(p))
    }
}

/// Characters MQTT topics and our keys cannot hold in an id.
fn check_id(value: &str, at: KeyPath) -> Result<(), Problem> {
    if value.is_empty() || value.contains(['/', '+', '#', ' ']) {
        return Err(Problem::new(
            at,
            format!("`{value}` must be non-empty and contain no '/', '+', '#' or spaces"),
        ));
    }
    Ok(())
}

fn resolve(raw: RawAgentConfig, profiles: &Profiles, text: &str) -> Result<AgentConfig, Problem> {
    let root = KeyPath::default();
    check_id(&raw.agent_id, root.key("agent_id"))?;
    check_id(&raw.site, root.key("site"))?;
    if raw.summary_interval.is_zero() {
        return Err(Problem::new(
            root.key("summary_interval"),
            "must be above zero",
        ));
    }
    if raw.correlation.min_sensors == 0 {
        return Err(Problem::new(
            root.key("correlation").key("min_sensors"),
            "must be at least 1",
        ));
    }
    let detection = crate::detection::resolve_detection(&raw.detection)?;
    let mqtt_password = raw.mqtt.resolve_password(&root.key("mqtt"))?;
    let mqtt_tls = raw.mqtt.resolve_tls(&root.key("mqtt"))?;
    let mut device_ids = HashSet::new();
    let mut sensor_ids = HashSet::new();
    let mut devices = Vec::new();
    for (i, raw_device) in raw.devices.iter().enumerate() {
        let at = root.key("devices").index(i);
        if !device_ids.insert(raw_device.id.clone()) {
            return Err(Problem::new(
                at.key("id"),
                format!("device id `{}` is used twice", raw_device.id),
            ));
        }
        let device = resolve_device(raw_device, &raw.site, profiles, &at)?;
        for (j, sensor) in device.sensors.iter().enumerate() {
            if !sensor_ids.insert(sensor.id.clone()) {
                return Err(Problem::new(
                    at.key("points").index(j).key("sensor"),
                    format!("sensor id `{}` is used twice", sensor.id),
                ));
            }
        }
        devices.push(device);
    }
    crate::modbus::check_shared_lines(&devices, &root)?;
    let snmp_traps = crate::snmp_traps::resolve(raw.snmp_traps.as_ref(), &root.key("snmp_traps"))?;
    let metrics_listen = resolve_metrics(raw.metrics.as_ref(), &root.key("metrics"))?;
    Ok(AgentConfig {
        agent_id: raw.agent_id.clone(),
        site: raw.site.clone(),
        state_dir: raw.state_dir.clone(),
        summary_interval: raw.summary_interval,
        resend_after: raw.resend_after,
        mqtt: raw.mqtt.clone(),
        mqtt_password,
        mqtt_tls,
        correlation: raw.correlation.clone(),
        detection,
        devices,
        snmp_traps,
        metrics_listen,
        config_hash: stable_hash(text),
        raw,
    })
}

/// Validates `[metrics] listen` (an `IP:PORT`; absent table or key: off).
fn resolve_metrics(
    raw: Option<&RawMetrics>,
    at: &KeyPath,
) -> Result<Option<std::net::SocketAddr>, Problem> {
    let Some(text) = raw.and_then(|m| m.listen.as_ref()) else {
        return Ok(None);
    };
    text.trim().parse().map(Some).map_err(|e| {
        Problem::new(
            at.key("listen"),
            format!("`{text}` is not an IP:PORT address (e.g. 127.0.0.1:9478): {e}"),
        )
    })
}

/// FNV-1a 64-bit of the config text: stable across builds and platforms.
fn stable_hash(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

fn resolve_device(
    raw: &RawDevice,
    site: &str,
    profiles: &Profiles,
    at: &KeyPath,
) -> Result<Device, Problem> {
    check_id(&raw.id, at.key("id"))?;
    check_id(&raw.zone, at.key("zone"))?;
    if raw.poll_interval.is_zero() {
        return Err(Problem::new(at.key("poll_interval"), "must be above zero"));
    }
    if raw.timeout.is_zero() || raw.timeout > raw.poll_interval {
        return Err(Problem::new(
            at.key("timeout"),
            format!(
                "must be above zero and at most poll_interval ({})",
                humantime::format_duration(raw.poll_interval)
            ),
        ));
    }
    let default_port = match raw.protocol {
        Protocol::Snmp => 161,
        Protocol::Modbus => 502,
    };
    let modbus = crate::modbus::resolve(raw.modbus.as_ref(), raw.protocol, raw.timeout, at)?;
    let mut snmp = crate::snmp::resolve(raw.snmp.as_ref(), raw.protocol, raw.timeout, at)?;
    let address = match modbus.transport.is_serial() {
        true if !raw.address.trim().is_empty() => raw.address.trim().to_string(),
        _ => normalise_address(&raw.address, default_port)
            .ok_or_else(|| Problem::new(at.key("address"), "expected HOST or HOST:PORT"))?,
    };
    let profile = match &raw.profile {
        Some(name) => Some(profiles.get(name).ok_or_else(|| {
            Problem::new(
                at.key("profile"),
                format!(
                    "unknown profile `{name}`; known: {}",
                    profiles.names().join(", ")
                ),
            )
        })?),
        None => None,
    };
    if let Some(p) = profile {
        if p.protocol != raw.protocol {
            return Err(Problem::new(
                at.key("profile"),
                format!("profile `{}` is for {:?} devices", p.name, p.protocol),
            ));
        }
    }
    match raw.protocol {
        Protocol::Snmp if raw.unit_id.is_some() => {
            return Err(Problem::new(
                at.key("unit_id"),
                "only Modbus devices have a unit id",
            ))
        }
        Protocol::Modbus if raw.community.is_some() => {
            return Err(Problem::new(
                at.key("community"),
                "only SNMP devices have a community",
            ))
        }
        _ => {}
    }
    let location = Location {
        site: site.to_string(),
        zone: raw.zone.clone(),
        row: raw.row.clone(),
        rack: raw.rack.clone(),
    };
    let mut sensors = Vec::new();
    for (j, point) in raw.points.iter().enumerate() {
        let at = at.key("points").index(j);
        sensors.push(resolve_point(point, raw.protocol, &location, profile, &at)?);
    }
    if sensors.is_empty() {
        return Err(Problem::new(
            at.key("points"),
            "a device needs at least one point",
        ));
    }
    crate::modbus::check_points(&modbus, &sensors, at)?;
    crate::snmp::resolve_points(&mut snmp, &raw.points, &sensors, profile, at)?;
    Ok(Device {
        id: raw.id.clone(),
        protocol: raw.protocol,
        address,
        location,
        poll_interval: raw.poll_interval,
        timeout: raw.timeout,
        community: raw
            .community
            .clone()
            .unwrap_or_else(|| "public".to_string()),
        unit_id: raw.unit_id.unwrap_or(1),
        modbus,
        snmp,
        sensors,
    })
}

fn normalise_address(address: &str, default_port: u16) -> Option<String> {
    let address = address.trim();
    if address.is_empty() || address.contains(char::is_whitespace) {
        return None;
    }
    match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.ends_with(':') => {
            port.parse::<u16>().ok().map(|p| format!("{host}:{p}"))
        }
        Some(_) => None,
        None => Some(format!("{address}:{default_port}")),
    }
}

fn resolve_point(
    raw: &RawPoint,
    protocol: Protocol,
    device_location: &Location,
    profile: Option<&Profile>,
    at: &KeyPath,
) -> Result<Sensor, Problem> {
    check_id(&raw.sensor, at.key("sensor"))?;
    let base: ProfilePoint = match (&raw.profile_point, profile) {
        (Some(name), Some(p)) => p.point(name).cloned().ok_or_else(|| {
            Problem::new(
                at.key("profile_point"),
                format!(
                    "profile `{}` has no point `{name}`; it has: {}",
                    p.name,
                    p.point_names().join(", ")
                ),
            )
        })?,
        (Some(_), None) => {
            return Err(Problem::new(
                at.key("profile_point"),
                "set the device's `profile` to use profile points",
            ))
        }
        (None, _) => ProfilePoint::default(),
    };
    let kind = raw.kind.or(base.kind).ok_or_else(|| {
        Problem::new(
            at.key("kind"),
            "missing: say what the sensor measures, e.g. inlet_temp",
        )
    })?;
    let source = match protocol {
        Protocol::Snmp => {
            if raw.register.is_some()
                || raw.table.is_some()
                || raw.data_type.is_some()
                || raw.bit.is_some()
            {
                return Err(Problem::new(
                    at.key("register"),
                    "SNMP points take `oid`, not Modbus register settings",
                ));
            }
            let text = raw.oid.clone().or(base.oid.clone()).ok_or_else(|| {
                Problem::new(at.key("oid"), "missing: an SNMP point needs an OID")
            })?;
            SensorSource::Snmp {
                oid: parse_oid(&text).ok_or_else(|| {
                    Problem::new(
                        at.key("oid"),
                        format!("`{text}` is not a dotted numeric OID like 1.3.6.1.2.1.1.1.0"),
                    )
                })?,
            }
        }
        Protocol::Modbus => {
            if raw.oid.is_some() {
                return Err(Problem::new(
                    at.key("oid"),
                    "Modbus points take `register`, not `oid`",
                ));
            }
            SensorSource::Modbus {
                table: raw.table.or(base.table).unwrap_or(RegisterTable::Holding),
                register: raw.register.or(base.register).ok_or_else(|| {
                    Problem::new(
                        at.key("register"),
                        "missing: a Modbus point needs a register",
                    )
                })?,
                data_type: raw.data_type.or(base.data_type).unwrap_or_default(),
                order: raw.order.or(base.order).unwrap_or_default(),
                bit: raw.bit.or(base.bit),
            }
        }
    };
    let scale = raw.scale.or(base.scale).unwrap_or(1.0);
    if !scale.is_finite() || scale == 0.0 {
        return Err(Problem::new(
            at.key("scale"),
            "must be a finite, non-zero number",
        ));
    }
    let offset = raw.offset.or(base.offset).unwrap_or(0.0);
    if !offset.is_finite() {
        return Err(Problem::new(at.key("offset"), "must be a finite number"));
    }
    let threshold = match &raw.threshold {
        Some(t) => Some(resolve_threshold(t, &at.key("threshold"))?),
        None => Threshold::default_for(kind),
    };
    let zone = raw
        .zone
        .clone()
        .unwrap_or_else(|| device_location.zone.clone());
    check_id(&zone, at.key("zone"))?;
    Ok(Sensor {
        id: raw.sensor.clone(),
        kind,
        location: Location {
            site: device_location.site.clone(),
            zone,
            row: raw.row.clone().or_else(|| device_location.row.clone()),
            rack: raw.rack.clone().or_else(|| device_location.rack.clone()),
        },
        source,
        scale,
        offset,
        unit: raw.unit.or(base.unit).unwrap_or_default(),
        threshold,
    })
}

fn resolve_threshold(raw: &RawThreshold, at: &KeyPath) -> Result<Threshold, Problem> {
    if !raw.high.is_finite() {
        return Err(Problem::new(at.key("high"), "must be a finite number"));
    }
    if !raw.hysteresis.is_finite() || raw.hysteresis < 0.0 {
        return Err(Problem::new(
            at.key("hysteresis"),
            "must be zero or a positive number",
        ));
    }
    Ok(Threshold {
        high: raw.high,
        hysteresis: raw.hysteresis,
        min_duration: raw.min_duration.unwrap_or(Duration::ZERO),
        severity: raw.severity,
    })
}

/// Parses a dotted numeric OID (a leading dot is accepted, as net-snmp prints them).
pub fn parse_oid(text: &str) -> Option<Vec<u64>> {
    let trimmed = text.trim().trim_start_matches('.');
    let arcs: Option<Vec<u64>> = trimmed.split('.').map(|a| a.parse().ok()).collect();
    arcs.filter(|a| a.len() >= 2)
}

#[cfg(test)]
mod tests;
