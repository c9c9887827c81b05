//! Operations endpoints: liveness, readiness and Prometheus metrics (no authentication,
//! except `/metrics` when `VEXIL_METRICS_TOKEN` is set).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::AppState;
use super::auth::AuthSettings;
use super::error::ApiError;
use crate::audit::hash_secret;
use crate::metrics::Metrics;
use crate::snapshots::Snapshots;
use crate::store::Store;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
}

/// The process is up.
#[utoipa::path(get, path = "/health", tag = "operations", security(()),
    responses((status = 200, description = "The process is up", body = super::openapi::bodies::Health)))]
pub(crate) async fn health() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Snapshots are loaded and the store answers.
#[utoipa::path(get, path = "/ready", tag = "operations", security(()),
    responses((status = 200, description = "Ready", body = super::openapi::bodies::Readiness),
        (status = 503, description = "The database is unreachable or snapshots are not loaded (evaluation may still be served from the last snapshots)", body = super::openapi::bodies::Readiness,
            example = json!({"status": "unavailable", "reason": "database unreachable"}))))]
pub(crate) async fn ready(
    State(store): State<Arc<Store>>,
    State(snapshots): State<Arc<Snapshots>>,
) -> impl IntoResponse {
    if !snapshots.is_loaded() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": "snapshots not loaded"})),
        )
    } else if store.ping().await {
        (StatusCode::OK, Json(json!({"status": "ready"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": "database unreachable"})),
        )
    }
}

#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String,
        example = json!("# TYPE vexil_http_requests_total counter\nvexil_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 1\n"))))]
pub(crate) async fn metrics(
    State(metrics): State<Arc<Metrics>>,
    State(auth): State<Arc<AuthSettings>>,
    State(insights): State<Arc<crate::insights::Insights>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(expected) = &auth.metrics_token_hash {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| hash_secret(t.trim()));
        if presented.as_ref() != Some(expected) {
            return Err(ApiError::Unauthorized);
        }
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        format!(
            "{}# HELP vexil_insights_dropped_total Counts dropped because too many distinct \
             insights buckets waited for one flush.\n\
             # TYPE vexil_insights_dropped_total counter\n\
             vexil_insights_dropped_total {}\n",
            metrics.render(),
            insights.dropped()
        ),
    ))
}
