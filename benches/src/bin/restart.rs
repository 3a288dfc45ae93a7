//! Daemon restart by store size (issue 13): how long the real collector takes from start until
//! it serves `/api/v1/stats`, with a checkpoint and without one, and its memory, on a sled
//! store of growing size.
//!
//! The fleet is the store benchmarks' (`store_backends`): [`AGENTS`] agents × [`SENSORS`]
//! inlet sensors, one 1-minute reading summary per sensor and minute, plus threshold events
//! (each agent raises one sensor every [`EVENT_EVERY`](coldaisle_benches::store_fleet::EVENT_EVERY) minutes and clears it 5 minutes
//! later), in 20 zones of one site. Each agent sends one batch per [`BATCH_MINUTES`] minutes,
//! stored through `CollectorStore::store_claimed` as the ingest loop stores it (records,
//! position and scope indexes, ledger, roll-ups, flush). The store grows from one size to the
//! next; with `--keep DIR` it stays in `DIR` (with `fleet.json`, where the fleet stopped), so
//! the next run only writes what is missing.
//!
//! Per size, each in a fresh child process (this binary with `--child`), so that VmRSS and
//! VmHWM are the start-up's own:
//! - **no checkpoint**: the checkpoint tree emptied, then `RunningCollector::start` (the
//!   daemon's own start: store open, one-off scans, the streamed rebuild, HTTP API, ingest
//!   task; no broker listens, so ingest only retries) until `GET /api/v1/stats` answers; then
//!   `shutdown`, which writes the checkpoint (timed as *stop*);
//! - **checkpoint**: the same start again, now from that checkpoint (empty tail);
//! - **bulk rebuild**: for comparison, the rebuild start-up did before (every record in key
//!   order in one bulk, `checkpoint::rebuild_state`), alone, timed with its peak RSS.
//!
//! Also the size of the checkpoint the first start's shutdown wrote (its head's body bytes)
//! and its format version.
//!
//! Run: `cargo build --release -p coldaisle-benches --bin restart &&
//! target/release/restart [--sizes 1000000,3000000,10000000] [--keep DIR] [--no-bulk]
//! [--window-hours H] [--sensors N] [--zones N] [--sled-cache-mb N]`
//!
//! `--sled-cache-mb N` sets the config's `[store] sled_cache_mb` (default 64; 1024 is sled's
//! own default, the collector's bound before issue 13 part 14).

use anyhow::{Context, Result};
use coldaisle_benches::store_fleet::{Shape, SITE};
use coldaisle_collector::store::{Claims, CollectorStore};
use coldaisle_config::CollectorConfig;
use coldaisle_core::wire::{Payload, Record, SCHEMA_VERSION};
use coldaisle_store::{KvStore, WriteBatch};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Agents in the fleet.
const AGENTS: u64 = 200;
/// Inlet sensors per agent (`--sensors N` changes it).
const SENSORS: u64 = 8;
/// Minutes of summaries per batch.
const BATCH_MINUTES: u64 = 60;
/// Zones of the site (agent `a` is in zone `a % zones`; `--zones N` changes it).
const ZONES: u64 = 20;

/// Where the fleet stopped writing (saved in the kept directory as `fleet.json`).
#[derive(Debug, Default)]
struct Written {
    /// Windows of [`BATCH_MINUTES`] written (every agent's batch of each).
    windows: u64,
    /// Records stored.
    records: u64,
    /// Sensors per agent of the fleet written (`None`: nothing written yet).
    sensors: Option<u64>,
}

/// `--zones N`, else [`ZONES`]. With 20 zones a zone's 10 agents raise every 10 minutes
/// between them, inside the 15-minute quiet period, so its incident never resolves (and
/// pins its events); with 200 each agent has its own zone and its incidents resolve.
fn zones() -> u64 {
    static ZONE_COUNT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *ZONE_COUNT.get_or_init(|| {
        flag("--zones")
            .and_then(|n| n.parse().ok())
            .unwrap_or(ZONES)
            .max(1)
    })
}

/// `--sensors N`, else [`SENSORS`].
fn sensors() -> Result<u64> {
    flag("--sensors").map_or(Ok(SENSORS), |n| {
        n.parse().context("--sensors takes a number")
    })
}

/// The fleet's layout: `sensors` per agent, [`zones`] zones.
fn shape(sensors: u64) -> Shape {
    Shape {
        sensors,
        zones: zones(),
    }
}

