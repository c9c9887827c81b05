//! The background task that keeps the client's data current: a first fetch of
//! `/api/v1/sdk/config`, then the SSE stream resumed with `Last-Event-ID`; reconnection with
//! exponential backoff and jitter; polling (`If-None-Match`) when streaming is disabled or
//! keeps failing while the config endpoint works; last known good data throughout. It is
//! the only writer of the client's snapshot and status.

mod backoff;
pub(crate) mod http;
mod stream;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::watch;

use crate::builder::Options;
use crate::events::ClientEvent;
use crate::sse::SseParser;
use crate::status::State;
use crate::store::Store;
use backoff::Backoff;
use http::{Fetched, Http, SyncError};
use stream::{Cursor, Resync};

/// How long the rest of an update may take to arrive before the cursor resyncs.
const UPDATE_GAP: Duration = Duration::from_secs(2);

/// How a stream connection ended.
enum StreamEnd {
    /// The data cannot be trusted: fetch it whole.
    Resync(String),
    /// The connection failed or closed.
    Closed {
        /// Some bytes arrived (an event or a heartbeat): streaming works.
        received: bool,
        /// How long it was connected, if it was.
        connected_for: Option<Duration>,
        error: Option<SyncError>,
    },
}

/// How many consecutive fetches must answer an older version before the client follows.
const OLDER_ANSWERS_ACCEPTED: u32 = 3;

pub(crate) struct SyncTask {
    store: Store,
    http: Http,
    opts: Options,
    cursor: Cursor,
    backoff: Backoff,
    /// Consecutive failures have been logged at `warn` already.
    warned: bool,
    /// Consecutive fetches that answered an older version than the one held.
    older_answers: u32,
}

impl SyncTask {
    pub(crate) fn new(store: Store, http: Http, opts: Options) -> SyncTask {
        let backoff = Backoff::new(opts.initial_backoff, opts.max_backoff);
        SyncTask {
            store,
            http,
            opts,
            cursor: Cursor::default(),
            backoff,
            warned: false,
            older_answers: 0,
        }
    }

