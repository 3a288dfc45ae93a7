//! `coldaisle-chaos`: randomised fault rounds against the real agent and collector binaries
//! and a real mosquitto, then an exactly-once check.
//!
//! Each round changes the simulated sensors (so the agent raises and clears events and writes
//! reading summaries) and then injects one fault at a random moment: `kill -9` of the agent,
//! `kill -9` of the collector, mosquitto restarted without persistence (QoS 1 in flight is
//! lost), or none. At the end the device goes silent (no new records), the system drains, and
//! the agent's outbox is read back: every record the agent stored must be in the collector's
//! store exactly once.
//!
//! With `--outage SECS` (default 0: off), after the rounds (or instead of them with
//! `--rounds 0`) mosquitto is killed for SECS seconds while the sensors keep changing, so the
//! agent keeps appending events and summaries to its durable outbox; then the broker starts
//! again on the same port and the system drains before the end check (flap suppression is off
//! in this mode so every sensor change is an event). The agent's outbox is
//! locked by the running agent (sled) and the agent has no HTTP endpoint, so during the outage
//! the runner samples the collector's count (it must not move) and the agent log's reconnect
//! attempts (both daemons log every MQTT attempt at debug level for `coldaisle_mqtt` in this
//! mode); the backlog is the `outbox_pending_records` of the status the agent publishes on
//! reconnect, as the collector stored it.
//!
//! Prints one line `produced=… delivered=… duplicated=… lost=…` and exits non-zero if anything
//! was lost or duplicated; with `--outage`, one more line before it:
//! `outage=…s produced_during=… max_backlog=… delivered_during=… drained_in=…s
//! reconnect_attempts=… …` (see [`OutageReport`]).
//!
//! Usage: `coldaisle-chaos [--rounds N] [--seed S] [--outage SECS]` (run
//! `cargo build --workspace --bins` first; the binaries are found next to this one).

use anyhow::{bail, Context, Result};
use coldaisle_agent::outbox::Outbox;
use coldaisle_core::Timestamp;
use coldaisle_store::{KvStore, SledStore};
use coldaisle_testkit::peers::Mosquitto;
use coldaisle_testkit::procs::{free_port, get_json, wait_for, Daemon};
use coldaisle_testkit::snmp_sim::{SimValue, SnmpSim};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const SENSORS: usize = 4;
const TEMP_OID: &str = "1.3.6.1.4.1.318.1.1.26.10.2.2.1.8";

/// xorshift64*: deterministic for a seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from + 1))
    }
}

struct Args {
    rounds: u32,
    seed: u64,
    /// Seconds of the long broker outage after the rounds; 0 = none.
    outage: u64,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        rounds: 10,
        outage: 0,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--rounds" => args.rounds = value.parse().context("--rounds takes a number")?,
            "--seed" => args.seed = value.parse::<u64>().context("--seed takes a number")? | 1,
            "--outage" => {
                args.outage = value
                    .parse()
                    .context("--outage takes a number of seconds")?
            }
            other => bail!(
                "unknown flag {other}; usage: coldaisle-chaos [--rounds N] [--seed S] [--outage SECS]"
            ),
        }
    }
    Ok(args)
}

/// Log filter of both daemons in outage mode: every MQTT connect attempt is logged.
const OUTAGE_LOG_LEVEL: &str = "info,coldaisle_mqtt=debug";

/// `log_level = "…"` line, or nothing for the default level.
fn log_level_line(log_level: Option<&str>) -> String {
    log_level
        .map(|level| format!("log_level = \"{level}\"\n"))
        .unwrap_or_default()
}

