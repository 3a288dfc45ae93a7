//! The operator half of the HTTP API: actions on incidents and problems (POST with JSON bodies),
//! the action log, and Markdown postmortems.
//!
//! | route | body | effect |
//! |---|---|---|
//! | `POST /api/v1/incidents/{id}/ack` | `{"actor", "at"?}` | acknowledge |
//! | `POST /api/v1/incidents/{id}/notes` | `{"actor", "text", "at"?}` | annotate |
//! | `POST /api/v1/incidents/{id}/resolve` | `{"actor", "reason"?, "at"?}` | resolve by hand |
//! | `POST /api/v1/incidents/{id}/sla` | `{"actor", "at"?}` | mark SLA-impacting |
//! | `POST /api/v1/problems/{id}/status` | `{"actor", "status", "at"?}` | lifecycle step |
//! | `POST /api/v1/problems/{id}/root-cause` | `{"actor", "root_cause", "workaround", "at"?}` | known error |
//! | `POST /api/v1/problems/{id}/notes` | `{"actor", "text", "at"?}` | annotate |
//! | `GET /api/v1/actions` | | every stored action |
//! | `POST /api/v1/silences` | `{"created_by", "site"?, "zone"?, "category"?, "starts_at"?, "ends_at"? \| "duration"?, "comment"?}` | silence or maintenance window |
//! | `GET /api/v1/silences` | | every silence |
//! | `GET /api/v1/metrics?window=30d` | | [`crate::metrics::Metrics`] of incidents opened in the window |
//! | `GET /api/v1/incidents/{id}/postmortem.md` | | Markdown |
//! | `GET /api/v1/problems/{id}/postmortem.md` | | Markdown |
//!
//! A successful action answers `200` with the updated incident or problem. Errors are JSON
//! `{"error"}`: `400` for a body that does not parse or misses a field (the message names it),
//! `404` for an unknown id, `409` for resolving an incident that already ended.
//!
//! `at` (RFC 3339) is optional and defaults to the clock's now (or the latest event time if an
//! agent's clock is ahead, see [`crate::report::incident_time`]): an action is an input with its
//! own time, stored durably (flushed) before it is applied and before the answer, so a restart
//! rebuilds the same state.

use crate::action_log::ActionLog;
use crate::actions::ProblemStatus;
use crate::actions::{ActionKind, OperatorAction};
use crate::auth::Caller;
use crate::http::{ApiError, ApiResult, Clock};
use crate::model::ActionError;
use crate::notifier::{NewSilence, SilenceBook};
use crate::postmortem::{incident_postmortem, problem_postmortem};
use crate::report::incident_time;
use crate::state::SharedState;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Extension, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use coldaisle_core::Timestamp;
use serde::Deserialize;

/// State of the operator handlers.
#[derive(Clone)]
struct Ops {
    /// The collector's state (written here only through [`crate::analysis::Analysis::ingest_action`]).
    state: SharedState,
    /// Where actions are stored.
    log: ActionLog,
    /// Silences and maintenance windows.
    silences: SilenceBook,
    /// Source of "now" for actions without `at`.
    clock: Clock,
}

/// The operator routes (merge them into the read-only router).
pub fn router(state: SharedState, log: ActionLog, silences: SilenceBook, clock: Clock) -> Router {
    Router::new()
        .route("/api/v1/incidents/{id}/ack", post(ack))
        .route("/api/v1/incidents/{id}/notes", post(note_incident))
        .route("/api/v1/incidents/{id}/resolve", post(resolve))
        .route("/api/v1/incidents/{id}/sla", post(mark_sla))
        .route("/api/v1/problems/{id}/status", post(problem_status))
        .route("/api/v1/problems/{id}/root-cause", post(root_cause))
        .route("/api/v1/problems/{id}/notes", post(note_problem))
        .route("/api/v1/actions", get(list_actions))
        .route(
            "/api/v1/incidents/{id}/postmortem.md",
            get(incident_markdown),
        )
        .route("/api/v1/problems/{id}/postmortem.md", get(problem_markdown))
        .route("/api/v1/silences", post(add_silence).get(list_silences))
        .route("/api/v1/metrics", get(metrics))
        .with_state(Ops {
            state,
            log,
            silences,
            clock,
        })
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        // Keeps the rejection's status: 413 for a body above the limit, 415 without a JSON
        // content type, 400/422 for a body that does not parse.
        let status = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                rejection.status()
            }
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError {
            status,
            message: format!("invalid JSON body: {}", rejection.body_text()),
        }
    }
}