/// Agent `agent`'s batch of window `window`: its records, seqs following its earlier windows
/// (every window of an agent holds the same number of records).
fn batch(agent: u64, sensors: u64, window: u64) -> Vec<Record> {
    let first = window * BATCH_MINUTES;
    let payloads: Vec<Payload> = (first..first + BATCH_MINUTES)
        .flat_map(|m| shape(sensors).minute(agent, m))
        .collect();
    let per_window = payloads.len() as u64;
    let id = format!("agent-{agent:03}");
    payloads
        .into_iter()
        .enumerate()
        .map(|(i, payload)| Record {
            schema: SCHEMA_VERSION,
            agent: id.clone(),
            site: SITE.into(),
            seq: window * per_window + i as u64 + 1,
            payload,
            instance: None,
        })
        .collect()
}

/// Writes whole windows until at least `target` records are stored; saves where it stopped.
fn grow(dir: &Path, written: &mut Written, target: u64) -> Result<Duration> {
    let started = Instant::now();
    if written.records >= target {
        return Ok(Duration::ZERO);
    }
    let kv = open(dir)?;
    let store = CollectorStore::new(kv.clone());
    let sensors = sensors()?;
    let claims = Claims {
        floor: 1,
        dropped: &[],
        instance: None,
        max_dropped_span: u64::MAX,
        clock: None,
    };
    while written.records < target {
        for agent in 0..AGENTS {
            let records = batch(agent, sensors, written.windows);
            let (n, last) = (records.len() as u64, records.last().map_or(0, |r| r.seq));
            let id = format!("agent-{agent:03}");
            let out = store
                .store_claimed(&id, SITE, &claims, records)
                .context("storing a batch")?;
            anyhow::ensure!(out.ledger.acked_upto == last, "ack did not reach the end");
            written.records += n;
        }
        written.windows += 1;
        if written.windows % 10 == 0 {
            eprintln!(
                "  written {} records ({} windows), {:.0} s",
                written.records,
                written.windows,
                started.elapsed().as_secs_f64()
            );
        }
    }
    kv.flush().context("flush")?;
    let saved = serde_json::json!({
        "windows": written.windows,
        "records": written.records,
        "sensors": sensors,
    });
    std::fs::write(dir.join("fleet.json"), serde_json::to_vec(&saved)?)?;
    Ok(started.elapsed())
}

/// The collector config on the store in `dir`: sled, API on a free loopback port, a broker
/// port nobody listens on; with `--window-hours H`, problem window, verification window and
/// density look-back of H hours (the analysis's horizon is then H + 24 hours instead of 31
/// days), otherwise the default rules.
fn config(dir: &Path) -> Result<CollectorConfig> {
    let mqtt = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let problems = match window_hours()? {
        Some(h) => format!(
            "[problems]\nwindow = \"{h}h\"\nverification_window = \"{h}h\"\n\
             density_lookback = \"{h}h\"\n"
        ),
        None => String::new(),
    };
    let cache = match sled_cache_mb()? {
        Some(mb) => format!("sled_cache_mb = {mb}\n"),
        None => String::new(),
    };
    let text = format!(
        "collector_id = \"bench\"\nstate_dir = \"{}\"\n[mqtt]\nhost = \"127.0.0.1\"\nport = {mqtt}\n\
         [http]\nlisten = \"127.0.0.1:0\"\n[store]\nkind = \"sled\"\n{cache}{problems}",
        dir.join("state").display()
    );
    Ok(CollectorConfig::from_str(
        &text,
        Path::new("bench-collector.toml"),
    )?)
}

fn open(dir: &Path) -> Result<Arc<dyn KvStore>> {
    coldaisle_collector::store_backend::open(&config(dir)?).context("opening the store")
}

/// Empties the checkpoint tree (the next start rebuilds from every record).
fn drop_checkpoint(dir: &Path) -> Result<()> {
    let kv = open(dir)?;
    let tree = coldaisle_collector::checkpoint::TREE;
    let mut batch = WriteBatch::default();
    for (key, _) in kv.scan(tree, b"", usize::MAX)? {
        batch.remove(key);
    }
    kv.apply(tree, batch)?;
    kv.flush()?;
    Ok(())
}

