//! A TCP proxy between the SDK and the server that a test can break on purpose: cut a
//! stream in the middle of an event, refuse every connection (a network partition), hold
//! requests unanswered (a hung server), or answer the stream endpoint with 404 (a proxy
//! that does not pass SSE). It records the
//! request heads it forwards, so tests can check what the SDK sent (`Last-Event-ID`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Forward,
    /// Accept and close at once: the server looks unreachable.
    Refuse,
    /// Read the request and never answer, until the mode becomes `Refuse` (which closes
    /// the held connections): a server that hangs.
    Hold,
    /// `404` for `GET /api/v1/sdk/stream`; everything else is forwarded.
    RejectStreams,
}

/// Cut the stream connection in the middle of the `nth` occurrence of `pattern`'s event.
struct Cut {
    pattern: Vec<u8>,
    remaining: usize,
}

struct State {
    upstream: SocketAddr,
    mode: Mutex<Mode>,
    cut: Mutex<Option<Cut>>,
    cuts: AtomicUsize,
    heads: Mutex<Vec<String>>,
    live: Mutex<Vec<AbortHandle>>,
}

pub(crate) struct Proxy {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.kill_connections();
    }
}

impl Proxy {
    pub(crate) async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(State {
            upstream,
            mode: Mutex::new(Mode::Forward),
            cut: Mutex::new(None),
            cuts: AtomicUsize::new(0),
            heads: Mutex::new(Vec::new()),
            live: Mutex::new(Vec::new()),
        });
        let accept_state = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let state = accept_state.clone();
                let conn = tokio::spawn(async move { handle(socket, state).await });
                let mut live = accept_state.live.lock().unwrap();
                live.retain(|h| !h.is_finished());
                live.push(conn.abort_handle());
            }
        });
        Proxy { addr, state, task }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
        if mode == Mode::Refuse {
            self.kill_connections();
        }
    }

    /// Arms a cut: the stream connection is closed after forwarding part of the event in
    /// which `pattern` occurs for the `nth` time (1-based) from now.
    pub(crate) fn cut_at(&self, pattern: &str, nth: usize) {
        *self.state.cut.lock().unwrap() = Some(Cut {
            pattern: pattern.as_bytes().to_vec(),
            remaining: nth,
        });
    }

    /// How many cuts were made.
    pub(crate) fn cuts(&self) -> usize {
        self.state.cuts.load(Ordering::SeqCst)
    }

    /// The request heads forwarded so far (request line and headers).
    pub(crate) fn heads(&self) -> Vec<String> {
        self.state.heads.lock().unwrap().clone()
    }

    fn kill_connections(&self) {
        for conn in self.state.live.lock().unwrap().drain(..) {
            conn.abort();
        }
    }
}

async fn handle(mut client: TcpStream, state: Arc<State>) {
    let mode = *state.mode.lock().unwrap();
    if mode == Mode::Refuse {
        return;
    }
    // The request head (the SDK sends GETs without bodies).
    let mut head = Vec::new();
    let mut buf = [0u8; 8192];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let is_stream = text.starts_with("GET /api/v1/sdk/stream");
    state.heads.lock().unwrap().push(text);
    if mode == Mode::Hold {
        // Until `set_mode(Refuse)` aborts this task, which closes the connection.
        std::future::pending::<()>().await;
    }
    if mode == Mode::RejectStreams && is_stream {
        let _ = client
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(state.upstream).await else {
        return;
    };
    // One request per connection, so that every request passes through this inspection.
    let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
        return;
    };
    let mut forwarded = head[..end].to_vec();
    forwarded.extend_from_slice(b"\r\nconnection: close\r\n\r\n");
    forwarded.extend_from_slice(&head[end + 4..]);
    if upstream.write_all(&forwarded).await.is_err() {
        return;
    }
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_upstream, mut to_upstream) = upstream.into_split();
    let up = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_client, &mut to_upstream).await;
    });
    loop {
        let n = match from_upstream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let cut_at = if is_stream {
            cut_position(&state, chunk)
        } else {
            None
        };
        if let Some(at) = cut_at {
            let _ = to_client.write_all(&chunk[..at]).await;
            let _ = to_client.flush().await;
            state.cuts.fetch_add(1, Ordering::SeqCst);
            break;
        }
        if to_client.write_all(chunk).await.is_err() {
            break;
        }
    }
    up.abort();
}

/// Where to cut `chunk`, if the armed cut's occurrence is in it: a few bytes into the
/// event's `data:` line, so that the event is incomplete.
fn cut_position(state: &State, chunk: &[u8]) -> Option<usize> {
    let mut guard = state.cut.lock().unwrap();
    let cut = guard.as_mut()?;
    let mut from = 0;
    while let Some(i) = find(&chunk[from..], &cut.pattern) {
        let at = from + i;
        cut.remaining -= 1;
        if cut.remaining == 0 {
            *guard = None;
            let data = find(&chunk[at..], b"data:").map_or(at + 1, |d| at + d + 12);
            return Some(data.min(chunk.len().saturating_sub(1)));
        }
        from = at + 1;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
