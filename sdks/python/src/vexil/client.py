"""The Vexil client: evaluates flags in process against the environment's ruleset, which a
background thread keeps current over server-sent events.

Every evaluation reads the current immutable snapshot (one attribute read, no lock) and
runs the compiled engine: no network and no exception reaches the caller; any error serves
the caller's default, and the ``*_detail`` getters say why.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, TypeVar, Union

from ._http import Http
from ._insights import Insights
from ._store import Store
from ._support import copy_value, is_number, read_bootstrap, with_user
from ._sync import Options, SyncThread
from .detail import ErrorCode, EvaluationDetail, Reason, ReasonKind
from .engine import Evaluation
from .events import ChangeListener, Listeners, StatusListener
from .status import State, Status, StatusCell

log = logging.getLogger("vexil")

T = TypeVar("T")
Context = Optional[Mapping[str, Any]]
_EMPTY: Mapping[str, Any] = {}
_NOT_READY = Reason.error(ErrorCode.CLIENT_NOT_READY)
_GENERAL = Reason.error(ErrorCode.GENERAL)
_TYPE_MISMATCH = Reason.error(ErrorCode.TYPE_MISMATCH)
_NOT_FOUND = Reason.error(ErrorCode.FLAG_NOT_FOUND)
_ON_KINDS = (ReasonKind.TARGET_MATCH, ReasonKind.RULE_MATCH, ReasonKind.FALLTHROUGH)


class InitError(Exception):
    """:meth:`Client.wait_for_initialization` returned without the server's data."""

    def __init__(self, message: str, status: Status) -> None:
        super().__init__(message)
        self.status = status


class InitTimeoutError(InitError):
    """Not initialized in time; the client keeps trying in the background."""


class KeyRejectedError(InitError):
    """The server refused the API key (HTTP 401 or 403)."""


