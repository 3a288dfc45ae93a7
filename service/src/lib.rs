//! What both daemons share to run as a service under systemd (or in a terminal):
//!
//! - [`logging`]: human logs on a terminal, JSON lines under systemd/journald, level changeable
//!   at run time (reload);
//! - [`notify`]: `sd_notify` readiness, reloading, stopping and watchdog pings (no-ops when not
//!   started by systemd);
//! - [`signals`]: SIGHUP → reload, SIGTERM / Ctrl-C → drain and stop;
//! - [`supervise`]: the main loop tying them together around a [`supervise::Service`];
//! - [`VERSION`]: the crate version with the git revision, for `--version`;
//! - [`exit`]: the documented exit codes of `run` and `check-config`.

pub mod exit;
pub mod logging;
pub mod notify;
pub mod signals;
pub mod supervise;

/// `0.1.0 (git 1a2b3c4d5e)`: the version shown by `--version` of both binaries. The revision
/// is `unknown` when built without git, `…-modified` when the tree had uncommitted changes.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("COLDAISLE_GIT_REV"),
    ")"
);
