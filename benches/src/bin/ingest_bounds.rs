//! Ingest work per batch (issue 14): a batch's cost grows with its records, never with the
//! length of the `dropped` ranges it claims. Stores batches into an in-memory store through
//! the collector's own `CollectorStore::store_claimed` and prints, per size, the store lookups
//! and the median time of one batch.
//!
//! Run: `cargo run -p coldaisle-benches --bin ingest_bounds [-- --runs N]`

use anyhow::{Context, Result};
use coldaisle_collector::store::{Claims, CollectorStore};
use coldaisle_core::wire::{Payload, Record, SeqRange, SCHEMA_VERSION};
use coldaisle_core::{DeviceEvent, EventState, Location, Timestamp};
use coldaisle_store::MemoryStore;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn record(seq: u64) -> Record {
    Record {
        schema: SCHEMA_VERSION,
        agent: "bench".into(),
        site: "s1".into(),
        seq,
        payload: Payload::DeviceEvent(DeviceEvent {
            device: "pdu".into(),
            location: Location {
                site: "s1".into(),
                zone: "Z1".into(),
                row: None,
                rack: None,
            },
            state: EventState::Raised,
            reason: "timeout".into(),
            ts: Timestamp(1_700_000_000_000 + seq as i64),
        }),
        instance: None,
    }
}

/// Stores one batch of `records` records after a `dropped` range of `span` seqs, into a fresh
/// store, `runs` times; returns (lookups of one batch, median time of one batch).
fn measure(records: u64, span: u64, runs: usize) -> Result<(u64, Duration)> {
    let mut times = Vec::with_capacity(runs);
    let mut lookups = 0;
    for _ in 0..runs {
        let store = CollectorStore::new(Arc::new(MemoryStore::new()));
        let dropped = if span > 0 {
            vec![SeqRange { from: 1, to: span }]
        } else {
            Vec::new()
        };
        let batch: Vec<Record> = (span + 1..=span + records).map(record).collect();
        let claims = Claims {
            floor: 1,
            dropped: &dropped,
            instance: None,
            max_dropped_span: u64::MAX,
            clock: None,
        };
        let started = Instant::now();
        let stored = store
            .store_claimed("bench", "s1", &claims, batch)
            .context("storing a batch")?;
        times.push(started.elapsed());
        lookups = stored.lookups;
        anyhow::ensure!(
            stored.ledger.acked_upto == span + records,
            "ack did not reach the end"
        );
    }
    times.sort();
    Ok((lookups, times[times.len() / 2]))
}

fn main() -> Result<()> {
    let runs = std::env::args()
        .skip_while(|a| a != "--runs")
        .nth(1)
        .map(|r| r.parse::<usize>())
        .transpose()
        .context("--runs takes a number")?
        .unwrap_or(200)
        .max(1);
    println!("| records | dropped range | lookups | median per batch |");
    println!("|---|---|---|---|");
    for (records, span) in [
        (1, 1_000),
        (1, 1_000_000),
        (1, 1_000_000_000_000),
        (10, 0),
        (100, 0),
        (1_000, 0),
    ] {
        let (lookups, median) = measure(records, span, runs)?;
        println!("| {records} | {span} | {lookups} | {median:?} |");
    }
    Ok(())
}
