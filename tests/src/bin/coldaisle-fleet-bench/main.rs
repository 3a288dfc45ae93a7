//! `coldaisle-fleet-bench`: the real `coldaisle-agent` daemon polling a simulated site of N
//! devices on loopback, and what it costs: CPU (utime + stime over a steady window, share of
//! one core) and memory (VmRSS at the end, split into anonymous and file-backed pages, VmHWM
//! the peak), with the poll-interval jitter the
//! healthy devices see.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/release-target cargo build --release -p coldaisle-agent \
//!     -p coldaisle-collector -p coldaisle-testkit --bins
//! /tmp/release-target/release/coldaisle-fleet-bench [--devices 100,500,2000] [--interval SECS]
//!     [--timeout SECS] [--warmup SECS] [--window SECS] [--faults] [--unit-env]
//! ```
//!
//! Per size: the simulated site ([`site::Site`]: 4 in 5 devices SNMP, each its own simulator
//! and UDP port; the rest Modbus TCP, 16 units per gateway), a real mosquitto and the real
//! collector (so the agent's outbox is acknowledged as in production; their cost is not
//! counted), and the agent, found next to this binary (build them with the same profile).
//! After `--warmup` the agent's `/proc/PID/stat` is read at the start and end of `--window`.
//! Every SNMP simulator logs the arrival of each request; one GET per poll (4 points), so the
//! gaps between arrivals are the poll intervals a device sees ([`jitter::Jitter`]).
//! `--faults` makes 1 SNMP device in 10 dead and 1 in 10 slow (answering at 80 % of the
//! request timeout) and reports the jitter of the healthy ones. `--unit-env` runs the agent
//! with the `Environment=` of its systemd unit (`deploy/systemd/coldaisle-agent.service`: the
//! glibc malloc settings), as installed.
//!
//! `coldaisle-fleet-bench peers [--devices 10,20,40] [--points 200] [--interval SECS] …` runs
//! the peers side by side instead ([`peers`]: our daemon, snmp_exporter and collectd on the same
//! snmpd and objects; our daemon's window grows until it used `--min-cpu`, default 0.25 s).
//!
//! Prints one Markdown row per size (per poller in `peers` mode); asserts no timing.

mod jitter;
mod peers;
mod proc_stat;
mod site;
mod smaps;
mod stack;

use anyhow::{bail, ensure, Context, Result};
use coldaisle_config::AgentConfig;
use jitter::Jitter;
use site::{Faults, Site};
use stack::Stack;
use std::time::{Duration, Instant};

/// Command-line settings.
struct Args {
    /// Site sizes, one run each.
    devices: Vec<usize>,
    /// Poll interval of every device.
    interval: Duration,
    /// Device poll timeout (the request timeout is this ÷ (retries + 1), retries 1 by default).
    timeout: Duration,
    /// Time from the agent's start to the measured window.
    warmup: Duration,
    /// The measured window.
    window: Duration,
    /// 10 % of the SNMP devices dead and 10 % slow.
    faults: bool,
    /// Run the agent with its systemd unit's environment (the glibc malloc settings).
    unit_env: bool,
    /// `peers` mode: the peers side by side ([`peers`]), `devices` are its target counts.
    peers: bool,
    /// Objects per target in `peers` mode.
    points: usize,
    /// `peers` mode: our daemon's window grows until it used this much CPU ([`peers::Load`]).
    min_cpu: Duration,
    /// `peers` mode: our daemon also at this `max_oids_per_request` (beside the default).
    compare_oids: Option<usize>,
}

const USAGE: &str = "usage: coldaisle-fleet-bench [peers] [--devices 100,500,2000] \
                     [--interval SECS] [--timeout SECS] [--warmup SECS] [--window SECS] [--faults] \
                     [--unit-env] [--points N (peers)] [--min-cpu SECS (peers, default 0.25)] \
                     [--compare-oids N (peers: our daemon also at N OIDs per GET)]";

