"""Where the flag data lives. Evaluations read ``Store.snapshot``, an immutable
:class:`~vexil.engine.Snapshot` that the background thread (the only writer) replaces as a
whole: reading it takes no lock, and an update never blocks a reader.

To tell listeners which flags changed, and to stay silent about a definition received
twice (as happens when a stream resumes), the store keeps per flag and segment a
fingerprint of its definition and what it uses (prerequisites, segments).
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Set, Tuple

from .engine import Change, Snapshot
from .events import FlagChange, Listeners
from .status import State, StatusCell

log = logging.getLogger("vexil")

# fingerprint, prerequisite flags, segments used
_Meta = Tuple[int, Tuple[str, ...], Tuple[str, ...]]


def _fingerprint(definition: Any) -> int:
    return hash(json.dumps(definition, sort_keys=True, separators=(",", ":"), default=str))


class Store:
    def __init__(self, listeners: Listeners, status: StatusCell) -> None:
        self.snapshot: Optional[Snapshot] = None
        self.status = status
        self._listeners = listeners
        self._flags: Dict[str, _Meta] = {}
        self._segments: Dict[str, _Meta] = {}
        self._write = threading.Lock()

    @property
    def version(self) -> Optional[int]:
        snap = self.snapshot
        return None if snap is None else snap.version

    def replace(self, ruleset: Mapping[str, Any], notify: bool = True) -> None:
        """Replaces everything (a fetched config or a ``put``). Raises ``RulesetError``;
        nothing changes then."""
        snapshot = Snapshot.compile(ruleset)
        with self._write:
            flags = {k: self._flag_meta(snapshot, k, d) for k, d in (ruleset.get("flags") or {}).items()}
            segments: Dict[str, _Meta] = {
                k: (_fingerprint(d), (), snapshot.segments[k].segments)
                for k, d in (ruleset.get("segments") or {}).items()
            }
            changed_flags = _diff(self._flags, flags)
            changed_segments = _diff(self._segments, segments)
            self._flags, self._segments = flags, segments
            self._publish(snapshot, changed_flags if notify else set(), changed_segments if notify else set())

    def apply(self, version: int, changes: Sequence[Change]) -> None:
        """Applies incremental changes at ``version``. Raises ``RulesetError``; nothing
        changes then."""
        with self._write:
            current = self.snapshot or Snapshot(0, {}, {}, {})
            snapshot = current.apply(version, changes)
            changed_flags: Set[str] = set()
            changed_segments: Set[str] = set()
            for kind, key, definition in changes:
                table = self._flags if kind == "flag" else self._segments
                meta: Optional[_Meta] = None
                if definition is not None:
                    if kind == "flag":
                        meta = self._flag_meta(snapshot, key, definition)
                    else:
                        meta = (_fingerprint(definition), (), snapshot.segments[key].segments)
                old = table.get(key)
                if (old[0] if old else None) != (meta[0] if meta else None):
                    (changed_flags if kind == "flag" else changed_segments).add(key)
                if meta is None:
                    table.pop(key, None)
                else:
                    table[key] = meta
            self._publish(snapshot, changed_flags, changed_segments)

    @staticmethod
    def _flag_meta(snapshot: Snapshot, key: str, definition: Any) -> _Meta:
        flag = snapshot.flags.get(key) or snapshot.archived[key]
        return (_fingerprint(definition), tuple(p for p, _ in flag.prerequisites), flag.segments)

    def _publish(self, snapshot: Snapshot, flags: Set[str], segments: Set[str]) -> None:
        self.snapshot = snapshot
        self.status.set_version(snapshot.version)
        keys = self._affected(flags, segments)
        if keys:
            log.debug("vexil: %d flag(s) changed at version %d", len(keys), snapshot.version)
            self._listeners.emit(FlagChange(tuple(sorted(keys)), snapshot.version))

    def _affected(self, flags: Set[str], segments: Set[str]) -> Set[str]:
        """The changed flags plus every flag that depends on a changed flag or segment."""
        if segments:
            segments = set(segments)
            _close_over(segments, ((k, m[2]) for k, m in self._segments.items()))
            flags = set(flags) | {k for k, m in self._flags.items() if segments.intersection(m[2])}
        if flags:
            flags = set(flags)
            _close_over(flags, ((k, m[1]) for k, m in self._flags.items()))
        return flags


def _close_over(found: Set[str], uses: Iterable[Tuple[str, Tuple[str, ...]]]) -> None:
    """Adds to ``found`` every node that uses a node in ``found``, transitively."""
    edges = list(uses)
    while True:
        more = {k for k, used in edges if k not in found and found.intersection(used)}
        if not more:
            return
        found |= more


def _diff(before: Mapping[str, _Meta], after: Mapping[str, _Meta]) -> Set[str]:
    changed = {k for k, m in after.items() if before.get(k, (None,))[0] != m[0]}
    return changed | {k for k in before if k not in after}


__all__ = ["State", "Store"]
