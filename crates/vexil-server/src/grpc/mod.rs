//! flagd's evaluation protocol over gRPC (`--grpc-listen`, off by default): the services
//! `flagd.evaluation.v1.Service` and `flagd.evaluation.v2.Service`, so that flagd's
//! OpenFeature providers in RPC mode evaluate against Vexil unmodified. A transport like
//! `http/`: it reads the in-memory snapshots and key ring, never the store. See
//! docs/grpc.md.
//!
//! `resolve.rs` authenticates a call and evaluates one flag or all of them; `events.rs`
//! is `EventStream`; `service.rs` implements both protocol versions over them;
//! `convert.rs` turns `google.protobuf.Struct` into JSON and back.

mod convert;
mod events;
mod resolve;
mod service;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tonic::Status;

use crate::keys::{KeyInfo, KeyRing};
use crate::snapshots::Snapshots;

/// The code generated from `proto/flagd/evaluation/v1/evaluation.proto`.
#[allow(unreachable_pub, clippy::all, clippy::pedantic)]
mod v1 {
    include!(concat!(env!("OUT_DIR"), "/server/flagd.evaluation.v1.rs"));
}

/// The code generated from `proto/flagd/evaluation/v2/evaluation.proto`.
#[allow(unreachable_pub, clippy::all, clippy::pedantic)]
mod v2 {
    include!(concat!(env!("OUT_DIR"), "/server/flagd.evaluation.v2.rs"));
}

/// The largest request message accepted (as the HTTP API's body limit).
const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Calls open at once on one connection (HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`).
const MAX_CALLS_PER_CONNECTION: u32 = 256;

/// Event streams open at once on this server; one more is refused with
/// `RESOURCE_EXHAUSTED` (its provider retries).
const MAX_EVENT_STREAMS: usize = 10_000;

/// A quiet event stream sends `keep_alive` this often.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What every call reads: the evaluation plane's in-memory state.
#[derive(Debug, Clone)]
pub(crate) struct Grpc {
    snapshots: Arc<Snapshots>,
    keys: Arc<KeyRing>,
    /// The key of callers that present none (`--grpc-default-key`).
    default_key: Option<Arc<SecretString>>,
    shutdown: watch::Receiver<bool>,
    event_streams: Arc<Semaphore>,
    keep_alive: Duration,
}

impl Grpc {
    pub(crate) fn new(
        snapshots: Arc<Snapshots>,
        keys: Arc<KeyRing>,
        default_key: Option<SecretString>,
        shutdown: watch::Receiver<bool>,
    ) -> Grpc {
        Grpc {
            snapshots,
            keys,
            default_key: default_key.map(Arc::new),
            shutdown,
            event_streams: Arc::new(Semaphore::new(MAX_EVENT_STREAMS)),
            keep_alive: KEEP_ALIVE,
        }
    }

    /// The event stream of `key`, within the bound on open streams.
    fn events(
        &self,
        key: Arc<KeyInfo>,
    ) -> Result<impl futures_util::Stream<Item = events::Event> + Send + 'static, Status> {
        let permit = self
            .event_streams
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                Status::resource_exhausted("too many event streams are open; retry later")
            })?;
        Ok(events::stream(
            self.snapshots.clone(),
            key,
            self.shutdown.clone(),
            self.keep_alive,
            permit,
        ))
    }
}

/// Serves both protocol versions on `listener` until the shutdown signal flips: then it
/// stops accepting, ends the event streams and lets calls in flight finish.
pub(crate) async fn serve(listener: TcpListener, grpc: Grpc) {
    let mut stop = grpc.shutdown.clone();
    let v1 = v1::service_server::ServiceServer::new(grpc.clone())
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let v2 =
        v2::service_server::ServiceServer::new(grpc).max_decoding_message_size(MAX_MESSAGE_BYTES);
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
        if let Ok(stream) = &conn {
            // Small answers are sent at once rather than held for more to coalesce.
            let _ = stream.set_nodelay(true);
        }
        conn
    });
    let served = tonic::transport::Server::builder()
        .max_concurrent_streams(Some(MAX_CALLS_PER_CONNECTION))
        // Pings find peers that vanished without closing, so their streams end.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .add_service(v1)
        .add_service(v2)
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stop.wait_for(|stopping| *stopping).await;
        })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "the gRPC server failed");
    }
}
