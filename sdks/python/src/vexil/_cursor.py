"""Turning the stream's ``put``/``patch``/``delete`` events into store updates, and knowing
where to resume.

The server sends one event per changed flag or segment, and every event of one update
carries the same id (the environment version after the update). So a version is known to
be complete only once an event with a higher id arrives: the cursor resumes
(``Last-Event-ID``) from the last *complete* version, never from one whose events may have
been cut off. The server then repeats the changes after it; definitions already applied
are recognised by the store and do not notify listeners twice.

Within an update, events are applied as they arrive. One that does not validate on its own
(a flag removed before the flag that referenced it is updated) waits for the rest of its
update; if the update ends, or goes quiet, with changes that still do not validate, the
cursor asks for a full resynchronisation.
"""

from __future__ import annotations

import json
import logging
from typing import Any, List, Optional

from ._sse import SseEvent
from ._store import Store
from .engine import Change, RulesetError

log = logging.getLogger("vexil")

MAX_PENDING = 50_000


class Resync(Exception):
    """The stream's state cannot be trusted: fetch the whole ruleset again."""


class Cursor:
    def __init__(self) -> None:
        self.confirmed: Optional[int] = None
        """Every change up to this version has been received and applied: where to resume."""
        self._group: Optional[int] = None
        self._pending: List[Change] = []

    def reconnected(self) -> None:
        """A (re)connection: events of an unfinished update will be sent again."""
        self._group = None
        self._pending = []

    def loaded(self, version: int) -> None:
        """A whole ruleset was loaded at ``version`` (a fetch or a ``put``)."""
        self.confirmed = version
        self._group = None
        self._pending = []

    def waiting(self) -> bool:
        """Whether an update is waiting for more of its events."""
        return bool(self._pending)

    def handle(self, store: Store, event: SseEvent) -> None:
        """Handles one event; raises :class:`Resync` when a full fetch is needed."""
        try:
            event_id: Optional[int] = int(event.id.strip()) if event.id is not None else None
        except ValueError:
            event_id = None
        if event.event == "put":
            try:
                ruleset = json.loads(event.data)
            except ValueError as e:
                raise Resync(f"put does not parse: {e}") from None
            if not isinstance(ruleset, dict):
                raise Resync("put is not a JSON object")
            version = ruleset.get("version", 0)
            held = store.version
            if held is not None and isinstance(version, int) and version < held:
                # A cluster node that has not caught up: never step back to older data.
                raise Resync(f"put of version {version} is older than the {held} held")
            try:
                store.replace(ruleset)
            except RulesetError as e:
                raise Resync(f"put does not validate: {e}") from None
            self.loaded(version if isinstance(version, int) else 0)
            log.debug("vexil stream: put of version %s", version)
        elif event.event in ("patch", "delete"):
            try:
                data = json.loads(event.data)
            except ValueError as e:
                raise Resync(f"{event.event} does not parse: {e}") from None
            if not isinstance(data, dict) or not isinstance(data.get("key"), str):
                raise Resync(f"{event.event} without a key")
            version = event_id if event_id is not None else data.get("version")
            if not isinstance(version, int):
                raise Resync(f"{event.event} without a version")
            change = _change_of(event.event, data)
            if change is not None:
                self._change(store, version, change)
        elif event.event == "refetch":
            raise Resync("server asked for a refetch")
        else:
            log.debug("vexil stream: unknown event %r skipped", event.event)

    def _change(self, store: Store, version: int, change: Change) -> None:
        group = self._group
        if group is None or version != group:
            if group is not None and version < group:
                raise Resync(f"event id {version} after {group}")
            if self.confirmed is not None and version <= self.confirmed:
                raise Resync(f"event id {version} not after {self.confirmed}")
            if self._pending:
                raise Resync(f"update {group} did not validate once complete")
            if group is not None:
                self.confirmed = group  # a later update begins: the previous one is complete
            self._group = version
        self._pending.append(change)
        try:
            store.apply(version, self._pending)
        except RulesetError as e:
            if len(self._pending) >= MAX_PENDING:
                raise Resync(f"update {version} does not validate: {e}") from None
            log.debug("vexil stream: a change waits for the rest of update %d", version)
            return
        self._pending = []


def _change_of(event: str, data: Any) -> Optional[Change]:
    kind, key = data.get("kind"), data["key"]
    if kind not in ("flag", "segment"):
        log.debug("vexil stream: change of unknown kind %r skipped", kind)
        return None
    if event == "patch":
        value = data.get("value")
        if not isinstance(value, dict):
            raise Resync(f"patch of '{key}' without a definition")
        return (kind, key, value)
    return (kind, key, None)
