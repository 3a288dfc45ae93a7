//! Peak memory of the collector's full rebuilds, each alone in a fresh process, on a store
//! that `restart --keep DIR` wrote (BENCHMARKS.md "Daemon restart by store size"): where the
//! streamed rebuild's peak resident set goes, next to the bulk rebuild's.
//!
//! Modes (one child process each, this binary with `--child MODE DIR`, so VmHWM is the mode's
//! own):
//! - `bulk`: every record in key order in one bulk (`checkpoint::rebuild_state`), on the main
//!   thread: what `restart` reports as *bulk rebuild (before)*;
//! - `stream`: the streamed rebuild (`stream_rebuild::rebuild`) alone, on the main thread, on
//!   the same empty state;
//! - `load`: the daemon's whole load (`daemon::load_state`: one-off scans, hot span, the
//!   streamed rebuild, ledgers) on a thread of its own, as the daemon runs it in
//!   `spawn_blocking`; the checkpoint tree is emptied first (timed with it), so it rebuilds.
//!
//! Run: `cargo build --release -p coldaisle-benches --bin rebuild_memory &&
//! target/release/rebuild_memory --store DIR [--window-hours H] [--modes bulk,stream,load]`

use anyhow::{Context, Result};
use coldaisle_benches::proc_self;
use coldaisle_collector::store::CollectorStore;
use coldaisle_config::CollectorConfig;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The collector config of `restart`'s store in `dir` (sled under `dir/state`), with `restart
/// --window-hours H`'s rules when given. No broker or API: nothing here starts them.
fn config(dir: &Path, window_hours: Option<u64>) -> Result<CollectorConfig> {
    let problems = window_hours.map_or(String::new(), |h| {
        format!(
            "[problems]\nwindow = \"{h}h\"\nverification_window = \"{h}h\"\n\
             density_lookback = \"{h}h\"\n"
        )
    });
    let text = format!(
        "collector_id = \"bench\"\nstate_dir = \"{}\"\n[mqtt]\nhost = \"127.0.0.1\"\n\
         [store]\nkind = \"sled\"\n{problems}",
        dir.join("state").display()
    );
    Ok(CollectorConfig::from_str(
        &text,
        Path::new("bench-collector.toml"),
    )?)
}

/// Runs `mode` on the store in `dir` in this process; returns its JSON line.
fn child(mode: &str, dir: &Path, window_hours: Option<u64>) -> Result<serde_json::Value> {
    let config = config(dir, window_hours)?;
    let started = Instant::now();
    let kv = coldaisle_collector::store_backend::open(&config).context("opening the store")?;
    let state = match mode {
        "bulk" => {
            let mut state = coldaisle_collector::daemon::empty_state(&config);
            let store = CollectorStore::new(kv);
            coldaisle_collector::checkpoint::rebuild_state(&mut state, &store, Vec::new())?;
            state
        }
        "stream" => {
            let mut state = coldaisle_collector::daemon::empty_state(&config);
            let store = CollectorStore::new(kv);
            coldaisle_collector::stream_rebuild::rebuild(&mut state, &store, Vec::new())?;
            state
        }
        "load" => {
            // Without a checkpoint, as a first start after an upgrade: the streamed rebuild.
            let tree = coldaisle_collector::checkpoint::TREE;
            let mut batch = coldaisle_store::WriteBatch::default();
            kv.scan(tree, b"", usize::MAX)?
                .into_iter()
                .for_each(|(key, _)| batch.remove(key));
            kv.apply(tree, batch)?;
            let worker = std::thread::spawn(move || {
                coldaisle_collector::daemon::load_state(&config, &kv).map(|(state, _)| state)
            });
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("the load thread panicked"))??
        }
        other => anyhow::bail!("unknown mode {other}: bulk, stream or load"),
    };
    let seconds = started.elapsed().as_secs_f64();
    let [rss, hwm, anon] = ["VmRSS:", "VmHWM:", "RssAnon:"].map(proc_self::status_mb);
    Ok(serde_json::json!({
        "mode": mode,
        "seconds": seconds,
        "events": state.analysis.event_count(),
        "sensors": state.directory.len(),
        "rss_mb": rss,
        "hwm_mb": hwm,
        "anon_mb": anon,
    }))
}

fn flag(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

fn main() -> Result<()> {
    let window_hours: Option<u64> = flag("--window-hours")
        .map(|h| h.parse().context("--window-hours takes a number"))
        .transpose()?;
    if let Some(mode) = flag("--child") {
        let dir = std::env::args()
            .skip_while(|a| a != "--child")
            .nth(2)
            .context("--child MODE DIR")?;
        println!("{}", child(&mode, Path::new(&dir), window_hours)?);
        return Ok(());
    }
    let dir = PathBuf::from(flag("--store").context("--store DIR (a `restart --keep` store)")?);
    let fleet = std::fs::read_to_string(dir.join("fleet.json")).with_context(|| {
        format!(
            "{} has no fleet.json: not a `restart --keep` store",
            dir.display()
        )
    })?;
    println!(
        "store {} ({fleet}), window hours {window_hours:?}",
        dir.display()
    );
    println!("| mode | time s | events held | sensors in the directory | RSS after MB | peak RSS MB | anon after MB |");
    println!("|---|---|---|---|---|---|---|");
    let modes = flag("--modes").unwrap_or_else(|| "bulk,stream,load".into());
    for mode in modes.split(',') {
        let options: Vec<(&str, String)> = window_hours
            .map(|h| ("--window-hours", h.to_string()))
            .into_iter()
            .collect();
        let v = coldaisle_benches::child::run(mode, &dir, &options)?;
        println!(
            "| {mode} | {:.1} | {} | {} | {:.0} | {:.0} | {:.0} |",
            v["seconds"].as_f64().unwrap_or(0.0),
            v["events"],
            v["sensors"],
            v["rss_mb"].as_f64().unwrap_or(0.0),
            v["hwm_mb"].as_f64().unwrap_or(0.0),
            v["anon_mb"].as_f64().unwrap_or(0.0),
        );
    }
    Ok(())
}
