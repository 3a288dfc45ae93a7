//! The collector's read HTTP API (axum): zones, zone reports, incidents, problems, agents
//! and ingest statistics as JSON, plus a health check.
//!
//! | route | answer |
//! |---|---|
//! | `GET /healthz` | `200 ok` (text) |
//! | `GET /api/v1/zones` | every known zone with counts ([`ZoneSummary`]) |
//! | `GET /api/v1/zones/{zone}/report?site=&window=24h&format=json\|text` | [`crate::report::ZoneReport`] (rack figures from the window's roll-ups), or its text rendering |
//! | `GET /api/v1/incidents?status=open\|resolved&zone=&site=` | incidents, oldest first |
//! | `GET /api/v1/incidents/{id}` | one incident with its timeline; its probable cause refined by the zone's readings, from the roll-ups ([`crate::cooling_cause::read`]) |
//! | `GET /api/v1/problems?zone=&site=` | problems, oldest first; each one's probable cause read from its incidents' readings ([`crate::cooling_cause::read`]) |
//! | `GET /api/v1/problems/{id}` | one problem, its probable cause likewise |
//! | `GET /api/v1/agents` | what the collector knows of each agent, by agent id: last status, last batch, `silent` (`?silent=true` lists only silent agents) |
//! | `GET /api/v1/stats` | ingest and analysis counters ([`ApiStats`]) |
//! | `GET /api/v1/history?site=&zone=&rack=&sensor=&since=7d\|from=&to=` | summary figures over a period ([`crate::history_api`]) |
//! | `GET /api/v1/history/series?…&level=hour&kind=inlet_temp` | one point per sensor and bucket over a period ([`crate::rollup::series::Series`]) |
//! | `GET /api/v1/openapi.json` | the OpenAPI 3 document of every route ([`crate::openapi`]) |
//! | `GET /metrics` | Prometheus text ([`crate::prom`]) |
//! | `GET /api/v1/report?site=&zone=&since=24h\|from=&to=&format=json\|table\|markdown\|csv` | the facility report over a period ([`crate::report::facility::FacilityReport`], [`crate::history_api::ReportParams`]) |
//!
//! Operator actions (POST), silences and Markdown postmortems are in [`crate::operator_api`];
//! [`full_router`] serves both halves.
//!
//! Every error is JSON `{"error": "..."}` that names the offending parameter or id: `400` for a
//! bad parameter, `404` for an unknown zone, id or route, `405` for a method other than GET.
//! Handlers never panic on input: every extractor failure is turned into such an error.
//!
//! Time: the report window ends at the clock's "now" (the wall clock, [`Timestamp::now`], unless
//! a [`Clock`] is injected), while incident status is evaluated at
//! `max(state.latest_event, now)` (see [`crate::report::incident_time`]), so an agent clock
//! running ahead of ours cannot keep an incident open after its quiet period ended in event time.
//!
//! Access: every route but `/healthz` passes [`crate::auth::require`] (bearer tokens with
//! scopes, or open on loopback when no tokens file is set); bodies above
//! [`ApiOptions::max_body_bytes`] answer `413`. `/metrics` passes [`crate::prom::scrape_access`]
//! instead (the same check, or none for a loopback peer when
//! [`ApiOptions::metrics_open_on_loopback`]). [`router`] builds the whole API from one
//! [`ApiOptions`]; [`serve_router`] and [`serve_api`] give handlers the peer address
//! (`ConnectInfo<`[`PeerAddr`]`>`).