impl From<ActionError> for ApiError {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::UnknownIncident(_) | ActionError::UnknownProblem(_) => {
                ApiError::not_found(e.to_string())
            }
            ActionError::AlreadyResolved { .. } => ApiError {
                status: StatusCode::CONFLICT,
                message: e.to_string(),
            },
            ActionError::NotAnIncidentAction => ApiError::bad_request(e.to_string()),
        }
    }
}

/// Checks a required text field.
fn required(field: &str, value: &str) -> ApiResult<()> {
    if value.trim().is_empty() {
        return Err(ApiError::bad_request(format!(
            "field {field:?} must not be empty"
        )));
    }
    Ok(())
}

/// Validates, stores (flushed) and applies one action; answers the action.
async fn perform(
    ops: &Ops,
    actor: &str,
    at: Option<&str>,
    kind: ActionKind,
) -> ApiResult<OperatorAction> {
    required("actor", actor)?;
    let given = match at {
        None => None,
        Some(text) => Some(Timestamp::parse(text).map_err(|e| {
            ApiError::bad_request(format!(
                "invalid field \"at\" {text:?}: {e}; expected RFC 3339 such as 2026-11-25T13:00:00Z"
            ))
        })?),
    };
    // The write lock is held from the check to the apply, so nothing changes in between.
    let mut state = ops.state.write().await;
    // Default: the time incidents are judged at, so an action never lands before the latest
    // event even when an agent's clock runs ahead of ours.
    let at = given.unwrap_or_else(|| incident_time(&state, (ops.clock)()));
    state.analysis.check_action(&kind, at)?;
    let log = ops.log.clone();
    let actor_owned = actor.to_string();
    let action = tokio::task::spawn_blocking(move || log.append(at, &actor_owned, kind))
        .await
        .map_err(|e| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("storing the action failed: {e}"),
        })?
        .map_err(|e| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("storing the action failed: {e}"),
        })?;
    tracing::info!(id = action.id, actor = %action.actor, action = %action.kind.describe(),
        incident = ?action.kind.incident(), problem = ?action.kind.problem(), "operator action stored");
    state.analysis.ingest_action(action.clone())?;
    Ok(action)
}

async fn incident_answer(ops: &Ops, id: &str) -> ApiResult<Response> {
    let now = (ops.clock)();
    let state = ops.state.read().await;
    let incident = crate::http::whole_incident(&state, id, incident_time(&state, now))?;
    Ok(Json(incident).into_response())
}

async fn problem_answer(ops: &Ops, id: &str) -> ApiResult<Response> {
    let problem = ops.state.read().await.analysis.problem(id);
    match problem {
        Some(problem) => {
            let problem =
                crate::cooling_cause::read::problem_with_cause(&ops.state, problem, (ops.clock)())
                    .await;
            Ok(Json(problem).into_response())
        }
        None => Err(ApiError::not_found(format!("no problem with id {id:?}"))),
    }
}

/// Body of ack and SLA mark.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActorBody {
    /// Who: must be absent or the token's name when the API has tokens (see [`Caller::actor`]).
    #[serde(default)]
    actor: Option<String>,
    /// When (RFC 3339); default now.
    at: Option<String>,
}

/// Body of notes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    /// Who: must be absent or the token's name when the API has tokens (see [`Caller::actor`]).
    #[serde(default)]
    actor: Option<String>,
    /// The note.
    text: String,
    /// When (RFC 3339); default now.
    at: Option<String>,
}

