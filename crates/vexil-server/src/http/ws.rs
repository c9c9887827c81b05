//! `GET /api/v1/sdk/ws`: the change stream of `stream.rs` over WebSocket (RFC 6455), each
//! event one JSON text message `{"event", "id", "data"}`, resumable with
//! `?last_event_id=`. The key comes in a header, or — since browsers cannot set headers on
//! a WebSocket — as `?token=` from `POST /api/v1/sdk/ws-token`, which lives one minute.
//!
//! The server side of the protocol is written here rather than taken from a WebSocket
//! library, because those copy every message into a per-connection write buffer that keeps
//! its size: with ten thousand subscribers of a 6 MB ruleset, that is 60 GB. Here a
//! message is a frame header and a small prefix of the connection's own, then the shared
//! event data written straight from its refcounted buffer (see `stream.rs`, "Memory").
//! Client messages are read and ignored (bounded in size); pings are answered, and a ping
//! goes out after 15 s without anything else (it keeps proxies from closing an idle socket
//! and lets clients notice a server that went away). As on SSE, a peer is dropped when it
//! stops taking data for 60 s (`serve::SEND_TIMEOUT`), not for a late pong: a slow reader's
//! pong waits behind everything sent before the ping.
//! The socket closes with 1001 when the server shuts down and 1013 when the subscriber
//! falls too far behind (it reconnects with the last id it got).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use sha1::{Digest as _, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::eval_auth::{EvalKey, presented_key};
use super::extract::Query;
use super::serve::ConnectionSlot;
use super::stream::{End, Item, MAX_CHUNK, Mode, ShutdownSignal, Subscription};
use crate::keys::{KeyInfo, KeyRing, Refusal};
use crate::snapshots::{Snapshots, StreamEvent};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/sdk/ws", get(stream_ws))
        .route("/api/v1/sdk/ws-token", post(ws_token))
}

/// How long a token of `POST /api/v1/sdk/ws-token` opens connections.
const TOKEN_TTL_MS: i64 = 60_000;
/// The largest frame a client may send (client messages are ignored); anything bigger closes
/// the socket with 1009.
const MAX_INCOMING: usize = 8 * 1024;
/// How long a closing socket waits for the peer's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Event data up to this size is copied into the message's one write; larger data is
/// written from its shared buffer.
const COPY_LIMIT: usize = 16 * 1024;

#[derive(Debug, Deserialize)]
pub(crate) struct WsQuery {
    token: Option<String>,
    last_event_id: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/sdk/ws", tag = "evaluation", security(("api_key" = []), ()),
    params(
        ("token" = Option<String>, Query, description = "A token from `POST /api/v1/sdk/ws-token`, for clients that cannot send an `Authorization` or `X-API-Key` header (browsers)"),
        ("last_event_id" = Option<u64>, Query, description = "The last event id (environment version) received; resumes without a full `put` when possible. The `Last-Event-ID` header works too"),
    ),
    responses(
        (status = 101, description = "A WebSocket (RFC 6455) of JSON text messages `{\"event\", \"id\", \"data\"}`: the events of `GET /api/v1/sdk/stream` (`put`, `patch`, `delete` for server keys; `refetch` for client keys); a ping after 15 s without a message. Closes with 1001 when the server stops and 1013 when the client fell too far behind (reconnect with `last_event_id`)"),
        (status = 400, description = "Not a WebSocket handshake, or `last_event_id` is not a version (`invalid_request`)", body = super::openapi::errors::ErrorBody,
            example = json!({"error": {"code": "invalid_request", "message": "not a WebSocket handshake: the Upgrade header must be 'websocket'", "details": {}}})),
        (status = 401, description = "No key or token, or an unknown, revoked or expired one (`unauthorized`)", body = super::openapi::errors::ErrorBody),
        (status = 426, description = "A WebSocket version other than 13 (`invalid_request`; `Sec-WebSocket-Version: 13` says which this server speaks)", body = super::openapi::errors::ErrorBody,
            example = json!({"error": {"code": "invalid_request", "message": "only WebSocket version 13 is supported", "details": {}}})),
        (status = 429, description = "The key's rate limit is reached (`rate_limited`)", body = super::openapi::errors::ErrorBody),
        (status = 503, description = "The key's environment has no loaded snapshot (`unavailable`)", body = super::openapi::errors::ErrorBody),
    ))]
