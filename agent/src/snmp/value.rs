//! Pure conversion of SNMP varbind values into sensor numbers.

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
