//! Tests of the dashboard's routes, through the whole API router (so the access control and
//! the merge into [`crate::http::router`] are what a browser meets).

#![allow(clippy::unwrap_used)]

use super::*;
use crate::auth::{hash_token, to_hex, Access, TokenBook};
use crate::http::{router as api_router, ApiOptions};
use crate::report::tests::{sample, T0};
use axum::body::Body;
use axum::http::{Method, Request};
use coldaisle_core::Timestamp;
use std::sync::{Arc, RwLock};
use tower::ServiceExt;

/// The whole API with one token (`ann-secret`, read scope).
fn app() -> Router {
    let text = format!("ann read {}\n", to_hex(&hash_token("ann-secret")));
    let access = Access::Tokens {
        path: "tokens".into(),
        book: Arc::new(RwLock::new(
            TokenBook::parse(&text, std::path::Path::new("tokens")).unwrap(),
        )),
    };
    let mut options = ApiOptions::new(
        Arc::new(tokio::sync::RwLock::new(sample())),
        Arc::new(|| Timestamp(T0)),
    );
    options.access = access;
    api_router(options)
}

async fn get_with(uri: &str, headers: &[(&str, &str)]) -> Response {
    let mut request = Request::builder().method(Method::GET).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    app()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

fn header_of(response: &Response, name: header::HeaderName) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

async fn body_of(response: Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn every_asset_is_served_with_its_type_without_a_token() {
    for asset in ASSETS {
        let response = get_with(&format!("/ui/{}", asset.name), &[]).await;
        assert_eq!(response.status(), StatusCode::OK, "{}", asset.name);
        assert_eq!(
            header_of(&response, header::CONTENT_TYPE),
            asset.content_type
        );
        assert_eq!(header_of(&response, header::CACHE_CONTROL), "no-cache");
        assert_eq!(
            header_of(&response, header::X_CONTENT_TYPE_OPTIONS),
            "nosniff"
        );
        assert!(
            header_of(&response, header::CONTENT_SECURITY_POLICY).contains("default-src 'self'")
        );
        assert_eq!(header_of(&response, header::ETAG), etag(asset.body));
        assert_eq!(body_of(response).await, asset.body);
    }
}

#[tokio::test]
async fn the_page_and_its_redirects() {
    let response = get_with("/ui/", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header_of(&response, header::CONTENT_TYPE).starts_with("text/html"));
    assert!(body_of(response)
        .await
        .contains("<script type=\"module\" src=\"app.js\">"));
    for from in ["/", "/ui"] {
        let response = get_with(from, &[]).await;
        assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT, "{from}");
        assert_eq!(header_of(&response, header::LOCATION), "/ui/");
    }
}

#[tokio::test]
async fn the_data_stays_behind_the_token() {
    let response = get_with("/api/v1/zones", &[]).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = get_with("/api/v1/zones", &[("authorization", "Bearer ann-secret")]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(body_of(response).await.contains("\"zone\":\"Z1\""));
}

#[tokio::test]
async fn a_matching_etag_answers_not_modified() {
    let asset = asset("app.js").unwrap();
    let tag = etag(asset.body);
    let response = get_with("/ui/app.js", &[("if-none-match", &format!("\"x\", {tag}"))]).await;
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header_of(&response, header::ETAG), tag);
    assert_eq!(body_of(response).await, "");
    let response = get_with("/ui/app.js", &[("if-none-match", "\"stale\"")]).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_file_is_a_json_404() {
    let response = get_with("/ui/nope.js", &[]).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(body_of(response)
        .await
        .contains("no dashboard file \\\"nope.js\\\""));
    // Path tricks find nothing: names are matched against the table, never the filesystem.
    let response = get_with("/ui/..%2FCargo.toml", &[]).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[test]
fn no_asset_loads_anything_from_outside() {
    for asset in ASSETS {
        // The SVG namespace is an identifier, not a load.
        let text = asset.body.replace("http://www.w3.org/2000/svg", "");
        assert!(
            !text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"),
            "{} names an outside URL",
            asset.name
        );
    }
}

#[test]
fn every_module_the_scripts_import_is_served() {
    for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
        for line in asset.body.lines().filter(|l| l.starts_with("import ")) {
            let from = line.rsplit("from").next().unwrap();
            let name = from
                .trim()
                .trim_end_matches(';')
                .trim_matches(|c| c == '"' || c == '\'');
            let name = name.trim_start_matches("./");
            assert!(
                super::asset(name).is_some(),
                "{} imports {name}, not served",
                asset.name
            );
        }
    }
}

#[test]
fn etags_differ_with_the_bytes_and_are_quoted() {
    assert_eq!(etag("a"), etag("a"));
    assert_ne!(etag("a"), etag("b"));
    assert!(etag("").starts_with('"') && etag("").ends_with('"'));
    assert_eq!(etag("").len(), 18);
}

/// The API paths the scripts ask for (`get("path"` or ``get(`path/${x}` ``), with each
/// `${…}` as `{}`.
fn api_paths_in(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in script.match_indices("get(") {
        let rest = &script[at + 4..];
        let Some(quote) = rest.chars().next().filter(|c| matches!(c, '"' | '`')) else {
            continue;
        };
        let Some(end) = rest[1..].find(quote) else {
            continue;
        };
        let mut path = String::new();
        let mut text = &rest[1..1 + end];
        while let Some(open) = text.find("${") {
            path.push_str(&text[..open]);
            path.push_str("{}");
            text = text[open..].split_once('}').map_or("", |(_, tail)| tail);
        }
        path.push_str(text);
        out.push(path);
    }
    out
}

#[test]
fn every_api_path_the_scripts_read_is_a_documented_route() {
    let document: serde_json::Value = serde_json::from_str(crate::openapi::DOCUMENT).unwrap();
    let documented: Vec<String> = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(|p| {
            // `/api/v1/zones/{zone}/report` → `zones/{}/report`.
            let mut out = String::new();
            let mut rest = p.trim_start_matches("/api/v1/");
            while let Some(open) = rest.find('{') {
                out.push_str(&rest[..open]);
                out.push_str("{}");
                rest = rest[open..].split_once('}').map_or("", |(_, tail)| tail);
            }
            out + rest
        })
        .collect();
    let views = super::asset("views.js").unwrap().body;
    let paths = api_paths_in(views);
    for needed in ["report", "history/series"] {
        assert!(
            paths.iter().any(|p| p == needed),
            "views.js reads {needed}: {paths:?}"
        );
    }
    // The rack chart is one request now: no hourly history loop.
    assert!(!paths.iter().any(|p| p == "history"), "{paths:?}");
    for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
        for path in api_paths_in(asset.body) {
            assert!(
                documented.contains(&path),
                "{} reads /api/v1/{path}, which openapi.json does not list",
                asset.name
            );
        }
    }
}
