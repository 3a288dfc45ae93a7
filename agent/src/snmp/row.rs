//! Pure table-row logic: finding a row by its name column, and combining a row's columns into
//! one value (ENTITY-SENSOR-MIB type/scale/precision/operStatus, decimal-digit columns, unit
//! columns). No I/O; the poller fetches the columns and passes them in.

use super::value::{format_oid, VarValue};
use coldaisle_config::snmp::Decode;

/// The index (OID suffix after `column`) of the row whose name is `name`, from a walk of the
/// naming column. An error lists the names found, so an operator can fix the config.
pub fn find_row(
    rows: &[(Vec<u64>, VarValue)],
    column: &[u64],
    name: &str,
) -> Result<Vec<u64>, String> {
    let mut matches = rows.iter().filter(|(oid, value)| {
        oid.starts_with(column) && oid.len() > column.len() && value.text() == name
    });
    match (matches.next(), matches.next()) {
        (Some((oid, _)), None) => Ok(oid[column.len()..].to_vec()),
        (Some(_), Some(_)) => Err(format!(
            "more than one row of {} is named {name:?}; choose the row by `index`",
            format_oid(column)
        )),
        (None, _) => {
            let names: Vec<String> = rows
                .iter()
                .take(20)
                .map(|(_, v)| format!("{:?}", v.text()))
                .collect();
            Err(format!(
                "no row of {} is named {name:?} (found: {})",
                format_oid(column),
                if names.is_empty() {
                    "no rows".to_string()
                } else {
                    names.join(", ")
                }
            ))
        }
    }
}

/// ENTITY-SENSOR-MIB (RFC 3433) `EntitySensorDataScale` code → power of ten, as the MIB's
/// own comments give it (units(9) = 10^0, each step 10^3; exa(14) = 10^15, peta(15) = 10^18).
fn scale_exponent(code: i64) -> Option<i32> {
    (1..=17).contains(&code).then(|| (code as i32 - 9) * 3)
}

/// An integer column value (INTEGER, Gauge32, ...).
fn integer(value: &VarValue, what: &str) -> Result<i64, String> {
    match value {
        VarValue::Integer(n) => Ok(*n),
        VarValue::Gauge32(n) | VarValue::Counter32(n) => Ok(i64::from(*n)),
        other if other.is_exception() => Err(format!("{what}: {other}")),
        other => Err(format!("{what} is not an integer ({other})")),
    }
}

/// Combines the value and the `extras` (in [`Decode`]'s documented order) into one number.
pub fn decode(kind: Decode, value: &VarValue, extras: &[VarValue]) -> Result<f64, String> {
    match kind {
        Decode::Plain => value.numeric().map_err(|e| e.to_string()),
        Decode::EntitySensor => {
            let [ty, scale, precision, status] = extras else {
                return Err("entity-sensor needs type, scale, precision and operStatus".into());
            };
            entity_sensor(value, ty, scale, precision, status)
        }
        Decode::DecimalDigits => {
            let [digits] = extras else {
                return Err("decimal-digits needs the digits column".into());
            };
            let digits = integer(digits, "decimal digits")?;
            if !(0..=9).contains(&digits) {
                return Err(format!("decimal digits {digits} outside 0..=9"));
            }
            let raw = value.numeric().map_err(|e| e.to_string())?;
            Ok(raw / 10f64.powi(digits as i32))
        }
        Decode::Units => {
            let [unit] = extras else {
                return Err("units needs the unit column".into());
            };
            let raw = value.numeric().map_err(|e| e.to_string())?;
            match integer(unit, "unit")? {
                1 => Ok(raw),
                2 => Ok((raw - 32.0) * 5.0 / 9.0),
                other => Err(format!(
                    "unit {other} is neither celsius(1) nor fahrenheit(2)"
                )),
            }
        }
    }
}