use crate::auth::Access;
use crate::incidents::IncidentStatus;
use crate::render::render_zone_report;
use crate::report::{incident_time, zone_report, zones, ReportError, ZoneSummary};
use crate::silence::SilenceRule;
use crate::state::{IngestStats, SharedState};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use coldaisle_core::Timestamp;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Where the API reads "now" from. The default is [`Timestamp::now`]; tests and replays inject
/// their own (a replay can serve reports as of its latest event time).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Report window used when the `window` parameter is absent.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Everything the API router is built from (one options struct instead of a constructor per
/// combination).
#[derive(Clone)]
pub struct ApiOptions {
    /// The collector's state.
    pub state: SharedState,
    /// Source of "now".
    pub clock: Clock,
    /// When an agent counts as silent.
    pub silence: SilenceRule,
    /// The stores of the operator routes; `None` serves the read routes only.
    pub operator: Option<OperatorStores>,
    /// Who may call (tokens or open).
    pub access: Access,
    /// Largest request body (bytes); larger ones answer `413`.
    pub max_body_bytes: usize,
    /// `GET /metrics` from a loopback peer passes without a token
    /// ([`crate::prom::scrape_access`]).
    pub metrics_open_on_loopback: bool,
    /// The cluster role shown on `/api/v1/stats` (`None`: not clustered).
    pub cluster: Option<crate::cluster::ClusterStatus>,
    /// Envelope and staleness of `/api/v1/report`.
    pub report: crate::report::facility::ReportSettings,
    /// Compaction figures shown on `/api/v1/stats` (filled by [`crate::retention::run`]).
    pub compaction: crate::retention::CompactionBook,
}

/// The stores the operator routes write to.
#[derive(Clone)]
pub struct OperatorStores {
    /// Where actions are stored.
    pub log: crate::action_log::ActionLog,
    /// Silences and maintenance windows.
    pub silences: crate::notifier::SilenceBook,
}

impl ApiOptions {
    /// Read routes only, open access, the default silence rule (counted from `clock()` now) and
    /// body limit: change the fields for more.
    pub fn new(state: SharedState, clock: Clock) -> ApiOptions {
        let silence = SilenceRule {
            silence: crate::silence::DEFAULT_AGENT_SILENCE,
            started: clock(),
        };
        ApiOptions {
            state,
            clock,
            silence,
            operator: None,
            access: Access::Open,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            metrics_open_on_loopback: false,
            cluster: None,
            report: Default::default(),
            compaction: Default::default(),
        }
    }
}

/// Body limit of [`ApiOptions::new`] (the config's default too).
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

/// The router of the API: `/healthz` and the dashboard's assets ([`crate::dashboard`], no data)
/// open, every other route behind [`crate::auth::require`].
pub fn router(options: ApiOptions) -> Router {
    let handlers = Api {
        state: options.state.clone(),
        clock: options.clock.clone(),
        silence: options.silence,
        cluster: options.cluster.clone(),
        report: options.report,
        compaction: options.compaction.clone(),
    };
    let mut api = Router::new()
        .route("/api/v1/zones", get(list_zones))
        .route("/api/v1/zones/{zone}/report", get(report))
        .route("/api/v1/incidents", get(list_incidents))
        .route("/api/v1/incidents/{id}", get(one_incident))
        .route("/api/v1/problems", get(list_problems))
        .route("/api/v1/problems/{id}", get(one_problem))
        .route("/api/v1/agents", get(agents))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/history", get(history))
        .route("/api/v1/history/series", get(history_series))
        .route("/api/v1/report", get(facility_report))
        .route("/api/v1/openapi.json", get(crate::openapi::document))
        .with_state(handlers.clone());
    let metrics = Router::new()
        .route("/metrics", get(prometheus))
        .with_state(handlers)
        .layer(axum::middleware::from_fn_with_state(
            crate::prom::ScrapeAccess {
                access: options.access.clone(),
                open_on_loopback: options.metrics_open_on_loopback,
            },
            crate::prom::scrape_access,
        ));
    if let Some(stores) = options.operator {
        api = api.merge(
            crate::operator_api::router(options.state, stores.log, stores.silences, options.clock)
                .layer(axum::middleware::from_fn_with_state(
                    options.cluster.clone(),
                    crate::cluster::standby_refuses_writes,
                )),
        );
    }
    let api = api
        .layer(axum::middleware::from_fn_with_state(
            options.access,
            crate::auth::require,
        ))
        .layer(DefaultBodyLimit::max(options.max_body_bytes));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(api)
        .merge(crate::dashboard::router())
        .merge(metrics)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// Serves the read API (open access) on `listener` until `shutdown` completes, then lets
/// requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: SharedState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(ApiOptions::new(state, Arc::new(Timestamp::now)));
    serve_router(listener, app, shutdown).await
}

/// The peer address of a request, over plain TCP or TLS (`ConnectInfo<PeerAddr>` in the
/// request's extensions when served by [`serve_router`] or [`serve_api`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

