//! The web dashboard: static HTML, CSS and JavaScript embedded in the binary and served under
//! `/ui/` on the API's port. The page reads the JSON API ([`crate::http`]) from the browser.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` and `GET /ui` | `308` to `/ui/` |
//! | `GET /ui/` | the page (`index.html`) |
//! | `GET /ui/{file}` | one asset of [`ASSETS`], `404` JSON otherwise |
//!
//! Invariants:
//! - every asset is compiled in (`include_str!`): the dashboard needs no CDN and no internet;
//!   a test checks that no asset names an `http:`/`https:` URL;
//! - the assets hold no data and are the same for every caller, so they are served without a
//!   token; every figure the page shows comes from `/api/v1/`, which stays behind
//!   [`crate::auth::require`]. With tokens configured the page asks for one, keeps it in the
//!   tab's `sessionStorage` and sends it as `Authorization: Bearer`;
//! - assets are revalidated on every load (`Cache-Control: no-cache` with a strong `ETag` of
//!   their bytes), so a new binary's page is never mixed with an old cached script;
//! - a `Content-Security-Policy` allows scripts, styles and requests to this origin only.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file of the dashboard.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Its name under `/ui/`.
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes (UTF-8 text).
    pub body: &'static str,
}

/// Content type of the scripts.
const JS: &str = "text/javascript; charset=utf-8";

/// The [`Asset`] of `collector/assets/<name>`, compiled in.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_str!(concat!("../assets/", $name)),
        }
    };
}

/// Every file of the dashboard; `index.html` is the page, the scripts are ES modules it loads.
pub const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("bands.js", JS),
    asset!("chart.js", JS),
    asset!("views.js", JS),
    asset!("favicon.svg", "image/svg+xml"),
];

/// What the page may load: this origin only (inline SVG built by the scripts is DOM, not a
/// load, so it needs no exception).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
     script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The asset called `name`, if there is one.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// Strong entity tag of `body`: FNV-1a 64 of its bytes, quoted. Stable across runs of the same
/// binary (no random seed), different when an asset changes.
pub fn etag(body: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in body.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{hash:016x}\"")
}

/// The dashboard's routes (no access control of their own: see the module's invariants).
pub fn router() -> Router {
    Router::new()
        .route("/", get(to_page))
        .route("/ui", get(to_page))
        .route("/ui/", get(page))
        .route("/ui/{file}", get(file))
}

async fn to_page() -> Redirect {
    Redirect::permanent("/ui/")
}

async fn page(headers: HeaderMap) -> Response {
    file(Path("index.html".to_string()), headers).await
}

async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(asset) = asset(&name) else {
        return crate::http::ApiError::not_found(format!(
            "no dashboard file {name:?}; the dashboard is at /ui/"
        ))
        .into_response();
    };
    let tag = etag(asset.body);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let out = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&tag) {
        out.insert(header::ETAG, value);
    }
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    out.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    out.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
#[path = "dashboard_tests.rs"]
mod tests;
