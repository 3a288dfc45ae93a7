//! Built-in meanings of APC (Schneider Electric) PowerNet-MIB notifications that matter for
//! thermal, humidity and cooling monitoring.
//!
//! Source: PowerNet-MIB "Version : 4.5.8" (file header "Created: Thursday, May, 22, 2025"),
//! as `apc/powernet.mib` in netdisco/netdisco-mibs (commit 27ee787). Every entry below names
//! its TRAP-TYPE; all are `ENTERPRISE apc` (1.3.6.1.4.1.318) SNMPv1 traps, so RFC 3584 3.1
//! maps them to `1.3.6.1.4.1.318.0.<specific>`, which is what the listener matches.
//!
//! Choices, from the MIB text:
//! - Severity: the MIB's `--#SEVERITY SEVERE` → critical, `WARNING` → warning. A clear
//!   carries its raise's severity and the same `name`, so it ends that raise.
//! - Values: only where the MIB states the unit of the varbind the trap carries.
//!   `emsProbeStatusProbeHumidity` ("whole number percentage") and
//!   `iemStatusProbeCurrentHumid` ("percent relative humidity") give the humidity events
//!   a value. Temperatures are sent in the unit a separate varbind names (°C or °F) or with
//!   no stated unit, so temperature events carry no value (0); the apcEnv* traps carry only
//!   the sensor number in `mtrapargsInteger`, never a reading.
//! - PowerNet-MIB defines no rPDU2-specific and no InRow-specific (airIRRC/airIRRP)
//!   temperature traps: rPDU2 sensors and universal probes report through the generic ENV
//!   (`env*`, `apcEnv*`) traps, InRow and other air units through `airCriticalCondition` /
//!   `airWarningCondition` (the alarm text in `mtrapargsString02`).
//! - Instances: the event's sensor id is `{device}.trap.{name}.{instance}` where the trap names
//!   its probe or sensor: `emsProbeStatusProbeIndex` (env*), `iemStatusProbeNumber` (iem*),
//!   the sensor number in `mtrapargsInteger` (apcEnv*: "the fourth argument is the sensor
//!   number"), so two probes of one device raise and clear separately. The others name no
//!   instance (probe 1/2 have their own trap numbers; a UPS has one battery).

use super::TrapMapping;
use coldaisle_core::{Category, EventState, SensorKind, Severity};

/// The apc enterprise, 1.3.6.1.4.1.318.
const APC: [u64; 7] = [1, 3, 6, 1, 4, 1, 318];

/// emsProbeStatusProbeHumidity (emsProbeStatusEntry 6), whole-number %RH.
const EMS_PROBE_HUMIDITY: &[u64] = &[1, 3, 6, 1, 4, 1, 318, 1, 1, 10, 3, 13, 1, 1, 6];

/// iemStatusProbeCurrentHumid (iemStatusProbesEntry 6), %RH.
const IEM_PROBE_HUMIDITY: &[u64] = &[1, 3, 6, 1, 4, 1, 318, 1, 1, 10, 2, 3, 2, 1, 6];

/// emsProbeStatusProbeIndex (emsProbeStatusEntry 1): the probe of an env* trap.
const EMS_PROBE_INDEX: &[u64] = &[1, 3, 6, 1, 4, 1, 318, 1, 1, 10, 3, 13, 1, 1, 1];

/// iemStatusProbeNumber (iemStatusProbesEntry 1): the probe of an iem* trap.
const IEM_PROBE_NUMBER: &[u64] = &[1, 3, 6, 1, 4, 1, 318, 1, 1, 10, 2, 3, 2, 1, 1];

/// mtrapargsInteger ({ mtrapargs 1 }, mtrapargs = apcmgmt 3, apcmgmt = apc 2): the sensor
/// number of an apcEnv* trap.
const MTRAPARGS_INTEGER: &[u64] = &[1, 3, 6, 1, 4, 1, 318, 2, 3, 1];

/// One raise/clear pair of APC traps.
struct Pair {
    /// Specific-trap number of the raise (TRAP-TYPE `::=` value).
    raise: u64,
    /// Specific-trap number of its clear.
    clear: u64,
    /// Condition name shared by both.
    name: &'static str,
    /// Category of both events.
    category: Category,
    /// Sensor kind of both events.
    kind: SensorKind,
    /// Severity of both events.
    severity: Severity,
    /// Varbind carrying the reading, when its unit is stated in the MIB.
    value_oid: Option<&'static [u64]>,
    /// Varbind naming the probe or sensor, when the trap has one.
    instance_oid: Option<&'static [u64]>,
}

