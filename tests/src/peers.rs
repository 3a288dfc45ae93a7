//! Real protocol peers for end-to-end tests: mosquitto, net-snmp `snmpd` and a pymodbus
//! Modbus TCP server, each run as a foreground child process on a free loopback port.
//!
//! Invariants:
//! - A peer binds only `127.0.0.1` and a port the kernel handed out (bind to port 0, release,
//!   start the peer; if the peer exits before answering, retry with a fresh port).
//! - `start` returns only once the peer really answers: a TCP connect for mosquitto and
//!   pymodbus, an SNMP GET answered by snmpd.
//! - A missing executable, venv or package is an error that says what to install. Nothing is
//!   skipped silently: a test that needs a peer fails loudly without it.
//! - Every peer owns a temp dir (config, logs, values file). Start errors quote the log tail.
//!   Drop kills the process (SIGKILL + wait) and then removes the temp dir.
//! - Values a test changes at run time (`Snmpd::set_value`, `PyModbus::set_holding`, ...) go to
//!   a JSON file replaced atomically (write + rename); the peer scripts in `tests/peers/`
//!   re-read it on every request, so a change is visible to the next request.
//!
//! The recipes (flags, config lines, gotchas) are those of `shared/PEERS.md`.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use tempfile::TempDir;

/// How long a peer may take to answer after it was spawned (debug builds on 2 busy cores).
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause between two readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(50);
/// Timeout of one readiness probe (TCP connect or SNMP GET).
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);
/// Start attempts on fresh ports when a peer exits early (its port was taken meanwhile).
const START_ATTEMPTS: usize = 3;
/// Log lines quoted in a start error.
const LOG_TAIL_LINES: usize = 30;
/// The pymodbus version `tests/peers/modbus_server.py` is written against.
pub const PYMODBUS_VERSION: &str = "3.16.1";

// ---------------------------------------------------------------------------------------------
// Process plumbing shared by all peers
// ---------------------------------------------------------------------------------------------

/// A running peer process; killed with SIGKILL and reaped when dropped.
#[derive(Debug)]
struct PeerProcess {
    /// Peer name for logs ("mosquitto", "snmpd", "pymodbus").
    name: &'static str,
    /// The child started in the foreground.
    child: Child,
}

impl PeerProcess {
    /// SIGKILL (std's `Child::kill` on Unix) and wait, so no zombie and no listener remain.
    fn kill(&mut self) {
        // Errors mean the process already exited; wait() still reaps it.
        let _ = self.child.kill();
        let _ = self.child.wait();
        tracing::debug!(peer = self.name, pid = self.child.id(), "peer killed");
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Why one start attempt failed.
enum StartFailure {
    /// The process exited before answering (port collision, bad config): worth a retry on
    /// another port.
    Exited(anyhow::Error),
    /// Anything else: no retry.
    Fatal(anyhow::Error),
}

/// Spawns with `spawn(port)` and polls `probe(port)` until it answers, the process exits or
/// [`READY_TIMEOUT`] passes. Errors quote the tail of `logs`.
fn start_on_port(
    name: &'static str,
    port: u16,
    logs: &[&Path],
    spawn: &mut dyn FnMut(u16) -> Result<Child>,
    probe: &mut dyn FnMut(u16) -> bool,
) -> std::result::Result<PeerProcess, StartFailure> {
    let child = spawn(port).map_err(StartFailure::Fatal)?;
    let mut process = PeerProcess { name, child };
    let started = Instant::now();
    loop {
        match process.child.try_wait() {
            Ok(Some(status)) => {
                return Err(StartFailure::Exited(anyhow!(
                    "{name} exited ({}) before answering on 127.0.0.1:{port}{}",
                    describe_status(status),
                    log_tails(logs)
                )))
            }
            Ok(None) => {}
            Err(err) => {
                return Err(StartFailure::Fatal(
                    anyhow!(err).context(format!("waiting for {name} on 127.0.0.1:{port}")),
                ))
            }
        }
        if probe(port) {
            tracing::debug!(peer = name, port, elapsed = ?started.elapsed(), "peer answers");
            return Ok(process);
        }
        if started.elapsed() > READY_TIMEOUT {
            process.kill();
            return Err(StartFailure::Fatal(anyhow!(
                "{name} did not answer on 127.0.0.1:{port} within {READY_TIMEOUT:?}{}",
                log_tails(logs)
            )));
        }
        thread::sleep(PROBE_INTERVAL);
    }
}

/// [`start_on_port`] on a port from `pick_port`, retried on a fresh port if the peer exits
/// early (the released port may have been taken by someone else in between).
fn start_on_free_port(
    name: &'static str,
    pick_port: fn() -> Result<u16>,
    logs: &[&Path],
    spawn: &mut dyn FnMut(u16) -> Result<Child>,
    probe: &mut dyn FnMut(u16) -> bool,
) -> Result<(PeerProcess, u16)> {
    let mut attempt = 1;
    loop {
        let port = pick_port()?;
        match start_on_port(name, port, logs, spawn, probe) {
            Ok(process) => return Ok((process, port)),
            Err(StartFailure::Exited(err)) if attempt < START_ATTEMPTS => {
                tracing::debug!(peer = name, port, attempt, error = %err, "retrying on another port");
                attempt += 1;
            }
            Err(StartFailure::Exited(err) | StartFailure::Fatal(err)) => return Err(err),
        }
    }
}

fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        _ => status.to_string(),
    }
}

/// "\n--- tail of <log> ---\n..." for every log, for error messages.
fn log_tails(logs: &[&Path]) -> String {
    let mut out = String::new();
    for log in logs {
        out.push_str(&format!("\n--- tail of {} ---\n", log.display()));
        match fs::read(log) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
                if tail.is_empty() {
                    out.push_str("(empty)");
                } else {
                    out.push_str(&tail.join("\n"));
                }
            }
            Err(err) => out.push_str(&format!("(cannot read: {err})")),
        }
    }
    out
}

/// Opens `path` for appending (a restarted peer keeps one log) as stdout/stderr of a child.
fn log_stdio(path: &Path) -> Result<(Stdio, Stdio)> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening log {}", path.display()))?;
    let err = file
        .try_clone()
        .with_context(|| format!("duplicating log handle {}", path.display()))?;
    Ok((Stdio::from(file), Stdio::from(err)))
}

/// Finds `name` on PATH or in the sbin directories (mosquitto and snmpd live in /usr/sbin,
/// which a non-root PATH may lack). The error says which Debian package provides it.
pub fn find_executable(name: &str, debian_package: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let extra = ["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from);
    std::env::split_paths(&path)
        .chain(extra)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| {
            anyhow!("{name} not found: run ./test.sh or apt-get install -y {debian_package}")
        })
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path)
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A loopback TCP port that was free a moment ago.
fn free_tcp_port() -> Result<u16> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0/tcp")?;
    Ok(listener
        .local_addr()
        .context("local address of 127.0.0.1:0/tcp")?
        .port())
}

/// A loopback UDP port that was free a moment ago.
fn free_udp_port() -> Result<u16> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0/udp")?;
    Ok(socket
        .local_addr()
        .context("local address of 127.0.0.1:0/udp")?
        .port())
}

