//! What each fuzz target checks, as plain functions of the input bytes.
//!
//! Shared by the cargo-fuzz targets (`fuzz_targets/*.rs`, libFuzzer on nightly) and by the main
//! test suite (`tests/tests/e2e/fuzz_seeds.rs` includes this file and runs every function over
//! the committed seeds on stable), so a target that no longer compiles, or a seed that now
//! fails its check, breaks `cargo test` instead of waiting for the next fuzzing session.
#![allow(dead_code)] // each fuzz binary uses one of these functions

use coldaisle_agent::snmp::trap::decode_notification;
use coldaisle_agent::snmp::trap_v3::{default_engine_id, is_v3, V3Receiver};
use coldaisle_collector::identity::SiteBook;
use coldaisle_collector::ingest::{check_batch, store, Gate};
use coldaisle_collector::store::CollectorStore;
use coldaisle_config::snmp::{AuthProtocol, PrivProtocol, SecurityLevel, UsmUser};
use coldaisle_config::warnings::{agent_warnings, collector_warnings};
use coldaisle_config::{AgentConfig, CollectorConfig};
use coldaisle_core::registers::{decode, decode_string, encode, RegisterType, WordOrder};
use coldaisle_core::wire::Topics;
use coldaisle_core::Timestamp;
use coldaisle_store::{KvStore, MemoryStore};
use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;

/// Topics a batch may arrive on; the first input byte picks one (the others test mismatches).
const TOPICS: [&str; 3] = [
    "coldaisle/v1/dc1/a1/events",
    "coldaisle/v1/dc2/a1/events",
    "coldaisle/v1/dc1/other/events",
];

/// The collector's clock for ingest (ms) and the trap receiver's (s).
const NOW_MS: i64 = 1_764_000_000_000;
const NOW_S: u64 = 1_764_000_000;

/// A batch message as it arrives from the broker → `check_batch` → admission and the collector
/// store (default `[ingest]` limits, trust on first use), twice. Checks: nothing panics; storing
/// a checked batch again finds only duplicates and leaves the ack where it was.
pub fn wire_batch(data: &[u8]) {
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let topics = Topics::new(coldaisle_core::wire::DEFAULT_PREFIX);
    let topic = TOPICS[usize::from(pick) % TOPICS.len()];
    let gate = Gate::default();
    let Ok(checked) = check_batch(&topics, &gate.limits, topic, payload) else {
        return;
    };
    let again =
        check_batch(&topics, &gate.limits, topic, payload).expect("a batch checks the same twice");
    let records = checked.records.len();
    let kv: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let db = CollectorStore::new(kv.clone());
    let sites = SiteBook::new(kv);
    let Ok(first) = store(&db, &sites, &gate, checked, Timestamp(NOW_MS)) else {
        // Refused (claims out of bounds, names, site): changes nothing, which the collector's
        // property test checks.
        return;
    };
    assert!(first.new.len() <= records);
    let second =
        store(&db, &sites, &gate, again, Timestamp(NOW_MS)).expect("an accepted batch again");
    assert!(second.new.is_empty(), "a resent batch stored records again");
    assert_eq!(second.ledger.acked_upto, first.ledger.acked_upto);
}

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

/// A UDP datagram on the agent's trap port → the v1/v2c decoder and the SNMPv3 receiver (USM:
/// discovery, time window, authentication, decryption). Checks: nothing panics.
pub fn snmp_trap(data: &[u8]) {
    let _ = decode_notification(data);
    let _ = is_v3(data);
    RECEIVER.with(|r| {
        let _ = r.borrow_mut().receive(data, NOW_S);
    });
}

const ORDERS: [WordOrder; 4] = [
    WordOrder::Abcd,
    WordOrder::Cdab,
    WordOrder::Badc,
    WordOrder::Dcba,
];

/// Modbus register decoding: any registers, any type, any word order. Checks: nothing panics,
/// and a value that decodes re-encodes to the same registers (for the integer and float32
/// types the codec is a bijection on the registers it reads; NaN payloads excepted).
pub fn modbus_decode(data: &[u8]) {
    let [ty, order, rest @ ..] = data else {
        return;
    };
    let ty = RegisterType::ALL[usize::from(*ty) % RegisterType::ALL.len()];
    let order = ORDERS[usize::from(*order) % ORDERS.len()];
    let registers: Vec<u16> = rest
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    let _ = decode_string(&registers, order);
    if let Ok(value) = decode(&registers, ty, order) {
        let exact = matches!(
            ty,
            RegisterType::Int16
                | RegisterType::Uint16
                | RegisterType::Int32
                | RegisterType::Uint32
                | RegisterType::Float32
        );
        if exact && value.is_finite() {
            let again = encode(value, ty, order);
            assert_eq!(
                &registers[..again.len()],
                &again[..],
                "{ty:?} {order:?} {value}"
            );
        }
    }
}

/// Config files: any text → the collector's and the agent's load → validate → resolve, and
/// `check-config`'s warnings. Checks: nothing panics; every refusal is an error naming the file.
pub fn config_load(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Files a config names (passwords, passphrases, CA files) are read by the loader: keep the
    // fuzzer away from device files that never end.
    if text.contains("/dev/") || text.contains("/proc/") || text.contains("/sys/") {
        return;
    }
    let origin = Path::new("fuzz.toml");
    match CollectorConfig::from_str(text, origin) {
        Ok(config) => {
            let _ = collector_warnings(&config);
        }
        Err(e) => assert!(e.to_string().contains("fuzz.toml"), "{e}"),
    }
    match AgentConfig::from_str(text, origin) {
        Ok(config) => {
            let _ = agent_warnings(&config);
        }
        Err(e) => assert!(e.to_string().contains("fuzz.toml"), "{e}"),
    }
}
