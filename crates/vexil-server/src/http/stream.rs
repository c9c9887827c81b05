//! The change streams of an environment's ruleset, one logic for every protocol:
//! `GET /api/v1/sdk/stream` (server-sent events), `GET /api/v1/sdk/ws` (WebSocket, `ws.rs`)
//! and `GET /ofrep/v1/event-stream` (OFREP's SSE). Server keys get `put` (the whole
//! ruleset) on connect, then `patch`/`delete` per changed flag or segment; client and
//! mobile keys get `refetch` only (they never see rules). Every event's id is the
//! environment version of the change it carries; a client that gives the last id it got
//! (`Last-Event-ID`, or `?last_event_id=` on WebSocket) resumes without a `put` when the
//! changes since are still remembered, replaying each changed flag or segment once at the
//! version of its latest change, oldest first (so a client cut off half-way resumes from the
//! last event it got). A heartbeat goes out after 15 s without anything else (an SSE
//! comment, a WebSocket ping). A subscriber that falls behind is disconnected (it resumes by
//! reconnecting) so that it cannot slow anyone else; streams end when the server shuts down.
//!
//! `Subscription` decides what a subscriber gets; the protocols only frame its events.
//!
//! Memory: a subscriber holds references, not copies. A version's `put` data is the
//! snapshot's one ruleset JSON (`EnvSnapshot::ruleset_bytes`), a resumption is a slice of
//! the version's one rendered `Replay`, and an update's events are rendered once
//! (`Update::rendered`); each protocol writes a small header of its own around the shared
//! data, which it hands to the connection as refcounted `Bytes` slices of at most 512 KiB,
//! so a thousand subscribers of a 6 MB ruleset share one 6 MB buffer. What a subscriber may
//! have waiting is bounded: updates in the broadcast channel (shared; one that falls
//! further behind is dropped) and what the connection buffers, and a connection whose peer
//! stops reading is closed (`serve::SEND_TIMEOUT`).

use std::collections::VecDeque;
use std::convert::Infallible;
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
use crate::snapshots::{EnvSnapshot, Replay, Snapshots, StreamEvent, Update, latest_per_key};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/sdk/stream", get(stream_ruleset))
        .route("/ofrep/v1/event-stream", get(ofrep_event_stream))
}

/// Which events a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Vexil SDKs: `put`/`patch`/`delete` (server keys) or `refetch` (client keys).
    Sdk,
    /// OFREP providers: `message` events `{"type": "refetchEvaluation", "etag"}`.
    Ofrep,
}

/// Heartbeat period (docs/http-api.md).
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(15);
/// The largest piece of a (shared) frame handed to the connection at once: a refcounted
/// slice, above hyper's 400 KiB write-buffer limit so that a connection queues one or two
/// pieces at a time (its queue's capacity stays with the connection).
pub(crate) const MAX_CHUNK: usize = 512 * 1024;
/// The first frame of an SDK stream, so that a client already up to date sees at once that
/// the stream works.
const CONNECTED: &[u8] = b": connected\n\n";
/// Sent after `HEARTBEAT` without anything else.
const HEARTBEAT_FRAME: &[u8] = b": heartbeat\n\n";

/// The server's shutdown: `stop` turns `true` when it begins, and `sockets` counts the
/// upgraded connections (WebSocket) still open, which the server waits for before it
/// exits (hyper's drain covers HTTP connections only).
#[derive(Debug, Clone)]
pub(crate) struct ShutdownSignal {
    pub(crate) stop: watch::Receiver<bool>,
    sockets: Arc<watch::Sender<usize>>,
}

impl ShutdownSignal {
    pub(crate) fn new(stop: watch::Receiver<bool>) -> ShutdownSignal {
        ShutdownSignal {
            stop,
            sockets: Arc::new(watch::channel(0).0),
        }
    }

    /// Counts an upgraded connection open until the guard drops.
    pub(crate) fn open_socket(&self) -> SocketGuard {
        self.sockets.send_modify(|n| *n += 1);
        SocketGuard(self.sockets.clone())
    }

    /// Waits (at most `limit`) until every upgraded connection has closed.
    pub(crate) async fn sockets_closed(&self, limit: Duration) {
        let mut open = self.sockets.subscribe();
        let _ = tokio::time::timeout(limit, open.wait_for(|n| *n == 0)).await;
    }
}

/// One open upgraded connection (see `ShutdownSignal::open_socket`).
#[derive(Debug)]
pub(crate) struct SocketGuard(Arc<watch::Sender<usize>>);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// What a subscription yields next.
#[derive(Debug)]
pub(crate) enum Item {
    Event(StreamEvent),
    /// Nothing was sent for `HEARTBEAT`.
    Heartbeat,
}

