//! The signals a daemon acts on: SIGHUP reloads the config; SIGTERM and SIGINT (Ctrl-C) stop
//! it after a drain.

use anyhow::Context as _;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// What a received signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// SIGHUP: load, validate and apply the config file again.
    Reload,
    /// SIGTERM or SIGINT: drain and exit 0.
    Stop,
}

/// The installed handlers (install before announcing readiness).
#[derive(Debug)]
pub struct Signals {
    hup: Signal,
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Installs the handlers for SIGHUP, SIGTERM and SIGINT. Needs a tokio runtime.
    pub fn install() -> anyhow::Result<Signals> {
        Ok(Signals {
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    /// The next request.
    pub async fn recv(&mut self) -> Request {
        tokio::select! {
            _ = self.hup.recv() => Request::Reload,
            _ = self.term.recv() => Request::Stop,
            _ = self.int.recv() => Request::Stop,
        }
    }
}
