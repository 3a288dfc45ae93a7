//! Pure conversion of SNMP varbind values: into sensor numbers ([`numeric`]), into owned
//! values that outlive the response buffer ([`VarValue`]) and into net-snmp's `TYPE: value` text.

use snmp2::Value;

/// Why one point's varbind is not a usable number.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    /// The agent has no such object or instance, or the walk ended.
    #[error("device has no value here ({0})")]
    Missing(&'static str),
    /// A type that cannot be a sensor reading.
    #[error("value of type {0} is not numeric")]
    NotNumeric(&'static str),
    /// A string that does not hold a number.
    #[error("string {0:?} is not a number")]
    BadString(String),
}

/// The numeric value of a varbind. Integers, gauges, counters and timeticks convert directly;
/// octet strings are accepted when they hold a decimal number (some PDUs report "23.5").
pub fn numeric(value: &Value<'_>) -> Result<f64, ValueError> {
    match value {
        Value::Integer(n) => Ok(*n as f64),
        Value::Counter32(n) | Value::Unsigned32(n) | Value::Timeticks(n) => Ok(f64::from(*n)),
        Value::Counter64(n) => Ok(*n as f64),
        Value::OctetString(bytes) => {
            let text = String::from_utf8_lossy(bytes);
            let trimmed = text.trim();
            trimmed
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| ValueError::BadString(trimmed.chars().take(40).collect()))
        }
        Value::NoSuchObject => Err(ValueError::Missing("noSuchObject")),
        Value::NoSuchInstance => Err(ValueError::Missing("noSuchInstance")),
        Value::EndOfMibView => Err(ValueError::Missing("endOfMibView")),
        Value::Null => Err(ValueError::NotNumeric("NULL")),
        Value::Boolean(_) => Err(ValueError::NotNumeric("BOOLEAN")),
        Value::ObjectIdentifier(_) => Err(ValueError::NotNumeric("OBJECT IDENTIFIER")),
        Value::IpAddress(_) => Err(ValueError::NotNumeric("IpAddress")),
        Value::Opaque(_) => Err(ValueError::NotNumeric("Opaque")),
        _ => Err(ValueError::NotNumeric("constructed")),
    }
}

/// A varbind value copied out of a response (which borrows the session's receive buffer).
#[derive(Debug, Clone, PartialEq)]
pub enum VarValue {
    /// INTEGER / Integer32.
    Integer(i64),
    /// OCTET STRING.
    OctetString(Vec<u8>),
    /// NULL.
    Null,
    /// OBJECT IDENTIFIER (arcs).
    ObjectIdentifier(Vec<u64>),
    /// IpAddress.
    IpAddress([u8; 4]),
    /// Counter32.
    Counter32(u32),
    /// Gauge32 / Unsigned32.
    Gauge32(u32),
    /// TimeTicks (hundredths of a second).
    Timeticks(u32),
    /// Opaque.
    Opaque(Vec<u8>),
    /// Counter64.
    Counter64(u64),
    /// The agent has no such object.
    NoSuchObject,
    /// The agent has the object but not this instance.
    NoSuchInstance,
    /// A walk ran past the agent's last object.
    EndOfMibView,
    /// A type no sensor can be (BOOLEAN, constructed, a nested PDU): its name.
    Other(&'static str),
}

/// The arcs of an OID, or `None` when an arc does not fit in 64 bits.
pub fn oid_arcs(oid: &snmp2::Oid<'_>) -> Option<Vec<u64>> {
    oid.iter().map(|arcs| {
        // One allocation: a BER arc takes at least one byte, the first byte holds two arcs.
        let mut out = Vec::with_capacity(oid.as_bytes().len() + 1);
        out.extend(arcs);
        out
    })
}

/// Dotted text of OID arcs, without a leading dot.
pub fn format_oid(arcs: &[u64]) -> String {
    let mut text = String::with_capacity(arcs.len() * 3);
    for (i, arc) in arcs.iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        text.push_str(&arc.to_string());
    }
    text
}

impl VarValue {
    /// Copies a borrowed snmp2 value.
    pub fn from_snmp(value: &Value<'_>) -> VarValue {
        match value {
            Value::Integer(n) => VarValue::Integer(*n),
            Value::OctetString(b) => VarValue::OctetString(b.to_vec()),
            Value::Null => VarValue::Null,
            Value::ObjectIdentifier(oid) => match oid_arcs(oid) {
                Some(arcs) => VarValue::ObjectIdentifier(arcs),
                None => VarValue::Other("OBJECT IDENTIFIER (arc beyond 64 bits)"),
            },
            Value::IpAddress(a) => VarValue::IpAddress(*a),
            Value::Counter32(n) => VarValue::Counter32(*n),
            Value::Unsigned32(n) => VarValue::Gauge32(*n),
            Value::Timeticks(n) => VarValue::Timeticks(*n),
            Value::Opaque(b) => VarValue::Opaque(b.to_vec()),
            Value::Counter64(n) => VarValue::Counter64(*n),
            Value::NoSuchObject => VarValue::NoSuchObject,
            Value::NoSuchInstance => VarValue::NoSuchInstance,
            Value::EndOfMibView => VarValue::EndOfMibView,
            Value::Boolean(_) => VarValue::Other("BOOLEAN"),
            _ => VarValue::Other("constructed"),
        }
    }

