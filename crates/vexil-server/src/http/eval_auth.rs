//! Authentication of the evaluation plane: an API key as `Authorization: Bearer <key>` or
//! `X-API-Key: <key>`, checked against the in-memory key ring (no database access). The key
//! fixes the project and environment of every evaluation.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use super::error::ApiError;
use crate::keys::{KeyInfo, KeyRing, Refusal};

/// The API key of an evaluation request.
#[derive(Debug, Clone)]
pub(crate) struct EvalKey(pub(crate) Arc<KeyInfo>);

/// The key secret of a request, from `Authorization: Bearer` or `X-API-Key`.
pub(crate) fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    let api_key = || headers.get("x-api-key").and_then(|v| v.to_str().ok());
    bearer
        .or_else(api_key)
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 256)
}

impl<S> FromRequestParts<S> for EvalKey
where
    S: Send + Sync,
    Arc<KeyRing>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let ring = Arc::<KeyRing>::from_ref(state);
        let secret = presented_key(&parts.headers).ok_or(ApiError::Unauthorized)?;
        ring.authenticate(secret)
            .map(EvalKey)
            .map_err(|refusal| match refusal {
                Refusal::Invalid => ApiError::Unauthorized,
                Refusal::RateLimited { retry_after_secs } => {
                    ApiError::TooManyRequests { retry_after_secs }
                }
            })
    }
}