pub(crate) async fn stream_ws(
    State(snapshots): State<Arc<Snapshots>>,
    State(keys): State<Arc<KeyRing>>,
    State(shutdown): State<ShutdownSignal>,
    Query(query): Query<WsQuery>,
    mut request: Request,
) -> ApiResult<Response> {
    let key = authenticate(&keys, request.headers(), query.token.as_deref())?;
    let last_id = match &query.last_event_id {
        Some(v) => Some(v.trim().parse::<u64>().map_err(|_| {
            ApiError::invalid_field("last_event_id", "must be an event id (a version number)")
        })?),
        None => request
            .headers()
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok()),
    };
    let accept = match handshake(request.headers()) {
        Ok(accept) => accept,
        Err(Refused::Version) => {
            // RFC 6455 §4.4: say which version this server speaks.
            let mut response =
                ApiError::invalid("only WebSocket version 13 is supported").into_response();
            *response.status_mut() = StatusCode::UPGRADE_REQUIRED;
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                header::HeaderValue::from_static("13"),
            );
            return Ok(response);
        }
        Err(Refused::Malformed(why)) => {
            return Err(ApiError::invalid(format!(
                "not a WebSocket handshake: {why}"
            )));
        }
    };
    let on_upgrade = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| {
            ApiError::invalid("not a WebSocket handshake: the connection cannot be upgraded")
        })?;
    let slot = request.extensions_mut().remove::<ConnectionSlot>();
    let subscription = Subscription::open(Mode::Sdk, snapshots, key, &shutdown, last_id)?;
    let socket = shutdown.open_socket();
    tokio::spawn(async move {
        let _held = (socket, slot);
        match on_upgrade.await {
            Ok(upgraded) => serve_socket(TokioIo::new(upgraded), subscription).await,
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
    Ok((
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::UPGRADE, "websocket".to_owned()),
            (header::CONNECTION, "Upgrade".to_owned()),
            (header::SEC_WEBSOCKET_ACCEPT, accept),
        ],
        Body::empty(),
    )
        .into_response())
}

/// The key of a WebSocket request: from a header, or from a `ws-token` (which counts
/// against the key's rate limit like a request with the key).
fn authenticate(
    keys: &KeyRing,
    headers: &HeaderMap,
    token: Option<&str>,
) -> ApiResult<Arc<KeyInfo>> {
    let admitted = match (presented_key(headers), token) {
        (Some(secret), _) => keys.authenticate(secret),
        (None, Some(token)) if token.len() <= 256 => {
            keys.by_minted_stream_token(token, TOKEN_TTL_MS)
        }
        _ => Err(Refusal::Invalid),
    };
    admitted.map_err(|refusal| match refusal {
        Refusal::Invalid => ApiError::Unauthorized,
        Refusal::RateLimited { retry_after_secs } => ApiError::TooManyRequests { retry_after_secs },
    })
}

