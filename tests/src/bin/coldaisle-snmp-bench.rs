//! SNMP polling benchmark against real net-snmp snmpd on loopback: points/s, per-request
//! latency (p50/p99, hdrhistogram) and the agent's CPU time per 1,000 points for v2c GET,
//! GETBULK walk and v3 authPriv (SHA-256/AES) GET, next to `snmpbulkwalk` and Prometheus
//! `snmp_exporter` doing the same walk in the same run.
//!
//! ```text
//! cargo run --release -p coldaisle-testkit --bin coldaisle-snmp-bench -- [POINTS] [SECONDS] [CASE]
//! ```
//!
//! `POINTS` integer objects (default 200) are served by snmpd's native `override` handler (no
//! pass_persist script in the path, so snmpd's own speed is the ceiling) and polled for
//! `SECONDS` (default 5) per case; `CASE` runs only the cases whose label contains it (e.g.
//! `"devices at once"`). The agent's code runs on the daemon's runtime (multi-thread, one
//! worker per core); `COLDAISLE_BENCH_RUNTIME=current` runs it on a current-thread runtime.
//!
//! "snmpd busy" is snmpd's time on a core ÷ wall time (`/proc/PID/schedstat`): the share of
//! its ceiling (one core, snmpd is single-threaded) the client used. "snmpd waiting for a
//! core" is the time snmpd was runnable but had no core (client and snmpd share the machine's
//! cores; other processes too): when it is not near 0 the run was disturbed.
//! The "N devices at once" cases poll N devices (each its own [`SnmpPoller`], spawned as its
//! own task like the daemon's device tasks) against the one snmpd, the shape of an agent with
//! several devices behind one SNMP agent; every other case polls one device flat out.

use anyhow::{ensure, Context, Result};
use coldaisle_agent::snmp::poll::SnmpPoller;
use coldaisle_agent::snmp::session::{SnmpClient, Target};
use coldaisle_agent::snmp::walk::walk;
use coldaisle_config::AgentConfig;
use coldaisle_testkit::peers::{Snmpd, SnmpdOptions};
use coldaisle_testkit::snmp_exporter::SnmpExporter;
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

/// snmpd's time on a core and time runnable but waiting for one (`/proc/PID/schedstat`,
/// nanoseconds), since `start`.
struct SnmpdClock {
    pid: u32,
    run0: u64,
    wait0: u64,
}

impl SnmpdClock {
    fn read(pid: u32) -> Result<(u64, u64)> {
        let path = format!("/proc/{pid}/schedstat");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let mut fields = text.split_whitespace().map(str::parse::<u64>);
        match (fields.next(), fields.next()) {
            (Some(Ok(run)), Some(Ok(wait))) => Ok((run, wait)),
            _ => anyhow::bail!("parsing {path}: {text}"),
        }
    }

    fn start(pid: u32) -> Result<SnmpdClock> {
        let (run0, wait0) = SnmpdClock::read(pid)?;
        Ok(SnmpdClock { pid, run0, wait0 })
    }

    /// (busy %, waiting for a core %) of `elapsed` seconds.
    fn shares(&self, elapsed: f64) -> Result<(f64, f64)> {
        let (run, wait) = SnmpdClock::read(self.pid)?;
        let pct = |ns: u64| ns as f64 / 1e9 * 100.0 / elapsed;
        Ok((pct(run - self.run0), pct(wait - self.wait0)))
    }
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
    /// Share of the case snmpd was runnable but waiting for a core (taken by the client or
    /// other processes): ceiling lost to CPU contention, not to a lack of requests.
    snmpd_waiting_pct: f64,
}

fn print(row: &Row) {
    println!(
        "| {} | {:.1} | {:.0} | {:.3} | {:.3} | {:.2} | {:.0} % | {:.0} % |",
        row.label,
        row.requests_per_round,
        row.points_per_s,
        row.p50_ms,
        row.p99_ms,
        row.cpu_ms_per_1000,
        row.snmpd_busy_pct,
        row.snmpd_waiting_pct
    );
}