/// The agent's config; `outage` mode logs every MQTT attempt and turns flap suppression off,
/// so each sensor change during the outage is an event (with the default 10 min flap window
/// only the first raise and clear of each sensor would be).
fn agent_config(dir: &Path, mqtt_port: u16, snmp: &SnmpSim, outage: bool) -> String {
    let mut text = format!(
        r#"agent_id = "chaos-agent"
site = "chaos"
state_dir = "{state}"
summary_interval = "300ms"
resend_after = "1s"
{level}
[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
username = "agent"
password = "agent-pass"

[[devices]]
id = "pdu"
protocol = "snmp"
address = "{addr}"
zone = "Z1"
poll_interval = "100ms"
timeout = "100ms"
"#,
        state = dir.join("agent").display(),
        addr = snmp.addr(),
        level = log_level_line(outage.then_some(OUTAGE_LOG_LEVEL)),
    );
    for i in 1..=SENSORS {
        text.push_str(&format!(
            r#"
[[devices.points]]
sensor = "r{i}-inlet"
kind = "inlet_temp"
rack = "R{i}"
oid = "{TEMP_OID}.{i}"
scale = 0.1
[devices.points.threshold]
high = 27.0
hysteresis = 1.0
min_duration = "0s"
"#
        ));
    }
    if outage {
        text.push_str("\n[detection]\nflap_window = \"0s\"\n");
    }
    text
}

fn collector_config(dir: &Path, mqtt_port: u16, http_port: u16, log_level: Option<&str>) -> String {
    format!(
        r#"collector_id = "chaos-collector"
state_dir = "{state}"
{level}
[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
username = "collector"
password = "collector-pass"

[http]
listen = "127.0.0.1:{http_port}"
"#,
        state = dir.join("collector").display(),
        level = log_level_line(log_level),
    )
}

/// The tails of both daemons' logs, for an error's context.
fn log_tails(collector: &Daemon, agent: &Daemon) -> String {
    format!(
        "collector log tail:\n{}\nagent log tail:\n{}",
        collector.log_tail(),
        agent.log_tail()
    )
}

/// `(acked_upto, records, highest_seen)` of the chaos agent at the collector.
fn collector_view(api: &str) -> Option<(u64, u64, u64)> {
    let agents = get_json(&format!("{api}/api/v1/agents")).ok()?;
    let info = agents.get("chaos-agent")?;
    Some((
        info["acked_upto"].as_u64()?,
        info["records"].as_u64()?,
        info["highest_seen"].as_u64()?,
    ))
}

/// The daemons' log files (JSON lines, appended across restarts).
#[derive(Clone, Copy)]
struct Logs<'a> {
    agent: &'a Path,
    collector: &'a Path,
}

/// What a long broker outage showed. Seq figures come from the collector's view of the agent:
/// `produced_during` and the drain target count from the collector's `acked_upto` at the stop,
/// which may be a few records ahead of the last ack that reached the agent.
struct OutageReport {
    /// Length of the outage.
    secs: u64,
    /// Records the agent appended while the broker was down (≈, see above).
    produced_during: u64,
    /// Raise events the agent logged while the broker was down (clears are not logged; about
    /// as many).
    raises_during: usize,
    /// `outbox_pending_records` of the agent's first status after the reconnect (the outbox
    /// only grows while nothing is acked, so this is its largest depth).
    max_backlog: u64,
    /// Records the collector stored while the broker was down (must be 0).
    delivered_during: u64,
    /// From the broker's restart until the collector acked everything produced before it.
    drained_in: Duration,
    /// From the broker's restart until the agent logged `mqtt connected`.
    agent_reconnected_in: Option<Duration>,
    /// Failed agent connect attempts logged during the outage.
    reconnect_attempts: usize,
    /// Longest gap between two consecutive failed agent attempts (the backoff cap plus jitter).
    max_gap: Duration,
    /// The first few gaps, to show the backoff doubling.
    first_gaps: Vec<Duration>,
    /// Failed collector connect attempts logged during the outage.
    collector_attempts: usize,
    /// From the broker's restart until the collector logged `mqtt connected`.
    collector_reconnected_in: Option<Duration>,
}

/// `1.5s`, or `?` when the reconnect was not seen in the log.
fn secs_or_unknown(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.1}s", d.as_secs_f64()))
        .unwrap_or_else(|| "?".into())
}

