//! `GET /api/v1/history`: reading-summary figures for a site, zone, rack or sensor over any
//! period, read from the roll-ups ([`crate::rollup_store`]).
//!
//! Parameters: `site` (required), `zone`, `rack`, `sensor`, and the period: either
//! `since=7d` (a humantime duration ending now) or `from=` with an optional `to=` (RFC 3339 or
//! `YYYY-MM-DD HH:MM:SS` UTC; `to` defaults to now). Any other combination is a `400` naming
//! the parameter. The answer is a [`crate::rollup_store::History`].
//!
//! `GET /api/v1/report` ([`ReportParams`]) serves the facility report
//! ([`crate::report::facility::FacilityReport`]) over the same periods.

use crate::http::{ApiError, ApiResult};
use crate::report::facility::{
    build, resolve_site, resolve_zones, BucketParts, Inputs, ReportSettings,
};
use crate::report::formats::{render, Format};
use crate::rollup::{series, Level};
use crate::rollup_store::{HistoryQuery, PeriodBuckets, RollupStore};
use crate::state::SharedState;
use axum::response::{IntoResponse, Response};
use axum::Json;
use coldaisle_core::{SensorKind, Timestamp};
use coldaisle_store::StoreError;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Query string of `/api/v1/history`.
#[derive(Debug, Default, Deserialize)]
pub struct HistoryParams {
    /// Site (required).
    pub site: Option<String>,
    /// Zone.
    pub zone: Option<String>,
    /// Rack.
    pub rack: Option<String>,
    /// Sensor id.
    pub sensor: Option<String>,
    /// Period ending now, e.g. `7d`.
    pub since: Option<String>,
    /// Start of the period.
    pub from: Option<String>,
    /// End of the period (default now).
    pub to: Option<String>,
}

/// The period `[from, to]` of `since`/`from`/`to` at `now`, or an error naming the parameter
/// (pure; the CLI uses it too).
pub fn period(
    since: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
    now: Timestamp,
) -> Result<(Timestamp, Timestamp), String> {
    let at = |name: &str, text: &str| {
        Timestamp::parse(text.trim()).map_err(|e| {
            format!("invalid {name} {text:?}: {e}; expected RFC 3339 such as 2026-11-25T12:00:00Z")
        })
    };
    match (since, from) {
        (Some(_), Some(_)) => Err("give either since or from, not both".into()),
        (None, None) => Err("missing period: give since (e.g. 7d) or from (and to)".into()),
        (Some(since), None) => {
            if to.is_some() {
                return Err("to goes with from, not with since".into());
            }
            let d = humantime::parse_duration(since.trim()).map_err(|e| {
                format!("invalid since {since:?}: {e}; expected a duration such as 7d or 24h")
            })?;
            if d.is_zero() {
                return Err("invalid since: must be above zero".into());
            }
            Ok((now.minus(d), now))
        }
        (None, Some(from)) => {
            let from = at("from", from)?;
            let to = to.map(|t| at("to", t)).transpose()?.unwrap_or(now);
            if from > to {
                return Err(format!(
                    "invalid period: from {} is after to {}",
                    from.to_rfc3339(),
                    to.to_rfc3339()
                ));
            }
            Ok((from, to))
        }
    }
}

/// The query of `params` at `now`, or a `400`.
pub(crate) fn query_of(params: HistoryParams, now: Timestamp) -> ApiResult<HistoryQuery> {
    let given = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let site = given(params.site).ok_or_else(|| ApiError::bad_request("missing site"))?;
    let (from, to) = period(
        given(params.since).as_deref(),
        given(params.from).as_deref(),
        given(params.to).as_deref(),
        now,
    )
    .map_err(ApiError::bad_request)?;
    Ok(HistoryQuery {
        site,
        zone: given(params.zone),
        rack: given(params.rack),
        sensor: given(params.sensor),
        from,
        to,
    })
}

