//! SNMP polling: turning varbinds into numbers (pure, [`value`]) and asking devices (I/O, [`poll`]).

pub mod poll;
pub mod value;