/// Accumulates one case: points, requests, per-request latency and CPU time.
struct Meter {
    hist: Histogram<u64>,
    points: usize,
    requests: u64,
    rounds: u64,
    cpu0: f64,
    snmpd: SnmpdClock,
    started: Instant,
}

impl Meter {
    fn start(snmpd_pid: u32) -> Result<Meter> {
        Ok(Meter {
            snmpd: SnmpdClock::start(snmpd_pid)?,
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
        let (snmpd_busy_pct, snmpd_waiting_pct) = self.snmpd.shares(elapsed)?;
        Ok(Row {
            snmpd_busy_pct,
            snmpd_waiting_pct,
            label: label.to_string(),
            requests_per_round: self.requests as f64 / self.rounds.max(1) as f64,
            points_per_s: self.points as f64 / elapsed,
            p50_ms: self.hist.value_at_quantile(0.5) as f64 / 1000.0,
            p99_ms: self.hist.value_at_quantile(0.99) as f64 / 1000.0,
            cpu_ms_per_1000: cpu * 1000.0 / (self.points as f64 / 1000.0),
        })
    }
}

/// Polls flat out with `pollers` pollers at once (each like one device task of the daemon,
/// spawned on the runtime) until `budget` is spent; every poll is recorded in `meter`.
async fn poll_flat_out(
    pollers: Vec<SnmpPoller>,
    label: &str,
    budget: Duration,
    meter: &mut Meter,
) -> Result<()> {
    let started = meter.started;
    let mut tasks = tokio::task::JoinSet::new();
    for mut poller in pollers {
        let label = label.to_string();
        tasks.spawn(async move {
            let mut rounds: Vec<(usize, u64, Duration)> = Vec::new();
            while started.elapsed() < budget {
                let (before, t) = (poller.requests_sent(), Instant::now());
                let readings = poller.poll().await?;
                ensure!(readings.iter().all(Result::is_ok), "{label}: {readings:?}");
                rounds.push((readings.len(), poller.requests_sent() - before, t.elapsed()));
            }
            Ok::<_, anyhow::Error>(rounds)
        });
    }
    while let Some(done) = tasks.join_next().await {
        for (points, requests, took) in done.context("poll task")?? {
            meter.record(points, requests, took)?;
        }
    }
    Ok(())
}

/// The daemon's runtime (`tokio::runtime::Runtime::new()`, one worker per core, see
/// `agent/src/service.rs`), or a current-thread one with `COLDAISLE_BENCH_RUNTIME=current`.
fn main() -> Result<()> {
    let current = std::env::var("COLDAISLE_BENCH_RUNTIME").as_deref() == Ok("current");
    let runtime = if current {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Runtime::new()
    }
    .context("tokio runtime")?;
    println!(
        "runtime: {}",
        if current {
            "current-thread"
        } else {
            "multi-thread (the daemon's)"
        }
    );
    // On a worker like the daemon's device tasks (block_on would run it on this thread).
    runtime.block_on(async { tokio::spawn(bench()).await.context("bench task")? })
}

async fn bench() -> Result<()> {
    let mut args = std::env::args().skip(1).collect::<Vec<_>>().into_iter();
    let points: usize = args
        .next()
        .map_or(Ok(200), |a| a.parse())
        .context("POINTS")?;
    let seconds: u64 = args
        .next()
        .map_or(Ok(5), |a| a.parse())
        .context("SECONDS")?;
    let only = args.next().unwrap_or_default();
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
    println!("| case | requests/round | points/s | p50 ms/request | p99 ms/request | CPU ms per 1,000 points | snmpd busy | snmpd waiting for a core |");
    println!("|---|---|---|---|---|---|---|---|");

    let v3 = "version = \"3\"\nuser = \"bench\"\nauth_protocol = \"SHA-256\"\nauth_passphrase = \"authpass123\"\npriv_protocol = \"AES\"\npriv_passphrase = \"privpass123\"\nmax_oids_per_request = 50\n";
    for (label, snmp, pollers) in [
        (
            "v2c GET, 16 OIDs/request",
            "max_oids_per_request = 16\n".to_string(),
            1,
        ),
        (
            "v2c GET, 50 OIDs/request",
            "max_oids_per_request = 50\n".to_string(),
            1,
        ),
        ("v3 authPriv GET, 50 OIDs/request", v3.to_string(), 1),
        (
            "v2c GET, 25 OIDs/request, 4 concurrent",
            "max_oids_per_request = 25\nmax_concurrent_requests = 4\n".to_string(),
            1,
        ),
        (
            "v2c GET, 25 OIDs/request, 8 concurrent",
            "max_oids_per_request = 25\nmax_concurrent_requests = 8\n".to_string(),
            1,
        ),
        (
            "v2c GET, 50 OIDs/request, 4 concurrent",
            "max_oids_per_request = 50\nmax_concurrent_requests = 4\n".to_string(),
            1,
        ),
        (
            "v2c GET, 50 OIDs/request, 2 devices at once",
            "max_oids_per_request = 50\n".to_string(),
            2,
        ),
        (
            "v2c GET, 50 OIDs/request, 4 devices at once",
            "max_oids_per_request = 50\n".to_string(),
            4,
        ),
        (
            "v2c GET, 25 OIDs/request, 4 concurrent, 2 devices at once",
            "max_oids_per_request = 25\nmax_concurrent_requests = 4\n".to_string(),
            2,
        ),
    ] {
        if !label.contains(only.as_str()) {
            continue;
        }
        let config = config(&address, &snmp, points)?;
        let mut all = Vec::new();
        for _ in 0..pollers {
            let mut poller = SnmpPoller::new(&config.devices[0])?;
            let first = poller.poll().await?;
            ensure!(first.iter().all(Result::is_ok), "{label}: {first:?}");
            all.push(poller);
        }
        let mut meter = Meter::start(snmpd.pid())?;
        poll_flat_out(all, label, budget, &mut meter).await?;
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
        if !label.contains(only.as_str()) {
            continue;
        }
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
    if !"snmpbulkwalk snmp_exporter".contains(only.as_str()) {
        return Ok(());
    }
    let cpu0 = cpu_seconds(true)?;
    let clock = SnmpdClock::start(snmpd.pid())?;
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
    let (busy, waiting) = clock.shares(elapsed)?;
    let total = rounds as f64 * points as f64;
    println!(
        "| snmpbulkwalk -Cr50 (process per walk) | {:.1} | {:.0} | {:.3} (walk) | {:.3} (walk) | {:.2} | {busy:.0} % | {waiting:.0} % |",
        (points as f64 / 50.0).ceil() + 1.0,
        total / elapsed,
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        cpu * 1000.0 / (total / 1000.0),
    );
    snmp_exporter(&snmpd, points, budget)
}

/// Prometheus `snmp_exporter` (Debian package prometheus-snmp-exporter) walking the same
/// table with max-repetitions 50, scraped flat out over HTTP; its CPU from `/proc/PID/stat`.
/// Skipped with a message when the package is not installed (a benchmark, not a test).
fn snmp_exporter(snmpd: &Snmpd, points: usize, budget: Duration) -> Result<()> {
    let Some(exporter) = SnmpExporter::start(snmpd, BASE, Some(50), points)? else {
        return Ok(());
    };
    let pid = exporter.pid().to_string();
    let (cpu0, clock) = (cpu_of(&pid, false)?, SnmpdClock::start(snmpd.pid())?);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).context("histogram")?;
    let (started, mut total) = (Instant::now(), 0usize);
    while started.elapsed() < budget {
        let t = Instant::now();
        let n = exporter.scrape()?;
        ensure!(n == points, "snmp_exporter returned {n} points");
        hist.record(t.elapsed().as_micros() as u64)
            .context("record")?;
        total += n;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_of(&pid, false)? - cpu0;
    let (busy, waiting) = clock.shares(elapsed)?;
    println!(
        "| snmp_exporter 0.21, max-repetitions 50 (HTTP scrape) | – | {:.0} | {:.3} (scrape) | {:.3} (scrape) | {:.2} | {busy:.0} % | {waiting:.0} % |",
        total as f64 / elapsed,
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        cpu * 1000.0 / (total as f64 / 1000.0),
    );
    Ok(())
}
