//! Configuration of coldaisle: the TOML schema of the agent and the collector, device profiles
//! as data, and the load → validate → resolve path shared by startup and `check-config`.
//!
//! Every error names the file, the line and the key at fault, so an operator can fix a config
//! without reading code. Loading does no network I/O: it reads the config file, the profiles
//! embedded in the binary and the secret files the config names.

pub mod agent;
pub mod cluster;
pub mod collector;
pub mod detection;
pub mod error;
pub mod modbus;
pub mod mqtt;
pub mod notify;
pub mod profile;
pub mod snmp;
pub mod snmp_traps;
mod source;
pub mod store;
pub mod trust;
pub mod warnings;

pub use agent::{AgentConfig, Device, Protocol, Sensor, SensorSource, Threshold};
pub use collector::CollectorConfig;
pub use error::ConfigError;
pub use mqtt::{MqttConfig, Secret, TlsMaterial};