/// Sends `request` to 127.0.0.1:`port` over TCP and returns the first `answer_len` bytes of
/// the answer, or `None` (nothing listens, no answer within [`PROBE_TIMEOUT`]).
///
/// A protocol exchange rather than a bare connect: after a restart on a fixed port, or if a
/// released port was grabbed by someone else, a foreign listener must not count as the peer.
fn tcp_exchange(port: u16, request: &[u8], answer_len: usize) -> Option<Vec<u8>> {
    let attempt = || -> std::io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect_timeout(&loopback(port), PROBE_TIMEOUT)?;
        stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
        stream.set_write_timeout(Some(PROBE_TIMEOUT))?;
        stream.write_all(request)?;
        let mut answer = vec![0u8; answer_len];
        stream.read_exact(&mut answer)?;
        Ok(answer)
    };
    attempt().ok()
}

/// An MQTT 3.1.1 CONNECT without credentials is answered by a CONNACK (return code 5, not
/// authorised, since anonymous clients are refused): proof that mosquitto itself listens.
fn mqtt_answers(port: u16) -> bool {
    #[rustfmt::skip]
    const CONNECT: [u8; 14] = [
        0x10, 0x0c,                               // CONNECT, 12 bytes follow
        0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, // protocol name, level 4 (3.1.1)
        0x02, 0x00, 0x3c,                         // clean session, keep alive 60 s
        0x00, 0x00,                               // empty client id
    ];
    tcp_exchange(port, &CONNECT, 4).is_some_and(|connack| connack[0] == 0x20)
}

/// A Modbus TCP read of holding register 0 on unit 0 (the server's catch-all device) is
/// answered with exception 11 by `modbus_server.py`; any Modbus answer means it is up.
fn modbus_answers(port: u16) -> bool {
    #[rustfmt::skip]
    const READ: [u8; 12] = [
        0x4d, 0x42,       // transaction id
        0x00, 0x00,       // protocol id
        0x00, 0x06,       // 6 bytes follow
        0x00,             // unit 0
        0x03, 0x00, 0x00, // read holding registers from 0
        0x00, 0x01,       // 1 register
    ];
    tcp_exchange(port, &READ, 9)
        .is_some_and(|answer| answer[..4] == READ[..4] && answer[7] & 0x7f == 0x03)
}

fn running_as_root() -> bool {
    fs::metadata("/proc/self")
        .map(|meta| meta.uid() == 0)
        .unwrap_or(false)
}

/// Writes `value` as JSON next to `path` and renames it over `path`, so a reader sees either
/// the old or the new file, never half of one.
fn write_json_atomically(path: &Path, value: &impl Serialize) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(value).context("encoding values file")?;
    fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// `tests/` (this crate's folder): the peer scripts live in `tests/peers/`.
fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A committed script in `tests/peers/`.
fn peer_script(name: &str) -> Result<PathBuf> {
    let script = crate_dir().join("peers").join(name);
    if !script.is_file() {
        bail!(
            "peer script {} is missing (it is committed in tests/peers/)",
            script.display()
        );
    }
    Ok(script)
}

/// `'<path>'` for a /bin/sh script.
fn sh_quote(path: &Path) -> Result<String> {
    let text = path
        .to_str()
        .ok_or_else(|| anyhow!("path {} is not UTF-8", path.display()))?;
    if text.contains('\'') {
        bail!("path {text} contains a single quote; move the checkout or temp dir");
    }
    Ok(format!("'{text}'"))
}

fn tempdir(peer: &str) -> Result<TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("coldaisle-{peer}-"))
        .tempdir()
        .with_context(|| format!("creating a temp dir for {peer}"))
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

// ---------------------------------------------------------------------------------------------
// mosquitto
// ---------------------------------------------------------------------------------------------

/// A mosquitto 2.0 broker on `127.0.0.1:<port>` requiring a user name and password.
///
/// `stop` and `restart` keep the port, for broker-outage tests. No persistence: a restarted
/// broker has forgotten retained messages and sessions.
#[derive(Debug)]
pub struct Mosquitto {
    /// The broker; `None` while stopped. Declared before `dir` so it dies before its files.
    process: Option<PeerProcess>,
    /// Listener port, kept across restarts.
    port: u16,
    /// The mosquitto executable.
    exe: PathBuf,
    /// `mosquitto.conf` in `dir`.
    conf: PathBuf,
    /// stdout + stderr of every run, appended.
    log: PathBuf,
    /// Config, password file and log; removed on drop.
    dir: TempDir,
    /// Extra config lines appended after the listener (TLS files, ACL file, ...).
    extra_conf: String,
    /// Whether the listener speaks TLS (readiness is then a TCP connect, not an MQTT CONNECT).
    tls: bool,
}

/// Readiness of a TLS listener: it accepts TCP connections.
fn tcp_accepts(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&loopback(port), Duration::from_millis(200)).is_ok()
}

impl Mosquitto {
    /// Starts a broker accepting exactly `users` (name, password); anonymous clients are
    /// refused. Returns once the listener accepts TCP connections.
    pub fn start(users: &[(&str, &str)]) -> Result<Mosquitto> {
        Self::start_with(users, "", false)
    }

    /// Like [`Mosquitto::start`], with `extra_conf` lines appended after the listener line
    /// (e.g. `cafile`/`certfile`/`keyfile`/`require_certificate` for TLS, `acl_file`); `tls`
    /// says the listener speaks TLS.
    pub fn start_with(users: &[(&str, &str)], extra_conf: &str, tls: bool) -> Result<Mosquitto> {
        let exe = find_executable("mosquitto", "mosquitto")?;
        let passwd_exe = find_executable("mosquitto_passwd", "mosquitto")?;
        let dir = tempdir("mosquitto")?;
        let passwords = dir.path().join("passwd");
        File::create(&passwords).with_context(|| format!("creating {}", passwords.display()))?;
        fs::set_permissions(&passwords, fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod 600 {}", passwords.display()))?;
        for (user, password) in users {
            let output = Command::new(&passwd_exe)
                .arg("-b")
                .arg(&passwords)
                .arg(user)
                .arg(password)
                .output()
                .with_context(|| format!("running {}", passwd_exe.display()))?;
            if !output.status.success() {
                bail!(
                    "mosquitto_passwd -b {} {user} failed ({}): {}{}",
                    passwords.display(),
                    describe_status(output.status),
                    String::from_utf8_lossy(&output.stderr).trim(),
                    String::from_utf8_lossy(&output.stdout).trim()
                );
            }
        }
        let mut broker = Mosquitto {
            process: None,
            port: 0,
            exe,
            conf: dir.path().join("mosquitto.conf"),
            log: dir.path().join("mosquitto.log"),
            dir,
            extra_conf: extra_conf.to_string(),
            tls,
        };
        let probe: fn(u16) -> bool = if tls { tcp_accepts } else { mqtt_answers };
        let log = broker.log.clone();
        let (process, port) = start_on_free_port(
            "mosquitto",
            free_tcp_port,
            &[&log],
            &mut |port| broker.spawn(port),
            &mut |port| probe(port),
        )?;
        broker.process = Some(process);
        broker.port = port;
        tracing::debug!(port, dir = %broker.dir.path().display(), "mosquitto started");
        Ok(broker)
    }

    /// Writes the config for `port` and spawns the broker (not yet waited for).
    fn spawn(&self, port: u16) -> Result<Child> {
        let passwords = self.dir.path().join("passwd");
        let mut conf = format!(
            "# written by coldaisle_testkit::peers::Mosquitto\n\
             listener {port} 127.0.0.1\n\
             allow_anonymous false\n\
             password_file {}\n\
             persistence false\n\
             log_dest stderr\n\
             log_type error\n\
             log_type warning\n\
             log_type notice\n\
             log_type information\n\
             connection_messages true\n",
            passwords.display()
        );
        if running_as_root() {
            // Otherwise mosquitto drops to the `mosquitto` user and cannot read the 0600
            // password file (shared/PEERS.md gotcha).
            conf.push_str("user root\n");
        }
        conf.push_str(&self.extra_conf);
        conf.push('\n');
        fs::write(&self.conf, conf).with_context(|| format!("writing {}", self.conf.display()))?;
        let (stdout, stderr) = log_stdio(&self.log)?;
        Command::new(&self.exe)
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("spawning {}", self.exe.display()))
    }

