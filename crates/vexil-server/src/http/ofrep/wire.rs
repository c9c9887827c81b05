//! OFREP 0.3.0 wire shapes: the request body, success and
//! failure bodies, the mapping from the engine's `Detail` to them, and the bulk `ETag`.
//!
//! OFREP has its own error shape, `{key?, errorCode, errorDetails}`, so nothing here uses
//! `ApiError`: a provider parses these bodies to learn why it must serve its default.

use crate::http::error::ApiError;
pub(crate) use crate::http::extract::if_none_match;
use axum::body::Body;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use vexil_core::{Context, Detail, ErrorCode};

use crate::flag_metadata::FlagMetadata;
use crate::keys::KeyKind;

/// `{"context": {...}}`. Fields other than `context` are ignored, for forward compatibility
/// with newer providers (OFREP does not close the request object).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"context": {"targetingKey": "user-123", "plan": "pro"}}))]
#[schema(as = OfrepEvaluationRequest)]
pub(crate) struct EvaluationRequest {
    #[schema(value_type = crate::schemas::EvaluationContext)]
    context: Option<Context>,
}

/// Why a request could not be evaluated at all, before any flag was looked at.
#[derive(Debug)]
pub(crate) struct BadRequest {
    status: StatusCode,
    code: &'static str,
    details: String,
}

impl BadRequest {
    pub(crate) fn new(status: StatusCode, code: &'static str, details: String) -> Self {
        BadRequest {
            status,
            code,
            details,
        }
    }

    /// As the answer of a single-flag request (the body names the flag).
    pub(crate) fn for_flag(self, key: &str) -> Failure {
        Failure::Flag(FailureBody::new(self.status, key, self.code, self.details))
    }

    /// As the answer of a bulk request (`bulkEvaluationFailure`: no key).
    pub(crate) fn for_bulk(self) -> Failure {
        Failure::Bulk {
            status: self.status,
            code: self.code,
            details: self.details,
        }
    }
}

/// The body as bytes; over the global limit is a 413 in OFREP's shape.
pub(crate) fn body_bytes(
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<axum::body::Bytes, BadRequest> {
    body.map_err(|rejection| {
        let too_large = rejection.status() == StatusCode::PAYLOAD_TOO_LARGE;
        BadRequest {
            status: rejection.status(),
            code: if too_large { "GENERAL" } else { "PARSE_ERROR" },
            details: if too_large {
                "request body is larger than 1 MiB".to_owned()
            } else {
                "cannot read the request body".to_owned()
            },
        }
    })
}

/// The evaluation context of a request body. Text that is not JSON is `PARSE_ERROR`; JSON
/// that is not `{"context": {…}}` (no object, no context, a context that is not an object
/// or repeats an attribute) is `INVALID_CONTEXT`. Both are 400.
pub(crate) fn parse_context(body: &[u8]) -> Result<Context, BadRequest> {
    let bad = |code: &'static str, details: String| BadRequest {
        status: StatusCode::BAD_REQUEST,
        code,
        details,
    };
    let is_object = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if !is_object {
        return Err(match serde_json::from_slice::<IgnoredAny>(body) {
            Ok(_) => bad("INVALID_CONTEXT", "the body must be a JSON object".into()),
            Err(e) => bad("PARSE_ERROR", format!("the body is not valid JSON: {e}")),
        });
    }
    match serde_json::from_slice::<EvaluationRequest>(body) {
        Ok(EvaluationRequest {
            context: Some(context),
        }) => Ok(context),
        Ok(EvaluationRequest { context: None }) => Err(bad(
            "INVALID_CONTEXT",
            "the request has no 'context' object".into(),
        )),
        Err(e) if e.is_data() => Err(bad("INVALID_CONTEXT", format!("invalid context: {e}"))),
        Err(e) => Err(bad(
            "PARSE_ERROR",
            format!("the body is not valid JSON: {e}"),
        )),
    }
}

/// `evaluationSuccess`. Without a value it is the spec's `codeDefaultFlag`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"key": "new-checkout", "value": true, "reason": "TARGETING_MATCH", "variant": "on",
    "metadata": {"flagVersion": 3, "ruleId": "r1", "ruleIndex": 0}}))]
#[schema(as = OfrepSuccess)]
pub(crate) struct Success<'k, 's> {
    key: &'k str,
    /// The served value; absent when the flag serves the caller's code default.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Value)]
    value: Option<&'s Value>,
    #[schema(value_type = crate::http::openapi::bodies::OfrepReason)]
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'s str>,
    metadata: FlagMetadata<'s>,
}

