//! The chaos runner as a test: a few randomised fault rounds (kill -9 of agent and collector,
//! broker restarts) must end with every stored record delivered exactly once.

use super::support::binary;
use anyhow::Result;
use std::process::Command;

#[test]
fn chaos_rounds_lose_and_duplicate_nothing() -> Result<()> {
    let out = Command::new(binary("coldaisle-chaos")?)
        .args(["--rounds", "6"])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("produced="))
        .unwrap_or_default();
    assert!(line.ends_with("duplicated=0 lost=0"), "{line}\n{stderr}");
    Ok(())
}
