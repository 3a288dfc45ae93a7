//! Forwards the outbox to the broker and applies the collector's acks (wire contract v1).
//!
//! Protocol, as a small loop over [`LinkEvent`]s:
//! - on every (re)connect: subscribe to our ack topic, publish the retained `online` status,
//!   and restart sending from the last ack (everything not acked is resent);
//! - while connected: republish the status (config hash, poll and outbox statistics of
//!   [`crate::status`]) every `status_every` and at once after a reload;
//! - when records are appended: send those above what was already sent, in batches, keeping
//!   at most [`MAX_UNACKED_RECORDS`] in flight beyond the last ack;
//! - on an ack: remove the covered records from the outbox (durably); a `hello` ack (a
//!   collector (re)connected and saw our status) also restarts sending from its `upto`, so a
//!   backlog resent while no collector was subscribed is not left waiting for `resend_after`;
//! - when no ack has advanced for `resend_after` while records are pending: resend from the
//!   last ack (the broker or the collector may have lost them). Duplicates are harmless: the
//!   collector stores each (agent, seq) once.

use crate::outbox::Outbox;
use crate::status::{OutboxFigures, StatusReporter};
use coldaisle_core::wire::{Ack, Batch, Status, Topics, SCHEMA_VERSION};
use coldaisle_core::Timestamp;
use coldaisle_mqtt::{LinkEvent, MqttLink, Qos};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// Records sent beyond the last ack before we wait for acks.
pub const MAX_UNACKED_RECORDS: u64 = 5_000;
/// Records per batch.
pub const MAX_BATCH_RECORDS: usize = 500;
/// Bytes per batch (well below the MQTT packet limit).
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// What the publisher needs to know.
#[derive(Debug, Clone)]
pub struct PublisherSettings {
    /// Agent id.
    pub agent: String,
    /// Site.
    pub site: String,
    /// Topic names.
    pub topics: Topics,
    /// Resend when no ack advanced for this long.
    pub resend_after: Duration,
    /// Config hash for the status.
    pub config_hash: String,
}

impl PublisherSettings {
    /// The status payload in a given state (`online` / `offline`).
    pub fn status(&self, state: &str) -> Vec<u8> {
        let status = Status {
            state: state.to_string(),
            agent: self.agent.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            config_hash: self.config_hash.clone(),
            ts: Timestamp::now(),
            stats: Default::default(),
        };
        serde_json::to_vec(&status).unwrap_or_default()
    }
}

/// Shared outbox handle: the pipeline appends, the publisher reads and acks.
pub type SharedOutbox = Arc<Mutex<Outbox>>;

fn lock(outbox: &SharedOutbox) -> std::sync::MutexGuard<'_, Outbox> {
    outbox.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The status of `reporter` in `state`, with the outbox figures, as a payload.
fn status_payload(
    settings: &PublisherSettings,
    reporter: &StatusReporter,
    outbox: &SharedOutbox,
    state: &str,
) -> Vec<u8> {
    let figures = {
        let o = lock(outbox);
        OutboxFigures {
            pending_records: o.pending_count(),
            pending_bytes: o.bytes(),
            stats: o.stats(),
        }
    };
    let status = reporter
        .book()
        .status(&settings.agent, state, &figures, Timestamp::now());
    serde_json::to_vec(&status).unwrap_or_default()
}

/// Runs until `shutdown` turns true; then publishes `offline` and disconnects. The status
/// carries the settings' config hash and the outbox figures (no poll statistics).
pub async fn run(
    settings: PublisherSettings,
    link: MqttLink,
    outbox: SharedOutbox,
    appended: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
) {
    let reporter = StatusReporter::new(
        &settings.config_hash,
        0,
        crate::status::DEFAULT_STATUS_EVERY,
    );
    run_with_status(settings, reporter, link, outbox, appended, shutdown).await;
}