/// Why an opening handshake is refused.
#[derive(Debug, PartialEq, Eq)]
enum Refused {
    /// Not version 13 (answered 426 with the version this server speaks).
    Version,
    Malformed(&'static str),
}

/// `Sec-WebSocket-Accept` for a valid opening handshake, or what is wrong with it.
fn handshake(headers: &HeaderMap) -> Result<String, Refused> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has_token(header::UPGRADE, "websocket") {
        return Err(Refused::Malformed("the Upgrade header must be 'websocket'"));
    }
    if !has_token(header::CONNECTION, "upgrade") {
        return Err(Refused::Malformed(
            "the Connection header must include 'Upgrade'",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err(Refused::Version);
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| BASE64.decode(k).is_ok_and(|raw| raw.len() == 16))
        .ok_or(Refused::Malformed(
            "Sec-WebSocket-Key must be 16 bytes in base64",
        ))?;
    Ok(accept_key(key))
}

/// RFC 6455 §4.2.2: base64 of the SHA-1 of the key and the protocol's GUID.
fn accept_key(key: &str) -> String {
    let digest = Sha1::new()
        .chain_update(key.as_bytes())
        .chain_update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
        .finalize();
    BASE64.encode(digest)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct WsToken {
    /// Pass as `?token=` to `GET /api/v1/sdk/ws`.
    token: String,
    /// RFC 3339; connections must open before then (an open one is not cut off).
    expires_at: String,
    /// The stream's path with the token.
    url: String,
}

#[utoipa::path(post, path = "/api/v1/sdk/ws-token", tag = "evaluation", security(("api_key" = [])),
    responses(super::openapi::errors::EvaluationKey,
        (status = 200, description = "A token that opens `GET /api/v1/sdk/ws` for this key within one minute, for browsers (which cannot set headers on a WebSocket). It grants the key's stream only", body = WsToken,
            example = json!({"token": "vxst.0193a7c2-6a1e-7bb4-9d1c-2f4e8a0b5c6d.1796400060000.9f2c…", "expires_at": "2026-12-04T12:01:00Z", "url": "/api/v1/sdk/ws?token=vxst.0193a7c2-6a1e-7bb4-9d1c-2f4e8a0b5c6d.1796400060000.9f2c…"}))))]
pub(crate) async fn ws_token(key: EvalKey) -> axum::Json<WsToken> {
    let (token, expires_at_ms) = KeyRing::mint_stream_token(&key.0, TOKEN_TTL_MS);
    axum::Json(WsToken {
        url: format!("/api/v1/sdk/ws?token={token}"),
        expires_at: vexil_core::time::format_rfc3339(expires_at_ms),
        token,
    })
}

/// Serves one upgraded connection until the subscription ends, the peer closes, or the
/// connection fails.
async fn serve_socket<T: AsyncRead + AsyncWrite + Unpin>(mut io: T, mut sub: Subscription) {
    let mut inbox: Vec<u8> = Vec::new();
    let (code, reason) = loop {
        inbox.reserve(1024);
        let wake = tokio::select! {
            read = io.read_buf(&mut inbox) => Wake::Read(read),
            next = sub.next() => Wake::Next(next),
        };
        let sent = match wake {
            Wake::Read(Ok(0) | Err(_)) => return,
            Wake::Read(Ok(_)) => {
                match answer(&mut io, &mut inbox).await {
                    Ok(Some(close)) => break close,
                    Ok(None) => Ok(()),
                    // The peer closed (answered) or the connection failed.
                    Err(()) => return,
                }
            }
            Wake::Next(Ok(Item::Event(event))) => write_event(&mut io, &event).await,
            Wake::Next(Ok(Item::Heartbeat)) => write_frame(&mut io, Opcode::Ping, &[]).await,
            Wake::Next(Err(End::Shutdown)) => break (1001, "the server is shutting down"),
            Wake::Next(Err(End::Lagged)) => {
                break (1013, "too far behind: reconnect with last_event_id");
            }
        };
        if sent.is_err() {
            return;
        }
    };
    // Our close: say why, then give the peer a moment to answer before dropping the socket.
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    if write_frame(&mut io, Opcode::Close, &payload).await.is_ok() {
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            loop {
                inbox.reserve(1024);
                match io.read_buf(&mut inbox).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        let mut at = 0;
                        loop {
                            match frame::parse(&inbox[at..]) {
                                Ok(Some((frame::Incoming::Close(_), _))) | Err(_) => return,
                                Ok(Some((_, used))) => at += used,
                                Ok(None) => break,
                            }
                        }
                        inbox.drain(..at);
                    }
                }
            }
        })
        .await;
    }
    let _ = io.shutdown().await;
}

