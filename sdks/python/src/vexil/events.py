"""Change and status notifications. Listeners run on one dispatcher thread, one at a
time and in order, never on the evaluation path: keep them short (hand slow work to a
queue of your own). A listener that raises is logged and kept."""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple, Union

from .status import Status

log = logging.getLogger("vexil")


class FlagChange(NamedTuple):
    """Flags whose evaluation may have changed, and the ruleset version that changed them."""

    keys: Tuple[str, ...]
    version: int


ChangeListener = Callable[[FlagChange], None]
StatusListener = Callable[[Status], None]


class _Entry(NamedTuple):
    kind: str  # "change", "flag" or "status"
    key: Optional[str]
    fn: Callable[..., None]


_STOP = object()


class Listeners:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: Dict[int, _Entry] = {}
        self._ids = itertools.count(1)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None
        self._closed = False

    def add(self, kind: str, key: Optional[str], fn: Callable[..., None]) -> int:
        if not callable(fn):
            raise TypeError("a listener must be callable")
        with self._lock:
            listener_id = next(self._ids)
            self._entries[listener_id] = _Entry(kind, key, fn)
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="vexil-listeners", daemon=True)
                self._thread.start()
            return listener_id

    def remove(self, listener_id: int) -> bool:
        with self._lock:
            return self._entries.pop(listener_id, None) is not None

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def emit(self, event: Union[FlagChange, Status]) -> None:
        # Listeners registered later do not hear of earlier events: the set is taken now.
        with self._lock:
            if self._thread is None or not self._entries:
                return
            entries = list(self._entries.values())
        self._queue.put((event, entries))

    def close(self, timeout: float = 2.0) -> None:
        """Delivers what is queued (waiting at most ``timeout``), then stops the thread."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            if thread is not threading.current_thread():
                thread.join(timeout)
        self.clear()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            event: Union[FlagChange, Status]
            entries: List[_Entry]
            event, entries = item  # type: ignore[misc]
            for entry in entries:
                try:
                    if isinstance(event, FlagChange):
                        if entry.kind == "change" or (entry.kind == "flag" and entry.key in event.keys):
                            entry.fn(event)
                    elif entry.kind == "status":
                        entry.fn(event)
                except Exception:
                    log.exception("vexil: a listener raised")