    /// The listener port on 127.0.0.1 (unchanged by `restart`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        loopback(self.port)
    }

    /// Whether the broker process is running (false after `stop`).
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// Kills the broker (SIGKILL, as in a crash or power loss); the port is kept for
    /// `restart`. Does nothing if already stopped.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Stops the broker if running, then starts it again on the same port and waits until it
    /// accepts connections. Fails (with the log tail) if the port was taken meanwhile.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let log = self.log.clone();
        let process = start_on_port(
            "mosquitto",
            self.port,
            &[&log],
            &mut |port| self.spawn(port),
            &mut |port| {
                if self.tls {
                    tcp_accepts(port)
                } else {
                    mqtt_answers(port)
                }
            },
        )
        .map_err(|(StartFailure::Exited(err) | StartFailure::Fatal(err))| err)?;
        self.process = Some(process);
        Ok(())
    }

    /// The broker's log file (connections, auth failures).
    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

// ---------------------------------------------------------------------------------------------
// net-snmp snmpd
// ---------------------------------------------------------------------------------------------

/// A value served by [`Snmpd`] under its `pass_persist` subtree.
///
/// Serialised as `{"type": "<pass_persist type>", "value": ...}`, the format of the values
/// file `tests/peers/pass_persist.py` reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum SnmpValue {
    /// INTEGER (Integer32).
    Integer(i32),
    /// Unsigned32 (net-snmp answers it as Gauge32).
    Unsigned(u32),
    /// Gauge32.
    Gauge(u32),
    /// Counter32.
    Counter(u32),
    /// Counter64.
    Counter64(u64),
    /// TimeTicks (hundredths of a second).
    Timeticks(u32),
    /// IpAddress.
    #[serde(rename = "ipaddress")]
    IpAddress(Ipv4Addr),
    /// OBJECT IDENTIFIER, numeric (`1.3.6.1...`).
    #[serde(rename = "objectid")]
    ObjectId(String),
    /// OCTET STRING given as text (one line).
    String(String),
    /// OCTET STRING given as bytes (written as space-separated hex, e.g. `"00 3f dd"`).
    #[serde(with = "hex_octets")]
    Octet(Vec<u8>),
}

/// `Vec<u8>` <-> `"00 3f dd"`, the pass_persist `octet` notation.
mod hex_octets {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        let text: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        serializer.serialize_str(&text.join(" "))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.split_whitespace()
            .map(|byte| u8::from_str_radix(byte, 16).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// How to start [`Snmpd`].
#[derive(Debug, Clone)]
pub struct SnmpdOptions {
    /// v1/v2c read-only community (no whitespace, at most 64 bytes).
    pub community: String,
    /// Numeric OID of the subtree served by `tests/peers/pass_persist.py`, e.g.
    /// `1.3.6.1.4.1.318` (APC). Everything else is snmpd's own MIB-II.
    pub subtree: String,
    /// Optional SNMPv3 user as (user, auth password, privacy password), created with
    /// SHA-256 authentication and AES privacy and allowed `authPriv` reads. Passwords need at
    /// least 8 characters (net-snmp rule).
    pub v3_user: Option<(String, String, String)>,
    /// Further snmpd.conf lines, e.g. more SNMPv3 users (`createUser u MD5 pass DES pass`,
    /// `rouser u priv`).
    pub extra_conf: Vec<String>,
    /// Values served from the start (numeric OID -> value); change them later with
    /// [`Snmpd::set_value`].
    pub values: BTreeMap<String, SnmpValue>,
}

impl Default for SnmpdOptions {
    fn default() -> Self {
        SnmpdOptions {
            community: "public".to_owned(),
            subtree: "1.3.6.1.4.1.318".to_owned(),
            v3_user: None,
            extra_conf: Vec::new(),
            values: BTreeMap::new(),
        }
    }
}

/// net-snmp `snmpd` on `udp:127.0.0.1:<port>` serving a test-controlled subtree.
#[derive(Debug)]
pub struct Snmpd {
    /// The agent; dies before `dir` is removed (field order).
    _process: PeerProcess,
    /// UDP port of the agent.
    port: u16,
    /// Community given at start.
    community: String,
    /// Subtree (numeric arcs, no leading dot) served from the values file.
    subtree: Vec<u32>,
    /// The JSON values file the pass_persist script re-reads on every request.
    values_path: PathBuf,
    /// In-memory copy of the values file; the lock also serialises rewrites.
    values: Mutex<BTreeMap<String, SnmpValue>>,
    /// The snmpd executable, for [`Snmpd::restart`].
    exe: PathBuf,
    /// GET probe answered once snmpd is up, for [`Snmpd::restart`].
    probe_packet: Vec<u8>,
    /// Config, persistent dir, logs, values; removed on drop.
    dir: TempDir,
}

impl Snmpd {
    /// Starts snmpd with `options` and returns once it answers an SNMP GET.
    pub fn start(options: SnmpdOptions) -> Result<Snmpd> {
        let SnmpdOptions {
            community,
            subtree,
            v3_user,
            extra_conf,
            values,
        } = options;
        if community.is_empty() || community.len() > 64 || community.contains(char::is_whitespace) {
            bail!("snmpd community {community:?}: want 1..=64 bytes without whitespace");
        }
        let subtree_arcs =
            parse_oid(&subtree).with_context(|| format!("snmpd subtree {subtree:?}"))?;
        if subtree_arcs.len() < 2 {
            bail!("snmpd subtree {subtree:?}: want a numeric OID such as 1.3.6.1.4.1.318");
        }
        if let Some((user, auth, privacy)) = &v3_user {
            if user.is_empty() || user.contains(char::is_whitespace) {
                bail!("snmpd v3 user {user:?}: want a name without whitespace");
            }
            if auth.len() < 8
                || privacy.len() < 8
                || format!("{auth}{privacy}").contains(char::is_whitespace)
            {
                bail!("snmpd v3 user {user:?}: passwords need 8+ characters and no whitespace");
            }
        }
        let snmpd = find_executable("snmpd", "snmpd")?;
        let python = find_executable("python3", "python3")?;
        let script = peer_script("pass_persist.py")?;

        let dir = tempdir("snmpd")?;
        let persistent = dir.path().join("persist");
        fs::create_dir(&persistent)
            .with_context(|| format!("creating {}", persistent.display()))?;
        let values_path = dir.path().join("values.json");
        let mut normalized = BTreeMap::new();
        for (oid, value) in values {
            normalized.insert(oid_under(&oid, &subtree_arcs)?, checked_value(&oid, value)?);
        }
        write_json_atomically(&values_path, &normalized)?;

        // snmpd runs the pass_persist command itself; a wrapper avoids any doubt about how it
        // splits arguments and copes with paths containing spaces.
        let subtree_text = format_oid(&subtree_arcs);
        let wrapper = dir.path().join("pass_persist.sh");
        fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec {} {} {} '{subtree_text}'\n",
                sh_quote(&python)?,
                sh_quote(&script)?,
                sh_quote(&values_path)?
            ),
        )
        .with_context(|| format!("writing {}", wrapper.display()))?;
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("chmod 755 {}", wrapper.display()))?;

