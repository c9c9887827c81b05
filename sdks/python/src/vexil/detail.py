"""What evaluations return: the reason a value was served, the SDK's error codes, and the
``*_detail`` getters' result."""

from __future__ import annotations

import enum
from typing import Any, Dict, Generic, NamedTuple, Optional, TypeVar

T = TypeVar("T")


class ReasonKind(str, enum.Enum):
    """Why a value was served, in the order evaluation checks them."""

    OFF = "OFF"
    """The flag is disabled in this environment: its off variation."""
    PREREQUISITE_FAILED = "PREREQUISITE_FAILED"
    """A prerequisite flag is off or serves another variation: the off variation."""
    TARGET_MATCH = "TARGET_MATCH"
    """The context's targetingKey is listed in an individual target."""
    RULE_MATCH = "RULE_MATCH"
    """The first rule whose clauses all match."""
    FALLTHROUGH = "FALLTHROUGH"
    """No target or rule applied: the default serve."""
    ERROR = "ERROR"
    """The caller's default was used; ``error_code`` says why."""

    def __str__(self) -> str:
        return self.value


class ErrorCode(str, enum.Enum):
    """Why an evaluation fell back to the caller's default."""

    FLAG_NOT_FOUND = "FLAG_NOT_FOUND"
    """No such flag in the environment (or it is archived)."""
    TARGETING_KEY_MISSING = "TARGETING_KEY_MISSING"
    """A rollout buckets by an attribute the context lacks (or that is not a string or integer)."""
    TYPE_MISMATCH = "TYPE_MISMATCH"
    """The served value is not of the type asked for (e.g. a string flag read as a boolean)."""
    CLIENT_NOT_READY = "CLIENT_NOT_READY"
    """No flag data yet: the first fetch has not succeeded and there is no bootstrap ruleset."""
    GENERAL = "GENERAL"
    """The evaluation failed unexpectedly (a bug; it is logged)."""

    def __str__(self) -> str:
        return self.value


class Reason(NamedTuple):
    """Why a value was served. :meth:`to_dict` gives the server's reason object, with the
    optional parts present only when they apply."""

    kind: ReasonKind
    in_rollout: bool = False
    rule_id: Optional[str] = None
    rule_index: Optional[int] = None
    error_code: Optional[ErrorCode] = None
    prerequisite_key: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"kind": self.kind.value, "in_rollout": self.in_rollout}
        if self.rule_id is not None:
            out["rule_id"] = self.rule_id
        if self.rule_index is not None:
            out["rule_index"] = self.rule_index
        if self.error_code is not None:
            out["error_code"] = self.error_code.value
        if self.prerequisite_key is not None:
            out["prerequisite_key"] = self.prerequisite_key
        return out

    @staticmethod
    def error(code: ErrorCode) -> Reason:
        return Reason(ReasonKind.ERROR, False, error_code=code)


class EvaluationDetail(Generic[T]):
    """The result of a ``*_detail`` getter: the value (the caller's default on any error),
    the served variation's key, why, and the flag configuration's version."""

    __slots__ = ("flag_version", "reason", "value", "variation")

    def __init__(self, value: T, variation: Optional[str], reason: Reason, flag_version: Optional[int]) -> None:
        self.value = value
        self.variation = variation
        self.reason = reason
        self.flag_version = flag_version

    @property
    def error_code(self) -> Optional[ErrorCode]:
        """The error that made this the caller's default, if any."""
        return self.reason.error_code

    @property
    def is_default(self) -> bool:
        """Whether the value is the caller's default because of an error."""
        return self.reason.kind is ReasonKind.ERROR

    def to_dict(self) -> Dict[str, Any]:
        return {
            "value": self.value,
            "variation": self.variation,
            "reason": self.reason.to_dict(),
            "flag_version": self.flag_version,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EvaluationDetail):
            return NotImplemented
        return (
            self.value == other.value
            and self.variation == other.variation
            and self.reason == other.reason
            and self.flag_version == other.flag_version
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"EvaluationDetail(value={self.value!r}, variation={self.variation!r}, "
            f"reason={self.reason!r}, flag_version={self.flag_version!r})"
        )
