//! The main loop of a running daemon, the same for agent and collector: wait for a signal,
//! reload on SIGHUP (a rejected config leaves the running one untouched), drain on SIGTERM,
//! and ping the systemd watchdog only after the daemon answered its health check — a stuck
//! loop or a dead task stops the pings and systemd restarts the service.

use crate::logging::LogControl;
use crate::notify::{self, Watchdog};
use crate::signals::{Request, Signals};
use std::future::Future;
use std::time::Duration;

/// What a reload applied, for the log and the systemd status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// The new config's `log_level`.
    pub log_level: Option<String>,
    /// One line: what changed (e.g. `devices: 1 added, 0 removed, 1 restarted, 3 kept`).
    pub summary: String,
}

/// A daemon as the main loop drives it.
pub trait Service {
    /// `Ok` when every task is alive and the daemon's state can be reached quickly; `Err`
    /// says what is wrong. The watchdog ping is withheld while it fails.
    fn health(&mut self) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Loads and validates the config file again and applies what changed. `Err` = rejected:
    /// nothing was changed.
    fn reload(&mut self) -> impl Future<Output = anyhow::Result<Reloaded>> + Send;
    /// Drains (stop taking work, finish what is in flight within `grace`) and stops.
    fn stop(self, grace: Duration) -> impl Future<Output = ()> + Send;
}

/// Runs `service` until SIGTERM/SIGINT, then drains it within `grace`. Call after the
/// daemon started (config loaded, store open): this announces readiness.
pub async fn supervise<S: Service>(
    mut service: S,
    mut signals: Signals,
    logs: &LogControl,
    grace: Duration,
    ready_status: &str,
) {
    let watchdog = Watchdog::from_env();
    notify::ready(ready_status);
    tracing::info!(watchdog = ?watchdog.period(), "running");
    let mut tick = watchdog.period().map(tokio::time::interval);
    // Logged once per streak of failed checks, and again when the daemon recovers.
    let mut failing = false;
    loop {
        let request = tokio::select! {
            r = signals.recv() => r,
            _ = next_tick(&mut tick) => {
                let limit = watchdog.period().unwrap_or(Duration::from_secs(5));
                let problem = match tokio::time::timeout(limit, service.health()).await {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(format!("{e:#}")),
                    Err(_) => Some(format!("no answer within {limit:?}")),
                };
                match problem {
                    None => {
                        if std::mem::take(&mut failing) {
                            tracing::info!("health check passes again; watchdog pinged");
                        }
                        watchdog.ping();
                    }
                    Some(problem) if !failing => {
                        failing = true;
                        tracing::error!(error = %problem, "health check failed; watchdog not pinged");
                    }
                    Some(_) => {}
                }
                continue;
            }
        };
        match request {
            Request::Reload => {
                notify::reloading();
                match service.reload().await {
                    Ok(reloaded) => {
                        match logs.set_level(reloaded.log_level.as_deref()) {
                            Ok(level) => {
                                tracing::info!(changes = %reloaded.summary, log_level = %level, "config reloaded")
                            }
                            Err(e) => {
                                tracing::warn!(error = %format!("{e:#}"), changes = %reloaded.summary, "config reloaded; log level unchanged")
                            }
                        }
                        notify::ready(&format!("reloaded: {}", reloaded.summary));
                    }
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "config reload rejected; the running config stays in force");
                        notify::ready("reload rejected (see log); running the previous config");
                    }
                }
            }
            Request::Stop => {
                tracing::info!(grace = ?grace, "stopping: draining");
                notify::stopping("draining");
                service.stop(grace).await;
                return;
            }
        }
    }
}

async fn next_tick(tick: &mut Option<tokio::time::Interval>) {
    match tick {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Healthy for the first `healthy_for` checks, then failing.
    struct Fake {
        checks: Arc<AtomicUsize>,
        healthy_for: usize,
        stopped: Arc<AtomicUsize>,
    }

    impl Service for Fake {
        async fn health(&mut self) -> anyhow::Result<()> {
            let n = self.checks.fetch_add(1, Ordering::SeqCst);
            if n < self.healthy_for {
                Ok(())
            } else {
                anyhow::bail!("stuck")
            }
        }
        async fn reload(&mut self) -> anyhow::Result<Reloaded> {
            anyhow::bail!("not in this test")
        }
        async fn stop(self, _grace: Duration) {
            self.stopped.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn watchdog_is_pinged_only_while_healthy_and_sigterm_stops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_nonblocking(true).unwrap();
        // This test binary has no other test touching the environment.
        std::env::set_var("NOTIFY_SOCKET", &path);
        std::env::set_var("WATCHDOG_USEC", "60000");
        std::env::remove_var("WATCHDOG_PID");
        let logs = crate::logging::init(crate::logging::LogFormat::Text, Some("warn")).unwrap();
        let checks = Arc::new(AtomicUsize::new(0));
        let stopped = Arc::new(AtomicUsize::new(0));
        let fake = Fake {
            checks: checks.clone(),
            healthy_for: 3,
            stopped: stopped.clone(),
        };
        let signals = Signals::install().unwrap();
        let run = tokio::spawn(async move {
            supervise(fake, signals, &logs, Duration::from_secs(1), "test").await;
        });
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(checks.load(Ordering::SeqCst) >= 6, "ticks every 30 ms");
        let mut buf = [0u8; 256];
        let mut messages = Vec::new();
        while let Ok(n) = socket.recv(&mut buf) {
            messages.push(String::from_utf8_lossy(&buf[..n]).trim().to_string());
        }
        assert!(messages[0].starts_with("READY=1"), "{messages:?}");
        let pings = messages.iter().filter(|m| *m == "WATCHDOG=1").count();
        assert_eq!(
            pings, 3,
            "one ping per healthy check, none after: {messages:?}"
        );
        let pid = std::process::id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stopped.load(Ordering::SeqCst), 1);
        let n = socket.recv(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("STOPPING=1"));
    }
}
