//! The agent's SNMP notification listener (`[snmp_traps]`): where it listens (off unless
//! `listen` is set), the communities it accepts, and what each notification OID means
//! (built-in entries plus the config's own, which override a built-in entry of the same OID).
//!
//! ```toml
//! [snmp_traps]
//! listen = "0.0.0.0:162"             # default: no listener
//! communities = ["s3cret-traps"]     # v1/v2c communities accepted (default: none, so v1/v2c
//!                                    # traps are refused; check-config warns)
//! engine_id = "0x80000000046361"     # our SNMPv3 engine id for informs (default: from agent_id)
//!
//! [[snmp_traps.users]]               # SNMPv3 users accepted (besides every v3 device's own user)
//! user = "traps"
//! level = "authPriv"
//! auth_protocol = "SHA-256"
//! auth_passphrase_env = "TRAP_AUTH"  # or auth_passphrase / auth_passphrase_file
//! priv_protocol = "AES"
//! priv_passphrase_env = "TRAP_PRIV"
//!
//! [[snmp_traps.map]]
//! oid = "1.3.6.1.4.1.318.0.253"      # snmpTrapOID (v1 traps: enterprise.0.specific)
//! name = "pdu_temp_high"             # becomes part of the event's sensor id
//! category = "thermal"               # thermal | humidity | cooling | power | device
//! kind = "temperature"               # sensor kind of the event (default: temperature)
//! severity = "critical"              # info | warning (default) | critical
//! state = "raised"                   # raised (default) or cleared: a clear ends the raise of the same name
//! value_oid = "1.3.6.1.4.1.318.2.3.1" # optional: the varbind under this OID is the event's value
//! scale = 0.1                        # optional factor for that value (default 1)
//! instance_oid = "1.3.6.1.4.1.318.2.3.1" # optional: the varbind under this OID names the instance
//!                                    # (probe/sensor number): the event's sensor id gets `.{instance}`
//! ```
//!
//! Invariants: every mapping OID parses; names are ids (no '/', '+', '#', spaces); a config
//! entry replaces the built-in entry of the same OID.

use crate::error::{KeyPath, Problem};
use crate::snmp::{resolve_usm, RawUsmUser, UsmUser};
use coldaisle_core::{Category, EventState, SensorKind, Severity};
use serde::Deserialize;
use std::net::SocketAddr;

mod apc;

/// `[snmp_traps]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSnmpTraps {
    /// UDP address to listen on; none: no listener.
    #[serde(default)]
    pub listen: Option<String>,
    /// Accepted v1/v2c communities. No default: absent or empty refuses v1/v2c traps.
    #[serde(default)]
    pub communities: Option<Vec<String>>,
    /// Meaning of notification OIDs.
    #[serde(default)]
    pub map: Vec<RawTrapMapping>,
    /// Our SNMPv3 engine id, hex (`0x` optional).
    #[serde(default)]
    pub engine_id: Option<String>,
    /// SNMPv3 users whose notifications are accepted.
    #[serde(default)]
    pub users: Vec<RawUsmUser>,
}

/// One `[[snmp_traps.map]]` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrapMapping {
    /// Notification OID, dotted.
    pub oid: String,
    /// Name of the condition.
    pub name: String,
    /// Category of the event.
    pub category: Category,
    /// Sensor kind of the event.
    #[serde(default)]
    pub kind: Option<SensorKind>,
    /// Severity of the event.
    #[serde(default)]
    pub severity: Severity,
    /// Raised or cleared.
    #[serde(default)]
    pub state: Option<EventState>,
    /// OID (prefix) of the varbind carrying the event's value.
    #[serde(default)]
    pub value_oid: Option<String>,
    /// Factor applied to that value (e.g. 0.1 for tenths of °C).
    #[serde(default)]
    pub scale: Option<f64>,
    /// OID (prefix) of the varbind naming the instance (probe or sensor number).
    #[serde(default)]
    pub instance_oid: Option<String>,
}

/// What one notification OID means.
#[derive(Debug, Clone, PartialEq)]
pub struct TrapMapping {
    /// Notification OID.
    pub oid: Vec<u64>,
    /// Name of the condition (sensor id part).
    pub name: String,
    /// Category of the event.
    pub category: Category,
    /// Sensor kind of the event.
    pub kind: SensorKind,
    /// Severity of the event.
    pub severity: Severity,
    /// Raised or cleared.
    pub state: EventState,
    /// The varbind whose OID starts with this carries the event's value.
    pub value_oid: Option<Vec<u64>>,
    /// Factor applied to the value.
    pub scale: f64,
    /// The varbind whose OID starts with this names the instance (its integer or text value,
    /// else the OID's suffix), so two probes of one device raise and clear separately.
    pub instance_oid: Option<Vec<u64>>,
}

