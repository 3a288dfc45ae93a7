//! Exit codes of `run` and `check-config`, documented in docs/operations.md. systemd and CI
//! only look at zero versus non-zero; the distinct codes tell a script what went wrong.

/// Success (config valid, or a clean stop after SIGTERM/Ctrl-C, drained in time or not).
pub const OK: u8 = 0;
/// Anything else: the runtime could not start, the store could not be opened, a task failed.
pub const FAILURE: u8 = 1;
/// Wrong command line (clap's own code).
pub const USAGE: u8 = 2;
/// The config file is missing, unreadable, not TOML, or fails validation (the message names
/// file, line and key). systemd: `RestartPreventExitStatus=78` stops a restart loop on it.
pub const CONFIG: u8 = 78;

/// The exit code for an error of `run` or `check-config`: [`CONFIG`] when a config error
/// (file, TOML, validation, `log_level`) is anywhere in its chain, else [`FAILURE`].
pub fn code_for(error: &anyhow::Error) -> u8 {
    let config = error.chain().any(|e| {
        e.is::<coldaisle_config::ConfigError>() || e.is::<tracing_subscriber::filter::ParseError>()
    });
    if config {
        CONFIG
    } else {
        FAILURE
    }
}
