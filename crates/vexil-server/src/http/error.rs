//! The one error type of the HTTP layer, producing docs/http-api.md's error shape
//! `{"error": {"code", "message", "details"}}` with a stable snake_case `code`.
//!
//! Which error type is used where: `anyhow` with `.context()` at startup and in background
//! tasks; typed errors in the core (`ValidationErrors`) and the store (`StoreError`);
//! `manage::Error` in the domain layer; `ApiError` in handlers, built from those through
//! `From` (this file is the one place where a domain error becomes a status). Internal
//! errors are logged inside the request's span, which carries its id, and answered as a
//! bare 500: a response never carries internals.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use vexil_core::ValidationErrors;

use crate::manage::Error;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// Malformed or invalid input; `fields` maps a field path to what is wrong with it.
    #[error("{message}")]
    Invalid {
        message: String,
        fields: Map<String, Value>,
    },
    #[error("authentication required")]
    Unauthorized,
    #[error("wrong email or password")]
    BadCredentials,
    /// A signed-in user's password change with a wrong current password.
    #[error("the current password is wrong")]
    WrongCurrentPassword,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// Duplicate key, or a resource still referenced by others (`details` lists them).
    #[error("{message}")]
    Conflict { message: String, details: Value },
    /// A 409 with its own code (`approval_required`, `stale`).
    #[error("{message}")]
    Refused {
        code: &'static str,
        message: String,
        details: Value,
    },
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("version mismatch: the resource is at version {current}")]
    PreconditionFailed { current: i64 },
    #[error("request body is larger than 1 MiB")]
    PayloadTooLarge,
    #[error("expected a JSON body (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("the database is unavailable; try again shortly")]
    Unavailable,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        ApiError::Invalid {
            message: message.into(),
            fields: Map::new(),
        }
    }

    /// A 400 whose single problem is at `field`.
    pub(crate) fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut fields = Map::new();
        fields.insert(field.to_owned(), Value::String(message.clone()));
        ApiError::Invalid {
            message: format!("{field}: {message}"),
            fields,
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized | ApiError::BadCredentials | ApiError::WrongCurrentPassword => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } | ApiError::Refused { .. } => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(crate) fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid { .. } => "invalid_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::BadCredentials | ApiError::WrongCurrentPassword => "invalid_credentials",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict { .. } => "conflict",
            ApiError::Refused { code, .. } => code,
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::PreconditionFailed { .. } => "version_mismatch",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::TooManyRequests { .. } => "rate_limited",
            ApiError::Unavailable => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid { message, fields } => ApiError::Invalid { message, fields },
            Error::NotFound(message) => ApiError::NotFound(message),
            Error::Conflict { message, details } => ApiError::Conflict { message, details },
            Error::Refused {
                code,
                message,
                details,
            } => ApiError::Refused {
                code,
                message,
                details,
            },
            Error::VersionMismatch { current } => ApiError::PreconditionFailed { current },
            Error::Forbidden(message) => ApiError::Forbidden(message),
            Error::Unauthenticated => ApiError::Unauthorized,
            Error::BadCredentials => ApiError::BadCredentials,
            Error::WrongCurrentPassword => ApiError::WrongCurrentPassword,
            Error::RateLimited { retry_after_secs } => {
                ApiError::TooManyRequests { retry_after_secs }
            }
            Error::Unavailable => ApiError::Unavailable,
            Error::Internal(e) => ApiError::Internal(e),
        }
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        Error::from(errors).into()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Error::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let details = match &self {
            ApiError::Invalid { fields, .. } => json!({ "fields": fields }),
            ApiError::Conflict { details, .. } | ApiError::Refused { details, .. }
                if !details.is_null() =>
            {
                details.clone()
            }
            ApiError::PreconditionFailed { current } => json!({ "current_version": current }),
            _ => json!({}),
        };
        match &self {
            ApiError::Internal(e) => tracing::error!(error = ?e, "internal error"),
            ApiError::Unavailable => tracing::warn!("database unavailable"),
            _ => {}
        }
        let body = json!({"error": {"code": self.code(), "message": self.to_string(), "details": details}});
        let mut response = (status, axum::Json(body)).into_response();
        match &self {
            ApiError::TooManyRequests { retry_after_secs } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            ApiError::Unavailable => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::Unauthorized => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;
