//! systemd notifications (`Type=notify`): readiness, reloading, stopping, status lines and
//! watchdog pings. Every call is a no-op when `NOTIFY_SOCKET` is unset (not under systemd), and
//! a failure to notify is logged, never fatal.

use sd_notify::NotifyState;
use std::time::Duration;

fn send(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

/// `READY=1` with a status line: send it only once the config is loaded and the store is open.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// `RELOADING=1`: a reload started; follow it with [`ready`].
pub fn reloading() {
    send(&[
        NotifyState::Reloading,
        NotifyState::Status("reloading the config"),
    ]);
}

/// `STOPPING=1`: the drain started.
pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// A status line shown by `systemctl status`.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// The service manager's watchdog: pinged by the daemon's main loop after its health check,
/// so a stuck loop stops the pings and systemd restarts the service.
#[derive(Debug, Clone, Copy)]
pub struct Watchdog {
    /// `WatchdogSec` of the unit, when enabled for this process.
    timeout: Option<Duration>,
}

impl Watchdog {
    /// Reads `WATCHDOG_USEC` / `WATCHDOG_PID` (set by systemd when `WatchdogSec` is on).
    pub fn from_env() -> Watchdog {
        Watchdog {
            timeout: sd_notify::watchdog_enabled(),
        }
    }

    /// How often to ping: half the timeout, so one late tick does not kill the service.
    pub fn period(&self) -> Option<Duration> {
        self.timeout.map(|t| (t / 2).max(Duration::from_millis(10)))
    }

    /// `WATCHDOG=1`.
    pub fn ping(&self) {
        if self.timeout.is_some() {
            send(&[NotifyState::Watchdog]);
        }
    }
}
