//! The collector's `GET /metrics` (Prometheus text format, on the API port, behind the API's
//! access control: scope `read`).
//!
//! [`figures`] reads what the collector already keeps (ingest counters, the analysis, the
//! notifier's figures, store tree sizes) under one read lock; [`render`] is pure and writes it
//! with [`coldaisle_core::prom_text`]. Labels have bounded values only: outcomes and refusal
//! reasons (fixed words), categories (five), receiver and tree names (from the config and the
//! code) — never an agent, seq or event id.
//!
//! Tree sizes are the counts kept on every write and delete ([`crate::tree_sizes`]), read
//! from the store in O(1) (one lookup per counted tree), never a scan: scraping costs the same
//! whatever the history held.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `coldaisle_collector_batches_total` | counter | |
//! | `coldaisle_collector_records_total` | counter | `outcome` (`stored`, `duplicate`) |
//! | `coldaisle_collector_refused_batches_total` | counter | `reason` |
//! | `coldaisle_collector_malformed_payloads_total` | counter | |
//! | `coldaisle_collector_records_ahead_of_clock_total` | counter | |
//! | `coldaisle_collector_agents`, `coldaisle_collector_agents_silent` | gauge | |
//! | `coldaisle_collector_records_missing` | gauge (records seen above the contiguous ack, all agents) | |
//! | `coldaisle_collector_analysis_events` | gauge | |
//! | `coldaisle_collector_analysis_replays_total`, `coldaisle_collector_orphan_clears_total` | counter | |
//! | `coldaisle_collector_analysis_late_events_total` | counter (events and actions older than the analysis's horizon: stored, applied to nothing) | |
//! | `coldaisle_collector_latest_event_timestamp_seconds` | gauge | |
//! | `coldaisle_collector_analysis_lag_seconds` | gauge (collector clock minus the latest event time, ≥ 0) | |
//! | `coldaisle_collector_incidents_open`, `coldaisle_collector_problems_open` | gauge | `category` |
//! | `coldaisle_collector_notify_queue_jobs`, `coldaisle_collector_notify_queue_notifications` | gauge | |
//! | `coldaisle_collector_notify_deliveries_total` | counter | `receiver` |
//! | `coldaisle_collector_notify_delivery_failures_total` | counter | `receiver`, `kind` (`retry`, `permanent`, `no_receiver`) |
//! | `coldaisle_collector_store_tree_entries`, `coldaisle_collector_store_tree_bytes` | gauge | `tree` |
//! | `coldaisle_collector_build_info` | gauge (1) | `version` |

use crate::incidents::IncidentStatus;
use crate::report::incident_time;
use crate::rollup_store::TreeSize;
use crate::state::{IngestStats, NotifyFigures, SharedState};
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use coldaisle_core::prom_text::{Exposition, Kind};
use coldaisle_core::{Category, Timestamp};
use std::collections::BTreeMap;

/// Every category, so an idle category shows 0 instead of disappearing.
const CATEGORIES: [Category; 5] = [
    Category::Thermal,
    Category::Humidity,
    Category::Cooling,
    Category::Power,
    Category::Device,
];

/// What `/metrics` shows, read at one instant.
#[derive(Debug, Clone)]
pub struct CollectorFigures {
    /// Ingest counters.
    pub ingest: IngestStats,
    /// Agents known.
    pub agents: usize,
    /// Agents with no batch or status for longer than `agent_silence`.
    pub agents_silent: usize,
    /// Sum over agents of the seqs seen above the contiguous ack (still missing).
    pub records_missing: u64,
    /// Events held by the analysis.
    pub events: usize,
    /// Scope replays caused by late events.
    pub replays: u64,
    /// Clears that matched no live incident.
    pub orphan_clears: u64,
    /// Inputs older than the analysis's horizon (stored, applied to nothing).
    pub late_events: u64,
    /// Latest event time seen (`Timestamp(0)`: none yet).
    pub latest_event: Timestamp,
    /// The collector's clock.
    pub now: Timestamp,
    /// Open incidents by category.
    pub incidents_open: BTreeMap<Category, u64>,
    /// Problems not resolved, by category.
    pub problems_open: BTreeMap<Category, u64>,
    /// Notifier queue and counters.
    pub notify: NotifyFigures,
    /// Entries and bytes per store tree.
    pub trees: Vec<TreeSize>,
}

