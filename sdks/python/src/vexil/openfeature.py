"""An OpenFeature provider for ``openfeature-sdk`` (install ``vexil-sdk[openfeature]``):
flags are resolved locally by a :class:`vexil.Client`.

>>> from openfeature import api                                   # doctest: +SKIP
>>> from vexil import Client
>>> from vexil.openfeature import VexilProvider
>>> api.set_provider_and_wait(VexilProvider(Client(url, server_key)))  # doctest: +SKIP
>>> api.get_client().get_boolean_value("new-checkout", False, EvaluationContext("user-1"))

Provider events follow the client's status and data: ``PROVIDER_READY`` when it has the
server's current data, ``PROVIDER_STALE`` when the server is unreachable and the last
known data is served, ``PROVIDER_ERROR`` when the server rejects the key, and
``PROVIDER_CONFIGURATION_CHANGED`` (with ``flags_changed``) when flag definitions change.
``track()`` forwards to :meth:`vexil.Client.track`.
"""

from __future__ import annotations

import datetime
import logging
import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Protocol, Sequence, TypeVar, Union

from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import ErrorCode as OfErrorCode
from openfeature.exception import GeneralError, ProviderNotReadyError
from openfeature.flag_evaluation import FlagResolutionDetails
from openfeature.flag_evaluation import Reason as OfReason
from openfeature.provider import AbstractProvider, Metadata

from ._support import copy_value
from .client import Client, InitTimeoutError, KeyRejectedError
from .detail import ErrorCode, Reason
from .engine import Evaluation
from .events import FlagChange
from .status import State, Status

if TYPE_CHECKING:
    from openfeature.flag_evaluation import FlagValueType


class TrackingDetails(Protocol):
    """What ``track`` reads of OpenFeature's ``TrackingEventDetails`` (openfeature-sdk 0.9+)."""

    value: Optional[float]


log = logging.getLogger("vexil")

T = TypeVar("T")

_ERRORS = {
    ErrorCode.FLAG_NOT_FOUND: (OfErrorCode.FLAG_NOT_FOUND, "flag '{}' not found"),
    ErrorCode.TARGETING_KEY_MISSING: (
        OfErrorCode.TARGETING_KEY_MISSING,
        "flag '{}' buckets by an attribute the context lacks",
    ),
    ErrorCode.TYPE_MISMATCH: (OfErrorCode.TYPE_MISMATCH, "flag '{}' is of another type"),
    ErrorCode.CLIENT_NOT_READY: (OfErrorCode.PROVIDER_NOT_READY, "no flag data yet"),
    ErrorCode.GENERAL: (OfErrorCode.GENERAL, "evaluating flag '{}' failed"),
}


def to_context(context: Optional[EvaluationContext]) -> Dict[str, Any]:
    """An OpenFeature context as a Vexil context: ``targeting_key`` becomes
    ``targetingKey``; date-times become epoch milliseconds (what ``before``/``after``
    compare); other attributes are kept as they are."""
    if context is None:
        return {}
    out = {name: _attribute(value) for name, value in (context.attributes or {}).items()}
    if context.targeting_key is not None:
        out["targetingKey"] = context.targeting_key
    return out


