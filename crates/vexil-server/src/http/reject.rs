//! Requests answered before (or instead of) a handler: control characters in the path or
//! the query, unknown paths, and methods a route does not have. Each gets the JSON error
//! of the plane it is on — OFREP's shapes under `/ofrep/`, `{"error": …}` elsewhere.

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::authz::policy;
use super::error::ApiError;
use super::ofrep;

/// No id, key or filter contains control characters, and PostgreSQL text refuses NUL: a
/// path with a percent-encoded control character is answered 404 (nothing has such a
/// name), a query with one 400, before either reaches a handler or a query.
pub(crate) async fn control_characters(req: Request, next: Next) -> Response {
    let uri = req.uri();
    let path = uri.path();
    if has_encoded_control(path.as_bytes()) {
        return if is_ofrep(path) {
            ofrep::refuse_path(path)
        } else {
            ApiError::NotFound("no such resource".into()).into_response()
        };
    }
    if let Some(query) = uri.query()
        && let Some(name) = control_in_query(query)
    {
        let message = format!("query parameter '{name}' contains a control character");
        return if is_ofrep(path) {
            ofrep::refuse_query(message)
        } else {
            ApiError::invalid_field(&name, "must not contain control characters").into_response()
        };
    }
    next.run(req).await
}

/// The answer to a path no route has.
pub(crate) async fn unknown_path(req: Request) -> Response {
    let path = req.uri().path();
    if is_ofrep(path) {
        ofrep::refuse_path(path)
    } else {
        ApiError::NotFound(format!("no such path: {} {path}", req.method())).into_response()
    }
}

/// 405 for a management route called with a method it does not have: `Allow` lists those
/// it has (per the policy table, which covers every management route).
pub(crate) fn wrong_method(method: &Method, route: &str) -> Option<Response> {
    // HEAD is answered wherever GET is (as the policy table says).
    let allowed: Vec<&str> = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ]
    .iter()
    .filter(|m| policy(m, route).is_some())
    .map(Method::as_str)
    .collect();
    if allowed.is_empty() {
        return None;
    }
    let allow = allowed.join(", ");
    let mut response = ApiError::MethodNotAllowed(format!(
        "{method} is not allowed on {route}; allowed: {allow}"
    ))
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&allow) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    Some(response)
}

/// 405 for the evaluation and operations planes, whose routes axum answers itself: the
/// same JSON error (OFREP's general shape under `/ofrep/`), keeping axum's `Allow`.
pub(crate) async fn method_not_allowed_body(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let response = next.run(req).await;
    let has_body = response.headers().contains_key(header::CONTENT_TYPE);
    if response.status() != StatusCode::METHOD_NOT_ALLOWED || has_body {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut replaced = if is_ofrep(&path) {
        ofrep::refuse_method(&method)
    } else {
        ApiError::MethodNotAllowed(format!("{method} is not allowed on {path}")).into_response()
    };
    if let Some(allow) = allow {
        replaced.headers_mut().insert(header::ALLOW, allow);
    }
    replaced
}

fn is_ofrep(path: &str) -> bool {
    path.starts_with("/ofrep/")
}

/// Whether `text` has a `%XX` escape of a control character (below 0x20, or 0x7f).
fn has_encoded_control(text: &[u8]) -> bool {
    text.windows(3).any(|w| {
        w[0] == b'%'
            && std::str::from_utf8(&w[1..])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .is_some_and(|b| b < 0x20 || b == 0x7f)
    })
}

/// The (decoded-enough) name of the first query parameter whose name or value has a
/// control character.
fn control_in_query(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        if !has_encoded_control(pair.as_bytes()) {
            return None;
        }
        let name = pair.split('=').next().unwrap_or_default();
        let readable = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            .collect::<String>();
        Some(if readable.is_empty() {
            "query".to_owned()
        } else {
            readable
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_encoded_control_characters() {
        assert!(has_encoded_control(b"/a%00b"));
        assert!(has_encoded_control(b"%1f"));
        assert!(has_encoded_control(b"x%7F"));
        assert!(!has_encoded_control(b"/a%20b%2F"));
        assert!(!has_encoded_control(b"%0"));
        assert_eq!(
            control_in_query("limit=1&organization_id=a%00").as_deref(),
            Some("organization_id")
        );
        assert_eq!(control_in_query("a=b&c=d%41"), None);
    }
}
