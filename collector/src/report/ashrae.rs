//! The ASHRAE thermal envelope a report compares against (ASHRAE TC 9.9, *Thermal Guidelines
//! for Data Processing Environments*, 5th edition): one recommended envelope for every class
//! A1–A4 and an allowable one per class. Data only, no I/O.
//!
//! | | recommended | A1 | A2 | A3 | A4 |
//! |---|---|---|---|---|---|
//! | inlet (dry bulb) °C | 18 – 27 | 15 – 32 | 10 – 35 | 5 – 40 | 5 – 45 |
//! | relative humidity % | ≤ 60 | 8 – 80 | 8 – 80 | 8 – 85 | 8 – 90 |
//! | dew point °C | −9 – 15 | −12 – 17 | −12 – 21 | −12 – 24 | −12 – 24 |

pub use coldaisle_config::collector::AshraeClass;
use serde::{Deserialize, Serialize};

/// A closed range of values, `low ≤ v ≤ high`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Band {
    /// Lowest value inside.
    pub low: f64,
    /// Highest value inside.
    pub high: f64,
}

impl Band {
    const fn new(low: f64, high: f64) -> Band {
        Band { low, high }
    }

    /// True when `v` lies inside the band.
    pub fn contains(&self, v: f64) -> bool {
        v >= self.low && v <= self.high
    }
}

/// The recommended and allowable range of one measure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Where equipment should run.
    pub recommended: Band,
    /// Where the class may run for limited periods.
    pub allowable: Band,
}

/// Where a value stands against its [`Limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// Inside the recommended band.
    Recommended,
    /// Outside the recommended band, inside the allowable one.
    Allowable,
    /// Outside the allowable band.
    OutsideAllowable,
}

impl Limits {
    /// Where `v` stands.
    pub fn standing(&self, v: f64) -> Standing {
        if self.recommended.contains(v) {
            Standing::Recommended
        } else if self.allowable.contains(v) {
            Standing::Allowable
        } else {
            Standing::OutsideAllowable
        }
    }
}

/// Every limit of one class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The class, `A1`…`A4`.
    pub class: ClassName,
    /// Inlet (dry-bulb) temperature, °C.
    pub temperature: Limits,
    /// Relative humidity, %.
    pub humidity: Limits,
    /// Dew point, °C.
    pub dew_point: Limits,
}

/// A class name as it travels in JSON (`"A1"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassName(pub AshraeClass);

impl Serialize for ClassName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name())
    }
}

impl<'de> Deserialize<'de> for ClassName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        AshraeClass::parse(&text)
            .map(ClassName)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown ASHRAE class {text:?}")))
    }
}

const RECOMMENDED_TEMP: Band = Band::new(18.0, 27.0);
const RECOMMENDED_RH: Band = Band::new(0.0, 60.0);
const RECOMMENDED_DEW: Band = Band::new(-9.0, 15.0);

impl Envelope {
    /// The envelope of `class` (see the module table).
    pub fn of(class: AshraeClass) -> Envelope {
        let (temp, rh, dew) = match class {
            AshraeClass::A1 => ((15.0, 32.0), 80.0, 17.0),
            AshraeClass::A2 => ((10.0, 35.0), 80.0, 21.0),
            AshraeClass::A3 => ((5.0, 40.0), 85.0, 24.0),
            AshraeClass::A4 => ((5.0, 45.0), 90.0, 24.0),
        };
        Envelope {
            class: ClassName(class),
            temperature: Limits {
                recommended: RECOMMENDED_TEMP,
                allowable: Band::new(temp.0, temp.1),
            },
            humidity: Limits {
                recommended: RECOMMENDED_RH,
                allowable: Band::new(8.0, rh),
            },
            dew_point: Limits {
                recommended: RECOMMENDED_DEW,
                allowable: Band::new(-12.0, dew),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_widen_the_allowable_band_only() {
        let a1 = Envelope::of(AshraeClass::A1);
        let a4 = Envelope::of(AshraeClass::A4);
        assert_eq!(a1.temperature.recommended, a4.temperature.recommended);
        assert_eq!(a1.temperature.allowable, Band::new(15.0, 32.0));
        assert_eq!(a4.temperature.allowable, Band::new(5.0, 45.0));
        assert_eq!(Envelope::of(AshraeClass::A2).dew_point.allowable.high, 21.0);
        assert_eq!(Envelope::of(AshraeClass::A3).humidity.allowable.high, 85.0);
    }

    #[test]
    fn standing_of_values_at_and_past_the_limits() {
        let t = Envelope::of(AshraeClass::A1).temperature;
        assert_eq!(t.standing(27.0), Standing::Recommended);
        assert_eq!(t.standing(27.1), Standing::Allowable);
        assert_eq!(t.standing(16.0), Standing::Allowable);
        assert_eq!(t.standing(32.5), Standing::OutsideAllowable);
        assert_eq!(t.standing(14.0), Standing::OutsideAllowable);
    }

    #[test]
    fn class_name_round_trips_as_text() {
        let json = serde_json::to_string(&Envelope::of(AshraeClass::A3)).expect("json");
        assert!(json.contains("\"class\":\"A3\""), "{json}");
        let back: Envelope = serde_json::from_str(&json).expect("decode");
        assert_eq!(back.class.0, AshraeClass::A3);
    }
}
