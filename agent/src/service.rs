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

/// Most worker threads of the agent's runtime. Polling 2,000 devices every 10 s takes under
/// 0.5 % of one core (BENCHMARKS.md, issue 18), so more workers only add memory: each worker
/// thread has its own stack and, with glibc, its own malloc arena that grows and keeps its
/// free memory.
pub const MAX_WORKER_THREADS: usize = 2;

/// Most threads of the runtime's blocking pool (outbox writes and acks, detector-state saves,
/// trap handling, `/metrics` scrapes): short jobs, queued when all are busy. Tokio's default
/// is 512, each a thread with its own stack and malloc arena.
pub const MAX_BLOCKING_THREADS: usize = 4;

/// The agent's runtime: multi-threaded with at most [`MAX_WORKER_THREADS`] workers (fewer on
/// a one-core box) and [`MAX_BLOCKING_THREADS`] blocking threads.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores.clamp(1, MAX_WORKER_THREADS))
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .thread_name("coldaisle-agent")
        .enable_all()
        .build()
}

/// Runs the agent of the config at `path` until SIGTERM/SIGINT, then drains within `grace`.
pub fn run(path: PathBuf, grace: Duration, logs: &LogControl) -> anyhow::Result<()> {
    let config = load_config(&path)?;
    if let Err(e) = logs.set_level(config.raw.log_level.as_deref()) {
        tracing::warn!(error = %format!("{e:#}"), "log level unchanged");
    }
    let runtime = runtime().context("starting the async runtime")?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_has_at_most_two_workers() {
        let runtime = runtime().expect("runtime");
        let workers = runtime.metrics().num_workers();
        assert!((1..=MAX_WORKER_THREADS).contains(&workers), "{workers}");
        // Blocking jobs still run (and time is enabled).
        let answer = runtime.block_on(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            tokio::task::spawn_blocking(|| 42).await
        });
        assert_eq!(answer.expect("blocking job"), 42);
    }
}
