//! Change and status notifications: callbacks (per flag, for every change, for status) run
//! by a dispatcher task off the evaluation path and off the sync task, and a broadcast
//! channel for async consumers such as the OpenFeature provider.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::{broadcast, mpsc};

use crate::status::Status;

/// Flags whose evaluation may differ after an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagChange {
    /// The keys, sorted: flags added, changed or removed, and flags that use one of them as
    /// a prerequisite or use a changed segment (directly or through other segments).
    pub keys: Vec<String>,
    /// The ruleset version after the update.
    pub version: u64,
}

impl FlagChange {
    /// Whether flag `key` is among the changed ones.
    pub fn contains(&self, key: &str) -> bool {
        self.keys.binary_search_by(|k| k.as_str().cmp(key)).is_ok()
    }
}

/// What [`Client::subscribe`](crate::Client::subscribe) delivers.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// New flag definitions are in use.
    FlagsChanged(Arc<FlagChange>),
    /// The status changed (e.g. `Ready` → `Stale`).
    StatusChanged(Status),
}

/// Identifies a registered listener, for [`Client::remove_listener`](crate::Client::remove_listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(u64);

type ChangeFn = Box<dyn Fn(&FlagChange) + Send + Sync>;
type StatusFn = Box<dyn Fn(&Status) + Send + Sync>;

enum Listener {
    AnyFlag(ChangeFn),
    Flag(String, ChangeFn),
    Status(StatusFn),
}

type ListenerList = Arc<Vec<(ListenerId, Arc<Listener>)>>;

/// Registered listeners, copied on write so that the dispatcher calls them without holding
/// a lock (a listener may register or remove listeners).
#[derive(Default)]
pub(crate) struct Listeners {
    next: AtomicU64,
    list: RwLock<ListenerList>,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("count", &self.snapshot().len())
            .finish()
    }
}

impl Listeners {
    fn add(&self, listener: Listener) -> ListenerId {
        let id = ListenerId(self.next.fetch_add(1, Ordering::Relaxed));
        let mut list = self.list.write().unwrap_or_else(|p| p.into_inner());
        let mut next = (**list).clone();
        next.push((id, Arc::new(listener)));
        *list = Arc::new(next);
        id
    }

    pub(crate) fn on_change(&self, f: ChangeFn) -> ListenerId {
        self.add(Listener::AnyFlag(f))
    }

    pub(crate) fn on_flag_change(&self, key: String, f: ChangeFn) -> ListenerId {
        self.add(Listener::Flag(key, f))
    }

    pub(crate) fn on_status_change(&self, f: StatusFn) -> ListenerId {
        self.add(Listener::Status(f))
    }

    /// Drops every listener (on `close()`: a listener holding a clone of the client would
    /// otherwise keep the client, and its background task, alive forever).
    pub(crate) fn clear(&self) {
        let mut list = self.list.write().unwrap_or_else(|p| p.into_inner());
        *list = Arc::new(Vec::new());
    }

    pub(crate) fn remove(&self, id: ListenerId) -> bool {
        let mut list = self.list.write().unwrap_or_else(|p| p.into_inner());
        if !list.iter().any(|(i, _)| *i == id) {
            return false;
        }
        let next: Vec<_> = list.iter().filter(|(i, _)| *i != id).cloned().collect();
        *list = Arc::new(next);
        true
    }

    fn snapshot(&self) -> ListenerList {
        self.list.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn dispatch(&self, event: &ClientEvent) {
        for (_, listener) in self.snapshot().iter() {
            // A panicking listener must not stop the others, nor later notifications.
            let _ = catch_unwind(AssertUnwindSafe(|| match (&**listener, event) {
                (Listener::AnyFlag(f), ClientEvent::FlagsChanged(c)) => f(c),
                (Listener::Flag(key, f), ClientEvent::FlagsChanged(c)) if c.contains(key) => f(c),
                (Listener::Status(f), ClientEvent::StatusChanged(s)) => f(s),
                _ => {}
            }));
        }
    }
}

/// The sending side of notifications, used by the background task.
#[derive(Debug)]
pub(crate) struct Notifier {
    broadcast: broadcast::Sender<ClientEvent>,
    to_dispatcher: Option<mpsc::UnboundedSender<ClientEvent>>,
}

impl Notifier {
    /// A notifier whose callbacks are run by a task spawned on `runtime`; without a runtime
    /// (offline mode outside tokio) nothing ever changes, so nothing needs dispatching.
    pub(crate) fn new(
        listeners: Arc<Listeners>,
        runtime: Option<&tokio::runtime::Handle>,
    ) -> Notifier {
        let (broadcast, _) = broadcast::channel(256);
        let to_dispatcher = runtime.map(|rt| {
            let (tx, mut rx) = mpsc::unbounded_channel::<ClientEvent>();
            rt.spawn(async move {
                while let Some(event) = rx.recv().await {
                    listeners.dispatch(&event);
                }
            });
            tx
        });
        Notifier {
            broadcast,
            to_dispatcher,
        }
    }

    pub(crate) fn emit(&self, event: ClientEvent) {
        if let Some(tx) = &self.to_dispatcher {
            let _ = tx.send(event.clone());
        }
        // No subscribers is fine.
        let _ = self.broadcast.send(event);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<ClientEvent> {
        self.broadcast.subscribe()
    }
}
