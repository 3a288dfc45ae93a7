//! Peers side by side (`coldaisle-fleet-bench peers`): our daemon, Prometheus
//! `snmp_exporter` and collectd's snmp plugin, one after the other in one run, polling the same
//! objects of the same net-snmp `snmpd` for the same number of targets at the same interval.
//!
//! Per case: points read per CPU second of the poller's process (all its threads, from
//! `/proc/PID/stat`), its peak RSS (VmHWM), and snmpd's own cost (its time on a core,
//! `/proc/PID/schedstat`, per 1,000 points), and the requests snmpd received (its own
//! snmpInPkts counter, read with `snmpget` before and after), which shows every poller really
//! polled at the interval. Our daemon costs so little at the smallest size that a 15 s window
//! holds only a few 10 ms ticks of its CPU: its window is extended until it used
//! [`Load::min_cpu`] (at most [`MAX_WINDOW_FACTOR`] × the window). The targets are all the one snmpd (as many devices behind one
//! address), so snmpd's ceiling is shared by all of them.
//!
//! - `coldaisle-agent`: the real daemon (pipeline, outbox, MQTT to mosquitto and the real
//!   collector, see [`crate::stack`]), one device per target with one point per object, GET
//!   by OID; at the default `max_oids_per_request` ([`DEFAULT_MAX_OIDS`]) and, with
//!   `--compare-oids N`, once more at N.
//! - `snmp_exporter`: a module that walks the objects' column (`max_repetitions` left at its
//!   default, 25), one gauge per row, scraped by this bench for every target each interval,
//!   every scrape checked to hold all the points.
//! - collectd: the snmp plugin with one `Table true` data block over the same column, one
//!   `Host` per target with the interval; no write plugin (values go to collectd's cache,
//!   which the `unixsock` plugin's `LISTVAL` reads back at the end to check every value is
//!   fresh).

use crate::proc_stat;
use crate::stack::{self, Stack};
use anyhow::{bail, ensure, Context, Result};
use coldaisle_config::snmp::DEFAULT_MAX_OIDS;
use coldaisle_testkit::peers::{Snmpd, SnmpdOptions};
use coldaisle_testkit::snmp_exporter::SnmpExporter;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Column of the benchmark objects (outside the pass_persist subtree).
const BASE: &str = "1.3.6.1.4.1.99999.1";

/// What the run polls.
pub struct Load {
    /// Targets (devices), all the one snmpd.
    pub targets: usize,
    /// Objects per target.
    pub points: usize,
    /// Poll interval of every target.
    pub interval: Duration,
    /// Time from a poller's start to its measured window.
    pub warmup: Duration,
    /// The measured window (the shortest one).
    pub window: Duration,
    /// Our daemon's window is extended (up to [`MAX_WINDOW_FACTOR`] × `window`) until it has
    /// used this much CPU, so its figure is not a few 10 ms ticks at the smallest size.
    pub min_cpu: Duration,
    /// Our daemon also at this `max_oids_per_request` (None: only at the default).
    pub compare_oids: Option<usize>,
}

/// The longest window of our daemon, as a multiple of [`Load::window`].
pub const MAX_WINDOW_FACTOR: u32 = 4;

/// Figures of one poller.
struct Case {
    label: String,
    points: f64,
    cpu_s: f64,
    hwm_kib: u64,
    snmpd_s: f64,
    /// Requests snmpd received in the window (its snmpInPkts, less our two reads of it).
    requests: f64,
    elapsed: f64,
}