impl
    axum::extract::connect_info::Connected<
        axum::serve::IncomingStream<'_, crate::api_tls::TlsListener>,
    > for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, crate::api_tls::TlsListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets requests in flight finish.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<PeerAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// [`serve_router`] over TLS when `tls` is given ([`crate::api_tls`]), plain HTTP otherwise.
pub async fn serve_api(
    listener: tokio::net::TcpListener,
    tls: Option<crate::api_tls::ApiTls>,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        None => serve_router(listener, app, shutdown).await,
        Some(tls) => {
            axum::serve(
                tls.listener(listener),
                app.into_make_service_with_connect_info::<PeerAddr>(),
            )
            .with_graceful_shutdown(shutdown)
            .await
        }
    }
}

/// Ingest and analysis counters served on `/api/v1/stats`.
#[derive(Debug, Clone, Serialize)]
pub struct ApiStats {
    /// Batch and record counters of ingest.
    pub ingest: IngestStats,
    /// Agents known.
    pub agents: usize,
    /// Incident-relevant events held by the analysis.
    pub events: usize,
    /// Scope replays of the analysis caused by late events (each replays one scope).
    pub rebuilds: u64,
    /// Clears that matched no live incident.
    pub orphan_clears: u64,
    /// Events and actions older than the analysis's horizon: stored, applied to nothing.
    pub late_events: u64,
    /// Latest event time seen.
    pub latest_event: Timestamp,
    /// Incidents open now.
    pub open_incidents: usize,
    /// Problems not resolved.
    pub open_problems: usize,
    /// Entries and bytes per store tree.
    pub trees: Vec<crate::rollup_store::TreeSize>,
    /// Role and lease holder in a cluster (absent when not clustered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<crate::cluster::ClusterView>,
    /// What compaction deleted since start, and its last pass.
    pub compaction: crate::retention::CompactionStats,
}

/// State of the handlers.
#[derive(Clone)]
struct Api {
    /// The collector's state (read only here).
    state: SharedState,
    /// Source of "now".
    clock: Clock,
    /// When an agent counts as silent.
    silence: SilenceRule,
    /// The cluster role, if clustered.
    cluster: Option<crate::cluster::ClusterStatus>,
    /// Envelope and staleness of the facility report.
    report: crate::report::facility::ReportSettings,
    /// Compaction figures.
    compaction: crate::retention::CompactionBook,
}

/// An error answer: a status and a JSON body `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong, naming the parameter, id or missing permission.
    pub message: String,
}

impl ApiError {
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// 503: what was asked exists but a store read it needs failed (try again).
    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
        }
    }
}