/// Answers a history request: reads the roll-ups on a blocking thread, without the state lock.
pub(crate) async fn answer(
    state: &SharedState,
    now: Timestamp,
    params: HistoryParams,
) -> ApiResult<Response> {
    let query = query_of(params, now)?;
    let Some(rollups) = state.read().await.rollups.clone() else {
        return Err(ApiError::not_found("this collector keeps no history"));
    };
    let history = off_runtime("history", move || rollups.history(&query, now)).await?;
    Ok(Json(history).into_response())
}

/// Runs the store read `read` on a blocking thread (without the state lock); a store error or
/// a failed task is a `500` naming `what`, and logged.
async fn off_runtime<T: Send + 'static>(
    what: &'static str,
    read: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> ApiResult<T> {
    match tokio::task::spawn_blocking(read).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => {
            tracing::error!(error = %e, what, "store read failed");
            Err(internal(e.to_string()))
        }
        Err(e) => Err(internal(format!("{what} read failed: {e}"))),
    }
}

/// Query string of `GET /api/v1/history/series`: the history's parameters, `level`
/// (`minute`, `hour` or `day`; default: the level the history would read) and `kind` (only
/// sensors of that kind, e.g. `inlet_temp`).
#[derive(Debug, Default, Deserialize)]
pub struct SeriesParams {
    /// Site, zone, rack, sensor and period, as for `/api/v1/history`.
    #[serde(flatten)]
    pub history: HistoryParams,
    /// Level of the points.
    pub level: Option<String>,
    /// Only sensors of this kind.
    pub kind: Option<String>,
}

/// Parses a snake_case name of a serde enum (`Level`, `SensorKind`), or a `400` naming the
/// parameter and what it accepts.
fn parse_name<T: serde::de::DeserializeOwned>(
    text: &str,
    name: &str,
    accepted: &str,
) -> ApiResult<T> {
    T::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(text.trim()))
        .map_err(|_| ApiError::bad_request(format!("invalid {name} {text:?}; expected {accepted}")))
}

/// Answers a series request: one point per sensor and bucket, read on a blocking thread
/// without the state lock; a period of more than [`series::MAX_POINTS`] buckets per sensor at
/// the asked level is a `400`.
pub(crate) async fn series_answer(
    state: &SharedState,
    now: Timestamp,
    params: SeriesParams,
) -> ApiResult<Response> {
    let given = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let level: Option<Level> = given(params.level)
        .map(|l| parse_name(&l, "level", "minute, hour or day"))
        .transpose()?;
    let kind: Option<SensorKind> = given(params.kind)
        .map(|k| parse_name(&k, "kind", "a sensor kind such as inlet_temp"))
        .transpose()?;
    let query = query_of(params.history, now)?;
    let Some(rollups) = state.read().await.rollups.clone() else {
        return Err(ApiError::not_found("this collector keeps no history"));
    };
    let level = level.unwrap_or_else(|| rollups.serving_level(&query, now));
    let points = series::points_per_sensor(query.from, query.to, level);
    if points > series::MAX_POINTS {
        return Err(ApiError::bad_request(format!(
            "period too long for level {}: {points} buckets per sensor, at most {}; \
             use a coarser level",
            level.name(),
            series::MAX_POINTS
        )));
    }
    let series = off_runtime("history series", move || {
        rollups.series(&query, level, kind)
    })
    .await?;
    Ok(Json(series).into_response())
}

/// The report of `zone` over `period`, its rack figures read from the roll-ups
/// ([`crate::report::with_history`]); incidents are those of the period (window = its length,
/// ending at its end). The zone must be known to the state, as for the windowed report.
pub(crate) async fn zone_report_over(
    state: &SharedState,
    site: Option<&str>,
    zone: &str,
    (from, to): (Timestamp, Timestamp),
    now: Timestamp,
) -> ApiResult<crate::report::ZoneReport> {
    let (report, rollups) = {
        let state = state.read().await;
        let report = crate::report::zone_report(&state, site, zone, to, to.since(from))
            .map_err(crate::http::report_error)?;
        (report, state.rollups.clone())
    };
    let Some(rollups) = rollups else {
        return Err(ApiError::not_found("this collector keeps no history"));
    };
    with_figures(report, rollups, (from, to), now).await
}