/// entPhySensorValue × 10^scale × 10^-precision; operStatus ≠ ok(1) and non-measurement types
/// (other, unknown, truthvalue) are sensor faults.
pub fn entity_sensor(
    value: &VarValue,
    ty: &VarValue,
    scale: &VarValue,
    precision: &VarValue,
    status: &VarValue,
) -> Result<f64, String> {
    match integer(status, "entPhySensorOperStatus")? {
        1 => {}
        2 => return Err("sensor fault: entPhySensorOperStatus is unavailable(2)".into()),
        3 => return Err("sensor fault: entPhySensorOperStatus is nonoperational(3)".into()),
        other => return Err(format!("sensor fault: entPhySensorOperStatus is {other}")),
    }
    let ty = integer(ty, "entPhySensorType")?;
    if matches!(ty, 1 | 2 | 12) || !(1..=12).contains(&ty) {
        return Err(format!("entPhySensorType {ty} is not a measurement"));
    }
    let exponent = scale_exponent(integer(scale, "entPhySensorScale")?)
        .ok_or("entPhySensorScale outside yocto(1)..yotta(17)")?;
    let precision = integer(precision, "entPhySensorPrecision")?;
    if !(-8..=9).contains(&precision) {
        return Err(format!("entPhySensorPrecision {precision} outside -8..=9"));
    }
    let raw = value.numeric().map_err(|e| e.to_string())?;
    let result = raw * 10f64.powi(exponent - precision as i32);
    if result.is_finite() {
        Ok(result)
    } else {
        Err("value out of range".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(n: i64) -> VarValue {
        VarValue::Integer(n)
    }

    #[test]
    fn entity_sensor_applies_scale_and_precision_and_faults() {
        // 2350 with precision 2, units: 23.50 °C.
        assert_eq!(
            entity_sensor(&int(2350), &int(8), &int(9), &int(2), &int(1)),
            Ok(23.5)
        );
        // 23 milli-units with precision 0 = 0.023; negative precision multiplies.
        let v = entity_sensor(&int(23), &int(3), &int(8), &int(0), &int(1)).unwrap();
        assert!((v - 0.023).abs() < 1e-12);
        assert_eq!(
            entity_sensor(&int(5), &int(6), &int(10), &int(-1), &int(1)),
            Ok(50_000.0)
        );
        assert!(entity_sensor(&int(5), &int(8), &int(9), &int(0), &int(3))
            .is_err_and(|e| e.contains("nonoperational")));
        assert!(entity_sensor(&int(1), &int(12), &int(9), &int(0), &int(1)).is_err());
        assert!(entity_sensor(&int(1), &int(8), &int(18), &int(0), &int(1)).is_err());
        assert!(entity_sensor(
            &int(1),
            &int(8),
            &int(9),
            &int(0),
            &VarValue::NoSuchInstance
        )
        .is_err());
    }

    #[test]
    fn digits_and_units() {
        assert_eq!(
            decode(Decode::DecimalDigits, &int(215), &[int(1)]),
            Ok(21.5)
        );
        assert!(decode(Decode::DecimalDigits, &int(215), &[int(-1)]).is_err());
        assert_eq!(decode(Decode::Units, &int(212), &[int(2)]), Ok(100.0));
        assert_eq!(decode(Decode::Units, &int(21), &[int(1)]), Ok(21.0));
        assert!(decode(Decode::Units, &int(21), &[int(3)]).is_err());
        assert!(decode(Decode::Units, &int(21), &[]).is_err());
    }

    #[test]
    fn rows_by_name() {
        let column = vec![1, 3, 6, 9];
        let rows = vec![
            (
                vec![1, 3, 6, 9, 1],
                VarValue::OctetString(b"Inlet".to_vec()),
            ),
            (
                vec![1, 3, 6, 9, 7, 2],
                VarValue::OctetString(b"Exhaust ".to_vec()),
            ),
        ];
        assert_eq!(find_row(&rows, &column, "Exhaust"), Ok(vec![7, 2]));
        assert!(find_row(&rows, &column, "Top").is_err_and(|e| e.contains("\"Inlet\"")));
    }
}