/// Why a subscription ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The server is shutting down.
    Shutdown,
    /// The subscriber fell too far behind; it resumes by reconnecting.
    Lagged,
}

/// One subscriber's view of an environment's changes: the events it gets, in order.
pub(crate) struct Subscription {
    mode: Mode,
    snapshots: Arc<Snapshots>,
    key: Arc<KeyInfo>,
    updates: broadcast::Receiver<Arc<Update>>,
    shutdown: watch::Receiver<bool>,
    /// The version the client holds after the events yielded so far.
    sent: u64,
    /// Events not yet yielded, in order: references to shared renderings.
    pending: VecDeque<StreamEvent>,
    /// When a heartbeat is due if nothing else is yielded.
    heartbeat_at: Instant,
}

impl Subscription {
    /// Subscribes `key` to its environment, resuming from `last_id` when given.
    pub(crate) fn open(
        mode: Mode,
        snapshots: Arc<Snapshots>,
        key: Arc<KeyInfo>,
        shutdown: &ShutdownSignal,
        last_id: Option<u64>,
    ) -> ApiResult<Subscription> {
        // Subscribe before reading the snapshot, so that no update can fall in between.
        let updates = snapshots.subscribe();
        let env = snapshots
            .get(&key.environment_id)
            .ok_or(ApiError::Unavailable)?;
        let pending = match mode {
            Mode::Sdk => initial_events(&env, &key, last_id),
            // A provider that reconnects after missing changes re-fetches at once.
            Mode::Ofrep => match last_id {
                Some(v) if v != env.version => VecDeque::from([refetch_evaluation(env.version)]),
                _ => VecDeque::new(),
            },
        };
        Ok(Subscription {
            mode,
            snapshots,
            key,
            updates,
            shutdown: shutdown.stop.clone(),
            sent: env.version,
            pending,
            heartbeat_at: Instant::now() + HEARTBEAT,
        })
    }

    /// The next event, a heartbeat, or the end. Cancel-safe: nothing is lost when the
    /// future is dropped before it completes.
    pub(crate) async fn next(&mut self) -> Result<Item, End> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.heartbeat_at = Instant::now() + HEARTBEAT;
                return Ok(Item::Event(event));
            }
            if *self.shutdown.borrow() {
                return Err(End::Shutdown);
            }
            let update = tokio::select! {
                update = self.updates.recv() => update,
                _ = self.shutdown.changed() => return Err(End::Shutdown),
                () = tokio::time::sleep_until(self.heartbeat_at) => {
                    self.heartbeat_at = Instant::now() + HEARTBEAT;
                    return Ok(Item::Heartbeat);
                }
            };
            match update {
                Ok(update)
                    if update.environment_id == self.key.environment_id
                        && update.version > self.sent =>
                {
                    let sent = self.queue(&update);
                    self.sent = sent;
                }
                Ok(_) => {}
                // Too slow to keep up: end this stream; the client resumes from its last id.
                Err(RecvError::Lagged(_)) => return Err(End::Lagged),
                Err(RecvError::Closed) => return Err(End::Shutdown),
            }
        }
    }

    /// Queues the events of one snapshot update for this subscriber and returns the
    /// version the subscriber holds once it has them.
    fn queue(&mut self, update: &Update) -> u64 {
        if self.mode == Mode::Ofrep {
            self.pending.push_back(refetch_evaluation(update.version));
            return update.version;
        }
        if !self.key.kind.is_server() {
            self.pending.push_back(refetch(update.version));
            return update.version;
        }
        let Some(env) = self.snapshots.get(&self.key.environment_id) else {
            return self.sent;
        };
        let Some(changes) = &update.changes else {
            // A full reload: the `put` carries the current snapshot, which may be newer than
            // this update; later updates continue from there.
            self.pending.push_back(put(&env));
            return env.version.max(update.version);
        };
        // Serialising definitions is the costly part: it is done once per update, and every
        // subscriber sends the same bytes.
        let rendered = update.rendered.get_or_init(|| {
            latest_per_key(changes.iter())
                .into_iter()
                .map(|c| change_event(&env, &c.kind, &c.key, c.version))
                .collect()
        });
        self.pending.extend(rendered.iter().cloned());
        update.version
    }
}

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
    let subscription = Subscription::open(
        Mode::Sdk,
        snapshots,
        key.0,
        &shutdown,
        last_event_id(&headers),
    )?;
    // A comment first, so that a client already up to date sees at once that the stream
    // works (the first heartbeat comes only after 15 s).
    Ok(event_stream(subscription, Some(CONNECTED)))
}

