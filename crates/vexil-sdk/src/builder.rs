//! `ClientBuilder`: the server URL and key, connection and resilience options, an optional
//! bootstrap ruleset (offline mode, or a faster cold start), and `build()`, which loads the
//! bootstrap and starts the background task.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use reqwest::Url;
use reqwest::header::HeaderValue;
use tokio::sync::watch;
use vexil_core::{Ruleset, ValidationErrors};

use crate::client::{Client, Clock, Inner};
use crate::events::{Listeners, Notifier};
use crate::report::{Queue, Reporter};
use crate::status::{State, Status, StatusCell};
use crate::store::{Shared, Store};
use crate::sync::SyncTask;
use crate::sync::http::Http;

/// Options of the background task (see the builder's methods for what each one does).
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub stream: bool,
    pub poll_interval: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub backoff_reset_after: Duration,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub stream_read_timeout: Duration,
    pub stream_failures_before_polling: u32,
    pub stream_retry_after: Duration,
    pub max_event_bytes: usize,
    pub send_metrics: bool,
    pub metrics_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            stream: true,
            poll_interval: Duration::from_secs(30),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            backoff_reset_after: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            // Three missed heartbeats (the server sends one every 15 s).
            stream_read_timeout: Duration::from_secs(45),
            stream_failures_before_polling: 3,
            stream_retry_after: Duration::from_secs(300),
            max_event_bytes: 64 << 20,
            send_metrics: true,
            metrics_interval: Duration::from_secs(60),
        }
    }
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    #[error("invalid server URL {url:?}: {message}")]
    InvalidUrl { url: String, message: String },
    /// Empty, or not usable in an HTTP header (the key itself is never shown).
    #[error("invalid server key")]
    InvalidKey,
    /// `build()` must run inside a tokio runtime (except in offline mode).
    #[error("no tokio runtime: build the client from within one")]
    NoRuntime,
    #[error("offline mode needs a bootstrap ruleset")]
    OfflineWithoutBootstrap,
    #[error("cannot read bootstrap ruleset {path}: {source}")]
    BootstrapRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid bootstrap ruleset:\n{0}")]
    BootstrapInvalid(ValidationErrors),
    #[error("cannot create the HTTP client: {0}")]
    Http(String),
}

enum Bootstrap {
    File(PathBuf),
    Json(String),
    Ruleset(Box<Ruleset>),
}

/// Configures a [`Client`]; made by [`Client::builder`] or [`Client::offline_builder`].
pub struct ClientBuilder {
    url: String,
    key: String,
    opts: Options,
    offline: bool,
    bootstrap: Option<Bootstrap>,
    clock: Option<Clock>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("server_key", &"<redacted>")
            .field("options", &self.opts)
            .field("offline", &self.offline)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    pub(crate) fn new(url: String, key: String) -> ClientBuilder {
        ClientBuilder {
            url,
            key,
            opts: Options::default(),
            offline: false,
            bootstrap: None,
            clock: None,
        }
    }

    /// Counts the evaluations this client serves and reports them to the server (its
    /// insights), and sends [`Client::track`]'s events (default `true`); `false` counts,
    /// reports and sends nothing.
    pub fn send_metrics(mut self, enabled: bool) -> Self {
        self.opts.send_metrics = enabled;
        self
    }

    /// How often evaluation counts are reported (default 60 s; at least 100 ms). They are
    /// also reported when the client closes.
    pub fn metrics_interval(mut self, interval: Duration) -> Self {
        self.opts.metrics_interval = interval.max(Duration::from_millis(100));
        self
    }

    /// Streams changes over SSE (default `true`); `false` polls every
    /// [`poll_interval`](Self::poll_interval) instead.
    pub fn streaming(mut self, enabled: bool) -> Self {
        self.opts.stream = enabled;
        self
    }