/// The resolved listener settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SnmpTraps {
    /// Where to listen; `None`: the listener is off.
    pub listen: Option<SocketAddr>,
    /// Accepted communities.
    pub communities: Vec<String>,
    /// Built-in and configured mappings (configured ones win by OID).
    pub mappings: Vec<TrapMapping>,
    /// Our SNMPv3 engine id, when configured (otherwise the agent derives one from its id).
    pub engine_id: Option<Vec<u8>>,
    /// SNMPv3 users accepted for notifications (besides every v3 device's own user).
    pub users: Vec<UsmUser>,
}

impl SnmpTraps {
    /// The mapping of a notification OID.
    pub fn mapping(&self, oid: &[u64]) -> Option<&TrapMapping> {
        self.mappings.iter().find(|m| m.oid == oid)
    }
}

/// Built-in mappings, each OID checked against its MIB:
/// CISCO-ENTITY-SENSOR-MIB `entSensorThresholdNotification` (1.3.6.1.4.1.9.9.91.2.0.1), whose
/// `entSensorValue` varbind (1.3.6.1.4.1.9.9.91.1.1.1.1.4) carries the reading (OIDs as listed
/// in CISCO-ENTITY-SENSOR-MIB). The notification does not say which kind of sensor crossed its
/// threshold here, so it is reported as a thermal warning with the raw value; a config entry
/// with the same OID overrides it (e.g. `category = "power"`).
/// Then the APC PowerNet-MIB temperature, humidity and cooling traps of [`apc`] (raise/clear
/// pairs, MIB version and trap names documented there).
pub fn builtin_mappings() -> Vec<TrapMapping> {
    let mut builtin = vec![TrapMapping {
        oid: vec![1, 3, 6, 1, 4, 1, 9, 9, 91, 2, 0, 1],
        name: "ent_sensor_threshold".into(),
        category: Category::Thermal,
        kind: SensorKind::Temperature,
        severity: Severity::Warning,
        state: EventState::Raised,
        value_oid: Some(vec![1, 3, 6, 1, 4, 1, 9, 9, 91, 1, 1, 1, 1, 4]),
        scale: 1.0,
        // entSensorValue.<entPhysicalIndex>: its suffix tells the sensors apart.
        instance_oid: Some(vec![1, 3, 6, 1, 4, 1, 9, 9, 91, 1, 1, 1, 1, 4]),
    }];
    builtin.extend(apc::mappings());
    builtin
}

fn oid(text: &str, at: KeyPath) -> Result<Vec<u64>, Problem> {
    crate::agent::parse_oid(text)
        .ok_or_else(|| Problem::new(at, format!("`{text}` is not a dotted OID")))
}

