//! Helpers of the end-to-end tests (shared with the chaos runner: `coldaisle_testkit::procs`).

pub use coldaisle_testkit::procs::*;

use std::path::{Path, PathBuf};

/// One of our daemons set up in an e2e test's directory: the config it runs on and the log it
/// appends to, kept so that the test can start it again on the same files (a restart; the log
/// then holds both runs).
pub struct DaemonFiles {
    /// The binary, e.g. `coldaisle-collector`.
    binary: &'static str,
    /// `dir/{name}.toml`.
    config: PathBuf,
    /// `dir/{name}.log`.
    log: PathBuf,
}

impl DaemonFiles {
    /// Writes `toml` to `dir/{name}.toml` for `binary`, which will log to `dir/{name}.log`.
    pub fn write(dir: &Path, binary: &'static str, name: &str, toml: &str) -> anyhow::Result<Self> {
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, toml)?;
        Ok(DaemonFiles {
            binary,
            config,
            log: dir.join(format!("{name}.log")),
        })
    }

    /// Starts the daemon on these files (returns once the process started, not when it serves).
    pub fn start(&self) -> anyhow::Result<Daemon> {
        Daemon::start(self.binary, &self.config, &self.log)
    }
}

/// Writes `toml` to `dir/{name}.toml` and starts `binary` on it, logging to `dir/{name}.log`:
/// [`DaemonFiles`] for a daemon the test starts once.
pub fn start_daemon(
    dir: &Path,
    binary: &'static str,
    name: &str,
    toml: &str,
) -> anyhow::Result<Daemon> {
    DaemonFiles::write(dir, binary, name, toml)?.start()
}

/// Waits up to 20 s until the collector API at `api` answers `/healthz` (which needs no token).
pub fn wait_until_healthy(api: &str) -> anyhow::Result<()> {
    let url = format!("{api}/healthz");
    wait_for("collector API", std::time::Duration::from_secs(20), || {
        ureq::get(&url).call().ok().map(|_| ())
    })
}

/// The head of an e2e collector's config: id `id`, state in `dir/collector-state`, the broker
/// on port `mqtt` as user `collector` (password `collector-pass`), the API on port `http` (with
/// `tokens_file` when given) and incidents quiet after 1 s. Other tables follow it.
pub fn collector_head(
    id: &str,
    dir: &Path,
    mqtt: u16,
    http: u16,
    tokens_file: Option<&Path>,
) -> String {
    let tokens = tokens_file
        .map(|t| format!("tokens_file = \"{}\"\n", t.display()))
        .unwrap_or_default();
    format!(
        r#"collector_id = "{id}"
state_dir = "{state}"
[mqtt]
host = "127.0.0.1"
port = {mqtt}
username = "collector"
password = "collector-pass"
[http]
listen = "127.0.0.1:{http}"
{tokens}[incidents]
quiet_period = "1s"
"#,
        state = dir.join("collector-state").display(),
    )
}

/// Starts a collector named `id` on the broker at `broker_port` (user `collector`, password
/// `collector-pass`), its API on a free port and incidents quiet after 1 s; returns the daemon
/// and the API's base URL once the API answers.
pub fn start_collector(
    dir: &std::path::Path,
    id: &str,
    broker_port: u16,
) -> anyhow::Result<(Daemon, String)> {
    let http_port = free_port()?;
    let toml = collector_head(id, dir, broker_port, http_port, None);
    let daemon = start_daemon(dir, "coldaisle-collector", "collector", &toml)?;
    let api = format!("http://127.0.0.1:{http_port}");
    // Callers read the API right away: return once it answers, not when the process started.
    wait_for(
        "the collector API",
        std::time::Duration::from_secs(30),
        || get_json(&format!("{api}/api/v1/stats")).ok(),
    )
    .map_err(|e| anyhow::anyhow!("{e:#}\ncollector log:\n{}", daemon.log_tail()))?;
    Ok((daemon, api))
}