/// `evaluationFailure` / `flagNotFound`: `{key, errorCode, errorDetails, metadata?}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"key": "new-checkout", "errorCode": "FLAG_NOT_FOUND", "errorDetails": "flag 'new-checkout' was not found"}))]
#[schema(as = OfrepFailure)]
pub(crate) struct FailureBody {
    /// The status a single-flag request answers with; bulk results sit inside a 200.
    #[serde(skip)]
    status: StatusCode,
    key: String,
    #[schema(value_type = crate::http::openapi::bodies::OfrepErrorCode)]
    error_code: &'static str,
    error_details: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<FailureMetadata>,
}

/// The metadata of a flag that exists but could not be evaluated.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = OfrepFailureMetadata)]
struct FailureMetadata {
    flag_version: u64,
}

impl FailureBody {
    fn new(status: StatusCode, key: &str, code: &'static str, details: String) -> Self {
        FailureBody {
            status,
            key: key.to_owned(),
            error_code: code,
            error_details: details,
            metadata: None,
        }
    }

    /// A flag that does not exist, is archived, or is hidden from a client key: all three
    /// must read the same.
    pub(crate) fn not_found(key: &str) -> Self {
        FailureBody::new(
            StatusCode::NOT_FOUND,
            key,
            "FLAG_NOT_FOUND",
            format!("flag '{key}' was not found"),
        )
    }
}

/// One flag's result: a success, or an evaluation error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[schema(as = OfrepOutcome)]
pub(crate) enum Outcome<'k, 's> {
    Success(Success<'k, 's>),
    Failure(FailureBody),
}

/// Maps an engine result to OFREP (reasons per docs/evaluation.md "Results and reasons").
pub(crate) fn outcome<'k, 's>(key: &'k str, detail: &Detail<'s>, kind: KeyKind) -> Outcome<'k, 's> {
    match detail.reason.error_code {
        None => Outcome::Success(Success {
            key,
            value: detail.value,
            reason: detail.ofrep_reason(),
            variant: detail.variation,
            metadata: FlagMetadata::of(detail, kind),
        }),
        Some(ErrorCode::FlagNotFound) => Outcome::Failure(FailureBody::not_found(key)),
        Some(ErrorCode::TargetingKeyMissing) => Outcome::Failure(FailureBody {
            metadata: detail
                .flag_version
                .map(|flag_version| FailureMetadata { flag_version }),
            ..FailureBody::new(
                StatusCode::BAD_REQUEST,
                key,
                "TARGETING_KEY_MISSING",
                format!("flag '{key}' splits by an attribute the context does not have"),
            )
        }),
    }
}

impl IntoResponse for Outcome<'_, '_> {
    fn into_response(self) -> Response {
        match self {
            Outcome::Success(s) => axum::Json(s).into_response(),
            Outcome::Failure(body) => Failure::Flag(body).into_response(),
        }
    }
}

/// A request-level failure in OFREP's shapes.
#[derive(Debug)]
pub(crate) enum Failure {
    /// 401 without a body (the spec defines none), with `WWW-Authenticate`.
    Unauthorized,
    /// 429 without a body (the spec defines none), with `Retry-After` in seconds.
    RateLimited { retry_after_secs: u64 },
    /// A single-flag failure: `evaluationFailure` or `flagNotFound`.
    Flag(FailureBody),
    /// `bulkEvaluationFailure`: `{errorCode, errorDetails}`.
    Bulk {
        status: StatusCode,
        code: &'static str,
        details: String,
    },
    /// 500 `generalErrorResponse`: `{errorDetails}`, never with internals.
    General(&'static str),
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
            )
                .into_response(),
            Failure::RateLimited { retry_after_secs } => (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, retry_after_secs.to_string())],
            )
                .into_response(),
            Failure::Flag(body) => (body.status, axum::Json(body)).into_response(),
            Failure::Bulk {
                status,
                code,
                details,
            } => (
                status,
                axum::Json(serde_json::json!({"errorCode": code, "errorDetails": details})),
            )
                .into_response(),
            Failure::General(details) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(serde_json::json!({ "errorDetails": details })),
            )
                .into_response(),
        }
    }
}

/// `bulkEvaluationSuccess`, with the change-notification stream in `eventStreams`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"flags": [{"key": "new-checkout", "value": true, "reason": "STATIC", "variant": "on",
    "metadata": {"flagVersion": 3}}], "metadata": {"environmentVersion": 12},
    "eventStreams": [{"type": "sse", "endpoint": {"requestUri": "/ofrep/v1/event-stream?token=…"}}]}))]
