//! A batch message as it arrives from the broker → `check_batch` → the collector store, twice.
//! Checks: nothing panics; a batch that passed the check is stored, and storing it again
//! finds only duplicates and leaves the ack where it was (idempotent ingest).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::wire_batch(data));
