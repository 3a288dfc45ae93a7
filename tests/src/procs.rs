//! Our own binaries as child processes (for end-to-end tests and the chaos runner), free
//! ports, HTTP polling of the collector API.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Path of one of the workspace's binaries (built by `cargo build --workspace --bins`, which
/// `./test.sh` runs before the tests). An absolute path is taken as it is (a benchmark
/// measuring another build of a binary, e.g. `--profile dist`).
pub fn binary(name: &str) -> Result<PathBuf> {
    if Path::new(name).is_absolute() {
        return Ok(PathBuf::from(name));
    }
    let exe = std::env::current_exe().context("locating the running binary")?;
    // A test runs from target/debug/deps/, a binary such as coldaisle-chaos from target/debug/.
    let here = exe.parent().context("running binary has no directory")?;
    let candidates = [Some(here), here.parent()];
    let path = candidates
        .iter()
        .flatten()
        .map(|dir| dir.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| here.join(name));
    if !path.exists() {
        bail!(
            "{} is missing: run ./test.sh (it builds the binaries with `cargo build --workspace --bins`)",
            path.display()
        );
    }
    Ok(path)
}

/// A free TCP port on loopback.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// A daemon of ours running as a child process, killed on drop. Its stderr goes to a log file.
#[derive(Debug)]
pub struct Daemon {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    /// Starts `binary run --config CONFIG`.
    pub fn start(binary_name: &str, config: &Path, log: &Path) -> Result<Daemon> {
        Daemon::start_with_env(binary_name, config, log, &[])
    }

    /// [`Daemon::start`] with extra environment variables (e.g. a heap profiler's
    /// `LD_PRELOAD` in a benchmark).
    pub fn start_with_env(
        binary_name: &str,
        config: &Path,
        log: &Path,
        env: &[(String, String)],
    ) -> Result<Daemon> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let child = Command::new(binary(binary_name)?)
            .arg("run")
            .arg("--config")
            .arg(config)
            // The level comes from the config (`log_level`, default info), as in production.
            .env_remove("RUST_LOG")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {binary_name}"))?;
        Ok(Daemon {
            name: binary_name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    /// Process id while the daemon runs (benchmarks read its `/proc/PID` figures).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process abruptly (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Asks the process to stop (SIGTERM) and waits up to 10 s for a clean exit.
    pub fn terminate(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!(
                        "{} exited with {status}; log:\n{}",
                        self.name,
                        self.log_tail()
                    );
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("{} ignored SIGTERM; log:\n{}", self.name, self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a signal by name (`HUP`, `TERM`, …) to the running process.
    pub fn signal(&self, name: &str) -> Result<()> {
        let Some(child) = self.child.as_ref() else {
            bail!("{} is not running", self.name);
        };
        let status = Command::new("kill")
            .args([format!("-{name}"), child.id().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -{name} {} failed: {status}", self.name);
        }
        Ok(())
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Fails if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(child) = self.child.as_mut() {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{} exited with {status}; log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
        }
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// GET a JSON document from the collector API.
pub fn get_json(url: &str) -> Result<serde_json::Value> {
    let mut response = ureq::get(url)
        .call()
        .with_context(|| format!("GET {url}"))?;
    let body = response.body_mut().read_to_string()?;
    serde_json::from_str(&body).with_context(|| format!("GET {url}: not JSON: {body}"))
}

/// Polls `check` until it returns `Some`, or fails after `timeout` with `what`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