class Client:
    """A client of one Vexil environment, authenticated by a server API key (``vx_srv_…``).

    Creating it starts a background thread (a daemon) that fetches the ruleset and follows
    the event stream; evaluations before the first fetch serve the bootstrap ruleset if one
    was given, else the callers' defaults. Thread-safe; share one client per process and
    call :meth:`close` on shutdown (or use it as a context manager).

    :param url: the server, e.g. ``http://127.0.0.1:8080`` (a path prefix is kept).
    :param sdk_key: a server API key of the environment.
    :param bootstrap: a ruleset to start from: a path to a JSON file (what
        ``GET /api/v1/sdk/config`` returns), or the parsed document.
    :param offline: evaluate the bootstrap ruleset only; no network at all.
    :param stream: follow the event stream (else poll every ``poll_interval`` seconds).
    :param send_insights: report evaluation counts and tracked events to the server every
        ``insights_interval`` seconds (best effort; counts are kept per thread, in memory).
    """

    def __init__(
        self,
        url: Optional[str] = None,
        sdk_key: Optional[str] = None,
        *,
        bootstrap: Union[str, os.PathLike[str], Mapping[str, Any], None] = None,
        offline: bool = False,
        stream: bool = True,
        poll_interval: float = 30.0,
        initial_backoff: float = 1.0,
        max_backoff: float = 30.0,
        connect_timeout: float = 10.0,
        request_timeout: float = 30.0,
        stream_read_timeout: float = 45.0,
        send_insights: bool = True,
        insights_interval: float = 60.0,
        clock: Optional[Callable[[], int]] = None,
    ) -> None:
        for name, value in (
            ("poll_interval", poll_interval),
            ("initial_backoff", initial_backoff),
            ("max_backoff", max_backoff),
            ("connect_timeout", connect_timeout),
            ("request_timeout", request_timeout),
            ("stream_read_timeout", stream_read_timeout),
            ("insights_interval", insights_interval),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        self._listeners = Listeners()
        self._status = StatusCell(Status(State.NOT_READY, "starting", None, time.time()))
        self._store = Store(self._listeners, self._status)
        self._clock = clock
        self._closed = False
        self._close_lock = threading.Lock()
        if bootstrap is not None:
            self._store.replace(read_bootstrap(bootstrap), notify=False)
        http: Optional[Http] = None
        if offline:
            if bootstrap is None:
                raise ValueError("offline mode needs a bootstrap ruleset")
            self._status.set(State.READY, "offline", self._store.version)
        else:
            if not url or not sdk_key:
                raise ValueError("a server URL and a server API key are required (or offline=True with a bootstrap)")
            http = Http(url, sdk_key, connect_timeout, request_timeout, 64 << 20)
        self._url = url if not offline else None
        self._insights: Optional[Insights] = (
            Insights(http, insights_interval) if send_insights and http is not None else None
        )
        self._count = self._insights.count if self._insights is not None else None
        self._sync: Optional[SyncThread] = None
        if http is not None:
            opts = Options(
                stream=stream,
                poll_interval=poll_interval,
                initial_backoff=initial_backoff,
                max_backoff=max_backoff,
                connect_timeout=connect_timeout,
                request_timeout=request_timeout,
                stream_read_timeout=stream_read_timeout,
            )
            self._sync = SyncThread(self._store, http, opts, self._listeners)
            self._sync.start()

    # ------------------------------------------------------------------ evaluating

    def _evaluate(self, key: str, context: Context) -> Union[Evaluation, Reason]:
        """The engine's result, or the reason there is none (no data, or a bug)."""
        snap = self._store.snapshot
        if snap is None:
            return _NOT_READY
        flag = snap.flags.get(key)
        if flag is None:
            return _NOT_FOUND
        now = (self._clock() if self._clock is not None else int(time.time() * 1000)) if snap.uses_now else 0
        try:
            ev = flag.evaluate(context if context is not None else _EMPTY, now, snap.flags, snap.segments, 0)
        except Exception:
            log.exception("vexil: evaluating flag %r failed", key)
            return _GENERAL
        count = self._count
        if count is not None and ev.variation is not None:
            count((key, ev.variation))
        return ev

    def bool_value(self, key: str, context: Context, default: bool) -> bool:
        """A boolean flag's value for ``context``, or ``default`` on any error."""
        ev = self._evaluate(key, context)
        if type(ev) is Evaluation and type(ev.value) is bool:
            return ev.value
        return default

    def string_value(self, key: str, context: Context, default: str) -> str:
        """A string flag's value, or ``default`` on any error."""
        ev = self._evaluate(key, context)
        if type(ev) is Evaluation and isinstance(ev.value, str):
            return ev.value
        return default

    def number_value(self, key: str, context: Context, default: Union[int, float]) -> Union[int, float]:
        """A number flag's value (an ``int`` or a ``float``, as stored), or ``default``."""
        ev = self._evaluate(key, context)
        if type(ev) is Evaluation and is_number(ev.value):
            return ev.value  # type: ignore[no-any-return]
        return default

    def json_value(self, key: str, context: Context, default: Any) -> Any:
        """Any flag's value as JSON (a copy: safe to modify), or ``default`` on any error."""
        ev = self._evaluate(key, context)
        if type(ev) is Evaluation and ev.variation is not None:
            return copy_value(ev.value)
        return default

    def _detail(self, key: str, context: Context, default: T, accept: Callable[[Any], bool]) -> EvaluationDetail[T]:
        ev = self._evaluate(key, context)
        if isinstance(ev, Reason):
            return EvaluationDetail(default, None, ev, None)
        if ev.variation is None:
            return EvaluationDetail(default, None, ev.reason, ev.flag_version)
        if not accept(ev.value):
            return EvaluationDetail(default, None, _TYPE_MISMATCH, ev.flag_version)
        return EvaluationDetail(copy_value(ev.value), ev.variation, ev.reason, ev.flag_version)

    def bool_detail(self, key: str, context: Context, default: bool) -> EvaluationDetail[bool]:
        """Like :meth:`bool_value`, with the variation, the reason and the flag's version."""
        return self._detail(key, context, default, lambda v: type(v) is bool)

    def string_detail(self, key: str, context: Context, default: str) -> EvaluationDetail[str]:
        return self._detail(key, context, default, lambda v: isinstance(v, str))

    def number_detail(
        self, key: str, context: Context, default: Union[int, float]
    ) -> EvaluationDetail[Union[int, float]]:
        return self._detail(key, context, default, is_number)

    def json_detail(self, key: str, context: Context, default: Any) -> EvaluationDetail[Any]:
        return self._detail(key, context, default, lambda v: True)

    def evaluate_all(self, context: Context = None) -> Dict[str, EvaluationDetail[Any]]:
        """Every flag evaluated for ``context``, by key; an error (e.g.
        ``TARGETING_KEY_MISSING``) has the value ``None`` and its reason. Empty before the
        client has data."""
        snap = self._store.snapshot
        if snap is None:
            return {}
        now = (self._clock() if self._clock is not None else int(time.time() * 1000)) if snap.uses_now else 0
        try:
            results = snap.evaluate_all(context, now)
        except Exception:
            log.exception("vexil: evaluating every flag failed")
            return {}
        count = self._count
        out: Dict[str, EvaluationDetail[Any]] = {}
        for key, ev in results.items():
            if count is not None and ev.variation is not None:
                count((key, ev.variation))
            out[key] = EvaluationDetail(copy_value(ev.value), ev.variation, ev.reason, ev.flag_version)
        return out

    def get_all_flags(self, context: Context = None, user_id: Optional[str] = None) -> Dict[str, Any]:
        """``{flag key: value}`` for every flag, evaluated for ``context`` (with ``user_id``
        as its ``targetingKey`` when given). A flag that cannot be evaluated for this
        context (a rollout without the attribute it buckets by) has the value ``None``."""
        ctx = with_user(context, user_id)
        return {key: d.value for key, d in self.evaluate_all(ctx).items()}

    def evaluate_flag(self, flag_key: str, user_id: Optional[str] = None, context: Context = None) -> Dict[str, Any]:
        """One flag for one user: ``{"enabled", "value", "variation", "reason"}``.

        ``user_id`` becomes the context's ``targetingKey``. ``reason`` is the reason kind
        (``"RULE_MATCH"``, ``"OFF"``, ``"ERROR"``, …). ``enabled`` is the value for a boolean
        flag; for other types it says whether the flag is on for this user (served by a
        target, a rule or the fallthrough, not the off variation or an error)."""
        ev = self._evaluate(flag_key, with_user(context, user_id))
        if isinstance(ev, Reason):
            return {"enabled": False, "value": None, "variation": None, "reason": ReasonKind.ERROR.value}
        if ev.variation is None:
            return {"enabled": False, "value": None, "variation": None, "reason": ev.reason.kind.value}
        enabled = ev.value is True if ev.flag_type == "boolean" else ev.reason.kind in _ON_KINDS
        return {
            "enabled": enabled,
            "value": copy_value(ev.value),
            "variation": ev.variation,
            "reason": ev.reason.kind.value,
        }

    def flag_keys(self) -> List[str]:
        """The keys of every flag the client knows, sorted."""
        snap = self._store.snapshot
        return snap.flag_keys() if snap is not None else []

    # ------------------------------------------------------------------ insights

    def track(self, key: str, context: Context = None, value: Optional[float] = None) -> None:
        """Records an event (a conversion, an error…) for the server to attribute to the
        variations the context is served. Sent in the background with the evaluation
        counts; a no-op when insights are switched off or the client is offline."""
        if not isinstance(key, str) or not key:
            raise ValueError("an event key is required")
        if value is not None and not is_number(value):
            raise TypeError("value must be a number")
        if self._insights is not None and not self._closed:
            self._insights.track(key, context if context is not None else _EMPTY, value)

    def flush(self) -> None:
        """Sends the evaluation counts and tracked events gathered so far, now."""
        if self._insights is not None:
            self._insights.flush()

    # ------------------------------------------------------------------ status

    @property
    def status(self) -> Status:
        """The current status: state, reason and the version of the data in use."""
        return self._status.get()

    def is_ready(self) -> bool:
        return self._status.get().state is State.READY

    def wait_for_initialization(self, timeout: float = 5.0) -> None:
        """Waits until the client has the server's current data (status ``READY``), at most
        ``timeout`` seconds. Raises :class:`InitTimeoutError` (the client keeps trying in
        the background) or :class:`KeyRejectedError`."""
        status = self._status.wait_for(lambda s: s.state is State.READY or s.state is State.ERROR, timeout)
        if status.state is State.READY:
            return
        if status.state is State.ERROR:
            raise KeyRejectedError(f"the server rejected the API key: {status.reason}", status)
        raise InitTimeoutError(f"not initialized within {timeout:g}s: {status.reason}", status)

    # ------------------------------------------------------------------ listeners

    def on_change(self, listener: ChangeListener) -> int:
        """Calls ``listener(FlagChange)`` after every update that may change any flag's
        evaluation, with the changed keys. Returns an id for :meth:`remove_listener`."""
        return self._listeners.add("change", None, listener)

    def on_flag_change(self, key: str, listener: ChangeListener) -> int:
        """Calls ``listener(FlagChange)`` after every update that may change flag ``key``:
        its own definition, or a prerequisite or segment it uses."""
        return self._listeners.add("flag", key, listener)

    def on_status_change(self, listener: StatusListener) -> int:
        """Calls ``listener(Status)`` whenever the status's state or reason changes."""
        return self._listeners.add("status", None, listener)

    def remove_listener(self, listener_id: int) -> bool:
        """Removes a listener; False if it was already gone."""
        return self._listeners.remove(listener_id)

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Stops the background thread, sends the last counts and events, and drops every
        listener. Evaluations keep serving the last data; the status becomes ``STALE``
        ("client closed"). Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        if self._sync is not None:
            self._sync.close()
        else:
            state = State.STALE if self._store.version is not None else State.NOT_READY
            status = self._status.set(state, "client closed", self._store.version)
            if status is not None:
                self._listeners.emit(status)
        if self._insights is not None:
            self._insights.close()
        self._listeners.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self._status.get()
        return f"Client(url={self._url or '<offline>'!r}, state={s.state.value}, version={s.version})"


__all__ = ["Client", "InitError", "InitTimeoutError", "KeyRejectedError"]