/// `report` with its rack figures read from `rollups` over `(from, to)` on a blocking thread
/// ([`crate::report::with_history`]): the windowed zone report's figures too.
pub(crate) async fn with_figures(
    report: crate::report::ZoneReport,
    rollups: crate::rollup_store::RollupStore,
    (from, to): (Timestamp, Timestamp),
    now: Timestamp,
) -> ApiResult<crate::report::ZoneReport> {
    off_runtime("history", move || {
        crate::report::with_stored_figures(report, &rollups, (from, to), now)
    })
    .await
}

/// Query string of `GET /api/v1/report`: `site`, `zone` (absent: every zone of the site), the
/// period as for the history (`since=24h`, or `from=` and `to=`; default `since=24h`) and
/// `format=json|table|markdown|csv` (default json).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// Site; may be left out when the zone (or the collector) has only one.
    pub site: Option<String>,
    /// Zone; absent: every zone of the site.
    pub zone: Option<String>,
    /// Period ending now, e.g. `24h` (the default).
    pub since: Option<String>,
    /// Start of the period.
    pub from: Option<String>,
    /// End of the period (default now).
    pub to: Option<String>,
    /// `json` (default), `table`, `markdown` or `csv`.
    pub format: Option<String>,
}

/// Default period of a report without `since` or `from`.
pub const DEFAULT_REPORT_SINCE: &str = "24h";

/// Answers `GET /api/v1/report`: resolves site and zones against what the state knows, reads
/// the buckets of the period and of the previous period of the same length on a blocking
/// thread (without the state lock), and builds the [`FacilityReport`] in the asked format.
pub(crate) async fn facility_answer(
    state: &SharedState,
    settings: ReportSettings,
    now: Timestamp,
    params: ReportParams,
) -> ApiResult<Response> {
    let given = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let format = match given(params.format) {
        None => Format::Json,
        Some(text) => Format::parse(&text, "format").map_err(ApiError::bad_request)?,
    };
    let (since, from) = (given(params.since), given(params.from));
    let since = since.or_else(|| from.is_none().then(|| DEFAULT_REPORT_SINCE.to_string()));
    let (from, to) = period(
        since.as_deref(),
        from.as_deref(),
        given(params.to).as_deref(),
        now,
    )
    .map_err(ApiError::bad_request)?;
    let zone = given(params.zone);
    let (site, mut known, incidents, problems, rollups) = {
        let state = state.read().await;
        let zones = crate::report::zones(&state, now);
        let keys: BTreeSet<(String, String)> =
            zones.into_iter().map(|z| (z.site, z.zone)).collect();
        let site = resolve_site(given(params.site).as_deref(), zone.as_deref(), &keys)
            .map_err(crate::http::report_error)?;
        let known: BTreeSet<String> = keys
            .into_iter()
            .filter(|(s, _)| *s == site)
            .map(|(_, z)| z)
            .collect();
        let incidents = state
            .analysis
            .incidents(crate::report::incident_time(&state, now));
        (
            site,
            known,
            incidents,
            state.analysis.problems(),
            state.rollups.clone(),
        )
    };
    let Some(rollups) = rollups else {
        return Err(ApiError::not_found("this collector keeps no history"));
    };
    // The open forecasts, for each zone's "trending towards the limit" list.
    let forecasts = {
        let state = state.read().await;
        crate::report::forecasts::open_by_zone(state.analysis.events(), &site, zone.as_deref())
    };
    let query = HistoryQuery {
        site: site.clone(),
        zone: zone.clone(),
        rack: None,
        sensor: None,
        from,
        to,
    };
    let (current, previous) =
        off_runtime("report", move || read_periods(&rollups, query, now)).await?;
    known.extend(current.iter().map(|b| b.location.zone.clone()));
    known.extend(previous.2.iter().map(|b| b.location.zone.clone()));
    let zones = resolve_zones(&site, zone.as_deref(), &known).map_err(crate::http::report_error)?;
    let mut report = build(&Inputs {
        site: &site,
        zones: &zones,
        from,
        to,
        level: current.level,
        buckets: BucketParts {
            closed: &current.closed,
            tail: &current.tail,
        },
        previous_level: previous.0,
        previous: &previous.2,
        incidents: &incidents,
        problems: &problems,
        envelope: settings.envelope,
        stale_after: settings.stale_after,
    });
    let period = BucketParts {
        closed: &current.closed,
        tail: &current.tail,
    };
    crate::report::forecasts::add_to_facility(&mut report, forecasts, period);
    Ok(match format {
        Format::Json => Json(report).into_response(),
        other => (
            [(axum::http::header::CONTENT_TYPE, other.content_type())],
            render(&report, other),
        )
            .into_response(),
    })
}