/// The ids of zone Z1's incidents at the collector API `api`, sorted (`None` while it does
/// not answer).
pub fn z1_incident_ids(api: &str) -> Option<Vec<String>> {
    let incidents = get_json(&format!("{api}/api/v1/incidents?zone=Z1")).ok()?;
    let mut ids: Vec<String> = incidents
        .as_array()?
        .iter()
        .filter_map(|i| i["id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    Some(ids)
}

/// The `acked_upto` of agent `agent` at the collector API `api`: every record of the agent up
/// to it is stored (`None` while the API does not answer or knows no such agent).
pub fn acked_upto(api: &str, agent: &str) -> Option<u64> {
    get_json(&format!("{api}/api/v1/agents")).ok()?[agent]["acked_upto"].as_u64()
}

/// Publishes `batch` on its events topic (`coldaisle/v1/{site}/{agent}/events`) of the broker on
/// `port` with QoS 1 as `user`.
pub fn publish_batch(
    port: u16,
    user: (&str, &str),
    batch: &coldaisle_core::wire::Batch,
) -> anyhow::Result<()> {
    let topic = format!("coldaisle/v1/{}/{}/events", batch.site, batch.agent);
    publish_on(port, user, &topic, &serde_json::to_string(batch)?)
}

/// Publishes `payload` on `topic` of the broker on `port` with QoS 1 as `user` (`mosquitto_pub`).
pub fn publish_on(
    port: u16,
    (user, pass): (&str, &str),
    topic: &str,
    payload: &str,
) -> anyhow::Result<()> {
    let status = std::process::Command::new(coldaisle_testkit::peers::find_executable(
        "mosquitto_pub",
        "mosquitto-clients",
    )?)
    .args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-u",
        user,
        "-P",
        pass,
    ])
    .args(["-q", "1", "-t", topic, "-m", payload])
    .status()?;
    if !status.success() {
        anyhow::bail!("mosquitto_pub on {topic} failed: {status}");
    }
    Ok(())
}

/// A UDP port free right now (bound, noted, released: the daemon binds it right after).
pub fn free_udp_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs a net-snmp command line (`snmptrap …`, words split at spaces) to completion; true when
/// it exited 0. A failing command's output is printed, so an unexpected failure says why.
pub fn net_snmp(line: &str) -> anyhow::Result<bool> {
    use anyhow::Context as _;
    let args: Vec<&str> = line.split_whitespace().collect();
    let (exe, rest) = args.split_first().context("empty command")?;
    let out = std::process::Command::new(exe)
        .args(rest)
        .output()
        .with_context(|| format!("running {exe} (net-snmp installed?)"))?;
    if !out.status.success() {
        eprintln!(
            "{line}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.status.success())
}

/// [`net_snmp`] off the runtime, for tests whose listener must keep answering (informs) on
/// the same runtime while the command waits.
pub async fn net_snmp_async(line: String) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || net_snmp(&line)).await?
}

/// The rack inlet temperature OID the small e2e sites serve from snmpd (APC rPDU2 probe
/// temperature, tenths of °C).
pub const INLET_TEMP_OID: &str = "1.3.6.1.4.1.318.1.1.26.10.2.2.1.8.1";

/// The part of a PostgreSQL collector's config the PostgreSQL e2e tests share: the broker on
/// port `mqtt` as `(user, password)`, the API on `http`, incidents quiet after 1 s, and the
/// store in database `db` of `pg`. Top-level keys go before it, other tables after it.
pub fn pg_collector_tables(
    mqtt: u16,
    (user, password): (&str, &str),
    http: u16,
    pg: &coldaisle_testkit::postgres::Postgres,
    db: &str,
) -> String {
    format!(
        r#"[mqtt]
host = "127.0.0.1"
port = {mqtt}
username = "{user}"
password = "{password}"
[http]
listen = "127.0.0.1:{http}"
[incidents]
quiet_period = "1s"
[store]
kind = "postgres"
url = "{url}"
password_file = "{password_file}"
"#,
        url = pg.url(db),
        password_file = pg.password_file().display(),
    )
}

/// The config of agent `id` of site `ams1` on broker port `mqtt` (user `u`), state in
/// `dir/agent-state`, polling [`one_inlet_pdu`] with a 27 °C threshold held 500 ms and fast
/// summaries and resends: the agent of the PostgreSQL e2e tests.
pub fn threshold_agent(id: &str, dir: &std::path::Path, mqtt: u16, snmp: u16) -> String {
    format!(
        r#"agent_id = "{id}"
site = "ams1"
state_dir = "{state}"
summary_interval = "300ms"
resend_after = "1s"
[mqtt]
host = "127.0.0.1"
port = {mqtt}
username = "u"
password = "p"
[detection]
flap_window = "0s"
{devices}[devices.points.threshold]
high = 27.0
min_duration = "500ms"
"#,
        devices = one_inlet_pdu(snmp),
        state = dir.join("agent-state").display()
    )
}

/// The agent's `[[devices]]` of the smallest e2e site: SNMP PDU `pdu` on `127.0.0.1:{snmp}`
/// in zone Z1, polled every 100 ms, with one inlet sensor `r1-inlet` (rack R1,
/// [`INLET_TEMP_OID`], tenths of °C). Point tables (e.g. a threshold) may follow it.
pub fn one_inlet_pdu(snmp: u16) -> String {
    format!(
        r#"[[devices]]
id = "pdu"
protocol = "snmp"
address = "127.0.0.1:{snmp}"
zone = "Z1"
poll_interval = "100ms"
timeout = "100ms"
[[devices.points]]
sensor = "r1-inlet"
kind = "inlet_temp"
rack = "R1"
oid = "{INLET_TEMP_OID}"
scale = 0.1
"#
    )
}
