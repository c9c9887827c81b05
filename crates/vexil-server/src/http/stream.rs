//! `GET /api/v1/sdk/stream`: server-sent events of an environment's ruleset. Server keys
//! get `put` (the whole ruleset) on connect, then `patch`/`delete` per changed flag or
//! segment; client and mobile keys get `refetch` only (they never see rules). Every event's
//! `id` is the environment version of the change it carries; `Last-Event-ID` resumes
//! without a `put` when the changes since are still remembered, replaying each changed flag
//! or segment once at the version of its latest change, oldest first (so a client cut off
//! half-way resumes from the last event it got). A comment heartbeat goes out every 15 s. A
//! subscriber that falls behind is disconnected (it resumes by reconnecting) so that it
//! cannot slow anyone else; streams end when the server shuts down.
//!
//! Memory: a subscriber holds references, not copies. A version's `put` is the snapshot's
//! one ruleset JSON (`EnvSnapshot::ruleset_bytes`), a resumption is a slice of the
//! version's one rendered `Replay`, and an update's events are rendered once
//! (`Update::rendered`); the body hands them to the connection as refcounted `Bytes`
//! slices of at most 512 KiB, so a thousand subscribers of a 6 MB ruleset share one 6 MB
//! buffer. What a subscriber may have waiting is bounded: updates in the broadcast
//! channel (shared; one that falls further behind is dropped) and what the connection
//! buffers, and a connection whose peer stops reading is closed (`serve::SEND_TIMEOUT`).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::stream;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::eval_auth::EvalKey;
use super::extract::Query;
use crate::keys::{KeyInfo, KeyRing};
use crate::snapshots::{EnvSnapshot, Replay, Snapshots, Update, latest_per_key};

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

/// Heartbeat period (docs/http-api.md).
const HEARTBEAT: Duration = Duration::from_secs(15);
/// The largest piece of a (shared) frame handed to the connection at once: a refcounted
/// slice, above hyper's 400 KiB write-buffer limit so that a connection queues one or two
/// pieces at a time (its queue's capacity stays with the connection).
const MAX_CHUNK: usize = 512 * 1024;
/// The first frame of an SDK stream, so that a client already up to date sees at once that
/// the stream works.
const CONNECTED: &[u8] = b": connected\n\n";
/// Sent after `HEARTBEAT` without anything else.
const HEARTBEAT_FRAME: &[u8] = b": heartbeat\n\n";

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
    // A comment first, so that a client already up to date sees at once that the stream
    // works (the first heartbeat comes only after 15 s).
    let mut pending = VecDeque::from([Bytes::from_static(CONNECTED)]);
    pending.extend(initial_frames(&env, &key.0, last_event_id(&headers)));
    Ok(event_stream(StreamState {
        mode: Mode::Sdk,
        snapshots,
        key: key.0,
        updates,
        shutdown: shutdown.0,
        sent: env.version,
        pending,
        heartbeat_at: Instant::now() + HEARTBEAT,
    }))
}

struct StreamState {
    mode: Mode,
    snapshots: Arc<Snapshots>,
    key: Arc<KeyInfo>,
    updates: broadcast::Receiver<Arc<Update>>,
    shutdown: watch::Receiver<bool>,
    /// The version the client holds after the events sent so far.
    sent: u64,
    /// Frames not yet handed to the connection, in order: references to shared renderings.
    pending: VecDeque<Bytes>,
    /// When a heartbeat is due if nothing else is sent.
    heartbeat_at: Instant,
}

/// The `Last-Event-ID` request header, if it is a version.
fn last_event_id(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// The streaming response: frames as they come, without copying them.
fn event_stream(state: StreamState) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream::unfold(state, next_chunk)),
    )
        .into_response()
}

/// The frames a subscriber gets on connect.
fn initial_frames(env: &EnvSnapshot, key: &KeyInfo, last_id: Option<u64>) -> Vec<Bytes> {
    if !key.kind.is_server() {
        // Client SDKs fetch on connect anyway; tell them only when they are behind.
        return match last_id {
            Some(v) if v == env.version => Vec::new(),
            Some(_) => vec![refetch(env.version)],
            None => Vec::new(),
        };
    }
    match last_id {
        Some(since) if since == env.version => Vec::new(),
        Some(since) if env.resumable_from(since) => {
            vec![env.replay.get_or_init(|| render_replay(env)).after(since)]
        }
        _ => put(env).to_vec(),
    }
}

