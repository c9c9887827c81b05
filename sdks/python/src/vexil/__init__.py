"""Vexil's Python SDK: feature flags evaluated in process, kept current by server-sent
events from a Vexil server.

>>> import vexil
>>> client = vexil.Client("http://127.0.0.1:8080", "vx_srv_…")     # doctest: +SKIP
>>> client.bool_value("new-checkout", {"targetingKey": "user-42"}, False)  # doctest: +SKIP
"""

from ._version import __version__
from .client import Client, InitError, InitTimeoutError, KeyRejectedError
from .detail import ErrorCode, EvaluationDetail, Reason, ReasonKind
from .engine import Evaluation, RulesetError, Snapshot
from .events import FlagChange
from .status import State, Status

__all__ = [
    "Client",
    "ErrorCode",
    "Evaluation",
    "EvaluationDetail",
    "FlagChange",
    "InitError",
    "InitTimeoutError",
    "KeyRejectedError",
    "Reason",
    "ReasonKind",
    "RulesetError",
    "Snapshot",
    "State",
    "Status",
    "__version__",
]
