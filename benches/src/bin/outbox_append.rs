//! What the agent's sled settings cost the outbox: durable appends per second, bytes written
//! to disk per byte of record (write amplification, from `/proc/self/io`), and the resident
//! set, for N records appended in group commits of `per_append` (a poll round's records) and
//! acknowledged as they go (at most `KEEP` pending, as with a connected collector).
//!
//! `cargo run --release -p coldaisle-benches --bin outbox_append -- MODE N PER_APPEND`,
//! MODE one of `agent` (the agent's settings, [`coldaisle_agent::outbox::STORE_SETTINGS`]),
//! `cache8m` (the agent's settings before BENCHMARKS.md "Memory, part 7": sled's default
//! segment, an 8 MiB cache), `seg64k` (the agent's settings with a 64 KiB segment, measured and
//! not kept) or `default` (sled's defaults, as the collector opens its store).
//! One mode per process, so the resident figures are the mode's own.

use coldaisle_agent::outbox::{Outbox, STORE_SETTINGS};
use coldaisle_benches::outbox_event::event;
use coldaisle_benches::proc_self;
use coldaisle_core::wire::Payload;
use coldaisle_store::{KvStore, SledSettings, SledStore};
use std::sync::Arc;
use std::time::Instant;

/// Records left unacknowledged while appending.
const KEEP: u64 = 1_000;

fn open(mode: &str, dir: &std::path::Path) -> anyhow::Result<SledStore> {
    Ok(match mode {
        "agent" => SledStore::open_with(dir, &STORE_SETTINGS)?,
        "seg64k" => SledStore::open_with(
            dir,
            &SledSettings {
                segment_bytes: Some(64 * 1024),
                ..STORE_SETTINGS
            },
        )?,
        "cache8m" => SledStore::open_with_cache(dir, 8 * 1024 * 1024)?,
        "default" => SledStore::open(dir)?,
        other => anyhow::bail!("unknown mode {other}: agent, seg64k, cache8m or default"),
    })
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, records, per_append] = args.as_slice() else {
        anyhow::bail!("usage: outbox_append agent|seg64k|cache8m|default N PER_APPEND");
    };
    let records: u64 = records.parse()?;
    let per_append: u64 = per_append.parse()?;
    anyhow::ensure!(per_append > 0, "PER_APPEND must be positive");
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn KvStore> = Arc::new(open(mode, dir.path())?);
    let mut outbox = Outbox::open(store, "bench", "bench")?;
    let record_bytes: u64 = (0..records)
        .map(|n| serde_json::to_vec(&event(n)).map_or(0, |v| v.len() as u64))
        .sum();
    let rss_before = proc_self::status_mb("VmRSS:");
    let written_before = proc_self::field("/proc/self/io", "write_bytes:");
    let start = Instant::now();
    let mut n = 0;
    while n < records {
        let batch: Vec<Payload> = (n..(n + per_append).min(records)).map(event).collect();
        n += batch.len() as u64;
        let appended = outbox.append(batch)?;
        if appended.end > KEEP {
            outbox.ack(appended.end - KEEP)?;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let written = proc_self::field("/proc/self/io", "write_bytes:").saturating_sub(written_before);
    println!(
        "| {mode} | {records} | {per_append} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} |",
        records as f64 / seconds,
        (records as f64 / per_append as f64) / seconds,
        written as f64 / record_bytes.max(1) as f64,
        rss_before,
        proc_self::status_mb("VmRSS:"),
    );
    Ok(())
}
