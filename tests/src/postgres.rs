//! A real PostgreSQL 15 server for tests: its own cluster (`initdb`) in a temp directory, run
//! in the foreground as an unprivileged user on a free loopback port.
//!
//! Invariants:
//! - No system service: the server is a child process of the test, bound to `127.0.0.1` on a
//!   port the kernel handed out, its unix socket in its own temp dir.
//! - Tests run as root, and PostgreSQL refuses to: the cluster and the server run as the
//!   `postgres` system user (created by Debian's package) through `setpriv`, which `exec`s, so
//!   the child we hold *is* the postmaster. The temp dir is owned by that user.
//! - One superuser, [`Postgres::USER`], with a password: TCP connections (those of the code
//!   under test) need it (scram-sha-256); the unix socket (the kit's own `psql`) is trusted.
//! - A missing binary is an error that says to run `./test.sh` or install `postgresql`:
//!   nothing is skipped silently.
//! - [`Postgres::start_with_tls`] also serves TLS (`ssl = on`) with the given certificate;
//!   plain connections stay allowed, so a client shows whether it really used TLS
//!   (`pg_stat_ssl`).
//! - Drop stops the server (SIGINT, a "fast" shutdown, then SIGKILL if it lingers) and
//!   removes the temp dir.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

/// Where Debian's `postgresql-15` installs its server binaries.
const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
/// The system user the server runs as when the tests run as root.
const SYSTEM_USER: &str = "postgres";
/// How long the server may take to accept connections (debug builds on 2 busy cores).
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a fast shutdown may take before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Start attempts on fresh ports when the server exits early (its port was taken meanwhile).
const START_ATTEMPTS: usize = 3;

/// A running PostgreSQL server with its own cluster; stopped and removed on drop.
#[derive(Debug)]
pub struct Postgres {
    /// Holds `data/` (the cluster), `sock/` (unix socket), the log and the password file.
    dir: TempDir,
    /// The postmaster (absent while stopped).
    child: Option<Child>,
    port: u16,
    /// `(uid, gid)` to run as; `None` when the tests do not run as root.
    run_as: Option<(u32, u32)>,
    /// Serves TLS with `server.crt` / `server.key` of the temp dir.
    tls: bool,
}

impl Postgres {
    /// The superuser the tests connect as.
    pub const USER: &'static str = "coldaisle";
    /// Its password (TCP connections must give it).
    pub const PASSWORD: &'static str = "pg-test-secret";

    /// Creates a cluster in a temp dir and starts a server on a free loopback port; returns
    /// once it accepts connections.
    pub fn start() -> Result<Postgres> {
        Self::start_with(None)
    }

    /// [`Postgres::start`], serving TLS too with this certificate and key (PEM; e.g.
    /// [`crate::pki::TestPki`]'s `server.pem` / `server.key`, for 127.0.0.1).
    pub fn start_with_tls(cert: &Path, key: &Path) -> Result<Postgres> {
        Self::start_with(Some((cert, key)))
    }

