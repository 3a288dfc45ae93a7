//! The agent's optional Prometheus endpoint (`[metrics] listen`): `GET /metrics` in the text
//! exposition format, served with axum on its own listener (no other route; off unless
//! configured).
//!
//! [`render`] is pure: it turns the figures the agent already keeps (the status book, the
//! per-device poll figures, the outbox figures) into text with
//! [`coldaisle_core::prom_text`]. Labels are device ids and fixed words only (never a seq or
//! a sensor reading), so the series count is bounded by the config.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `coldaisle_agent_polls_total` | counter | `device` |
//! | `coldaisle_agent_poll_errors_total` | counter | `device`, `kind` (`timeout`, `io`, `protocol`, `config`) |
//! | `coldaisle_agent_poll_duration_seconds` | histogram | `device` |
//! | `coldaisle_agent_devices`, `coldaisle_agent_devices_unreachable` | gauge | |
//! | `coldaisle_agent_outbox_records`, `coldaisle_agent_outbox_bytes` | gauge | |
//! | `coldaisle_agent_outbox_dropped_records_total` | counter | `kind` (`summary`, `event`, `corrupt`, `unwritten`) |
//! | `coldaisle_agent_outbox_write_failures_total` | counter | |
//! | `coldaisle_agent_outbox_unwritten_records` | gauge | |
//! | `coldaisle_agent_mqtt_up` | gauge | |
//! | `coldaisle_agent_mqtt_connections_total`, `coldaisle_agent_mqtt_disconnections_total` | counter | |
//! | `coldaisle_agent_clock_skew_seconds` | gauge (only once an ack carried the collector's time) | |
//! | `coldaisle_agent_build_info` | gauge (1) | `version` |

use crate::poll_metrics::{DeviceFigures, PollMetrics};
use crate::publisher::SharedOutbox;
use crate::status::{OutboxFigures, StatusBook, StatusReporter};
use anyhow::Context as _;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use coldaisle_core::prom_text::{Exposition, Kind, CONTENT_TYPE};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::PoisonError;
use tokio::sync::watch;

/// What `/metrics` reads, all shared with the running agent.
#[derive(Debug, Clone)]
pub struct MetricsSources {
    /// Poll counters, MQTT state, clock skew.
    pub status: StatusReporter,
    /// Per-device poll figures.
    pub polls: PollMetrics,
    /// Outbox depth and drop counters.
    pub outbox: SharedOutbox,
}

impl MetricsSources {
    /// The exposition now.
    pub fn scrape(&self) -> String {
        let outbox = {
            let o = self.outbox.lock().unwrap_or_else(PoisonError::into_inner);
            OutboxFigures {
                pending_records: o.pending_count(),
                pending_bytes: o.bytes(),
                stats: o.stats(),
            }
        };
        let book = self.status.book().clone();
        render(&book, &self.polls.snapshot(), &outbox)
    }
}