/// The JSON body of every error.
#[derive(Debug, Serialize, Deserialize)]
struct ErrorBody {
    error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request(format!("invalid query string: {}", rejection.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request(format!("invalid path: {}", rejection.body_text()))
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// `Some(text)` unless absent or empty (`?site=` means no site).
fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

async fn healthz() -> &'static str {
    "ok"
}

async fn list_zones(State(api): State<Api>) -> Json<Vec<ZoneSummary>> {
    let now = (api.clock)();
    let state = api.state.read().await;
    Json(zones(&state, now))
}

/// Query of the zone report.
#[derive(Debug, Deserialize)]
struct ReportQuery {
    /// Site of the zone, needed when several sites have a zone of that name.
    site: Option<String>,
    /// Window as a humantime duration (`24h`, `7days`); default [`DEFAULT_WINDOW`].
    window: Option<String>,
    /// `json` (default) or `text`.
    format: Option<String>,
    /// A stored period instead of `window`: `since=7d`, or `from=` (and `to=`); the rack
    /// figures then come from the roll-ups ([`crate::history_api::zone_report_over`]).
    since: Option<String>,
    /// Start of the period (RFC 3339).
    from: Option<String>,
    /// End of the period (RFC 3339, default now).
    to: Option<String>,
}

async fn report(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ReportQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Path(zone) = path?;
    let Query(query) = query?;
    let window = match given(query.window) {
        None => DEFAULT_WINDOW,
        Some(text) => humantime::parse_duration(text.trim()).map_err(|e| {
            ApiError::bad_request(format!(
                "invalid window {text:?}: {e}; expected a duration such as 24h or 7days"
            ))
        })?,
    };
    let text = match given(query.format).as_deref() {
        None | Some("json") => false,
        Some("text") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid format {other:?}: expected json or text"
            )))
        }
    };
    let site = given(query.site);
    let now = (api.clock)();
    let (since, from, to) = (given(query.since), given(query.from), given(query.to));
    if since.is_some() || from.is_some() || to.is_some() {
        let period =
            crate::history_api::period(since.as_deref(), from.as_deref(), to.as_deref(), now)
                .map_err(ApiError::bad_request)?;
        let mut report =
            crate::history_api::zone_report_over(&api.state, site.as_deref(), &zone, period, now)
                .await?;
        crate::fix_figures::report_figures(&api.state, &mut report, now).await;
        return Ok(if text {
            render_zone_report(&report).into_response()
        } else {
            Json(report).into_response()
        });
    }
    // Figures from the roll-ups of the window (no summary is held in memory); a state without
    // a store (tests) reports racks without figures.
    let (report, rollups) = {
        let state = api.state.read().await;
        let report =
            zone_report(&state, site.as_deref(), &zone, now, window).map_err(report_error)?;
        (report, state.rollups.clone())
    };
    let mut report = match rollups {
        Some(rollups) => {
            crate::history_api::with_figures(report, rollups, (now.minus(window), now), now).await?
        }
        None => report,
    };
    crate::fix_figures::report_figures(&api.state, &mut report, now).await;
    if text {
        Ok((
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            render_zone_report(&report),
        )
            .into_response())
    } else {
        Ok(Json(report).into_response())
    }
}

/// The API error of a [`ReportError`]: `404` for an unknown zone, `400` for an ambiguous one.
pub(crate) fn report_error(e: ReportError) -> ApiError {
    match e {
        ReportError::UnknownZone { .. } | ReportError::UnknownSite { .. } => {
            ApiError::not_found(e.to_string())
        }
        ReportError::SiteNeeded { sites } => ApiError::bad_request(format!(
            "several sites report ({}); choose one with ?site=",
            sites.join(", ")
        )),
        ReportError::AmbiguousZone { zone, sites } => ApiError::bad_request(format!(
            "zone {zone} exists in several sites ({}); choose one with ?site=",
            sites.join(", ")
        )),
    }
}

/// Filters of the incident list.
#[derive(Debug, Deserialize)]
struct IncidentQuery {
    /// `open` or `resolved`; absent: both.
    status: Option<String>,
    /// Only this zone.
    zone: Option<String>,
    /// Only this site.
    site: Option<String>,
}

async fn list_incidents(
    State(api): State<Api>,
    query: Result<Query<IncidentQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(query) = query?;
    let status = match given(query.status).as_deref() {
        None => None,
        Some("open") => Some(IncidentStatus::Open),
        Some("resolved") => Some(IncidentStatus::Resolved),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid status {other:?}: expected open or resolved"
            )))
        }
    };
    let zone = given(query.zone);
    let site = given(query.site);
    let now = (api.clock)();
    let state = api.state.read().await;
    let incidents: Vec<_> = state
        .analysis
        .incidents(incident_time(&state, now))
        .into_iter()
        .filter(|i| status.is_none_or(|s| i.status == s))
        .filter(|i| zone.as_deref().is_none_or(|z| i.fingerprint.zone == z))
        .filter(|i| site.as_deref().is_none_or(|s| i.fingerprint.site == s))
        .collect();
    drop(state);
    Ok(Json(incidents).into_response())
}

async fn one_incident(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let Path(id) = path?;
    let now = (api.clock)();
    let state = api.state.read().await;
    let found = whole_incident(&state, &id, incident_time(&state, now));
    drop(state);
    let incident = found?;
    // The cause engine reads events; the cooling units' readings refine it here.
    let incident = crate::cooling_cause::read::incident_with_cause(&api.state, incident, now).await;
    Ok(Json(incident).into_response())
}