/// The `Last-Event-ID` request header, if it is a version.
fn last_event_id(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// The SSE response: frames as they come, without copying shared data.
fn event_stream(subscription: Subscription, first: Option<&'static [u8]>) -> Response {
    let chunks = VecDeque::from_iter(first.map(Bytes::from_static));
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream::unfold((subscription, chunks), next_chunk)),
    )
        .into_response()
}

type SseState = (Subscription, VecDeque<Bytes>);

async fn next_chunk(
    (mut sub, mut chunks): SseState,
) -> Option<(Result<Bytes, Infallible>, SseState)> {
    loop {
        if let Some(mut chunk) = chunks.pop_front() {
            if chunk.is_empty() {
                continue;
            }
            if chunk.len() > MAX_CHUNK {
                // A refcounted slice: the rest stays shared until its turn.
                let rest = chunk.split_off(MAX_CHUNK);
                chunks.push_front(rest);
            }
            return Some((Ok(chunk), (sub, chunks)));
        }
        match sub.next().await {
            Ok(Item::Event(event)) => chunks.extend(sse_frame(event)),
            Ok(Item::Heartbeat) => chunks.push_back(Bytes::from_static(HEARTBEAT_FRAME)),
            Err(_) => return None,
        }
    }
}

/// An event as an SSE frame: a small header of its own, the shared data, the blank line.
fn sse_frame(event: StreamEvent) -> [Bytes; 3] {
    debug_assert!(!event.data.contains(&b'\n'), "SSE data must be one line");
    let header = match event.name {
        "message" => format!("id: {}\ndata: ", event.id),
        name => format!("event: {name}\nid: {}\ndata: ", event.id),
    };
    [Bytes::from(header), event.data, Bytes::from_static(b"\n\n")]
}

/// The events a subscriber of an SDK stream gets on connect.
fn initial_events(env: &EnvSnapshot, key: &KeyInfo, last_id: Option<u64>) -> VecDeque<StreamEvent> {
    if !key.kind.is_server() {
        // Client SDKs fetch on connect anyway; tell them only when they are behind.
        return match last_id {
            Some(v) if v != env.version => VecDeque::from([refetch(env.version)]),
            _ => VecDeque::new(),
        };
    }
    match last_id {
        Some(since) if since == env.version => VecDeque::new(),
        Some(since) if env.resumable_from(since) => env
            .replay
            .get_or_init(|| render_replay(env))
            .after(since)
            .iter()
            .cloned()
            .collect(),
        _ => VecDeque::from([put(env)]),
    }
}

/// The resumption events of a version (see `Replay`), rendered once.
fn render_replay(env: &EnvSnapshot) -> Replay {
    Replay {
        events: env
            .latest_changes()
            .into_iter()
            .map(|c| change_event(env, &c.kind, &c.key, c.version))
            .collect(),
    }
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
    let subscription = Subscription::open(
        Mode::Ofrep,
        snapshots,
        key,
        &shutdown,
        last_event_id(&headers),
    )?;
    Ok(event_stream(subscription, None))
}

fn event(name: &'static str, id: u64, data: String) -> StreamEvent {
    debug_assert!(!data.contains(['\n', '\r']), "event data must be one line");
    StreamEvent {
        name,
        id,
        data: Bytes::from(data),
    }
}

/// OFREP's only event: the provider should re-evaluate. The SSE event name stays `message`.
fn refetch_evaluation(version: u64) -> StreamEvent {
    let data = json!({"type": "refetchEvaluation", "etag": version.to_string()});
    event("message", version, data.to_string())
}

/// The `put` of a version: its one shared ruleset JSON.
fn put(env: &EnvSnapshot) -> StreamEvent {
    StreamEvent {
        name: "put",
        id: env.version,
        data: env.ruleset_bytes(),
    }
}

fn refetch(version: u64) -> StreamEvent {
    event("refetch", version, json!({"version": version}).to_string())
}

/// `patch` with the current definition, or `delete` when the flag or segment is gone (or,
/// for flags, archived: SDKs treat both as missing). `id` is the version the event
/// completes (the definition may already be newer; a later event repeats it).
fn change_event(env: &EnvSnapshot, kind: &str, key: &str, id: u64) -> StreamEvent {
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
        Some(value) => event(
            "patch",
            id,
            json!({"kind": kind, "key": key, "version": id, "value": value}).to_string(),
        ),
        None => event(
            "delete",
            id,
            json!({"kind": kind, "key": key, "version": id}).to_string(),
        ),
    }
}