const fn pair(
    raise: u64,
    clear: u64,
    name: &'static str,
    category: Category,
    kind: SensorKind,
    severity: Severity,
    value_oid: Option<&'static [u64]>,
) -> Pair {
    // The instance follows from the family of the trap (see the module docs).
    let instance_oid = match raise {
        163..=170 => Some(IEM_PROBE_NUMBER),
        253..=260 | 359..=366 => Some(EMS_PROBE_INDEX),
        519..=542 => Some(MTRAPARGS_INTEGER),
        _ => None,
    };
    Pair {
        raise,
        clear,
        name,
        category,
        kind,
        severity,
        value_oid,
        instance_oid,
    }
}

use Category::{Cooling, Humidity, Thermal};
use Severity::{Critical, Warning};
const TEMP: SensorKind = SensorKind::Temperature;
const RH: SensorKind = SensorKind::Humidity;
const COOLER: SensorKind = SensorKind::CoolingState;
const EMS_RH: Option<&[u64]> = Some(EMS_PROBE_HUMIDITY);
const IEM_RH: Option<&[u64]> = Some(IEM_PROBE_HUMIDITY);

/// The pairs, each with its TRAP-TYPE names (raise / clear) and `--#SEVERITY`.
#[rustfmt::skip]
const PAIRS: &[Pair] = &[
    // batteryOverTemperature / batteryOverTemperatureCleared (WARNING).
    pair(53, 54, "ups_battery_over_temp", Thermal, SensorKind::BatteryTemp, Warning, None),
    // Environmental Monitor probe 1/2: humidityThresholdViolation1 /
    // humidityThresholdViolationCleared1, temperatureThresholdViolation1 /
    // temperatureThresholdViolationCleared1, and the same for probe 2 (all SEVERE). The value
    // (mtrapargsInteger, "the current temperature/humidity") has no stated unit.
    pair(57, 58, "em_probe1_humidity", Humidity, RH, Critical, None),
    pair(59, 60, "em_probe1_temp", Thermal, TEMP, Critical, None),
    pair(61, 62, "em_probe2_humidity", Humidity, RH, Critical, None),
    pair(63, 64, "em_probe2_temp", Thermal, TEMP, Critical, None),
    // Integrated Environmental Monitor: iemHighTempThresholdViolation(Cleared),
    // iemLowTempThresholdViolation(Cleared), iemHighHumidThresholdViolation(Cleared),
    // iemLowHumidThresholdViolation(Cleared) (SEVERE).
    pair(163, 164, "iem_temp_high", Thermal, TEMP, Critical, None),
    pair(165, 166, "iem_temp_low", Thermal, TEMP, Critical, None),
    pair(167, 168, "iem_humidity_high", Humidity, RH, Critical, IEM_RH),
    pair(169, 170, "iem_humidity_low", Humidity, RH, Critical, IEM_RH),
    // EMS / NetBotz-style probes: envHighTempThresholdViolation(Cleared),
    // envLowTempThresholdViolation(Cleared), envHighHumidityThresholdViolation(Cleared),
    // envLowHumidityThresholdViolation(Cleared) (SEVERE).
    pair(253, 254, "env_temp_high", Thermal, TEMP, Critical, None),
    pair(255, 256, "env_temp_low", Thermal, TEMP, Critical, None),
    pair(257, 258, "env_humidity_high", Humidity, RH, Critical, EMS_RH),
    pair(259, 260, "env_humidity_low", Humidity, RH, Critical, EMS_RH),
    // envMaxTempThresholdViolation(Cleared), envMinTempThresholdViolation(Cleared),
    // envMaxHumidityThresholdViolation(Cleared), envMinHumidityThresholdViolation(Cleared)
    // (SEVERE).
    pair(359, 360, "env_temp_max", Thermal, TEMP, Critical, None),
    pair(361, 362, "env_temp_min", Thermal, TEMP, Critical, None),
    pair(363, 364, "env_humidity_max", Humidity, RH, Critical, EMS_RH),
    pair(365, 366, "env_humidity_min", Humidity, RH, Critical, EMS_RH),
    // Generic sensors (rPDU2, universal probes): apcEnvMaxTempThresholdViolation(Cleared)
    // SEVERE, apcEnvHighTempThresholdViolation(Cleared) WARNING,
    // apcEnvLowTempThresholdViolation(Cleared) WARNING, apcEnvMinTempThresholdViolation(Cleared)
    // SEVERE, and the same four for humidity (apcEnv{Max,High,Low,Min}HumidityThresholdViolation).
    pair(519, 520, "apc_env_temp_max", Thermal, TEMP, Critical, None),
    pair(521, 522, "apc_env_temp_high", Thermal, TEMP, Warning, None),
    pair(523, 524, "apc_env_temp_low", Thermal, TEMP, Warning, None),
    pair(525, 526, "apc_env_temp_min", Thermal, TEMP, Critical, None),
    pair(535, 536, "apc_env_humidity_max", Humidity, RH, Critical, None),
    pair(537, 538, "apc_env_humidity_high", Humidity, RH, Warning, None),
    pair(539, 540, "apc_env_humidity_low", Humidity, RH, Warning, None),
    pair(541, 542, "apc_env_humidity_min", Humidity, RH, Critical, None),
    // Rack Air Removal Unit: aruHighTemperatureAlarm(Cleared) WARNING ("ARU Exhaust
    // temperature has exceeded the override threshold"), aruExhaustTemperatureAlarm(Cleared)
    // SEVERE ("unable to control the temperature within the rack").
    pair(290, 291, "aru_high_temp", Cooling, COOLER, Warning, None),
    pair(292, 293, "aru_exhaust_temp", Cooling, COOLER, Critical, None),
    // Air units (InRow RC/RP, …): airCriticalCondition(Cleared) SEVERE,
    // airWarningCondition(Cleared) WARNING.
    pair(306, 307, "air_critical", Cooling, COOLER, Critical, None),
    pair(308, 309, "air_warning", Cooling, COOLER, Warning, None),
];