enum Wake {
    Read(io::Result<usize>),
    Next(Result<Item, End>),
}

/// Answers the complete frames in `inbox` and removes them: pongs for pings, our close for
/// theirs (then `Err`), a close for a protocol violation (returned, for the caller to send).
async fn answer<T: AsyncWrite + Unpin>(
    io: &mut T,
    inbox: &mut Vec<u8>,
) -> Result<Option<(u16, &'static str)>, ()> {
    let mut at = 0;
    let outcome = loop {
        match frame::parse(&inbox[at..]) {
            Ok(None) => break Ok(None),
            Ok(Some((incoming, used))) => {
                at += used;
                match incoming {
                    frame::Incoming::Ping(payload) => {
                        write_frame(io, Opcode::Pong, &payload)
                            .await
                            .map_err(drop)?;
                    }
                    frame::Incoming::Pong | frame::Incoming::Data => {}
                    frame::Incoming::Close(code) => {
                        // Echo the peer's code (RFC 6455 §5.5.1), then end.
                        let code = code.unwrap_or(1000);
                        let _ = write_frame(io, Opcode::Close, &code.to_be_bytes()).await;
                        let _ = io.shutdown().await;
                        return Err(());
                    }
                }
            }
            Err(violation) => break Ok(Some((violation.code, violation.reason))),
        }
    };
    // One move per read, however many frames it held.
    inbox.drain(..at);
    // A read buffer grown by a large client frame goes back to small.
    if inbox.is_empty() && inbox.capacity() > 4096 {
        *inbox = Vec::new();
    }
    outcome
}