        let conf = dir.path().join("snmpd.conf");
        let log = dir.path().join("snmpd.log");
        let out = dir.path().join("snmpd.out");
        let mut spawn = |port: u16| -> Result<Child> {
            let mut text = format!(
                "# written by coldaisle_testkit::peers::Snmpd\n\
                 agentAddress udp:127.0.0.1:{port}\n\
                 rocommunity {community} 127.0.0.1\n\
                 dontLogTCPWrappersConnects yes\n\
                 pass_persist .{subtree_text} {}\n",
                wrapper.display()
            );
            if let Some((user, auth, privacy)) = &v3_user {
                text.push_str(&format!(
                    "createUser {user} SHA-256 {auth} AES {privacy}\nrouser {user} priv\n"
                ));
            }
            for line in &extra_conf {
                text.push_str(line);
                text.push('\n');
            }
            fs::write(&conf, text).with_context(|| format!("writing {}", conf.display()))?;
            let (stdout, stderr) = log_stdio(&out)?;
            Command::new(&snmpd)
                .args(["-f", "-C", "-c"])
                .arg(&conf)
                .args(["-m", "", "-I", "-smux", "-Lf"])
                .arg(&log)
                .env("SNMP_PERSISTENT_DIR", &persistent)
                .env("SNMPCONFPATH", dir.path())
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                .spawn()
                .with_context(|| format!("spawning {}", snmpd.display()))
        };
        let probe_packet = snmp_v2c_probe(community.as_bytes())?;
        let (process, port) = start_on_free_port(
            "snmpd",
            free_udp_port,
            &[&log, &out],
            &mut spawn,
            &mut |port| snmp_answers(port, &probe_packet),
        )?;
        tracing::debug!(port, dir = %dir.path().display(), "snmpd started");
        Ok(Snmpd {
            _process: process,
            exe: snmpd,
            probe_packet,
            port,
            community,
            subtree: subtree_arcs,
            values_path,
            values: Mutex::new(normalized),
            dir,
        })
    }

    /// The agent's UDP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Process id of snmpd (benchmarks read its CPU time from `/proc/PID/stat`).
    pub fn pid(&self) -> u32 {
        self._process.child.id()
    }

    /// Kills snmpd (SIGKILL) and starts it again on the same port with the same config and
    /// persistent directory: the same SNMPv3 engine id, its engine time starting again.
    pub fn restart(&mut self) -> Result<()> {
        self._process.kill();
        let dir = self.dir.path().to_path_buf();
        let (conf, log, out) = (
            dir.join("snmpd.conf"),
            dir.join("snmpd.log"),
            dir.join("snmpd.out"),
        );
        let exe = self.exe.clone();
        let packet = self.probe_packet.clone();
        let process = start_on_port(
            "snmpd",
            self.port,
            &[&log, &out],
            &mut |_port| {
                let (stdout, stderr) = log_stdio(&out)?;
                Command::new(&exe)
                    .args(["-f", "-C", "-c"])
                    .arg(&conf)
                    .args(["-m", "", "-I", "-smux", "-Lf"])
                    .arg(&log)
                    .env("SNMP_PERSISTENT_DIR", dir.join("persist"))
                    .env("SNMPCONFPATH", &dir)
                    .stdin(Stdio::null())
                    .stdout(stdout)
                    .stderr(stderr)
                    .spawn()
                    .with_context(|| format!("spawning {}", exe.display()))
            },
            &mut |port| snmp_answers(port, &packet),
        )
        .map_err(|(StartFailure::Exited(err) | StartFailure::Fatal(err))| err)?;
        self._process = process;
        Ok(())
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        loopback(self.port)
    }

    /// The v1/v2c community.
    pub fn community(&self) -> &str {
        &self.community
    }

    /// Serves `value` at `oid` (numeric, inside the subtree) from the next request on.
    pub fn set_value(&self, oid: &str, value: SnmpValue) -> Result<()> {
        let key = oid_under(oid, &self.subtree)?;
        let value = checked_value(oid, value)?;
        let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        values.insert(key, value);
        write_json_atomically(&self.values_path, &*values)
    }

    /// Stops serving `oid` (a GET then answers noSuchInstance/noSuchObject).
    pub fn remove_value(&self, oid: &str) -> Result<()> {
        let key = oid_under(oid, &self.subtree)?;
        let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        values.remove(&key);
        write_json_atomically(&self.values_path, &*values)
    }

    /// The JSON values file (see `tests/peers/pass_persist.py`).
    pub fn values_path(&self) -> &Path {
        &self.values_path
    }

    /// snmpd's own log (`-Lf`); pass_persist errors go to `snmpd.out` beside it.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("snmpd.log")
    }
}

/// `"1.3.6"` or `".1.3.6"` -> `[1, 3, 6]`.
fn parse_oid(text: &str) -> Result<Vec<u32>> {
    let trimmed = text.trim().trim_start_matches('.');
    if trimmed.is_empty() {
        bail!("empty OID");
    }
    trimmed
        .split('.')
        .map(|arc| {
            arc.parse::<u32>()
                .with_context(|| format!("OID {text:?}: arc {arc:?} is not a number"))
        })
        .collect()
}

