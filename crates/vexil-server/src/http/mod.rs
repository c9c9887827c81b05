//! The HTTP layer: one module per resource, each exporting `router()`, merged here with the
//! cross-cutting layers (request ids, logs, metrics, body limit, authentication and
//! authorization).

pub(crate) mod api_keys;
pub(crate) mod as_code;
pub(crate) mod audit_logs;
pub(crate) mod auth;
pub mod authz;
pub(crate) mod environments;
pub(crate) mod error;
pub(crate) mod eval_auth;
pub(crate) mod evaluate;
pub(crate) mod extract;
pub(crate) mod flag_configs;
pub(crate) mod flags;
pub(crate) mod headers;
pub(crate) mod insights;
pub(crate) mod members;
pub(crate) mod ofrep;
pub(crate) mod oidc;
pub(crate) mod openapi;
pub(crate) mod ops;
pub(crate) mod organizations;
pub(crate) mod pending;
pub(crate) mod projects;
pub(crate) mod reject;
pub(crate) mod release;
pub(crate) mod segments;
pub(crate) mod serve;
pub(crate) mod sessions;
pub(crate) mod simple;
pub(crate) mod stream;
pub(crate) mod templates;
pub(crate) mod tokens;
pub(crate) mod users;
pub(crate) mod webhooks;
pub(crate) mod ws;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower_http::cors::{Any, CorsLayer};
use tracing::Instrument as _;

use crate::keys::KeyRing;
use crate::metrics::Metrics;
use crate::snapshots::Snapshots;
use crate::store::Store;

/// Largest accepted request body (413 beyond, see docs/http-api.md).
pub(crate) const MAX_BODY: usize = 1024 * 1024;

/// Everything handlers may need; each handler takes only the part it uses (`FromRef`).
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) store: Arc<Store>,
    /// The client webhooks are sent with (tests and redeliveries go out from the request).
    pub(crate) webhooks: Arc<crate::webhook::Sender>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) snapshots: Arc<Snapshots>,
    pub(crate) keys: Arc<KeyRing>,
    pub(crate) insights: Arc<crate::insights::Insights>,
    pub(crate) shutdown: stream::ShutdownSignal,
    pub(crate) auth: Arc<auth::AuthSettings>,
    pub(crate) trusted_proxies: extract::TrustedProxies,
    /// Offline mode: the evaluation plane only (no management API, no console).
    pub(crate) offline: bool,
}

impl FromRef<AppState> for Arc<auth::AuthSettings> {
    fn from_ref(s: &AppState) -> Arc<auth::AuthSettings> {
        s.auth.clone()
    }
}

impl FromRef<AppState> for stream::ShutdownSignal {
    fn from_ref(s: &AppState) -> stream::ShutdownSignal {
        s.shutdown.clone()
    }
}

impl FromRef<AppState> for Arc<Snapshots> {
    fn from_ref(s: &AppState) -> Arc<Snapshots> {
        s.snapshots.clone()
    }
}

impl FromRef<AppState> for Arc<crate::insights::Insights> {
    fn from_ref(s: &AppState) -> Arc<crate::insights::Insights> {
        s.insights.clone()
    }
}

impl FromRef<AppState> for Arc<crate::webhook::Sender> {
    fn from_ref(s: &AppState) -> Arc<crate::webhook::Sender> {
        s.webhooks.clone()
    }
}

impl FromRef<AppState> for Arc<KeyRing> {
    fn from_ref(s: &AppState) -> Arc<KeyRing> {
        s.keys.clone()
    }
}

impl FromRef<AppState> for Arc<Store> {
    fn from_ref(s: &AppState) -> Arc<Store> {
        s.store.clone()
    }
}

impl FromRef<AppState> for Arc<Metrics> {
    fn from_ref(s: &AppState) -> Arc<Metrics> {
        s.metrics.clone()
    }
}

/// The id of the current request (from `X-Request-Id` when sane, else generated).
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub(crate) String);

