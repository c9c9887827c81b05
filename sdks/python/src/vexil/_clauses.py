"""Clauses compiled into closures: operator values are parsed once (regexes, versions,
networks, dates, numbers), attribute paths are split once, and evaluating a clause is one
call ``clause(context, now, segments) -> bool``.

Matching rules: a clause matches when any of its values matches, and ``negate`` inverts
that; an attribute that is missing, ``null`` or of a type the operator cannot compare makes
the clause false whether negated or not. An array attribute matches when any element
matches; if no element is comparable the clause is false, negated or not.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple

from . import _operands as ops

log = logging.getLogger("vexil")

NOW_ATTRIBUTE = "$now"
"""The evaluation time in epoch milliseconds, as an attribute and as a before/after value."""

MAX_DEPTH = 64
"""Bound on nested segments and prerequisite chains (cycles are rejected when compiling)."""

Context = Mapping[str, Any]
Clause = Callable[[Context, int, Mapping[str, Any]], bool]
Getter = Callable[[Context, int], Any]
Test = Callable[[Any, int], Optional[bool]]
Errors = List[Tuple[str, str]]

_MISSING = object()

OPERATORS = frozenset(
    [
        "in",
        "starts_with",
        "ends_with",
        "contains",
        "matches",
        "lt",
        "lte",
        "gt",
        "gte",
        "before",
        "after",
        "semver_eq",
        "semver_lt",
        "semver_lte",
        "semver_gt",
        "semver_gte",
        "in_cidr",
        "exists",
        "in_segment",
    ]
)


# --------------------------------------------------------------------------- attributes


def getter(name: str) -> Getter:
    """The attribute lookup for ``name``: ``$now``, a plain name, or a dotted path that walks
    nested objects and falls back to the literal key when the walk fails."""
    if name == NOW_ATTRIBUTE:
        return lambda ctx, now: now
    if "." not in name:
        return lambda ctx, now: ctx.get(name)
    first, *rest = name.split(".")

    def get(ctx: Context, now: int) -> Any:
        cur = ctx.get(first, _MISSING)
        if cur is not _MISSING:
            for part in rest:
                if not isinstance(cur, Mapping):
                    cur = _MISSING
                    break
                cur = cur.get(part, _MISSING)
                if cur is _MISSING:
                    break
            if cur is not _MISSING:
                return cur
        return ctx.get(name)

    return get


def _array(test: Test, items: Sequence[Any], now: int) -> Optional[bool]:
    result: Optional[bool] = None
    for item in items:
        r = test(item, now)
        if r is True:
            return True
        if r is False:
            result = False
    return result


def _with_lookup(name: str, test: Test, negate: bool) -> Clause:
    if name != NOW_ATTRIBUTE and "." not in name:

        def by_name(ctx: Context, now: int, segs: Mapping[str, Any]) -> bool:
            v = ctx.get(name)
            if v is None:
                return False
            t = type(v)
            r = _array(test, v, now) if t is list or t is tuple else test(v, now)
            if r is None:
                return False
            return r is not negate

        return by_name
    get = getter(name)

    def by_path(ctx: Context, now: int, segs: Mapping[str, Any]) -> bool:
        v = get(ctx, now)
        if v is None:
            return False
        t = type(v)
        r = _array(test, v, now) if t is list or t is tuple else test(v, now)
        if r is None:
            return False
        return r is not negate

    return by_path


# --------------------------------------------------------------------------- operators


def _in(values: Sequence[Any], ci: bool) -> Test:
    strs = frozenset(v.lower() if ci else v for v in values if isinstance(v, str))
    nums = frozenset(ops.float_of(v) for v in values if ops.is_json_number(v))
    has_true = any(v is True for v in values)
    has_false = any(v is False for v in values)
    has_bools = has_true or has_false

    def in_str(v: str) -> Optional[bool]:
        s = v.lower() if ci else v
        if not nums:
            return (s in strs) if strs else None
        if strs and s in strs:
            return True
        x = ops.decimal_of(v)
        if x is not None:
            return x in nums
        return False if strs else None

    def test(v: Any, now: int) -> Optional[bool]:
        t = type(v)
        if t is str:
            return in_str(v)
        if t is bool:
            return (has_true if v else has_false) if has_bools else None
        if isinstance(v, str):
            return in_str(str.__str__(v))
        if nums:
            x = ops.float_of(v)
            if x is not None:
                return x in nums
        return None

    return test


def _string_op(op: str, values: Sequence[str], ci: bool) -> Test:
    vals = tuple(v.lower() for v in values) if ci else tuple(values)

    def text(v: Any) -> Optional[str]:
        if type(v) is str:
            return v.lower() if ci else v
        if isinstance(v, str):
            return str.__str__(v).lower() if ci else str.__str__(v)
        return None

    if op == "starts_with":

        def starts(v: Any, now: int) -> Optional[bool]:
            s = text(v)
            return None if s is None else s.startswith(vals)

        return starts
    if op == "ends_with":

        def ends(v: Any, now: int) -> Optional[bool]:
            s = text(v)
            return None if s is None else s.endswith(vals)

        return ends

    def contains(v: Any, now: int) -> Optional[bool]:
        s = text(v)
        if s is None:
            return None
        for x in vals:
            if x in s:
                return True
        return False

    return contains


def _matches(patterns: Sequence[re.Pattern[str]]) -> Test:
    def test(v: Any, now: int) -> Optional[bool]:
        if not isinstance(v, str):
            return None
        for p in patterns:
            if p.search(v) is not None:
                return True
        return False

    return test


def _numeric(op: str, values: Sequence[float]) -> Test:
    # "Any value" semantics: x < some value ⟺ x < the largest, and so on.
    hi, lo = max(values), min(values)
    number_of = ops.number_of
    if op == "lt":
        return lambda v, now: None if (x := number_of(v)) is None else x < hi
    if op == "lte":
        return lambda v, now: None if (x := number_of(v)) is None else x <= hi
    if op == "gt":
        return lambda v, now: None if (x := number_of(v)) is None else x > lo
    return lambda v, now: None if (x := number_of(v)) is None else x >= lo


def _date(after: bool, values: Sequence[int], with_now: bool) -> Test:
    date_of = ops.date_of
    if after:
        bound = min(values) if values else None

        def later(v: Any, now: int) -> Optional[bool]:
            t = date_of(v)
            if t is None:
                return None
            return (bound is not None and t > bound) or (with_now and t > now)

        return later
    bound = max(values) if values else None

    def earlier(v: Any, now: int) -> Optional[bool]:
        t = date_of(v)
        if t is None:
            return None
        return (bound is not None and t < bound) or (with_now and t < now)

    return earlier


def _semver(op: str, versions: Sequence[ops.VersionKey]) -> Test:
    context_version = ops.context_version
    if op == "semver_eq":
        keys = frozenset(versions)
        return lambda v, now: None if (k := context_version(v)) is None else k in keys
    hi, lo = max(versions), min(versions)
    if op == "semver_lt":
        return lambda v, now: None if (k := context_version(v)) is None else k < hi
    if op == "semver_lte":
        return lambda v, now: None if (k := context_version(v)) is None else k <= hi
    if op == "semver_gt":
        return lambda v, now: None if (k := context_version(v)) is None else k > lo
    return lambda v, now: None if (k := context_version(v)) is None else k >= lo


def _cidr(networks: Sequence[ops.Network]) -> Test:
    def test(v: Any, now: int) -> Optional[bool]:
        if not isinstance(v, str):
            return None
        ip = ops.parse_ip(str.__str__(v))
        if ip is None:
            return None
        version, value = ip
        for net_version, net, mask in networks:
            if net_version == version and value & mask == net:
                return True
        return False

    return test


# --------------------------------------------------------------------------- compiling


class CompiledClause:
    """A clause ready for evaluation, and what it refers to."""

    __slots__ = ("match", "reads_now", "segments")

    def __init__(self, match: Clause, segments: Tuple[str, ...], reads_now: bool) -> None:
        self.match = match
        self.segments = segments
        self.reads_now = reads_now


def compile_clause(
    raw: Any, path: str, segment_exists: Callable[[str], bool], errors: Errors
) -> Optional[CompiledClause]:
    """Compiles one clause, appending every problem (with its path) to ``errors``."""
    before = len(errors)
    if not isinstance(raw, Mapping):
        errors.append((path, "must be an object"))
        return None
    op = raw.get("op")
    if not isinstance(op, str) or op not in OPERATORS:
        errors.append((f"{path}.op", f"unknown operator {op!r}"))
        return None
    attribute = raw.get("attribute", "")
    values = raw.get("values", [])
    negate = raw.get("negate", False)
    ci = raw.get("case_insensitive", False)
    if not isinstance(attribute, str):
        errors.append((f"{path}.attribute", "must be a string"))
        attribute = ""
    if not isinstance(values, list):
        errors.append((f"{path}.values", "must be an array"))
        values = []
    if not isinstance(negate, bool):
        errors.append((f"{path}.negate", "must be a boolean"))
    if not isinstance(ci, bool):
        errors.append((f"{path}.case_insensitive", "must be a boolean"))
        ci = False

    def bad(i: int, message: str) -> None:
        errors.append((f"{path}.values[{i}]", message))

    if op == "exists":
        if values:
            errors.append((f"{path}.values", "exists takes no values"))
    elif not values:
        errors.append((f"{path}.values", "at least one value is required"))
    if op != "in_segment" and not attribute:
        errors.append((f"{path}.attribute", "attribute is required"))

    reads_now = attribute == NOW_ATTRIBUTE and op != "in_segment"
    segments: Tuple[str, ...] = ()
    test: Optional[Test] = None
    match: Optional[Clause] = None

    if op == "in":
        for i, v in enumerate(values):
            if not (isinstance(v, (str, bool)) or ops.is_json_number(v)):
                bad(i, "must be a string, number or boolean")
        test = _in(values, ci)
    elif op in ("starts_with", "ends_with", "contains"):
        for i, v in enumerate(values):
            if not isinstance(v, str):
                bad(i, "must be a string")
        test = _string_op(op, [v for v in values if isinstance(v, str)], ci)
    elif op == "matches":
        patterns = []
        for i, v in enumerate(values):
            if not isinstance(v, str):
                bad(i, "must be a regular expression string")
                continue
            try:
                patterns.append(re.compile(ops.python_regex(v), re.IGNORECASE if ci else 0))
            except re.error as e:
                # The server validated the pattern in its own dialect; one Python cannot
                # read never matches, rather than making the whole ruleset unusable.
                log.warning("vexil: regex %r at %s is not supported in Python (%s); it never matches", v, path, e)
        test = _matches(patterns)
    elif op in ("lt", "lte", "gt", "gte"):
        nums = []
        for i, v in enumerate(values):
            x = ops.float_of(v)
            if x is None:
                bad(i, "must be a number")
            else:
                nums.append(x)
        if nums:
            test = _numeric(op, nums)
    elif op in ("before", "after"):
        dates: List[int] = []
        with_now = False
        for i, v in enumerate(values):
            if v == NOW_ATTRIBUTE and isinstance(v, str):
                with_now = True
                continue
            d = ops.date_of(v) if isinstance(v, (str, int)) and not isinstance(v, bool) else None
            if d is None:
                bad(i, 'invalid date: expected an RFC 3339 timestamp, integer epoch milliseconds or "$now"')
            else:
                dates.append(d)
        reads_now = reads_now or with_now
        if dates or with_now:
            test = _date(op == "after", dates, with_now)
    elif op.startswith("semver_"):
        versions = []
        for i, v in enumerate(values):
            k = ops.clause_version(v) if isinstance(v, str) else None
            if k is None:
                bad(i, "must be a complete semantic version such as 1.2.3 or v1.2.3")
            else:
                versions.append(k)
        if versions:
            test = _semver(op, versions)
    elif op == "in_cidr":
        networks = []
        for i, v in enumerate(values):
            if not isinstance(v, str):
                bad(i, "must be a CIDR string such as 10.0.0.0/8")
                continue
            net = ops.parse_cidr(v)
            if isinstance(net, str):
                bad(i, f"invalid CIDR: {net}")
            else:
                networks.append(net)
        test = _cidr(networks)
    elif op == "exists":
        get = getter(attribute)
        present = not negate

        def exists(ctx: Context, now: int, segs: Mapping[str, Any]) -> bool:
            return (get(ctx, now) is not None) is present

        match = exists
    else:  # in_segment
        keys = []
        for i, v in enumerate(values):
            if not isinstance(v, str):
                bad(i, "must be a segment key")
            elif not segment_exists(v):
                bad(i, f"unknown segment '{v}'")
            else:
                keys.append(v)
        segments = tuple(keys)
        match = _in_segment(segments, bool(negate))

    if len(errors) != before:
        return None
    if match is None:
        assert test is not None
        match = _with_lookup(attribute, test, bool(negate))
    return CompiledClause(match, segments, reads_now)


def _in_segment(keys: Tuple[str, ...], negate: bool) -> Clause:
    def in_segment(ctx: Context, now: int, segs: Mapping[str, Any]) -> bool:
        for k in keys:
            seg = segs.get(k)
            if seg is not None and seg.contains(ctx, now, segs):
                return not negate
        return negate

    return in_segment
