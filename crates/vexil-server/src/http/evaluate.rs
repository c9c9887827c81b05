//! Vexil's native evaluation API and SDK delivery (docs/http-api.md "Evaluation plane"):
//! `POST /api/v1/evaluate`, `POST /api/v1/evaluate/bulk` and `GET /api/v1/sdk/config`.
//! Everything here reads the in-memory snapshot; nothing awaits the database.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use vexil_core::{Context, Detail, Evaluation};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::eval_auth::EvalKey;
use super::extract::{Json, if_none_match};
use crate::clock::now_ms;
use crate::snapshots::{EnvSnapshot, Snapshots};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/evaluate", post(evaluate))
        .route("/api/v1/evaluate/bulk", post(evaluate_bulk))
        .route("/api/v1/sdk/config", get(sdk_config))
}

/// Most flag keys one bulk request may name.
const MAX_FLAG_KEYS: usize = 1000;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"flag_key": "new-checkout", "context": {"targetingKey": "user-123", "country": "NL"}}))]
pub(crate) struct EvaluateRequest {
    flag_key: String,
    #[serde(default)]
    #[schema(value_type = crate::schemas::EvaluationContext)]
    context: Context,
}

/// The environment's snapshot for this key. A key outlives nothing it belongs to, so a
/// missing snapshot means the environment was just deleted.
fn snapshot_for(snapshots: &Snapshots, key: &EvalKey) -> ApiResult<Arc<EnvSnapshot>> {
    snapshots
        .get(&key.0.environment_id)
        .ok_or(ApiError::Unavailable)
}

#[utoipa::path(post, path = "/api/v1/evaluate", tag = "evaluation", security(("api_key" = [])),
    request_body(content = EvaluateRequest, description = "The flag and the context; `context.targetingKey` is the unit id"),
    responses(super::openapi::errors::EvaluationKey, super::openapi::errors::JsonBody,
        (status = 200, description = "The result; evaluation errors (FLAG_NOT_FOUND, TARGETING_KEY_MISSING) are results with `value: null` and `reason.error_code`", body = crate::schemas::Evaluation)))]
pub(crate) async fn evaluate(
    State(snapshots): State<Arc<Snapshots>>,
    key: EvalKey,
    Json(body): Json<EvaluateRequest>,
) -> ApiResult<Response> {
    let env = snapshot_for(&snapshots, &key)?;
    let visible = env.visible_to(key.0.kind, &body.flag_key);
    let detail = if visible {
        env.snapshot
            .evaluate(&body.flag_key, &body.context, now_ms())
    } else {
        Detail::flag_not_found()
    };
    snapshots.count(&detail);
    Ok(axum::Json(detail.record(&body.flag_key)).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"context": {"targetingKey": "user-123"}, "flag_keys": ["new-checkout", "dark-mode"]}))]
pub(crate) struct BulkRequest {
    #[serde(default)]
    #[schema(value_type = crate::schemas::EvaluationContext)]
    context: Context,
    /// At most 1000; without it, every flag the key may see.
    #[schema(max_items = 1000)]
    flag_keys: Option<Vec<String>>,
}

#[derive(Serialize)]
struct BulkResponse<'k, 's> {
    flags: BTreeMap<&'k str, Evaluation<'k, 's>>,
}

#[utoipa::path(post, path = "/api/v1/evaluate/bulk", tag = "evaluation", security(("api_key" = [])),
    request_body(content = BulkRequest, description = "The context, and the flags (default: every flag the key may see)"),
    responses(super::openapi::errors::EvaluationKey, super::openapi::errors::JsonBody,
        (status = 200, description = "Each flag's result by key", body = super::openapi::bodies::BulkEvaluation),
        (status = 400, description = "Malformed body, or more than 1000 flag keys; `details.fields` maps each field path to its problem", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn evaluate_bulk(
    State(snapshots): State<Arc<Snapshots>>,
    key: EvalKey,
    Json(body): Json<BulkRequest>,
) -> ApiResult<Response> {
    let env = snapshot_for(&snapshots, &key)?;
    let now = now_ms();
    let server = key.0.kind.is_server();
    let flags: BTreeMap<&str, Evaluation<'_, '_>> = match &body.flag_keys {
        Some(keys) if keys.len() > MAX_FLAG_KEYS => {
            return Err(ApiError::invalid_field(
                "flag_keys",
                format!("at most {MAX_FLAG_KEYS} keys"),
            ));
        }
        Some(keys) => keys
            .iter()
            .map(|k| {
                let detail = if env.visible_to(key.0.kind, k) {
                    env.snapshot.evaluate(k, &body.context, now)
                } else {
                    Detail::flag_not_found()
                };
                snapshots.count(&detail);
                (k.as_str(), detail.record(k))
            })
            .collect(),
        None => env
            .snapshot
            .evaluate_all(&body.context, now)
            .filter(|(info, _)| server || info.client_side)
            .inspect(|(_, detail)| snapshots.count(detail))
            .map(|(info, detail)| (info.key, detail.record(info.key)))
            .collect(),
    };
    Ok(axum::Json(BulkResponse { flags }).into_response())
}

#[utoipa::path(get, path = "/api/v1/sdk/config", tag = "evaluation", security(("api_key" = [])),
    params(("If-None-Match" = Option<String>, Header, description = "The ETag of a ruleset already held")),
    responses(super::openapi::errors::EvaluationKey,
        (status = 200, description = "The environment's ruleset for local evaluation (archived flags left out)", body = crate::schemas::Ruleset,
            headers(("ETag" = String, description = "The ruleset's version, e.g. `\"12\"`"))),
        (status = 304, description = "Unchanged since If-None-Match", headers(("ETag" = String))),
        (status = 403, description = "Client and mobile keys may not read rules (`forbidden`)", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn sdk_config(
    State(snapshots): State<Arc<Snapshots>>,
    key: EvalKey,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if !key.0.kind.is_server() {
        return Err(ApiError::Forbidden(
            "client and mobile keys cannot read rules; use a server key".into(),
        ));
    }
    let env = snapshot_for(&snapshots, &key)?;
    let etag = format!("\"{}\"", env.version);
    let etag_value = HeaderValue::from_str(&etag).map_err(|e| ApiError::Internal(e.into()))?;
    if if_none_match(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response());
    }
    // The version's one rendering, shared (never copied) by every response.
    let body = axum::body::Body::from(env.ruleset_bytes());
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, etag_value),
        ],
        body,
    )
        .into_response())
}