/// The whole application router.
pub(crate) fn router(state: AppState) -> Router {
    let management = Router::new()
        .merge(organizations::router())
        .merge(projects::router())
        .merge(environments::router())
        .merge(flags::router())
        .merge(flag_configs::router())
        .merge(pending::router())
        .merge(release::router())
        .merge(insights::router())
        .merge(segments::router())
        .merge(api_keys::router())
        .merge(webhooks::router())
        .merge(as_code::router())
        .merge(templates::router())
        .merge(audit_logs::router())
        .merge(members::router())
        .merge(tokens::router())
        .merge(users::router())
        .merge(sessions::router())
        // Outermost first: authenticate, then authorize against the route's policy.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            authz::authorize,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_auth,
        ));

    // The Simple API: management credentials, and for its reads an API key as well.
    let simple_api = simple::router()
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            authz::authorize,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_auth_or_api_key,
        ))
        .layer(simple::cors());

    // Browsers call the evaluation plane cross-origin with client keys; the management
    // plane stays same-origin (no CORS).
    let evaluation = Router::new()
        .merge(ofrep::router())
        .merge(evaluate::router())
        .merge(insights::evaluation_router())
        .merge(stream::router())
        .merge(ws::router())
        .layer(evaluation_cors());

    let app = if state.offline {
        Router::new().merge(evaluation).merge(ops::router())
    } else {
        Router::new()
            .merge(management)
            .merge(simple_api)
            .merge(sessions::public_router())
            .merge(evaluation)
            .merge(ops::router())
            .merge(openapi::router())
            .merge(crate::ui::router(state.clone()))
    };
    app.fallback(reject::unknown_path)
        .route_layer(middleware::from_fn(capture_route))
        .layer(middleware::from_fn(reject::method_not_allowed_body))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(reject::control_characters))
        .layer(axum::Extension(state.trusted_proxies.clone()))
        .layer(middleware::from_fn_with_state(
            headers::Hsts(state.auth.secure_cookies),
            headers::security_headers,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// CORS for the evaluation plane: any origin (keys travel in headers, not cookies), the
/// headers SDKs send, and `ETag`/`Retry-After` readable by scripts.
fn evaluation_cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
            HeaderName::from_static("x-api-key"),
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([header::ETAG, header::RETRY_AFTER])
        .max_age(std::time::Duration::from_secs(3600))
}

/// Where the inner `capture_route` layer leaves the matched route template for `observe`,
/// which runs outside routing and so cannot see `MatchedPath` itself.
#[derive(Debug, Clone, Default)]
struct RouteSlot(Arc<std::sync::OnceLock<String>>);

async fn capture_route(req: Request, next: Next) -> Response {
    if let (Some(slot), Some(path)) = (
        req.extensions().get::<RouteSlot>(),
        req.extensions().get::<MatchedPath>(),
    ) {
        let _ = slot.0.set(path.as_str().to_owned());
    }
    next.run(req).await
}

/// A new request id: a random per-process prefix and a counter (unique without a system
/// call per request, unlike a random UUID).
fn next_request_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..16].to_owned());
    format!("{prefix}-{:016x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Whether a path (or route template) is on the evaluation plane.
pub(crate) fn is_evaluation(path: &str) -> bool {
    path.starts_with("/ofrep/")
        || path.starts_with("/api/v1/evaluate")
        || path.starts_with("/api/v1/sdk/")
        || path == "/api/v1/track"
}

/// Assigns the request id, then logs and measures the request once it is answered.
async fn observe(State(metrics): State<Arc<Metrics>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(next_request_id, str::to_owned);
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().to_string();
    let slot = RouteSlot::default();
    req.extensions_mut().insert(slot.clone());

    // Evaluation traffic is high-volume: its span and per-request lines are debug-level,
    // so that at the default level they cost nothing. Every line logged while a request
    // is handled carries its id.
    let span = if is_evaluation(req.uri().path()) {
        tracing::debug_span!("request", request_id = %id)
    } else {
        tracing::info_span!("request", request_id = %id)
    };
    let mut response = next.run(req).instrument(span).await;

    // Unmatched paths share one label so that scanners cannot blow up the metric series.
    let route = slot.0.get().map_or("unmatched", String::as_str);
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    metrics.record(&method, route, status, elapsed);
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    if is_evaluation(route) {
        tracing::debug!(request_id = %id, method = %method, route = %route, status, latency_ms, "{method} {route} answered {status}");
    } else {
        tracing::info!(request_id = %id, method = %method, route = %route, status, latency_ms, "{method} {route} answered {status}");
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}