/// Prints the header of the rows [`run`] prints.
pub fn print_header() {
    println!("| targets × objects | poller | window s | points/s | snmpd requests/s | CPU s in window | points per CPU second | peak RSS MiB | snmpd ms per 1,000 points | snmpd busy |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
}

/// Runs every case and prints one Markdown row each (see [`print_header`]).
pub fn run(load: &Load) -> Result<()> {
    let mut options = SnmpdOptions::default();
    for i in 1..=load.points {
        options
            .extra_conf
            .push(format!("override .{BASE}.{i} integer {}", 200 + i % 50));
    }
    let snmpd = Snmpd::start(options)?;
    let cases = [
        ours(&snmpd, load, None)?,
        match load.compare_oids {
            Some(n) => ours(&snmpd, load, Some(n))?,
            None => None,
        },
        snmp_exporter(&snmpd, load)?,
        collectd(&snmpd, load)?,
    ];
    for case in cases.iter().flatten() {
        println!(
            "| {} × {} | {} | {:.0} | {:.0} | {:.0} | {:.2} | {:.0} | {:.1} | {:.3} | {:.1} % |",
            load.targets,
            load.points,
            case.label,
            case.elapsed,
            case.points / case.elapsed,
            case.requests / case.elapsed,
            case.cpu_s,
            case.points / case.cpu_s.max(0.01),
            case.hwm_kib as f64 / 1024.0,
            case.snmpd_s * 1e6 / case.points,
            case.snmpd_s / case.elapsed * 100.0
        );
    }
    Ok(())
}

/// Measures process `pid` over the window; `points` counts what it read in `elapsed`.
fn measure(
    label: String,
    pid: u32,
    snmpd: &Snmpd,
    load: &Load,
    mut during: impl FnMut(Instant) -> Result<f64>,
) -> Result<Case> {
    let packets0 = snmpd_in_packets(snmpd)?;
    let (cpu0, snmpd0) = (
        proc_stat::cpu_seconds(pid)?,
        proc_stat::run_seconds(snmpd.pid())?,
    );
    let started = Instant::now();
    let points = during(started + load.window)?;
    let elapsed = started.elapsed().as_secs_f64();
    let packets1 = snmpd_in_packets(snmpd)?;
    Ok(Case {
        requests: packets1.saturating_sub(packets0 + 1) as f64,
        label,
        points,
        cpu_s: proc_stat::cpu_seconds(pid)? - cpu0,
        hwm_kib: proc_stat::memory(pid)?.hwm_kib,
        snmpd_s: proc_stat::run_seconds(snmpd.pid())? - snmpd0,
        elapsed,
    })
}

/// snmpd's snmpInPkts (1.3.6.1.2.1.11.1.0), read with net-snmp's `snmpget` (one packet).
fn snmpd_in_packets(snmpd: &Snmpd) -> Result<u64> {
    let out = Command::new("snmpget")
        .args(["-v2c", "-c", snmpd.community(), "-On", "-Oqv", "-m", ""])
        .arg(snmpd.addr().to_string())
        .arg("1.3.6.1.2.1.11.1.0")
        .output()
        .context("running snmpget (Debian package snmp)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .with_context(|| format!("snmpInPkts from snmpget: {text:?}"))
}

/// Sleeps until `deadline`.
fn sleep_until(deadline: Instant) {
    std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
}

/// Our daemon; `max_oids` sets `max_oids_per_request` (None: the default).
fn ours(snmpd: &Snmpd, load: &Load, max_oids: Option<usize>) -> Result<Option<Case>> {
    let mut stack = Stack::start()?;
    let mut text = format!(
        "agent_id = \"{}\"\nsite = \"peers\"\nstate_dir = \"{}\"\n[mqtt]\nhost = \"127.0.0.1\"\n\
         port = {}\nusername = \"agent\"\npassword = \"agent-pass\"\n",
        stack::AGENT_ID,
        stack.dir().join("agent").display(),
        stack.mqtt_port()
    );
    let interval_ms = load.interval.as_millis();
    for t in 0..load.targets {
        let _ = write!(
            text,
            "\n[[devices]]\nid = \"t{t}\"\nprotocol = \"snmp\"\naddress = \"{}\"\nzone = \"Z1\"\n\
             community = \"{}\"\npoll_interval = \"{interval_ms}ms\"\ntimeout = \"{interval_ms}ms\"\n",
            snmpd.addr(),
            snmpd.community()
        );
        if let Some(n) = max_oids {
            let _ = write!(text, "[devices.snmp]\nmax_oids_per_request = {n}\n");
        }
        for i in 1..=load.points {
            let _ = write!(
                text,
                "[[devices.points]]\nsensor = \"t{t}-p{i}\"\nkind = \"temperature\"\n\
                 oid = \"{BASE}.{i}\"\nscale = 0.1\n"
            );
        }
    }
    let mut agent = stack.start_agent(&text, false)?;
    let pid = agent.pid().context("agent has no pid")?;
    std::thread::sleep(load.warmup);
    agent.check_alive()?;
    stack.check_alive()?;
    let label = match max_oids {
        None => format!("coldaisle-agent, {DEFAULT_MAX_OIDS} OIDs/GET (default)"),
        Some(n) => format!("coldaisle-agent, {n} OIDs/GET"),
    };
    let case = measure(label, pid, snmpd, load, |deadline| {
        let cpu0 = proc_stat::cpu_seconds(pid)?;
        let started = deadline.checked_sub(load.window).unwrap_or(deadline);
        sleep_until(deadline);
        // Longer until the CPU figure is more than a few ticks (or the longest window).
        let longest = started + load.window * MAX_WINDOW_FACTOR;
        while proc_stat::cpu_seconds(pid)? - cpu0 < load.min_cpu.as_secs_f64()
            && Instant::now() + load.interval <= longest
        {
            std::thread::sleep(load.interval);
        }
        // Every target polled once per interval (the fleet run checks this cadence from the
        // devices' side: polls seen = polls expected).
        Ok(
            (load.targets * load.points) as f64 * started.elapsed().as_secs_f64()
                / load.interval.as_secs_f64(),
        )
    })?;
    agent.check_alive()?;
    let log = agent.log();
    let warnings = stack::warnings(&log);
    ensure!(
        warnings.is_empty(),
        "the agent warned during the run: {}",
        warnings.first().copied().unwrap_or_default()
    );
    agent.terminate().context("stopping the agent")?;
    stack.stop()?;
    Ok(Some(case))
}

/// A peer process killed on drop.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `snmp_exporter` scraped for every target each interval; `None` when not installed.
fn snmp_exporter(snmpd: &Snmpd, load: &Load) -> Result<Option<Case>> {
    let Some(exporter) = SnmpExporter::start(snmpd, BASE, None, load.points)? else {
        return Ok(None);
    };
    let scrape = || exporter.scrape();
    let rounds = |until: Instant| -> Result<f64> {
        let mut points = 0usize;
        let mut next = Instant::now();
        while next < until {
            for _ in 0..load.targets {
                let n = scrape()?;
                ensure!(n == load.points, "snmp_exporter returned {n} points");
                points += n;
            }
            next += load.interval;
            sleep_until(next.min(until));
        }
        Ok(points as f64)
    };
    rounds(Instant::now() + load.warmup)?;
    let case = measure(
        "snmp_exporter 0.21, walk, max_repetitions 25 (default)".to_owned(),
        exporter.pid(),
        snmpd,
        load,
        rounds,
    )?;
    Ok(Some(case))
}

/// collectd's snmp plugin; `None` when not installed.
fn collectd(snmpd: &Snmpd, load: &Load) -> Result<Option<Case>> {
    let exe = "/usr/sbin/collectd";
    if !Path::new(exe).exists() {
        println!("(collectd not measured: apt-get install collectd-core)");
        return Ok(None);
    }
    let dir = tempfile::tempdir().context("temp dir")?;
    let socket = dir.path().join("collectd.sock");
    let log = dir.path().join("collectd.log");
    let interval = load.interval.as_secs_f64();
    let mut conf = format!(
        "Interval {interval}\nBaseDir \"{base}\"\nPIDFile \"{base}/collectd.pid\"\n\
         PluginDir \"/usr/lib/collectd\"\nTypesDB \"/usr/share/collectd/types.db\"\n\
         LoadPlugin logfile\n<Plugin logfile>\n  LogLevel \"info\"\n  File \"{log}\"\n</Plugin>\n\
         LoadPlugin unixsock\n<Plugin unixsock>\n  SocketFile \"{socket}\"\n</Plugin>\n\
         LoadPlugin snmp\n<Plugin snmp>\n  <Data \"bench\">\n    Type \"gauge\"\n    Table true\n\
         \x20   Values \"{BASE}\"\n  </Data>\n",
        base = dir.path().display(),
        log = log.display(),
        socket = socket.display()
    );
    for t in 0..load.targets {
        let _ = write!(
            conf,
            "  <Host \"t{t}\">\n    Address \"{}\"\n    Version 2\n    Community \"{}\"\n    \
             Collect \"bench\"\n    Interval {interval}\n  </Host>\n",
            snmpd.addr(),
            snmpd.community()
        );
    }
    conf.push_str("</Plugin>\n");
    let config = dir.path().join("collectd.conf");
    std::fs::write(&config, conf).context("writing collectd.conf")?;
    let peer = Peer(
        Command::new(exe)
            .arg("-f")
            .arg("-C")
            .arg(&config)
            // No MIB files to parse: every OID is numeric.
            .env("MIBS", "")
            .env("MIBDIRS", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting collectd")?,
    );
    std::thread::sleep(load.warmup);
    let fresh_before = fresh_values(&socket, load.interval * 2)?;
    let case = measure(
        "collectd 5.12 snmp plugin, table".to_owned(),
        peer.0.id(),
        snmpd,
        load,
        |deadline| {
            sleep_until(deadline);
            Ok(
                (load.targets * load.points) as f64 * load.window.as_secs_f64()
                    / load.interval.as_secs_f64(),
            )
        },
    )?;
    let fresh_after = fresh_values(&socket, load.interval * 2)?;
    let want = load.targets * load.points;
    if fresh_before != want || fresh_after != want {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        bail!(
            "collectd holds {fresh_before} then {fresh_after} fresh values, want {want}; its log:\n{}",
            text.lines().rev().take(20).collect::<Vec<_>>().join("\n")
        );
    }
    Ok(Some(case))
}

/// Values in collectd's cache updated within `age` (unixsock `LISTVAL`: `N Values found`,
/// then one `time identifier` line per value).
fn fresh_values(socket: &Path, age: Duration) -> Result<usize> {
    let mut stream = UnixStream::connect(socket)
        .with_context(|| format!("connecting to collectd at {}", socket.display()))?;
    stream.write_all(b"LISTVAL\n").context("LISTVAL")?;
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    reader.read_line(&mut first).context("LISTVAL answer")?;
    let count: usize = first
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("LISTVAL answered {first:?}"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("clock before 1970")?
        .as_secs_f64();
    let mut fresh = 0;
    for _ in 0..count {
        let mut line = String::new();
        reader.read_line(&mut line).context("LISTVAL line")?;
        let time: f64 = line
            .split_whitespace()
            .next()
            .and_then(|t| t.parse().ok())
            .with_context(|| format!("LISTVAL line {line:?}"))?;
        if now - time <= age.as_secs_f64() && line.contains("snmp/") {
            fresh += 1;
        }
    }
    Ok(fresh)
}