/// A merged period: the level, the first bucket's start and one roll-up per sensor.
pub type MergedPeriod = (
    crate::rollup::Level,
    Timestamp,
    Arc<Vec<crate::rollup::Rollup>>,
);

/// The buckets of `query`'s period ([`RollupStore::period`]: the closed ones cached, the
/// open tail read), and the previous period of the same length as one merged
/// roll-up per sensor ([`RollupStore::merged`], cached while no write can have changed it):
/// a report uses the previous period only for per-sensor and overall figures (trend, latest
/// values, the sensors seen), which merging keeps. Its buckets end before the period itself:
/// aligned buckets can start before the previous period's start, and the bucket holding
/// `from` belongs to the period. When the merge is not cached, both periods are read at once,
/// on this thread and one more.
pub fn read_periods(
    rollups: &RollupStore,
    query: HistoryQuery,
    now: Timestamp,
) -> Result<(PeriodBuckets, MergedPeriod), StoreError> {
    let length = query.to.0 - query.from.0;
    let previous = HistoryQuery {
        from: Timestamp(query.from.0 - length),
        to: Timestamp(query.from.0 - 1),
        ..query.clone()
    };
    let (current, before) = std::thread::scope(|scope| {
        let before = scope.spawn(|| rollups.merged(&previous, now));
        let current = rollups.period(&query, now);
        let before = before.join().unwrap_or_else(|_| {
            Err(StoreError {
                operation: "read",
                tree: "rollup".into(),
                message: "the previous period's reader panicked".into(),
            })
        });
        (current, before)
    });
    Ok((current?, before?))
}