/// Body of a manual resolve.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    /// Who: must be absent or the token's name when the API has tokens (see [`Caller::actor`]).
    #[serde(default)]
    actor: Option<String>,
    /// Why.
    #[serde(default)]
    reason: String,
    /// When (RFC 3339); default now.
    at: Option<String>,
}

/// Body of a problem status change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    /// Who: must be absent or the token's name when the API has tokens (see [`Caller::actor`]).
    #[serde(default)]
    actor: Option<String>,
    /// `open`, `investigating`, `known_error` or `resolved`.
    status: ProblemStatus,
    /// When (RFC 3339); default now.
    at: Option<String>,
}

/// Body of a root cause.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RootCauseBody {
    /// Who: must be absent or the token's name when the API has tokens (see [`Caller::actor`]).
    #[serde(default)]
    actor: Option<String>,
    /// The root cause.
    root_cause: String,
    /// The workaround.
    workaround: String,
    /// When (RFC 3339); default now.
    at: Option<String>,
}

type IdPath = Result<Path<String>, PathRejection>;

async fn ack(
    State(ops): State<Ops>,
    Extension(caller): Extension<Caller>,
    path: IdPath,
    body: Result<Json<ActorBody>, JsonRejection>,
) -> ApiResult<Response> {
    let (Path(id), Json(body)) = (path?, body?);
    let kind = ActionKind::Acknowledge {
        incident: id.clone(),
    };
    let actor = caller.actor("actor", body.actor.as_deref())?;
    perform(&ops, &actor, body.at.as_deref(), kind).await?;
    incident_answer(&ops, &id).await
}

async fn mark_sla(
    State(ops): State<Ops>,
    Extension(caller): Extension<Caller>,
    path: IdPath,
    body: Result<Json<ActorBody>, JsonRejection>,
) -> ApiResult<Response> {
    let (Path(id), Json(body)) = (path?, body?);
    let kind = ActionKind::MarkSla {
        incident: id.clone(),
    };
    let actor = caller.actor("actor", body.actor.as_deref())?;
    perform(&ops, &actor, body.at.as_deref(), kind).await?;
    incident_answer(&ops, &id).await
}

async fn note_incident(
    State(ops): State<Ops>,
    Extension(caller): Extension<Caller>,
    path: IdPath,
    body: Result<Json<NoteBody>, JsonRejection>,
) -> ApiResult<Response> {
    let (Path(id), Json(body)) = (path?, body?);
    required("text", &body.text)?;
    let kind = ActionKind::NoteIncident {
        incident: id.clone(),
        text: body.text,
    };
    let actor = caller.actor("actor", body.actor.as_deref())?;
    perform(&ops, &actor, body.at.as_deref(), kind).await?;
    incident_answer(&ops, &id).await
}

async fn resolve(
    State(ops): State<Ops>,
    Extension(caller): Extension<Caller>,
    path: IdPath,
    body: Result<Json<ResolveBody>, JsonRejection>,
) -> ApiResult<Response> {
    let (Path(id), Json(body)) = (path?, body?);
    let kind = ActionKind::ResolveIncident {
        incident: id.clone(),
        reason: body.reason,
    };
    let actor = caller.actor("actor", body.actor.as_deref())?;
    perform(&ops, &actor, body.at.as_deref(), kind).await?;
    incident_answer(&ops, &id).await
}

async fn problem_status(
    State(ops): State<Ops>,
    Extension(caller): Extension<Caller>,
    path: IdPath,
    body: Result<Json<StatusBody>, JsonRejection>,
) -> ApiResult<Response> {
    let (Path(id), Json(body)) = (path?, body?);
    let kind = ActionKind::SetProblemStatus {
        problem: id.clone(),
        status: body.status,
    };
    let actor = caller.actor("actor", body.actor.as_deref())?;
    perform(&ops, &actor, body.at.as_deref(), kind).await?;
    problem_answer(&ops, &id).await
}

