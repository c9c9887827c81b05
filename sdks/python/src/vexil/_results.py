"""The engine's result type: one evaluation of one flag."""

from __future__ import annotations

from typing import Any, Dict, Optional

from .detail import ErrorCode, Reason, ReasonKind


class Evaluation:
    """One evaluation result of the engine: the served value and variation (both ``None``
    on error), the reason, and the flag's version and type (``None`` when not found).
    Instances are shared between evaluations: treat them, and the value, as read-only."""

    __slots__ = ("flag_key", "flag_type", "flag_version", "ofrep_reason", "reason", "value", "variation")

    def __init__(
        self,
        value: Any,
        variation: Optional[str],
        reason: Reason,
        flag_version: Optional[int],
        flag_type: Optional[str],
        ofrep_reason: str,
        flag_key: Optional[str],
    ) -> None:
        self.value = value
        self.variation = variation
        self.reason = reason
        self.flag_version = flag_version
        self.flag_type = flag_type
        self.ofrep_reason = ofrep_reason
        """The OpenFeature reason: STATIC, DEFAULT, TARGETING_MATCH, SPLIT, DISABLED or ERROR."""
        self.flag_key = flag_key

    def to_dict(self) -> Dict[str, Any]:
        """The server's evaluation record (``POST /api/v1/evaluate``), without the key."""
        return {
            "value": self.value,
            "variation": self.variation,
            "reason": self.reason.to_dict(),
            "flag_version": self.flag_version,
        }

    def __repr__(self) -> str:
        return (
            f"Evaluation(value={self.value!r}, variation={self.variation!r}, "
            f"reason={self.reason!r}, flag_version={self.flag_version!r})"
        )


FLAG_NOT_FOUND = Evaluation(None, None, Reason.error(ErrorCode.FLAG_NOT_FOUND), None, None, "ERROR", None)


def ofrep_reason(reason: Reason, is_static: bool) -> str:
    kind = reason.kind
    if kind is ReasonKind.OFF or kind is ReasonKind.PREREQUISITE_FAILED:
        return "DISABLED"
    if kind is ReasonKind.ERROR:
        return "ERROR"
    if reason.in_rollout:
        return "SPLIT"
    if kind is ReasonKind.FALLTHROUGH:
        return "STATIC" if is_static else "DEFAULT"
    return "TARGETING_MATCH"
