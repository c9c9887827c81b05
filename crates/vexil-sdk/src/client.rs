//! `Client`: typed getters and their `*_detail` variants, evaluate-all, status and
//! initialization, listeners, and `close()`. Every evaluation is a lock-free load of the
//! current snapshot plus `vexil-core`'s evaluation: no network, no lock, no panic; any error
//! serves the caller's default with a reason.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use vexil_core::Context;

use crate::builder::ClientBuilder;
use crate::detail::{ErrorCode, EvaluationDetail, FlagValue, Reason};
use crate::events::{ClientEvent, FlagChange, ListenerId};
use crate::status::{State, Status};
use crate::store::Shared;

/// A source of "now" in epoch milliseconds.
pub(crate) type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Why [`Client::wait_for_initialization`] returned without flag data from the server.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InitError {
    /// Not initialized in time; the client keeps trying in the background, and evaluations
    /// use the bootstrap ruleset if there is one, else the callers' defaults.
    #[error("not initialized within {timeout:?}: {}", status.reason)]
    Timeout { timeout: Duration, status: Status },
    /// The server refused the key (HTTP 401/403).
    #[error("the server rejected the key: {}", status.reason)]
    KeyRejected { status: Status },
}

/// A Vexil client: evaluates flags locally against the environment's ruleset, which a
/// background task keeps current. Cheap to clone (clones share everything); the background
/// task stops on [`close`](Client::close) or when the last clone is dropped.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    shared: Arc<Shared>,
    clock: Option<Clock>,
    url: Option<String>,
    shutdown: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Inner {
    pub(crate) fn new(
        shared: Arc<Shared>,
        clock: Option<Clock>,
        url: Option<String>,
        shutdown: watch::Sender<bool>,
        task: Option<JoinHandle<()>>,
    ) -> Inner {
        Inner {
            shared,
            clock,
            url,
            shutdown,
            task: Mutex::new(task),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.status();
        f.debug_struct("Client")
            .field("url", &self.inner.url.as_deref().unwrap_or("<offline>"))
            .field("state", &status.state)
            .field("version", &status.version)
            .finish_non_exhaustive()
    }
}

pub(crate) fn system_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| {
            i64::try_from(d.as_secs())
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000)
                .saturating_add(i64::from(d.subsec_millis()))
        })
}

