//! The accept loop: HTTP/1.1 connections served by hyper with a header-read timeout (a
//! client that trickles its headers is cut off instead of holding a socket) and a limit
//! on simultaneous connections (beyond it, connections wait in the listen backlog instead
//! of exhausting the process's file descriptors), a send timeout (a client that stops
//! reading a response — a stalled SSE subscriber — is disconnected instead of holding its
//! buffers), then a graceful drain on shutdown. A connection upgraded to WebSocket keeps
//! its place under the limit, and its send timeout, until its socket closes.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

/// File descriptors kept for everything but client connections: the database pool, the
/// SQLite files, logs, the listener itself.
const RESERVED_DESCRIPTORS: usize = 128;

/// How long a write may wait for the client to take data (its receive window full) before
/// the connection is closed. Progress of any size restarts it, so a slow reader is kept; a
/// client that stopped reading is dropped (an SSE subscriber reconnects and resumes).
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// How the accept loop treats connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_connections: usize,
    pub(crate) header_read_timeout: Duration,
}

impl Limits {
    /// From the configuration; `max_connections` 0 means what the open-file limit allows.
    pub(crate) fn from_config(config: &crate::Config) -> Limits {
        let max_connections = match config.max_connections {
            0 => open_file_limit()
                .map_or(1024, |n| n.saturating_sub(RESERVED_DESCRIPTORS))
                .max(16),
            n => n,
        };
        Limits {
            max_connections,
            header_read_timeout: Duration::from_secs(config.header_read_timeout.max(1)),
        }
    }
}

/// The soft limit on open files (Linux: from `/proc/self/limits`).
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.split_whitespace().nth(3)?;
    if soft == "unlimited" {
        return Some(usize::MAX / 2);
    }
    soft.parse().ok()
}

/// Serves `router` on `listener` until `stop` turns true, then stops accepting, asks every
/// connection to finish its current request, and waits for them.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    tracing::info!(
        max_connections = limits.max_connections,
        header_read_timeout_s = limits.header_read_timeout.as_secs(),
        "accepting connections"
    );
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (drain, draining) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut warned_full = false;
    loop {
        // Reap finished connection tasks so that the set does not grow without bound.
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("never closed"),
            () = turned_true(&mut stop) => break,
        };
        if slots.available_permits() == 0 && !warned_full {
            warned_full = true;
            tracing::warn!(
                max_connections = limits.max_connections,
                "connection limit reached: new connections wait until others close"
            );
        } else if slots.available_permits() > limits.max_connections / 10 {
            warned_full = false;
        }
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: back off
                    // briefly instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = turned_true(&mut stop) => break,
        };
        let _ = stream.set_nodelay(true);
        // The connection's slot, also handed to a request that upgrades (WebSocket), whose
        // socket outlives hyper's connection task.
        let slot = ConnectionSlot {
            _permit: Arc::new(permit),
        };
        let request_slot = slot.clone();
        let service = router
            .clone()
            .map_request(move |mut req: axum::http::Request<Incoming>| {
                req.extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(remote));
                req.extensions_mut().insert(request_slot.clone());
                req
            });
        let mut draining = draining.clone();
        connections.spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let connection = builder
                .serve_connection(
                    TokioIo::new(SendTimeout::new(stream, SEND_TIMEOUT)),
                    TowerToHyperService::new(service),
                )
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => log_end(result),
                () = turned_true(&mut draining) => {
                    connection.as_mut().graceful_shutdown();
                    log_end(connection.await);
                }
            }
        });
    }
    drop(listener);
    let _ = drain.send(true);
    while connections.join_next().await.is_some() {}
}

/// A connection's place under the connection limit, held until the connection closes.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionSlot {
    _permit: Arc<tokio::sync::OwnedSemaphorePermit>,
}

/// Waits until the flag is true (or its sender is gone), holding no borrow afterwards.
async fn turned_true(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|v| *v).await;
}

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        // Timeouts, resets and malformed requests: routine on the open internet.
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// An I/O stream whose writes fail with `TimedOut` once they have waited `timeout` for the
/// peer without progress.
pub(crate) struct SendTimeout<T> {
    io: T,
    timeout: Duration,
    /// Running while a write waits (dropped on progress: an idle connection holds none).
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> SendTimeout<T> {
    pub(crate) fn new(io: T, timeout: Duration) -> SendTimeout<T> {
        SendTimeout {
            io,
            timeout,
            timer: None,
        }
    }

    /// Passes a write's outcome through, timing how long it has been pending.
    fn watch<R>(
        &mut self,
        cx: &mut Context<'_>,
        outcome: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if outcome.is_ready() {
            self.timer = None;
            return outcome;
        }
        let timeout = self.timeout;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for SendTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SendTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, outcome)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, outcome)
    }

    /// Forwarded: hyper queues response chunks (shared `Bytes`) instead of copying them
    /// into one buffer only when the stream writes vectored.
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outcome = Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, outcome)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outcome = Pin::new(&mut self.io).poll_shutdown(cx);
        self.watch(cx, outcome)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt as _;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_times_the_write_out() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut io = SendTimeout::new(near, Duration::from_secs(60));
        let chunk = [0u8; 1024];
        io.write_all(&chunk).await.unwrap(); // the pipe is full
        // A slow reader is kept: every bit of progress restarts the wait.
        for _ in 0..3 {
            let reader = async {
                tokio::time::sleep(Duration::from_secs(50)).await;
                let mut sink = [0u8; 1024];
                tokio::io::AsyncReadExt::read_exact(&mut far, &mut sink).await
            };
            let (written, read) = tokio::join!(io.write_all(&chunk), reader);
            written.unwrap();
            read.unwrap();
        }
        // Nobody reads any more: the write gives up after the timeout.
        let started = tokio::time::Instant::now();
        let err = io.write_all(&chunk).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(60) && waited < Duration::from_secs(61),
            "{waited:?}"
        );
    }
}
