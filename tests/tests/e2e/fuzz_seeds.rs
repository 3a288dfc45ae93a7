//! The fuzz targets' checks (`fuzz/checks.rs`, shared with the cargo-fuzz targets) over every
//! committed seed, on stable: CI's fuzz smoke. A target whose code no longer compiles or a
//! seed that fails its check breaks this suite; libFuzzer runs themselves are in FUZZING.md.

#[path = "../../../fuzz/checks.rs"]
mod checks;

use std::path::PathBuf;

/// Runs `check` on every file of `fuzz/seeds/<target>/` (at least one must exist) and on every
/// prefix of each seed (truncated inputs are what a fuzzer tries first).
fn over_seeds(target: &str, check: fn(&[u8])) -> anyhow::Result<()> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let mut seeds = 0;
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let data = std::fs::read(&path)?;
        check(&data);
        for cut in (0..data.len()).step_by((data.len() / 16).max(1)) {
            check(&data[..cut]);
        }
        seeds += 1;
    }
    anyhow::ensure!(seeds > 0, "no seeds in {}", dir.display());
    Ok(())
}

#[test]
fn fuzz_seeds_wire_batch() -> anyhow::Result<()> {
    over_seeds("wire_batch", checks::wire_batch)
}

#[test]
fn fuzz_seeds_snmp_trap() -> anyhow::Result<()> {
    over_seeds("snmp_trap", checks::snmp_trap)
}

#[test]
fn fuzz_seeds_modbus_decode() -> anyhow::Result<()> {
    over_seeds("modbus_decode", checks::modbus_decode)
}

#[test]
fn fuzz_seeds_config_load() -> anyhow::Result<()> {
    over_seeds("config_load", checks::config_load)
}