    /// Runs until `shutdown` says so (or its sender is dropped with the client).
    pub(crate) async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        tokio::select! {
            () = self.run_loop() => {}
            _ = shutdown.wait_for(|closed| *closed) => {}
        }
        let state = if self.store.version().is_some() {
            State::Stale
        } else {
            State::NotReady
        };
        self.set_status(state, "client closed", false);
        tracing::debug!("vexil client closed");
    }

    async fn run_loop(&mut self) {
        let mut need_fetch = true;
        let mut full_fetch = false;
        let mut stream_failures = 0u32;
        let mut polling_since = (!self.opts.stream).then(Instant::now);
        loop {
            if need_fetch {
                match self.fetch(full_fetch).await {
                    Ok(()) => {
                        need_fetch = false;
                        full_fetch = false;
                    }
                    Err(e) => {
                        self.failed(&e);
                        tokio::time::sleep(self.backoff.next_delay()).await;
                        continue;
                    }
                }
            }
            let stream_now = self.opts.stream
                && polling_since.is_none_or(|t| t.elapsed() >= self.opts.stream_retry_after);
            if !stream_now {
                let reason = if self.opts.stream {
                    "polling (streaming unavailable)"
                } else {
                    "polling"
                };
                self.set_status(State::Ready, reason, false);
                tokio::time::sleep(self.opts.poll_interval).await;
                need_fetch = true;
                continue;
            }
            if polling_since.take().is_some() {
                stream_failures = 0;
            }
            match self.stream().await {
                StreamEnd::Resync(reason) => {
                    tracing::warn!(reason = %reason, "vexil stream out of sync; fetching the whole ruleset");
                    need_fetch = true;
                    full_fetch = true;
                    // A server that keeps sending what cannot be applied is not hammered.
                    if self.backoff.failures() > 0 {
                        tokio::time::sleep(self.backoff.next_delay()).await;
                    } else {
                        self.backoff.next_delay();
                    }
                }
                StreamEnd::Closed {
                    received,
                    connected_for,
                    error,
                } => {
                    let healthy = received
                        && connected_for.is_some_and(|d| d >= self.opts.backoff_reset_after);
                    if healthy {
                        self.backoff.reset();
                    }
                    stream_failures = if received { 0 } else { stream_failures + 1 };
                    // A stream failure alone does not make the data stale: the conditional
                    // fetch that follows (after the backoff) tells whether the server is
                    // reachable. Only a rejected key is final enough to report at once.
                    match &error {
                        Some(e) if e.key_rejected() => self.failed(e),
                        Some(e) => tracing::debug!(error = %e, "vexil stream interrupted"),
                        None => tracing::debug!("vexil stream closed by the server"),
                    }
                    if stream_failures >= self.opts.stream_failures_before_polling {
                        tracing::warn!(
                            failures = stream_failures,
                            poll_interval = ?self.opts.poll_interval,
                            "vexil streaming unavailable; polling instead"
                        );
                        polling_since = Some(Instant::now());
                        need_fetch = true;
                        continue;
                    }
                    if healthy {
                        // A long-lived stream ended (e.g. the server restarted): reconnect
                        // at once, resuming where it stopped.
                        continue;
                    }
                    tokio::time::sleep(self.backoff.next_delay()).await;
                    // Before streaming again, check the server with a cheap conditional
                    // fetch: it decides between Ready and Stale while the stream is down.
                    need_fetch = true;
                }
            }
        }
    }

    /// Fetches the config (conditionally, unless `full`) and loads it.
    async fn fetch(&mut self, full: bool) -> Result<(), SyncError> {
        let known = if full { None } else { self.cursor.confirmed };
        match self.http.fetch_config(known).await? {
            Fetched::NotModified => {}
            Fetched::Ruleset(ruleset) => {
                // An older version is most likely a cluster node that has not caught up:
                // keep the newer data and ask again. Only an older version that persists (a
                // database restored from a backup) replaces it.
                if let Some(held) = self.store.version()
                    && ruleset.version < held
                {
                    self.older_answers += 1;
                    if self.older_answers < OLDER_ANSWERS_ACCEPTED {
                        return Err(SyncError::Invalid(format!(
                            "version {} is older than the {held} held; asking again",
                            ruleset.version
                        )));
                    }
                    tracing::warn!(
                        held,
                        version = ruleset.version,
                        "the server went back to an older ruleset; following it"
                    );
                }
                self.older_answers = 0;
                self.store
                    .replace(&ruleset)
                    .map_err(|e| SyncError::Invalid(format!("ruleset does not validate: {e}")))?;
                self.cursor.loaded(ruleset.version);
            }
        }
        self.recovered();
        let reason = if self.opts.stream {
            "ruleset fetched"
        } else {
            "polling"
        };
        // While streaming, the status says so once the stream is up.
        if self.store.shared().status.get().state != State::Ready {
            self.set_status(State::Ready, reason, false);
        }
        Ok(())
    }

    /// One stream connection, from connect to close.
    async fn stream(&mut self) -> StreamEnd {
        let response = match self.http.open_stream(self.cursor.confirmed).await {
            Ok(r) => r,
            Err(e) => {
                return StreamEnd::Closed {
                    received: false,
                    connected_for: None,
                    error: Some(e),
                };
            }
        };
        let connected = Instant::now();
        self.recovered();
        self.set_status(State::Ready, "streaming", false);
        self.cursor.reconnected();
        let mut parser = SseParser::new(self.opts.max_event_bytes);
        let mut body = response.bytes_stream();
        let mut received = false;
        let closed = |received, error| StreamEnd::Closed {
            received,
            connected_for: Some(connected.elapsed()),
            error,
        };
        loop {
            let wait = if self.cursor.waiting() {
                UPDATE_GAP.min(self.opts.stream_read_timeout)
            } else {
                self.opts.stream_read_timeout
            };
            let chunk = match tokio::time::timeout(wait, body.next()).await {
                Err(_) if self.cursor.waiting() => {
                    return StreamEnd::Resync("an update stayed incomplete".into());
                }
                Err(_) => return closed(received, Some(SyncError::Timeout(wait))),
                Ok(None) => {
                    if parser.in_event() {
                        tracing::debug!("stream ended mid-event; the server resends it on resume");
                    }
                    return closed(received, None);
                }
                Ok(Some(Err(e))) => {
                    return closed(received, Some(SyncError::Transport(e.to_string())));
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            received = true;
            let mut events = Vec::new();
            if let Err(e) = parser.feed(&chunk, &mut |e| events.push(e)) {
                return StreamEnd::Resync(e.to_string());
            }
            for event in events {
                if let Err(Resync(reason)) = self.cursor.handle(&mut self.store, event) {
                    return StreamEnd::Resync(reason);
                }
            }
        }
    }

    /// Records a failure: `Stale` when data is loaded (last known good), else `NotReady`.
    fn failed(&mut self, error: &SyncError) {
        if self.warned {
            tracing::debug!(error = %error, "vexil still unreachable");
        } else {
            tracing::warn!(error = %error, "vexil unreachable; serving last known flag data");
            self.warned = true;
        }
        let state = if self.store.version().is_some() {
            State::Stale
        } else {
            State::NotReady
        };
        self.set_status(state, &error.to_string(), error.key_rejected());
    }

    fn recovered(&mut self) {
        if std::mem::take(&mut self.warned) {
            tracing::info!("vexil reachable again");
        }
    }

    fn set_status(&self, state: State, reason: &str, key_rejected: bool) {
        let shared = self.store.shared();
        if let Some(status) = shared
            .status
            .set(state, reason, self.store.version(), key_rejected)
        {
            shared.notifier.emit(ClientEvent::StatusChanged(status));
        }
    }
}