impl OutageReport {
    fn line(&self) -> String {
        let gaps: Vec<String> = self
            .first_gaps
            .iter()
            .map(|g| format!("{:.2}", g.as_secs_f64()))
            .collect();
        format!(
            "outage={}s produced_during={} raises_during={} max_backlog={} delivered_during={} drained_in={:.1}s \
             reconnect_attempts={} first_backoff_gaps=[{}]s max_backoff_gap={:.1}s \
             agent_reconnected_in={} collector_attempts={} collector_reconnected_in={}",
            self.secs,
            self.produced_during,
            self.raises_during,
            self.max_backlog,
            self.delivered_during,
            self.drained_in.as_secs_f64(),
            self.reconnect_attempts,
            gaps.join(","),
            self.max_gap.as_secs_f64(),
            secs_or_unknown(self.agent_reconnected_in),
            self.collector_attempts,
            secs_or_unknown(self.collector_reconnected_in),
        )
    }
}

/// MQTT link lines of a daemon log from byte `from` on: the times of the failed connect
/// attempts, and of the first `mqtt connected` after them.
fn mqtt_attempts(log: &str, from: usize) -> (Vec<Timestamp>, Option<Timestamp>) {
    let mut failed = Vec::new();
    let mut connected = None;
    for line in log.get(from..).unwrap_or_default().lines() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let message = entry["message"].as_str().unwrap_or_default();
        let Some(ts) = entry["timestamp"]
            .as_str()
            .and_then(|t| Timestamp::parse(t).ok())
        else {
            continue;
        };
        if message.starts_with("mqtt connect failed") {
            failed.push(ts);
        } else if message == "mqtt connected" && connected.is_none() {
            connected = Some(ts);
        }
    }
    (failed, connected)
}

fn file_len(path: &Path) -> usize {
    std::fs::metadata(path)
        .map(|m| m.len() as usize)
        .unwrap_or(0)
}

/// `outbox_pending_records` of the agent's status if the collector received it at or after
/// `since` (collector clock, epoch ms).
fn status_backlog_since(api: &str, since: Timestamp) -> Option<u64> {
    let agents = get_json(&format!("{api}/api/v1/agents")).ok()?;
    let info = agents.get("chaos-agent")?;
    (info["status_at"].as_i64()? >= since.0 && info["status"]["state"] == "online")
        .then(|| info["status"]["stats"]["outbox_pending_records"].as_u64())?
}

