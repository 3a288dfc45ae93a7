//! What saving the detector state costs: the periodic save (`detector_state::SAVE_EVERY`)
//! of a pipeline with N devices × 4 inlet sensors, by the `serde_json::Value` tree
//! (`export_state`, then bytes), written in place as one record (`write_state`), or into a
//! sled store in a temporary directory, flushed, sled's own buffers counted: the daemon's save
//! (`sled`: `detector_state::save_pipeline`) or the one record of `write_state` applied by
//! hand (`sled-one`). (A per-sensor record layout was measured in BENCHMARKS.md "Memory,
//! part 5" and not kept: its peak was higher.)
//!
//! `cargo run --release -p coldaisle-agent --example state_save_bench -- tree|bytes|sled-one|sled N`
//!
//! One save per process: the peak resident set (`VmHWM`) grows by the save's transient, as
//! the pipeline was built before and its own peak is read just before the save.

use coldaisle_agent::pipeline::Pipeline;
use coldaisle_agent::poller::PollOutcome;
use coldaisle_config::AgentConfig;
use coldaisle_core::Timestamp;
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
    // Opened (for `sled`, with the agent's page cache) before the peak is read, so its
    // start-up is not counted as the save's.
    let dir = tempfile::tempdir()?;
    let sled = coldaisle_store::SledStore::open_with_cache(
        dir.path(),
        coldaisle_agent::outbox::STORE_CACHE_BYTES,
    )?;
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
        // The save before part 5: the whole state as one record into sled, flushed.
        "sled-one" => {
            use coldaisle_store::KvStore as _;
            let mut out = Vec::new();
            pipeline.write_state(&mut out)?;
            let len = out.len();
            let mut batch = coldaisle_store::WriteBatch::default();
            batch.insert(b"pipeline".to_vec(), out);
            sled.apply("detector_state", batch)?;
            sled.flush()?;
            len
        }
        // The whole save as the daemon runs it (`detector_state::save_pipeline`), flushed.
        "sled" => coldaisle_agent::detector_state::save_pipeline(&sled, &pipeline)?,
        other => anyhow::bail!("mode is tree, bytes, sled-one or sled, not {other}"),
    };
    let secs = start.elapsed().as_secs_f64();
    let grew = status_kb("VmHWM:") - hwm;
    println!(
        "{mode:<7} devices {devices:>5}  sensors {:>5}  record {:>6.2} MiB  save {:>7.1} ms  \
         RSS before {:>6.1} MiB  peak RSS growth {:>6.1} MiB",
        devices * 4,
        len as f64 / 1048576.0,
        secs * 1e3,
        rss as f64 / 1048576.0,
        grew as f64 / 1048576.0,
    );
    Ok(())
}
