"""The background thread that keeps the client's data current: a first fetch of the
ruleset, then the event stream resumed with ``Last-Event-ID``; reconnection with
exponential backoff and jitter; polling (``If-None-Match``) when streaming is switched off
or keeps failing while the config endpoint works; the last known data throughout. It is
the only writer of the client's snapshot and status."""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Optional, Union

from ._backoff import Backoff
from ._cursor import Cursor, Resync
from ._http import Http, Stream, SyncError
from ._sse import EventTooLarge, SseParser
from ._store import Store
from .engine import RulesetError
from .events import Listeners
from .status import State

log = logging.getLogger("vexil")

UPDATE_GAP = 2.0
"""How long the rest of an update may take to arrive before the cursor resynchronises."""
OLDER_ANSWERS_ACCEPTED = 3
"""Consecutive fetches answering an older version before the client follows it."""


@dataclass
class Options:
    stream: bool = True
    poll_interval: float = 30.0
    initial_backoff: float = 1.0
    max_backoff: float = 30.0
    backoff_reset_after: float = 60.0
    connect_timeout: float = 10.0
    request_timeout: float = 30.0
    stream_read_timeout: float = 45.0  # three missed heartbeats (one every 15 s)
    stream_failures_before_polling: int = 3
    stream_retry_after: float = 300.0
    max_event_bytes: int = 64 << 20


@dataclass
class _Closed:
    received: bool
    connected_for: Optional[float]
    error: Optional[SyncError]