    /// The value as a sensor number (same rules as [`numeric`]).
    pub fn numeric(&self) -> Result<f64, ValueError> {
        match self {
            VarValue::Integer(n) => Ok(*n as f64),
            VarValue::Counter32(n) | VarValue::Gauge32(n) | VarValue::Timeticks(n) => {
                Ok(f64::from(*n))
            }
            VarValue::Counter64(n) => Ok(*n as f64),
            VarValue::OctetString(bytes) => numeric(&Value::OctetString(bytes)),
            VarValue::NoSuchObject => Err(ValueError::Missing("noSuchObject")),
            VarValue::NoSuchInstance => Err(ValueError::Missing("noSuchInstance")),
            VarValue::EndOfMibView => Err(ValueError::Missing("endOfMibView")),
            VarValue::Null => Err(ValueError::NotNumeric("NULL")),
            VarValue::ObjectIdentifier(_) => Err(ValueError::NotNumeric("OBJECT IDENTIFIER")),
            VarValue::IpAddress(_) => Err(ValueError::NotNumeric("IpAddress")),
            VarValue::Opaque(_) => Err(ValueError::NotNumeric("Opaque")),
            VarValue::Other(name) => Err(ValueError::NotNumeric(name)),
        }
    }

    /// The value as text (octet strings lossily as UTF-8), e.g. for a sensor name column.
    pub fn text(&self) -> String {
        match self {
            VarValue::OctetString(b) => String::from_utf8_lossy(b).trim().to_string(),
            other => other.to_string(),
        }
    }

    /// Whether the agent said the object or instance does not exist (or the walk ended).
    pub fn is_exception(&self) -> bool {
        matches!(
            self,
            VarValue::NoSuchObject | VarValue::NoSuchInstance | VarValue::EndOfMibView
        )
    }
}

/// net-snmp's `TYPE: value` notation (`snmpget` output after `OID = `).
impl std::fmt::Display for VarValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VarValue::Integer(n) => write!(f, "INTEGER: {n}"),
            VarValue::OctetString(b) => {
                let printable = b
                    .iter()
                    .all(|c| c.is_ascii_graphic() || *c == b' ' || *c == b'\t');
                if printable {
                    write!(f, "STRING: \"{}\"", String::from_utf8_lossy(b))
                } else {
                    let hex: Vec<String> = b.iter().map(|c| format!("{c:02X}")).collect();
                    write!(f, "Hex-STRING: {}", hex.join(" "))
                }
            }
            VarValue::Null => write!(f, "NULL"),
            VarValue::ObjectIdentifier(arcs) => write!(f, "OID: .{}", format_oid(arcs)),
            VarValue::IpAddress(a) => write!(f, "IpAddress: {}.{}.{}.{}", a[0], a[1], a[2], a[3]),
            VarValue::Counter32(n) => write!(f, "Counter32: {n}"),
            VarValue::Gauge32(n) => write!(f, "Gauge32: {n}"),
            VarValue::Timeticks(n) => {
                let (cs, s) = (n % 100, n / 100);
                let (d, h, m, s) = (s / 86_400, (s / 3600) % 24, (s / 60) % 60, s % 60);
                match d {
                    0 => write!(f, "Timeticks: ({n}) {h}:{m:02}:{s:02}.{cs:02}"),
                    _ => write!(f, "Timeticks: ({n}) {d} days, {h}:{m:02}:{s:02}.{cs:02}"),
                }
            }
            VarValue::Opaque(b) => write!(f, "Opaque: {} bytes", b.len()),
            VarValue::Counter64(n) => write!(f, "Counter64: {n}"),
            VarValue::NoSuchObject => {
                write!(f, "No Such Object available on this agent at this OID")
            }
            VarValue::NoSuchInstance => {
                write!(f, "No Such Instance currently exists at this OID")
            }
            VarValue::EndOfMibView => {
                write!(
                    f,
                    "No more variables left in this MIB View (It is past the end of the MIB tree)"
                )
            }
            VarValue::Other(name) => write!(f, "{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_failures() {
        assert_eq!(numeric(&Value::Integer(-235)), Ok(-235.0));
        assert_eq!(numeric(&Value::Unsigned32(42)), Ok(42.0));
        assert_eq!(numeric(&Value::OctetString(b" 23.5 ")), Ok(23.5));
        assert!(matches!(
            numeric(&Value::OctetString(b"n/a")),
            Err(ValueError::BadString(_))
        ));
        assert!(matches!(
            numeric(&Value::OctetString(b"NaN")),
            Err(ValueError::BadString(_))
        ));
        assert_eq!(
            numeric(&Value::NoSuchInstance),
            Err(ValueError::Missing("noSuchInstance"))
        );
        assert_eq!(numeric(&Value::Null), Err(ValueError::NotNumeric("NULL")));
    }
}