/// The resumption events of a version (see `Replay`), rendered once.
fn render_replay(env: &EnvSnapshot) -> Replay {
    let mut frames = String::new();
    let mut starts: Vec<(u64, usize)> = Vec::new();
    for c in env.latest_changes() {
        if starts.last().is_none_or(|(v, _)| *v != c.version) {
            starts.push((c.version, frames.len()));
        }
        frames.push_str(&change_frame(env, &c.kind, &c.key, c.version));
    }
    Replay {
        frames: Bytes::from(frames),
        starts,
    }
}

async fn next_chunk(mut s: StreamState) -> Option<(Result<Bytes, Infallible>, StreamState)> {
    loop {
        if let Some(mut frame) = s.pending.pop_front() {
            if frame.is_empty() {
                continue;
            }
            if frame.len() > MAX_CHUNK {
                // A refcounted slice: the rest stays shared until its turn.
                let rest = frame.split_off(MAX_CHUNK);
                s.pending.push_front(rest);
            }
            s.heartbeat_at = Instant::now() + HEARTBEAT;
            return Some((Ok(frame), s));
        }
        if *s.shutdown.borrow() {
            return None;
        }
        let update = tokio::select! {
            update = s.updates.recv() => update,
            _ = s.shutdown.changed() => return None,
            () = tokio::time::sleep_until(s.heartbeat_at) => {
                s.pending.push_back(Bytes::from_static(HEARTBEAT_FRAME));
                continue;
            }
        };
        match update {
            Ok(update)
                if update.environment_id == s.key.environment_id && update.version > s.sent =>
            {
                let (frames, sent) = frames_for(&s, &update);
                s.pending.extend(frames);
                s.sent = sent;
            }
            Ok(_) => {}
            // Too slow to keep up: end this stream; the client resumes with Last-Event-ID.
            Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return None,
        }
    }
}

/// The frames of one snapshot update, for this subscriber, and the version the subscriber
/// holds once it has them.
fn frames_for(s: &StreamState, update: &Update) -> (Vec<Bytes>, u64) {
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
        return (put(&env).to_vec(), env.version.max(update.version));
    };
    // Serialising definitions is the costly part: it is done once per update, and every
    // subscriber sends the same bytes.
    let rendered = update.rendered.get_or_init(|| {
        let mut frames = String::new();
        for c in latest_per_key(changes.iter()) {
            frames.push_str(&change_frame(&env, &c.kind, &c.key, c.version));
        }
        Bytes::from(frames)
    });
    (vec![rendered.clone()], update.version)
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
    // A provider that reconnects after missing changes re-fetches at once.
    let pending = match last_event_id(&headers) {
        Some(v) if v != env.version => VecDeque::from([refetch_evaluation(env.version)]),
        _ => VecDeque::new(),
    };
    Ok(event_stream(StreamState {
        mode: Mode::Ofrep,
        snapshots,
        key,
        updates,
        shutdown: shutdown.0,
        sent: env.version,
        pending,
        heartbeat_at: Instant::now() + HEARTBEAT,
    }))
}

/// OFREP's only event: the provider should re-evaluate. The SSE event name stays `message`.
fn refetch_evaluation(version: u64) -> Bytes {
    let data = json!({"type": "refetchEvaluation", "etag": version.to_string()});
    Bytes::from(frame(None, version, &data.to_string()))
}

/// The `put` of a version: its one shared ruleset JSON between a small header and the
/// blank line that ends the event.
fn put(env: &EnvSnapshot) -> [Bytes; 3] {
    [
        Bytes::from(format!("event: put\nid: {}\ndata: ", env.version)),
        env.ruleset_bytes(),
        Bytes::from_static(b"\n\n"),
    ]
}

fn refetch(version: u64) -> Bytes {
    Bytes::from(frame(
        Some("refetch"),
        version,
        &json!({"version": version}).to_string(),
    ))
}

/// One SSE frame; `data` is one line (compact JSON always is).
fn frame(event: Option<&str>, id: u64, data: &str) -> String {
    debug_assert!(!data.contains(['\n', '\r']), "SSE data must be one line");
    let mut out = String::with_capacity(data.len() + 40);
    if let Some(event) = event {
        let _ = writeln!(out, "event: {event}");
    }
    let _ = write!(out, "id: {id}\ndata: {data}\n\n");
    out
}

/// `patch` with the current definition, or `delete` when the flag or segment is gone (or,
/// for flags, archived: SDKs treat both as missing). `id` is the version the event
/// completes (the definition may already be newer; a later event repeats it).
fn change_frame(env: &EnvSnapshot, kind: &str, key: &str, id: u64) -> String {
    let (name, data) = change_payload(env, kind, key, id);
    frame(Some(name), id, &data)
}

/// The event name and JSON data of `change_frame`.
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