fn internal(message: String) -> ApiError {
    ApiError {
        status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_700_000_000_000);

    #[test]
    fn since_and_from_to_give_the_period() {
        assert_eq!(
            period(Some("7d"), None, None, NOW),
            Ok((Timestamp(NOW.0 - 7 * 86_400_000), NOW))
        );
        let (from, to) = period(
            None,
            Some("2023-11-01T00:00:00Z"),
            Some("2023-11-02T00:00:00Z"),
            NOW,
        )
        .expect("period");
        assert_eq!(to.0 - from.0, 86_400_000);
        let (_, to) = period(None, Some("2023-11-01T00:00:00Z"), None, NOW).expect("period");
        assert_eq!(to, NOW);
    }

    #[test]
    fn bad_periods_name_the_parameter() {
        for (since, from, to, word) in [
            (
                Some("7d"),
                Some("2023-11-01T00:00:00Z"),
                None,
                "either since or from",
            ),
            (None, None, None, "missing period"),
            (Some("soon"), None, None, "invalid since"),
            (Some("0s"), None, None, "invalid since"),
            (
                Some("7d"),
                None,
                Some("2023-11-01T00:00:00Z"),
                "to goes with from",
            ),
            (None, Some("yesterday"), None, "invalid from"),
            (None, Some("2023-11-01T00:00:00Z"), Some("x"), "invalid to"),
            (
                None,
                Some("2023-11-02T00:00:00Z"),
                Some("2023-11-01T00:00:00Z"),
                "is after to",
            ),
        ] {
            let err = period(since, from, to, NOW).expect_err(word);
            assert!(err.contains(word), "{since:?} {from:?} {to:?}: {err}");
        }
    }

    #[test]
    fn site_is_required() {
        let params = HistoryParams {
            since: Some("1h".into()),
            ..HistoryParams::default()
        };
        let err = query_of(params, NOW).expect_err("no site");
        assert!(err.message.contains("site"));
    }

    /// The API over a store holding one day of minutes of one sensor, at `NOW`.
    fn app() -> axum::Router {
        use crate::rollup_store::{add, RollupStore};
        use coldaisle_core::{Location, ReadingSummary, SensorKind};
        use coldaisle_store::{KvStore, MemoryStore};
        use std::sync::Arc;
        let kv: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
        let summaries: Vec<ReadingSummary> = (0..24 * 60)
            .map(|m| ReadingSummary {
                sensor: "r1-inlet".into(),
                kind: SensorKind::InletTemp,
                location: Location {
                    site: "dc1".into(),
                    zone: "Z1".into(),
                    row: None,
                    rack: Some("R1".into()),
                },
                from: Timestamp(NOW.0 - 86_400_000 + m * 60_000),
                to: Timestamp(NOW.0 - 86_400_000 + m * 60_000 + 59_000),
                count: 6,
                min: 20.0,
                max: 30.0,
                sum: 150.0,
                last: 25.0,
            })
            .collect();
        add(kv.as_ref(), &summaries.iter().collect::<Vec<_>>()).expect("add");
        let mut state = crate::report::tests::sample();
        state.rollups = Some(RollupStore::new(kv, Default::default()));
        crate::http::router(crate::http::ApiOptions::new(
            Arc::new(tokio::sync::RwLock::new(state)),
            Arc::new(|| NOW),
        ))
    }

    async fn get(uri: &str) -> (axum::http::StatusCode, serde_json::Value) {
        use tower::ServiceExt;
        let request = axum::http::Request::builder()
            .uri(uri)
            .body(axum::body::Body::empty())
            .expect("request");
        let response = app().oneshot(request).await.expect("response");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    #[tokio::test]
    async fn history_route_answers_from_the_rollups() {
        let (status, body) = get("/api/v1/history?site=dc1&zone=Z1&since=2h").await;
        assert_eq!(status, axum::http::StatusCode::OK, "{body}");
        assert_eq!(body["level"], "minute");
        assert_eq!(body["sensors"][0]["sensor"], "r1-inlet");
        // The last 2 h of minutes (the day ends one minute before NOW): 120 buckets of 6.
        assert_eq!(body["sensors"][0]["count"], 120 * 6);
        let (status, body) = get("/api/v1/history?site=dc1&zone=Z1&rack=R1&since=30d").await;
        assert_eq!(status, axum::http::StatusCode::OK, "{body}");
        assert_eq!(body["level"], "day");
        assert_eq!(body["sensors"][0]["count"], 24 * 60 * 6);
        let (_, body) = get("/api/v1/history?site=dc1&zone=Z1&rack=R9&since=30d").await;
        assert_eq!(body["sensors"].as_array().map(Vec::len), Some(0));
        let (_, stats) = get("/api/v1/stats").await;
        let trees = stats["trees"].as_array().expect("trees");
        let minute = trees
            .iter()
            .find(|t| t["tree"] == "rollup_1m")
            .expect("minute tree");
        assert_eq!(minute["entries"], 24 * 60);
    }

    #[tokio::test]
    async fn series_route_answers_one_point_per_bucket_in_one_request() {
        let (status, body) = get(
            "/api/v1/history/series?site=dc1&zone=Z1&rack=R1&kind=inlet_temp&level=hour&since=24h",
        )
        .await;
        assert_eq!(status, axum::http::StatusCode::OK, "{body}");
        assert_eq!(body["level"], "hour");
        let series = body["series"].as_array().expect("series");
        assert_eq!(series.len(), 1, "{body}");
        assert_eq!(series[0]["sensor"], "r1-inlet");
        let points = series[0]["points"].as_array().expect("points");
        // The day of minutes ends one minute before NOW: 24 or 25 hour buckets, 60 minutes each
        // except where the day starts and ends mid-hour.
        assert!((24..=25).contains(&points.len()), "{}", points.len());
        let samples: u64 = points.iter().filter_map(|p| p["count"].as_u64()).sum();
        assert_eq!(samples, 24 * 60 * 6);
        let starts: Vec<i64> = points.iter().filter_map(|p| p["start"].as_i64()).collect();
        assert!(
            starts.windows(2).all(|w| w[1] - w[0] == 3_600_000),
            "{starts:?}"
        );
        assert_eq!(points[1]["max"], 30.0);
        // Without a level: the level the history would read (minutes for 2 h).
        let (_, body) = get("/api/v1/history/series?site=dc1&zone=Z1&since=2h").await;
        assert_eq!(body["level"], "minute");
        assert_eq!(
            body["series"][0]["points"].as_array().map(Vec::len),
            Some(120)
        );
        // Another kind: nothing.
        let (_, body) = get("/api/v1/history/series?site=dc1&zone=Z1&kind=humidity&since=2h").await;
        assert_eq!(body["series"].as_array().map(Vec::len), Some(0));
    }

    #[tokio::test]
    async fn series_route_rejects_bad_levels_kinds_and_long_periods() {
        for (uri, word) in [
            (
                "/api/v1/history/series?site=dc1&since=1h&level=week",
                "invalid level",
            ),
            (
                "/api/v1/history/series?site=dc1&since=1h&kind=lava",
                "invalid kind",
            ),
            (
                "/api/v1/history/series?site=dc1&since=30d&level=minute",
                "too long",
            ),
            ("/api/v1/history/series?zone=Z1&since=1h", "site"),
        ] {
            let (status, body) = get(uri).await;
            assert_eq!(status, axum::http::StatusCode::BAD_REQUEST, "{uri}: {body}");
            let message = body["error"].as_str().expect("error text");
            assert!(message.contains(word), "{uri}: {message}");
        }
    }

    #[tokio::test]
    async fn zone_report_over_a_period_reads_rack_figures_from_the_rollups() {
        let (status, body) = get("/api/v1/zones/Z1/report?site=dc1&since=2d").await;
        assert_eq!(status, axum::http::StatusCode::OK, "{body}");
        assert_eq!(body["rollup_level"], "hour");
        assert_eq!(body["window_secs"], 2 * 86_400);
        let racks = body["racks"].as_array().expect("racks");
        let r1 = racks
            .iter()
            .find(|r| r["rack"] == "R1")
            .expect("R1 from the roll-ups");
        assert_eq!(r1["inlet_avg"], 25.0);
        assert_eq!(r1["inlet_max"], 30.0);
        assert_eq!(r1["inlet_last"], 25.0);
        // Racks known from memory stay listed.
        assert!(racks.iter().any(|r| r["rack"] == "R2"), "{body}");
        let (status, body) = get(
            "/api/v1/zones/Z1/report?site=dc1&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
        )
        .await;
        assert_eq!(status, axum::http::StatusCode::BAD_REQUEST, "{body}");
        assert!(body["error"].as_str().is_some_and(|e| e.contains("after")));
    }

    #[tokio::test]
    async fn facility_report_route_serves_each_format() {
        let (status, body) = get("/api/v1/report?site=dc1&zone=Z1&since=2h").await;
        assert_eq!(status, axum::http::StatusCode::OK, "{body}");
        assert_eq!(body["schema"], 1);
        assert_eq!(body["level"], "minute");
        assert_eq!(body["envelope"]["class"], "A1");
        let zone = &body["zones"][0];
        assert_eq!(zone["zone"], "Z1");
        assert_eq!(zone["rows"][0]["racks"][0]["rack"], "R1");
        // 120 minutes of 6 samples (20..30, mean 25); max 30 is above the recommended 27.
        assert_eq!(zone["inlet"]["samples"], 120 * 6);
        assert_eq!(zone["inlet"]["avg"], 25.0);
        assert_eq!(zone["inlet"]["p95"], 30.0);
        assert_eq!(zone["hot_spots"][0]["sensor"], "r1-inlet");
        // The previous 2 h hold the same minutes: no change.
        assert_eq!(zone["trend"]["avg_delta"], 0.0);
        // Site-wide: the zones known from memory are listed too.
        let (status, body) = get("/api/v1/report?site=dc1&since=2h").await;
        assert_eq!(status, axum::http::StatusCode::OK, "{body}");
        let zones: Vec<&str> = body["zones"]
            .as_array()
            .expect("zones")
            .iter()
            .filter_map(|z| z["zone"].as_str())
            .collect();
        assert_eq!(zones, vec!["Z1", "Z2"]);
        for (format, needle) in [
            ("table", "ROW"),
            ("markdown", "## Zone Z1"),
            ("csv", "site,zone,row,rack"),
        ] {
            let (status, text) =
                get_text(&format!("/api/v1/report?zone=Z1&site=dc1&format={format}")).await;
            assert_eq!(status, axum::http::StatusCode::OK, "{text}");
            assert!(text.contains(needle), "{format}: {text}");
            assert!(text.contains("R1"), "{format}: {text}");
        }
    }

    #[tokio::test]
    async fn facility_report_errors_name_the_parameter() {
        for (uri, code, word) in [
            ("/api/v1/report?site=dc1&zone=Z1&format=pdf", 400, "format"),
            ("/api/v1/report?site=dc1&zone=Z1&since=soon", 400, "since"),
            (
                "/api/v1/report?site=dc1&zone=Z9",
                404,
                "unknown zone dc1/Z9",
            ),
            ("/api/v1/report?site=dc1&zone=Z1&colour=red", 400, "colour"),
            ("/api/v1/report?zone=Z1", 400, "several sites"),
        ] {
            let (status, body) = get(uri).await;
            assert_eq!(status.as_u16(), code, "{uri}: {body}");
            let message = body["error"].as_str().expect("error text");
            assert!(message.contains(word), "{uri}: {message}");
        }
    }

    async fn get_text(uri: &str) -> (axum::http::StatusCode, String) {
        use tower::ServiceExt;
        let request = axum::http::Request::builder()
            .uri(uri)
            .body(axum::body::Body::empty())
            .expect("request");
        let response = app().oneshot(request).await.expect("response");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn history_route_rejects_bad_parameters_with_400() {
        for (uri, word) in [
            ("/api/v1/history?zone=Z1&since=1h", "site"),
            ("/api/v1/history?site=dc1&since=later", "since"),
            ("/api/v1/history?site=dc1&from=2026-13-01T00:00:00Z", "from"),
            ("/api/v1/history?site=dc1", "period"),
        ] {
            let (status, body) = get(uri).await;
            assert_eq!(status, axum::http::StatusCode::BAD_REQUEST, "{uri}");
            let message = body["error"].as_str().expect("error text");
            assert!(message.contains(word), "{uri}: {message}");
        }
    }
}
