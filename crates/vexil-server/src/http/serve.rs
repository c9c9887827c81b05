//! The accept loop: HTTP/1.1 connections served by hyper with a header-read timeout (a
//! client that trickles its headers is cut off instead of holding a socket) and a limit
//! on simultaneous connections (beyond it, connections wait in the listen backlog instead
//! of exhausting the process's file descriptors), then a graceful drain on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

/// File descriptors kept for everything but client connections: the database pool, the
/// SQLite files, logs, the listener itself.
const RESERVED_DESCRIPTORS: usize = 128;

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
        let service = router
            .clone()
            .map_request(move |mut req: axum::http::Request<Incoming>| {
                req.extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(remote));
                req
            });
        let mut draining = draining.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let connection = builder
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
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
