"""Small helpers of the client: copying flag values, reading a bootstrap file, adding a
user id to a context."""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Optional, Union

from .engine import RulesetError

Context = Optional[Mapping[str, Any]]


def copy_value(value: Any) -> Any:
    """A copy of a JSON container (flag values are shared by every evaluation)."""
    if isinstance(value, dict):
        return {k: copy_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_value(v) for v in value]
    return value


def is_number(v: Any) -> bool:
    return (type(v) is int or type(v) is float) or (isinstance(v, (int, float)) and not isinstance(v, bool))


def with_user(context: Context, user_id: Optional[str]) -> Context:
    if user_id is None:
        return context
    ctx = dict(context) if context is not None else {}
    ctx["targetingKey"] = user_id
    return ctx


def read_bootstrap(source: Union[str, os.PathLike[str], Mapping[str, Any]]) -> Mapping[str, Any]:
    if isinstance(source, Mapping):
        return source
    try:
        with open(source, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise ValueError(f"cannot read bootstrap ruleset {os.fspath(source)!r}: {e}") from None
    except ValueError as e:
        raise RulesetError([("", f"bootstrap ruleset {os.fspath(source)!r} is not JSON: {e}")]) from None
    if not isinstance(doc, dict):
        raise RulesetError([("", f"bootstrap ruleset {os.fspath(source)!r} is not a JSON object")])
    return doc