impl Client {
    /// A builder for a client of the server at `url` (e.g. `http://127.0.0.1:8080`)
    /// authenticated by a server API key (`vx_srv_…`) of one environment.
    pub fn builder(url: impl Into<String>, server_key: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url.into(), server_key.into())
    }

    /// A builder for an offline client that evaluates a bootstrap ruleset only.
    pub fn offline_builder() -> ClientBuilder {
        ClientBuilder::new(String::new(), String::new()).offline(true)
    }

    pub(crate) fn from_inner(inner: Inner) -> Client {
        Client {
            inner: Arc::new(inner),
        }
    }

    /// The evaluation time, read only when the ruleset uses it (`$now`); the engine reads
    /// `now` nowhere else, so 0 is as good as any value otherwise.
    #[inline]
    fn now_if(&self, needed: bool) -> i64 {
        match &self.inner.clock {
            _ if !needed => 0,
            Some(clock) => clock(),
            None => system_now_ms(),
        }
    }

    /// Evaluates `key` and hands the engine's result to `f`; `Err` when there is no data
    /// yet, or (defensively) when evaluation panicked.
    #[inline]
    pub(crate) fn with_detail<R>(
        &self,
        key: &str,
        context: &Context,
        f: impl FnOnce(&vexil_core::Detail<'_>) -> R,
    ) -> Result<R, ErrorCode> {
        let guard = self.inner.shared.snapshot.load();
        let Some(loaded) = guard.as_ref() else {
            return Err(ErrorCode::ClientNotReady);
        };
        let now = self.now_if(loaded.uses_now);
        catch_unwind(AssertUnwindSafe(|| {
            let detail = loaded.snapshot.evaluate(key, context, now);
            if self.inner.shared.count {
                detail.count();
            }
            f(&detail)
        }))
        .map_err(|_| ErrorCode::General)
    }

    /// The value of flag `key` for `context` as a `T`, or `default` on any error.
    #[inline]
    pub fn value<T: FlagValue>(&self, key: &str, context: &Context, default: T) -> T {
        self.with_detail(key, context, |d| d.value.and_then(T::from_json))
            .ok()
            .flatten()
            .unwrap_or(default)
    }

    /// The value of flag `key` for `context` as a `T` with variation and reason; the value
    /// is `default` on any error, and the reason says which.
    pub fn detail<T: FlagValue>(
        &self,
        key: &str,
        context: &Context,
        default: T,
    ) -> EvaluationDetail<T> {
        let result = self.with_detail(key, context, |d| match d.value {
            Some(v) => match T::from_json(v) {
                Some(value) => Ok(EvaluationDetail {
                    value,
                    variation: d.variation.map(str::to_owned),
                    reason: Reason::from_core(&d.reason),
                    flag_version: d.flag_version,
                }),
                None => Err((ErrorCode::TypeMismatch, d.flag_version)),
            },
            None => {
                let code = d.reason.error_code.map_or(ErrorCode::General, Into::into);
                Err((code, d.flag_version))
            }
        });
        match result {
            Ok(Ok(detail)) => detail,
            Ok(Err((code, version))) => EvaluationDetail::default_with(default, code, version),
            Err(code) => EvaluationDetail::default_with(default, code, None),
        }
    }

    /// A boolean flag's value, or `default`. Allocation-free.
    #[inline]
    pub fn bool_value(&self, key: &str, context: &Context, default: bool) -> bool {
        self.value(key, context, default)
    }

    /// A string flag's value, or `default`.
    pub fn string_value(&self, key: &str, context: &Context, default: &str) -> String {
        self.with_detail(key, context, |d| {
            d.value.and_then(Value::as_str).map(str::to_owned)
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| default.to_owned())
    }

    /// A number flag's value as an integer (`42`, or `42.0`), or `default` (also when the
    /// value has a fraction).
    pub fn int_value(&self, key: &str, context: &Context, default: i64) -> i64 {
        self.value(key, context, default)
    }

    /// A number flag's value, or `default`.
    pub fn float_value(&self, key: &str, context: &Context, default: f64) -> f64 {
        self.value(key, context, default)
    }

    /// Any flag's value as JSON, or `default`.
    pub fn json_value(&self, key: &str, context: &Context, default: Value) -> Value {
        self.value(key, context, default)
    }

    pub fn bool_detail(
        &self,
        key: &str,
        context: &Context,
        default: bool,
    ) -> EvaluationDetail<bool> {
        self.detail(key, context, default)
    }

    pub fn string_detail(
        &self,
        key: &str,
        context: &Context,
        default: &str,
    ) -> EvaluationDetail<String> {
        self.detail(key, context, default.to_owned())
    }

    pub fn int_detail(&self, key: &str, context: &Context, default: i64) -> EvaluationDetail<i64> {
        self.detail(key, context, default)
    }

    pub fn float_detail(
        &self,
        key: &str,
        context: &Context,
        default: f64,
    ) -> EvaluationDetail<f64> {
        self.detail(key, context, default)
    }

    pub fn json_detail(
        &self,
        key: &str,
        context: &Context,
        default: Value,
    ) -> EvaluationDetail<Value> {
        self.detail(key, context, default)
    }

    /// Every flag evaluated for `context`, by key; errors (e.g. `TARGETING_KEY_MISSING`)
    /// have a `null` value and their reason. Empty before the client has data.
    pub fn evaluate_all(&self, context: &Context) -> BTreeMap<String, EvaluationDetail<Value>> {
        let guard = self.inner.shared.snapshot.load();
        let Some(loaded) = guard.as_ref() else {
            return BTreeMap::new();
        };
        let now = self.now_if(loaded.uses_now);
        catch_unwind(AssertUnwindSafe(|| {
            loaded
                .snapshot
                .evaluate_all(context, now)
                .inspect(|(_, d)| {
                    if self.inner.shared.count {
                        d.count();
                    }
                })
                .map(|(info, d)| {
                    let detail = EvaluationDetail {
                        value: d.value.cloned().unwrap_or(Value::Null),
                        variation: d.variation.map(str::to_owned),
                        reason: Reason::from_core(&d.reason),
                        flag_version: d.flag_version,
                    };
                    (info.key.to_owned(), detail)
                })
                .collect()
        }))
        .unwrap_or_default()
    }

    /// Records that `key` happened to `context` (OpenFeature's tracking): the server
    /// attributes the event to the variation each flag watching `key` serves that context,
    /// so the error rate (say) of every variation can be compared. `value` is summed per
    /// variation. Never blocks: the event is queued and sent in the background within about
    /// a second, in batches of at most 1,000 (and on `close`). At most 10,000 events wait;
    /// beyond that the oldest are dropped. Offline clients and clients built with
    /// `send_metrics(false)` send nothing.
    pub fn track(&self, key: &str, context: &Context, value: Option<f64>) {
        if self.inner.shared.count {
            self.inner.shared.events.push(key, context, value);
        }
    }

    /// The keys of every flag the client knows, sorted.
    pub fn flag_keys(&self) -> Vec<String> {
        let guard = self.inner.shared.snapshot.load();
        let mut keys: Vec<String> = guard
            .as_ref()
            .map(|l| l.snapshot.flags().map(|f| f.key.to_owned()).collect())
            .unwrap_or_default();
        keys.sort();
        keys
    }

    /// The current status: `NotReady`, `Ready` or `Stale`, why, and the data's version.
    pub fn status(&self) -> Status {
        self.inner.shared.status.get()
    }

    /// Waits until the client has the server's current data (status `Ready`), at most
    /// `timeout`. Evaluating before that is allowed: it serves the bootstrap ruleset or the
    /// callers' defaults.
    pub async fn wait_for_initialization(&self, timeout: Duration) -> Result<(), InitError> {
        let mut rx = self.inner.shared.status.subscribe();
        let wait = rx.wait_for(|s| s.state == State::Ready || s.key_rejected);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(status)) if status.state == State::Ready => Ok(()),
            Ok(Ok(status)) => Err(InitError::KeyRejected {
                status: status.clone(),
            }),
            // The status sender lives as long as `self`; treat the impossible as a timeout.
            Ok(Err(_)) | Err(_) => Err(InitError::Timeout {
                timeout,
                status: self.status(),
            }),
        }
    }

    /// Calls `f` after every update that changes any flag's evaluation, with the changed
    /// keys. Listeners run on a dispatcher task, one at a time, off the evaluation path:
    /// keep them short (send to a channel for slow work). A listener hears only of updates
    /// made after it was registered (not, say, of the first fetch that
    /// [`wait_for_initialization`](Client::wait_for_initialization) waited for).
    pub fn on_change(&self, f: impl Fn(&FlagChange) + Send + Sync + 'static) -> ListenerId {
        self.inner.shared.listeners.on_change(Box::new(f))
    }

    /// Calls `f` after every update that may change flag `key`'s evaluation: its own
    /// definition, or a prerequisite or segment it uses.
    pub fn on_flag_change(
        &self,
        key: impl Into<String>,
        f: impl Fn(&FlagChange) + Send + Sync + 'static,
    ) -> ListenerId {
        self.inner
            .shared
            .listeners
            .on_flag_change(key.into(), Box::new(f))
    }

    /// Calls `f` whenever the status's state or reason changes.
    pub fn on_status_change(&self, f: impl Fn(&Status) + Send + Sync + 'static) -> ListenerId {
        self.inner.shared.listeners.on_status_change(Box::new(f))
    }

    /// Removes a listener; `false` if it was already gone.
    pub fn remove_listener(&self, id: ListenerId) -> bool {
        self.inner.shared.listeners.remove(id)
    }

    /// Changes and status changes as a broadcast channel, for async code (a receiver that
    /// falls more than 256 events behind skips ahead, with `RecvError::Lagged`).
    pub fn subscribe(&self) -> broadcast::Receiver<ClientEvent> {
        self.inner.shared.notifier.subscribe()
    }

    /// Stops the background task (for every clone) and waits for it to finish, and drops
    /// every listener. Evaluations keep serving the last data; the status becomes `Stale`
    /// ("client closed").
    ///
    /// A listener that holds a clone of the client keeps the client alive: such clients end
    /// with `close()`, not by being dropped.
    pub async fn close(&self) {
        let _ = self.inner.shutdown.send(true);
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
        self.inner.shared.listeners.clear();
    }
}
