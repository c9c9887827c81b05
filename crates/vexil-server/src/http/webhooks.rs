//! Webhooks: `/api/v1/projects/{projectId}/webhooks` (list, create: the secret is shown
//! once), `/api/v1/webhooks/{id}` (get, update, delete), `…/test`, `…/deliveries` (with
//! their attempts) and `…/deliveries/{deliveryId}/redeliver`. Admin role. The operations
//! are in `manage::webhooks`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiResult;
use super::extract::{Aimed, Db, Id, Json, Page, Pagination, Query, versioned, with_etag};
use crate::manage::By;
use crate::manage::fields::Patch;
use crate::manage::webhooks::{self as hooks, NewWebhook};
use crate::store::Store;
use crate::store::webhooks::{Attempt, Delivery, Webhook};
use crate::webhook::Sender;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/projects/{project_id}/webhooks",
            get(list_webhooks).post(create_webhook),
        )
        .route(
            "/api/v1/webhooks/{id}",
            get(get_webhook)
                .patch(update_webhook)
                .delete(delete_webhook),
        )
        .route("/api/v1/webhooks/{id}/test", post(test_webhook))
        .route("/api/v1/webhooks/{id}/deliveries", get(list_deliveries))
        .route(
            "/api/v1/webhooks/{id}/deliveries/{delivery_id}",
            get(get_delivery),
        )
        .route(
            "/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver",
            post(redeliver),
        )
}

#[utoipa::path(get, path = "/api/v1/projects/{project_id}/webhooks", tag = "webhooks",
    params(("project_id" = String, Path, description = "Project id"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Items per page, 1 to 500 (default 50)"), ("offset" = Option<i64>, Query, minimum = 0, description = "Items to skip (default 0)")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::Invalid, super::openapi::errors::NotFound,
        (status = 200, description = "A page of the project's webhooks, oldest first (never their secrets)", body = Page<Webhook>)))]
pub(crate) async fn list_webhooks(
    State(store): State<Arc<Store>>,
    Path(project_id): Path<String>,
    Query(p): Query<Pagination>,
) -> ApiResult<Json<Page<Webhook>>> {
    let p = p.validate()?;
    let (items, total) = hooks::list(&store, &project_id, p.limit, p.offset).await?;
    Ok(Json(Page::new(items, total, p)))
}

/// The creation response: the webhook plus its signing secret, which no other response
/// shows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "0190e0a4-0000-7000-8000-00000000000b",
    "project_id": "0190e0a4-0000-7000-8000-000000000003", "name": "ops channel",
    "url": "https://hooks.slack.com/services/T000/B000/XXXX", "events": ["flag.*", "config.updated"],
    "format": "slack", "enabled": true, "disabled_reason": null,
    "created_by": {"id": "0190e0a4-0000-7000-8000-000000000002", "name": "ada@example.com"},
    "version": 1, "created_at": "2026-02-01T08:30:00.000Z", "updated_at": "2026-02-01T08:30:00.000Z",
    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwAbCdEfGhIjk="}))]
struct CreatedWebhook {
    #[serde(flatten)]
    record: Webhook,
    /// The signing secret (Standard Webhooks `whsec_…`), shown in this response only.
    secret: String,
}

#[utoipa::path(post, path = "/api/v1/projects/{project_id}/webhooks", tag = "webhooks",
    params(("project_id" = String, Path, description = "Project id")),
    request_body(content = NewWebhook, description = "Unknown fields are rejected; a `comment` goes to the audit trail"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::NotFound,
        (status = 201, description = "Created: the webhook plus `secret`, shown in this response only; it announces what happens from now on", body = CreatedWebhook, headers(("ETag" = String, description = "The version, e.g. `\"1\"`; send it back as `If-Match`"))),
        (status = 400, description = "Invalid input (an unknown event pattern or format, a URL that is not http(s), or on a loopback, private or link-local address without `--webhook-allow-private`); `details.fields` maps each field path to its problem", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn create_webhook(
    State(store): State<Arc<Store>>,
    State(sender): State<Arc<Sender>>,
    Path(project_id): Path<String>,
    by: By,
    Json(body): Json<NewWebhook>,
) -> ApiResult<Response> {
    let (record, secret) = hooks::create(&store, &by, &sender, &project_id, body).await?;
    let version = record.version;
    let created = CreatedWebhook { record, secret };
    Ok((StatusCode::CREATED, with_etag(version, &created)).into_response())
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::NotFound,
        (status = 200, description = "Found (never the secret); `disabled_reason` says why the server disabled it", body = Webhook, headers(("ETag" = String, description = "The version, e.g. `\"3\"`; send it back as `If-Match`")))))]
pub(crate) async fn get_webhook(store: Db, id: Id) -> ApiResult<Response> {
    versioned::<Webhook>(&store, &id).await
}

