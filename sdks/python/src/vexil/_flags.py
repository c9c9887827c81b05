"""Flags compiled into evaluation closures. Every possible result of a flag (its off value,
each target, each rule's and the fallthrough's serve, each rollout slice, each failed
prerequisite) is built once when the flag is compiled, so evaluating returns a shared,
immutable :class:`Evaluation` and allocates nothing beyond a rollout's hash input.

Order of evaluation: off → prerequisites → individual targets → rules in order →
fallthrough; a rollout buckets the unit with MurmurHash3.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

from . import _operands as ops
from ._clauses import MAX_DEPTH, NOW_ATTRIBUTE, Clause, Context, Errors, compile_clause
from ._results import FLAG_NOT_FOUND, Evaluation, ofrep_reason
from ._segments import CompiledSegment
from ._serve import Rollout, Serve, compile_serve, rollout_of
from .detail import ErrorCode, Reason, ReasonKind

__all__ = ["FLAG_NOT_FOUND", "KEY_RULE", "CompiledFlag", "Evaluation", "compile_flag", "is_valid_key"]

FLAG_TYPES = ("boolean", "string", "number", "json")
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
KEY_RULE = "must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


def is_valid_key(key: Any) -> bool:
    """Whether ``key`` is a valid flag, segment or variation key."""
    return isinstance(key, str) and key.isascii() and _KEY.fullmatch(key) is not None


Evaluate = Callable[[Context, int, Mapping[str, "CompiledFlag"], Mapping[str, CompiledSegment], int], Evaluation]


class CompiledFlag:
    """A flag ready for evaluation in one environment, and what it refers to."""

    __slots__ = (
        "archived",
        "client_side",
        "enabled",
        "evaluate",
        "key",
        "kind",
        "prerequisites",
        "reads_now",
        "segments",
        "variation_keys",
        "version",
    )

    def __init__(
        self,
        key: str,
        kind: str,
        variation_keys: FrozenSet[str],
        enabled: bool,
        archived: bool,
        client_side: bool,
        version: int,
        prerequisites: Tuple[Tuple[str, FrozenSet[str]], ...],
        segments: Tuple[str, ...],
        reads_now: bool,
        evaluate: Evaluate,
    ) -> None:
        self.key = key
        self.kind = kind
        self.variation_keys = variation_keys
        self.enabled = enabled
        self.archived = archived
        self.client_side = client_side
        self.version = version
        self.prerequisites = prerequisites
        self.segments = segments
        self.reads_now = reads_now
        self.evaluate = evaluate


def _type_accepts(kind: str, value: Any) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "number":
        return ops.is_json_number(value)
    return True


def _get(raw: Mapping[str, Any], name: str, kind: type, default: Any, path: str, errors: Errors) -> Any:
    value = raw.get(name, default)
    if value is default and default is not None:
        return value
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is int and ok and value < 0:
        ok = False
    if not ok:
        what = {bool: "a boolean", str: "a string", int: "a non-negative integer", list: "an array"}[kind]
        errors.append((f"{path}.{name}", f"must be {what}"))
        return default
    return value


def compile_flag(
    key: str,
    raw: Any,
    path: str,
    flag_variations: Callable[[str], Optional[FrozenSet[str]]],
    segment_exists: Callable[[str], bool],
    errors: Errors,
) -> Optional[CompiledFlag]:
    """Compiles one flag. ``flag_variations(k)`` gives another flag's variation keys, or
    ``None`` when it does not exist (for prerequisites)."""
    before = len(errors)
    if not isinstance(raw, Mapping):
        errors.append((path, "must be an object"))
        return None
    kind = raw.get("type")
    if kind not in FLAG_TYPES:
        errors.append((f"{path}.type", f"must be one of {', '.join(FLAG_TYPES)}"))
        return None
    assert isinstance(kind, str)
    raw_variations = raw.get("variations")
    if not isinstance(raw_variations, list) or not raw_variations:
        errors.append((f"{path}.variations", "at least one variation is required"))
        return None
    variations: List[Tuple[str, Any]] = []
    index: Dict[str, int] = {}
    for i, v in enumerate(raw_variations):
        vpath = f"{path}.variations[{i}]"
        if not isinstance(v, Mapping) or "key" not in v or "value" not in v:
            errors.append((vpath, "must be an object with 'key' and 'value'"))
            continue
        vkey, value = v["key"], v["value"]
        if not is_valid_key(vkey):
            errors.append((f"{vpath}.key", f"invalid variation key: {KEY_RULE}"))
            continue
        if vkey in index:
            errors.append((f"{vpath}.key", f"duplicate variation key '{vkey}'"))
        if not _type_accepts(kind, value):
            errors.append((f"{vpath}.value", f"must be a {kind} value"))
        index[vkey] = len(variations)
        variations.append((vkey, value))
    if kind == "boolean" and not (
        len(raw_variations) == 2
        and any(value is True for _, value in variations)
        and any(value is False for _, value in variations)
    ):
        errors.append(
            (f"{path}.variations", "a boolean flag has exactly two variations, with the values true and false")
        )

    enabled = _get(raw, "enabled", bool, False, path, errors)
    archived = _get(raw, "archived", bool, False, path, errors)
    client_side = _get(raw, "client_side", bool, False, path, errors)
    version = _get(raw, "version", int, 0, path, errors)
    off_key = raw.get("off_variation")
    if not isinstance(off_key, str) or off_key not in index:
        errors.append((f"{path}.off_variation", f"unknown variation {off_key!r}"))
    fallthrough: Optional[Serve] = None
    if "fallthrough" in raw:
        fallthrough = compile_serve(key, raw["fallthrough"], f"{path}.fallthrough", index, errors)
    else:
        errors.append((f"{path}.fallthrough", "is required"))

    targets: List[Tuple[int, str]] = []
    targeted: Dict[str, int] = {}
    for ti, t in enumerate(_get(raw, "targets", list, [], path, errors)):
        tpath = f"{path}.targets[{ti}]"
        if not isinstance(t, Mapping):
            errors.append((tpath, "must be an object"))
            continue
        var = t.get("variation")
        if not isinstance(var, str) or var not in index:
            errors.append((f"{tpath}.variation", f"unknown variation {var!r}"))
            continue
        values = t.get("values", [])
        if not isinstance(values, list):
            errors.append((f"{tpath}.values", "must be an array of strings"))
            continue
        for vi, value in enumerate(values):
            if not isinstance(value, str):
                errors.append((f"{tpath}.values[{vi}]", "must be a string"))
            elif value in targeted:
                errors.append((f"{tpath}.values[{vi}]", f"'{value}' is already targeted by targets[{targeted[value]}]"))
            else:
                targeted[value] = ti
                targets.append((index[var], value))

    rules: List[Tuple[Tuple[Clause, ...], Optional[str], Serve]] = []
    rule_ids: Dict[str, int] = {}
    segments: List[str] = []
    reads_now = False
    for ri, rule in enumerate(_get(raw, "rules", list, [], path, errors)):
        rpath = f"{path}.rules[{ri}]"
        if not isinstance(rule, Mapping):
            errors.append((rpath, "must be an object"))
            continue
        rule_id = rule.get("id")
        if rule_id is not None:
            if not isinstance(rule_id, str) or not 1 <= len(rule_id.encode()) <= 100:
                errors.append((f"{rpath}.id", "rule id must be 1 to 100 characters"))
            elif rule_id in rule_ids:
                errors.append((f"{rpath}.id", f"duplicate rule id '{rule_id}' (also rules[{rule_ids[rule_id]}])"))
            else:
                rule_ids[rule_id] = ri
        raw_clauses = rule.get("clauses", [])
        if not isinstance(raw_clauses, list):
            errors.append((f"{rpath}.clauses", "must be an array"))
            raw_clauses = []
        clauses = []
        for ci, c in enumerate(raw_clauses):
            compiled = compile_clause(c, f"{rpath}.clauses[{ci}]", segment_exists, errors)
            if compiled is not None:
                clauses.append(compiled.match)
                segments.extend(compiled.segments)
                reads_now = reads_now or compiled.reads_now
        serve: Optional[Serve] = None
        if "serve" in rule:
            serve = compile_serve(key, rule["serve"], f"{rpath}.serve", index, errors)
        else:
            errors.append((f"{rpath}.serve", "is required"))
        if serve is not None:
            rules.append((tuple(clauses), rule_id if isinstance(rule_id, str) else None, serve))

    prerequisites: List[Tuple[str, FrozenSet[str]]] = []
    seen_prereqs = set()
    for pi, p in enumerate(_get(raw, "prerequisites", list, [], path, errors)):
        ppath = f"{path}.prerequisites[{pi}]"
        if not isinstance(p, Mapping):
            errors.append((ppath, "must be an object"))
            continue
        pkey = p.get("flag")
        pvars = p.get("variations")
        if pkey == key:
            errors.append((f"{ppath}.flag", "a flag cannot be its own prerequisite"))
            continue
        if not isinstance(pkey, str):
            errors.append((f"{ppath}.flag", "must be a flag key"))
            continue
        if pkey in seen_prereqs:
            errors.append((f"{ppath}.flag", f"duplicate prerequisite '{pkey}'"))
        seen_prereqs.add(pkey)
        known = flag_variations(pkey)
        if known is None:
            errors.append((f"{ppath}.flag", f"unknown flag '{pkey}'"))
            continue
        if not isinstance(pvars, list) or not pvars:
            errors.append((f"{ppath}.variations", "at least one variation is required"))
            continue
        for vi, v in enumerate(pvars):
            if not isinstance(v, str) or v not in known:
                errors.append((f"{ppath}.variations[{vi}]", f"flag '{pkey}' has no variation {v!r}"))
        prerequisites.append((pkey, frozenset(v for v in pvars if isinstance(v, str))))

    if len(errors) != before or fallthrough is None:
        return None
    assert isinstance(off_key, str)
    reads_now = (
        reads_now
        or (fallthrough.fixed is None and fallthrough.bucket_by == NOW_ATTRIBUTE)
        or any(s.fixed is None and s.bucket_by == NOW_ATTRIBUTE for _, _, s in rules)
    )
    is_static = not targets and not rules and not prerequisites and fallthrough.fixed is not None
    evaluate = _build(
        key, kind, version, enabled, variations, index[off_key], fallthrough, targets, rules, prerequisites, is_static
    )
    return CompiledFlag(
        key,
        kind,
        frozenset(index),
        enabled,
        archived,
        client_side,
        version,
        tuple(prerequisites),
        tuple(sorted(set(segments))),
        reads_now,
        evaluate,
    )


def _build(
    key: str,
    kind: str,
    version: int,
    enabled: bool,
    variations: Sequence[Tuple[str, Any]],
    off_index: int,
    fallthrough: Serve,
    targets: Sequence[Tuple[int, str]],
    rules: Sequence[Tuple[Tuple[Clause, ...], Optional[str], Serve]],
    prereqs: Sequence[Tuple[str, FrozenSet[str]]],
    is_static: bool,
) -> Evaluate:
    def result(i: int, reason: Reason) -> Evaluation:
        vkey, value = variations[i]
        return Evaluation(value, vkey, reason, version, kind, ofrep_reason(reason, is_static), key)

    missing = Evaluation(None, None, Reason.error(ErrorCode.TARGETING_KEY_MISSING), version, kind, "ERROR", key)

    def served(serve: Serve, reason: Reason) -> Tuple[Optional[Evaluation], Optional[Rollout]]:
        if serve.fixed is not None:
            return result(serve.fixed, reason), None
        slices = [result(i, reason._replace(in_rollout=True)) for _, i in serve.slices]
        return None, rollout_of(serve, slices, missing)

    off = result(off_index, Reason(ReasonKind.OFF))
    failed = [
        (pkey, pvars, result(off_index, Reason(ReasonKind.PREREQUISITE_FAILED, prerequisite_key=pkey)))
        for pkey, pvars in prereqs
    ]
    target_results = [result(i, Reason(ReasonKind.TARGET_MATCH)) for i in range(len(variations))]
    target_map = {value: target_results[i] for i, value in targets}
    compiled_rules = []
    for ri, (clauses, rule_id, serve) in enumerate(rules):
        fixed, rollout = served(serve, Reason(ReasonKind.RULE_MATCH, rule_id=rule_id, rule_index=ri))
        compiled_rules.append((clauses, fixed, rollout))
    rule_list = tuple(compiled_rules)
    fall_fixed, fall_rollout = served(fallthrough, Reason(ReasonKind.FALLTHROUGH))

    def evaluate(
        ctx: Context,
        now: int,
        flags: Mapping[str, CompiledFlag],
        segs: Mapping[str, CompiledSegment],
        depth: int,
    ) -> Evaluation:
        for pkey, pvars, fail in failed:
            pf = flags.get(pkey)
            if pf is None or not pf.enabled or depth >= MAX_DEPTH:
                return fail
            if pf.evaluate(ctx, now, flags, segs, depth + 1).variation not in pvars:
                return fail
        if target_map:
            tk = ctx.get("targetingKey")
            if isinstance(tk, str):
                hit = target_map.get(tk)
                if hit is not None:
                    return hit
        for clauses, fixed, rollout in rule_list:
            for clause in clauses:
                if not clause(ctx, now, segs):
                    break
            else:
                return fixed if fixed is not None else rollout(ctx, now)  # type: ignore[misc]
        return fall_fixed if fall_fixed is not None else fall_rollout(ctx, now)  # type: ignore[misc]

    def evaluate_off(
        ctx: Context,
        now: int,
        flags: Mapping[str, CompiledFlag],
        segs: Mapping[str, CompiledSegment],
        depth: int,
    ) -> Evaluation:
        return off

    return evaluate if enabled else evaluate_off
