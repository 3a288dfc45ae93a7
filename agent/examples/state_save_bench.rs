//! What saving the detector state costs: the periodic save (`detector_state::SAVE_EVERY`)
//! of a pipeline with N devices × 4 inlet sensors, by the `serde_json::Value` tree
//! (`tree`: `export_state`, then bytes), written in place into a vector (`bytes`:
//! `write_state`), as one record into a sled store in a temporary directory, flushed, sled's
//! own buffers counted (`sled-one`: the daemon's save before the state file), or as the
//! daemon saves it now (`detector_state::StateStore::save`: the state file through a
//! buffered writer, synced and renamed), once the old sled record is gone (`file`) or the
//! first save after an upgrade, which also removes the old record from sled (`file-upgrade`).
//! (A per-sensor record layout was measured in BENCHMARKS.md "Memory, part 5" and not kept:
//! its peak was higher.)
//!
//! `cargo run --release -p coldaisle-agent --example state_save_bench -- MODE N`, MODE one of
//! `tree`, `bytes`, `sled-one`, `file`, `file-upgrade`.
//!
//! One save per process: the peak resident set (`VmHWM`) grows by the save's transient, as
//! the pipeline was built before and its own peak is read just before the save.

use coldaisle_agent::detector_state::StateStore;
use coldaisle_agent::pipeline::Pipeline;
use coldaisle_agent::poller::PollOutcome;
use coldaisle_config::AgentConfig;
use coldaisle_core::Timestamp;
use coldaisle_store::{KvStore, MemoryStore, SledStore};
use std::sync::Arc;
use std::time::Instant;

/// A field of `/proc/self/status` in bytes, 0 if unknown.
fn status_kb(field: &str) -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<i64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn config(devices: usize) -> String {
    let mut s = String::from(
        "agent_id = \"a1\"\nsite = \"s1\"\nstate_dir = \"/tmp/unused\"\n[mqtt]\nhost = \"127.0.0.1\"\n",
    );
    for d in 0..devices {
        s.push_str(&format!(
            "[[devices]]\nid = \"d{d}\"\nprotocol = \"snmp\"\naddress = \"127.0.0.1\"\nzone = \"Z{}\"\n",
            d % 20
        ));
        for p in 0..4 {
            s.push_str(&format!(
                "[[devices.points]]\nsensor = \"d{d}-s{p}\"\nkind = \"inlet_temp\"\n\
                 oid = \"1.3.6.1.4.1.1.{p}\"\n"
            ));
        }
    }
    s
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "bytes".into());
    let devices: usize = args.next().as_deref().unwrap_or("500").parse()?;
    let config = AgentConfig::from_str(&config(devices), std::path::Path::new("bench.toml"))?;
    let mut pipeline = Pipeline::new(&config);
    // 70 polls 30 s apart: the rate windows and the forecast's samples are full.
    for t in 0..70i64 {
        for d in 0..devices {
            let v = 22.0 + ((t + d as i64) % 7) as f64 * 0.1;
            pipeline.observe(&PollOutcome {
                device: d,
                ts: Timestamp(t * 30_000),
                result: Ok(vec![Ok(v), Ok(v + 0.2), Ok(v + 0.4), Ok(v + 0.6)]),
            });
        }
    }
    // Opened (with the agent's page cache) before the peak is read, so its start-up is not
    // counted as the save's; `file-upgrade` also finds the old record there.
    let dir = tempfile::tempdir()?;
    let sled = Arc::new(SledStore::open_with(
        &dir.path().join("outbox"),
        &coldaisle_agent::outbox::STORE_SETTINGS,
    )?);
    let mut state = match mode.as_str() {
        "file-upgrade" => {
            let mut old = Vec::new();
            pipeline.write_state(&mut old)?;
            coldaisle_agent::detector_state::save_record(sled.as_ref(), old)?;
            let store: Arc<dyn KvStore> = sled.clone();
            StateStore::new(dir.path(), store)
        }
        // The steady case: the old record was removed by an earlier save (nothing to do).
        _ => StateStore::new(dir.path(), Arc::new(MemoryStore::default())),
    };
    let rss = status_kb("VmRSS:");
    let hwm = status_kb("VmHWM:");
    let start = Instant::now();
    let len = match mode.as_str() {
        "tree" => serde_json::to_vec(&pipeline.export_state())?.len(),
        "bytes" => {
            let mut out = Vec::new();
            pipeline.write_state(&mut out)?;
            out.len()
        }
        // The save before the state file: the whole state as one record into sled, flushed.
        "sled-one" => {
            let mut out = Vec::new();
            pipeline.write_state(&mut out)?;
            let len = out.len();
            coldaisle_agent::detector_state::save_record(sled.as_ref(), out)?;
            len
        }
        // The daemon's save (`StateStore::save`).
        "file" | "file-upgrade" => usize::try_from(state.save(&pipeline)?)?,
        other => {
            anyhow::bail!("mode is tree, bytes, sled-one, file or file-upgrade, not {other}")
        }
    };
    let secs = start.elapsed().as_secs_f64();
    let grew = status_kb("VmHWM:") - hwm;
    println!(
        "{mode:<12} devices {devices:>5}  sensors {:>5}  record {:>6.2} MiB  save {:>7.1} ms  \
         RSS before {:>6.1} MiB  peak RSS growth {:>6.1} MiB",
        devices * 4,
        len as f64 / 1048576.0,
        secs * 1e3,
        rss as f64 / 1048576.0,
        grew as f64 / 1048576.0,
    );
    Ok(())
}
