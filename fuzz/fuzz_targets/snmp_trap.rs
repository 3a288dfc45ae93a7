//! A UDP datagram on the agent's trap port → the v1/v2c decoder and the SNMPv3 receiver (USM:
//! discovery, time window, authentication, decryption). Checks: nothing panics, whatever the
//! bytes.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::snmp_trap(data));
