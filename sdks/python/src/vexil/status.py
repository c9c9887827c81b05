"""The client's data status: ``NOT_READY``, ``READY``, ``STALE`` or ``ERROR``, with a reason."""

from __future__ import annotations

import enum
import threading
import time
from typing import Callable, List, NamedTuple, Optional


class State(str, enum.Enum):
    """How current the client's flag data is."""

    NOT_READY = "NOT_READY"
    """No flag data yet: evaluations return the caller's default (``CLIENT_NOT_READY``)."""
    READY = "READY"
    """The data is the server's current data (streaming, or the last poll succeeded), or
    the client is offline with its bootstrap ruleset."""
    STALE = "STALE"
    """The server cannot be reached (or the client was closed): evaluations use the last
    known data, or the bootstrap ruleset."""
    ERROR = "ERROR"
    """The server rejected the API key (HTTP 401 or 403); retrying will not help until the
    key is fixed. Evaluations use the last known data, if any."""

    def __str__(self) -> str:
        return self.value


class Status(NamedTuple):
    """A snapshot of the client's status."""

    state: State
    reason: str
    """Why the state is not ``READY`` (or how ``READY`` data arrives: ``streaming``,
    ``polling``, ``offline``), in words fit for a log line."""
    version: Optional[int]
    """The ruleset version evaluations use, if any data is loaded."""
    since: float
    """When ``state`` last changed (seconds since the epoch)."""


class StatusCell:
    """The current status, readable without a lock; writers (the background thread) are
    serialized, and waiters are woken on every change."""

    def __init__(self, initial: Status) -> None:
        self._status = initial
        self._cond = threading.Condition()

    def get(self) -> Status:
        return self._status

    def set(self, state: State, reason: str, version: Optional[int]) -> Optional[Status]:
        """Sets state and reason; returns the new status when anything but the version
        changed (a version-only change is recorded silently)."""
        with self._cond:
            old = self._status
            if old.state is state and old.reason == reason:
                if old.version != version:
                    self._status = old._replace(version=version)
                return None
            since = old.since if old.state is state else time.time()
            self._status = Status(state, reason, version, since)
            self._cond.notify_all()
            return self._status

    def set_version(self, version: int) -> None:
        with self._cond:
            self._status = self._status._replace(version=version)

    def wait_for(self, predicate: Callable[[Status], bool], timeout: Optional[float]) -> Status:
        """Waits until ``predicate(status)`` holds or ``timeout`` passes; returns the status."""
        with self._cond:
            self._cond.wait_for(lambda: predicate(self._status), timeout)
            return self._status


StatusListener = Callable[[Status], None]
StatusListeners = List[StatusListener]
