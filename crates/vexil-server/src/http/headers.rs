//! Security headers on every response: no MIME sniffing, no framing, no referrer, a
//! content security policy (everything is JSON except the API documentation at `/docs`
//! and the console under `/ui/`, whose policies allow only their own files), HSTS when served over HTTPS, and
//! `Cache-Control: no-store` on the management plane, whose answers may carry secrets
//! (a new token's or API key's value) and are never meant for a shared cache.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// Whether responses say `Strict-Transport-Security` (the server is behind HTTPS).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hsts(pub(crate) bool);

const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
/// The console: its own stylesheet and script only (no inline script or style), forms
/// posting to itself, reading its own live-update endpoint.
const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
const DOCS_CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
    object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub(crate) async fn security_headers(
    State(Hsts(hsts)): State<Hsts>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    let docs = path == "/docs" || path.starts_with("/docs/");
    let console = path == "/ui" || path.starts_with("/ui/");
    let evaluation = super::is_evaluation(path);
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        if docs {
            DOCS_CSP
        } else if console {
            CONSOLE_CSP
        } else {
            API_CSP
        },
    );
    if hsts {
        set(
            headers,
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        );
    }
    if !evaluation && !docs && !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
    response
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: &'static str) {
    headers.insert(name, HeaderValue::from_static(value));
}
