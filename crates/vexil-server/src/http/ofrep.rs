//! The OpenFeature Remote Evaluation Protocol (OFREP) 0.3.0: `POST /ofrep/v1/evaluate/flags/{key}` and
//! `POST /ofrep/v1/evaluate/flags` (bulk, with `ETag`/`If-None-Match`), evaluated against
//! the API key's environment snapshot in memory, never the database.
//!
//! Client and mobile keys see `client_side` flags only; any other flag reads exactly like a
//! missing one (404 `FLAG_NOT_FOUND`, absent from bulk results). Bulk responses advertise
//! the key's SSE stream in `eventStreams` (`/ofrep/v1/event-stream?token=…`).

mod wire;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::AppState;
use super::error::ApiError;
use super::eval_auth::EvalKey;
use crate::clock::now_ms;
use crate::keys::KeyInfo;
use crate::snapshots::{EnvSnapshot, Snapshots};
use wire::{BadRequest, Bulk, BulkMetadata, Failure, FailureBody};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/ofrep/v1/evaluate/flags/{key}", post(evaluate_flag))
        .route("/ofrep/v1/evaluate/flags", post(evaluate_flags))
}

#[utoipa::path(post, path = "/ofrep/v1/evaluate/flags/{key}", tag = "ofrep", security(("api_key" = [])),
    params(("key" = String, Path, description = "Flag key")),
    request_body(content = wire::EvaluationRequest, description = "`{\"context\": {\"targetingKey\"?, …attributes}}`; other top-level fields are ignored"),
    responses(
        (status = 200, description = "`reason` is STATIC, TARGETING_MATCH, SPLIT, DISABLED or DEFAULT; `metadata.flagVersion`, and for server keys `ruleId`/`ruleIndex`/`prerequisiteKey` when they apply", body = wire::Success),
        (status = 400, description = "PARSE_ERROR (not JSON), INVALID_CONTEXT (no `context` object), TARGETING_KEY_MISSING (the flag splits by an attribute the context lacks)", body = wire::FailureBody,
            example = json!({"key": "new-checkout", "errorCode": "INVALID_CONTEXT", "errorDetails": "the request has no 'context' object"})),
        (status = 401, description = "Missing, unknown, revoked or expired API key (`Authorization: Bearer` or `X-API-Key`); no body", headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 404, description = "FLAG_NOT_FOUND: no such flag, archived, or not `client_side` for a client key", body = wire::FailureBody),
        (status = 413, description = "Body over 1 MiB (GENERAL)", body = wire::FailureBody,
            example = json!({"key": "new-checkout", "errorCode": "GENERAL", "errorDetails": "request body is larger than 1 MiB"})),
        (status = 429, description = "The key's rate limit is reached; no body", headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 500, description = "The key's environment has no loaded snapshot, or the result cannot be written (`GENERAL`)", body = super::openapi::bodies::OfrepGeneralError),
    ))]
pub(crate) async fn evaluate_flag(
    State(snapshots): State<Arc<Snapshots>>,
    key: Result<EvalKey, ApiError>,
    flag_key: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    let EvalKey(key) = key.map_err(Failure::from)?;
    // A key that is not valid UTF-8 cannot name a flag.
    let flag_key = flag_key.map_or_else(|_| String::new(), |Path(k)| k);
    let body = wire::body_bytes(body).map_err(|e| e.for_flag(&flag_key))?;
    let context = wire::parse_context(&body).map_err(|e| e.for_flag(&flag_key))?;
    let env = environment(&snapshots, &key)?;
    if !env.visible_to(key.kind, &flag_key) {
        return Err(Failure::Flag(FailureBody::not_found(&flag_key)));
    }
    let detail = env.snapshot.evaluate(&flag_key, &context, now_ms());
    snapshots.count(&detail);
    Ok(wire::outcome(&flag_key, &detail, key.kind).into_response())
}