/// The stored checkpoint's body size and format version (from its head), if there is one.
fn checkpoint_size(dir: &Path) -> Result<Option<(u64, u32)>> {
    let kv = open(dir)?;
    let Some(raw) = kv.get(coldaisle_collector::checkpoint::TREE, b"head")? else {
        return Ok(None);
    };
    let head: coldaisle_collector::checkpoint::Head =
        serde_json::from_slice(&raw).context("checkpoint head")?;
    Ok(Some((head.bytes, head.version)))
}

/// Resident and peak resident memory of this process, in MB.
fn rss_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// What one child measured (printed as one JSON line).
#[derive(Debug)]
struct Measured {
    /// Start until `/api/v1/stats` answered (the daemon), or the rebuild (bulk).
    ready_ms: u64,
    /// `ingest.last_start` of `/api/v1/stats` (the daemon only).
    last_start: Option<serde_json::Value>,
    /// Events held by the analysis.
    events: u64,
    /// VmRSS after start, MB.
    rss_mb: f64,
    /// VmHWM after start, MB.
    hwm_mb: f64,
    /// Shutdown (the daemon only; writes the checkpoint when the state is ahead of it).
    stop_ms: Option<u64>,
}

/// The daemon's start until `/api/v1/stats` answers, then its shutdown.
fn child_daemon(dir: &Path) -> Result<Measured> {
    let config = config(dir)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let started = Instant::now();
    let collector = runtime.block_on(coldaisle_collector::RunningCollector::start(config))?;
    let url = format!("http://{}/api/v1/stats", collector.http_addr);
    let stats = loop {
        if let Ok(stats) = coldaisle_testkit::procs::get_json(&url) {
            break stats;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "no /api/v1/stats"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let ready_ms = started.elapsed().as_millis() as u64;
    let (rss_mb, hwm_mb) = rss_mb();
    let stopping = Instant::now();
    runtime.block_on(collector.shutdown());
    Ok(Measured {
        ready_ms,
        last_start: stats["ingest"].get("last_start").cloned(),
        events: stats["events"].as_u64().unwrap_or(0),
        rss_mb,
        hwm_mb,
        stop_ms: Some(stopping.elapsed().as_millis() as u64),
    })
}

/// The bulk rebuild alone: every record in key order, loaded in one bulk.
fn child_bulk(dir: &Path) -> Result<Measured> {
    let config = config(dir)?;
    let started = Instant::now();
    let kv = open(dir)?;
    let store = CollectorStore::new(kv);
    let mut state = coldaisle_collector::daemon::empty_state(&config);
    coldaisle_collector::checkpoint::rebuild_state(&mut state, &store, Vec::new())?;
    let ready_ms = started.elapsed().as_millis() as u64;
    let (rss_mb, hwm_mb) = rss_mb();
    Ok(Measured {
        ready_ms,
        last_start: None,
        events: state.analysis.event_count() as u64,
        rss_mb,
        hwm_mb,
        stop_ms: None,
    })
}

/// Runs this binary as a child measuring `mode` on `dir`; returns what it printed.
fn child(mode: &str, dir: &Path) -> Result<Measured> {
    // The fleet options are the kept store's; the child only reads it.
    let mut options = Vec::new();
    if let Some(h) = window_hours()? {
        options.push(("--window-hours", h.to_string()));
    }
    if let Some(mb) = sled_cache_mb()? {
        options.push(("--sled-cache-mb", mb.to_string()));
    }
    let v = coldaisle_benches::child::run(mode, dir, &options)?;
    Ok(Measured {
        ready_ms: v["ready_ms"].as_u64().context("ready_ms")?,
        last_start: v.get("last_start").filter(|s| !s.is_null()).cloned(),
        events: v["events"].as_u64().unwrap_or(0),
        rss_mb: v["rss_mb"].as_f64().unwrap_or(0.0),
        hwm_mb: v["hwm_mb"].as_f64().unwrap_or(0.0),
        stop_ms: v["stop_ms"].as_u64(),
    })
}

/// `--sled-cache-mb N`, if given (else the config's default).
fn sled_cache_mb() -> Result<Option<u64>> {
    flag("--sled-cache-mb")
        .map(|n| n.parse().context("--sled-cache-mb takes a number"))
        .transpose()
}

/// `--window-hours H`, if given.
fn window_hours() -> Result<Option<u64>> {
    flag("--window-hours")
        .map(|h| h.parse().context("--window-hours takes a number"))
        .transpose()
}

fn flag(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

fn main() -> Result<()> {
    if let Some(mode) = flag("--child") {
        let dir = PathBuf::from(
            std::env::args()
                .skip_while(|a| a != "--child")
                .nth(2)
                .context("--child MODE DIR")?,
        );
        let measured = match mode.as_str() {
            "daemon" => child_daemon(&dir)?,
            "bulk" => child_bulk(&dir)?,
            other => anyhow::bail!("unknown child mode {other}"),
        };
        let line = serde_json::json!({
            "ready_ms": measured.ready_ms,
            "last_start": measured.last_start,
            "events": measured.events,
            "rss_mb": measured.rss_mb,
            "hwm_mb": measured.hwm_mb,
            "stop_ms": measured.stop_ms,
        });
        println!("{line}");
        return Ok(());
    }
    let sizes: Vec<u64> = flag("--sizes")
        .unwrap_or_else(|| "1000000,3000000,10000000".into())
        .split(',')
        .map(|s| s.parse().context("--sizes takes numbers"))
        .collect::<Result<_>>()?;
    let bulk = !std::env::args().any(|a| a == "--no-bulk");
    let temp;
    let dir = match flag("--keep") {
        Some(d) => PathBuf::from(d),
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&dir)?;
    let mut written = std::fs::read(dir.join("fleet.json"))
        .ok()
        .and_then(|raw| serde_json::from_slice::<serde_json::Value>(&raw).ok())
        .map_or_else(Written::default, |saved| Written {
            windows: saved["windows"].as_u64().unwrap_or(0),
            records: saved["records"].as_u64().unwrap_or(0),
            sensors: saved["sensors"].as_u64(),
        });
    let fleet_sensors = sensors()?;
    anyhow::ensure!(
        written.sensors.is_none_or(|n| n == fleet_sensors),
        "{} holds a fleet of {:?} sensors per agent; pass that --sensors or another --keep",
        dir.display(),
        written.sensors
    );
    println!(
        "fleet: {AGENTS} agents × {} sensors in {} zones, 1-minute summaries + events, one batch per \
         agent and {BATCH_MINUTES} min; store in {}; rules: {}",
        sensors()?,
        zones(),
        dir.display(),
        window_hours()?.map_or("default".into(), |h| format!("problem window {h} h"))
    );
    println!(
        "| records stored (days) | written now (records/s) | start without checkpoint: ready | \
         its load | peak RSS | RSS after | stop (writes the checkpoint) | start from checkpoint: ready | \
         its load | peak RSS | RSS after | events held | checkpoint (format) | bulk rebuild: time | its peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for size in sizes {
        let before = written.records;
        let took = grow(&dir, &mut written, size)?;
        let rate = if took.is_zero() {
            "kept".to_string()
        } else {
            format!(
                "{:.0}",
                (written.records - before) as f64 / took.as_secs_f64()
            )
        };
        let days = (written.windows * BATCH_MINUTES) as f64 / 1440.0;
        written.sensors = Some(sensors()?);
        drop_checkpoint(&dir)?;
        let rebuilt = child("daemon", &dir)?;
        let checkpoint = match checkpoint_size(&dir)? {
            Some((bytes, version)) => format!("{:.1} MB (v{version})", bytes as f64 / 1e6),
            None => "none".into(),
        };
        let restored = child("daemon", &dir)?;
        let load = |m: &Measured| {
            m.last_start
                .as_ref()
                .map(|s| {
                    format!(
                        "{} ms ({}, {} records)",
                        s["load_ms"], s["mode"], s["records"]
                    )
                })
                .unwrap_or_default()
        };
        let (bulk_ms, bulk_hwm) = if bulk {
            let m = child("bulk", &dir)?;
            (format!("{} ms", m.ready_ms), format!("{:.0} MB", m.hwm_mb))
        } else {
            ("not run".into(), "not run".into())
        };
        println!(
            "| {} ({days:.2}) | {rate} | {} ms | {} | {:.0} MB | {:.0} MB | {} ms | {} ms | {} | {:.0} MB | {:.0} MB | {} | {checkpoint} | {bulk_ms} | {bulk_hwm} |",
            written.records,
            rebuilt.ready_ms,
            load(&rebuilt),
            rebuilt.hwm_mb,
            rebuilt.rss_mb,
            rebuilt.stop_ms.unwrap_or(0),
            restored.ready_ms,
            load(&restored),
            restored.hwm_mb,
            restored.rss_mb,
            restored.events,
        );
    }
    Ok(())
}
