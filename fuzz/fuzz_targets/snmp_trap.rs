//! A UDP datagram on the agent's trap port → the v1/v2c decoder and the SNMPv3 receiver (USM:
//! discovery, time window, authentication, decryption). Checks: nothing panics, whatever the
//! bytes.
#![no_main]

use coldaisle_agent::snmp::trap::decode_notification;
use coldaisle_agent::snmp::trap_v3::{default_engine_id, is_v3, V3Receiver};
use coldaisle_config::snmp::{AuthProtocol, PrivProtocol, SecurityLevel, UsmUser};
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;

/// Event time of every datagram (seconds).
const NOW: u64 = 1_764_000_000;

fn user(name: &str, level: SecurityLevel, auth: AuthProtocol, privacy: PrivProtocol) -> UsmUser {
    UsmUser {
        user: name.into(),
        level,
        auth_protocol: auth,
        auth_passphrase: Some("authpass1".into()),
        priv_protocol: privacy,
        priv_passphrase: Some("privpass1".into()),
        context: String::new(),
    }
}

thread_local! {
    /// Built once: key localisation hashes 1 MiB per passphrase.
    static RECEIVER: RefCell<V3Receiver> = RefCell::new(V3Receiver::new(
        default_engine_id("fuzz-agent"),
        &[
            user("ops", SecurityLevel::AuthPriv, AuthProtocol::Sha256, PrivProtocol::Aes128),
            user("md5des", SecurityLevel::AuthPriv, AuthProtocol::Md5, PrivProtocol::Des),
            user("authonly", SecurityLevel::AuthNoPriv, AuthProtocol::Sha1, PrivProtocol::Aes128),
            user("plain", SecurityLevel::NoAuthNoPriv, AuthProtocol::Sha1, PrivProtocol::Aes128),
        ],
        7,
    ));
}

fuzz_target!(|data: &[u8]| {
    let _ = decode_notification(data);
    let _ = is_v3(data);
    RECEIVER.with(|r| {
        let _ = r.borrow_mut().receive(data, NOW);
    });
});
