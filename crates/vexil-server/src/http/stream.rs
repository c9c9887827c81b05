//! `GET /api/v1/sdk/stream`: server-sent events of an environment's ruleset. Server keys
//! get `put` (the whole ruleset) on connect, then `patch`/`delete` per changed flag or
//! segment; client and mobile keys get `refetch` only (they never see rules). Every event's
//! `id` is the environment version; `Last-Event-ID` resumes without a `put` when the
//! changes since are still remembered. A comment heartbeat goes out every 15 s. A
//! subscriber that falls behind is disconnected (it resumes by reconnecting) so that it
//! cannot slow anyone else; streams end when the server shuts down.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::stream;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::eval_auth::EvalKey;
use super::extract::Query;
use crate::keys::{KeyInfo, KeyRing};
use crate::snapshots::{EnvSnapshot, Snapshots, Update};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/sdk/stream", get(stream_ruleset))
        .route("/ofrep/v1/event-stream", get(ofrep_event_stream))
}

/// Which protocol a stream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Vexil SDKs: `put`/`patch`/`delete` (server keys) or `refetch` (client keys).
    Sdk,
    /// OFREP providers: `message` events `{"type": "refetchEvaluation", "etag"}`.
    Ofrep,
}

/// Heartbeat period (DESIGN §4).
const HEARTBEAT: Duration = Duration::from_secs(15);

/// Set to `true` when the server begins shutting down.
#[derive(Debug, Clone)]
pub(crate) struct ShutdownSignal(pub(crate) watch::Receiver<bool>);

#[utoipa::path(get, path = "/api/v1/sdk/stream", tag = "evaluation", security(("api_key" = [])),
    params(("Last-Event-ID" = Option<String>, Header, description = "The last environment version received; resumes without a full `put` when possible")),
    responses(super::openapi::errors::EvaluationKey,
        (status = 200, description = "Server-sent events, open until the server stops: `put` {version, flags, segments}, `patch` {kind, key, version, value}, `delete` {kind, key, version} for server keys; `refetch` {version} for client keys; every event's `id` is the environment version; heartbeat comments every 15 s",
            content_type = "text/event-stream", body = super::openapi::bodies::SseEvent)))]
pub(crate) async fn stream_ruleset(
    State(snapshots): State<Arc<Snapshots>>,
    State(shutdown): State<ShutdownSignal>,
    key: EvalKey,
    headers: HeaderMap,
) -> ApiResult<Response> {
    // Subscribe before reading the snapshot, so that no update can fall in between.
    let updates = snapshots.subscribe();
    let env = snapshots
        .get(&key.0.environment_id)
        .ok_or(ApiError::Unavailable)?;
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    // A comment first, so that a client already up to date sees at once that the stream
    // works (the first heartbeat comes only after 15 s).
    let mut first = vec![Event::default().comment("connected")];
    first.extend(initial_events(&env, &key.0, last_id));
    let state = StreamState {
        mode: Mode::Sdk,
        snapshots,
        key: key.0,
        updates,
        shutdown: shutdown.0,
        sent: env.version,
        pending: first,
    };
    let sse = Sse::new(stream::unfold(state, next_event))
        .keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"));
    Ok(sse.into_response())
}

struct StreamState {
    mode: Mode,
    snapshots: Arc<Snapshots>,
    key: Arc<KeyInfo>,
    updates: broadcast::Receiver<Arc<Update>>,
    shutdown: watch::Receiver<bool>,
    /// The version the client holds after the events sent so far.
    sent: u64,
    /// Events computed but not yet sent (most recent last).
    pending: Vec<Event>,
}

/// The events a subscriber gets on connect.
fn initial_events(env: &EnvSnapshot, key: &KeyInfo, last_id: Option<u64>) -> Vec<Event> {
    if !key.kind.is_server() {
        // Client SDKs fetch on connect anyway; tell them only when they are behind.
        return match last_id {
            Some(v) if v == env.version => Vec::new(),
            Some(_) => vec![refetch(env.version)],
            None => Vec::new(),
        };
    }
    match last_id.and_then(|v| env.changes_after(v)) {
        Some(changes) => changes
            .iter()
            .map(|(kind, k)| change_event(env, kind, k, env.version))
            .collect(),
        None => vec![put(env)],
    }
}

async fn next_event(mut s: StreamState) -> Option<(Result<Event, Infallible>, StreamState)> {
    loop {
        if !s.pending.is_empty() {
            let event = s.pending.remove(0);
            return Some((Ok(event), s));
        }
        if *s.shutdown.borrow() {
            return None;
        }
        let update = tokio::select! {
            update = s.updates.recv() => update,
            _ = s.shutdown.changed() => return None,
        };
        match update {
            Ok(update)
                if update.environment_id == s.key.environment_id && update.version > s.sent =>
            {
                let (events, sent) = events_for(&s, &update);
                s.pending = events;
                s.sent = sent;
            }
            Ok(_) => {}
            // Too slow to keep up: end this stream; the client resumes with Last-Event-ID.
            Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return None,
        }
    }
}