/// Kills the broker for `length` while the sensors keep changing, restarts it on the same port
/// and waits until the collector has acked everything the agent produced before the restart.
async fn broker_outage(
    length: Duration,
    broker: &mut Mosquitto,
    set: &impl Fn(usize, f64) -> Result<()>,
    rng: &mut Rng,
    api: &str,
    logs: Logs<'_>,
) -> Result<OutageReport> {
    // Start from a connected, caught-up system so the figures are about the outage alone.
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_for(
        "the collector to see the agent",
        Duration::from_secs(60),
        || collector_view(api).filter(|(acked, _, highest)| *acked > 0 && acked == highest),
    )?;
    let (agent_from, collector_from) = (file_len(logs.agent), file_len(logs.collector));
    broker.stop();
    let started = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (acked0, records0, highest0) = collector_view(api).context("collector view at the stop")?;
    eprintln!(
        "outage: broker down for {}s; collector at the stop: acked_upto={acked0} records={records0} highest_seen={highest0}",
        length.as_secs()
    );
    let mut next_sample = started + Duration::from_secs(30);
    let mut records_during = records0;
    while started.elapsed() < length {
        for i in 1..=SENSORS {
            set(i, if rng.below(2) == 0 { 22.0 } else { 30.0 })?;
        }
        let pause = rng
            .millis(500, 3000)
            .min(length.saturating_sub(started.elapsed()));
        tokio::time::sleep(pause).await;
        if tokio::time::Instant::now() >= next_sample || started.elapsed() >= length {
            next_sample += Duration::from_secs(30);
            let records = collector_view(api).map(|(_, r, _)| r).unwrap_or(records0);
            records_during = records_during.max(records);
            let log = std::fs::read_to_string(logs.agent).unwrap_or_default();
            let (failed, _) = mqtt_attempts(&log, agent_from);
            eprintln!(
                "outage: t={:.0}s collector records={records} agent failed connect attempts={}",
                started.elapsed().as_secs_f64(),
                failed.len()
            );
        }
    }
    let agent_to = file_len(logs.agent);
    let restart_at = Timestamp::now();
    broker.restart()?;
    let restarted = tokio::time::Instant::now();
    let drain_limit = length.max(Duration::from_secs(120));
    let max_backlog = wait_for(
        "the agent's status after the reconnect",
        drain_limit,
        || status_backlog_since(api, restart_at),
    )?;
    let target = acked0 + max_backlog;
    wait_for("the collector to drain the backlog", drain_limit, || {
        collector_view(api).filter(|(acked, _, _)| *acked >= target)
    })?;
    let drained_in = restarted.elapsed();
    eprintln!(
        "outage: drained in {:.1}s (collector acked_upto >= {target})",
        drained_in.as_secs_f64()
    );

    let agent_text = std::fs::read_to_string(logs.agent).unwrap_or_default();
    let (failed, connected) = mqtt_attempts(&agent_text, agent_from);
    let raises_during = agent_text
        .get(agent_from..agent_to)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains(r#""state":"raised""#))
        .count();
    let gaps: Vec<Duration> = failed.windows(2).map(|w| w[1].since(w[0])).collect();
    let collector_text = std::fs::read_to_string(logs.collector).unwrap_or_default();
    let (collector_failed, collector_connected) = mqtt_attempts(&collector_text, collector_from);
    Ok(OutageReport {
        secs: length.as_secs(),
        produced_during: target.saturating_sub(highest0),
        raises_during,
        max_backlog,
        delivered_during: records_during - records0,
        drained_in,
        agent_reconnected_in: connected.map(|c| c.since(restart_at)),
        reconnect_attempts: failed.len(),
        max_gap: gaps.iter().copied().max().unwrap_or_default(),
        first_gaps: gaps.iter().copied().take(6).collect(),
        collector_attempts: collector_failed.len(),
        collector_reconnected_in: collector_connected.map(|c| c.since(restart_at)),
    })
}

async fn run(args: Args) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut broker = Mosquitto::start(&[("agent", "agent-pass"), ("collector", "collector-pass")])?;
    let snmp = SnmpSim::start("public").await?;
    let set = |i: usize, celsius: f64| {
        snmp.set(
            &format!("{TEMP_OID}.{i}"),
            SimValue::Integer((celsius * 10.0) as i64),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))
    };
    for i in 1..=SENSORS {
        set(i, 22.0)?;
    }
    let http_port = free_port()?;
    let api = format!("http://127.0.0.1:{http_port}");
    let agent_toml = dir.path().join("agent.toml");
    let collector_toml = dir.path().join("collector.toml");
    let log_level = (args.outage > 0).then_some(OUTAGE_LOG_LEVEL);
    std::fs::write(
        &agent_toml,
        agent_config(dir.path(), broker.port(), &snmp, args.outage > 0),
    )?;
    std::fs::write(
        &collector_toml,
        collector_config(dir.path(), broker.port(), http_port, log_level),
    )?;
    let agent_log = dir.path().join("agent.log");
    let collector_log = dir.path().join("collector.log");
    let mut collector = Daemon::start("coldaisle-collector", &collector_toml, &collector_log)?;
    let mut agent = Daemon::start("coldaisle-agent", &agent_toml, &agent_log)?;

    let mut rng = Rng(args.seed);
    let mut faults = [0u32; 4];
    for round in 0..args.rounds {
        for i in 1..=SENSORS {
            set(i, if rng.below(2) == 0 { 22.0 } else { 30.0 })?;
        }
        tokio::time::sleep(rng.millis(50, 700)).await;
        let fault = rng.below(4) as usize;
        faults[fault] += 1;
        match fault {
            1 => {
                agent.kill();
                tokio::time::sleep(rng.millis(0, 800)).await;
                agent = Daemon::start("coldaisle-agent", &agent_toml, &agent_log)?;
            }
            2 => {
                collector.kill();
                tokio::time::sleep(rng.millis(0, 800)).await;
                collector = Daemon::start("coldaisle-collector", &collector_toml, &collector_log)?;
            }
            3 => {
                broker.stop();
                tokio::time::sleep(rng.millis(0, 1500)).await;
                broker.restart()?;
            }
            _ => {}
        }
        eprintln!(
            "round {}/{}: fault {}",
            round + 1,
            args.rounds,
            [
                "none",
                "kill -9 agent",
                "kill -9 collector",
                "broker restart"
            ][fault]
        );
    }

    let outage = if args.outage > 0 {
        let logs = Logs {
            agent: &agent_log,
            collector: &collector_log,
        };
        let report = broker_outage(
            Duration::from_secs(args.outage),
            &mut broker,
            &set,
            &mut rng,
            &api,
            logs,
        )
        .await
        .with_context(|| log_tails(&collector, &agent))?;
        Some(report)
    } else {
        None
    };

    // Drain: the device goes silent (one unreachable event, then nothing new), the collector
    // catches up, the agent stops cleanly and its outbox says how much it ever stored.
    snmp.set_silent(true);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut last = None;
    let mut stable_since = tokio::time::Instant::now();
    wait_for("the collector to catch up", Duration::from_secs(60), || {
        let view = collector_view(&api);
        if view != last {
            last = view;
            stable_since = tokio::time::Instant::now();
        }
        let (acked, _, highest) = view?;
        (acked == highest && acked > 0 && stable_since.elapsed() > Duration::from_secs(3))
            .then_some(())
    })
    .with_context(|| log_tails(&collector, &agent))?;
    agent.terminate()?;
    let (acked, records, _) = collector_view(&api).context("collector view")?;
    let store: Arc<dyn KvStore> =
        Arc::new(SledStore::open(&dir.path().join("agent").join("outbox"))?);
    let outbox = Outbox::open(store, "chaos-agent", "chaos")?;
    let produced = outbox.next_seq() - 1;
    let lost = produced.saturating_sub(acked.min(records));
    let duplicated = records.saturating_sub(produced);
    let stats = get_json(&format!("{api}/api/v1/stats"))?;
    eprintln!(
        "seed={} rounds={} faults: none={} agent_kills={} collector_kills={} broker_restarts={}; redeliveries ignored by the collector since its last start: {}",
        args.seed, args.rounds, faults[0], faults[1], faults[2], faults[3], stats["ingest"]["duplicates"]
    );
    collector.terminate()?;
    if let Some(report) = outage {
        println!("{}", report.line());
    }
    println!("produced={produced} delivered={records} duplicated={duplicated} lost={lost}");
    if lost > 0 || duplicated > 0 || produced == 0 {
        bail!(
            "exactly-once violated (or nothing produced); seed {}",
            args.seed
        );
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let result = parse_args().and_then(|args| {
        tokio::runtime::Runtime::new()
            .context("starting the async runtime")?
            .block_on(run(args))
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_attempts_counts_failures_after_the_offset_until_the_reconnect() {
        let before =
            r#"{"timestamp":"2026-11-25T15:00:00Z","message":"mqtt connect failed again"}"#;
        let log = format!(
            "{before}\n{}\n{}\nnot json\n{}\n{}\n",
            r#"{"timestamp":"2026-11-25T15:00:01.250Z","message":"mqtt connect failed; retrying with backoff"}"#,
            r#"{"timestamp":"2026-11-25T15:00:02.500Z","message":"mqtt connect failed again"}"#,
            r#"{"timestamp":"2026-11-25T15:00:05Z","message":"mqtt connected"}"#,
            r#"{"timestamp":"2026-11-25T15:00:09Z","message":"mqtt connected"}"#,
        );
        let (failed, connected) = mqtt_attempts(&log, before.len() + 1);
        let base = Timestamp::parse("2026-11-25T15:00:00Z").unwrap();
        assert_eq!(
            failed,
            vec![
                base.plus(Duration::from_millis(1250)),
                base.plus(Duration::from_millis(2500))
            ]
        );
        assert_eq!(connected, Some(base.plus(Duration::from_secs(5))));
    }

    #[test]
    fn outage_mode_changes_only_the_outage_configs() {
        assert_eq!(log_level_line(None), "");
        assert_eq!(
            log_level_line(Some(OUTAGE_LOG_LEVEL)),
            "log_level = \"info,coldaisle_mqtt=debug\"\n"
        );
        let plain = collector_config(Path::new("/x"), 1883, 8080, None);
        assert!(!plain.contains("log_level"), "{plain}");
        let parsed: toml::Value = toml::from_str(&plain).unwrap();
        assert_eq!(parsed["mqtt"]["port"].as_integer(), Some(1883));
    }
}