/// Validates `[snmp_traps]` (absent: listener off, built-in mappings only).
pub fn resolve(raw: Option<&RawSnmpTraps>, at: &KeyPath) -> Result<SnmpTraps, Problem> {
    let raw = raw.cloned().unwrap_or_default();
    let listen = match &raw.listen {
        Some(text) => Some(text.trim().parse::<SocketAddr>().map_err(|e| {
            Problem::new(
                at.key("listen"),
                format!("`{text}` is not an IP:PORT address: {e}"),
            )
        })?),
        None => None,
    };
    // No default community: a well-known one would let anyone on the network raise events.
    let communities = raw.communities.unwrap_or_default();
    if let Some(i) = communities.iter().position(|c| c.is_empty()) {
        return Err(Problem::new(
            at.key("communities").index(i),
            "a community must not be empty",
        ));
    }
    let mut mappings = builtin_mappings();
    for (i, m) in raw.map.iter().enumerate() {
        let here = at.key("map").index(i);
        if m.name.is_empty() || m.name.contains(['/', '+', '#', ' ']) {
            return Err(Problem::new(
                here.key("name"),
                format!(
                    "`{}` must be non-empty and contain no '/', '+', '#' or spaces",
                    m.name
                ),
            ));
        }
        let mapping = TrapMapping {
            oid: oid(&m.oid, here.key("oid"))?,
            name: m.name.clone(),
            category: m.category,
            kind: m.kind.unwrap_or(SensorKind::Temperature),
            severity: m.severity,
            state: m.state.unwrap_or(EventState::Raised),
            value_oid: match &m.value_oid {
                Some(v) => Some(oid(v, here.key("value_oid"))?),
                None => None,
            },
            scale: m.scale.unwrap_or(1.0),
            instance_oid: match &m.instance_oid {
                Some(v) => Some(oid(v, here.key("instance_oid"))?),
                None => None,
            },
        };
        if !mapping.scale.is_finite() || mapping.scale == 0.0 {
            return Err(Problem::new(
                here.key("scale"),
                "must be a finite non-zero number",
            ));
        }
        mappings.retain(|b| b.oid != mapping.oid);
        mappings.push(mapping);
    }
    let engine_id = match &raw.engine_id {
        Some(text) => Some(engine_id(text).map_err(|e| Problem::new(at.key("engine_id"), e))?),
        None => None,
    };
    let users = raw
        .users
        .iter()
        .enumerate()
        .map(|(i, u)| resolve_usm(u, &at.key("users").index(i)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SnmpTraps {
        listen,
        communities,
        mappings,
        engine_id,
        users,
    })
}

/// Parses an SNMP engine id written in hex (`0x` prefix and `:` separators optional).
pub fn engine_id(text: &str) -> Result<Vec<u8>, String> {
    let digits: String = text
        .trim()
        .trim_start_matches("0x")
        .trim_start_matches("0X")
        .chars()
        .filter(|c| *c != ':')
        .collect();
    if digits.len() % 2 != 0 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("`{text}` is not an even number of hex digits"));
    }
    let bytes: Vec<u8> = (0..digits.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&digits[i..i + 2], 16).ok())
        .collect();
    if !(5..=32).contains(&bytes.len()) {
        return Err(format!(
            "an engine id has 5..=32 octets (RFC 3411), `{text}` has {}",
            bytes.len()
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SnmpTraps, Problem> {
        let raw: RawSnmpTraps = toml::from_str(text).unwrap();
        resolve(Some(&raw), &KeyPath::default().key("snmp_traps"))
    }

    #[test]
    fn absent_table_means_no_listener_and_builtins() {
        let t = resolve(None, &KeyPath::default()).unwrap();
        assert_eq!(t.listen, None);
        assert!(t.communities.is_empty(), "no default community");
        assert!(t.mapping(&[1, 3, 6, 1, 4, 1, 9, 9, 91, 2, 0, 1]).is_some());
    }

    #[test]
    fn configured_entry_overrides_builtin_and_parses_everything() {
        let t = parse(
            r#"
            listen = "127.0.0.1:1162"
            communities = ["traps"]
            [[map]]
            oid = "1.3.6.1.4.1.9.9.91.2.0.1"
            name = "inlet_hot"
            category = "cooling"
            severity = "critical"
            state = "cleared"
            value_oid = ".1.3.6.1.2"
            "#,
        )
        .unwrap();
        assert_eq!(t.listen, Some("127.0.0.1:1162".parse().unwrap()));
        let m = t.mapping(&[1, 3, 6, 1, 4, 1, 9, 9, 91, 2, 0, 1]).unwrap();
        assert_eq!(m.name, "inlet_hot");
        assert_eq!(m.category, Category::Cooling);
        assert_eq!(m.severity, Severity::Critical);
        assert_eq!(m.state, EventState::Cleared);
        assert_eq!(m.value_oid, Some(vec![1, 3, 6, 1, 2]));
        assert_eq!(t.mappings.len(), builtin_mappings().len());
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse("listen = \"nowhere\"").unwrap_err();
        assert!(format!("{e:?}").contains("listen"), "{e:?}");
        let e = parse("[[map]]\noid = \"1.x\"\nname = \"a\"\ncategory = \"thermal\"").unwrap_err();
        assert!(format!("{e:?}").contains("oid"), "{e:?}");
        let e =
            parse("[[map]]\noid = \"1.3\"\nname = \"a b\"\ncategory = \"thermal\"").unwrap_err();
        assert!(format!("{e:?}").contains("name"), "{e:?}");
        assert!(parse("communities = []").is_ok_and(|t| t.communities.is_empty()));
        let e = parse("communities = [\"a\", \"\"]").unwrap_err();
        assert_eq!(e.path.to_string(), "snmp_traps.communities[1]");
        let e = parse("engine_id = \"0x8000\"").unwrap_err();
        assert!(format!("{e:?}").contains("engine_id"), "{e:?}");
        let e = parse("[[users]]\nuser = \"t\"\nauth_passphrase = \"short\"").unwrap_err();
        assert_eq!(e.path.to_string(), "snmp_traps.users[0].auth_passphrase");
    }

    #[test]
    fn engine_id_and_users_parse() {
        let t = parse(
            r#"
            engine_id = "0x80:00:1f:88:04:61:62"
            [[users]]
            user = "traps"
            auth_protocol = "SHA-256"
            auth_passphrase = "authpass1"
            priv_protocol = "AES-256"
            priv_passphrase = "privpass1"
            "#,
        )
        .unwrap();
        assert_eq!(
            t.engine_id,
            Some(vec![0x80, 0x00, 0x1f, 0x88, 0x04, 0x61, 0x62])
        );
        assert_eq!(t.users.len(), 1);
        assert_eq!(t.users[0].user, "traps");
        assert_eq!(t.users[0].level, crate::snmp::SecurityLevel::AuthPriv);
    }
}
