"""Segments compiled: a context is in a segment when its string ``targetingKey`` is
included, else not when it is excluded, else when any segment rule has all of its clauses
match (segment rules may use ``in_segment`` in turn)."""

from __future__ import annotations

from typing import Any, Callable, List, Mapping, Optional, Tuple

from ._clauses import Clause, Context, Errors, compile_clause


class CompiledSegment:
    """A segment ready for membership tests."""

    __slots__ = ("excluded", "included", "reads_now", "rules", "segments")

    def __init__(
        self,
        included: frozenset[str],
        excluded: frozenset[str],
        rules: Tuple[Tuple[Clause, ...], ...],
        segments: Tuple[str, ...],
        reads_now: bool,
    ) -> None:
        self.included = included
        self.excluded = excluded
        self.rules = rules
        self.segments = segments
        self.reads_now = reads_now

    def contains(self, ctx: Context, now: int, segs: Mapping[str, Any]) -> bool:
        tk = ctx.get("targetingKey")
        if isinstance(tk, str):
            if tk in self.included:
                return True
            if tk in self.excluded:
                return False
        for clauses in self.rules:
            for c in clauses:
                if not c(ctx, now, segs):
                    break
            else:
                return True
        return False


def _string_list(raw: Any, path: str, errors: Errors) -> List[str]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        errors.append((path, "must be an array of strings"))
        return []
    out = []
    for i, v in enumerate(raw):
        if isinstance(v, str):
            out.append(v)
        else:
            errors.append((f"{path}[{i}]", "must be a string"))
    return out


def compile_segment(
    raw: Any, path: str, segment_exists: Callable[[str], bool], errors: Errors
) -> Optional[CompiledSegment]:
    before = len(errors)
    if not isinstance(raw, Mapping):
        errors.append((path, "must be an object"))
        return None
    included = _string_list(raw.get("included"), f"{path}.included", errors)
    excluded = _string_list(raw.get("excluded"), f"{path}.excluded", errors)
    rules: List[Tuple[Clause, ...]] = []
    refs: List[str] = []
    reads_now = False
    raw_rules = raw.get("rules", [])
    if not isinstance(raw_rules, list):
        errors.append((f"{path}.rules", "must be an array"))
        raw_rules = []
    for ri, rule in enumerate(raw_rules):
        rpath = f"{path}.rules[{ri}]"
        if not isinstance(rule, Mapping):
            errors.append((rpath, "must be an object"))
            continue
        raw_clauses = rule.get("clauses", [])
        if not isinstance(raw_clauses, list):
            errors.append((f"{rpath}.clauses", "must be an array"))
            continue
        clauses = []
        for ci, c in enumerate(raw_clauses):
            compiled = compile_clause(c, f"{rpath}.clauses[{ci}]", segment_exists, errors)
            if compiled is not None:
                clauses.append(compiled.match)
                refs.extend(compiled.segments)
                reads_now = reads_now or compiled.reads_now
        rules.append(tuple(clauses))
    if len(errors) != before:
        return None
    return CompiledSegment(frozenset(included), frozenset(excluded), tuple(rules), tuple(sorted(set(refs))), reads_now)
