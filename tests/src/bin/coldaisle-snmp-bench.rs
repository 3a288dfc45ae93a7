//! SNMP polling benchmark against real net-snmp snmpd on loopback: points/s, per-request
//! latency (p50/p99, hdrhistogram) and the agent's CPU time per 1,000 points for v2c GET,
//! GETBULK walk and v3 authPriv (SHA-256/AES) GET, next to `snmpbulkwalk` doing the same walk in
//! the same run.
//!
//! ```text
//! cargo run --release -p coldaisle-testkit --bin coldaisle-snmp-bench -- [POINTS] [SECONDS]
//! ```
//!
//! `POINTS` integer objects (default 200) are served by snmpd's native `override` handler (no
//! pass_persist script in the path, so snmpd's own speed is the ceiling) and polled for
//! `SECONDS` (default 5) per case.

use anyhow::{ensure, Context, Result};
use coldaisle_agent::snmp::poll::SnmpPoller;
use coldaisle_agent::snmp::session::{SnmpClient, Target};
use coldaisle_agent::snmp::walk::walk;
use coldaisle_config::AgentConfig;
use coldaisle_testkit::peers::{Snmpd, SnmpdOptions};
use hdrhistogram::Histogram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Subtree of the benchmark objects (outside the pass_persist subtree).
const BASE: &str = "1.3.6.1.4.1.99999.1";

/// User and system CPU of this process (`self`) or of its waited-for children, in seconds.
fn cpu_seconds(children: bool) -> Result<f64> {
    cpu_of("self", children)
}

/// User and system CPU of process `pid` (or `self`), or of its waited-for children, in seconds.
fn cpu_of(pid: &str, children: bool) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields after the command: state is index 0, so utime (14) is 11, cutime (16) is 13.
    let at = if children { 13 } else { 11 };
    let ticks: f64 = fields
        .get(at)
        .zip(fields.get(at + 1))
        .map(|(u, s)| u.parse::<f64>().unwrap_or(0.0) + s.parse::<f64>().unwrap_or(0.0))
        .context("parsing /proc/self/stat")?;
    Ok(ticks / 100.0)
}

fn config(address: &str, snmp: &str, points: usize) -> Result<AgentConfig> {
    let mut text = format!(
        "agent_id = \"bench\"\nsite = \"lab\"\nstate_dir = \"/tmp/unused\"\n[mqtt]\nhost = \"h\"\n\
         [[devices]]\nid = \"dev\"\nprotocol = \"snmp\"\naddress = \"{address}\"\nzone = \"Z1\"\n\
         poll_interval = \"10s\"\ntimeout = \"5s\"\n[devices.snmp]\n{snmp}\n"
    );
    for i in 1..=points {
        text.push_str(&format!(
            "[[devices.points]]\nsensor = \"p{i}\"\nkind = \"temperature\"\noid = \"{BASE}.{i}\"\n"
        ));
    }
    AgentConfig::from_str(&text, Path::new("bench.toml")).context("bench config")
}

/// One result row.
struct Row {
    label: String,
    requests_per_round: f64,
    points_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_ms_per_1000: f64,
    /// Share of one core snmpd was busy during the case: the share of its ceiling used.
    snmpd_busy_pct: f64,
}

fn print(row: &Row) {
    println!(
        "| {} | {:.1} | {:.0} | {:.3} | {:.3} | {:.2} | {:.0} % |",
        row.label,
        row.requests_per_round,
        row.points_per_s,
        row.p50_ms,
        row.p99_ms,
        row.cpu_ms_per_1000,
        row.snmpd_busy_pct
    );
}

/// Accumulates one case: points, requests, per-request latency and CPU time.
struct Meter {
    hist: Histogram<u64>,
    points: usize,
    requests: u64,
    rounds: u64,
    cpu0: f64,
    snmpd: String,
    snmpd_cpu0: f64,
    started: Instant,
}

