//! flagd's evaluation protocol over gRPC (`--grpc-listen`, off by default): the services
//! `flagd.evaluation.v1.Service` and `flagd.evaluation.v2.Service`, so that flagd's
//! OpenFeature providers in RPC mode evaluate against Vexil unmodified. A transport like
//! `http/`: it reads the in-memory snapshots and key ring, never the store. See
//! docs/grpc.md.
//!
//! `resolve.rs` authenticates a call and evaluates one flag or all of them; `events.rs`
//! is `EventStream`; `service.rs` implements both protocol versions over them;
//! `convert.rs` turns `google.protobuf.Struct` into JSON and back; `listen.rs` accepts
//! connections within a bound.

mod convert;
mod events;
mod listen;
mod resolve;
mod service;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
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

/// Event streams open at once for one API key, so that one key cannot take them all.
const MAX_EVENT_STREAMS_PER_KEY: usize = 1_000;

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
    /// Event streams open per API key id.
    streams_per_key: Arc<PerKey>,
    keep_alive: Duration,
}

/// Counts of open event streams by API key id (a std mutex: held for one map update).
#[derive(Debug, Default)]
struct PerKey {
    open: Mutex<HashMap<String, usize>>,
}

impl PerKey {
    /// A slot for one more stream of `key_id`, unless it already has `max` open.
    fn take(self: &Arc<PerKey>, key_id: &str, max: usize) -> Option<KeySlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(key_id.to_owned()).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(KeySlot {
            per_key: self.clone(),
            key_id: key_id.to_owned(),
        })
    }
}

/// One open stream of a key: given back when dropped.
#[derive(Debug)]
struct KeySlot {
    per_key: Arc<PerKey>,
    key_id: String,
}

impl Drop for KeySlot {
    fn drop(&mut self) {
        let mut open = self.per_key.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.key_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key_id);
            }
        }
    }
}

/// Held while an event stream lives: its place within the server's bound and its key's.
#[derive(Debug)]
pub(crate) struct StreamSlot {
    _server: OwnedSemaphorePermit,
    _key: KeySlot,
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
            streams_per_key: Arc::default(),
            keep_alive: KEEP_ALIVE,
        }
    }

    /// The event stream of `key`, within the bounds on open streams (the server's and the
    /// key's).
    fn events(
        &self,
        key: Arc<KeyInfo>,
    ) -> Result<impl futures_util::Stream<Item = events::Event> + Send + 'static, Status> {
        let key_slot = self
            .streams_per_key
            .take(&key.id, MAX_EVENT_STREAMS_PER_KEY)
            .ok_or_else(|| {
                Status::resource_exhausted(
                    "too many event streams are open for this API key; retry later",
                )
            })?;
        let permit = self
            .event_streams
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                Status::resource_exhausted("too many event streams are open; retry later")
            })?;
        Ok(events::stream(
            self.snapshots.clone(),
            self.keys.clone(),
            key,
            self.shutdown.clone(),
            self.keep_alive,
            StreamSlot {
                _server: permit,
                _key: key_slot,
            },
        ))
    }
}

/// Serves both protocol versions on `listener` until the shutdown signal flips: then it
/// stops accepting, ends the event streams and lets calls in flight finish (the caller
/// bounds that wait). At most `limits.max_connections` connections are open at once (the
/// HTTP listener's bound, counted apart); one that sends nothing within
/// `limits.header_read_timeout` is closed.
pub(crate) async fn serve(listener: TcpListener, grpc: Grpc, limits: crate::http::serve::Limits) {
    let mut stop = grpc.shutdown.clone();
    let v1 = v1::service_server::ServiceServer::new(grpc.clone())
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let v2 =
        v2::service_server::ServiceServer::new(grpc).max_decoding_message_size(MAX_MESSAGE_BYTES);
    let incoming = listen::incoming(listener, limits.max_connections, limits.header_read_timeout);
    let served = tonic::transport::Server::builder()
        .max_concurrent_streams(Some(MAX_CALLS_PER_CONNECTION))
        // Pings find peers that vanished without closing (or stopped answering), so their
        // connections close and their streams end.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_holds_at_most_its_share_of_event_streams() {
        let per_key = Arc::new(PerKey::default());
        let held: Vec<_> = (0..3).map(|_| per_key.take("k1", 3).unwrap()).collect();
        assert!(per_key.take("k1", 3).is_none());
        // Another key is not affected.
        let other = per_key.take("k2", 3).unwrap();
        drop(held);
        assert!(per_key.take("k1", 3).is_some());
        drop(other);
        assert!(per_key.open.lock().unwrap().is_empty());
    }
}
