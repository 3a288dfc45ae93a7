//! A benchmark that measures each mode in a fresh process runs itself again as a child:
//! `<this binary> --child MODE DIR [options]`, the child printing its figures as one JSON
//! object on its last line. Fresh processes keep one mode's memory out of the next one's.

use anyhow::{Context, Result};
use std::path::Path;
use std::process::Command;

/// Runs this binary as `--child mode dir` followed by `options` (flag and value pairs) and
/// returns the JSON object of the last line it printed. A child that fails is an error with
/// its standard error.
pub fn run(mode: &str, dir: &Path, options: &[(&str, String)]) -> Result<serde_json::Value> {
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["--child", mode]).arg(dir);
    for (flag, value) in options {
        command.args([*flag, value.as_str()]);
    }
    let out = command.output().context("running a child")?;
    anyhow::ensure!(
        out.status.success(),
        "child {mode} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().context("child printed nothing")?;
    serde_json::from_str(line).with_context(|| format!("child output {line}"))
}
