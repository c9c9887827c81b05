//! The OpenAPI document is complete: every operation declares its success responses with a
//! schema and an example, the errors it can produce (those of authentication, bodies,
//! `If-Match` and API keys included) with theirs, and a request body with a schema that has
//! properties and an example. `scripts/schemathesis.sh` checks the server against it.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;

use crate::{Backend, TestApp, json_ok};

const METHODS: [&str; 5] = ["get", "put", "post", "patch", "delete"];

/// Operations that cannot fail: nothing to declare beyond their success.
const INFALLIBLE: [&str; 2] = ["GET /health", "GET /metrics"];

/// `#/components/schemas/Name` resolved, through `oneOf`/`anyOf` alternatives (other than
/// `null`), into the object schemas it may be; `allOf` parts are merged into one.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> Vec<Value> {
    if let Some(name) = schema["$ref"].as_str() {
        let name = name
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {name}"));
        let target = &doc["components"]["schemas"][name];
        assert!(!target.is_null(), "$ref to a missing schema {name}");
        return resolve(doc, target);
    }
    for alternatives in ["oneOf", "anyOf"] {
        if let Some(items) = schema[alternatives].as_array() {
            return items
                .iter()
                .filter(|s| s["type"] != "null")
                .flat_map(|s| resolve(doc, s))
                .collect();
        }
    }
    if let Some(parts) = schema["allOf"].as_array() {
        let mut merged = serde_json::Map::new();
        let mut properties = serde_json::Map::new();
        for part in parts.iter().flat_map(|s| resolve(doc, s)) {
            if let Some(p) = part["properties"].as_object() {
                properties.extend(p.clone());
            }
            if let Some(example) = part.get("example") {
                merged.insert("example".into(), example.clone());
            }
        }
        if let Some(example) = schema.get("example") {
            merged.insert("example".into(), example.clone());
        }
        merged.insert("type".into(), "object".into());
        merged.insert("properties".into(), Value::Object(properties));
        return vec![Value::Object(merged)];
    }
    vec![schema.clone()]
}

/// Whether a media type object shows an example: its own, its schema's, or (for a page of
/// a list) its items'.
fn has_example(doc: &Value, media: &Value) -> bool {
    if media.get("example").is_some()
        || media["examples"].as_object().is_some_and(|e| !e.is_empty())
    {
        return true;
    }
    let direct = |s: &Value| {
        s.get("example").is_some() || s["examples"].as_array().is_some_and(|e| !e.is_empty())
    };
    if direct(&media["schema"]) {
        return true;
    }
    resolve(doc, &media["schema"]).iter().all(|s| {
        let page_items = &s["properties"]["items"];
        let page_example =
            page_items["type"] == "array" && resolve(doc, &page_items["items"]).iter().all(&direct);
        direct(s) || page_example
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_declares_bodies_responses_and_errors() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let doc = json_ok(
        app.anonymous(Method::GET, "/api-docs/openapi.json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let global_security = doc["security"].clone();
    let mut problems = Vec::new();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            operations += 1;
            let name = format!("{} {path}", method.to_uppercase());
            let mut problem = |what: String| problems.push(format!("{name}: {what}"));
            let responses = op["responses"].as_object().expect("responses");
            let statuses: BTreeSet<u16> = responses
                .keys()
                .map(|s| s.parse().expect("numeric status"))
                .collect();

            // Success: at least one; each with a schema and an example, unless it has no body.
            // (101: the WebSocket upgrade, whose messages follow on the socket.)
            if !statuses.iter().any(|s| (200..400).contains(s) || *s == 101) {
                problem("no success response".into());
            }
            for (status, response) in responses {
                let status: u16 = status.parse().unwrap();
                let content = response["content"].as_object();
                let bodiless = matches!(status, 101 | 204 | 303 | 304)
                    // OFREP defines no body for these; the description says so.
                    || (path.starts_with("/ofrep/v1/evaluate") && matches!(status, 401 | 429));
                let Some(content) = content.filter(|c| !c.is_empty()) else {
                    if !bodiless {
                        problem(format!("{status} has no content"));
                    }
                    continue;
                };
                if bodiless && status != 304 {
                    problem(format!("{status} should have no body"));
                }
                for (media_type, media) in content {
                    if media.get("schema").is_none() {
                        problem(format!("{status} {media_type} has no schema"));
                    } else if !has_example(&doc, media) {
                        problem(format!("{status} {media_type} has no example"));
                    }
                }
                if status >= 400 && !content.contains_key("application/json") {
                    problem(format!("error {status} is not JSON"));
                }
            }

            // Errors: some, and those of the layers every such route goes through.
            if !INFALLIBLE.contains(&name.as_str()) && !statuses.iter().any(|s| *s >= 400) {
                problem("declares no errors".into());
            }
            let mut needs = |status: u16, why: &str| {
                if !statuses.contains(&status) {
                    problems.push(format!("{name}: no {status} ({why})"));
                }
            };
            let security = op.get("security").unwrap_or(&global_security);
            let schemes: BTreeSet<&str> = security
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_object)
                .flat_map(|s| s.keys().map(String::as_str))
                .collect();
            if schemes.contains("bearer") {
                for status in [401, 403, 503] {
                    needs(status, "management authentication");
                }
            }
            if schemes.contains("api_key") {
                needs(401, "API key");
                needs(429, "API key rate limit");
            }
            let parameters = op["parameters"].as_array().cloned().unwrap_or_default();
            if parameters
                .iter()
                .any(|p| p["in"] == "header" && p["name"] == "If-Match")
            {
                needs(412, "If-Match");
                needs(400, "malformed If-Match");
            }
            if parameters.iter().any(|p| p["in"] == "query") {
                needs(400, "query parameters");
            }
            if parameters.iter().any(|p| p["in"] == "path") {
                needs(404, "a resource in the path");
            }

            // Request body: JSON, with a schema that has properties, and an example.
            if let Some(body) = op.get("requestBody") {
                needs(400, "request body");
                needs(413, "request body over 1 MiB");
                if !path.starts_with("/ofrep/") {
                    needs(415, "request body not JSON");
                }
                let media = &body["content"]["application/json"];
                if media.is_null() {
                    problems.push(format!("{name}: the request body is not application/json"));
                    continue;
                }
                let schemas = resolve(&doc, &media["schema"]);
                let without: Vec<_> = schemas
                    .iter()
                    .filter(|s| s["properties"].as_object().is_none_or(|p| p.is_empty()))
                    .collect();
                if schemas.is_empty() || !without.is_empty() {
                    problems.push(format!("{name}: request body schema without properties"));
                }
                if !has_example(&doc, media) {
                    problems.push(format!("{name}: request body without an example"));
                }
            }
        }
    }
    assert!(operations >= 70, "only {operations} operations documented");
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
