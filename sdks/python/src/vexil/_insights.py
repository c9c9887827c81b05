"""Evaluation counts and tracked events, reported in the background.

- Counts: each thread counts its own evaluations, per flag and variation, in a table only
  it writes (no lock and no lost update on the evaluation path); the reporter copies the
  tables and sends what grew since the last report to ``POST /api/v1/sdk/metrics`` as
  ``{"start", "end", "flags": {key: {variation: n}}}``.
- Events: ``track()`` appends to a bounded queue; the reporter sends them in batches of at
  most 1,000 to ``POST /api/v1/track`` as ``{"events": [{"key", "context", "value"?,
  "timestamp"}]}``.

Both are best effort: a failed report is dropped (and logged once), and a server that
does not offer these endpoints yet (404) is tolerated quietly.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import weakref
from typing import Any, Deque, Dict, List, Mapping, Optional, Tuple

from ._http import Http, SyncError
from ._operands import format_rfc3339

log = logging.getLogger("vexil")

METRICS_PATH = "/api/v1/sdk/metrics"
TRACK_PATH = "/api/v1/track"
MAX_BATCH = 1_000
MAX_QUEUED_EVENTS = 10_000

CountKey = Tuple[str, str]


def _now_ms() -> int:
    return int(time.time() * 1000)


class Insights:
    def __init__(self, http: Optional[Http], interval: float) -> None:
        self._http = http
        self._interval = interval
        self._local = threading.local()
        self._tables_lock = threading.Lock()
        # Each thread's cumulative table, with a reference to the thread (to drop the
        # table once the thread is gone and its counts are reported).
        self._tables: List[Tuple[weakref.ref[threading.Thread], Dict[CountKey, int]]] = []
        self._reported: Dict[int, Dict[CountKey, int]] = {}
        self._events: Deque[Dict[str, Any]] = collections.deque(maxlen=MAX_QUEUED_EVENTS)
        self._dropped_events = 0
        self._window_start = _now_ms()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._send_lock = threading.Lock()
        self._quiet: Dict[str, bool] = {}
        self._thread: Optional[threading.Thread] = None
        if http is not None:
            self._thread = threading.Thread(target=self._run, name="vexil-insights", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ hot path

    def count(self, key: CountKey) -> None:
        """Counts one evaluation served with (flag key, variation)."""
        try:
            table: Dict[CountKey, int] = self._local.table
        except AttributeError:
            table = self._new_table()
        table[key] = table.get(key, 0) + 1

    def _new_table(self) -> Dict[CountKey, int]:
        table: Dict[CountKey, int] = {}
        self._local.table = table
        with self._tables_lock:
            self._tables.append((weakref.ref(threading.current_thread()), table))
        return table

    def track(self, key: str, context: Mapping[str, Any], value: Optional[float]) -> None:
        event: Dict[str, Any] = {"key": key, "context": dict(context), "timestamp": format_rfc3339(_now_ms())}
        if value is not None:
            event["value"] = value
        if len(self._events) == MAX_QUEUED_EVENTS:
            self._dropped_events += 1
        self._events.append(event)
        if len(self._events) >= MAX_BATCH:
            self._wake.set()

    # ------------------------------------------------------------------ reporting

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            self.flush()

    def flush(self) -> None:
        """Sends the counts and events gathered so far (from the calling thread)."""
        if self._http is None:
            return
        with self._send_lock:
            self._send_counts()
            self._send_events()

    def close(self, timeout: float = 2.0) -> None:
        """Stops the reporter after a last report (waiting at most ``timeout``)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)
        if self._http is not None:
            done = threading.Event()

            def last() -> None:
                try:
                    self.flush()
                finally:
                    done.set()

            threading.Thread(target=last, name="vexil-insights-flush", daemon=True).start()
            done.wait(timeout)

    def pending_counts(self) -> Dict[str, Dict[str, int]]:
        """Counts not reported yet, by flag and variation (for tests and diagnostics)."""
        flags: Dict[str, Dict[str, int]] = {}
        with self._tables_lock:
            tables = list(self._tables)
        for _, table in tables:
            reported = self._reported.get(id(table), {})
            for (key, variation), n in table.copy().items():
                delta = n - reported.get((key, variation), 0)
                if delta:
                    per = flags.setdefault(key, {})
                    per[variation] = per.get(variation, 0) + delta
        return flags

    def _send_counts(self) -> None:
        assert self._http is not None
        end = _now_ms()
        flags: Dict[str, Dict[str, int]] = {}
        with self._tables_lock:
            tables = list(self._tables)
        snapshots = []
        for thread_ref, table in tables:
            copy = table.copy()  # one C call: consistent even while the owner counts
            reported = self._reported.get(id(table), {})
            for (key, variation), n in copy.items():
                delta = n - reported.get((key, variation), 0)
                if delta:
                    per = flags.setdefault(key, {})
                    per[variation] = per.get(variation, 0) + delta
            snapshots.append((thread_ref, table, copy))
        # Counted as reported whether or not the report arrives: best effort, bounded memory.
        for _, table, copy in snapshots:
            self._reported[id(table)] = copy
        with self._tables_lock:
            gone = [(r, t) for r, t in self._tables if r() is None and self._reported.get(id(t)) == t]
            for entry in gone:
                self._tables.remove(entry)
                self._reported.pop(id(entry[1]), None)
        start, self._window_start = self._window_start, end
        if flags:
            body = {"start": format_rfc3339(start), "end": format_rfc3339(end), "flags": flags}
            self._post(METRICS_PATH, body, "evaluation counts")

    def _send_events(self) -> None:
        if self._dropped_events:
            log.warning(
                "vexil: %d tracked event(s) dropped (more than %d queued)", self._dropped_events, MAX_QUEUED_EVENTS
            )
            self._dropped_events = 0
        while self._events:
            batch: List[Dict[str, Any]] = []
            while self._events and len(batch) < MAX_BATCH:
                batch.append(self._events.popleft())
            if not self._post(TRACK_PATH, {"events": batch}, "tracked events"):
                return

    def _post(self, path: str, body: Any, what: str) -> bool:
        assert self._http is not None
        try:
            status = self._http.post_json(path, body)
        except SyncError as e:
            self._note(path, f"vexil: {what} not reported: {e}", logging.WARNING)
            return False
        if status == 404:
            self._note(
                path, f"vexil: the server does not accept {what} yet ({path} answered 404); dropped", logging.DEBUG
            )
            return False
        if status >= 300:
            self._note(path, f"vexil: {what} not reported: HTTP {status}", logging.WARNING)
            return False
        self._quiet.pop(path, None)
        return True

    def _note(self, path: str, message: str, level: int) -> None:
        """Logs a failure once until the next success."""
        if not self._quiet.get(path):
            self._quiet[path] = True
            log.log(level, message)