/// [`run`] with the agent's status reporter: the status is republished every
/// `reporter.every` while connected and at once when `reporter.changed` fires.
pub async fn run_with_status(
    settings: PublisherSettings,
    reporter: StatusReporter,
    mut link: MqttLink,
    outbox: SharedOutbox,
    appended: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let ack_topic = settings.topics.ack(&settings.site, &settings.agent);
    let events_topic = settings.topics.events(&settings.site, &settings.agent);
    let status_topic = settings.topics.status(&settings.site, &settings.agent);
    let mut connected = false;
    let mut sent_upto = 0u64;
    let mut last_progress = Instant::now();
    let mut resend_check = tokio::time::interval(Duration::from_millis(500));
    let mut status_tick = tokio::time::interval(reporter.every);
    status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    status_tick.reset();
    loop {
        tokio::select! {
            event = link.events.recv() => {
                let Some(event) = event else { break };
                match event {
                    LinkEvent::Connected => {
                        connected = true;
                        reporter.book().mqtt.connected();
                        if let Err(e) = link.client.subscribe(ack_topic.clone(), Qos::AtLeastOnce).await {
                            tracing::warn!(error = %e, "subscribe to ack topic failed");
                        }
                        let online = status_payload(&settings, &reporter, &outbox, "online");
                        if let Err(e) = link.client.publish(status_topic.clone(), Qos::AtLeastOnce, true, online).await {
                            tracing::warn!(error = %e, "status publish failed");
                        }
                        sent_upto = lock(&outbox).acked();
                        last_progress = Instant::now();
                    }
                    LinkEvent::Disconnected(_) => {
                        connected = false;
                        reporter.book().mqtt.disconnected();
                    }
                    LinkEvent::Message { topic, payload } if topic == ack_topic => {
                        match serde_json::from_slice::<Ack>(&payload) {
                            Ok(ack) => {
                                if let Some(collector_now) = ack.now {
                                    let skew = coldaisle_core::Timestamp::now().0 - collector_now.0;
                                    reporter.book().clock_skew_ms = Some(skew);
                                }
                                if ack.hello {
                                    // A collector (re)connected: what we resent before reached
                                    // nobody if it was away, so resend what it lacks now.
                                    let pending = lock(&outbox).pending_count();
                                    if pending > 0 {
                                        tracing::info!(upto = ack.upto, pending, "collector is here; resending");
                                        sent_upto = ack.upto.max(lock(&outbox).acked());
                                        last_progress = Instant::now();
                                    }
                                }
                                let outbox = outbox.clone();
                                let removed = tokio::task::spawn_blocking(move || lock(&outbox).ack(ack.upto)).await;
                                match removed {
                                    Ok(Ok(n)) if n > 0 => {
                                        last_progress = Instant::now();
                                        tracing::debug!(upto = ack.upto, removed = n, "ack applied");
                                    }
                                    Ok(Ok(_)) => {}
                                    Ok(Err(e)) => tracing::error!(error = %e, "applying ack failed"),
                                    Err(e) => tracing::error!(error = %e, "ack task failed"),
                                }
                            }
                            Err(e) => tracing::warn!(%topic, error = %e, "malformed ack ignored"),
                        }
                    }
                    LinkEvent::Message { topic, .. } => tracing::debug!(%topic, "unexpected message ignored"),
                }
            }
            _ = appended.notified() => {}
            _ = reporter.changed.notified() => {
                if connected {
                    publish_status(&link, &status_topic, status_payload(&settings, &reporter, &outbox, "online")).await;
                }
            }
            _ = status_tick.tick() => {
                if connected {
                    publish_status(&link, &status_topic, status_payload(&settings, &reporter, &outbox, "online")).await;
                }
            }
            _ = resend_check.tick() => {
                let (acked, pending) = {
                    let o = lock(&outbox);
                    (o.acked(), o.pending_count())
                };
                if connected && pending > 0 && last_progress.elapsed() >= settings.resend_after {
                    tracing::info!(from = acked + 1, pending, "no ack lately; resending");
                    sent_upto = acked;
                    last_progress = Instant::now();
                }
            }
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    break;
                }
            }
        }
        if connected {
            sent_upto = send_pending(&settings, &link, &outbox, &events_topic, sent_upto).await;
        }
    }
    if connected {
        let offline = status_payload(&settings, &reporter, &outbox, "offline");
        let _ = link
            .client
            .publish(status_topic, Qos::AtLeastOnce, true, offline)
            .await;
    }
    link.close().await;
}

/// Publishes a retained status (a failure is logged; the next period retries).
async fn publish_status(link: &MqttLink, topic: &str, payload: Vec<u8>) {
    match link
        .client
        .publish(topic.to_string(), Qos::AtLeastOnce, true, payload)
        .await
    {
        Ok(()) => tracing::debug!(%topic, "status published"),
        Err(e) => tracing::warn!(error = %e, "status publish failed"),
    }
}

/// Publishes batches above `sent_upto`; returns the new `sent_upto`.
async fn send_pending(
    settings: &PublisherSettings,
    link: &MqttLink,
    outbox: &SharedOutbox,
    topic: &str,
    mut sent_upto: u64,
) -> u64 {
    loop {
        let (records, floor, dropped, last_seq, instance) = {
            let mut o = lock(outbox);
            if sent_upto.saturating_sub(o.acked()) >= MAX_UNACKED_RECORDS {
                return sent_upto;
            }
            match o.pending_after(sent_upto, MAX_BATCH_RECORDS, MAX_BATCH_BYTES) {
                Ok(r) => (
                    r,
                    o.floor(),
                    o.dropped().to_vec(),
                    o.next_seq() - 1,
                    o.instance().to_string(),
                ),
                Err(e) => {
                    tracing::error!(error = %e, "reading the outbox failed");
                    return sent_upto;
                }
            }
        };
        // Nothing left to send but dropped seqs the collector has not heard of: send them in
        // an empty batch so its ack can move past them.
        let last = match records.last() {
            Some(r) => r.seq,
            None if !dropped.is_empty() && sent_upto < last_seq => last_seq,
            None => return sent_upto.max(floor - 1),
        };
        let batch = Batch {
            schema: SCHEMA_VERSION,
            agent: settings.agent.clone(),
            site: settings.site.clone(),
            floor,
            records,
            dropped,
            instance: Some(instance),
        };
        let payload = match serde_json::to_vec(&batch) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "encoding a batch failed");
                return sent_upto;
            }
        };
        if let Err(e) = link
            .client
            .publish(topic.to_string(), Qos::AtLeastOnce, false, payload)
            .await
        {
            tracing::warn!(error = %e, "publish failed; will resend");
            return sent_upto;
        }
        tracing::debug!(
            upto = last,
            records = batch.records.len(),
            "batch published"
        );
        sent_upto = last;
    }
}