fn format_oid(arcs: &[u32]) -> String {
    arcs.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// The values-file key of `oid` (no leading dot); an error if outside `subtree`, because
/// snmpd would never ask pass_persist for it.
fn oid_under(oid: &str, subtree: &[u32]) -> Result<String> {
    let arcs = parse_oid(oid)?;
    if arcs.len() <= subtree.len() || !arcs.starts_with(subtree) {
        bail!(
            "OID {oid} is not inside the pass_persist subtree {} of this snmpd",
            format_oid(subtree)
        );
    }
    Ok(format_oid(&arcs))
}

/// Rejects values pass_persist cannot carry (it is line based).
fn checked_value(oid: &str, value: SnmpValue) -> Result<SnmpValue> {
    match &value {
        SnmpValue::String(text) if text.contains(['\n', '\r']) => {
            bail!("value of {oid}: pass_persist strings are one line")
        }
        SnmpValue::ObjectId(text) => {
            parse_oid(text).with_context(|| format!("value of {oid}"))?;
        }
        _ => {}
    }
    Ok(value)
}

/// A BER-encoded SNMPv2c GetRequest for sysUpTime.0 (`1.3.6.1.2.1.1.3.0`) with `community`,
/// used as readiness probe. Communities up to 64 bytes keep every length in short form.
fn snmp_v2c_probe(community: &[u8]) -> Result<Vec<u8>> {
    #[rustfmt::skip]
    const PDU: [u8; 27] = [
        0xa0, 0x19,                   // GetRequest-PDU, 25 bytes
        0x02, 0x01, 0x01,             // request-id 1
        0x02, 0x01, 0x00,             // error-status 0
        0x02, 0x01, 0x00,             // error-index 0
        0x30, 0x0e,                   // varbind list
        0x30, 0x0c,                   // varbind
        0x06, 0x08, 0x2b, 0x06, 0x01, 0x02, 0x01, 0x01, 0x03, 0x00, // sysUpTime.0
        0x05, 0x00,                   // NULL
    ];
    let community_len = u8::try_from(community.len())
        .ok()
        .filter(|len| *len <= 64)
        .ok_or_else(|| anyhow!("community longer than 64 bytes"))?;
    let body_len = 3 + 2 + community_len + PDU.len() as u8;
    let mut packet = vec![0x30, body_len, 0x02, 0x01, 0x01, 0x04, community_len];
    packet.extend_from_slice(community);
    packet.extend_from_slice(&PDU);
    Ok(packet)
}

/// Sends the probe to 127.0.0.1:`port`; any answer means snmpd is up.
fn snmp_answers(port: u16, packet: &[u8]) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        socket.connect(loopback(port))?;
        socket.set_read_timeout(Some(PROBE_TIMEOUT))?;
        socket.send(packet)?;
        let mut buf = [0u8; 1500];
        match socket.recv(&mut buf) {
            Ok(len) => Ok(len > 0),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Ok(false)
            }
            Err(err) => Err(err),
        }
    };
    attempt().unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// pymodbus
// ---------------------------------------------------------------------------------------------

/// A register table of a Modbus unit served by [`PyModbus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModbusTable {
    /// Holding registers (function code 3).
    Holding,
    /// Input registers (function code 4).
    Input,
}

/// A bit table of a Modbus unit served by [`PyModbus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModbusBits {
    /// Coils (function code 1).
    Coils,
    /// Discrete inputs (function code 2).
    Discrete,
}

/// How [`PyModbus`] is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PyModbusLink {
    /// Modbus TCP on 127.0.0.1.
    Tcp,
    /// RTU frames over TCP on 127.0.0.1 (a serial gateway).
    RtuOverTcp,
    /// Modbus RTU on one end of a socat pty pair; the client opens [`PyModbus::serial_path`].
    Serial {
        /// Line speed.
        baud: u32,
    },
}

/// Values file of `tests/peers/modbus_server.py`:
/// `{"units": {"1": {"holding": {"92": 720}, "input": {}, "delay_ms": 0, "exceptions": {...}}}}`.
#[derive(Debug, Default, Serialize)]
struct ModbusValues {
    /// Unit id -> its registers (serde_json writes integer keys as strings).
    units: BTreeMap<u8, ModbusUnit>,
}

/// One unit's register map, delay and forced exceptions.
#[derive(Debug, Default, Serialize)]
struct ModbusUnit {
    /// Holding registers present on the device; other addresses answer exception 2.
    holding: BTreeMap<u16, u16>,
    /// Input registers present on the device.
    input: BTreeMap<u16, u16>,
    /// Delay before every answer, in milliseconds.
    delay_ms: u64,
    /// Addresses that answer an exception code instead of a value.
    exceptions: ModbusExceptions,
    /// Coils set to 1 (bit address -> 1); others read 0.
    coils: BTreeMap<u16, u8>,
    /// Discrete inputs set to 1.
    discrete: BTreeMap<u16, u8>,
}

/// Forced exception codes per table and address.
#[derive(Debug, Default, Serialize)]
struct ModbusExceptions {
    /// Holding register address -> exception code.
    holding: BTreeMap<u16, u8>,
    /// Input register address -> exception code.
    input: BTreeMap<u16, u8>,
}

/// A pymodbus 3.16.1 Modbus server (`tests/peers/modbus_server.py`, run with the repo's
/// `.venv`) on `127.0.0.1:<port>` (Modbus TCP or RTU over TCP) or on a socat pty pair (RTU),
/// simulating the given unit ids.
///
/// Only registers set by the test exist: reading any other address answers exception 2
/// (illegal data address), like a device's register map. Coils and discrete inputs (bit
/// addresses 0..=1023) read 0 unless set. Writes answer exception 1 (illegal function); unit
/// ids not started answer exception 11 (gateway target failed to respond).
#[derive(Debug)]
pub struct PyModbus {
    /// The server; dies before `dir` is removed (field order).
    _process: PeerProcess,
    /// socat joining the server's pty to the client's (serial link only); dies after the server.
    _socat: Option<PeerProcess>,
    /// The client's end of the pty pair (serial link only).
    serial_path: Option<PathBuf>,
    /// TCP port of the server (unused on a serial link).
    port: u16,
    /// The JSON values file the server re-reads on every request.
    values_path: PathBuf,
    /// In-memory copy of the values file; the lock also serialises rewrites.
    values: Mutex<ModbusValues>,
    /// Values file and log; removed on drop.
    dir: TempDir,
}

impl PyModbus {
    /// Starts the server for `units` (ids 1..=255, all registers empty) and returns once it
    /// accepts TCP connections.
    pub fn start(units: &[u8]) -> Result<PyModbus> {
        Self::start_with(units, PyModbusLink::Tcp)
    }

    /// Starts the server for `units` on `link` and returns once it serves.
    pub fn start_with(units: &[u8], link: PyModbusLink) -> Result<PyModbus> {
        if units.is_empty() || units.contains(&0) {
            bail!("PyModbus::start({units:?}): want at least one unit id in 1..=255");
        }
        let python = venv_python()?;
        let script = peer_script("modbus_server.py")?;
        let dir = tempdir("pymodbus")?;
        let values_path = dir.path().join("values.json");
        let values = ModbusValues {
            units: units
                .iter()
                .map(|unit| (*unit, ModbusUnit::default()))
                .collect(),
        };
        write_json_atomically(&values_path, &values)?;
        let unit_list = units
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let log = dir.path().join("modbus_server.log");
        let (socat, serial_path, server_pty) = match link {
            PyModbusLink::Serial { .. } => {
                let (socat, server, client) = start_pty_pair(dir.path())?;
                (Some(socat), Some(client), Some(server))
            }
            _ => (None, None, None),
        };
        let mut spawn = |port: u16| -> Result<Child> {
            let (stdout, stderr) = log_stdio(&log)?;
            let link_args: Vec<String> = match (link, &server_pty) {
                (PyModbusLink::Serial { baud }, Some(pty)) => vec![
                    "--serial".into(),
                    pty.display().to_string(),
                    "--baud".into(),
                    baud.to_string(),
                ],
                (PyModbusLink::RtuOverTcp, _) => {
                    vec![
                        "--port".into(),
                        port.to_string(),
                        "--framer".into(),
                        "rtu".into(),
                    ]
                }
                _ => vec!["--port".into(), port.to_string()],
            };
            Command::new(&python)
                .arg(&script)
                .args(&link_args)
                .arg("--values")
                .arg(&values_path)
                .arg("--units")
                .arg(&unit_list)
                .env("PYTHONUNBUFFERED", "1")
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                .spawn()
                .with_context(|| format!("spawning {} {}", python.display(), script.display()))
        };
        let mut serving = |port: u16| match link {
            PyModbusLink::Tcp => modbus_answers(port),
            _ => fs::read_to_string(&log).is_ok_and(|t| t.contains("modbus_server.py: serving")),
        };
        let (process, port) =
            start_on_free_port("pymodbus", free_tcp_port, &[&log], &mut spawn, &mut serving)?;
        tracing::debug!(port, units = %unit_list, dir = %dir.path().display(), "pymodbus started");
        Ok(PyModbus {
            _process: process,
            _socat: socat,
            serial_path,
            port,
            values_path,
            values: Mutex::new(values),
            dir,
        })
    }

