//! The OpenAPI document against the router: every route a role serves is
//! documented, every documented operation is served, and every route has an
//! access rule. Adding a route without its annotation (or the reverse) fails here.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use api::{Role, Route};
use serde_json::Value;
use utoipa::OpenApi;

const ROLES: [Role; 4] = [Role::All, Role::Ingest, Role::Worker, Role::Query];
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// `(METHOD, /path)` of every operation of a document.
fn operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method).is_some() {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

fn served(routes: &[Route]) -> BTreeSet<(String, String)> {
    routes
        .iter()
        .map(|route| (route.method.to_string(), route.openapi_path()))
        .collect()
}

fn full_document() -> Value {
    serde_json::to_value(api::openapi::ApiDoc::openapi()).unwrap()
}

#[test]
fn every_route_of_every_role_is_documented_and_nothing_else_is() {
    let documented = operations(&full_document());
    let mut all_served = BTreeSet::new();
    for role in ROLES {
        let routes = api::routes(role);
        assert!(!routes.is_empty(), "{role} serves nothing");
        let served = served(&routes);
        let missing: Vec<_> = served.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "{role} serves routes the document lacks (add #[utoipa::path] to the handler and list it in openapi::ApiDoc): {missing:?}"
        );
        // The document a role serves has exactly its routes.
        let own = operations(&serde_json::to_value(api::openapi::document(role)).unwrap());
        assert_eq!(own, served, "the document served by {role}");
        all_served.extend(served);
    }
    let unrouted: Vec<_> = documented.difference(&all_served).collect();
    assert!(
        unrouted.is_empty(),
        "documented operations no role serves: {unrouted:?}"
    );
}

#[test]
fn every_route_has_an_access_rule() {
    for role in ROLES {
        for route in api::routes(role) {
            assert!(
                api::access::rule_for(&route.method, route.path).is_some(),
                "{route} ({role}) has no rule in access::rule_for"
            );
        }
    }
}

#[test]
fn the_document_is_openapi_3_1_with_its_security_and_error_shape() {
    let document = serde_json::to_value(api::openapi::document(Role::All)).unwrap();
    let version = document["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "{version}");
    let schemes = document["components"]["securitySchemes"]
        .as_object()
        .unwrap();
    for scheme in [
        "api_key",
        "access_token",
        "signed_key_id",
        "signed_timestamp",
        "signed_signature",
    ] {
        assert!(schemes.contains_key(scheme), "{scheme}");
    }
    let error = &document["components"]["schemas"]["ApiError"]["properties"];
    for field in ["status", "code", "message", "where", "errors"] {
        assert!(error.get(field).is_some(), "ApiError lacks {field}");
    }

    // Who may call what comes from the access table.
    let operation = |method: &str, path: &str| document["paths"][path][method].clone();
    let public = operation("get", "/healthz");
    assert!(public.get("security").is_none(), "{public}");
    assert!(public["responses"].get("401").is_none());
    let ingest = operation("post", "/v1/logs");
    let schemes: Vec<&str> = ingest["security"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|requirement| requirement.as_object().unwrap().keys())
        .map(String::as_str)
        .collect();
    assert!(schemes.contains(&"api_key") && schemes.contains(&"signed_signature"));
    assert!(
        !schemes.contains(&"access_token"),
        "users cannot send logs: {schemes:?}"
    );
    for status in ["202", "400", "401", "403", "413", "415", "429", "503"] {
        assert!(
            ingest["responses"].get(status).is_some(),
            "POST /v1/logs does not document {status}"
        );
    }
    let logout = operation("post", "/v1/auth/logout");
    assert_eq!(
        logout["security"],
        serde_json::json!([{"access_token": []}])
    );
}