impl Meter {
    fn start(snmpd_pid: u32) -> Result<Meter> {
        let snmpd = snmpd_pid.to_string();
        Ok(Meter {
            snmpd_cpu0: cpu_of(&snmpd, false)?,
            snmpd,
            hist: Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).context("histogram")?,
            points: 0,
            requests: 0,
            rounds: 0,
            cpu0: cpu_seconds(false)?,
            started: Instant::now(),
        })
    }

    /// One round read `points` with `requests` requests in `took`.
    fn record(&mut self, points: usize, requests: u64, took: Duration) -> Result<()> {
        let per_request = (took.as_micros() as u64 / requests.max(1)).max(1);
        self.hist
            .record_n(per_request, requests.max(1))
            .context("record")?;
        self.points += points;
        self.requests += requests;
        self.rounds += 1;
        Ok(())
    }

    fn finish(self, label: &str) -> Result<Row> {
        let elapsed = self.started.elapsed().as_secs_f64();
        let cpu = cpu_seconds(false)? - self.cpu0;
        let snmpd_cpu = cpu_of(&self.snmpd, false)? - self.snmpd_cpu0;
        Ok(Row {
            snmpd_busy_pct: snmpd_cpu * 100.0 / elapsed,
            label: label.to_string(),
            requests_per_round: self.requests as f64 / self.rounds.max(1) as f64,
            points_per_s: self.points as f64 / elapsed,
            p50_ms: self.hist.value_at_quantile(0.5) as f64 / 1000.0,
            p99_ms: self.hist.value_at_quantile(0.99) as f64 / 1000.0,
            cpu_ms_per_1000: cpu * 1000.0 / (self.points as f64 / 1000.0),
        })
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let points: usize = args
        .next()
        .map_or(Ok(200), |a| a.parse())
        .context("POINTS")?;
    let seconds: u64 = args
        .next()
        .map_or(Ok(5), |a| a.parse())
        .context("SECONDS")?;
    let budget = Duration::from_secs(seconds);
    let mut options = SnmpdOptions {
        v3_user: Some(("bench".into(), "authpass123".into(), "privpass123".into())),
        ..SnmpdOptions::default()
    };
    for i in 1..=points {
        options
            .extra_conf
            .push(format!("override .{BASE}.{i} integer {}", 200 + i));
    }
    let snmpd = Snmpd::start(options)?;
    let address = snmpd.addr().to_string();
    println!("{points} points, {seconds} s per case, snmpd on {address}");
    println!("| case | requests/round | points/s | p50 ms/request | p99 ms/request | CPU ms per 1,000 points | snmpd busy |");
    println!("|---|---|---|---|---|---|---|");

    let v3 = "version = \"3\"\nuser = \"bench\"\nauth_protocol = \"SHA-256\"\nauth_passphrase = \"authpass123\"\npriv_protocol = \"AES\"\npriv_passphrase = \"privpass123\"\nmax_oids_per_request = 50\n";
    for (label, snmp) in [
        (
            "v2c GET, 16 OIDs/request",
            "max_oids_per_request = 16\n".to_string(),
        ),
        (
            "v2c GET, 50 OIDs/request",
            "max_oids_per_request = 50\n".to_string(),
        ),
        ("v3 authPriv GET, 50 OIDs/request", v3.to_string()),
        (
            "v2c GET, 25 OIDs/request, 4 concurrent",
            "max_oids_per_request = 25\nmax_concurrent_requests = 4\n".to_string(),
        ),
    ] {
        let config = config(&address, &snmp, points)?;
        let mut poller = SnmpPoller::new(&config.devices[0])?;
        let first = poller.poll().await?;
        ensure!(first.iter().all(Result::is_ok), "{label}: {first:?}");
        let mut meter = Meter::start(snmpd.pid())?;
        while meter.started.elapsed() < budget {
            let (before, t) = (poller.requests_sent(), Instant::now());
            let readings = poller.poll().await?;
            ensure!(readings.iter().all(Result::is_ok), "{label}: {readings:?}");
            meter.record(readings.len(), poller.requests_sent() - before, t.elapsed())?;
        }
        let row = meter.finish(label)?;
        print(&row);
    }

    let root: Vec<u64> = BASE.split('.').map(str::parse).collect::<Result<_, _>>()?;
    for (label, snmp) in [
        (
            "v2c GETBULK walk, max-repetitions 50",
            "max_repetitions = 50\n".to_string(),
        ),
        (
            "v3 authPriv GETBULK walk, max-repetitions 50",
            format!("{v3}max_repetitions = 50\n"),
        ),
    ] {
        let config = config(&address, &snmp, points)?;
        let device = &config.devices[0];
        let mut client = SnmpClient::new(Target {
            address: device.address.clone(),
            community: device.community.clone(),
            settings: device.snmp.clone(),
        });
        ensure!(
            walk(&mut client, &root).await?.len() == points,
            "{label}: walk size"
        );
        let mut meter = Meter::start(snmpd.pid())?;
        while meter.started.elapsed() < budget {
            let (before, t) = (client.requests_sent(), Instant::now());
            let rows = walk(&mut client, &root).await?;
            ensure!(
                rows.len() == points,
                "{label}: walk returned {} rows",
                rows.len()
            );
            meter.record(rows.len(), client.requests_sent() - before, t.elapsed())?;
        }
        let row = meter.finish(label)?;
        print(&row);
    }

    // net-snmp's snmpbulkwalk, same walk, as a child process per round (its CPU includes
    // process start-up, which is how operators and scripts run it).
    let cpu0 = cpu_seconds(true)?;
    let snmpd_cpu0 = cpu_of(&snmpd.pid().to_string(), false)?;
    let started = Instant::now();
    let mut rounds = 0u64;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).context("histogram")?;
    while started.elapsed() < budget {
        let t = Instant::now();
        let out = Command::new("snmpbulkwalk")
            .args([
                "-v2c", "-c", "public", "-Cr50", "-On", "-m", "", &address, BASE,
            ])
            .output()
            .context("running snmpbulkwalk (Debian package snmp)")?;
        ensure!(out.status.success(), "snmpbulkwalk failed");
        let lines = out.stdout.iter().filter(|b| **b == b'\n').count();
        ensure!(lines == points, "snmpbulkwalk printed {lines} lines");
        hist.record(t.elapsed().as_micros() as u64)
            .context("record")?;
        rounds += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(true)? - cpu0;
    let snmpd_cpu = cpu_of(&snmpd.pid().to_string(), false)? - snmpd_cpu0;
    let total = rounds as f64 * points as f64;
    println!(
        "| snmpbulkwalk -Cr50 (process per walk) | {:.1} | {:.0} | {:.3} (walk) | {:.3} (walk) | {:.2} | {:.0} % |",
        (points as f64 / 50.0).ceil() + 1.0,
        total / elapsed,
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        cpu * 1000.0 / (total / 1000.0),
        snmpd_cpu * 100.0 / elapsed
    );
    snmp_exporter(&snmpd, points, budget)
}

