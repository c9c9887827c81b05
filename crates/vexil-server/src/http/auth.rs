//! Authentication of the management plane: `Authorization: Bearer <token>`, looked up by
//! SHA-256 hash. The authenticated [`Actor`] is put in the request's extensions.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::audit::{Actor, hash_secret};
use crate::store::{Store, tokens};

/// Rejects the request with 401 unless it carries a valid management token.
pub async fn require_token(
    State(store): State<Arc<Store>>,
    mut req: Request,
    next: Next,
) -> Response {
    // Only the header is taken into the await: a `&Request` would make the future non-Send.
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match authenticate(&store, header.as_deref()).await {
        Ok(actor) => {
            req.extensions_mut().insert(actor);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

async fn authenticate(store: &Store, authorization: Option<&str>) -> Result<Actor, ApiError> {
    let token = authorization
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 256)
        .ok_or(ApiError::Unauthorized)?;
    // Lookup by hash: the database compares digests, never the secret itself, so the
    // comparison leaks nothing useful about the secret through timing.
    let mut conn = store.read().await?;
    let row = tokens::find_by_hash(&mut conn, &hash_secret(token))
        .await?
        .ok_or(ApiError::Unauthorized)?;
    Ok(Actor {
        id: row.id,
        name: row.name,
    })
}

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Actor>()
            .cloned()
            .ok_or(ApiError::Unauthorized)
    }
}