    /// How often to poll when streaming is off or unavailable (default 30 s).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.opts.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Reconnection backoff: the first retry waits up to `initial`, each further one twice
    /// as long, capped at `max`; each wait is randomised to between half and all of that
    /// (defaults 1 s and 30 s).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.opts.initial_backoff = initial.max(Duration::from_millis(1));
        self.opts.max_backoff = max;
        self
    }

    /// A stream that stayed connected this long resets the backoff, and when it ends the
    /// client reconnects at once (default 60 s).
    pub fn backoff_reset_after(mut self, after: Duration) -> Self {
        self.opts.backoff_reset_after = after;
        self
    }

    /// TCP connect timeout (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.opts.connect_timeout = timeout;
        self
    }

    /// Timeout of a config fetch, and of a stream's response headers (default 30 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.opts.request_timeout = timeout;
        self
    }

    /// A stream silent for this long (no event, no heartbeat) is considered dead and
    /// reconnected (default 45 s: three of the server's 15 s heartbeats).
    pub fn stream_read_timeout(mut self, timeout: Duration) -> Self {
        self.opts.stream_read_timeout = timeout;
        self
    }

    /// After this many consecutive stream attempts that received nothing while the config
    /// endpoint answered, poll instead (default 3), trying the stream again after
    /// `retry_after` (default 5 min).
    pub fn polling_fallback(mut self, failures: u32, retry_after: Duration) -> Self {
        self.opts.stream_failures_before_polling = failures.max(1);
        self.opts.stream_retry_after = retry_after;
        self
    }

    /// The largest ruleset or stream event accepted, in bytes (default 64 MiB): a broken
    /// server cannot make the client buffer more than this.
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.opts.max_event_bytes = bytes.max(1024);
        self
    }

    /// Loads a ruleset file (the format of `GET /api/v1/sdk/config` and `vexil eval
    /// --ruleset`) at build time: evaluations use it until the server answers (status
    /// `Stale`), or for good in [offline](Self::offline) mode. A missing or invalid file
    /// fails `build()`.
    pub fn bootstrap_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.bootstrap = Some(Bootstrap::File(path.into()));
        self
    }

    /// As [`bootstrap_file`](Self::bootstrap_file), from JSON text.
    pub fn bootstrap_json(mut self, json: impl Into<String>) -> Self {
        self.bootstrap = Some(Bootstrap::Json(json.into()));
        self
    }

    /// As [`bootstrap_file`](Self::bootstrap_file), from a parsed ruleset.
    pub fn bootstrap_ruleset(mut self, ruleset: Ruleset) -> Self {
        self.bootstrap = Some(Bootstrap::Ruleset(Box::new(ruleset)));
        self
    }

    /// Offline mode: never contacts the server; evaluates the bootstrap ruleset only
    /// (status `Ready`). Needs no tokio runtime.
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// The evaluation time source, in milliseconds since the Unix epoch (default: the
    /// system clock). For tests and replays of date rules.
    pub fn clock(mut self, now_ms: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Some(Arc::new(now_ms));
        self
    }

    /// Builds the client: loads the bootstrap ruleset, if any, and (unless offline) starts
    /// the background task on the current tokio runtime. Returns at once; see
    /// [`Client::wait_for_initialization`].
    pub fn build(self) -> Result<Client, BuildError> {
        let bootstrap = match self.bootstrap {
            None => None,
            Some(Bootstrap::Ruleset(r)) => Some(r),
            Some(Bootstrap::Json(text)) => Some(Box::new(
                Ruleset::from_json(&text).map_err(BuildError::BootstrapInvalid)?,
            )),
            Some(Bootstrap::File(path)) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|source| BuildError::BootstrapRead { path, source })?;
                Some(Box::new(
                    Ruleset::from_json(&text).map_err(BuildError::BootstrapInvalid)?,
                ))
            }
        };
        if self.offline && bootstrap.is_none() {
            return Err(BuildError::OfflineWithoutBootstrap);
        }
        let online = if self.offline {
            None
        } else {
            Some(connection(&self.url, &self.key, &self.opts)?)
        };
        let runtime = match tokio::runtime::Handle::try_current() {
            Ok(handle) => Some(handle),
            Err(_) if self.offline => None,
            Err(_) => return Err(BuildError::NoRuntime),
        };
        let listeners = Arc::new(Listeners::default());
        let shared = Arc::new(Shared {
            snapshot: ArcSwapOption::empty(),
            status: StatusCell::new(Status::new(
                State::NotReady,
                "waiting for the first fetch",
                None,
            )),
            notifier: Notifier::new(listeners.clone(), runtime.as_ref()),
            listeners,
            count: online.is_some() && self.opts.send_metrics,
            tally: vexil_core::Tally::default(),
            events: Queue::default(),
        });
        let mut store = Store::new(shared.clone());
        if let Some(ruleset) = &bootstrap {
            store
                .bootstrap(ruleset)
                .map_err(BuildError::BootstrapInvalid)?;
            let (state, reason) = if self.offline {
                (State::Ready, "offline: bootstrap ruleset")
            } else {
                (State::Stale, "bootstrap ruleset; waiting for the server")
            };
            shared
                .status
                .set(state, reason, Some(ruleset.version), false);
        }
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = match (online, &runtime) {
            (Some(http), Some(rt)) => {
                let reporter = self.opts.send_metrics.then(|| {
                    Reporter::new(shared.clone(), http.clone(), self.opts.metrics_interval)
                });
                let sync = SyncTask::new(store, http, self.opts.clone());
                let reporter_rx = shutdown_rx.clone();
                Some(rt.spawn(async move {
                    let report = async move {
                        if let Some(reporter) = reporter {
                            reporter.run(reporter_rx).await;
                        }
                    };
                    tokio::join!(sync.run(shutdown_rx), report);
                }))
            }
            _ => None,
        };
        Ok(Client::from_inner(Inner::new(
            shared,
            self.clock,
            if self.offline { None } else { Some(self.url) },
            shutdown,
            task,
        )))
    }
}

/// Validates the URL and key and prepares the HTTP side.
fn connection(url: &str, key: &str, opts: &Options) -> Result<Http, BuildError> {
    let invalid_url = |message: String| BuildError::InvalidUrl {
        url: url.to_owned(),
        message,
    };
    let base = Url::parse(url).map_err(|e| invalid_url(e.to_string()))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(invalid_url("the scheme must be http or https".into()));
    }
    if base.scheme() == "https" && !cfg!(feature = "rustls") {
        return Err(invalid_url(
            "https needs the vexil-sdk feature `rustls`".into(),
        ));
    }
    let key = key.trim();
    if key.is_empty() {
        return Err(BuildError::InvalidKey);
    }
    let mut auth =
        HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| BuildError::InvalidKey)?;
    auth.set_sensitive(true);
    let client = reqwest::Client::builder()
        .connect_timeout(opts.connect_timeout)
        .user_agent(concat!("vexil-rust-sdk/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| BuildError::Http(e.to_string()))?;
    Http::new(
        client,
        &base,
        auth,
        opts.request_timeout,
        opts.max_event_bytes,
    )
    .map_err(|e| invalid_url(e.to_string()))
}