#[schema(as = OfrepBulk)]
pub(crate) struct Bulk<'k, 's> {
    pub(crate) flags: Vec<Outcome<'k, 's>>,
    pub(crate) metadata: BulkMetadata,
    #[schema(value_type = Vec<EventStream>)]
    pub(crate) event_streams: [EventStream; 1],
}

/// An `eventStream` entry: SSE at a path on the provider's own OFREP origin.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = OfrepEventStream)]
pub(crate) struct EventStream {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) endpoint: EventStreamEndpoint,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = OfrepEventStreamEndpoint)]
pub(crate) struct EventStreamEndpoint {
    pub(crate) request_uri: String,
}

impl EventStream {
    pub(crate) fn for_token(token: &str) -> EventStream {
        EventStream {
            kind: "sse",
            endpoint: EventStreamEndpoint {
                request_uri: format!("/ofrep/v1/event-stream?token={token}"),
            },
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = OfrepBulkMetadata)]
pub(crate) struct BulkMetadata {
    pub(crate) environment_version: u64,
}

/// The bulk `ETag`: the environment's version, then a digest of the request body and of the
/// response. The version makes every change visible; the request body keeps two contexts
/// apart; the response covers what the version cannot see (time-based clauses). Strong,
/// and the same on every node of a cluster for the same state.
pub(crate) fn bulk_etag(version: u64, request: &[u8], response: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update((request.len() as u64).to_be_bytes());
    hasher.update(request);
    hasher.update(response);
    let digest = hasher.finalize();
    format!("\"{version}-{}\"", hex::encode(&digest[..12]))
}

/// A JSON response with an `ETag`, or a bodyless 304 when the client already has it.
pub(crate) fn with_bulk_etag(json: Vec<u8>, etag: &str, not_modified: bool) -> Response {
    let etag = HeaderValue::from_str(etag).unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
    if not_modified {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let mut response = Response::new(Body::from(json));
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

impl From<ApiError> for Failure {
    /// Key refusals: rate limiting keeps its meaning, anything else is 401.
    fn from(e: ApiError) -> Failure {
        match e {
            ApiError::TooManyRequests { retry_after_secs } => {
                Failure::RateLimited { retry_after_secs }
            }
            _ => Failure::Unauthorized,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    #[test]
    fn bodies_are_classified_as_parse_or_context_errors() {
        let code = |body: &str| parse_context(body.as_bytes()).err().map(|e| e.code);
        assert_eq!(code(r#"{"context": {"targetingKey": "u"}}"#), None);
        assert_eq!(code(r#" {"context": {}, "extra": 1}"#), None);
        for bad in ["", "{", "nope", r#"{"context": {}} x"#] {
            assert_eq!(code(bad), Some("PARSE_ERROR"), "{bad}");
        }
        for bad in [
            "[]",
            r#"[{"targetingKey": "u"}]"#,
            "{}",
            r#"{"context": null}"#,
            r#"{"context": [1]}"#,
            r#"{"context": {"a": 1, "a": 2}}"#,
        ] {
            assert_eq!(code(bad), Some("INVALID_CONTEXT"), "{bad}");
        }
    }

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        let tag = "\"7-abc\"";
        let headers = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, HeaderValue::from_static(v));
            h
        };
        assert!(if_none_match(&headers("\"7-abc\""), tag));
        assert!(if_none_match(&headers("\"1-x\", W/\"7-abc\""), tag));
        assert!(if_none_match(&headers("*"), tag));
        assert!(!if_none_match(&headers("\"6-abc\""), tag));
        assert!(!if_none_match(&HeaderMap::new(), tag));
    }

    #[test]
    fn etags_differ_by_version_request_and_response() {
        let a = bulk_etag(3, b"{\"context\":{\"targetingKey\":\"a\"}}", b"{}");
        assert_ne!(
            a,
            bulk_etag(4, b"{\"context\":{\"targetingKey\":\"a\"}}", b"{}")
        );
        assert_ne!(
            a,
            bulk_etag(3, b"{\"context\":{\"targetingKey\":\"b\"}}", b"{}")
        );
        assert_ne!(
            a,
            bulk_etag(3, b"{\"context\":{\"targetingKey\":\"a\"}}", b"[]")
        );
        assert!(a.starts_with("\"3-") && a.ends_with('"'));
    }
}