    /// The server's TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The serial device a client opens to reach the server ([`PyModbusLink::Serial`] only).
    pub fn serial_path(&self) -> Option<&Path> {
        self.serial_path.as_deref()
    }

    /// Sets bits `addr..addr+values.len()` (addresses 0..=1023) of a bit table of `unit`.
    pub fn set_bits(&self, unit: u8, table: ModbusBits, addr: u16, values: &[bool]) -> Result<()> {
        if usize::from(addr) + values.len() > 1024 {
            bail!("unit {unit}: modbus_server.py serves bit addresses 0..=1023 only");
        }
        self.update(unit, |entry| {
            let bits = match table {
                ModbusBits::Coils => &mut entry.coils,
                ModbusBits::Discrete => &mut entry.discrete,
            };
            for (address, value) in (addr..).zip(values) {
                bits.insert(address, u8::from(*value));
            }
        })
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        loopback(self.port)
    }

    /// Sets holding registers `addr..addr+values.len()` of `unit` (creating them).
    pub fn set_holding(&self, unit: u8, addr: u16, values: &[u16]) -> Result<()> {
        self.set_registers(unit, ModbusTable::Holding, addr, values)
    }

    /// Sets input registers `addr..addr+values.len()` of `unit` (creating them).
    pub fn set_input(&self, unit: u8, addr: u16, values: &[u16]) -> Result<()> {
        self.set_registers(unit, ModbusTable::Input, addr, values)
    }

    /// Sets registers of either table.
    pub fn set_registers(
        &self,
        unit: u8,
        table: ModbusTable,
        addr: u16,
        values: &[u16],
    ) -> Result<()> {
        let end = usize::from(addr) + values.len();
        if end > 65536 {
            bail!("unit {unit}: registers {addr}..{end} run past 65535");
        }
        self.update(unit, |entry| {
            let registers = match table {
                ModbusTable::Holding => &mut entry.holding,
                ModbusTable::Input => &mut entry.input,
            };
            for (register, value) in (addr..=u16::MAX).zip(values) {
                registers.insert(register, *value);
            }
        })
    }

    /// Removes registers so that reading them answers exception 2 (illegal data address).
    pub fn remove_registers(
        &self,
        unit: u8,
        table: ModbusTable,
        addr: u16,
        count: u16,
    ) -> Result<()> {
        self.update(unit, |entry| {
            let registers = match table {
                ModbusTable::Holding => &mut entry.holding,
                ModbusTable::Input => &mut entry.input,
            };
            for register in (addr..=u16::MAX).take(usize::from(count)) {
                registers.remove(&register);
            }
        })
    }

    /// Makes a read covering `addr` answer Modbus exception `code` (1..=8, 10, 11), or with
    /// `None` answer normally again.
    pub fn set_exception(
        &self,
        unit: u8,
        table: ModbusTable,
        addr: u16,
        code: Option<u8>,
    ) -> Result<()> {
        if let Some(code) = code {
            if !matches!(code, 1..=8 | 10 | 11) {
                bail!("unit {unit}: Modbus exception code {code} is not one pymodbus knows (1..=8, 10, 11)");
            }
        }
        self.update(unit, |entry| {
            let exceptions = match table {
                ModbusTable::Holding => &mut entry.exceptions.holding,
                ModbusTable::Input => &mut entry.exceptions.input,
            };
            match code {
                Some(code) => exceptions.insert(addr, code),
                None => exceptions.remove(&addr),
            };
        })
    }

    /// Delays every answer of `unit` by `delay` (slow device, timeout tests).
    pub fn set_delay(&self, unit: u8, delay: Duration) -> Result<()> {
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.update(unit, |entry| entry.delay_ms = delay_ms)
    }

    /// The JSON values file (see `tests/peers/modbus_server.py`).
    pub fn values_path(&self) -> &Path {
        &self.values_path
    }

    /// The server's stdout/stderr log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("modbus_server.log")
    }

    fn update(&self, unit: u8, change: impl FnOnce(&mut ModbusUnit)) -> Result<()> {
        let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        let started: Vec<u8> = values.units.keys().copied().collect();
        let entry = values
            .units
            .get_mut(&unit)
            .ok_or_else(|| anyhow!("unit {unit} was not started (PyModbus::start({started:?}))"))?;
        change(entry);
        write_json_atomically(&self.values_path, &*values)
    }
}

/// Starts `socat` joining two raw ptys (links `server-pty` and `client-pty` in `dir`) and waits
/// until both links exist.
fn start_pty_pair(dir: &Path) -> Result<(PeerProcess, PathBuf, PathBuf)> {
    let socat = find_executable("socat", "socat")?;
    let (server, client) = (dir.join("server-pty"), dir.join("client-pty"));
    let log = dir.join("socat.log");
    let (stdout, stderr) = log_stdio(&log)?;
    let child = Command::new(&socat)
        .arg("-d")
        .arg("-d")
        .arg(format!("pty,raw,echo=0,link={}", server.display()))
        .arg(format!("pty,raw,echo=0,link={}", client.display()))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("spawning {}", socat.display()))?;
    let process = PeerProcess {
        name: "socat",
        child,
    };
    let started = Instant::now();
    while !(server.exists() && client.exists()) {
        if started.elapsed() > READY_TIMEOUT {
            bail!(
                "socat made no pty pair within {READY_TIMEOUT:?}{}",
                log_tails(&[&log])
            );
        }
        thread::sleep(PROBE_INTERVAL);
    }
    Ok((process, server, client))
}

/// `<repo>/.venv/bin/python`, checked once per process to have pymodbus 3.16.1.
fn venv_python() -> Result<PathBuf> {
    static CHECKED: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    CHECKED
        .get_or_init(|| check_venv_python().map_err(|err| format!("{err:#}")))
        .clone()
        .map_err(|err| anyhow!(err))
}

