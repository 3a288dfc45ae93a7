//! `coldaisle-collector run`: the collector as a service. Loads the config (exactly as
//! `check-config`), opens the store and rebuilds the state, announces readiness to systemd,
//! then hands the running collector to the shared main loop (`coldaisle_service::supervise`).
//! SIGHUP validates the config file again (a bad file is rejected as a whole and the old config
//! keeps running), applies `log_level` and the incident, problem and notify rules
//! ([`crate::rules_reload`]: the analysis is rebuilt from the store, the notifier restarted)
//! and re-reads the API tokens file and TLS certificate;
//! other changed settings (broker, store, API address, sites, `agent_silence`) are named in the
//! log as needing a restart. SIGTERM stops ingest and the API within the grace period (every
//! stored record is already flushed).

use crate::RunningCollector;
use anyhow::Context as _;
use coldaisle_config::CollectorConfig;
use coldaisle_service::logging::{self, LogControl};
use coldaisle_service::signals::Request;
use coldaisle_service::supervise::{supervise, Reloaded, Service};
use std::path::PathBuf;
use std::time::Duration;

/// Loads and validates the collector config as startup and reload do (including `log_level`).
pub fn load_config(path: &std::path::Path) -> anyhow::Result<CollectorConfig> {
    let config = CollectorConfig::load(path)?;
    if let Some(level) = &config.raw.log_level {
        logging::validate_level(level).with_context(|| format!("{}", path.display()))?;
    }
    Ok(config)
}

/// Top-level keys of the collector config whose change needs a restart (compared as written).
fn restart_only_changes(old: &CollectorConfig, new: &CollectorConfig) -> Vec<&'static str> {
    let (o, n) = (&old.raw, &new.raw);
    let mut keys = Vec::new();
    let mut check = |key, differs: bool| {
        if differs {
            keys.push(key);
        }
    };
    check("collector_id", o.collector_id != n.collector_id);
    check("state_dir", o.state_dir != n.state_dir);
    check("sites", o.sites != n.sites);
    check("mqtt", format!("{:?}", o.mqtt) != format!("{:?}", n.mqtt));
    check("http", format!("{:?}", o.http) != format!("{:?}", n.http));
    check("agent_silence", o.agent_silence != n.agent_silence);
    check(
        "store",
        format!("{:?}", o.store) != format!("{:?}", n.store),
    );
    check(
        "cluster",
        format!("{:?}", o.cluster) != format!("{:?}", n.cluster),
    );
    keys
}

struct CollectorService {
    collector: RunningCollector,
    config: CollectorConfig,
    path: PathBuf,
}

impl Service for CollectorService {
    async fn health(&mut self) -> anyhow::Result<()> {
        self.collector.health().await
    }

    async fn reload(&mut self) -> anyhow::Result<Reloaded> {
        let config = load_config(&self.path)?;
        let restart = restart_only_changes(&self.config, &config);
        for key in &restart {
            tracing::warn!(key = %key, "changed in the config but needs a restart; not applied");
        }
        let applied = self.collector.apply_rules(&self.config, &config).await?;
        let mut summary = String::from("log level");
        if self.config.raw.http.tokens_file.is_some() {
            let tokens = self.collector.reload_tokens()?;
            summary.push_str(&format!(", {tokens} API tokens"));
        }
        if self.collector.reload_api_tls()? {
            summary.push_str(", API certificate");
        }
        for section in &applied {
            summary.push_str(", ");
            summary.push_str(section);
        }
        if !restart.is_empty() {
            summary.push_str(&format!("; needs restart: {}", restart.join(", ")));
        }
        let log_level = config.raw.log_level.clone();
        // The sections applied are in force; the others stay what was started (the next
        // restart takes them).
        self.config.raw.log_level = log_level.clone();
        self.config.raw.incidents = config.raw.incidents;
        self.config.raw.problems = config.raw.problems;
        self.config.raw.notify = config.raw.notify;
        Ok(Reloaded { log_level, summary })
    }

    async fn stop(self, grace: Duration) {
        if tokio::time::timeout(grace.max(Duration::from_secs(1)), self.collector.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(grace = ?grace, "collector did not stop within the grace period");
        }
    }
}

/// Runs the collector of the config at `path` until SIGTERM/SIGINT, then stops within `grace`.
pub fn run(path: PathBuf, grace: Duration, logs: &LogControl) -> anyhow::Result<()> {
    let config = load_config(&path)?;
    for warning in coldaisle_config::warnings::collector_warnings(&config) {
        tracing::warn!(key = %warning.key, "{}", warning.message);
    }
    if let Err(e) = logs.set_level(config.raw.log_level.as_deref()) {
        tracing::warn!(error = %format!("{e:#}"), "log level unchanged");
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let started = runtime.block_on(async move {
        let mut signals = coldaisle_service::signals::Signals::install()?;
        // Start-up may read a large store: a SIGTERM meanwhile stops at once (the store is
        // only read until start-up ends; nothing is left half-written).
        let start = RunningCollector::start(config.clone());
        tokio::pin!(start);
        let collector = loop {
            tokio::select! {
                collector = &mut start => break collector?,
                request = signals.recv() => match request {
                    Request::Stop => {
                        tracing::info!("stopped during start-up");
                        return Ok(false);
                    }
                    Request::Reload => tracing::warn!("SIGHUP during start-up ignored"),
                },
            }
        };
        let status = format!(
            "collector {}: API on {}",
            config.raw.collector_id, collector.http_addr
        );
        let service = CollectorService {
            collector,
            config,
            path,
        };
        supervise(service, signals, logs, grace, &status).await;
        Ok::<_, anyhow::Error>(true)
    })?;
    if !started {
        tracing::info!("collector stopped before it started");
    }
    // Work still running now is past the grace period (or is the start-up load of a stop
    // during start-up): do not wait for it. Everything acked was flushed; a checkpoint cut
    // short leaves the previous one whole.
    runtime.shutdown_background();
    Ok(())
}
