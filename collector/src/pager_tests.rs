//! Tests of the pager adapters and the notifier's durable queue against a local recording HTTP
//! server (axum): payload shapes, HMAC signature, retries on 5xx and 429 with `Retry-After`,
//! and no duplicate trigger after a restart.

#![allow(clippy::unwrap_used)]

use crate::analysis::Analysis;
use crate::incidents::tests::{sensor, MIN, T0};
use crate::incidents::IncidentRules;
use crate::notifier::{Notifier, NotifyStore, SilenceBook};
use crate::notify_plan::{NoiseRules, Notification, Phase, Route, Subject, SubjectKind};
use crate::pagers::{build, signature, DeliveryError, Pager};
use crate::problems::ProblemRules;
use crate::report::tests::state;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use coldaisle_config::notify::{ReceiverConfig, ReceiverKind};
use coldaisle_core::EventState::Raised;
use coldaisle_core::{Severity, Timestamp};
use coldaisle_store::{KvStore, MemoryStore};
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One recorded request.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: HeaderMap,
    body: Value,
    /// The exact bytes received.
    raw: Vec<u8>,
}

/// What the mock answers next (default 202), and what it saw.
#[derive(Default)]
struct Mock {
    answers: Mutex<VecDeque<(u16, Option<&'static str>)>>,
    seen: Mutex<Vec<Seen>>,
}

async fn record(
    State(mock): State<Arc<Mock>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    mock.seen.lock().unwrap().push(Seen {
        path: uri.to_string(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: body.to_vec(),
    });
    let (status, retry_after) = mock
        .answers
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or((202, None));
    let status = StatusCode::from_u16(status).unwrap();
    match retry_after {
        Some(r) => (status, [("retry-after", r)], "{}").into_response(),
        None => (status, "{}").into_response(),
    }
}

/// Starts a fresh mock on a free port; returns it and its base URL.
async fn mock_server() -> (Arc<Mock>, String) {
    let mock = Arc::new(Mock::default());
    let app = axum::Router::new()
        .fallback(record)
        .with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (mock, format!("http://{addr}"))
}

fn receiver(kind: ReceiverKind, url: &str) -> ReceiverConfig {
    ReceiverConfig {
        url_file: None,
        name: "r1".into(),
        kind,
        url: Some(url.to_string()),
        secret_file: None,
        timeout: Duration::from_secs(5),
        ca_file: None,
    }
}

/// [`build`], which fails only on an unreadable `ca_file`.
fn pager(config: &ReceiverConfig, secret: Option<String>) -> Box<dyn Pager> {
    build(config, secret).unwrap()
}

fn notification(phase: Phase) -> Notification {
    Notification {
        subject: Subject {
            key: format!("inc-dc1-z1-thermal-{T0}"),
            kind: SubjectKind::Incident,
            site: "dc1".into(),
            zone: "Z1".into(),
            category: "thermal".into(),
            severity: Severity::Critical,
            summary: "critical thermal incident in zone Z1 of dc1 (2 source(s) raised)".into(),
            started_at: Timestamp(T0),
            ended_at: (phase == Phase::Resolved).then_some(Timestamp(T0 + 30 * MIN)),
            workaround: Some("open the cold aisle doors".into()),
            probable_cause: Some("airflow or containment".into()),
        },
        phase,
        repeat: false,
    }
}

async fn deliver(pager: Arc<dyn Pager>, batch: Vec<Notification>) -> Result<(), DeliveryError> {
    tokio::task::spawn_blocking(move || pager.deliver(&batch, Timestamp(T0 + 40 * MIN)))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adapters_send_the_documented_payloads() {
    let (mock, url) = mock_server().await;
    let all = vec![
        notification(Phase::Firing),
        notification(Phase::Acknowledged),
        notification(Phase::Resolved),
    ];

    // Alertmanager: one request with every alert; endsAt only on the resolution.
    let am: Arc<dyn Pager> = Arc::from(pager(&receiver(ReceiverKind::Alertmanager, &url), None));
    deliver(am, all.clone()).await.unwrap();
    // Webhook: one signed request.
    let hook: Arc<dyn Pager> = Arc::from(pager(
        &receiver(ReceiverKind::Webhook, &format!("{url}/hook")),
        Some("s3cret\n".into()),
    ));
    deliver(hook, all.clone()).await.unwrap();
    // PagerDuty: one event per notification, same dedup key.
    let pd: Arc<dyn Pager> = Arc::from(pager(
        &receiver(ReceiverKind::Pagerduty, &url),
        Some("R0UTING".into()),
    ));
    deliver(pd, all.clone()).await.unwrap();
    // Slack: one message.
    let slack: Arc<dyn Pager> = Arc::from(pager(
        &receiver(ReceiverKind::Slack, &format!("{url}/slack")),
        None,
    ));
    deliver(slack, all.clone()).await.unwrap();
    // Opsgenie: create, acknowledge, close by alias.
    let og: Arc<dyn Pager> = Arc::from(pager(
        &receiver(ReceiverKind::Opsgenie, &url),
        Some("K3Y".into()),
    ));
    deliver(og, all.clone()).await.unwrap();

    let seen = mock.seen.lock().unwrap().clone();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    let id = format!("inc-dc1-z1-thermal-{T0}");
    assert_eq!(
        paths,
        vec![
            "/api/v2/alerts".to_string(),
            "/hook".into(),
            "/v2/enqueue".into(),
            "/v2/enqueue".into(),
            "/v2/enqueue".into(),
            "/slack".into(),
            "/v2/alerts".into(),
            format!("/v2/alerts/{id}/acknowledge?identifierType=alias"),
            format!("/v2/alerts/{id}/close?identifierType=alias"),
        ]
    );
    let alerts = seen[0].body.as_array().unwrap();
    assert_eq!(alerts.len(), 3);
    assert_eq!(alerts[0]["labels"]["site"], "dc1");
    assert_eq!(alerts[0]["labels"]["zone"], "Z1");
    assert_eq!(alerts[0]["labels"]["category"], "thermal");
    assert_eq!(alerts[0]["labels"]["severity"], "critical");
    assert_eq!(alerts[0]["labels"]["id"], id.as_str());
    assert_eq!(alerts[0]["startsAt"], "2025-11-25T12:00:00.000Z");
    assert!(alerts[0].get("endsAt").is_none());
    assert_eq!(alerts[2]["endsAt"], "2025-11-25T12:30:00.000Z");
    assert_eq!(
        alerts[0]["annotations"]["workaround"],
        "open the cold aisle doors"
    );

    // The signature is the HMAC-SHA256 of the exact body bytes, with the trimmed secret.
    let hook = &seen[1];
    let raw = hook.raw.clone();
    assert_eq!(
        hook.headers["x-coldaisle-signature"].to_str().unwrap(),
        signature("s3cret", &raw)
    );
    assert!(signature("s3cret", &raw).starts_with("sha256="));
    assert_ne!(signature("other", &raw), signature("s3cret", &raw));
    assert_eq!(hook.body["notifications"].as_array().unwrap().len(), 3);

    let actions: Vec<&str> = seen[2..5]
        .iter()
        .map(|s| s.body["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["trigger", "acknowledge", "resolve"]);
    assert!(seen[2..5]
        .iter()
        .all(|s| s.body["dedup_key"] == id.as_str() && s.body["routing_key"] == "R0UTING"));
    assert_eq!(seen[2].body["payload"]["severity"], "critical");
    assert_eq!(seen[2].body["payload"]["source"], "coldaisle/dc1/Z1");

    let text = seen[5].body["text"].as_str().unwrap();
    assert_eq!(text.lines().count(), 3);
    assert!(
        text.starts_with("[FIRING] critical thermal incident"),
        "{text}"
    );

    assert_eq!(seen[6].headers["authorization"], "GenieKey K3Y");
    assert_eq!(seen[6].body["alias"], id.as_str());
    assert_eq!(seen[6].body["priority"], "P1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_classified() {
    let (mock, url) = mock_server().await;
    mock.answers
        .lock()
        .unwrap()
        .extend([(503, None), (429, Some("7")), (400, None)]);
    let am: Arc<dyn Pager> = Arc::from(pager(&receiver(ReceiverKind::Alertmanager, &url), None));
    let batch = vec![notification(Phase::Firing)];
    assert!(matches!(
        deliver(am.clone(), batch.clone()).await,
        Err(DeliveryError::Retry {
            retry_after: None,
            ..
        })
    ));
    assert_eq!(
        deliver(am.clone(), batch.clone()).await,
        Err(DeliveryError::Retry {
            receiver: "r1".into(),
            message: format!("POST {url}/<redacted> answered 429"),
            retry_after: Some(Duration::from_secs(7)),
        })
    );
    assert!(matches!(
        deliver(am.clone(), batch.clone()).await,
        Err(DeliveryError::Permanent { .. })
    ));
    // Nobody listening: retry.
    let dead: Arc<dyn Pager> = Arc::from(pager(
        &receiver(ReceiverKind::Alertmanager, "http://127.0.0.1:9"),
        None,
    ));
    assert!(matches!(
        deliver(dead, batch).await,
        Err(DeliveryError::Retry { .. })
    ));
}

/// An analysis with one open incident (default rules): agent `a1`'s seq 1 raises sensor `r1`
/// of zone Z1 (site dc1) at `severity`, reading `celsius`, at `T0`.
fn one_raise(severity: Severity, celsius: f64) -> Analysis {
    let mut a = Analysis::new(IncidentRules::default(), ProblemRules::default());
    a.ingest(sensor("a1", 1, "Z1", "r1", Raised, severity, celsius, T0));
    a
}

/// A notifier over `kv` with one PagerDuty route to `url` and a clock the test moves.
fn notifier(kv: Arc<dyn KvStore>, analysis: Analysis, url: &str, now: Arc<Mutex<i64>>) -> Notifier {
    let mut st = state(Vec::new(), Vec::new());
    st.analysis = analysis;
    let mut pagers: BTreeMap<String, Arc<dyn Pager>> = BTreeMap::new();
    pagers.insert(
        "pd".into(),
        Arc::from(pager(
            &receiver(ReceiverKind::Pagerduty, url),
            Some("KEY".into()),
        )),
    );
    Notifier {
        state: Arc::new(tokio::sync::RwLock::new(st)),
        store: NotifyStore::new(kv.clone()),
        silences: SilenceBook::open(kv).unwrap(),
        pagers,
        routes: vec![Route {
            receiver: "pd".into(),
            sites: vec![],
            zones: vec![],
            categories: vec![],
            min_severity: Severity::Warning,
            incidents: true,
            problems: false,
        }],
        rules: NoiseRules {
            repeat_interval: Duration::from_secs(3600),
            flap_threshold: 0,
            flap_window: Duration::from_secs(3600),
            site_outage_zones: 0,
        },
        interval: Duration::from_millis(10),
        retry_initial: Duration::from_secs(1),
        retry_max: Duration::from_secs(60),
        clock: Arc::new(move || Timestamp(*now.lock().unwrap())),
        sites: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_pages_only_for_the_sites_it_owns() {
    let (mock, url) = mock_server().await;
    let a = one_raise(Severity::Warning, 28.0);
    let now = Arc::new(Mutex::new(T0));
    // A partition owning another site sees the incident (fleet-wide view) but plans no page.
    let kv: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let mut other = notifier(kv, a.clone(), &url, now.clone());
    other.sites = vec!["dc2".into()];
    let mut ledger = other.store.ledger().unwrap();
    other.tick(&mut ledger).await.unwrap();
    assert!(other.store.jobs().unwrap().is_empty());
    assert!(ledger.is_empty());
    assert!(mock.seen.lock().unwrap().is_empty());
    // The partition owning dc1 pages it.
    let kv: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let mut owner = notifier(kv, a, &url, now);
    owner.sites = vec!["dc2".into(), "dc1".into()];
    let mut ledger = owner.store.ledger().unwrap();
    owner.tick(&mut ledger).await.unwrap();
    assert_eq!(mock.seen.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_retries_with_backoff_and_never_triggers_twice_across_restarts() {
    let (mock, url) = mock_server().await;
    mock.answers
        .lock()
        .unwrap()
        .extend([(500, None), (429, Some("30"))]);
    let kv: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let a = one_raise(Severity::Warning, 28.0);
    let now = Arc::new(Mutex::new(T0));
    let n = notifier(kv.clone(), a.clone(), &url, now.clone());
    let mut ledger = n.store.ledger().unwrap();
    n.tick(&mut ledger).await.unwrap();
    // 500: queued again for +1s.
    let jobs = n.store.jobs().unwrap();
    assert_eq!(
        (jobs.len(), jobs[0].attempts, jobs[0].next_attempt),
        (1, 1, Timestamp(T0 + 1000))
    );
    // Too early: nothing sent.
    *now.lock().unwrap() = T0 + 500;
    n.tick(&mut ledger).await.unwrap();
    assert_eq!(mock.seen.lock().unwrap().len(), 1);
    // 429 with Retry-After 30 beats the 2 s backoff.
    *now.lock().unwrap() = T0 + 1000;
    n.tick(&mut ledger).await.unwrap();
    let jobs = n.store.jobs().unwrap();
    assert_eq!(
        (jobs[0].attempts, jobs[0].next_attempt),
        (2, Timestamp(T0 + 31_000))
    );
    assert_eq!(
        jobs[0].last_error.as_deref(),
        Some(format!("POST {url}/<redacted> answered 429").as_str())
    );
    // `/metrics` figures: two failed attempts, the job still queued.
    {
        let state = n.state.read().await;
        assert_eq!(
            state.notify.failures.get(&("pd".to_string(), "retry")),
            Some(&2)
        );
        assert_eq!(
            (state.notify.queued_jobs, state.notify.queued_notifications),
            (1, 1)
        );
        assert!(state.notify.delivered.is_empty());
    }
    // Restart before the retry: a new notifier on the same store resumes the job, plans nothing new.
    drop(n);
    *now.lock().unwrap() = T0 + 31_000;
    let n = notifier(kv.clone(), a.clone(), &url, now.clone());
    let mut ledger = n.store.ledger().unwrap();
    n.tick(&mut ledger).await.unwrap();
    assert!(n.store.jobs().unwrap().is_empty());
    {
        let state = n.state.read().await;
        assert_eq!(state.notify.delivered.get("pd"), Some(&1));
        assert_eq!(state.notify.queued_jobs, 0);
    }
    // Another restart: nothing is sent again.
    let n = notifier(kv.clone(), a, &url, now.clone());
    let mut ledger = n.store.ledger().unwrap();
    n.tick(&mut ledger).await.unwrap();
    let seen = mock.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "two failures and one success, no duplicate");
    assert!(seen.iter().all(|s| s.body["event_action"] == "trigger"));
    // The delivery is on the incident's chronicle.
    let delivered = n.store.delivered().unwrap();
    let id = format!("inc-dc1-z1-thermal-{T0}");
    assert_eq!(delivered[&id].len(), 1);
    assert_eq!(delivered[&id][0].actor, "pager pd");
    n.state
        .write()
        .await
        .analysis
        .record_notification(&id, delivered[&id][0].clone());
    let incident = n
        .state
        .read()
        .await
        .analysis
        .incident(&id, Timestamp(T0 + 31_000))
        .unwrap();
    assert!(incident
        .chronicle
        .iter()
        .any(|c| c.kind == crate::chronicle::ChronicleKind::Notification
            && c.text == "trigger notification delivered"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolved_ledger_entries_are_forgotten_after_a_week_without_resending() {
    let (mock, url) = mock_server().await;
    let kv: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let mut a = one_raise(Severity::Warning, 28.0);
    a.ingest(sensor(
        "a1",
        2,
        "Z1",
        "r1",
        coldaisle_core::EventState::Cleared,
        Severity::Warning,
        26.0,
        T0 + MIN,
    ));
    let now = Arc::new(Mutex::new(T0));
    let n = notifier(kv, a, &url, now.clone());
    let mut ledger = n.store.ledger().unwrap();
    n.tick(&mut ledger).await.unwrap();
    *now.lock().unwrap() = T0 + 20 * MIN;
    n.tick(&mut ledger).await.unwrap();
    assert_eq!(n.store.ledger().unwrap().len(), 1);
    *now.lock().unwrap() = T0 + 8 * 86_400_000;
    n.tick(&mut ledger).await.unwrap();
    assert!(ledger.is_empty());
    assert!(n.store.ledger().unwrap().is_empty());
    n.tick(&mut ledger).await.unwrap();
    let actions: Vec<String> = mock
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| {
            s.body["event_action"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(actions, vec!["trigger", "resolve"]);
}

/// A TLS listener for axum: accepts TCP, completes the rustls handshake, skips clients that
/// abort it (e.g. because they do not trust the certificate).
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Starts the mock behind TLS with the PKI's `server` certificate (127.0.0.1); returns its
/// `https://` base URL.
async fn tls_mock_server(mock: Arc<Mock>, pki: &coldaisle_testkit::pki::TestPki) -> String {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(pki.path("server.pem"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(pki.path("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = TlsListener {
        tcp,
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    };
    let app = axum::Router::new().fallback(record).with_state(mock);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("https://127.0.0.1:{}", addr.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_receiver_with_private_ca_and_a_wrong_ca_is_retried_not_dropped() {
    let pki = coldaisle_testkit::pki::TestPki::generate().unwrap();
    let mock = Arc::new(Mock::default());
    let url = tls_mock_server(mock.clone(), &pki).await;
    let with_ca = |ca: &str| {
        let mut r = receiver(ReceiverKind::Pagerduty, &url);
        r.ca_file = Some(pki.path(ca));
        Arc::<dyn Pager>::from(pager(&r, Some("KEY".into())))
    };
    // Trusted through ca_file: delivered over TLS.
    deliver(with_ca("ca.pem"), vec![notification(Phase::Firing)])
        .await
        .unwrap();
    assert_eq!(mock.seen.lock().unwrap().len(), 1);
    assert_eq!(mock.seen.lock().unwrap()[0].path, "/v2/enqueue");
    // Only the system roots: refused, retryable.
    let plain: Arc<dyn Pager> = Arc::from(pager(
        &receiver(ReceiverKind::Pagerduty, &url),
        Some("KEY".into()),
    ));
    match deliver(plain, vec![notification(Phase::Firing)]).await {
        Err(DeliveryError::Retry { message, .. }) => {
            assert!(message.contains("not trusted"), "{message}")
        }
        other => panic!("expected a retryable TLS failure, got {other:?}"),
    }
    // A missing ca_file is a startup error naming the receiver and the file.
    let mut missing = receiver(ReceiverKind::Pagerduty, &url);
    missing.ca_file = Some(pki.path("nope.pem"));
    let err = build(&missing, None).err().unwrap().to_string();
    assert!(err.contains("\"r1\"") && err.contains("nope.pem"), "{err}");

    // Through the queue: the wrong CA keeps the job with a clear error, the right one delivers it.
    let kv: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let a = one_raise(Severity::Warning, 28.0);
    let now = Arc::new(Mutex::new(T0));
    let mut n = notifier(kv.clone(), a, &url, now.clone());
    n.pagers.insert("pd".into(), with_ca("other-ca.pem"));
    let mut ledger = n.store.ledger().unwrap();
    n.tick(&mut ledger).await.unwrap();
    let jobs = n.store.jobs().unwrap();
    assert_eq!((jobs.len(), jobs[0].attempts), (1, 1));
    let error = jobs[0].last_error.clone().unwrap();
    assert!(
        error.contains(&url) && error.contains("not trusted") && error.contains("ca_file"),
        "{error}"
    );
    assert_eq!(
        mock.seen.lock().unwrap().len(),
        1,
        "nothing reached the server"
    );
    n.pagers.insert("pd".into(), with_ca("ca.pem"));
    *now.lock().unwrap() = T0 + 1000;
    n.tick(&mut ledger).await.unwrap();
    assert!(n.store.jobs().unwrap().is_empty());
    let seen = mock.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].body["event_action"], "trigger");
}

/// A problem is notified when it opens, resolves and reopens ("reopened" in the summary), and
/// each delivery is on the problem's chronicle and postmortem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn problem_deliveries_reach_its_chronicle_and_a_reopen_is_notified() {
    use crate::actions::ProblemStatus;
    use crate::actions::{ActionKind, OperatorAction};
    use crate::chronicle::ChronicleKind;
    const DAY: i64 = 24 * 60 * MIN;
    let (mock, url) = mock_server().await;
    let kv: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    // A critical incident opens an SLA problem.
    let mut a = one_raise(Severity::Critical, 33.0);
    a.ingest(sensor(
        "a1",
        2,
        "Z1",
        "r1",
        coldaisle_core::EventState::Cleared,
        Severity::Critical,
        26.0,
        T0 + 10 * MIN,
    ));
    let prb = format!("prb-dc1-z1-thermal-{T0}");
    let now = Arc::new(Mutex::new(T0));
    let mut n = notifier(kv, a, &url, now.clone());
    n.routes = vec![Route {
        receiver: "pd".into(),
        sites: vec![],
        zones: vec![],
        categories: vec![],
        min_severity: Severity::Warning,
        incidents: false,
        problems: true,
    }];
    let mut ledger = n.store.ledger().unwrap();
    n.tick(&mut ledger).await.unwrap();
    // The operator resolves the problem.
    *now.lock().unwrap() = T0 + DAY;
    n.state
        .write()
        .await
        .analysis
        .ingest_action(OperatorAction {
            id: 1,
            at: Timestamp(T0 + DAY),
            actor: "ann".into(),
            kind: ActionKind::SetProblemStatus {
                problem: prb.clone(),
                status: ProblemStatus::Resolved,
            },
        })
        .unwrap();
    n.tick(&mut ledger).await.unwrap();
    // The pattern returns: the same problem reopens and is paged again.
    *now.lock().unwrap() = T0 + 2 * DAY;
    n.state.write().await.analysis.ingest(sensor(
        "a1",
        3,
        "Z1",
        "r1",
        Raised,
        Severity::Critical,
        34.0,
        T0 + 2 * DAY,
    ));
    n.tick(&mut ledger).await.unwrap();

    let seen = mock.seen.lock().unwrap().clone();
    let actions: Vec<&str> = seen
        .iter()
        .map(|s| s.body["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["trigger", "resolve", "trigger"]);
    assert!(seen.iter().all(|s| s.body["dedup_key"] == prb.as_str()));
    let summary = seen[2].body["payload"]["summary"].as_str().unwrap();
    assert!(summary.contains("reopened (1 time(s))"), "{summary}");
    assert!(!seen[0].body["payload"]["summary"]
        .as_str()
        .unwrap()
        .contains("reopened"));

    let p = n.state.read().await.analysis.problem(&prb).unwrap();
    assert_eq!((p.status, p.reopened), (ProblemStatus::Open, 1));
    let lines: Vec<(ChronicleKind, &str)> = p
        .chronicle
        .iter()
        .map(|c| (c.kind, c.text.as_str()))
        .collect();
    let delivered: Vec<&str> = lines
        .iter()
        .filter(|(k, _)| *k == ChronicleKind::Notification)
        .map(|(_, t)| *t)
        .collect();
    assert_eq!(
        delivered,
        [
            "trigger notification delivered",
            "resolve notification delivered",
            "trigger notification delivered"
        ]
    );
    // In time order, the reopening before its page.
    let reopen = lines
        .iter()
        .position(|(_, t)| t.starts_with("reopened:"))
        .unwrap();
    assert_eq!(lines[reopen + 1].0, ChronicleKind::Notification);
    assert!(p
        .chronicle
        .iter()
        .all(|c| c.kind != ChronicleKind::Notification || c.who == "pager pd"));
    let md = crate::postmortem::problem_postmortem(&p, &[]);
    assert_eq!(md.matches("| pager pd | ").count(), 3, "{md}");
}

#[test]
fn a_slack_url_never_shows_in_a_delivery_error() {
    // Nothing listens on port 9 of loopback: the POST fails at connect.
    let secret = "T0000/B0000/XXXXsecretXXXX";
    for url in [
        format!("http://127.0.0.1:9/services/{secret}"),
        "http://user:XXXXpwXXXX@127.0.0.1:9/".to_string(),
        format!("http://127.0.0.1:9/hook?token={secret}"),
    ] {
        let slack = pager(&receiver(ReceiverKind::Slack, &url), None);
        let error = slack
            .deliver(&[notification(Phase::Firing)], Timestamp(T0))
            .unwrap_err()
            .to_string();
        assert!(!error.contains("XXXX"), "{error}");
        assert!(error.contains("http://127.0.0.1:9/<redacted>"), "{error}");
        assert!(!format!("{:?}", receiver(ReceiverKind::Slack, &url)).contains("XXXX"));
    }
}
