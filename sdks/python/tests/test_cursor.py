"""Resuming the stream: the store's change notifications and the cursor's bookkeeping."""

from __future__ import annotations

import json
import time
from typing import Any, Dict, List, Optional, Union

import pytest

from vexil._cursor import Cursor, Resync
from vexil._sse import SseEvent
from vexil._store import Store
from vexil.events import FlagChange, Listeners
from vexil.status import State, Status, StatusCell


class Recorder(Listeners):
    """Listeners that record changes synchronously."""

    def __init__(self) -> None:
        super().__init__()
        self.changed: List[str] = []

    def emit(self, event: Union[FlagChange, Status]) -> None:
        if isinstance(event, FlagChange):
            self.changed.extend(event.keys)

    def take(self) -> List[str]:
        out, self.changed = self.changed, []
        return out


def new_store() -> tuple[Store, Recorder]:
    rec = Recorder()
    return Store(rec, StatusCell(Status(State.NOT_READY, "test", None, time.time()))), rec


def flag(enabled: bool = True, prereq: Optional[str] = None, segment: Optional[str] = None) -> Dict[str, Any]:
    f: Dict[str, Any] = {
        "type": "boolean",
        "variations": [{"key": "on", "value": True}, {"key": "off", "value": False}],
        "enabled": enabled,
        "off_variation": "off",
        "fallthrough": {"variation": "on"},
        "prerequisites": [{"flag": prereq, "variations": ["on"]}] if prereq else [],
    }
    if segment:
        f["rules"] = [{"clauses": [{"op": "in_segment", "values": [segment]}], "serve": {"variation": "on"}}]
    return f


def ev(name: str, id_: int, data: Any) -> SseEvent:
    return SseEvent(name, json.dumps(data), str(id_))


def test_changes_reach_dependents_and_repeats_are_silent() -> None:
    store, rec = new_store()
    ruleset = {
        "version": 1,
        "flags": {
            "base": flag(),
            "child": flag(prereq="base"),
            "grandchild": flag(prereq="child"),
            "seg-user": flag(segment="outer"),
            "loner": flag(),
        },
        "segments": {
            "inner": {"included": ["a"]},
            "outer": {"rules": [{"clauses": [{"op": "in_segment", "values": ["inner"]}]}]},
        },
    }
    store.replace(ruleset)
    assert len(rec.take()) == 5
    store.replace(ruleset)
    assert rec.take() == [], "the same ruleset again: nothing changed"
    store.apply(2, [("flag", "base", flag(enabled=False))])
    assert rec.take() == ["base", "child", "grandchild"]
    store.apply(2, [("flag", "base", flag(enabled=False))])
    assert rec.take() == [], "a repeated patch is not a change"
    store.apply(3, [("segment", "inner", {"included": ["b"]})])
    assert rec.take() == ["seg-user"]
    store.apply(4, [("flag", "loner", None)])
    assert rec.take() == ["loner"]
    assert store.version == 4


def test_resumes_from_the_last_complete_update_and_ignores_repeats() -> None:
    store, rec = new_store()
    cursor = Cursor()
    cursor.handle(store, ev("put", 5, {"version": 5, "flags": {"a": flag(), "b": flag()}, "segments": {}}))
    assert cursor.confirmed == 5
    rec.take()
    patch_a = {"kind": "flag", "key": "a", "version": 7, "value": flag(enabled=False)}
    cursor.handle(store, ev("patch", 7, patch_a))
    assert rec.take() == ["a"]
    assert cursor.confirmed == 5, "7 may be incomplete"
    cursor.reconnected()
    cursor.handle(store, ev("patch", 7, patch_a))
    cursor.handle(store, ev("patch", 7, {"kind": "flag", "key": "b", "version": 7, "value": flag(enabled=False)}))
    assert rec.take() == ["b"], "a is not notified twice; b is not lost"
    cursor.handle(store, ev("delete", 8, {"kind": "flag", "key": "b", "version": 8}))
    assert cursor.confirmed == 7
    assert store.version == 8


def test_a_change_that_needs_the_rest_of_its_update_waits_for_it() -> None:
    store, rec = new_store()
    cursor = Cursor()
    cursor.handle(store, ev("put", 1, {"version": 1, "flags": {"p": flag(), "c": flag(prereq="p")}}))
    rec.take()
    cursor.handle(store, ev("delete", 2, {"kind": "flag", "key": "p", "version": 2}))
    assert cursor.waiting() and store.version == 1
    cursor.handle(store, ev("patch", 2, {"kind": "flag", "key": "c", "version": 2, "value": flag()}))
    assert not cursor.waiting() and store.version == 2
    assert sorted(rec.take()) == ["c", "p"]


def test_inconsistencies_ask_for_a_resync() -> None:
    store, _ = new_store()
    cursor = Cursor()
    cursor.handle(store, ev("put", 1, {"version": 1, "flags": {"p": flag(), "c": flag(prereq="p")}}))
    cursor.handle(store, ev("delete", 2, {"kind": "flag", "key": "p", "version": 2}))
    with pytest.raises(Resync):
        cursor.handle(store, ev("patch", 3, {"kind": "flag", "key": "c", "version": 3, "value": flag(prereq="p")}))
    cursor = Cursor()
    cursor.loaded(10)
    with pytest.raises(Resync, match="not after 10"):
        cursor.handle(store, ev("patch", 9, {"kind": "flag", "key": "c", "version": 9, "value": flag()}))
    with pytest.raises(Resync):
        cursor.handle(store, ev("patch", 11, {"kind": "flag"}))
    with pytest.raises(Resync):
        cursor.handle(store, ev("put", 12, {"flags": 3}))
    with pytest.raises(Resync, match="older"):
        cursor.handle(store, ev("put", 0, {"version": 0, "flags": {}}))
    with pytest.raises(Resync, match="refetch"):
        cursor.handle(store, ev("refetch", 13, {"version": 13}))
    cursor.handle(store, ev("something-new", 12, {}))  # unknown events are skipped