/// The events of one snapshot update, for this subscriber, and the version the subscriber
/// holds once it has them.
fn events_for(s: &StreamState, update: &Update) -> (Vec<Event>, u64) {
    if s.mode == Mode::Ofrep {
        return (vec![refetch_evaluation(update.version)], update.version);
    }
    if !s.key.kind.is_server() {
        return (vec![refetch(update.version)], update.version);
    }
    let Some(env) = s.snapshots.get(&s.key.environment_id) else {
        return (Vec::new(), s.sent);
    };
    let Some(changes) = &update.changes else {
        // A full reload: the `put` carries the current snapshot, which may be newer than
        // this update; later updates continue from there.
        return (vec![put(&env)], env.version.max(update.version));
    };
    // Serialising definitions is the costly part; with a thousand subscribers it is done
    // once per update, and each subscriber only copies the text.
    let rendered = update.rendered.get_or_init(|| {
        let mut seen = std::collections::BTreeSet::new();
        changes
            .iter()
            .filter(|c| seen.insert((c.kind.as_str(), c.key.as_str())))
            .map(|c| change_payload(&env, &c.kind, &c.key, update.version))
            .collect()
    });
    let id = update.version.to_string();
    let events = rendered
        .iter()
        .map(|(name, data)| Event::default().event(*name).id(&id).data(data))
        .collect();
    (events, update.version)
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct StreamQuery {
    token: String,
}

#[utoipa::path(get, path = "/ofrep/v1/event-stream", tag = "ofrep", security(()),
    params(("token" = String, Query, description = "The opaque token from a bulk evaluation's `eventStreams` entry"),
        ("Last-Event-ID" = Option<String>, Header, description = "The last environment version received")),
    responses(
        (status = 400, description = "A missing `token` (`invalid_request`), or a query parameter with a control character (OFREP `PARSE_ERROR`)", body = super::openapi::bodies::OfrepStreamError,
            example = json!({"errorCode": "PARSE_ERROR", "errorDetails": "query parameter 'token' contains a control character"})),
        (status = 200, description = "Server-sent `message` events `{\"type\": \"refetchEvaluation\", \"etag\"}` whenever the environment changes, open until the server stops; heartbeat comments every 15 s",
            content_type = "text/event-stream", body = super::openapi::bodies::SseEvent),
        (status = 401, description = "Unknown, revoked or expired token (`unauthorized`)", body = super::openapi::errors::ErrorBody),
        (status = 503, description = "The token's environment has no loaded snapshot (`unavailable`)", body = super::openapi::errors::ErrorBody)))]
pub(crate) async fn ofrep_event_stream(
    State(snapshots): State<Arc<Snapshots>>,
    State(keys): State<Arc<KeyRing>>,
    State(shutdown): State<ShutdownSignal>,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let key = keys
        .by_stream_token(&query.token)
        .ok_or(ApiError::Unauthorized)?;
    let updates = snapshots.subscribe();
    let env = snapshots
        .get(&key.environment_id)
        .ok_or(ApiError::Unavailable)?;
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    // A provider that reconnects after missing changes re-fetches at once.
    let pending = match last_id {
        Some(v) if v != env.version => vec![refetch_evaluation(env.version)],
        _ => Vec::new(),
    };
    let state = StreamState {
        mode: Mode::Ofrep,
        snapshots,
        key,
        updates,
        shutdown: shutdown.0,
        sent: env.version,
        pending,
    };
    let sse = Sse::new(stream::unfold(state, next_event))
        .keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"));
    Ok(sse.into_response())
}

/// OFREP's only event: the provider should re-evaluate. The SSE event name stays `message`.
fn refetch_evaluation(version: u64) -> Event {
    Event::default()
        .id(version.to_string())
        .data(json!({"type": "refetchEvaluation", "etag": version.to_string()}).to_string())
}

fn put(env: &EnvSnapshot) -> Event {
    Event::default()
        .event("put")
        .id(env.version.to_string())
        .data(&*env.ruleset_json())
}

fn refetch(version: u64) -> Event {
    Event::default()
        .event("refetch")
        .id(version.to_string())
        .data(json!({"version": version}).to_string())
}

/// `patch` with the current definition, or `delete` when the flag or segment is gone (or,
/// for flags, archived: SDKs treat both as missing). `id` is the version the event
/// completes (the definition may already be newer; a later event repeats it).
fn change_event(env: &EnvSnapshot, kind: &str, key: &str, id: u64) -> Event {
    let (name, data) = change_payload(env, kind, key, id);
    Event::default().event(name).id(id.to_string()).data(data)
}

/// The event name and JSON data of `change_event`.
fn change_payload(env: &EnvSnapshot, kind: &str, key: &str, id: u64) -> (&'static str, String) {
    let value = match kind {
        "segment" => env
            .segment_def(key)
            .and_then(|d| serde_json::to_value(d).ok()),
        _ => env
            .flag_def(key)
            .filter(|d| !d.archived)
            .and_then(|d| serde_json::to_value(d).ok()),
    };
    match value {
        Some(value) => (
            "patch",
            json!({"kind": kind, "key": key, "version": id, "value": value}).to_string(),
        ),
        None => (
            "delete",
            json!({"kind": kind, "key": key, "version": id}).to_string(),
        ),
    }
}
