//! The documented error responses: the body `{"error": {"code", "message", "details"}}` of
//! `ApiError`, its example for each status, and the sets of errors that the cross-cutting
//! layers produce (authentication and authorization, the JSON body and query extractors,
//! `If-Match`, the evaluation key), named in each handler's `responses(...)` before the
//! handler's own, which override their descriptions.

#![allow(dead_code, reason = "schema-only types: described, never built")]

use std::collections::BTreeMap;

use serde_json::{Value, json};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, ToSchema};

/// The error body of the management plane and the native evaluation API.
#[derive(Debug, serde::Serialize, ToSchema)]
#[schema(example = json!({"error": {"code": "not_found", "message": "flag 'f-1' not found", "details": {}}}))]
pub(crate) struct ErrorBody {
    error: ErrorObject,
}

/// What went wrong.
#[derive(Debug, serde::Serialize, ToSchema)]
pub(crate) struct ErrorObject {
    /// Stable snake_case code: `invalid_request` (400), `unauthorized` and
    /// `invalid_credentials` (401), `forbidden` (403), `not_found` (404), `conflict` (409),
    /// `version_mismatch` (412), `payload_too_large` (413), `unsupported_media_type` (415),
    /// `rate_limited` (429), `internal` (500), `unavailable` (503).
    #[schema(example = "not_found")]
    code: String,
    /// For people; may change between versions.
    message: String,
    details: ErrorDetails,
}

/// Machine-readable details: `{}` unless the error says more.
#[derive(Debug, serde::Serialize, ToSchema)]
pub(crate) struct ErrorDetails {
    /// 400: each offending field path (`rules[0].serve`, `If-Match`, `limit`) and its problem.
    fields: Option<BTreeMap<String, String>>,
    /// 412: the resource's current version.
    current_version: Option<i64>,
    /// 409: what still refers to the resource (flags and environments, segments).
    referrers: Option<Vec<Value>>,
}

/// The example body of an error response with `status`.
pub(crate) fn example(status: u16) -> Value {
    let (code, message, details) = match status {
        400 => (
            "invalid_request",
            "invalid JSON body: name: must be 1 to 200 characters",
            json!({"fields": {"name": "must be 1 to 200 characters"}}),
        ),
        401 => ("unauthorized", "authentication required", json!({})),
        403 => (
            "forbidden",
            "this needs the admin role in the organization",
            json!({}),
        ),
        404 => ("not_found", "flag 'f-1' not found", json!({})),
        409 => (
            "conflict",
            "a resource with this key already exists",
            json!({}),
        ),
        412 => (
            "version_mismatch",
            "version mismatch: the resource is at version 4",
            json!({"current_version": 4}),
        ),
        413 => (
            "payload_too_large",
            "request body is larger than 1 MiB",
            json!({}),
        ),
        415 => (
            "unsupported_media_type",
            "expected a JSON body (Content-Type: application/json)",
            json!({}),
        ),
        429 => ("rate_limited", "too many requests", json!({})),
        503 => (
            "unavailable",
            "the database is unavailable; try again shortly",
            json!({}),
        ),
        _ => ("internal", "internal error", json!({})),
    };
    json!({"error": {"code": code, "message": message, "details": details}})
}

/// An error response with the `ErrorBody` schema and the example for its status.
pub(crate) fn response(status: u16, description: &str) -> RefOr<Response> {
    let mut builder = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .example(Some(example(status)))
            .build(),
    );
    let retry_after = |what: &str| {
        HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Integer)))
            .description(Some(what))
            .build()
    };
    match status {
        401 => {
            builder = builder.header(
                "WWW-Authenticate",
                HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(SchemaType::Type(Type::String)))
                    .description(Some("`Bearer`"))
                    .build(),
            );
        }
        429 => builder = builder.header("Retry-After", retry_after("Seconds to wait")),
        503 => builder = builder.header("Retry-After", retry_after("Seconds to wait (1)")),
        _ => {}
    }
    builder.build().into()
}

fn set(items: &[(u16, &str)]) -> BTreeMap<String, RefOr<Response>> {
    items
        .iter()
        .map(|(status, description)| (status.to_string(), response(*status, description)))
        .collect()
}

const UNAUTHORIZED: &str = "Missing, unknown, expired or revoked credentials (`unauthorized`)";
const UNAVAILABLE: &str =
    "The database is unavailable (`unavailable`); `Retry-After` says when to try again";
const INVALID: &str = "Invalid input (`invalid_request`): malformed JSON, a bad field or query \
    parameter; `details.fields` maps each field path to its problem";

/// Every route behind the management plane's authentication: 401 without valid credentials,
/// 403 when the caller's role is not enough (or a cookie-authenticated change lacks its
/// `X-CSRF-Token`), 503 when the database is away.
#[derive(Debug)]
pub(crate) struct Authenticated;

impl IntoResponses for Authenticated {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        set(&[
            (401, UNAUTHORIZED),
            (
                403,
                "The caller's role is not enough here, or a cookie-authenticated change without \
                 the session's `X-CSRF-Token` (`forbidden`)",
            ),
            (503, UNAVAILABLE),
        ])
    }
}

/// A route with a JSON request body: 400 (malformed or invalid), 413 (over 1 MiB), 415 (not
/// `application/json`).
#[derive(Debug)]
pub(crate) struct JsonBody;

impl IntoResponses for JsonBody {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        set(&[
            (400, INVALID),
            (413, "The body is over 1 MiB (`payload_too_large`)"),
            (
                415,
                "The body is not `application/json` (`unsupported_media_type`)",
            ),
        ])
    }
}

/// A route with query parameters or other checked input: 400.
#[derive(Debug)]
pub(crate) struct Invalid;

impl IntoResponses for Invalid {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        set(&[(400, INVALID)])
    }
}

/// A route about one resource named in the path: 404 when it does not exist or the caller
/// is not a member of its organization.
#[derive(Debug)]
pub(crate) struct NotFound;

impl IntoResponses for NotFound {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        set(&[(
            404,
            "No such resource, or not in one of the caller's organizations (`not_found`)",
        )])
    }
}

/// A change of a versioned resource: `If-Match` that is not an ETag is 400, one that does
/// not match the current version 412 (`details.current_version`).
#[derive(Debug)]
pub(crate) struct IfMatch;

impl IntoResponses for IfMatch {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        set(&[
            (
                400,
                "Invalid input (`invalid_request`), or an `If-Match` that is not an ETag such as `\"3\"`; `details.fields` maps each field path to its problem",
            ),
            (
                412,
                "`If-Match` does not match the current version (`version_mismatch`); `details.current_version` has it",
            ),
        ])
    }
}

/// The native evaluation API's key: 401 without a valid key, 429 past the key's rate limit,
/// 503 while the key's environment has no snapshot (just deleted).
#[derive(Debug)]
pub(crate) struct EvaluationKey;

impl IntoResponses for EvaluationKey {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        set(&[
            (
                401,
                "Missing, unknown, revoked or expired API key (`Authorization: Bearer` or `X-API-Key`; `unauthorized`)",
            ),
            (
                429,
                "The key's rate limit is reached (`rate_limited`); `Retry-After` says when to try again",
            ),
            (
                503,
                "The key's environment has no loaded snapshot (`unavailable`); `Retry-After` says when to try again",
            ),
        ])
    }
}
