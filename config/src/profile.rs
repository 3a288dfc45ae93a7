//! Device profiles: data files (in `config/profiles/`) giving the default mapping and scaling of
//! a device model's points, so a config only says which point feeds which sensor.
//!
//! Profiles are embedded in the binary at build time and validated when loaded.

use crate::agent::{Protocol, RegisterTable, SourceUnit};
use crate::error::{KeyPath, Problem};
use coldaisle_core::registers::{RegisterType, WordOrder};
use coldaisle_core::SensorKind;
use serde::Deserialize;

/// The profiles shipped with coldaisle: `(file name, text)`.
const BUILTIN: &[(&str, &str)] = &[
    ("apc-rpdu2.toml", include_str!("../profiles/apc-rpdu2.toml")),
    (
        "apc-inrow-snmp.toml",
        include_str!("../profiles/apc-inrow-snmp.toml"),
    ),
    (
        "apc-inrow-modbus.toml",
        include_str!("../profiles/apc-inrow-modbus.toml"),
    ),
    (
        "liebert-crac-modbus.toml",
        include_str!("../profiles/liebert-crac-modbus.toml"),
    ),
    ("ups-mib.toml", include_str!("../profiles/ups-mib.toml")),
    (
        "entity-sensor.toml",
        include_str!("../profiles/entity-sensor.toml"),
    ),
    (
        "apc-env-probe.toml",
        include_str!("../profiles/apc-env-probe.toml"),
    ),
    (
        "raritan-px2.toml",
        include_str!("../profiles/raritan-px2.toml"),
    ),
    (
        "eaton-xups.toml",
        include_str!("../profiles/eaton-xups.toml"),
    ),
    (
        "liebert-env.toml",
        include_str!("../profiles/liebert-env.toml"),
    ),
    (
        "generic-modbus.toml",
        include_str!("../profiles/generic-modbus.toml"),
    ),
];

/// One point of a profile: defaults for a config point that names it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfilePoint {
    /// Name a config refers to with `profile_point`.
    #[serde(default)]
    pub name: String,
    /// What the point measures.
    #[serde(default)]
    pub kind: Option<SensorKind>,
    /// SNMP OID.
    #[serde(default)]
    pub oid: Option<String>,
    /// Modbus table.
    #[serde(default)]
    pub table: Option<RegisterTable>,
    /// Modbus register.
    #[serde(default)]
    pub register: Option<u16>,
    /// Modbus data type.
    #[serde(default, rename = "type")]
    pub data_type: Option<RegisterType>,
    /// Modbus word order.
    #[serde(default)]
    pub order: Option<WordOrder>,
    /// Modbus: one bit of an alarm or status word.
    #[serde(default)]
    pub bit: Option<u8>,
    /// Scale.
    #[serde(default)]
    pub scale: Option<f64>,
    /// Offset.
    #[serde(default)]
    pub offset: Option<f64>,
    /// Unit after scaling.
    #[serde(default)]
    pub unit: Option<SourceUnit>,
    /// SNMP table row selection and decoding (`config/src/snmp.rs`).
    #[serde(default)]
    pub snmp: Option<crate::snmp::RawSnmpPoint>,
}

/// A device model's profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Profile name, used in device configs.
    pub name: String,
    /// What device it describes and where the facts come from.
    pub description: String,
    /// Protocol of the device.
    pub protocol: Protocol,
    /// Its points.
    pub points: Vec<ProfilePoint>,
}

impl Profile {
    /// The point called `name`.
    pub fn point(&self, name: &str) -> Option<&ProfilePoint> {
        self.points.iter().find(|p| p.name == name)
    }

    /// Names of all points, for error messages.
    pub fn point_names(&self) -> Vec<&str> {
        self.points.iter().map(|p| p.name.as_str()).collect()
    }
}

/// A set of profiles by name.
#[derive(Debug, Clone, Default)]
pub struct Profiles {
    profiles: Vec<Profile>,
}

impl Profiles {
    /// The built-in profiles, parsed and validated.
    pub fn builtin() -> Result<Profiles, Problem> {
        let mut profiles = Vec::new();
        for (file, text) in BUILTIN {
            let at = KeyPath::default().key(&format!("profile {file}"));
            let profile: Profile = toml::from_str(text)
                .map_err(|e| Problem::new(at.clone(), format!("invalid profile: {e}")))?;
            for point in &profile.points {
                let protocol_ok = match profile.protocol {
                    Protocol::Snmp => point.oid.is_some() && point.register.is_none(),
                    Protocol::Modbus => point.register.is_some() && point.oid.is_none(),
                };
                if point.name.is_empty() || !protocol_ok {
                    return Err(Problem::new(
                        at.key(&point.name),
                        "profile point needs a name and the source of its protocol",
                    ));
                }
            }
            profiles.push(profile);
        }
        Ok(Profiles { profiles })
    }

    /// The profile called `name`.
    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.name == name)
    }

    /// All profile names.
    pub fn names(&self) -> Vec<&str> {
        self.profiles.iter().map(|p| p.name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_load() {
        let profiles = Profiles::builtin().expect("built-in profiles are valid");
        let inrow = profiles.get("apc-inrow-modbus").expect("inrow profile");
        let inlet = inrow.point("rack_inlet").expect("rack inlet point");
        assert_eq!(inlet.register, Some(92));
        assert_eq!(inlet.data_type, Some(RegisterType::Int32));
        assert_eq!(inlet.unit, Some(SourceUnit::F));
        assert!(profiles.get("apc-rpdu2").is_some());
    }

    #[test]
    fn rack_power_points_have_their_kinds_and_scales() {
        let profiles = Profiles::builtin().expect("built-in profiles are valid");
        let point = |profile: &str, name: &str| {
            profiles
                .get(profile)
                .and_then(|p| p.point(name))
                .cloned()
                .unwrap_or_else(|| panic!("{profile} has no point {name}"))
        };
        for (profile, name, kind, scale) in [
            (
                "apc-rpdu2",
                "device_power",
                SensorKind::RackPower,
                Some(0.01),
            ),
            (
                "apc-rpdu2",
                "phase1_power",
                SensorKind::RackPower,
                Some(0.01),
            ),
            (
                "apc-rpdu2",
                "phase1_current",
                SensorKind::RackCurrent,
                Some(0.1),
            ),
            (
                "raritan-px2",
                "inlet_power",
                SensorKind::RackPower,
                Some(0.001),
            ),
            (
                "raritan-px2",
                "inlet_current",
                SensorKind::RackCurrent,
                None,
            ),
            ("entity-sensor", "power", SensorKind::RackPower, Some(0.001)),
            ("entity-sensor", "current", SensorKind::RackCurrent, None),
            (
                "ups-mib",
                "output_power",
                SensorKind::RackPower,
                Some(0.001),
            ),
            (
                "ups-mib",
                "output_current",
                SensorKind::RackCurrent,
                Some(0.1),
            ),
        ] {
            let p = point(profile, name);
            assert_eq!((p.kind, p.scale), (Some(kind), scale), "{profile}/{name}");
        }
        assert_eq!(
            point("apc-rpdu2", "device_power").oid.as_deref(),
            Some("1.3.6.1.4.1.318.1.1.26.4.3.1.5.1")
        );
        assert_eq!(
            point("ups-mib", "output_power").oid.as_deref(),
            Some("1.3.6.1.2.1.33.1.4.4.1.4.1")
        );
    }
}
