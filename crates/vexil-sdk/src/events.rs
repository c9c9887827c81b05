//! Change and status notifications: callbacks (per flag, for every change, for status) run
//! by a dispatcher task off the evaluation path and off the sync task, and a broadcast
//! channel for async consumers such as the OpenFeature provider.
//!
//! A listener hears only of what happens after it is registered, as a broadcast receiver
//! does: each event carries the listener count at the time it was emitted, and the
//! dispatcher, which may run later, skips listeners registered since. Otherwise a listener
//! registered just after the client loaded its data (while the dispatcher had not yet
//! caught up) would be told of that load as if the flags had just changed.

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
/// a lock (a listener may register or remove listeners). Ids are allocated in registration
/// order, under the lock.
#[derive(Default)]
pub(crate) struct Listeners {
    next: AtomicU64,
    list: RwLock<ListenerList>,
}

/// Listeners with an id below this were registered when an event was emitted: only they
/// hear of it.
#[derive(Debug, Clone, Copy)]
struct RegisteredBefore(u64);

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("count", &self.snapshot().len())
            .finish()
    }
}

impl Listeners {
    fn add(&self, listener: Listener) -> ListenerId {
        let mut list = self.list.write().unwrap_or_else(|p| p.into_inner());
        let id = ListenerId(self.next.fetch_add(1, Ordering::SeqCst));
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

    /// The bound that marks the listeners registered so far.
    fn registered_before(&self) -> RegisteredBefore {
        RegisteredBefore(self.next.load(Ordering::SeqCst))
    }

    /// Calls the listeners that were registered when `event` was emitted and still are.
    fn dispatch(&self, event: &ClientEvent, registered: RegisteredBefore) {
        let list = self.snapshot();
        let current = list.iter().filter(|(id, _)| id.0 < registered.0);
        for (_, listener) in current {
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
    listeners: Arc<Listeners>,
    to_dispatcher: Option<mpsc::UnboundedSender<(ClientEvent, RegisteredBefore)>>,
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
            let (tx, mut rx) = mpsc::unbounded_channel::<(ClientEvent, RegisteredBefore)>();
            let listeners = listeners.clone();
            rt.spawn(async move {
                while let Some((event, registered)) = rx.recv().await {
                    listeners.dispatch(&event, registered);
                }
            });
            tx
        });
        Notifier {
            broadcast,
            listeners,
            to_dispatcher,
        }
    }

    pub(crate) fn emit(&self, event: ClientEvent) {
        if let Some(tx) = &self.to_dispatcher {
            let _ = tx.send((event.clone(), self.listeners.registered_before()));
        }
        // No subscribers is fine.
        let _ = self.broadcast.send(event);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<ClientEvent> {
        self.broadcast.subscribe()
    }
}
