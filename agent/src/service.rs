//! `coldaisle-agent run`: the agent as a service. Loads the config (exactly as
//! `check-config`), opens the store, announces readiness to systemd, then hands the running
//! agent to the shared main loop (`coldaisle_service::supervise`): SIGHUP reloads the config
//! file (rejected as a whole when invalid), SIGTERM drains within the grace period.

use crate::RunningAgent;
use anyhow::Context as _;
use coldaisle_config::AgentConfig;
use coldaisle_service::logging::{self, LogControl};
use coldaisle_service::supervise::{supervise, Reloaded, Service};
use std::path::PathBuf;
use std::time::Duration;

/// Loads and validates the agent config as startup and reload do (including `log_level`).
pub fn load_config(path: &std::path::Path) -> anyhow::Result<AgentConfig> {
    let config = AgentConfig::load(path)?;
    if let Some(level) = &config.raw.log_level {
        logging::validate_level(level).with_context(|| format!("{}", path.display()))?;
    }
    Ok(config)
}

struct AgentService {
    agent: RunningAgent,
    path: PathBuf,
}

impl Service for AgentService {
    async fn health(&mut self) -> anyhow::Result<()> {
        self.agent.health().await
    }

    async fn reload(&mut self) -> anyhow::Result<Reloaded> {
        let config = load_config(&self.path)?;
        let log_level = config.raw.log_level.clone();
        let summary = self.agent.reload(config)?;
        Ok(Reloaded { log_level, summary })
    }

    async fn stop(self, grace: Duration) {
        self.agent.drain(grace).await;
    }
}

/// Runs the agent of the config at `path` until SIGTERM/SIGINT, then drains within `grace`.
pub fn run(path: PathBuf, grace: Duration, logs: &LogControl) -> anyhow::Result<()> {
    let config = load_config(&path)?;
    if let Err(e) = logs.set_level(config.raw.log_level.as_deref()) {
        tracing::warn!(error = %format!("{e:#}"), "log level unchanged");
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let signals = coldaisle_service::signals::Signals::install()?;
        let status = format!(
            "agent {} site {}: {} devices",
            config.agent_id,
            config.site,
            config.devices.len()
        );
        let agent = RunningAgent::start(config)?;
        supervise(AgentService { agent, path }, signals, logs, grace, &status).await;
        Ok(())
    })
}
