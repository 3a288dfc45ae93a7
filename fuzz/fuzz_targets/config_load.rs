//! Config files: any text → the collector's and the agent's load → validate → resolve, and
//! `check-config`'s warnings. Checks: nothing panics; every refusal is an error naming the file.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::config_load(data));