/// Incident `id` as of event time `now` with its whole timeline: an incident final before the
/// hot span has its timeline's head read back from the store (one range scan of its scope,
/// under the caller's read lock). 404 if there is no such incident, 503 if the store cannot
/// give the head back.
pub(crate) fn whole_incident(
    state: &crate::state::CollectorState,
    id: &str,
    now: Timestamp,
) -> ApiResult<crate::incidents::Incident> {
    match state
        .analysis
        .incident_with_history(id, now, state.history())
    {
        Ok(Some(incident)) => Ok(incident),
        Ok(None) => Err(ApiError::not_found(format!("no incident with id {id:?}"))),
        Err(e) => {
            tracing::warn!(incident = %id, error = %e, "incident timeline not readable from the store");
            Err(ApiError::unavailable(format!(
                "incident {id:?}: its timeline is older than the analysis's hot span and could not be read back from the store ({e}); try again, or see the collector's log"
            )))
        }
    }
}

/// Filters of the problem list.
#[derive(Debug, Deserialize)]
struct ProblemQuery {
    /// Only this zone.
    zone: Option<String>,
    /// Only this site.
    site: Option<String>,
}

async fn list_problems(
    State(api): State<Api>,
    query: Result<Query<ProblemQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(query) = query?;
    let zone = given(query.zone);
    let site = given(query.site);
    let state = api.state.read().await;
    let problems: Vec<_> = state
        .analysis
        .problems()
        .into_iter()
        .filter(|p| zone.as_deref().is_none_or(|z| p.fingerprint.zone == z))
        .filter(|p| site.as_deref().is_none_or(|s| p.fingerprint.site == s))
        .collect();
    drop(state);
    let problems =
        crate::cooling_cause::read::problems_with_cause(&api.state, problems, (api.clock)()).await;
    Ok(Json(problems).into_response())
}

async fn one_problem(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let Path(id) = path?;
    let problem = api.state.read().await.analysis.problem(&id);
    match problem {
        Some(problem) => {
            let now = (api.clock)();
            let problem = crate::fix_figures::with_figures(&api.state, problem, now).await;
            let problem =
                crate::cooling_cause::read::problem_with_cause(&api.state, problem, now).await;
            Ok(Json(problem).into_response())
        }
        None => Err(ApiError::not_found(format!("no problem with id {id:?}"))),
    }
}

/// Query of the agent list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentQuery {
    /// `true`: only silent agents; `false`: only live ones.
    silent: Option<bool>,
}

async fn agents(
    State(api): State<Api>,
    query: Result<Query<AgentQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let now = (api.clock)();
    let state = api.state.read().await;
    let views = crate::silence::views(&state.agents, &api.silence, now, query.silent);
    Ok(Json(views).into_response())
}

async fn history(
    State(api): State<Api>,
    query: Result<Query<crate::history_api::HistoryParams>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(params) = query?;
    crate::history_api::answer(&api.state, (api.clock)(), params).await
}

async fn history_series(
    State(api): State<Api>,
    query: Result<Query<crate::history_api::SeriesParams>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(params) = query?;
    crate::history_api::series_answer(&api.state, (api.clock)(), params).await
}

async fn facility_report(
    State(api): State<Api>,
    query: Result<Query<crate::history_api::ReportParams>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(params) = query?;
    crate::history_api::facility_answer(&api.state, api.report, (api.clock)(), params).await
}

async fn stats(State(api): State<Api>) -> Json<ApiStats> {
    let trees = crate::prom::tree_sizes(&api.state).await;
    let now = (api.clock)();
    let state = api.state.read().await;
    let open_incidents = state
        .analysis
        .incidents(incident_time(&state, now))
        .iter()
        .filter(|i| i.status == IncidentStatus::Open)
        .count();
    let open_problems = state
        .analysis
        .problems()
        .iter()
        .filter(|p| p.status.is_open())
        .count();
    Json(ApiStats {
        ingest: state.stats.clone(),
        agents: state.agents.len(),
        events: state.analysis.event_count(),
        rebuilds: state.analysis.rebuilds(),
        orphan_clears: state.analysis.orphan_clears(),
        late_events: state.analysis.too_late(),
        latest_event: state.latest_event,
        open_incidents,
        open_problems,
        trees,
        cluster: api
            .cluster
            .as_ref()
            .and_then(|c| c.read().ok().map(|v| v.clone())),
        compaction: api
            .compaction
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone(),
    })
}