fn parse_args() -> Result<Args> {
    let mut it = std::env::args().skip(1).peekable();
    let peers = it.next_if(|first| first == "peers").is_some();
    let mut args = if peers {
        Args {
            devices: vec![10, 20, 40],
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            warmup: Duration::from_secs(5),
            window: Duration::from_secs(30),
            faults: false,
            unit_env: false,
            peers,
            points: 200,
            min_cpu: Duration::from_millis(250),
            compare_oids: None,
        }
    } else {
        Args {
            devices: vec![100, 500, 2000],
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            warmup: Duration::from_secs(25),
            window: Duration::from_secs(60),
            faults: false,
            unit_env: false,
            peers,
            points: 0,
            min_cpu: Duration::ZERO,
            compare_oids: None,
        }
    };
    let seconds = |value: Option<String>, flag: &str| -> Result<Duration> {
        let text = value.with_context(|| format!("{flag} needs a value; {USAGE}"))?;
        let secs: f64 = text
            .parse()
            .with_context(|| format!("{flag} takes seconds, not {text:?}"))?;
        ensure!(secs > 0.0, "{flag} must be positive");
        Ok(Duration::from_secs_f64(secs))
    };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--devices" => {
                let list = it.next().context(USAGE)?;
                args.devices = list
                    .split(',')
                    .map(|n| n.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .with_context(|| format!("--devices takes numbers like 100,500: {list:?}"))?;
            }
            "--interval" => args.interval = seconds(it.next(), "--interval")?,
            "--timeout" => args.timeout = seconds(it.next(), "--timeout")?,
            "--warmup" => args.warmup = seconds(it.next(), "--warmup")?,
            "--window" => args.window = seconds(it.next(), "--window")?,
            "--faults" => args.faults = true,
            "--min-cpu" => args.min_cpu = seconds(it.next(), "--min-cpu")?,
            "--unit-env" => args.unit_env = true,
            "--compare-oids" => {
                let n = it.next().context(USAGE)?;
                args.compare_oids = Some(
                    n.parse()
                        .with_context(|| format!("--compare-oids takes a number: {n:?}"))?,
                );
            }
            "--points" => {
                let n = it.next().context(USAGE)?;
                args.points = n
                    .parse()
                    .with_context(|| format!("--points takes a number: {n:?}"))?;
            }
            other => bail!("unknown flag {other}; {USAGE}"),
        }
    }
    ensure!(
        args.peers || args.devices.iter().all(|&n| n >= 5),
        "every size needs at least 5 devices"
    );
    ensure!(!args.peers || args.points > 0, "--points must be positive");
    Ok(args)
}

/// Figures of one run.
struct Row {
    devices: usize,
    snmp: usize,
    modbus: usize,
    points_per_s: f64,
    cpu_pct: f64,
    rss_mib: f64,
    /// RssAnon and RssFile, the parts of `rss_mib` (see [`proc_stat::Memory`]).
    anon_mib: f64,
    file_mib: f64,
    hwm_mib: f64,
    /// SNMP requests the healthy simulators saw in the window ÷ the polls expected.
    polls_seen: u64,
    polls_expected: u64,
    /// The collector's `acked_upto` of the agent at the end: its records (events; reading
    /// summaries every `summary_interval`, 60 s by default) are delivered and acknowledged.
    acked: u64,
    /// Warning and error lines in the agent's log (dead devices make some by design).
    agent_warnings: usize,
    jitter_p50: f64,
    jitter_p99: f64,
    jitter_max: f64,
    gaps: u64,
}