#[derive(Debug, Clone, Copy)]
enum Opcode {
    Text = 0x1,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

/// A final, unmasked server frame header for a payload of `len` bytes.
fn frame_header(opcode: Opcode, len: usize) -> Vec<u8> {
    let mut header = Vec::with_capacity(10);
    header.push(0x80 | opcode as u8);
    match len {
        0..=125 => header.push(len as u8),
        126..=0xFFFF => {
            header.push(126);
            header.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            header.push(127);
            header.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    header
}

async fn write_frame<T: AsyncWrite + Unpin>(
    io: &mut T,
    opcode: Opcode,
    payload: &[u8],
) -> io::Result<()> {
    let mut frame = frame_header(opcode, payload.len());
    frame.extend_from_slice(payload);
    io.write_all(&frame).await?;
    io.flush().await
}

/// One event as a text message `{"event":…,"id":…,"data":…}`: its header and prefix are
/// the connection's own; its data is written from the shared buffer.
async fn write_event<T: AsyncWrite + Unpin>(io: &mut T, event: &StreamEvent) -> io::Result<()> {
    let prefix = format!(r#"{{"event":"{}","id":{},"data":"#, event.name, event.id);
    let len = prefix.len() + event.data.len() + 1;
    let mut head = frame_header(Opcode::Text, len);
    head.extend_from_slice(prefix.as_bytes());
    if event.data.len() <= COPY_LIMIT {
        head.extend_from_slice(&event.data);
        head.push(b'}');
        io.write_all(&head).await?;
    } else {
        io.write_all(&head).await?;
        for piece in event.data.chunks(MAX_CHUNK) {
            io.write_all(piece).await?;
        }
        io.write_all(b"}").await?;
    }
    io.flush().await
}

/// Reading client frames (RFC 6455 §5.2).
mod frame {
    use super::MAX_INCOMING;
    use axum::body::Bytes;

    /// A complete frame from the client.
    #[derive(Debug, PartialEq, Eq)]
    pub(super) enum Incoming {
        Ping(Bytes),
        Pong,
        /// With the status code, if the frame has one.
        Close(Option<u16>),
        /// Text, binary or continuation: not used by this stream, so dropped.
        Data,
    }

    /// Why the socket must close: the close code and a reason.
    #[derive(Debug, PartialEq, Eq)]
    pub(super) struct Violation {
        pub(super) code: u16,
        pub(super) reason: &'static str,
    }

    fn protocol(reason: &'static str) -> Violation {
        Violation { code: 1002, reason }
    }

    /// Close codes a peer may send (RFC 6455 §7.4).
    fn valid_close_code(code: u16) -> bool {
        matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
    }

    /// The first complete frame of `buf` and its length in bytes; `None` until one has
    /// arrived. Only control frames (at most 125 bytes) are unmasked; data is skipped.
    pub(super) fn parse(buf: &[u8]) -> Result<Option<(Incoming, usize)>, Violation> {
        let [b0, b1, ..] = buf[..] else {
            return Ok(None);
        };
        if b0 & 0x70 != 0 {
            return Err(protocol("reserved bits are set"));
        }
        if b1 & 0x80 == 0 {
            return Err(protocol("client frames must be masked"));
        }
        let opcode = b0 & 0x0F;
        let (len, at) = match b1 & 0x7F {
            126 => match buf.get(2..4) {
                Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
                None => return Ok(None),
            },
            127 => match buf.get(2..10) {
                Some(b) => (u64::from_be_bytes(b.try_into().expect("8 bytes")), 10),
                None => return Ok(None),
            },
            n => (u64::from(n), 2),
        };
        if opcode & 0x08 != 0 && (b0 & 0x80 == 0 || len > 125) {
            return Err(protocol(
                "control frames must be whole and at most 125 bytes",
            ));
        }
        if len > MAX_INCOMING as u64 {
            return Err(Violation {
                code: 1009,
                reason: "client frames are limited to 8 KiB",
            });
        }
        let total = at + 4 + len as usize;
        let Some(frame) = buf.get(..total) else {
            return Ok(None);
        };
        let incoming = match opcode {
            0x0..=0x2 => Incoming::Data,
            0x8..=0xA => {
                let mask = &frame[at..at + 4];
                let payload: Vec<u8> = frame[at + 4..]
                    .iter()
                    .enumerate()
                    .map(|(i, byte)| byte ^ mask[i % 4])
                    .collect();
                match opcode {
                    0x8 => close(&payload)?,
                    0x9 => Incoming::Ping(Bytes::from(payload)),
                    _ => Incoming::Pong,
                }
            }
            _ => return Err(protocol("unknown opcode")),
        };
        Ok(Some((incoming, total)))
    }

    /// A close frame's payload: nothing, or a code a peer may send and a UTF-8 reason.
    fn close(payload: &[u8]) -> Result<Incoming, Violation> {
        match payload {
            [] => Ok(Incoming::Close(None)),
            [_] => Err(protocol("a close frame's code must be two bytes")),
            [hi, lo, reason @ ..] => {
                let code = u16::from_be_bytes([*hi, *lo]);
                if !valid_close_code(code) {
                    return Err(protocol("a close code that may not be sent"));
                }
                if std::str::from_utf8(reason).is_err() {
                    return Err(Violation {
                        code: 1007,
                        reason: "a close reason must be UTF-8",
                    });
                }
                Ok(Incoming::Close(Some(code)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::frame::{Incoming, Violation, parse};
    use super::*;
    use axum::body::Bytes;

    #[test]
    fn the_accept_key_is_rfc_6455s_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn masked_client_frames_are_read_whole() {
        // RFC 6455 §5.7: a masked "Hello", then a masked ping "Hello", split over reads.
        let hello = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let ping = [
            0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(parse(&hello[..4]), Ok(None));
        let mut buf = hello.to_vec();
        buf.extend_from_slice(&ping[..3]);
        assert_eq!(parse(&buf), Ok(Some((Incoming::Data, 11))));
        assert_eq!(parse(&buf[11..]), Ok(None));
        buf.extend_from_slice(&ping[3..]);
        assert_eq!(
            parse(&buf[11..]),
            Ok(Some((Incoming::Ping(Bytes::from_static(b"Hello")), 11)))
        );
        // A close with code 1000 and a reason, and a masked 16-bit length frame of 200 bytes.
        let close = [0x88, 0x84, 0, 0, 0, 0, 0x03, 0xE8, b'o', b'k'];
        assert_eq!(parse(&close), Ok(Some((Incoming::Close(Some(1000)), 10))));
        let mut long = vec![0x82, 0xFE, 0x00, 0xC8, 1, 2, 3, 4];
        long.extend_from_slice(&[0u8; 200]);
        assert_eq!(parse(&long), Ok(Some((Incoming::Data, 208))));
    }

    #[test]
    fn protocol_violations_close_the_socket() {
        let code = |bytes: &[u8]| parse(bytes).map_err(|v: Violation| v.code);
        assert_eq!(
            code(&[0x81, 0x05, b'H', b'e', b'l', b'l', b'o']),
            Err(1002),
            "unmasked"
        );
        assert_eq!(code(&[0xC1, 0x80, 0, 0, 0, 0]), Err(1002), "reserved bit");
        assert_eq!(
            code(&[0x09, 0x80, 0, 0, 0, 0]),
            Err(1002),
            "fragmented ping"
        );
        assert_eq!(code(&[0x83, 0x80, 0, 0, 0, 0]), Err(1002), "unknown opcode");
        assert_eq!(
            code(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xED]),
            Err(1002),
            "close code 1005"
        );
        assert_eq!(
            code(&[0x88, 0x83, 0, 0, 0, 0, 0x03, 0xE8, 0xFF]),
            Err(1007),
            "reason not UTF-8"
        );
        let mut huge = vec![0x82, 0xFF];
        huge.extend_from_slice(&(1u64 << 20).to_be_bytes());
        assert_eq!(code(&huge), Err(1009), "over 8 KiB");
    }

    #[test]
    fn a_token_is_signed_with_a_key_nobody_is_given() {
        // The OFREP stream token is published in every bulk answer; a token signed with it
        // (or lasting longer than a minute) opens nothing.
        let ring = KeyRing::new(None);
        let key = ring.insert_for_tests("key-1", "vx_srv_secret");
        let (token, _) = KeyRing::mint_stream_token(&key, TOKEN_TTL_MS);
        assert_eq!(
            ring.by_minted_stream_token(&token, TOKEN_TTL_MS)
                .map(|k| k.id.clone())
                .ok(),
            Some("key-1".into())
        );
        let forge = |signing: &str, expires_at_ms: i64| {
            let claim = format!("vxst.key-1.{expires_at_ms}");
            let mac = crate::credentials::hmac_sha256(signing.as_bytes(), claim.as_bytes());
            format!("{claim}.{}", hex::encode(mac))
        };
        let in_a_minute = crate::clock::now_ms() + 30_000;
        assert!(
            ring.by_minted_stream_token(&forge(&key.stream_token, in_a_minute), TOKEN_TTL_MS)
                .is_err()
        );
        let (long, _) = KeyRing::mint_stream_token(&key, 3_600_000);
        assert!(
            ring.by_minted_stream_token(&long, TOKEN_TTL_MS).is_err(),
            "too long-lived"
        );
        let (old, _) = KeyRing::mint_stream_token(&key, -1);
        assert!(
            ring.by_minted_stream_token(&old, TOKEN_TTL_MS).is_err(),
            "expired"
        );
        let altered = token.replacen("vxst.key-1.", "vxst.key-1.9", 1);
        assert!(ring.by_minted_stream_token(&altered, TOKEN_TTL_MS).is_err());
    }

    #[test]
    fn server_frames_carry_their_length() {
        assert_eq!(frame_header(Opcode::Text, 5), [0x81, 5]);
        assert_eq!(frame_header(Opcode::Text, 300), [0x81, 126, 1, 44]);
        assert_eq!(
            frame_header(Opcode::Text, 70_000),
            [0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]
        );
    }
}