async fn root_cause(
    State(ops): State<Ops>,
    Extension(caller): Extension<Caller>,
    path: IdPath,
    body: Result<Json<RootCauseBody>, JsonRejection>,
) -> ApiResult<Response> {
    let (Path(id), Json(body)) = (path?, body?);
    required("root_cause", &body.root_cause)?;
    required("workaround", &body.workaround)?;
    let kind = ActionKind::SetRootCause {
        problem: id.clone(),
        root_cause: body.root_cause,
        workaround: body.workaround,
    };
    let actor = caller.actor("actor", body.actor.as_deref())?;
    perform(&ops, &actor, body.at.as_deref(), kind).await?;
    problem_answer(&ops, &id).await
}

async fn note_problem(
    State(ops): State<Ops>,
    Extension(caller): Extension<Caller>,
    path: IdPath,
    body: Result<Json<NoteBody>, JsonRejection>,
) -> ApiResult<Response> {
    let (Path(id), Json(body)) = (path?, body?);
    required("text", &body.text)?;
    let kind = ActionKind::NoteProblem {
        problem: id.clone(),
        text: body.text,
    };
    let actor = caller.actor("actor", body.actor.as_deref())?;
    perform(&ops, &actor, body.at.as_deref(), kind).await?;
    problem_answer(&ops, &id).await
}

async fn list_actions(State(ops): State<Ops>) -> Response {
    let state = ops.state.read().await;
    let actions: Vec<&OperatorAction> = state.analysis.actions().collect();
    Json(actions).into_response()
}

/// Body of a new silence.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceBody {
    /// Who: as `actor` of the other bodies.
    #[serde(default)]
    created_by: Option<String>,
    /// Site to match.
    site: Option<String>,
    /// Zone to match.
    zone: Option<String>,
    /// Category to match.
    category: Option<coldaisle_core::Category>,
    /// Start (RFC 3339); default now.
    starts_at: Option<String>,
    /// End (RFC 3339); or give `duration`.
    ends_at: Option<String>,
    /// Length (humantime, e.g. `2h`) from the start.
    duration: Option<String>,
    /// Why.
    #[serde(default)]
    comment: String,
}

fn parse_time(field: &str, text: &str) -> ApiResult<Timestamp> {
    Timestamp::parse(text).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid field {field:?} {text:?}: {e}; expected RFC 3339 such as 2026-11-25T13:00:00Z"
        ))
    })
}

async fn add_silence(
    State(ops): State<Ops>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<SilenceBody>, JsonRejection>,
) -> ApiResult<Response> {
    let Json(body) = body?;
    let created_by = caller.actor("created_by", body.created_by.as_deref())?;
    let starts_at = match &body.starts_at {
        Some(t) => parse_time("starts_at", t)?,
        None => (ops.clock)(),
    };
    let ends_at = match (&body.ends_at, &body.duration) {
        (Some(t), None) => parse_time("ends_at", t)?,
        (None, Some(d)) => starts_at.plus(humantime::parse_duration(d).map_err(|e| {
            ApiError::bad_request(format!(
                "invalid field \"duration\" {d:?}: {e}; expected e.g. 2h"
            ))
        })?),
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of \"ends_at\" and \"duration\"",
            ))
        }
    };
    if ends_at <= starts_at {
        return Err(ApiError::bad_request(
            "\"ends_at\" must be after \"starts_at\"",
        ));
    }
    let new = NewSilence {
        site: body.site.filter(|s| !s.is_empty()),
        zone: body.zone.filter(|s| !s.is_empty()),
        category: body.category,
        starts_at,
        ends_at,
        created_by,
        comment: body.comment,
    };
    let book = ops.silences.clone();
    let silence = tokio::task::spawn_blocking(move || book.add(new))
        .await
        .map_err(|e| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("storing the silence failed: {e}"),
        })?
        .map_err(|e| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("storing the silence failed: {e}"),
        })?;
    tracing::info!(id = silence.id, created_by = %silence.created_by, site = ?silence.site, zone = ?silence.zone, "silence stored");
    Ok(Json(silence).into_response())
}