/// Entries and bytes of the counted store trees, from their kept counts (O(1) in history;
/// empty without a store, or logged and empty when the store fails).
pub async fn tree_sizes(state: &SharedState) -> Vec<TreeSize> {
    let Some(rollups) = state.read().await.rollups.clone() else {
        return Vec::new();
    };
    let read =
        tokio::task::spawn_blocking(move || crate::tree_sizes::read(rollups.kv().as_ref())).await;
    // One log line whichever failed: the store, or the blocking task (panicked or cancelled).
    let error = match read {
        Ok(Ok(sizes)) => return sizes,
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    tracing::error!(%error, "reading tree sizes failed");
    Vec::new()
}

/// Who may scrape `/metrics`.
#[derive(Clone)]
pub struct ScrapeAccess {
    /// The API's tokens (scope `read` reads).
    pub access: crate::auth::Access,
    /// `[http] metrics_open_on_loopback`: a loopback peer needs no token.
    pub open_on_loopback: bool,
}

/// The middleware of `/metrics`: a loopback peer passes when `open_on_loopback` (the peer
/// address comes from `ConnectInfo`; a request without one is not taken as loopback), every
/// other request goes through [`crate::auth::require`].
pub async fn scrape_access(
    State(scrape): State<ScrapeAccess>,
    request: Request,
    next: Next,
) -> Response {
    let from_loopback = request
        .extensions()
        .get::<ConnectInfo<crate::http::PeerAddr>>()
        .is_some_and(|ConnectInfo(peer)| peer.0.ip().is_loopback());
    if scrape.open_on_loopback && from_loopback {
        return next.run(request).await;
    }
    crate::auth::require(State(scrape.access), request, next).await
}

/// Reads the figures at `now` (one read lock; tree sizes from their counts; silent agents by
/// `silence`).
pub async fn figures(
    state: &SharedState,
    silence: &crate::silence::SilenceRule,
    now: Timestamp,
) -> CollectorFigures {
    let trees = tree_sizes(state).await;
    let state = state.read().await;
    let mut incidents_open = BTreeMap::new();
    for i in state.analysis.incidents(incident_time(&state, now)) {
        if i.status == IncidentStatus::Open {
            *incidents_open.entry(i.fingerprint.category).or_default() += 1;
        }
    }
    let mut problems_open = BTreeMap::new();
    for p in state.analysis.problems() {
        if p.status.is_open() {
            *problems_open.entry(p.fingerprint.category).or_default() += 1;
        }
    }
    CollectorFigures {
        ingest: state.stats.clone(),
        agents: state.agents.len(),
        agents_silent: state
            .agents
            .values()
            .filter(|a| silence.is_silent(a, now))
            .count(),
        records_missing: state
            .agents
            .values()
            .map(|a| a.highest_seen.saturating_sub(a.acked_upto))
            .sum(),
        events: state.analysis.event_count(),
        replays: state.analysis.rebuilds(),
        orphan_clears: state.analysis.orphan_clears(),
        late_events: state.analysis.too_late(),
        latest_event: state.latest_event,
        now,
        incidents_open,
        problems_open,
        notify: state.notify.clone(),
        trees,
    }
}

/// The collector's metrics as Prometheus text.
pub fn render(f: &CollectorFigures) -> String {
    let mut e = Exposition::new();
    let i = &f.ingest;
    e.single(
        "coldaisle_collector_batches_total",
        Kind::Counter,
        "Batches received from agents.",
        i.batches as f64,
    );
    e.family(
        "coldaisle_collector_records_total",
        Kind::Counter,
        "Records of accepted batches: stored (new) or duplicate (received again, ignored).",
    )
    .sample(
        "coldaisle_collector_records_total",
        &[("outcome", "stored")],
        i.stored as f64,
    )
    .sample(
        "coldaisle_collector_records_total",
        &[("outcome", "duplicate")],
        i.duplicates as f64,
    );
    e.family(
        "coldaisle_collector_refused_batches_total",
        Kind::Counter,
        "Batches refused (not stored, not acked), by reason.",
    );
    for (reason, n) in &i.refused {
        e.sample(
            "coldaisle_collector_refused_batches_total",
            &[("reason", reason)],
            *n as f64,
        );
    }
    e.single(
        "coldaisle_collector_malformed_payloads_total",
        Kind::Counter,
        "Payloads that did not parse or were inconsistent.",
        i.malformed as f64,
    );
    e.single(
        "coldaisle_collector_records_ahead_of_clock_total",
        Kind::Counter,
        "Records stamped beyond ingest.max_clock_skew ahead of the collector's clock.",
        i.ahead_of_clock as f64,
    );
    e.single(
        "coldaisle_collector_agents",
        Kind::Gauge,
        "Agents known.",
        f.agents as f64,
    );
    e.single(
        "coldaisle_collector_agents_silent",
        Kind::Gauge,
        "Agents with no batch or status for longer than agent_silence.",
        f.agents_silent as f64,
    );
    e.single(
        "coldaisle_collector_records_missing",
        Kind::Gauge,
        "Records seen above the contiguous ack, summed over agents (still to arrive).",
        f.records_missing as f64,
    );
    e.single(
        "coldaisle_collector_analysis_events",
        Kind::Gauge,
        "Incident-relevant events held by the analysis.",
        f.events as f64,
    );
    e.single(
        "coldaisle_collector_analysis_replays_total",
        Kind::Counter,
        "Scope replays of the analysis caused by late events.",
        f.replays as f64,
    );
    e.single(
        "coldaisle_collector_orphan_clears_total",
        Kind::Counter,
        "Clears that matched no live incident.",
        f.orphan_clears as f64,
    );
    e.single(
        "coldaisle_collector_analysis_late_events_total",
        Kind::Counter,
        "Events and actions older than the analysis horizon: stored, applied to nothing.",
        f.late_events as f64,
    );
    if f.latest_event.millis() > 0 {
        e.single(
            "coldaisle_collector_latest_event_timestamp_seconds",
            Kind::Gauge,
            "Event time of the latest record analysed (Unix seconds).",
            f.latest_event.millis() as f64 / 1000.0,
        );
        e.single(
            "coldaisle_collector_analysis_lag_seconds",
            Kind::Gauge,
            "Collector clock minus the latest analysed event time (0 when ahead).",
            f.now.since(f.latest_event).as_secs_f64(),
        );
    }
    for (name, help, counts) in [
        (
            "coldaisle_collector_incidents_open",
            "Incidents open now, by category.",
            &f.incidents_open,
        ),
        (
            "coldaisle_collector_problems_open",
            "Problems not resolved, by category.",
            &f.problems_open,
        ),
    ] {
        e.family(name, Kind::Gauge, help);
        for c in CATEGORIES {
            let n = counts.get(&c).copied().unwrap_or(0);
            e.sample(name, &[("category", c.as_str())], n as f64);
        }
    }
    let n = &f.notify;
    e.single(
        "coldaisle_collector_notify_queue_jobs",
        Kind::Gauge,
        "Notification jobs (one batch for one receiver) waiting in the durable queue.",
        n.queued_jobs as f64,
    );
    e.single(
        "coldaisle_collector_notify_queue_notifications",
        Kind::Gauge,
        "Notifications in the queued jobs.",
        n.queued_notifications as f64,
    );
    e.family(
        "coldaisle_collector_notify_deliveries_total",
        Kind::Counter,
        "Notification jobs delivered, by receiver.",
    );
    for (receiver, count) in &n.delivered {
        e.sample(
            "coldaisle_collector_notify_deliveries_total",
            &[("receiver", receiver)],
            *count as f64,
        );
    }
    e.family(
        "coldaisle_collector_notify_delivery_failures_total",
        Kind::Counter,
        "Failed deliveries by receiver and kind (retry: kept queued; permanent, no_receiver: dropped).",
    );
    for ((receiver, kind), count) in &n.failures {
        e.sample(
            "coldaisle_collector_notify_delivery_failures_total",
            &[("receiver", receiver), ("kind", kind)],
            *count as f64,
        );
    }
    e.family(
        "coldaisle_collector_store_tree_entries",
        Kind::Gauge,
        "Entries per store tree (scanned at most once a minute).",
    );
    for t in &f.trees {
        e.sample(
            "coldaisle_collector_store_tree_entries",
            &[("tree", &t.tree)],
            t.entries as f64,
        );
    }
    e.family(
        "coldaisle_collector_store_tree_bytes",
        Kind::Gauge,
        "Key and value bytes per store tree (backend overhead not counted).",
    );
    for t in &f.trees {
        e.sample(
            "coldaisle_collector_store_tree_bytes",
            &[("tree", &t.tree)],
            t.bytes as f64,
        );
    }
    e.family(
        "coldaisle_collector_build_info",
        Kind::Gauge,
        "Always 1; the collector's version as a label.",
    )
    .sample(
        "coldaisle_collector_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    e.finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{header, Request, StatusCode};
    use std::net::SocketAddr;
    use std::sync::Arc;
    use tower::ServiceExt;

    /// `GET /metrics` through the API router with a `read` token book, as `token`.
    async fn scrape(token: Option<&str>) -> (StatusCode, String, String) {
        scrape_from(token, None, false).await
    }

    /// [`scrape`] from the peer `peer`, with `[http] metrics_open_on_loopback = open`.
    async fn scrape_from(
        token: Option<&str>,
        peer: Option<&str>,
        open: bool,
    ) -> (StatusCode, String, String) {
        use crate::auth::{hash_token, to_hex, TokenBook};
        let text = format!("graf read {}\n", to_hex(&hash_token("graf-token")));
        let book = TokenBook::parse(&text, std::path::Path::new("tokens")).unwrap();
        let state = Arc::new(tokio::sync::RwLock::new(crate::report::tests::sample()));
        let now = Timestamp(crate::report::tests::T0 + 24 * crate::report::tests::HOUR);
        let mut options = crate::http::ApiOptions::new(state, Arc::new(move || now));
        options.access = crate::auth::Access::Tokens {
            path: "tokens".into(),
            book: Arc::new(std::sync::RwLock::new(book)),
        };
        options.metrics_open_on_loopback = open;
        let mut request = Request::builder().uri("/metrics");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(peer) = peer {
            let peer: SocketAddr = peer.parse().unwrap();
            request = request.extension(ConnectInfo(crate::http::PeerAddr(peer)));
        }
        let response = crate::http::router(options)
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            content_type,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn metrics_route_needs_a_read_token_and_reads_the_state() {
        let (status, _, _) = scrape(None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, content_type, text) = scrape(Some("graf-token")).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert_eq!(content_type, coldaisle_core::prom_text::CONTENT_TYPE);
        // The sample state holds one open thermal incident (rack R2).
        assert!(
            text.contains("coldaisle_collector_incidents_open{category=\"thermal\"} 1\n"),
            "{text}"
        );
    }

    fn sample() -> CollectorFigures {
        let mut ingest = IngestStats {
            batches: 4,
            stored: 10,
            duplicates: 2,
            ..IngestStats::default()
        };
        ingest.refused.insert("site_mismatch", 1);
        let mut notify = NotifyFigures {
            queued_jobs: 1,
            queued_notifications: 3,
            ..NotifyFigures::default()
        };
        notify.delivered.insert("am".into(), 5);
        notify.failures.insert(("am".into(), "retry"), 2);
        CollectorFigures {
            ingest,
            agents: 2,
            agents_silent: 1,
            records_missing: 4,
            events: 7,
            replays: 0,
            orphan_clears: 0,
            late_events: 3,
            latest_event: Timestamp(1_000_000),
            now: Timestamp(1_090_000),
            incidents_open: BTreeMap::from([(Category::Thermal, 2)]),
            problems_open: BTreeMap::new(),
            notify,
            trees: vec![TreeSize {
                tree: "records".into(),
                entries: 12,
                bytes: 3400,
            }],
        }
    }

    #[test]
    fn renders_counters_gauges_and_bounded_labels() {
        let text = render(&sample());
        for line in [
            "coldaisle_collector_records_total{outcome=\"stored\"} 10",
            "coldaisle_collector_records_total{outcome=\"duplicate\"} 2",
            "coldaisle_collector_refused_batches_total{reason=\"site_mismatch\"} 1",
            "coldaisle_collector_analysis_lag_seconds 90",
            "coldaisle_collector_agents_silent 1",
            "coldaisle_collector_records_missing 4",
            "coldaisle_collector_analysis_late_events_total 3",
            "coldaisle_collector_latest_event_timestamp_seconds 1000",
            "coldaisle_collector_incidents_open{category=\"thermal\"} 2",
            "coldaisle_collector_incidents_open{category=\"device\"} 0",
            "coldaisle_collector_problems_open{category=\"cooling\"} 0",
            "coldaisle_collector_notify_queue_notifications 3",
            "coldaisle_collector_notify_deliveries_total{receiver=\"am\"} 5",
            "coldaisle_collector_notify_delivery_failures_total{receiver=\"am\",kind=\"retry\"} 2",
            "coldaisle_collector_store_tree_bytes{tree=\"records\"} 3400",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }

    #[tokio::test]
    async fn loopback_scrapes_without_a_token_only_when_switched_on() {
        let (status, _, text) = scrape_from(None, Some("127.0.0.1:40000"), true).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let (status, _, _) = scrape_from(None, Some("[::1]:40000"), true).await;
        assert_eq!(status, StatusCode::OK);
        for (peer, open) in [
            (Some("10.1.2.3:40000"), true),
            (None, true),
            (Some("127.0.0.1:40000"), false),
        ] {
            let (status, _, _) = scrape_from(None, peer, open).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{peer:?} open={open}");
        }
        // A token still works from anywhere, and the switch opens nothing else.
        let (status, _, _) = scrape_from(Some("graf-token"), Some("10.1.2.3:1"), true).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[test]
    fn no_lag_before_the_first_event_and_none_negative() {
        let mut f = sample();
        f.latest_event = Timestamp(0);
        assert!(!render(&f).contains("analysis_lag"));
        f.latest_event = Timestamp(2_000_000);
        assert!(render(&f).contains("coldaisle_collector_analysis_lag_seconds 0\n"));
    }
}