/// The agent's metrics as Prometheus text.
pub fn render(
    book: &StatusBook,
    polls: &BTreeMap<String, DeviceFigures>,
    outbox: &OutboxFigures,
) -> String {
    let mut e = Exposition::new();
    e.family(
        "coldaisle_agent_polls_total",
        Kind::Counter,
        "Device polls finished (answered or failed), per device.",
    );
    for (device, f) in polls {
        e.sample(
            "coldaisle_agent_polls_total",
            &[("device", device)],
            f.polls as f64,
        );
    }
    e.family(
        "coldaisle_agent_poll_errors_total",
        Kind::Counter,
        "Device polls that failed, per device and failure kind.",
    );
    for (device, f) in polls {
        for (kind, n) in &f.errors {
            e.sample(
                "coldaisle_agent_poll_errors_total",
                &[("device", device), ("kind", kind)],
                *n as f64,
            );
        }
    }
    e.family(
        "coldaisle_agent_poll_duration_seconds",
        Kind::Histogram,
        "Time a device poll took (a timeout counts its deadline), per device.",
    );
    for (device, f) in polls {
        e.histogram(
            "coldaisle_agent_poll_duration_seconds",
            &[("device", device)],
            &f.duration,
        );
    }
    e.single(
        "coldaisle_agent_devices",
        Kind::Gauge,
        "Devices in the config in force.",
        book.devices as f64,
    );
    e.single(
        "coldaisle_agent_devices_unreachable",
        Kind::Gauge,
        "Devices whose last poll failed.",
        book.polls.unreachable() as f64,
    );
    e.single(
        "coldaisle_agent_outbox_records",
        Kind::Gauge,
        "Records in the outbox not yet acknowledged by the collector.",
        outbox.pending_records as f64,
    );
    e.single(
        "coldaisle_agent_outbox_bytes",
        Kind::Gauge,
        "Bytes held by the outbox.",
        outbox.pending_bytes as f64,
    );
    let s = &outbox.stats;
    e.family(
        "coldaisle_agent_outbox_dropped_records_total",
        Kind::Counter,
        "Records the outbox gave up: summary/event by the byte quota, corrupt on recovery, unwritten while the disk refused writes.",
    );
    for (kind, n) in [
        ("summary", s.dropped_summaries),
        ("event", s.dropped_events),
        ("corrupt", s.corrupt),
        ("unwritten", s.unwritten_dropped),
    ] {
        e.sample(
            "coldaisle_agent_outbox_dropped_records_total",
            &[("kind", kind)],
            n as f64,
        );
    }
    e.single(
        "coldaisle_agent_outbox_write_failures_total",
        Kind::Counter,
        "Outbox writes (apply or flush) the store refused.",
        s.write_failures as f64,
    );
    e.single(
        "coldaisle_agent_outbox_unwritten_records",
        Kind::Gauge,
        "Payloads held in memory because their outbox write failed.",
        s.unwritten as f64,
    );
    e.single(
        "coldaisle_agent_mqtt_up",
        Kind::Gauge,
        "1 while connected to the broker, 0 otherwise.",
        if book.mqtt.up { 1.0 } else { 0.0 },
    );
    e.single(
        "coldaisle_agent_mqtt_connections_total",
        Kind::Counter,
        "Broker connections accepted since start (reconnects included).",
        book.mqtt.connects as f64,
    );
    e.single(
        "coldaisle_agent_mqtt_disconnections_total",
        Kind::Counter,
        "Broker connections that failed or dropped since start.",
        book.mqtt.disconnects as f64,
    );
    if let Some(ms) = book.clock_skew_ms {
        e.single(
            "coldaisle_agent_clock_skew_seconds",
            Kind::Gauge,
            "Agent clock minus the collector's, from the latest ack.",
            ms as f64 / 1000.0,
        );
    }
    e.family(
        "coldaisle_agent_build_info",
        Kind::Gauge,
        "Always 1; the agent's version as a label.",
    )
    .sample(
        "coldaisle_agent_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    e.finish()
}

/// Binds `listen` (errors name `[metrics] listen`) and serves `GET /metrics` from `sources`
/// until `shutdown` turns true. Must be called inside the runtime.
pub fn start(
    listen: SocketAddr,
    sources: MetricsSources,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    let listener = std::net::TcpListener::bind(listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .and_then(tokio::net::TcpListener::from_std)
        .with_context(|| format!("binding the metrics endpoint ([metrics] listen = {listen})"))?;
    tracing::info!(%listen, "metrics served on /metrics");
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(sources);
    Ok(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(%listen, error = %e, "metrics endpoint failed");
        }
    })
}

async fn metrics(State(sources): State<MetricsSources>) -> impl IntoResponse {
    let body = tokio::task::spawn_blocking(move || sources.scrape()).await;
    match body {
        Ok(body) => (StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], body),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("metrics failed: {e}\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::MqttFigures;
    use std::time::Duration;

    #[test]
    fn renders_every_family_with_device_labels() {
        let polls = PollMetrics::default();
        polls.record("pdu \"1\"", Duration::from_millis(30), None);
        polls.record(
            "pdu \"1\"",
            Duration::from_millis(40),
            Some(&crate::poller::PollError::Protocol("bad".into())),
        );
        let mut book = StatusBook {
            devices: 2,
            mqtt: MqttFigures::default(),
            clock_skew_ms: Some(-1500),
            ..StatusBook::default()
        };
        book.mqtt.connected();
        let mut outbox = OutboxFigures {
            pending_records: 7,
            pending_bytes: 900,
            ..OutboxFigures::default()
        };
        outbox.stats.dropped_events = 3;
        let text = render(&book, &polls.snapshot(), &outbox);
        for line in [
            "coldaisle_agent_polls_total{device=\"pdu \\\"1\\\"\"} 2",
            "coldaisle_agent_poll_errors_total{device=\"pdu \\\"1\\\"\",kind=\"protocol\"} 1",
            "coldaisle_agent_poll_duration_seconds_count{device=\"pdu \\\"1\\\"\"} 2",
            "coldaisle_agent_devices 2",
            "coldaisle_agent_outbox_records 7",
            "coldaisle_agent_outbox_bytes 900",
            "coldaisle_agent_outbox_dropped_records_total{kind=\"event\"} 3",
            "coldaisle_agent_mqtt_up 1",
            "coldaisle_agent_mqtt_connections_total 1",
            "coldaisle_agent_clock_skew_seconds -1.5",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        // One HELP and one TYPE per family, never repeated.
        let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE")).collect();
        let mut unique = types.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(types.len(), unique.len());
    }
}