#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"), ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The expected version, e.g. `\"3\"` (or `*`); a mismatch is 412")),
    request_body(content = super::openapi::bodies::WebhookPatch, description = "JSON merge patch of `name`, `url`, `events`, `format`, `enabled`, plus an optional top-level `comment` for the audit trail"),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::JsonBody, super::openapi::errors::NotFound, super::openapi::errors::IfMatch,
        (status = 200, description = "Updated; enabling clears `disabled_reason` and announces what happens from now on", body = Webhook, headers(("ETag" = String, description = "The version, e.g. `\"3\"`; send it back as `If-Match`"))),
        (status = 400, description = "Invalid input or a bad `If-Match`; `details.fields` maps each field path to its problem", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn update_webhook(
    a: Aimed,
    State(sender): State<Arc<Sender>>,
    Json(patch): Json<Patch>,
) -> ApiResult<Response> {
    let hook = hooks::update(&a.store, &a.by, &sender, a.at(), &patch).await?;
    Ok(with_etag(hook.version, &hook))
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"), ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The expected version, e.g. `\"3\"` (or `*`); a mismatch is 412")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::NotFound, super::openapi::errors::IfMatch,
        (status = 204, description = "Deleted, with its deliveries (nothing more is sent)")))]
pub(crate) async fn delete_webhook(a: Aimed) -> ApiResult<StatusCode> {
    hooks::delete(&a.store, &a.by, a.at()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::NotFound,
        (status = 200, description = "A `webhook.test` event was sent now (enabled or not, within 5 s); the delivery says how it went (`delivered` or `failed`, the status code, the error). Tests are not retried", body = Delivery)))]
pub(crate) async fn test_webhook(
    State(store): State<Arc<Store>>,
    State(sender): State<Arc<Sender>>,
    Path(id): Path<String>,
    by: By,
) -> ApiResult<Json<Delivery>> {
    Ok(Json(hooks::test(&store, &by, &sender, &id).await?))
}

/// Which deliveries to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeliveryQuery {
    /// `pending`, `delivered` or `failed`.
    status: Option<String>,
    #[serde(default = "crate::manage::fields::default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"),
        ("status" = Option<String>, Query, description = "Only deliveries with this status: `pending`, `delivered` or `failed`"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Items per page, 1 to 500 (default 50)"), ("offset" = Option<i64>, Query, minimum = 0, description = "Items to skip (default 0)")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::Invalid, super::openapi::errors::NotFound,
        (status = 200, description = "A page of the webhook's deliveries, newest first: event, attempts, last status code and latency, next attempt", body = Page<Delivery>)))]
pub(crate) async fn list_deliveries(
    State(store): State<Arc<Store>>,
    Path(id): Path<String>,
    Query(q): Query<DeliveryQuery>,
) -> ApiResult<Json<Page<Delivery>>> {
    let p = Pagination {
        limit: q.limit,
        offset: q.offset,
    }
    .validate()?;
    let (items, total) =
        hooks::deliveries(&store, &id, q.status.as_deref(), p.limit, p.offset).await?;
    Ok(Json(Page::new(items, total, p)))
}

/// One delivery with every attempt.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "0190e0a4-0000-7000-8000-00000000000c",
    "webhook_id": "0190e0a4-0000-7000-8000-00000000000b", "event": "config.updated",
    "message_id": "msg_0190e0a4-0000-7000-8000-000000000009", "seq": 42, "status": "delivered",
    "attempts": 2, "next_attempt_at": null, "last_status_code": 200, "last_latency_ms": 12,
    "last_error": null, "created_at": "2026-02-01T08:30:00.000Z",
    "delivered_at": "2026-02-01T08:30:05.120Z",
    "body": "{\"text\":\"ada@example.com enabled <https://flags.example.com/ui/acme/shop/flags/new-checkout/in/production|new-checkout> in production\"}",
    "attempt_log": [{"n": 1, "at": "2026-02-01T08:30:00.100Z", "status_code": 503, "latency_ms": 8, "error": null, "response": "busy"},
        {"n": 2, "at": "2026-02-01T08:30:05.110Z", "status_code": 200, "latency_ms": 12, "error": null, "response": "ok"}]}))]
pub(crate) struct DeliveryWithAttempts {
    #[serde(flatten)]
    delivery: Delivery,
    /// The body in the webhook's format, as it is sent (the signature covers it).
    body: String,
    /// Every attempt, first first: status code, latency, error, the first kilobyte of the
    /// answer.
    attempt_log: Vec<Attempt>,
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"), ("delivery_id" = String, Path, description = "Delivery id")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::NotFound,
        (status = 200, description = "The delivery with the body it sends and its attempts", body = DeliveryWithAttempts)))]
pub(crate) async fn get_delivery(
    State(store): State<Arc<Store>>,
    Path((id, delivery_id)): Path<(String, String)>,
) -> ApiResult<Json<DeliveryWithAttempts>> {
    let (delivery, attempt_log) = hooks::delivery(&store, &id, &delivery_id).await?;
    let hook: Webhook = crate::manage::get(&store, &id).await?;
    Ok(Json(DeliveryWithAttempts {
        body: crate::webhook::render(&hook.format, &delivery.payload),
        delivery,
        attempt_log,
    }))
}

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"), ("delivery_id" = String, Path, description = "Delivery id")),
    responses(super::openapi::errors::Authenticated, super::openapi::errors::NotFound,
        (status = 200, description = "Sent again now with the same `webhook-id` (within 5 s); a success completes a pending delivery, a failure leaves its retries as they were", body = Delivery)))]
pub(crate) async fn redeliver(
    State(store): State<Arc<Store>>,
    State(sender): State<Arc<Sender>>,
    Path((id, delivery_id)): Path<(String, String)>,
) -> ApiResult<Json<Delivery>> {
    Ok(Json(
        hooks::redeliver(&store, &sender, &id, &delivery_id).await?,
    ))
}