async fn prometheus(State(api): State<Api>) -> Response {
    let now = (api.clock)();
    let figures = crate::prom::figures(&api.state, &api.silence, now).await;
    (
        [(
            header::CONTENT_TYPE,
            coldaisle_core::prom_text::CONTENT_TYPE,
        )],
        crate::prom::render(&figures),
    )
        .into_response()
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route for {method} {}; the API lives under /api/v1/ (zones, incidents, problems, agents, stats)",
        uri.path()
    ))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: format!(
            "method {method} not allowed on {}: reads use GET, operator actions POST (see the API docs)",
            uri.path()
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::report::tests::{sample, HOUR, T0};
    use crate::state::AgentInfo;
    use axum::body::Body;
    use axum::http::Request;
    use serde_json::Value;
    use tokio::sync::RwLock;
    use tower::ServiceExt;

    const NOW: Timestamp = Timestamp(T0 + 24 * HOUR);

    fn app() -> Router {
        let mut state = sample();
        state.agents.insert(
            "a1".into(),
            AgentInfo {
                site: "dc1".into(),
                acked_upto: 3,
                records: 3,
                ..AgentInfo::default()
            },
        );
        router(ApiOptions::new(
            Arc::new(RwLock::new(state)),
            Arc::new(|| NOW),
        ))
    }

    async fn call(app: Router, method: Method, uri: &str) -> (StatusCode, String, String) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            content_type,
            String::from_utf8(bytes.to_vec()).unwrap(),
        )
    }

    async fn get_json(uri: &str) -> (StatusCode, Value) {
        let (status, content_type, body) = call(app(), Method::GET, uri).await;
        assert_eq!(content_type, "application/json", "{uri}: {body}");
        (status, serde_json::from_str(&body).unwrap())
    }

    /// Asserts a JSON error with `status` whose message contains `needle`.
    async fn assert_error(uri: &str, status: StatusCode, needle: &str) {
        let (got, body) = get_json(uri).await;
        assert_eq!(got, status, "{uri}: {body}");
        let message = body["error"].as_str().unwrap();
        assert!(message.contains(needle), "{uri}: {message}");
    }

    #[tokio::test]
    async fn healthz_says_ok() {
        let (status, _, body) = call(app(), Method::GET, "/healthz").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    }

    #[tokio::test]
    async fn zones_and_report() {
        let (status, body) = get_json("/api/v1/zones").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.as_array().unwrap().len(), 3);
        assert_eq!(body[0]["zone"], "Z1");
        assert_eq!(body[0]["open_incidents"], 1);

        let (status, body) = get_json("/api/v1/zones/Z1/report?site=dc1&window=1h").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["window_secs"], 3600);
        assert_eq!(body["generated_at"], NOW.0);
        assert_eq!(body["racks"][0]["rack"], "R2");
        assert_eq!(body["racks"][0]["inlet_max"], 27.0);
        assert_eq!(body["racks"][2]["inlet_last"], Value::Null);

        // Default window: 24h.
        let (status, body) = get_json("/api/v1/zones/Z2/report").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["window_secs"], 86_400);
        assert_eq!(body["site"], "dc1");

        let (status, content_type, text) = call(
            app(),
            Method::GET,
            "/api/v1/zones/Z1/report?site=dc1&format=text",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.starts_with("text/plain"));
        assert!(text.starts_with("Zone Z1 (site dc1)\n"));
    }

    #[tokio::test]
    async fn report_parameter_errors() {
        assert_error(
            "/api/v1/zones/Z1/report?site=dc1&window=soon",
            StatusCode::BAD_REQUEST,
            "invalid window \"soon\"",
        )
        .await;
        assert_error(
            "/api/v1/zones/Z1/report?site=dc1&format=xml",
            StatusCode::BAD_REQUEST,
            "invalid format",
        )
        .await;
        assert_error(
            "/api/v1/zones/Z1/report",
            StatusCode::BAD_REQUEST,
            "choose one with ?site=",
        )
        .await;
        assert_error(
            "/api/v1/zones/Z9/report",
            StatusCode::NOT_FOUND,
            "unknown zone Z9; known zones: dc1/Z1",
        )
        .await;
        assert_error(
            "/api/v1/zones/Z1/report?site=a&site=b",
            StatusCode::BAD_REQUEST,
            "invalid query string",
        )
        .await;
    }

    #[tokio::test]
    async fn incidents_list_filters_and_lookup() {
        let (status, all) = get_json("/api/v1/incidents").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(all.as_array().unwrap().len(), 2);
        let (_, open) = get_json("/api/v1/incidents?status=open&zone=Z1&site=dc1").await;
        assert_eq!(open.as_array().unwrap().len(), 1);
        assert_eq!(open[0]["severity"], "critical");
        let (_, resolved) = get_json("/api/v1/incidents?status=resolved").await;
        assert_eq!(resolved.as_array().unwrap().len(), 1);
        let (_, none) = get_json("/api/v1/incidents?zone=Z2").await;
        assert_eq!(none.as_array().unwrap().len(), 0);
        assert_error(
            "/api/v1/incidents?status=closed",
            StatusCode::BAD_REQUEST,
            "invalid status \"closed\"",
        )
        .await;

        let id = open[0]["id"].as_str().unwrap();
        let (status, one) = get_json(&format!("/api/v1/incidents/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(one["timeline"].as_array().unwrap().len(), 1);
        assert_error(
            "/api/v1/incidents/inc-nope",
            StatusCode::NOT_FOUND,
            "no incident with id \"inc-nope\"",
        )
        .await;
    }

    /// An incident final before the analysis's hot span is listed with its timeline's head
    /// counted (`stored_timeline`), answers whole by id (read back from the store's scope
    /// index), takes an acknowledgement, and answers 503 with a clear message when the store
    /// cannot be read.
    #[tokio::test]
    async fn an_incident_older_than_the_hot_span_reads_its_timeline_from_the_store() {
        use crate::actions::{ActionKind, OperatorAction};
        use crate::analysis::history::MemoryHistory;
        use crate::analysis::Analysis;
        use crate::incidents::tests::sensor;
        use coldaisle_core::{EventState::*, Severity::Warning};
        use std::time::Duration;
        const MIN: i64 = 60_000;
        let mut history = MemoryHistory::default();
        let mut events = Vec::new();
        // An overheat of two sensors every two hours, 30 minutes long, for ten hours.
        for h in 0..5_i64 {
            let at = T0 + 2 * h * 60 * MIN;
            let seq = 4 * h as u64;
            events.push(sensor(
                "a1",
                seq + 1,
                "Z1",
                "r1-inlet",
                Raised,
                Warning,
                29.0,
                at,
            ));
            events.push(sensor(
                "a1",
                seq + 2,
                "Z1",
                "r2-inlet",
                Raised,
                Warning,
                29.5,
                at + MIN,
            ));
            events.push(sensor(
                "a1",
                seq + 3,
                "Z1",
                "r1-inlet",
                Cleared,
                Warning,
                26.0,
                at + 20 * MIN,
            ));
            events.push(sensor(
                "a1",
                seq + 4,
                "Z1",
                "r2-inlet",
                Cleared,
                Warning,
                26.0,
                at + 30 * MIN,
            ));
        }
        for e in &events {
            history.add(e.clone());
        }
        let mut state = sample();
        let mut analysis = Analysis::new(Default::default(), Default::default())
            .with_hot_span(Some(Duration::from_secs(3600)));
        for e in events {
            analysis.ingest_with_history(e, &history);
        }
        let first = analysis.incidents(NOW)[0].id.clone();
        let ack = OperatorAction {
            id: 1,
            at: Timestamp(T0 + 9 * 60 * MIN),
            actor: "ann".into(),
            kind: ActionKind::Acknowledge {
                incident: first.clone(),
            },
        };
        assert_eq!(analysis.ingest_action_with_history(ack, &history), Ok(true));
        state.analysis = analysis;
        let history: Arc<dyn crate::analysis::history::ScopeHistory + Send + Sync> =
            Arc::new(history);
        for (with_store, expected) in [
            (true, StatusCode::OK),
            (false, StatusCode::SERVICE_UNAVAILABLE),
        ] {
            let mut state = crate::state::CollectorState {
                analysis: state.analysis.clone(),
                history: with_store.then(|| crate::state::StoredHistory(history.clone())),
                ..sample()
            };
            state.latest_event = NOW;
            let app = router(ApiOptions::new(
                Arc::new(RwLock::new(state)),
                Arc::new(|| NOW),
            ));
            let (_, _, body) = call(app.clone(), Method::GET, "/api/v1/incidents").await;
            let list: Value = serde_json::from_str(&body).unwrap();
            let listed = list
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["id"] == first.as_str())
                .unwrap();
            assert_eq!(listed["stored_timeline"]["events"], 4, "{listed}");
            assert_eq!(listed["timeline"].as_array().unwrap().len(), 0);
            let (status, _, body) =
                call(app, Method::GET, &format!("/api/v1/incidents/{first}")).await;
            assert_eq!(status, expected, "{body}");
            let one: Value = serde_json::from_str(&body).unwrap();
            if with_store {
                let timeline = one["timeline"].as_array().unwrap();
                let texts: Vec<&str> = timeline
                    .iter()
                    .map(|t| t["text"].as_str().unwrap())
                    .collect();
                assert_eq!(texts.len(), 4, "{texts:?}");
                assert!(
                    texts[1].starts_with("inlet_temp r2-inlet raised"),
                    "{texts:?}"
                );
                assert!(one.get("stored_timeline").is_none());
                assert_eq!(one["acknowledged"]["actor"], "ann");
                let events_in_chronicle = one["chronicle"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|c| c["kind"] == "event")
                    .count();
                assert_eq!(events_in_chronicle, 4);
            } else {
                let message = one["error"].as_str().unwrap();
                assert!(
                    message.contains("older than the analysis's hot span"),
                    "{message}"
                );
            }
        }
    }

    #[tokio::test]
    async fn problems_agents_and_stats() {
        let (status, problems) = get_json("/api/v1/problems?zone=Z1").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(problems.as_array().unwrap().len(), 1);
        let (_, none) = get_json("/api/v1/problems?site=dc2").await;
        assert_eq!(none.as_array().unwrap().len(), 0);
        let id = problems[0]["id"].as_str().unwrap();
        let (status, one) = get_json(&format!("/api/v1/problems/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(one["trigger"], "sla");
        assert_error(
            "/api/v1/problems/prb-nope",
            StatusCode::NOT_FOUND,
            "no problem with id",
        )
        .await;

        let (status, agents) = get_json("/api/v1/agents").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(agents["a1"]["acked_upto"], 3);
        assert_eq!(
            agents["a1"]["silent"], false,
            "counts from the collector's start"
        );
        let (_, silent) = get_json("/api/v1/agents?silent=true").await;
        assert_eq!(silent, serde_json::json!({}));
        let (_, live) = get_json("/api/v1/agents?silent=false").await;
        assert_eq!(live["a1"]["site"], "dc1");
        let (status, _) = get_json("/api/v1/agents?silent=maybe").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        let (status, stats) = get_json("/api/v1/stats").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(stats["events"], 3);
        assert_eq!(stats["agents"], 1);
        assert_eq!(stats["open_incidents"], 1);
        assert_eq!(stats["open_problems"], 1);
        assert_eq!(stats["ingest"]["malformed"], 0);
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_answer_json() {
        assert_error("/nope", StatusCode::NOT_FOUND, "no route for GET /nope").await;
        assert_error(
            "/api/v1/zones/Z1",
            StatusCode::NOT_FOUND,
            "no route for GET /api/v1/zones/Z1",
        )
        .await;
        let (status, content_type, body) = call(app(), Method::POST, "/api/v1/zones").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(content_type, "application/json");
        assert!(body.contains("reads use GET"), "{body}");
        // Odd but valid input never panics.
        let (status, _) = get_json("/api/v1/zones/%F0%9F%94%A5/report?window=").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = call(app(), Method::GET, "/api/v1/zones/%FF/report").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn serve_answers_and_shuts_down_gracefully() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(RwLock::new(sample()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, state, async {
            let _ = stopped.await;
        }));
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        assert!(response.ends_with("\r\n\r\nok"), "{response}");
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
