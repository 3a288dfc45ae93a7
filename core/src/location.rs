//! The location model `site / zone / row / rack / sensor` and the kinds of sensors we know.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a sensor (or a device) is. Row and rack are optional: a CRAC serves a whole zone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Location {
    /// Site (a colocation facility), unique across the fleet.
    pub site: String,
    /// Zone within the site (a room, a hall, a contained aisle): the unit of correlation.
    pub zone: String,
    /// Row within the zone, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<String>,
    /// Rack within the row, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
}

/// What a sensor measures. Values are normalised at the edge: °C for temperatures, %RH for
/// humidity, RPM for fans, 0/1 for states, kW for rack power and A for rack current.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorKind {
    /// Rack (server) inlet air temperature, the value ASHRAE limits apply to.
    InletTemp,
    /// Rack exhaust air temperature.
    OutletTemp,
    /// Cooling unit supply (cold) air temperature.
    SupplyAirTemp,
    /// Cooling unit return (hot) air temperature.
    ReturnAirTemp,
    /// Relative humidity.
    Humidity,
    /// Dew point temperature.
    DewPoint,
    /// UPS battery temperature.
    BatteryTemp,
    /// Fan speed.
    FanSpeed,
    /// Cooling unit state (on/off, alarm).
    CoolingState,
    /// A temperature whose placement is unknown (no fixed limits apply).
    Temperature,
    /// Active power drawn by a rack (PDU, PDU phase or inlet, UPS output), in kW: the rack's
    /// heat load. No ASHRAE limits apply; a sustained step is a density change.
    RackPower,
    /// Current drawn by a rack (PDU or phase), in A.
    RackCurrent,
}

impl SensorKind {
    /// The event category this kind's anomalies belong to.
    pub fn category(self) -> Category {
        match self {
            SensorKind::InletTemp
            | SensorKind::OutletTemp
            | SensorKind::Temperature
            | SensorKind::BatteryTemp => Category::Thermal,
            SensorKind::Humidity | SensorKind::DewPoint => Category::Humidity,
            SensorKind::SupplyAirTemp
            | SensorKind::ReturnAirTemp
            | SensorKind::FanSpeed
            | SensorKind::CoolingState => Category::Cooling,
            SensorKind::RackPower | SensorKind::RackCurrent => Category::Power,
        }
    }

    /// The normalised unit, for display.
    pub fn unit(self) -> &'static str {
        match self {
            SensorKind::Humidity => "%RH",
            SensorKind::FanSpeed => "rpm",
            SensorKind::CoolingState => "",
            SensorKind::RackPower => "kW",
            SensorKind::RackCurrent => "A",
            _ => "°C",
        }
    }

    /// The snake_case name used in configuration and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            SensorKind::InletTemp => "inlet_temp",
            SensorKind::OutletTemp => "outlet_temp",
            SensorKind::SupplyAirTemp => "supply_air_temp",
            SensorKind::ReturnAirTemp => "return_air_temp",
            SensorKind::Humidity => "humidity",
            SensorKind::DewPoint => "dew_point",
            SensorKind::BatteryTemp => "battery_temp",
            SensorKind::FanSpeed => "fan_speed",
            SensorKind::CoolingState => "cooling_state",
            SensorKind::Temperature => "temperature",
            SensorKind::RackPower => "rack_power",
            SensorKind::RackCurrent => "rack_current",
        }
    }
}

/// Category of an event; incidents and problems are kept per `(site, zone, category)`.
///
/// Sensor faults and unreachable devices are [`Category::Device`] and never count as thermal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Air temperatures at racks.
    Thermal,
    /// Humidity and dew point.
    Humidity,
    /// Cooling units: supply/return air, fans, states.
    Cooling,
    /// Power (UPS, PDUs).
    Power,
    /// Device reachability and sensor faults.
    Device,
}

impl Category {
    /// The snake_case name used in configuration, on the wire and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Thermal => "thermal",
            Category::Humidity => "humidity",
            Category::Cooling => "cooling",
            Category::Power => "power",
            Category::Device => "device",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The identity of an incident or problem stream: one site, one zone, one category.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Site of the events.
    pub site: String,
    /// Zone of the events.
    pub zone: String,
    /// Category of the events.
    pub category: Category,
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.site, self.zone, self.category)
    }
}