fn check_venv_python() -> Result<PathBuf> {
    const HINT: &str = "run ./test.sh to create .venv with pymodbus==3.16.1";
    let root = crate_dir()
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent directory", crate_dir().display()))?;
    let python = root.join(".venv").join("bin").join("python");
    if !is_executable(&python) {
        bail!("{} not found: {HINT}", python.display());
    }
    let output = Command::new(&python)
        .args(["-c", "import pymodbus; print(pymodbus.__version__)"])
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !output.status.success() {
        bail!(
            "pymodbus is not importable with {}: {HINT}\n{}",
            python.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if version != PYMODBUS_VERSION {
        bail!(
            "{} has pymodbus {version}, want {PYMODBUS_VERSION}: {HINT}",
            python.display()
        );
    }
    Ok(python)
}

#[cfg(test)]
mod tests {
    //! Each peer starts, answers a real client and shows value changes. These tests fail (never
    //! skip) when a peer or client CLI is missing: run ./test.sh.

    use super::*;
    use std::process::Output;
    use tokio_modbus::client::{tcp, Reader};
    use tokio_modbus::{ExceptionCode, Slave};

    /// Runs a client CLI and returns its output (failing if it is not installed).
    fn cli(name: &str, package: &str, args: &[&str]) -> Result<Output> {
        let exe = find_executable(name, package)?;
        Command::new(&exe)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", exe.display()))
    }

    /// stdout then stderr, without net-snmp's first-run notice ("Created directory:
    /// /var/lib/snmp/cert_indexes", printed once per fresh machine by whichever command runs
    /// first), so an assertion on the answer holds on a new machine too.
    fn text(output: &Output) -> String {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr: Vec<&str> = stderr
            .lines()
            .filter(|line| !line.starts_with("Created directory:"))
            .collect();
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            stderr.join("\n")
        )
    }

    #[test]
    fn peers_missing_executable_says_what_to_install() {
        let err = find_executable("coldaisle-no-such-peer", "coldaisle-pkg")
            .err()
            .map(|err| err.to_string());
        assert_eq!(
            err.as_deref(),
            Some("coldaisle-no-such-peer not found: run ./test.sh or apt-get install -y coldaisle-pkg")
        );
    }

    #[test]
    fn snmp_probe_packet_is_well_formed() -> Result<()> {
        let packet = snmp_v2c_probe(b"public")?;
        assert_eq!(usize::from(packet[1]) + 2, packet.len());
        assert_eq!(&packet[7..13], b"public");
        assert!(snmp_v2c_probe(&[b'x'; 65]).is_err());
        Ok(())
    }

    #[test]
    fn snmp_value_json_is_the_pass_persist_format() -> Result<()> {
        let json = serde_json::to_value(SnmpValue::Integer(235))?;
        assert_eq!(json, serde_json::json!({"type": "integer", "value": 235}));
        let json = serde_json::to_value(SnmpValue::Octet(vec![0, 0x3f, 0xdd]))?;
        assert_eq!(
            json,
            serde_json::json!({"type": "octet", "value": "00 3f dd"})
        );
        let json = serde_json::to_value(SnmpValue::IpAddress(Ipv4Addr::new(10, 0, 0, 1)))?;
        assert_eq!(
            json,
            serde_json::json!({"type": "ipaddress", "value": "10.0.0.1"})
        );
        let back: SnmpValue =
            serde_json::from_value(serde_json::json!({"type": "octet", "value": "00 3f dd"}))?;
        assert_eq!(back, SnmpValue::Octet(vec![0, 0x3f, 0xdd]));
        Ok(())
    }

    #[test]
    fn peers_mosquitto_authenticates_and_restarts_on_same_port() -> Result<()> {
        let mut broker = Mosquitto::start(&[("agent", "s3cret"), ("collector", "c0llect")])?;
        let port = broker.port().to_string();
        let publish = |user: &str, password: &str, message: &str| {
            cli(
                "mosquitto_pub",
                "mosquitto-clients",
                &[
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-u",
                    user,
                    "-P",
                    password,
                    "-q",
                    "1",
                    "-r",
                    "-t",
                    "coldaisle/test",
                    "-m",
                    message,
                ],
            )
        };
        let receive_retained = || {
            cli(
                "mosquitto_sub",
                "mosquitto-clients",
                &[
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-u",
                    "collector",
                    "-P",
                    "c0llect",
                    "-t",
                    "coldaisle/test",
                    "-C",
                    "1",
                    "-W",
                    "10",
                ],
            )
        };

        let out = publish("agent", "s3cret", "hello")?;
        assert!(out.status.success(), "publish failed: {}", text(&out));
        let out = receive_retained()?;
        assert!(out.status.success(), "subscribe failed: {}", text(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hello");

        let out = publish("agent", "wrong", "intruder")?;
        assert!(
            !out.status.success(),
            "wrong password accepted: {}",
            text(&out)
        );
        let out = publish("nobody", "", "anon")?;
        assert!(
            !out.status.success(),
            "unknown user accepted: {}",
            text(&out)
        );

        broker.stop();
        assert!(!broker.is_running());
        assert!(
            TcpStream::connect(broker.addr()).is_err(),
            "stopped broker still listens"
        );
        let out = publish("agent", "s3cret", "during outage")?;
        assert!(
            !out.status.success(),
            "publish to a stopped broker succeeded"
        );

        broker.restart()?;
        assert_eq!(broker.port().to_string(), port);
        let out = publish("agent", "s3cret", "after restart")?;
        assert!(
            out.status.success(),
            "publish after restart failed: {}",
            text(&out)
        );
        let out = receive_retained()?;
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "after restart");

        let addr = broker.addr();
        drop(broker);
        assert!(
            TcpStream::connect(addr).is_err(),
            "dropped broker still listens"
        );
        Ok(())
    }

    #[test]
    fn peers_restart_on_a_taken_port_fails_with_the_log_tail() -> Result<()> {
        let mut broker = Mosquitto::start(&[("agent", "s3cret")])?;
        broker.stop();
        let squatter = TcpListener::bind(broker.addr())?;
        let err = broker.restart().err().map(|err| format!("{err:#}"));
        let err = err.unwrap_or_default();
        assert!(err.contains("mosquitto exited"), "{err}");
        assert!(
            err.contains("tail of") && err.contains("Address already in use"),
            "{err}"
        );
        drop(squatter);
        broker.restart()?;
        assert!(broker.is_running());
        Ok(())
    }

    const PDU_INPUT_VOLTAGE: &str = "1.3.6.1.4.1.318.1.1.26.10.2.2.1.8.1";
    const PDU_NAME: &str = ".1.3.6.1.4.1.318.1.1.26.4.3.1.4.1";
    const PDU_COUNTER: &str = "1.3.6.1.4.1.318.1.1.26.9.1";

    fn snmpget(snmpd: &Snmpd, extra: &[&str], oid: &str) -> Result<String> {
        let target = format!("127.0.0.1:{}", snmpd.port());
        let mut args = vec!["-On", "-m", "", "-t", "2", "-r", "1"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[&target, oid]);
        let out = cli("snmpget", "snmp", &args)?;
        Ok(text(&out).trim().to_owned())
    }

    #[test]
    fn peers_snmpd_serves_values_that_change_at_run_time() -> Result<()> {
        let mut options = SnmpdOptions {
            community: "c0ld".to_owned(),
            v3_user: Some((
                "monitor".to_owned(),
                "authpass123".to_owned(),
                "privpass123".to_owned(),
            )),
            ..SnmpdOptions::default()
        };
        options
            .values
            .insert(PDU_INPUT_VOLTAGE.to_owned(), SnmpValue::Integer(235));
        options
            .values
            .insert(PDU_NAME.to_owned(), SnmpValue::String("PDU A".to_owned()));
        let snmpd = Snmpd::start(options)?;
        let v2c = ["-v2c", "-c", "c0ld"];

        assert_eq!(
            snmpget(&snmpd, &v2c, PDU_INPUT_VOLTAGE)?,
            format!(".{PDU_INPUT_VOLTAGE} = INTEGER: 235")
        );
        assert_eq!(
            snmpget(&snmpd, &v2c, PDU_NAME)?,
            format!("{PDU_NAME} = STRING: \"PDU A\"")
        );

        snmpd.set_value(PDU_INPUT_VOLTAGE, SnmpValue::Integer(241))?;
        snmpd.set_value(PDU_COUNTER, SnmpValue::Counter64(12_345_678_901_234))?;
        assert_eq!(
            snmpget(&snmpd, &v2c, PDU_INPUT_VOLTAGE)?,
            format!(".{PDU_INPUT_VOLTAGE} = INTEGER: 241")
        );

        // getnext walks numerically: 26.4 < 26.9 < 26.10.
        let target = format!("127.0.0.1:{}", snmpd.port());
        let out = cli(
            "snmpwalk",
            "snmp",
            &[
                "-On",
                "-m",
                "",
                "-v2c",
                "-c",
                "c0ld",
                &target,
                "1.3.6.1.4.1.318",
            ],
        )?;
        let walked: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| line.split(" = ").next().map(str::to_owned))
            .collect();
        assert_eq!(
            walked,
            [
                PDU_NAME.to_owned(),
                format!(".{PDU_COUNTER}"),
                format!(".{PDU_INPUT_VOLTAGE}")
            ],
            "walk output: {}",
            text(&out)
        );

        let v3 = [
            "-v3",
            "-l",
            "authPriv",
            "-u",
            "monitor",
            "-a",
            "SHA-256",
            "-A",
            "authpass123",
            "-x",
            "AES",
            "-X",
            "privpass123",
        ];
        assert_eq!(
            snmpget(&snmpd, &v3, PDU_COUNTER)?,
            format!(".{PDU_COUNTER} = Counter64: 12345678901234")
        );

        snmpd.remove_value(PDU_INPUT_VOLTAGE)?;
        let answer = snmpget(&snmpd, &v2c, PDU_INPUT_VOLTAGE)?;
        assert!(
            answer.contains("No Such"),
            "removed value still served: {answer}"
        );
        let wrong = snmpget(
            &snmpd,
            &["-v2c", "-c", "wrong", "-t", "0.5", "-r", "0"],
            PDU_NAME,
        )?;
        assert!(
            wrong.contains("Timeout"),
            "wrong community answered: {wrong}"
        );

        assert!(snmpd
            .set_value("1.3.6.1.2.1.1.5.0", SnmpValue::Integer(1))
            .is_err());
        Ok(())
    }

    #[tokio::test]
    async fn peers_pymodbus_serves_registers_that_change_at_run_time() -> Result<()> {
        let modbus = PyModbus::start(&[1, 2])?;
        modbus.set_holding(1, 92, &[720, 0])?;
        modbus.set_input(2, 0, &[215])?;

        let mut unit1 = tcp::connect_slave(modbus.addr(), Slave(1)).await?;
        assert_eq!(unit1.read_holding_registers(92, 2).await?, Ok(vec![720, 0]));
        modbus.set_holding(1, 93, &[42])?;
        assert_eq!(
            unit1.read_holding_registers(92, 2).await?,
            Ok(vec![720, 42])
        );
        assert_eq!(
            unit1.read_holding_registers(100, 1).await?,
            Err(ExceptionCode::IllegalDataAddress)
        );
        modbus.set_exception(1, ModbusTable::Holding, 93, Some(4))?;
        assert_eq!(
            unit1.read_holding_registers(92, 2).await?,
            Err(ExceptionCode::ServerDeviceFailure)
        );
        modbus.set_exception(1, ModbusTable::Holding, 93, None)?;
        assert_eq!(unit1.read_holding_registers(93, 1).await?, Ok(vec![42]));

        let mut unit2 = tcp::connect_slave(modbus.addr(), Slave(2)).await?;
        assert_eq!(unit2.read_input_registers(0, 1).await?, Ok(vec![215]));
        modbus.set_delay(2, Duration::from_millis(600))?;
        let slow =
            tokio::time::timeout(Duration::from_millis(200), unit2.read_input_registers(0, 1))
                .await;
        assert!(slow.is_err(), "delayed unit answered early: {slow:?}");

        let mut unit9 = tcp::connect_slave(modbus.addr(), Slave(9)).await?;
        assert_eq!(
            unit9.read_holding_registers(0, 1).await?,
            Err(ExceptionCode::GatewayTargetDevice)
        );
        assert!(modbus.set_holding(9, 0, &[1]).is_err());

        // And from outside Rust, with mbpoll.
        let port = modbus.port().to_string();
        let out = cli(
            "mbpoll",
            "mbpoll",
            &[
                "-m",
                "tcp",
                "-a",
                "1",
                "-0",
                "-1",
                "-t",
                "4",
                "-r",
                "92",
                "-c",
                "2",
                "-p",
                &port,
                "127.0.0.1",
            ],
        )?;
        let output = text(&out);
        assert!(
            output.contains("[92]: \t720") && output.contains("[93]: \t42"),
            "mbpoll: {output}"
        );
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Prometheus Alertmanager
// ---------------------------------------------------------------------------------------------

/// A Prometheus Alertmanager (Debian `prometheus-alertmanager`, API v2) on `127.0.0.1:<port>`,
/// clustering off, storage in a temp dir. Alerts posted to it are read back with
/// `GET /api/v2/alerts`.
#[derive(Debug)]
pub struct Alertmanager {
    /// The process. Declared before `dir` so it dies before its files.
    _process: PeerProcess,
    /// Listen port.
    port: u16,
    /// Config, storage and log; removed on drop.
    dir: TempDir,
}

/// `GET /-/ready` answers `HTTP/1.1 200`.
fn alertmanager_ready(port: u16) -> bool {
    tcp_exchange(
        port,
        b"GET /-/ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
        12,
    )
    .is_some_and(|answer| answer.ends_with(b"200"))
}

impl Alertmanager {
    /// Starts Alertmanager with one receiver that forwards nowhere; returns once `/-/ready` answers 200.
    pub fn start() -> Result<Alertmanager> {
        let exe = find_executable("prometheus-alertmanager", "prometheus-alertmanager")?;
        let dir = tempdir("alertmanager")?;
        let conf = dir.path().join("alertmanager.yml");
        fs::write(
            &conf,
            "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n",
        )
        .with_context(|| format!("writing {}", conf.display()))?;
        let storage = dir.path().join("data");
        let log = dir.path().join("alertmanager.log");
        let (process, port) = start_on_free_port(
            "prometheus-alertmanager",
            free_tcp_port,
            &[&log],
            &mut |port| {
                let (stdout, stderr) = log_stdio(&log)?;
                Command::new(&exe)
                    .arg(format!("--config.file={}", conf.display()))
                    .arg(format!("--storage.path={}", storage.display()))
                    .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                    .arg("--cluster.listen-address=")
                    .stdin(Stdio::null())
                    .stdout(stdout)
                    .stderr(stderr)
                    .spawn()
                    .with_context(|| format!("spawning {}", exe.display()))
            },
            &mut alertmanager_ready,
        )?;
        tracing::debug!(port, dir = %dir.path().display(), "alertmanager started");
        Ok(Alertmanager {
            _process: process,
            port,
            dir,
        })
    }

    /// Base URL, e.g. `http://127.0.0.1:9093`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("alertmanager.log")
    }
}