/// The APC mappings: for each pair, the raise then its clear.
pub(super) fn mappings() -> Vec<TrapMapping> {
    let at = |specific: u64| {
        let mut oid = APC.to_vec();
        oid.extend([0, specific]);
        oid
    };
    PAIRS
        .iter()
        .flat_map(|p| {
            [
                (p.raise, EventState::Raised),
                (p.clear, EventState::Cleared),
            ]
            .map(|(n, state)| TrapMapping {
                oid: at(n),
                name: p.name.to_string(),
                category: p.category,
                kind: p.kind,
                severity: p.severity,
                state,
                value_oid: p.value_oid.map(<[u64]>::to_vec),
                scale: 1.0,
                instance_oid: p.instance_oid.map(<[u64]>::to_vec),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn every_builtin_oid_is_unique_and_every_raise_has_a_clear_of_its_name() {
        let all = super::super::builtin_mappings();
        let oids: BTreeSet<&Vec<u64>> = all.iter().map(|m| &m.oid).collect();
        assert_eq!(oids.len(), all.len(), "duplicate built-in OID");
        let mut states: BTreeMap<&str, Vec<EventState>> = BTreeMap::new();
        for m in all.iter().filter(|m| m.oid.starts_with(&APC)) {
            states.entry(&m.name).or_default().push(m.state);
        }
        assert_eq!(states.len(), PAIRS.len(), "names must be unique per pair");
        for (name, s) in states {
            assert_eq!(s, [EventState::Raised, EventState::Cleared], "{name}");
        }
    }

    #[test]
    fn numbers_categories_and_values_follow_the_mib() {
        let all = mappings();
        let find = |n: u64| {
            all.iter()
                .find(|m| m.oid == [1, 3, 6, 1, 4, 1, 318, 0, n])
                .unwrap_or_else(|| panic!("no mapping for .318.0.{n}"))
        };
        // envHighTempThresholdViolation ::= 253, its clear ::= 254.
        assert_eq!(
            (find(253).name.as_str(), find(253).state, find(253).category),
            ("env_temp_high", EventState::Raised, Category::Thermal)
        );
        assert_eq!(find(254).state, EventState::Cleared);
        assert_eq!(find(254).name, "env_temp_high");
        // Humidity carries emsProbeStatusProbeHumidity, whole percent.
        assert_eq!(find(257).category, Category::Humidity);
        assert_eq!(
            find(257).value_oid.as_deref(),
            Some(&[1, 3, 6, 1, 4, 1, 318, 1, 1, 10, 3, 13, 1, 1, 6][..])
        );
        assert_eq!(find(257).scale, 1.0);
        // apcEnvHighTempThresholdViolation is a WARNING, its Max sibling SEVERE.
        assert_eq!(find(521).severity, Severity::Warning);
        assert_eq!(find(519).severity, Severity::Critical);
        // Instances: the probe index, the IEM probe number, the apcEnv sensor number.
        assert_eq!(find(253).instance_oid.as_deref(), Some(EMS_PROBE_INDEX));
        assert_eq!(find(168).instance_oid.as_deref(), Some(IEM_PROBE_NUMBER));
        assert_eq!(find(542).instance_oid.as_deref(), Some(MTRAPARGS_INTEGER));
        assert_eq!(find(306).instance_oid, None);
        // Air units are cooling.
        assert_eq!(find(306).category, Category::Cooling);
        assert_eq!(find(53).kind, SensorKind::BatteryTemp);
        // Every pair's numbers are a raise and the clear right after it, as in the MIB.
        for p in PAIRS {
            assert_eq!(p.clear, p.raise + 1, "{}", p.name);
            assert_eq!(p.kind.category(), p.category, "{}", p.name);
        }
    }
}
