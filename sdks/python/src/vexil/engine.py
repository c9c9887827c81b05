"""The evaluation engine: a ruleset document (what ``GET /api/v1/sdk/config`` returns) is
validated and compiled once into an immutable :class:`Snapshot`; evaluating a flag for a
context is then a few dictionary look-ups and closure calls, with no parsing and no I/O.

>>> snapshot = Snapshot.compile({"version": 1, "flags": {"dark-mode": {
...     "type": "boolean",
...     "variations": [{"key": "on", "value": True}, {"key": "off", "value": False}],
...     "enabled": True, "off_variation": "off", "fallthrough": {"variation": "on"}}}})
>>> snapshot.evaluate("dark-mode", {"targetingKey": "user-1"}).value
True

The client (:class:`vexil.Client`) keeps a snapshot current; use this module directly to
evaluate a ruleset file offline or in tests.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Tuple

from ._clauses import Errors
from ._flags import FLAG_NOT_FOUND, KEY_RULE, CompiledFlag, Evaluation, compile_flag, is_valid_key
from ._hash import bucket, murmur3_32
from ._segments import CompiledSegment, compile_segment

__all__ = [
    "Change",
    "Evaluation",
    "RulesetError",
    "Snapshot",
    "bucket",
    "is_valid_key",
    "murmur3_32",
]

Change = Tuple[str, str, Optional[Mapping[str, Any]]]
"""One change to a snapshot: ``("flag" | "segment", key, definition or None to remove)``."""

_EMPTY: Mapping[str, Any] = {}


class RulesetError(ValueError):
    """A ruleset (or a change to one) that does not validate; ``errors`` lists every
    problem as ``(path, message)``, e.g. ``("flags.x.rules[0].serve", "…")``."""

    def __init__(self, errors: Sequence[Tuple[str, str]]) -> None:
        self.errors = list(errors)
        super().__init__("invalid ruleset: " + "; ".join(f"{p}: {m}" if p else m for p, m in self.errors))


class Snapshot:
    """An immutable, compiled ruleset of one environment. Safe to share between threads."""

    __slots__ = ("archived", "flags", "segments", "uses_now", "version")

    def __init__(
        self,
        version: int,
        flags: Dict[str, CompiledFlag],
        archived: Dict[str, CompiledFlag],
        segments: Dict[str, CompiledSegment],
    ) -> None:
        self.version = version
        self.flags = flags
        """Flags by key (archived flags are kept apart: they evaluate as missing)."""
        self.archived = archived
        self.segments = segments
        self.uses_now = (
            any(f.reads_now for f in flags.values())
            or any(f.reads_now for f in archived.values())
            or any(s.reads_now for s in segments.values())
        )
        """Whether any clause or rollout reads the evaluation time (``$now``)."""

    # ------------------------------------------------------------------ compiling

    @classmethod
    def compile(cls, ruleset: Mapping[str, Any]) -> Snapshot:
        """Validates and compiles a ruleset document; raises :class:`RulesetError` listing
        every problem found."""
        errors: Errors = []
        if not isinstance(ruleset, Mapping):
            raise RulesetError([("", "a ruleset must be a JSON object")])
        version = ruleset.get("version", 0)
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            errors.append(("version", "must be a non-negative integer"))
            version = 0
        raw_flags = _mapping(ruleset.get("flags"), "flags", errors)
        raw_segments = _mapping(ruleset.get("segments"), "segments", errors)

        def segment_exists(k: str) -> bool:
            return k in raw_segments

        segments: Dict[str, CompiledSegment] = {}
        for key, raw in raw_segments.items():
            path = f"segments.{key}"
            if not is_valid_key(key):
                errors.append((path, f"invalid segment key: {KEY_RULE}"))
            seg = compile_segment(raw, path, segment_exists, errors)
            if seg is not None:
                segments[key] = seg

        def flag_variations(k: str) -> Optional[FrozenSet[str]]:
            raw = raw_flags.get(k)
            if raw is None:
                return None
            return _variation_keys(raw)

        flags: Dict[str, CompiledFlag] = {}
        archived: Dict[str, CompiledFlag] = {}
        for key, raw in raw_flags.items():
            path = f"flags.{key}"
            if not is_valid_key(key):
                errors.append((path, f"invalid flag key: {KEY_RULE}"))
            flag = compile_flag(key, raw, path, flag_variations, segment_exists, errors)
            if flag is not None:
                (archived if flag.archived else flags)[key] = flag
        if not errors:
            _check_cycles(flags, archived, segments, errors)
        if errors:
            raise RulesetError(errors)
        return cls(version, flags, archived, segments)

    def apply(self, version: int, changes: Iterable[Change]) -> Snapshot:
        """A new snapshot at ``version`` with ``changes`` applied (a later change to the same
        key wins), compiling only what changed. The result is validated as a whole ruleset
        would be: references resolve and no cycle appears. Raises :class:`RulesetError`;
        ``self`` is never modified."""
        flag_changes: Dict[str, Optional[Mapping[str, Any]]] = {}
        segment_changes: Dict[str, Optional[Mapping[str, Any]]] = {}
        for kind, key, definition in changes:
            if kind == "flag":
                flag_changes[key] = definition
            elif kind == "segment":
                segment_changes[key] = definition
            else:
                raise RulesetError([("", f"unknown kind of change {kind!r}")])
        errors: Errors = []
        flags = dict(self.flags)
        archived = dict(self.archived)
        segments = dict(self.segments)

        def segment_exists(k: str) -> bool:
            if k in segment_changes:
                return segment_changes[k] is not None
            return k in self.segments

        def flag_variations(k: str) -> Optional[FrozenSet[str]]:
            if k in flag_changes:
                raw = flag_changes[k]
                return None if raw is None else _variation_keys(raw)
            f = self.flags.get(k) or self.archived.get(k)
            return None if f is None else f.variation_keys

        for key, raw in segment_changes.items():
            segments.pop(key, None)
            if raw is None:
                continue
            path = f"segments.{key}"
            if not is_valid_key(key):
                errors.append((path, f"invalid segment key: {KEY_RULE}"))
            seg = compile_segment(raw, path, segment_exists, errors)
            if seg is not None:
                segments[key] = seg
        for key, raw in flag_changes.items():
            flags.pop(key, None)
            archived.pop(key, None)
            if raw is None:
                continue
            path = f"flags.{key}"
            if not is_valid_key(key):
                errors.append((path, f"invalid flag key: {KEY_RULE}"))
            flag = compile_flag(key, raw, path, flag_variations, segment_exists, errors)
            if flag is not None:
                (archived if flag.archived else flags)[key] = flag
        if not errors:
            _check_references(flags, archived, segments, errors)
        if not errors:
            _check_cycles(flags, archived, segments, errors)
        if errors:
            raise RulesetError(errors)
        return Snapshot(version, flags, archived, segments)

    # ------------------------------------------------------------------ evaluating

    def evaluate(self, flag_key: str, context: Optional[Mapping[str, Any]] = None, now_ms: int = 0) -> Evaluation:
        """Evaluates ``flag_key`` for ``context`` at ``now_ms`` (epoch milliseconds, what
        ``$now`` means). Errors are results: ``value`` is ``None`` and the reason says why."""
        flag = self.flags.get(flag_key)
        if flag is None:
            return FLAG_NOT_FOUND
        return flag.evaluate(context if context is not None else _EMPTY, now_ms, self.flags, self.segments, 0)

    def evaluate_all(self, context: Optional[Mapping[str, Any]] = None, now_ms: int = 0) -> Dict[str, Evaluation]:
        """Every (non-archived) flag evaluated for one context, by key."""
        ctx = context if context is not None else _EMPTY
        flags, segments = self.flags, self.segments
        return {key: f.evaluate(ctx, now_ms, flags, segments, 0) for key, f in flags.items()}

    def flag_keys(self) -> List[str]:
        """The keys of every (non-archived) flag, sorted."""
        return sorted(self.flags)

    def __len__(self) -> int:
        return len(self.flags)

    def __repr__(self) -> str:
        return f"Snapshot(version={self.version}, flags={len(self.flags)}, segments={len(self.segments)})"


def _mapping(raw: Any, path: str, errors: Errors) -> Mapping[str, Any]:
    if raw is None:
        return _EMPTY
    if not isinstance(raw, Mapping):
        errors.append((path, "must be an object"))
        return _EMPTY
    return raw


def _variation_keys(raw: Any) -> FrozenSet[str]:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("variations"), list):
        return frozenset()
    return frozenset(v["key"] for v in raw["variations"] if isinstance(v, Mapping) and isinstance(v.get("key"), str))


def _check_references(
    flags: Mapping[str, CompiledFlag],
    archived: Mapping[str, CompiledFlag],
    segments: Mapping[str, CompiledSegment],
    errors: Errors,
) -> None:
    """Prerequisites name existing flags and their variations; segment references resolve."""
    for group in (flags, archived):
        for key, f in group.items():
            for i, (pkey, pvars) in enumerate(f.prerequisites):
                target = flags.get(pkey) or archived.get(pkey)
                if target is None:
                    errors.append((f"flags.{key}.prerequisites[{i}].flag", f"unknown flag '{pkey}'"))
                    continue
                for v in sorted(pvars - target.variation_keys):
                    errors.append((f"flags.{key}.prerequisites[{i}]", f"flag '{pkey}' has no variation '{v}'"))
            for s in f.segments:
                if s not in segments:
                    errors.append((f"flags.{key}.rules", f"unknown segment '{s}'"))
    for key, seg in segments.items():
        for s in seg.segments:
            if s not in segments:
                errors.append((f"segments.{key}.rules", f"unknown segment '{s}'"))


def _check_cycles(
    flags: Mapping[str, CompiledFlag],
    archived: Mapping[str, CompiledFlag],
    segments: Mapping[str, CompiledSegment],
    errors: Errors,
) -> None:
    def prereq_edges(k: str) -> Sequence[str]:
        f = flags.get(k) or archived.get(k)
        return [p for p, _ in f.prerequisites] if f is not None else ()

    def segment_edges(k: str) -> Sequence[str]:
        s = segments.get(k)
        return s.segments if s is not None else ()

    _find_cycles(list(flags) + list(archived), prereq_edges, "flags", "prerequisite", errors)
    _find_cycles(list(segments), segment_edges, "segments", "segment", errors)


def _find_cycles(
    nodes: Sequence[str], edges: Callable[[str], Sequence[str]], where: str, what: str, errors: Errors
) -> None:
    """Depth-first search without recursion; reports each cycle once."""
    state: Dict[str, int] = {}  # 1 = on the stack, 2 = done
    for start in sorted(nodes):
        if state.get(start):
            continue
        stack: List[Tuple[str, Iterable[str]]] = [(start, iter(edges(start)))]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            for child in children:
                s = state.get(child, 0)
                if s == 0:
                    state[child] = 1
                    stack.append((child, iter(edges(child))))
                    break
                if s == 1:
                    path = [n for n, _ in stack]
                    cycle = [*path[path.index(child) :], child]
                    errors.append((f"{where}.{node}", f"{what} cycle: {' → '.join(cycle)}"))
            else:
                state[node] = 2
                stack.pop()