#[utoipa::path(post, path = "/ofrep/v1/evaluate/flags", tag = "ofrep", security(("api_key" = [])),
    params(
        ("If-None-Match" = Option<String>, Header, description = "The `ETag` of an earlier answer for the same context: 304 while nothing changed"),
        ("flagConfigEtag" = Option<String>, Query, description = "Event-stream freshness hint; accepted and not needed: every answer comes from the current snapshot"),
        ("flagConfigLastModified" = Option<String>, Query, description = "Event-stream freshness hint; accepted and not needed"),
    ),
    request_body(content = wire::EvaluationRequest, description = "`{\"context\": {\"targetingKey\"?, …attributes}}`; other top-level fields are ignored"),
    responses(
        (status = 200, description = "Every flag the key may see, sorted by key; a flag that cannot be evaluated for this context is `{key, errorCode, errorDetails}` in the list. Client keys get `client_side` flags only", body = wire::Bulk,
            headers(("ETag" = String, description = "Changes with the environment's version, the request body and the result"))),
        (status = 304, description = "`If-None-Match` matches the current `ETag`; no body", headers(("ETag" = String))),
        (status = 400, description = "PARSE_ERROR (not JSON) or INVALID_CONTEXT (no `context` object)", body = super::openapi::bodies::OfrepBulkFailure),
        (status = 401, description = "Missing, unknown, revoked or expired API key (`Authorization: Bearer` or `X-API-Key`); no body", headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 413, description = "Body over 1 MiB (GENERAL)", body = super::openapi::bodies::OfrepBulkFailure,
            example = json!({"errorCode": "GENERAL", "errorDetails": "request body is larger than 1 MiB"})),
        (status = 429, description = "The key's rate limit is reached; no body", headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 500, description = "The key's environment has no loaded snapshot, or the result cannot be written (`GENERAL`)", body = super::openapi::bodies::OfrepGeneralError),
    ))]
pub(crate) async fn evaluate_flags(
    State(snapshots): State<Arc<Snapshots>>,
    key: Result<EvalKey, ApiError>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    let EvalKey(key) = key.map_err(Failure::from)?;
    let body = wire::body_bytes(body).map_err(BadRequest::for_bulk)?;
    let context = wire::parse_context(&body).map_err(BadRequest::for_bulk)?;
    let env = environment(&snapshots, &key)?;
    let mut results: Vec<_> = env
        .snapshot
        .evaluate_all(&context, now_ms())
        .filter(|(info, _)| key.kind.is_server() || info.client_side)
        .inspect(|(_, detail)| snapshots.count(detail))
        .collect();
    results.sort_unstable_by_key(|(info, _)| info.key);
    let bulk = Bulk {
        flags: (results.iter())
            .map(|(info, detail)| wire::outcome(info.key, detail, key.kind))
            .collect(),
        metadata: BulkMetadata {
            environment_version: env.version,
        },
        event_streams: [wire::EventStream::for_token(&key.stream_token)],
    };
    let json = serde_json::to_vec(&bulk).map_err(|e| {
        tracing::error!(error = %e, "bulk OFREP result does not serialize");
        Failure::General("internal error")
    })?;
    let etag = wire::bulk_etag(env.version, &body, &json);
    let not_modified = wire::if_none_match(&headers, &etag);
    Ok(wire::with_bulk_etag(json, &etag, not_modified))
}

/// The current snapshot of the key's environment. Always there while the key is (keys go
/// with their environment), so its absence is an internal error.
fn environment(snapshots: &Snapshots, key: &KeyInfo) -> Result<Arc<EnvSnapshot>, Failure> {
    snapshots.get(&key.environment_id).ok_or_else(|| {
        tracing::error!(environment_id = %key.environment_id, api_key_id = %key.id, "no snapshot for the API key's environment");
        Failure::General("the environment's flags are not available")
    })
}

/// A path under `/ofrep/` that names nothing: a flag path is `FLAG_NOT_FOUND` for its key
/// (as a flag that does not exist), anything else a 404 `{errorDetails}`.
pub(crate) fn refuse_path(path: &str) -> Response {
    match path.strip_prefix("/ofrep/v1/evaluate/flags/") {
        Some(key) if !key.is_empty() && !key.contains('/') => {
            Failure::Flag(FailureBody::not_found(key)).into_response()
        }
        _ => general(StatusCode::NOT_FOUND, format!("no such OFREP path: {path}")),
    }
}

/// A query parameter OFREP cannot take (it has a control character): 400 `PARSE_ERROR`.
pub(crate) fn refuse_query(details: String) -> Response {
    BadRequest::new(StatusCode::BAD_REQUEST, "PARSE_ERROR", details)
        .for_bulk()
        .into_response()
}

/// A method an OFREP path does not have: 405 `{errorDetails}`.
pub(crate) fn refuse_method(method: &axum::http::Method) -> Response {
    general(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed here; OFREP evaluation is POST"),
    )
}

fn general(status: StatusCode, details: String) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "errorDetails": details })),
    )
        .into_response()
}