fn main() -> Result<()> {
    let args = parse_args()?;
    if args.peers {
        println!(
            "every target polled every {} s, all on one snmpd; window {} s after {} s warm-up \
             (our daemon's: longer, up to {} s, until it used {} s of CPU)",
            args.interval.as_secs_f64(),
            args.window.as_secs_f64(),
            args.warmup.as_secs_f64(),
            args.window.as_secs_f64() * f64::from(peers::MAX_WINDOW_FACTOR),
            args.min_cpu.as_secs_f64()
        );
        peers::print_header();
        for &targets in &args.devices {
            peers::run(&peers::Load {
                targets,
                points: args.points,
                interval: args.interval,
                warmup: args.warmup,
                window: args.window,
                min_cpu: args.min_cpu,
                compare_oids: args.compare_oids,
            })?;
        }
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("building the simulators' runtime")?;
    println!(
        "interval {} s, timeout {} s, warm-up {} s, window {} s, agent environment: {}, faults: {}",
        args.interval.as_secs_f64(),
        args.timeout.as_secs_f64(),
        args.warmup.as_secs_f64(),
        args.window.as_secs_f64(),
        if args.unit_env {
            "the systemd unit's"
        } else {
            "none added"
        },
        if args.faults {
            "1 in 10 SNMP devices dead, 1 in 10 slow (80 % of the request timeout)"
        } else {
            "none"
        }
    );
    println!(
        "| devices (SNMP + Modbus) | points/s | agent CPU, % of one core | RSS MiB | of it anon / file MiB | peak RSS (VmHWM) MiB | SNMP polls seen / expected | acked up to seq | agent warnings | jitter p50 | jitter p99 | jitter max | gaps |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &devices in &args.devices {
        let row = runtime.block_on(run(&args, devices))?;
        println!(
            "| {} ({} + {}) | {:.0} | {:.2} % | {:.1} | {:.1} / {:.1} | {:.1} | {} / {} | {} | {} | {:.2} % | {:.2} % | {:.2} % | {} |",
            row.devices,
            row.snmp,
            row.modbus,
            row.points_per_s,
            row.cpu_pct,
            row.rss_mib,
            row.anon_mib,
            row.file_mib,
            row.hwm_mib,
            row.polls_seen,
            row.polls_expected,
            row.acked,
            row.agent_warnings,
            row.jitter_p50,
            row.jitter_p99,
            row.jitter_max,
            row.gaps
        );
    }
    Ok(())
}

/// One size: start the site, the broker, the collector and the agent; measure; stop.
async fn run(args: &Args, devices: usize) -> Result<Row> {
    let site = Site::start(devices).await?;
    let mut stack = Stack::start()?;
    let text = site.agent_config(
        &stack.dir().join("agent"),
        stack.mqtt_port(),
        args.interval,
        args.timeout,
    );
    let config = AgentConfig::from_str(&text, &stack.dir().join("agent.toml"))
        .context("the generated agent config")?;
    let request_timeout = config
        .devices
        .first()
        .map(|d| d.snmp.request_timeout)
        .context("no device in the config")?;
    let faults = if args.faults {
        Faults {
            dead_every: 10,
            slow_every: 10,
            slow_delay: request_timeout.mul_f64(0.8),
        }
    } else {
        Faults::NONE
    };
    site.apply(faults);
    let mut agent = stack.start_agent(&text, args.unit_env)?;
    let pid = agent.pid().context("agent has no pid")?;

    tokio::time::sleep(args.warmup).await;
    agent.check_alive()?;
    stack.check_alive()?;
    for sim in &site.snmp {
        sim.record_arrivals();
    }
    let cpu0 = proc_stat::cpu_seconds(pid)?;
    let started = Instant::now();
    tokio::time::sleep(args.window).await;
    let cpu1 = proc_stat::cpu_seconds(pid)?;
    let elapsed = started.elapsed().as_secs_f64();
    let memory = proc_stat::memory(pid)?;
    report_anon_mappings(devices, pid)?;
    let acked = stack.acked();
    agent.check_alive()?;

    let mut jitter = Jitter::new(args.interval)?;
    let mut polls_seen = 0u64;
    let mut healthy = 0usize;
    for (i, sim) in site.snmp.iter().enumerate() {
        let arrivals = sim.take_arrivals();
        if faults.dead(i) || faults.slow(i) {
            continue;
        }
        healthy += 1;
        polls_seen += arrivals.len() as u64;
        jitter.record(&arrivals)?;
    }
    let polls_expected = (healthy as f64 * elapsed / args.interval.as_secs_f64()).round() as u64;
    let log = agent.log();
    let warnings = stack::warnings(&log);
    if let Some(first) = warnings.first() {
        eprintln!("{devices} devices: first agent warning: {first}");
    }
    let agent_warnings = warnings.len();
    if std::env::var_os(stack::HEAPTRACK_ENV).is_some() {
        // Killed, not drained: what the profile then reports as leaked is the heap of the
        // running agent, not what its shutdown (which exports every detector state) leaves.
        agent.kill();
    } else {
        agent.terminate().context("stopping the agent")?;
    }
    stack.stop()?;
    Ok(Row {
        devices,
        snmp: site.snmp.len(),
        modbus: site.modbus_devices,
        points_per_s: (devices * 4) as f64 / args.interval.as_secs_f64(),
        cpu_pct: (cpu1 - cpu0) / elapsed * 100.0,
        rss_mib: memory.rss_kib as f64 / 1024.0,
        hwm_mib: memory.hwm_kib as f64 / 1024.0,
        anon_mib: memory.anon_kib as f64 / 1024.0,
        file_mib: memory.file_kib as f64 / 1024.0,
        polls_seen,
        polls_expected,
        acked,
        agent_warnings,
        jitter_p50: jitter.percent_at(0.5),
        jitter_p99: jitter.percent_at(0.99),
        jitter_max: jitter.max_percent(),
        gaps: jitter.gaps(),
    })
}

/// Prints (stderr) where the agent's resident anonymous pages are, by kind of mapping, and its
/// largest unnamed mappings ([`smaps`]).
fn report_anon_mappings(devices: usize, pid: u32) -> Result<()> {
    let mappings = smaps::read(pid)?;
    let s = smaps::split(&mappings);
    let mib = |kib: u64| kib as f64 / 1024.0;
    let top: Vec<String> = smaps::top_unnamed(&mappings, 8)
        .iter()
        .map(|(size, rss)| format!("{size}/{rss}"))
        .collect();
    eprintln!(
        "{devices} devices: resident anonymous MiB: [heap] {:.1}, thread arenas {:.1}, \
         1-60 MiB mappings {:.1}, under 1 MiB mappings {:.1}, other {:.1}; \
         largest unnamed (size/resident KiB): {}",
        mib(s.heap_kib),
        mib(s.arenas_kib),
        mib(s.large_kib),
        mib(s.small_kib),
        mib(s.other_kib),
        top.join(" ")
    );
    Ok(())
}