async fn list_silences(State(ops): State<Ops>) -> Response {
    Json(ops.silences.all()).into_response()
}

/// Query of the metrics.
#[derive(Debug, Deserialize)]
struct MetricsQuery {
    /// Period ending now, humantime (default 30 days).
    window: Option<String>,
}

async fn metrics(
    State(ops): State<Ops>,
    query: Result<axum::extract::Query<MetricsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let axum::extract::Query(query) = query?;
    let window = match query.window.as_deref().filter(|w| !w.trim().is_empty()) {
        None => std::time::Duration::from_secs(30 * 86_400),
        Some(text) => humantime::parse_duration(text.trim()).map_err(|e| {
            ApiError::bad_request(format!(
                "invalid window {text:?}: {e}; expected a duration such as 24h or 30days"
            ))
        })?,
    };
    let now = (ops.clock)();
    let state = ops.state.read().await;
    let at = incident_time(&state, now);
    let to = at.plus(std::time::Duration::from_millis(1));
    let from = to.minus(window);
    let a = &state.analysis;
    let m = crate::metrics::metrics(
        &a.incidents(at),
        &a.problems(),
        a.events_between(from, to),
        a.pages_between(from, to),
        from,
        to,
    );
    Ok(Json(m).into_response())
}

fn markdown(text: String) -> Response {
    (
        [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
        text,
    )
        .into_response()
}

async fn incident_markdown(State(ops): State<Ops>, path: IdPath) -> ApiResult<Response> {
    let Path(id) = path?;
    let now = (ops.clock)();
    let state = ops.state.read().await;
    let incident = crate::http::whole_incident(&state, &id, incident_time(&state, now))?;
    Ok(markdown(incident_postmortem(&incident)))
}

async fn problem_markdown(State(ops): State<Ops>, path: IdPath) -> ApiResult<Response> {
    let Path(id) = path?;
    let now = (ops.clock)();
    let problem = ops
        .state
        .read()
        .await
        .analysis
        .problem(&id)
        .ok_or_else(|| ApiError::not_found(format!("no problem with id {id:?}")))?;
    let problem = crate::fix_figures::with_figures(&ops.state, problem, now).await;
    let problem = crate::cooling_cause::read::problem_with_cause(&ops.state, problem, now).await;
    let state = ops.state.read().await;
    let incidents = state.analysis.incidents(incident_time(&state, now));
    Ok(markdown(problem_postmortem(&problem, &incidents)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::analysis::Analysis;
    use crate::incidents::tests::{sensor, MIN, T0};
    use crate::incidents::IncidentRules;
    use crate::problems::ProblemRules;
    use crate::report::tests::state;
    use axum::body::Body;
    use axum::http::{Method, Request};
    use coldaisle_core::{EventState, Severity};
    use coldaisle_store::{KvStore, MemoryStore};
    use serde_json::{json, Value};
    use std::sync::Arc;
    use tokio::sync::RwLock;
    use tower::ServiceExt;

    const NOW: i64 = T0 + 10 * MIN;

    fn setup(kv: Arc<dyn KvStore>) -> (Router, SharedState) {
        setup_with(kv, crate::auth::Access::Open)
    }

    fn setup_with(kv: Arc<dyn KvStore>, access: crate::auth::Access) -> (Router, SharedState) {
        let events = vec![sensor(
            "a1",
            1,
            "Z1",
            "r1-inlet",
            EventState::Raised,
            Severity::Critical,
            33.0,
            T0,
        )];
        let state = Arc::new(RwLock::new(state(Vec::new(), events)));
        let log = ActionLog::new(kv.clone());
        let silences = SilenceBook::open(kv).unwrap();
        let mut options = crate::http::ApiOptions::new(state.clone(), Arc::new(|| Timestamp(NOW)));
        options.operator = Some(crate::http::OperatorStores { log, silences });
        options.access = access;
        options.max_body_bytes = 2048;
        (crate::http::router(options), state)
    }

    async fn call(
        app: &Router,
        method: Method,
        uri: &str,
        body: Option<&str>,
    ) -> (StatusCode, String) {
        send(app, None, method, uri, body).await
    }

    /// One request through the router, with a bearer token when `token` is given.
    async fn send(
        app: &Router,
        token: Option<&str>,
        method: Method,
        uri: &str,
        body: Option<&str>,
    ) -> (StatusCode, String) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request
            .body(body.map(|b| Body::from(b.to_string())).unwrap_or_default())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    fn inc() -> String {
        format!("/api/v1/incidents/inc-dc1-z1-thermal-{T0}")
    }

    #[tokio::test]
    async fn a_standby_refuses_operator_actions_and_names_the_active_one() {
        let kv: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
        let (_, state) = setup(kv.clone());
        let view = crate::cluster::ClusterView {
            lease: "fleet".into(),
            collector: "c2".into(),
            role: crate::cluster::Role::Standby,
            holder: Some("c1".into()),
            sites: Vec::new(),
            takeover_ms: None,
            refreshed_at: None,
            last_refresh: None,
        };
        let cluster = Arc::new(std::sync::RwLock::new(view));
        let mut options = crate::http::ApiOptions::new(state, Arc::new(|| Timestamp(NOW)));
        options.operator = Some(crate::http::OperatorStores {
            log: ActionLog::new(kv.clone()),
            silences: SilenceBook::open(kv).unwrap(),
        });
        options.cluster = Some(cluster.clone());
        let app = crate::http::router(options);
        let ack = format!("{}/ack", inc());
        let (status, body) = call(&app, Method::POST, &ack, Some(r#"{"actor":"ann"}"#)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(body.contains("standby") && body.contains("c1"), "{body}");
        // Reads still answer on a standby.
        let (status, _) = call(&app, Method::GET, "/api/v1/actions", None).await;
        assert_eq!(status, StatusCode::OK);
        // Once it takes the lease, the same request acts.
        cluster.write().unwrap().role = crate::cluster::Role::Active;
        let (status, body) = call(&app, Method::POST, &ack, Some(r#"{"actor":"ann"}"#)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    #[tokio::test]
    async fn actions_apply_persist_and_survive_a_rebuild() {
        let kv: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
        let (app, _) = setup(kv.clone());
        let (status, body) = call(
            &app,
            Method::POST,
            &format!("{}/ack", inc()),
            Some(r#"{"actor":"ann"}"#),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["acknowledged"]["actor"], "ann");
        assert_eq!(v["acknowledged"]["at"], json!(NOW));
        let (status, _) = call(
            &app,
            Method::POST,
            &format!("{}/notes", inc()),
            Some(r#"{"actor":"bob","text":"door of row 3 open","at":"2025-11-25T12:05:00Z"}"#),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        // The critical incident opened an SLA problem: give it a root cause.
        let prb = format!("prb-dc1-z1-thermal-{T0}");
        let (status, body) = call(
            &app,
            Method::POST,
            &format!("/api/v1/problems/{prb}/root-cause"),
            Some(r#"{"actor":"ann","root_cause":"door left open","workaround":"close the door"}"#),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "known_error");
        let (_, body) = call(&app, Method::GET, &inc(), None).await;
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["workaround"], "close the door");
        let whos: Vec<&str> = v["chronicle"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["who"].as_str().unwrap())
            .collect();
        assert_eq!(whos, vec!["agent a1", "coldaisle", "bob", "ann"]);
        // Markdown postmortem.
        let (status, md) = call(&app, Method::GET, &format!("{}/postmortem.md", inc()), None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            md.starts_with(&format!("# Incident inc-dc1-z1-thermal-{T0}")),
            "{md}"
        );
        assert!(
            md.contains("| 2025-11-25T12:05:00.000Z | bob | operator | note: door of row 3 open |"),
            "{md}"
        );
        assert!(
            md.contains("- Workaround (known error): close the door"),
            "{md}"
        );
        let (status, md) = call(
            &app,
            Method::GET,
            &format!("/api/v1/problems/{prb}/postmortem.md"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(md.contains("- Root cause: door left open"), "{md}");
        // A restart: a fresh analysis fed the same events and the stored actions is identical.
        let (_, before) = call(&app, Method::GET, &inc(), None).await;
        let (app2, state2) = setup(kv.clone());
        let actions = ActionLog::new(kv).all().unwrap();
        assert_eq!(actions.len(), 3);
        assert_eq!(state2.write().await.analysis.ingest_actions(actions), 0);
        let (_, after) = call(&app2, Method::GET, &inc(), None).await;
        assert_eq!(after, before);
        let _ = Analysis::new(IncidentRules::default(), ProblemRules::default());
    }

    #[tokio::test]
    async fn bad_requests_are_clear() {
        let (app, _) = setup(Arc::new(MemoryStore::new()));
        let ack = format!("{}/ack", inc());
        let cases = [
            (
                ack.as_str(),
                "not json",
                StatusCode::BAD_REQUEST,
                "invalid JSON body",
            ),
            (
                ack.as_str(),
                r#"{}"#,
                StatusCode::BAD_REQUEST,
                "field \\\"actor\\\" is required",
            ),
            (
                ack.as_str(),
                r#"{"actor":" "}"#,
                StatusCode::BAD_REQUEST,
                "actor\\\" is required",
            ),
            (
                ack.as_str(),
                r#"{"actor":"a","colour":1}"#,
                StatusCode::BAD_REQUEST,
                "unknown field `colour`",
            ),
            (
                ack.as_str(),
                r#"{"actor":"a","at":"yesterday"}"#,
                StatusCode::BAD_REQUEST,
                "invalid field \\\"at\\\" \\\"yesterday",
            ),
            (
                "/api/v1/incidents/inc-x/ack",
                r#"{"actor":"a"}"#,
                StatusCode::NOT_FOUND,
                "no incident inc-x",
            ),
            (
                "/api/v1/problems/prb-x/status",
                r#"{"actor":"a","status":"resolved"}"#,
                StatusCode::NOT_FOUND,
                "no problem prb-x",
            ),
        ];
        for (uri, body, status, message) in cases {
            let (got, text) = call(&app, Method::POST, uri, Some(body)).await;
            assert_eq!(got, status, "{uri} {body}: {text}");
            assert!(text.contains(message), "{uri} {body}: {text}");
        }
        let prb = format!("/api/v1/problems/prb-dc1-z1-thermal-{T0}/status");
        let (got, text) = call(
            &app,
            Method::POST,
            &prb,
            Some(r#"{"actor":"a","status":"fixed"}"#),
        )
        .await;
        assert_eq!(got, StatusCode::BAD_REQUEST);
        assert!(text.contains("unknown variant `fixed`"), "{text}");
        // Resolving twice: the second is a conflict.
        let resolve = format!("{}/resolve", inc());
        let (got, _) = call(&app, Method::POST, &resolve, Some(r#"{"actor":"a"}"#)).await;
        assert_eq!(got, StatusCode::OK);
        let (got, text) = call(&app, Method::POST, &resolve, Some(r#"{"actor":"a"}"#)).await;
        assert_eq!(got, StatusCode::CONFLICT);
        assert!(text.contains("already resolved"), "{text}");
        let (got, text) = call(&app, Method::GET, "/api/v1/metrics?window=soon", None).await;
        assert_eq!(got, StatusCode::BAD_REQUEST);
        assert!(text.contains("invalid window"), "{text}");
        let (got, text) = call(&app, Method::GET, "/api/v1/metrics?window=1h", None).await;
        assert_eq!(got, StatusCode::OK);
        let m: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (m["incidents"].as_u64(), m["raw_events"].as_u64()),
            (Some(1), Some(1))
        );
        // Nothing failed was stored.
        let (_, text) = call(&app, Method::GET, "/api/v1/actions", None).await;
        assert_eq!(serde_json::from_str::<Vec<Value>>(&text).unwrap().len(), 1);
    }

    /// Like [`call`] with an `Authorization: Bearer` header.
    async fn call_as(
        app: &Router,
        token: &str,
        method: Method,
        uri: &str,
        body: Option<&str>,
    ) -> (StatusCode, String) {
        send(app, Some(token), method, uri, body).await
    }

    fn tokens() -> crate::auth::Access {
        use crate::auth::{hash_token, to_hex, TokenBook};
        let text = format!(
            "ann read,operate {}\ngraf read {}\n",
            to_hex(&hash_token("ann-token")),
            to_hex(&hash_token("graf-token"))
        );
        let book = TokenBook::parse(&text, std::path::Path::new("tokens")).unwrap();
        crate::auth::Access::Tokens {
            path: "tokens".into(),
            book: Arc::new(std::sync::RwLock::new(book)),
        }
    }

    #[tokio::test]
    async fn tokens_gate_every_route_but_healthz_and_name_the_actor() {
        let (app, _) = setup_with(Arc::new(MemoryStore::new()), tokens());
        let ack = format!("{}/ack", inc());
        let (got, text) = call(&app, Method::GET, "/healthz", None).await;
        assert_eq!((got, text.as_str()), (StatusCode::OK, "ok"));
        for uri in ["/api/v1/zones", "/api/v1/actions", "/api/v1/silences"] {
            let (got, text) = call(&app, Method::GET, uri, None).await;
            assert_eq!(got, StatusCode::UNAUTHORIZED, "{uri}");
            assert!(text.contains("missing bearer token"), "{text}");
        }
        let (got, text) = call_as(&app, "guess", Method::GET, "/api/v1/zones", None).await;
        assert_eq!(got, StatusCode::UNAUTHORIZED);
        assert!(text.contains("unknown token"), "{text}");
        // A read token reads but cannot act.
        let (got, _) = call_as(&app, "graf-token", Method::GET, &inc(), None).await;
        assert_eq!(got, StatusCode::OK);
        let (got, text) = call_as(&app, "graf-token", Method::POST, &ack, Some("{}")).await;
        assert_eq!(got, StatusCode::FORBIDDEN);
        assert!(
            text.contains("token \\\"graf\\\" lacks the operate scope"),
            "{text}"
        );
        // The body cannot name someone else.
        let (got, text) = call_as(
            &app,
            "ann-token",
            Method::POST,
            &ack,
            Some(r#"{"actor":"root"}"#),
        )
        .await;
        assert_eq!(got, StatusCode::FORBIDDEN);
        assert!(
            text.contains("the actor of an action is the token's name"),
            "{text}"
        );
        // The actor is the token's name.
        let (got, text) = call_as(&app, "ann-token", Method::POST, &ack, Some("{}")).await;
        assert_eq!(got, StatusCode::OK, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["acknowledged"]["actor"], "ann");
        let (got, text) = call_as(
            &app,
            "ann-token",
            Method::POST,
            "/api/v1/silences",
            Some(r#"{"duration":"1h"}"#),
        )
        .await;
        assert_eq!(got, StatusCode::OK, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["created_by"], "ann");
        // Nothing refused was stored.
        let (_, text) = call_as(&app, "graf-token", Method::GET, "/api/v1/actions", None).await;
        assert_eq!(serde_json::from_str::<Vec<Value>>(&text).unwrap().len(), 1);
    }

    #[tokio::test]
    async fn bodies_above_the_limit_answer_413() {
        let (app, _) = setup(Arc::new(MemoryStore::new()));
        let note = format!("{}/notes", inc());
        let body = json!({ "actor": "ann", "text": "x".repeat(4096) }).to_string();
        let (got, text) = call(&app, Method::POST, &note, Some(&body)).await;
        assert_eq!(got, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
        assert!(text.starts_with("{\"error\":"), "{text}");
        let small = json!({ "actor": "ann", "text": "x".repeat(512) }).to_string();
        let (got, text) = call(&app, Method::POST, &note, Some(&small)).await;
        assert_eq!(got, StatusCode::OK, "{text}");
    }
}
