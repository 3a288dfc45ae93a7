//! The OpenAPI 3 document of the HTTP API, served at `GET /api/v1/openapi.json`.
//!
//! The document is maintained by hand in `collector/openapi.json` and embedded in the binary
//! (no generator dependency). Invariant, checked by the tests below: its paths and methods are
//! exactly the `.route(...)` calls of the API's source files ([`ROUTE_SOURCES`]), so adding a
//! route without documenting it (or leaving a removed one documented) fails the tests.

use axum::http::header;
use axum::response::IntoResponse;

/// The document, as served.
pub const DOCUMENT: &str = include_str!("../openapi.json");

/// The source files whose `.route("path", method(handler)...)` calls build the API (paths
/// relative to the crate). The tests parse them to compare with the document.
pub const ROUTE_SOURCES: [&str; 3] = ["src/http.rs", "src/operator_api.rs", "src/history_api.rs"];

/// `GET /api/v1/openapi.json`.
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

/// The `(path, method)` pairs routed in `source`: every `.route("…", get(…).post(…))` call
/// (methods in lower case, as OpenAPI spells them). Pure text scan of Rust source written as
/// this crate writes it (a string literal first, method routers after it).
pub fn routes_in_source(source: &str) -> Vec<(String, String)> {
    const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];
    let mut found = Vec::new();
    let mut rest = source;
    while let Some(start) = rest.find(".route(") {
        rest = &rest[start + ".route(".len()..];
        // The call's text up to its closing parenthesis.
        let mut depth = 1usize;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let call = &rest[..end];
        let Some(path) = call
            .trim_start()
            .strip_prefix('"')
            .and_then(|s| s.split('"').next())
        else {
            continue; // not a literal path (e.g. a builder in a test)
        };
        let after = &call[call.find(path).map_or(0, |i| i + path.len() + 1)..];
        for method in METHODS {
            let mut scan = after;
            while let Some(i) = scan.find(&format!("{method}(")) {
                let before = scan[..i].chars().next_back();
                if !before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    found.push((path.to_string(), method.to_string()));
                }
                scan = &scan[i + method.len() + 1..];
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::BTreeSet;

    fn documented() -> BTreeSet<(String, String)> {
        let doc: Value = serde_json::from_str(DOCUMENT).expect("openapi.json is JSON");
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let mut pairs = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                pairs.insert((path.clone(), method.clone()));
            }
        }
        pairs
    }

    fn routed() -> BTreeSet<(String, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        ROUTE_SOURCES
            .iter()
            .flat_map(|file| {
                let text = std::fs::read_to_string(dir.join(file)).expect("route source");
                routes_in_source(&text)
            })
            .collect()
    }

    #[test]
    fn the_scan_finds_literal_routes_and_chained_methods() {
        let src = r#"
            Router::new()
                .route("/a/{id}", get(one))
                .route(
                    "/b",
                    post(add).get(list_b),
                )
                .route("/c", get(target_get))
        "#;
        assert_eq!(
            routes_in_source(src),
            [
                ("/a/{id}".into(), "get".into()),
                ("/b".into(), "get".into()),
                ("/b".into(), "post".into()),
                ("/c".into(), "get".into()),
            ]
        );
    }

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let routed = routed();
        assert!(
            routed.len() >= 20,
            "the scan found too few routes: {routed:?}"
        );
        let documented = documented();
        let missing: Vec<_> = routed.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&routed).collect();
        assert!(
            missing.is_empty(),
            "routes missing from collector/openapi.json: {missing:?}"
        );
        assert!(
            extra.is_empty(),
            "collector/openapi.json documents routes that do not exist: {extra:?}"
        );
    }

    #[test]
    fn path_parameters_and_security_are_declared() {
        let doc: Value = serde_json::from_str(DOCUMENT).unwrap();
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        for (path, item) in doc["paths"].as_object().unwrap() {
            let wanted: BTreeSet<&str> = path
                .split('/')
                .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            for (method, op) in item.as_object().unwrap() {
                let declared: BTreeSet<&str> = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "path")
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                assert_eq!(declared, wanted, "{method} {path}: path parameters");
                assert!(
                    op["responses"]["200"].is_object(),
                    "{method} {path}: no 200 response"
                );
                if method == "post" {
                    assert!(op["requestBody"].is_object(), "{method} {path}: no body");
                }
            }
        }
    }

    #[tokio::test]
    async fn served_document_is_the_embedded_one() {
        let response = document().await.into_response();
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(body, DOCUMENT.as_bytes());
    }
}
