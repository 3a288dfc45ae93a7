//! The production path around the measured agent: a real mosquitto and the real collector,
//! which stores and acknowledges the agent's records (so its outbox stays as small as in
//! production), then the agent itself. Only the agent is measured.

use anyhow::{Context, Result};
use coldaisle_testkit::peers::Mosquitto;
use coldaisle_testkit::procs::{free_port, get_json, Daemon};
use std::path::Path;
use tempfile::TempDir;

/// Agent id every generated agent config uses.
pub const AGENT_ID: &str = "fleet-agent";

/// A broker and a collector, ready for an agent; dropping it stops them.
pub struct Stack {
    /// The collector, first to stop (declared before the broker).
    collector: Daemon,
    /// The broker.
    broker: Mosquitto,
    /// Collector API base URL.
    api: String,
    /// Configs, state and logs of every process.
    dir: TempDir,
}

impl Stack {
    /// Starts mosquitto (users `agent` and `collector`) and the collector.
    pub fn start() -> Result<Stack> {
        let dir = tempfile::tempdir().context("temp dir")?;
        let broker = Mosquitto::start(&[("agent", "agent-pass"), ("collector", "collector-pass")])?;
        let http_port = free_port()?;
        let config = dir.path().join("collector.toml");
        std::fs::write(
            &config,
            format!(
                "collector_id = \"fleet-collector\"\nstate_dir = \"{}\"\n[mqtt]\n\
                 host = \"127.0.0.1\"\nport = {}\nusername = \"collector\"\n\
                 password = \"collector-pass\"\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n",
                dir.path().join("collector").display(),
                broker.port()
            ),
        )
        .context("writing the collector config")?;
        let collector = Daemon::start(
            "coldaisle-collector",
            &config,
            &dir.path().join("collector.log"),
        )?;
        Ok(Stack {
            collector,
            broker,
            api: format!("http://127.0.0.1:{http_port}"),
            dir,
        })
    }

    /// Port of the broker, for the agent's `[mqtt]`.
    pub fn mqtt_port(&self) -> u16 {
        self.broker.port()
    }

    /// Directory for the agent's config and state.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the agent with config `text` ([`AGENT_ID`], user `agent`).
    pub fn start_agent(&self, text: &str) -> Result<Daemon> {
        let config = self.dir.path().join("agent.toml");
        std::fs::write(&config, text).context("writing the agent config")?;
        Daemon::start(
            "coldaisle-agent",
            &config,
            &self.dir.path().join("agent.log"),
        )
    }

    /// Records of the agent the collector has acknowledged (0 before its first batch).
    pub fn acked(&self) -> u64 {
        get_json(&format!("{}/api/v1/agents", self.api))
            .ok()
            .and_then(|agents| agents.get(AGENT_ID)?.get("acked_upto")?.as_u64())
            .unwrap_or(0)
    }

    /// Fails when the collector has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        self.collector.check_alive()
    }

    /// Stops the collector cleanly, then the broker.
    pub fn stop(mut self) -> Result<()> {
        self.collector
            .terminate()
            .context("stopping the collector")?;
        drop(self.broker);
        Ok(())
    }
}

/// Warning and error lines of a daemon's log (JSON lines without a terminal, or text).
pub fn warnings(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| {
            [
                "\"level\":\"WARN\"",
                "\"level\":\"ERROR\"",
                " WARN ",
                " ERROR ",
            ]
            .iter()
            .any(|level| line.contains(level))
        })
        .collect()
}
