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
//! Prints one line `produced=… delivered=… duplicated=… lost=…` and exits non-zero if anything
//! was lost or duplicated.
//!
//! Usage: `coldaisle-chaos [--rounds N] [--seed S]` (run `cargo build --workspace --bins`
//! first; the binaries are found next to this one).

use anyhow::{bail, Context, Result};
use coldaisle_agent::outbox::Outbox;
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
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        rounds: 10,
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
            other => bail!("unknown flag {other}; usage: coldaisle-chaos [--rounds N] [--seed S]"),
        }
    }
    Ok(args)
}

fn agent_config(dir: &Path, mqtt_port: u16, snmp: &SnmpSim) -> String {
    let mut text = format!(
        r#"agent_id = "chaos-agent"
site = "chaos"
state_dir = "{state}"
summary_interval = "300ms"
resend_after = "1s"

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
        addr = snmp.addr()
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
    text
}

fn collector_config(dir: &Path, mqtt_port: u16, http_port: u16) -> String {
    format!(
        r#"collector_id = "chaos-collector"
state_dir = "{state}"

[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
username = "collector"
password = "collector-pass"

[http]
listen = "127.0.0.1:{http_port}"
"#,
        state = dir.join("collector").display()
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
    std::fs::write(&agent_toml, agent_config(dir.path(), broker.port(), &snmp))?;
    std::fs::write(
        &collector_toml,
        collector_config(dir.path(), broker.port(), http_port),
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
    .with_context(|| {
        format!(
            "collector log tail:\n{}\nagent log tail:\n{}",
            collector.log_tail(),
            agent.log_tail()
        )
    })?;
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