/// Prometheus `snmp_exporter` (Debian package prometheus-snmp-exporter) walking the same
/// table with max-repetitions 50, scraped flat out over HTTP; its CPU from `/proc/PID/stat`.
/// Skipped with a message when the package is not installed (a benchmark, not a test).
fn snmp_exporter(snmpd: &Snmpd, points: usize, budget: Duration) -> Result<()> {
    let exe = "/usr/bin/prometheus-snmp-exporter";
    if !Path::new(exe).exists() {
        println!("(snmp_exporter not measured: apt-get install prometheus-snmp-exporter)");
        return Ok(());
    }
    let dir = tempfile::tempdir().context("temp dir")?;
    let config = dir.path().join("snmp.yml");
    std::fs::write(
        &config,
        format!(
            "bench:\n  version: 2\n  auth:\n    community: {}\n  max_repetitions: 50\n  \
             walk:\n  - {BASE}\n  metrics:\n  - name: benchValue\n    oid: {BASE}\n    \
             type: gauge\n    indexes:\n    - labelname: benchIndex\n      type: gauge\n",
            snmpd.community()
        ),
    )
    .context("writing snmp.yml")?;
    let port = coldaisle_testkit::procs::free_port()?;
    let mut child = Command::new(exe)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting prometheus-snmp-exporter")?;
    let url = format!(
        "http://127.0.0.1:{port}/snmp?target={}&module=bench",
        snmpd.addr()
    );
    let scrape = || -> Result<usize> {
        let mut response = ureq::get(&url).call().context("scraping snmp_exporter")?;
        let body = response.body_mut().read_to_string()?;
        Ok(body
            .lines()
            .filter(|l| l.starts_with("benchValue{"))
            .count())
    };
    let up = Instant::now();
    let result = (|| -> Result<()> {
        while scrape().map_or(true, |n| n != points) {
            ensure!(
                up.elapsed() < Duration::from_secs(20),
                "snmp_exporter did not come up"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let pid = child.id().to_string();
        let (cpu0, snmpd_cpu0) = (
            cpu_of(&pid, false)?,
            cpu_of(&snmpd.pid().to_string(), false)?,
        );
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).context("histogram")?;
        let (started, mut total) = (Instant::now(), 0usize);
        while started.elapsed() < budget {
            let t = Instant::now();
            let n = scrape()?;
            ensure!(n == points, "snmp_exporter returned {n} points");
            hist.record(t.elapsed().as_micros() as u64)
                .context("record")?;
            total += n;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = cpu_of(&pid, false)? - cpu0;
        let snmpd_cpu = cpu_of(&snmpd.pid().to_string(), false)? - snmpd_cpu0;
        println!(
            "| snmp_exporter 0.21, max-repetitions 50 (HTTP scrape) | – | {:.0} | {:.3} (scrape) | {:.3} (scrape) | {:.2} | {:.0} % |",
            total as f64 / elapsed,
            hist.value_at_quantile(0.5) as f64 / 1000.0,
            hist.value_at_quantile(0.99) as f64 / 1000.0,
            cpu * 1000.0 / (total as f64 / 1000.0),
            snmpd_cpu * 100.0 / elapsed
        );
        Ok(())
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}
