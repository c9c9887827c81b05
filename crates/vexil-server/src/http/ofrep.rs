//! OFREP 0.3.0 (`shared/ofrep/openapi.yaml`): `POST /ofrep/v1/evaluate/flags/{key}` and
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
use axum::http::HeaderMap;
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
    request_body(content = Object, description = "`{\"context\": {\"targetingKey\"?, …attributes}}`; other top-level fields are ignored"),
    responses(
        (status = 200, description = "`{key, value, reason, variant, metadata}`; `reason` is STATIC, TARGETING_MATCH, SPLIT, DISABLED or DEFAULT; `metadata.flagVersion`, and for server keys `ruleId`/`ruleIndex`/`prerequisiteKey` when they apply"),
        (status = 400, description = "`{key, errorCode, errorDetails}`: PARSE_ERROR (not JSON), INVALID_CONTEXT (no `context` object), TARGETING_KEY_MISSING (the flag splits by an attribute the context lacks)"),
        (status = 401, description = "Missing, unknown, revoked or expired API key (`Authorization: Bearer` or `X-API-Key`); no body"),
        (status = 404, description = "`{key, errorCode: FLAG_NOT_FOUND, errorDetails}`: no such flag, archived, or not `client_side` for a client key"),
        (status = 413, description = "Body over 1 MiB: `{key, errorCode: GENERAL, errorDetails}`"),
        (status = 500, description = "`{errorDetails}`"),
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
    let visible = env
        .snapshot
        .flag_info(&flag_key)
        .is_some_and(|f| key.kind.is_server() || f.client_side);
    if !visible {
        return Err(Failure::Flag(FailureBody::not_found(&flag_key)));
    }
    let detail = env.snapshot.evaluate(&flag_key, &context, now_ms());
    Ok(wire::outcome(&flag_key, &detail, key.kind).into_response())
}

#[utoipa::path(post, path = "/ofrep/v1/evaluate/flags", tag = "ofrep", security(("api_key" = [])),
    params(
        ("If-None-Match" = Option<String>, Header, description = "The `ETag` of an earlier answer for the same context: 304 while nothing changed"),
        ("flagConfigEtag" = Option<String>, Query, description = "Event-stream freshness hint; accepted and not needed: every answer comes from the current snapshot"),
        ("flagConfigLastModified" = Option<String>, Query, description = "Event-stream freshness hint; accepted and not needed"),
    ),
    request_body(content = Object, description = "`{\"context\": {\"targetingKey\"?, …attributes}}`; other top-level fields are ignored"),
    responses(
        (status = 200, description = "`{flags: [...], metadata: {environmentVersion}, eventStreams: [{type: sse, endpoint: {requestUri}}]}`, sorted by key; a flag that cannot be evaluated for this context is `{key, errorCode, errorDetails}` in the list. Client keys get `client_side` flags only",
            headers(("ETag" = String, description = "Changes with the environment's version, the request body and the result"))),
        (status = 304, description = "`If-None-Match` matches the current `ETag`; no body"),
        (status = 400, description = "`{errorCode, errorDetails}`: PARSE_ERROR (not JSON) or INVALID_CONTEXT (no `context` object)"),
        (status = 401, description = "Missing, unknown, revoked or expired API key; no body"),
        (status = 413, description = "Body over 1 MiB: `{errorCode: GENERAL, errorDetails}`"),
        (status = 500, description = "`{errorDetails}`"),
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
