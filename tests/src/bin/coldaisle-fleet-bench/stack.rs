//! The production path around the measured agent: a real mosquitto and the real collector,
//! which stores and acknowledges the agent's records (so its outbox stays as small as in
//! production), then the agent itself. Only the agent is measured.

use anyhow::{Context, Result};
use coldaisle_testkit::peers::Mosquitto;
use coldaisle_testkit::procs::{free_port, get_json, Daemon};
use std::path::Path;
use tempfile::TempDir;

/// Environment variable naming the agent binary to measure by its absolute path (default:
/// the `coldaisle-agent` next to the bench), e.g. `target/dist/coldaisle-agent`.
pub const AGENT_ENV: &str = "COLDAISLE_FLEET_AGENT";

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

    /// Starts the agent with config `text` ([`AGENT_ID`], user `agent`). With
    /// [`HEAPTRACK_ENV`] set to a directory, the agent runs under heaptrack's preload library
    /// (see [`heaptrack_env`]); its figures are then the profiled process's, not production's.
    /// With `unit_env`, the agent also gets the `Environment=` of the packaged systemd unit
    /// ([`unit_env`]), so its figures are those of the agent as installed.
    pub fn start_agent(&self, text: &str, unit_env: bool) -> Result<Daemon> {
        let config = self.dir.path().join("agent.toml");
        std::fs::write(&config, text).context("writing the agent config")?;
        let mut env = match std::env::var_os(HEAPTRACK_ENV) {
            Some(dir) => heaptrack_env(Path::new(&dir))?,
            None => Vec::new(),
        };
        if unit_env {
            env.extend(self::unit_env());
        }
        // [`AGENT_ENV`]: another build of the agent (e.g. `--profile dist`) than the one
        // next to this binary.
        let agent = std::env::var(AGENT_ENV).unwrap_or_else(|_| "coldaisle-agent".to_owned());
        Daemon::start_with_env(&agent, &config, &self.dir.path().join("agent.log"), &env)
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

/// The agent's packaged systemd unit, read at build time: [`unit_env`] applies its environment.
const AGENT_UNIT: &str = include_str!("../../../../deploy/systemd/coldaisle-agent.service");

/// The variables the agent's systemd unit sets (`Environment=NAME=VALUE …` lines, unquoted:
/// the glibc malloc settings), so the bench can run the agent as the unit does.
pub fn unit_env() -> Vec<(String, String)> {
    parse_unit_env(AGENT_UNIT)
}

/// The `NAME=VALUE` pairs of a unit's `Environment=` lines (space-separated, no quoting).
fn parse_unit_env(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .filter_map(|line| line.trim().strip_prefix("Environment="))
        .flat_map(str::split_whitespace)
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// Environment variable naming a directory: when set, every agent runs under heaptrack.
pub const HEAPTRACK_ENV: &str = "COLDAISLE_FLEET_HEAPTRACK";

/// heaptrack's preload library (Debian package `heaptrack`).
const HEAPTRACK_PRELOAD: &str = "/usr/lib/heaptrack/libheaptrack_preload.so";

/// Environment that makes the agent record every allocation into a raw heaptrack file in
/// `dir`. The agent is then still the bench's direct child (the `heaptrack` script would stand
/// between, and stopping the script loses the data); the bench kills it at the end, so the
/// profile's "leaked" memory is the live heap of the running agent. Read the file with
/// `/usr/lib/heaptrack/libexec/heaptrack_interpret < FILE.raw | gzip > FILE.gz` then
/// `heaptrack_print -f FILE.gz`.
fn heaptrack_env(dir: &Path) -> Result<Vec<(String, String)>> {
    anyhow::ensure!(
        Path::new(HEAPTRACK_PRELOAD).exists(),
        "{HEAPTRACK_ENV} is set but {HEAPTRACK_PRELOAD} is missing: apt-get install heaptrack"
    );
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("clock before 1970")?
        .as_millis();
    let file = dir.join(format!("agent-{stamp}.raw"));
    eprintln!("heaptrack: the agent records into {}", file.display());
    Ok(vec![
        ("LD_PRELOAD".to_string(), HEAPTRACK_PRELOAD.to_string()),
        (
            "DUMP_HEAPTRACK_OUTPUT".to_string(),
            file.display().to_string(),
        ),
    ])
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_units_malloc_settings_are_read() {
        let env = super::unit_env();
        assert!(
            env.contains(&("MALLOC_TRIM_THRESHOLD_".into(), "65536".into())),
            "{env:?}"
        );
        assert!(
            env.contains(&("MALLOC_TOP_PAD_".into(), "0".into())),
            "{env:?}"
        );
        assert!(
            env.contains(&("MALLOC_ARENA_MAX".into(), "1".into())),
            "{env:?}"
        );
        assert_eq!(
            super::parse_unit_env("[Service]\n# Environment=NO=1\nEnvironment=A=1 B=x=y\n"),
            vec![("A".into(), "1".into()), ("B".into(), "x=y".into())]
        );
    }
}
