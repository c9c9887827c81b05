//! The gRPC listener's connections: at most a fixed number open at once (the next waits
//! in the kernel's backlog until one closes), a deadline for the client's first bytes (its
//! HTTP/2 preface), and a short pause after a failed accept (out of descriptors) instead
//! of a hot retry loop.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// How long to wait after a failed accept before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// One accepted connection, holding its place within the bound until it closes.
pub(crate) struct Conn {
    stream: TcpStream,
    /// Until the first bytes arrive: when the client must have started talking.
    first_bytes: Option<Pin<Box<Sleep>>>,
    _permit: OwnedSemaphorePermit,
}

/// The connections accepted on `listener`, at most `max` open at once; each must send its
/// first bytes within `first_bytes`. The stream never yields an error (tonic would retry
/// at once): a failed accept is logged and retried after a pause.
pub(crate) fn incoming(
    listener: TcpListener,
    max: usize,
    first_bytes: Duration,
) -> impl Stream<Item = io::Result<Conn>> + Send + 'static {
    let slots = Arc::new(Semaphore::new(max.max(1)));
    let state = (listener, slots, false);
    futures_util::stream::unfold(state, move |(listener, slots, mut warned)| async move {
        let permit = slots.clone().acquire_owned().await.ok()?;
        if slots.available_permits() == 0 && !warned {
            warned = true;
            tracing::warn!(
                max_connections = max,
                "gRPC connection limit reached: new connections wait until others close"
            );
        } else if slots.available_permits() > max / 10 {
            warned = false;
        }
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    // Small answers are sent at once rather than held for more to coalesce.
                    let _ = stream.set_nodelay(true);
                    let conn = Conn {
                        stream,
                        first_bytes: Some(Box::pin(tokio::time::sleep(first_bytes))),
                        _permit: permit,
                    };
                    return Some((Ok(conn), (listener, slots, warned)));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a gRPC connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    })
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        if let Some(deadline) = &mut this.first_bytes {
            match &read {
                Poll::Ready(Ok(())) if buf.filled().len() > before => this.first_bytes = None,
                Poll::Pending if deadline.as_mut().poll(cx).is_ready() => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client sent nothing in time",
                    )));
                }
                _ => {}
            }
        }
        read
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}
