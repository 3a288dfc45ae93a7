//! Test kit shared by the end-to-end tests and the demo: simulated devices that speak real
//! SNMP and Modbus on loopback, and a harness that starts real protocol peers (mosquitto,
//! net-snmp snmpd, pymodbus) on free ports.
pub mod modbus_sim;
pub mod peers;
pub mod pki;
pub mod postgres;
pub mod procs;
pub mod snmp_exporter;
pub mod snmp_sim;
