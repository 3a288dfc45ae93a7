//! Config files: any text → the collector's and the agent's load → validate → resolve, and
//! `check-config`'s warnings. Checks: nothing panics; every refusal is an error naming the file.
#![no_main]

use coldaisle_config::warnings::{agent_warnings, collector_warnings};
use coldaisle_config::{AgentConfig, CollectorConfig};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
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
});