def _attribute(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return int(value.timestamp() * 1000)
    if isinstance(value, Mapping):
        return {k: _attribute(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_attribute(v) for v in value]
    return value


class VexilProvider(AbstractProvider):
    """An OpenFeature provider that evaluates locally through a :class:`vexil.Client`.

    :param client: the client (``Client(url, server_key)``); the provider closes it on
        ``shutdown`` unless ``close_client`` is False.
    :param init_timeout: how long ``initialize`` (run by ``api.set_provider``) waits for the
        first fetch. After that, with no data, the provider reports ``PROVIDER_ERROR`` and
        keeps trying; with a bootstrap ruleset it starts ``READY`` and turns ``STALE``.
    """

    def __init__(self, client: Client, init_timeout: float = 10.0, close_client: bool = True) -> None:
        super().__init__()
        self.client = client
        self._init_timeout = init_timeout
        self._close_client = close_client
        self._metadata = Metadata(name="Vexil")
        self._lock = threading.Lock()
        self._initialized = False
        self._last: Optional[State] = None
        self._listener_ids: List[int] = []

    def get_metadata(self) -> Metadata:
        return self._metadata

    # ------------------------------------------------------------------ lifecycle

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        if not self._listener_ids:
            self._listener_ids = [
                self.client.on_status_change(self._status_changed),
                self.client.on_change(self._flags_changed),
            ]
        try:
            self.client.wait_for_initialization(self._init_timeout)
        except KeyRejectedError as e:
            self._done_initializing(State.ERROR)
            raise GeneralError(str(e)) from None
        except InitTimeoutError as e:
            if self.client.status.version is None:
                self._done_initializing(State.ERROR)
                raise ProviderNotReadyError(str(e)) from None
            log.warning("vexil provider: %s; serving the bootstrap ruleset meanwhile", e)
            self._done_initializing(State.READY)
            # The registry reports READY once this returns; say at once that the data is stale.
            timer = threading.Timer(0.05, self._recheck)
            timer.daemon = True
            timer.start()
            return
        self._done_initializing(State.READY)

    def _done_initializing(self, reported: State) -> None:
        with self._lock:
            self._initialized = True
            self._last = reported

    def _recheck(self) -> None:
        self._status_changed(self.client.status)

    def shutdown(self) -> None:
        for listener_id in self._listener_ids:
            self.client.remove_listener(listener_id)
        self._listener_ids = []
        if self._close_client:
            self.client.close()

    def _status_changed(self, status: Status) -> None:
        with self._lock:
            # Before initialize returns, the registry itself reports the outcome.
            if not self._initialized or status.state is State.NOT_READY or status.state is self._last:
                return
            self._last = status.state
        if status.state is State.READY:
            self.emit_provider_ready(ProviderEventDetails())
        elif status.state is State.STALE:
            self.emit_provider_stale(ProviderEventDetails(message=status.reason))
        else:
            self.emit_provider_error(ProviderEventDetails(message=status.reason, error_code=OfErrorCode.GENERAL))

    def _flags_changed(self, change: FlagChange) -> None:
        if self._initialized:
            self.emit_provider_configuration_changed(ProviderEventDetails(flags_changed=list(change.keys)))

    # ------------------------------------------------------------------ resolving

    def _resolve(
        self,
        flag_key: str,
        default: T,
        context: Optional[EvaluationContext],
        type_name: str,
        convert: Callable[[Any], Optional[Any]],
    ) -> FlagResolutionDetails[T]:
        ev = self.client._evaluate(flag_key, to_context(context))
        if isinstance(ev, Reason):
            return _error(default, ev.error_code or ErrorCode.GENERAL, flag_key)
        assert isinstance(ev, Evaluation)
        if ev.variation is None:
            return _error(default, ev.reason.error_code or ErrorCode.GENERAL, flag_key)
        value = convert(ev.value)
        if value is None:
            return FlagResolutionDetails(
                value=default,
                error_code=OfErrorCode.TYPE_MISMATCH,
                error_message=f"flag '{flag_key}' is not of type {type_name}",
                reason=OfReason.ERROR,
            )
        metadata: Dict[str, Union[bool, int, float, str]] = {}
        if ev.flag_version is not None:
            metadata["flagVersion"] = ev.flag_version
        if ev.reason.rule_id is not None:
            metadata["ruleId"] = ev.reason.rule_id
        if ev.reason.rule_index is not None:
            metadata["ruleIndex"] = ev.reason.rule_index
        return FlagResolutionDetails(value=value, reason=ev.ofrep_reason, variant=ev.variation, flag_metadata=metadata)

    def resolve_boolean_details(
        self, flag_key: str, default_value: bool, evaluation_context: Optional[EvaluationContext] = None
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(flag_key, default_value, evaluation_context, "boolean", _bool)

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: Optional[EvaluationContext] = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, default_value, evaluation_context, "string", _str)

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: Optional[EvaluationContext] = None
    ) -> FlagResolutionDetails[int]:
        return self._resolve(flag_key, default_value, evaluation_context, "integer", _int)

    def resolve_float_details(
        self, flag_key: str, default_value: float, evaluation_context: Optional[EvaluationContext] = None
    ) -> FlagResolutionDetails[float]:
        return self._resolve(flag_key, default_value, evaluation_context, "float", _float)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Union[Sequence[FlagValueType], Mapping[str, FlagValueType]],
        evaluation_context: Optional[EvaluationContext] = None,
    ) -> FlagResolutionDetails[Union[Sequence[FlagValueType], Mapping[str, FlagValueType]]]:
        return self._resolve(flag_key, default_value, evaluation_context, "object", _object)

    # ------------------------------------------------------------------ tracking

    def track(
        self,
        tracking_event_name: str,
        evaluation_context: Optional[EvaluationContext] = None,
        tracking_event_details: Optional[TrackingDetails] = None,
    ) -> None:
        """Records the event with its numeric ``value`` (other details are not sent)."""
        value = tracking_event_details.value if tracking_event_details is not None else None
        self.client.track(tracking_event_name, to_context(evaluation_context), value)


def _error(default: T, code: ErrorCode, flag_key: str) -> FlagResolutionDetails[T]:
    of_code, message = _ERRORS.get(code, _ERRORS[ErrorCode.GENERAL])
    return FlagResolutionDetails(
        value=default, error_code=of_code, error_message=message.format(flag_key), reason=OfReason.ERROR
    )


def _bool(v: Any) -> Optional[bool]:
    return v if isinstance(v, bool) else None


def _str(v: Any) -> Optional[str]:
    return v if isinstance(v, str) else None


def _int(v: Any) -> Optional[int]:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return None


def _float(v: Any) -> Optional[float]:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    return None


def _object(v: Any) -> Optional[Any]:
    return copy_value(v) if isinstance(v, (dict, list)) else None


__all__ = ["VexilProvider", "to_context"]
