//! SNMP: turning varbinds into numbers (pure, [`value`]), talking to one device with any
//! version and security level ([`session`]; v1/v2c requests and answers without per-device buffers: [`community`]), walking tables ([`walk`]), the GET size a device takes (pure, [`get_size`]), table rows (pure, [`row`]), notifications in ([`trap`]), the device they came from ([`trap_sources`]) and what they mean ([`trap_map`]) and polling a device's
//! points ([`poll`]).

pub mod community;
pub mod get_size;
pub mod poll;
pub mod row;
pub mod session;
pub mod trap;
pub mod trap_map;
pub mod trap_sources;
pub mod trap_v3;
pub mod usm;
pub mod value;
pub mod walk;

#[cfg(test)]
mod proptests;