class SyncThread:
    def __init__(self, store: Store, http: Http, opts: Options, listeners: Listeners) -> None:
        self._store = store
        self._http = http
        self._opts = opts
        self._listeners = listeners
        self._cursor = Cursor()
        self._backoff = Backoff(opts.initial_backoff, opts.max_backoff)
        self._stop = threading.Event()
        self._stream_lock = threading.Lock()
        self._stream: Optional[Stream] = None
        self._warned = False
        self._older_answers = 0
        self._thread = threading.Thread(target=self._run, name="vexil-sync", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stops the thread (interrupting a stream read) and waits for it."""
        self._stop.set()
        with self._stream_lock:
            stream = self._stream
        if stream is not None:
            stream.close()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:  # a bug: keep serving the last data, say so
            log.exception("vexil: the background thread failed")
            self._set_status(State.STALE, "background thread failed (see the log)")
            return
        self._set_status(State.STALE if self._store.version is not None else State.NOT_READY, "client closed")

    def _sleep(self, seconds: float) -> bool:
        """Sleeps unless closed; False once the client is closed."""
        return not self._stop.wait(seconds)

    def _loop(self) -> None:
        opts = self._opts
        need_fetch, full_fetch = True, False
        stream_failures = 0
        polling_since: Optional[float] = None if opts.stream else time.monotonic()
        while not self._stop.is_set():
            if need_fetch:
                try:
                    self._fetch(full_fetch)
                    need_fetch = full_fetch = False
                except SyncError as e:
                    self._failed(e)
                    self._sleep(self._backoff.next_delay())
                    continue
            stream_now = opts.stream and (
                polling_since is None or time.monotonic() - polling_since >= opts.stream_retry_after
            )
            if not stream_now:
                self._set_status(State.READY, "polling (streaming unavailable)" if opts.stream else "polling")
                self._backoff.reset()
                self._sleep(opts.poll_interval)
                need_fetch = True
                continue
            if polling_since is not None:
                polling_since = None
                stream_failures = 0
            end = self._stream_once()
            if self._stop.is_set():
                return
            if isinstance(end, Resync):
                log.warning("vexil stream out of sync (%s); fetching the whole ruleset", end)
                need_fetch = full_fetch = True
                # A server that keeps sending what cannot be applied is not hammered.
                delay = self._backoff.next_delay()
                if self._backoff.failures > 1:
                    self._sleep(delay)
                continue
            healthy = end.received and (end.connected_for or 0) >= opts.backoff_reset_after
            if healthy:
                self._backoff.reset()
            stream_failures = 0 if end.received else stream_failures + 1
            # A stream failure alone does not make the data stale: the conditional fetch
            # that follows tells whether the server is reachable. Only a rejected key is
            # final enough to report at once.
            if end.error is not None and end.error.key_rejected:
                self._failed(end.error)
            elif end.error is not None:
                log.debug("vexil stream interrupted: %s", end.error)
            else:
                log.debug("vexil stream closed by the server")
            if stream_failures >= opts.stream_failures_before_polling:
                log.warning(
                    "vexil streaming unavailable after %d attempts; polling every %ss instead",
                    stream_failures,
                    opts.poll_interval,
                )
                polling_since = time.monotonic()
                need_fetch = True
                continue
            if healthy:
                # A long-lived stream ended (say, the server restarted): reconnect at once,
                # resuming where it stopped.
                continue
            self._sleep(self._backoff.next_delay())
            # Before streaming again, a cheap conditional fetch tells READY from STALE.
            need_fetch = True

    def _fetch(self, full: bool) -> None:
        """Fetches the ruleset (conditionally, unless ``full``) and loads it."""
        ruleset = self._http.fetch_config(None if full else self._cursor.confirmed)
        if ruleset is not None:
            version = ruleset.get("version", 0)
            held = self._store.version
            if held is not None and isinstance(version, int) and version < held:
                # Most likely a cluster node that has not caught up: keep the newer data
                # and ask again; only an older version that persists replaces it.
                self._older_answers += 1
                if self._older_answers < OLDER_ANSWERS_ACCEPTED:
                    raise SyncError(f"version {version} is older than the {held} held; asking again")
                log.warning("vexil: the server went back from version %d to %d; following it", held, version)
            self._older_answers = 0
            try:
                self._store.replace(ruleset)
            except RulesetError as e:
                raise SyncError(f"invalid response: {e}") from None
            self._cursor.loaded(version if isinstance(version, int) else 0)
        self._recovered()
        if self._store.status.get().state is not State.READY:
            self._set_status(State.READY, "ruleset fetched" if self._opts.stream else "polling")

    def _stream_once(self) -> Union[_Closed, Resync]:
        """One stream connection, from connect to close."""
        try:
            stream = self._http.open_stream(self._cursor.confirmed)
        except SyncError as e:
            return _Closed(False, None, e)
        with self._stream_lock:
            self._stream = stream
        try:
            if self._stop.is_set():
                return _Closed(False, None, None)
            connected = time.monotonic()
            self._recovered()
            self._set_status(State.READY, "streaming")
            self._cursor.reconnected()
            parser = SseParser(self._opts.max_event_bytes)
            received = False
            while True:
                waiting = self._cursor.waiting()
                timeout = min(UPDATE_GAP, self._opts.stream_read_timeout) if waiting else self._opts.stream_read_timeout
                stream.set_timeout(timeout)
                try:
                    chunk = stream.read()
                except socket.timeout:
                    if waiting:
                        return Resync("an update stayed incomplete")
                    return _Closed(received, time.monotonic() - connected, SyncError(f"no data for {timeout:g}s"))
                except Exception as e:  # any transport failure ends this connection
                    return _Closed(received, time.monotonic() - connected, SyncError(f"stream failed: {e}"))
                if not chunk:
                    if parser.in_event():
                        log.debug("vexil stream ended mid-event; the server resends it on resume")
                    return _Closed(received, time.monotonic() - connected, None)
                received = True
                try:
                    events = parser.feed(chunk)
                except EventTooLarge as e:
                    return Resync(str(e))
                for event in events:
                    try:
                        self._cursor.handle(self._store, event)
                    except Resync as r:
                        return r
        finally:
            with self._stream_lock:
                self._stream = None
            stream.close()

    # ------------------------------------------------------------------ status

    def _failed(self, error: SyncError) -> None:
        """Records a failure: STALE with data (the last known data is served), else
        NOT_READY; ERROR when the key was rejected."""
        if self._warned:
            log.debug("vexil still unreachable: %s", error)
        else:
            log.warning("vexil unreachable (%s); serving the last known flag data", error)
            self._warned = True
        if error.key_rejected:
            state = State.ERROR
        elif self._store.version is not None:
            state = State.STALE
        else:
            state = State.NOT_READY
        self._set_status(state, str(error))

    def _recovered(self) -> None:
        if self._warned:
            self._warned = False
            log.info("vexil reachable again")

    def _set_status(self, state: State, reason: str) -> None:
        status = self._store.status.set(state, reason, self._store.version)
        if status is not None:
            self._listeners.emit(status)