    fn start_with(tls: Option<(&Path, &Path)>) -> Result<Postgres> {
        let initdb = binary("initdb")?;
        binary("postgres")?;
        let dir = tempfile::Builder::new()
            .prefix("coldaisle-postgres-")
            .tempdir()
            .context("creating a temp dir for postgres")?;
        let run_as = if running_as_root() {
            Some(system_user(SYSTEM_USER)?)
        } else {
            None
        };
        let sock = dir.path().join("sock");
        fs::create_dir(&sock).context("creating the socket dir")?;
        let pwfile = dir.path().join("password");
        fs::write(&pwfile, Self::PASSWORD).context("writing the password file")?;
        fs::set_permissions(&pwfile, fs::Permissions::from_mode(0o600))
            .context("restricting the password file")?;
        let (crt, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
        if let Some((cert_from, key_from)) = tls {
            fs::copy(cert_from, &crt).context("copying the server certificate")?;
            fs::copy(key_from, &key).context("copying the server key")?;
            fs::set_permissions(&key, fs::Permissions::from_mode(0o600))
                .context("restricting the server key")?;
        }
        if let Some((uid, gid)) = run_as {
            let files = [dir.path(), &sock, &pwfile, &crt, &key];
            for path in files.into_iter().filter(|p| p.exists()) {
                std::os::unix::fs::chown(path, Some(uid), Some(gid))
                    .with_context(|| format!("giving {} to {SYSTEM_USER}", path.display()))?;
            }
        }
        let data = dir.path().join("data");
        let output = as_user(run_as, &initdb)
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                Self::USER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .args(["-E", "UTF8", "--no-locale", "--no-sync"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .stdin(Stdio::null())
            .output()
            .context("running initdb")?;
        if !output.status.success() {
            bail!(
                "initdb failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let mut pg = Postgres {
            dir,
            child: None,
            port: 0,
            run_as,
            tls: tls.is_some(),
        };
        let mut attempt = 1;
        loop {
            pg.port = crate::procs::free_port()?;
            match pg.spawn_and_wait() {
                Ok(()) => return Ok(pg),
                Err(err) if attempt < START_ATTEMPTS && pg.child.is_none() => {
                    tracing::debug!(port = pg.port, attempt, error = %err, "postgres: retrying on another port");
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL for `database` over TCP, without the password (give [`Postgres::PASSWORD`]).
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{database}",
            Self::USER,
            self.port
        )
    }

    /// A file holding [`Postgres::PASSWORD`] (mode 0600), as an operator's `password_file`.
    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join("password")
    }

    /// The server's log (stdout and stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// Creates an empty database (tests sharing a server each take their own).
    pub fn create_database(&self, name: &str) -> Result<()> {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))
            .map(|_| ())
    }

    /// Runs `sql` in `database` with `psql` over the unix socket; returns its unaligned,
    /// tuples-only output (one row a line, columns separated by `|`).
    pub fn psql(&self, database: &str, sql: &str) -> Result<String> {
        let output = Command::new(binary("psql")?)
            .arg("-h")
            .arg(self.dir.path().join("sock"))
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                Self::USER,
                "-d",
                database,
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-X", "-A", "-t", "-c", sql])
            .stdin(Stdio::null())
            .output()
            .context("running psql")?;
        if !output.status.success() {
            bail!(
                "psql `{sql}` failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// A client tool of the server's version (`pg_dump`, `pg_restore`) that reaches this
    /// server over TCP as [`Postgres::USER`] (host, port, user and password in its
    /// environment, as an operator's script would set them).
    pub fn tool(&self, name: &str) -> Result<Command> {
        let mut command = Command::new(binary(name)?);
        command
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", Self::USER)
            .env("PGPASSWORD", Self::PASSWORD)
            .stdin(Stdio::null());
        Ok(command)
    }

    /// True while the server process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops the server (fast shutdown: open connections are cut). The port stays ours to
    /// [`Postgres::restart`] on, unless someone else binds it meanwhile.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SIGINT is PostgreSQL's "fast" shutdown; std can only send SIGKILL.
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < STOP_TIMEOUT {
            if !matches!(child.try_wait(), Ok(None)) {
                tracing::debug!(port = self.port, "postgres stopped");
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        tracing::warn!(port = self.port, "postgres ignored SIGINT; killing it");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the stopped server again on the same port and data.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn_and_wait()
    }

    /// Spawns the postmaster on `self.port` and waits until it accepts connections. On
    /// failure `self.child` is `None`.
    fn spawn_and_wait(&mut self) -> Result<()> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("opening the postgres log")?;
        let mut command = as_user(self.run_as, &binary("postgres")?);
        if self.tls {
            let dir = self.dir.path();
            command.args(["-c", "ssl=on", "-c"]);
            command.arg(format!(
                "ssl_cert_file={}",
                dir.join("server.crt").display()
            ));
            command.arg("-c");
            command.arg(format!("ssl_key_file={}", dir.join("server.key").display()));
        }
        let child = command
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.dir.path().join("sock").display()
            ))
            // Small: several servers may run at once on a small CI machine.
            .args(["-c", "shared_buffers=16MB", "-c", "max_connections=30"])
            .args(["-c", "dynamic_shared_memory_type=mmap"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("duplicating the log handle")?)
            .stderr(log)
            .spawn()
            .context("spawning postgres")?;
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    bail!(
                        "postgres exited ({status}) before accepting connections on 127.0.0.1:{}\n{}",
                        self.port,
                        self.log_tail()
                    );
                }
            }
            if self.is_ready() {
                tracing::debug!(port = self.port, elapsed = ?started.elapsed(), "postgres accepts connections");
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                self.stop();
                bail!(
                    "postgres did not accept connections on 127.0.0.1:{} within {READY_TIMEOUT:?}\n{}",
                    self.port,
                    self.log_tail()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// `pg_isready` over TCP.
    fn is_ready(&self) -> bool {
        binary("pg_isready").is_ok_and(|bin| {
            Command::new(bin)
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .stdin(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    /// The last lines of the server log, for error messages.
    fn log_tail(&self) -> String {
        let text = fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "--- tail of {} ---\n{}",
            self.log_path().display(),
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A PostgreSQL 15 binary; the error says how to install it.
fn binary(name: &str) -> Result<PathBuf> {
    let path = Path::new(BIN_DIR).join(name);
    if !path.is_file() {
        bail!(
            "{} is missing: run ./test.sh or apt-get install -y postgresql",
            path.display()
        );
    }
    Ok(path)
}

/// A command run as `(uid, gid)` through `setpriv` (which execs: the child is the program).
fn as_user(run_as: Option<(u32, u32)>, program: &Path) -> Command {
    match run_as {
        Some((uid, gid)) => {
            let mut cmd = Command::new("setpriv");
            cmd.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups")
                .arg("--")
                .arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// `(uid, gid)` of a system user, from `/etc/passwd`.
fn system_user(name: &str) -> Result<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&name))
        .and_then(|fields| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))
        .with_context(|| {
            format!("no system user `{name}` to run postgres as: run ./test.sh or apt-get install -y postgresql")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_restarts_and_cleans_up() {
        let mut pg = Postgres::start().expect("start postgres");
        assert_eq!(pg.psql("postgres", "SELECT 1 + 1").expect("query"), "2");
        let version = pg
            .psql("postgres", "SHOW server_version_num")
            .expect("version");
        assert!(version.starts_with("15"), "PostgreSQL 15, got {version}");
        let user = pg.psql("postgres", "SELECT current_user").expect("user");
        assert_eq!(user, Postgres::USER);
        pg.create_database("one").expect("create database");
        pg.psql("one", "CREATE TABLE t (n int); INSERT INTO t VALUES (7)")
            .expect("write");
        pg.stop();
        assert!(!pg.is_running());
        assert!(pg.psql("one", "SELECT 1").is_err(), "stopped means down");
        pg.restart().expect("restart");
        assert_eq!(pg.psql("one", "SELECT n FROM t").expect("read"), "7");
        let dir = pg.dir.path().to_path_buf();
        drop(pg);
        assert!(!dir.exists(), "temp dir removed on drop");
    }
}
