"""The client against a scripted server and offline: synchronisation, resumption, polling,
failures, insights, and the evaluation API."""

from __future__ import annotations

import json
import logging
import socket
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

import vexil
from fake_server import FakeVexil, last_header, wait_until
from vexil import ErrorCode, FlagChange, ReasonKind, State, Status

BOOL = [{"key": "on", "value": True}, {"key": "off", "value": False}]


def flag(enabled: bool = True, **fields: Any) -> Dict[str, Any]:
    f: Dict[str, Any] = {
        "type": "boolean",
        "variations": BOOL,
        "enabled": enabled,
        "off_variation": "off",
        "fallthrough": {"variation": "on"},
    }
    f.update(fields)
    return f


RULESET: Dict[str, Any] = {
    "version": 1,
    "flags": {
        "checkout": flag(),
        "banner": {
            "type": "string",
            "variations": [{"key": "a", "value": "Hello"}, {"key": "b", "value": "Hi"}],
            "enabled": True,
            "off_variation": "b",
            "fallthrough": {"variation": "a"},
        },
        "limit": {
            "type": "number",
            "variations": [{"key": "low", "value": 10}, {"key": "high", "value": 2.5}],
            "enabled": True,
            "off_variation": "low",
            "fallthrough": {"variation": "low"},
        },
        "config": {
            "type": "json",
            "variations": [{"key": "v1", "value": {"colors": ["red"]}}],
            "enabled": True,
            "off_variation": "v1",
            "fallthrough": {"variation": "v1"},
        },
        "split": flag(
            fallthrough={
                "rollout": {"variations": [{"variation": "on", "weight": 50000}, {"variation": "off", "weight": 50000}]}
            }
        ),
        "child": flag(prerequisites=[{"flag": "checkout", "variations": ["on"]}]),
    },
    "segments": {},
}


def connect(url: str, key: str, **options: Any) -> vexil.Client:
    """A client that retries quickly (tests wait for reconnections)."""
    return vexil.Client(url, key, initial_backoff=0.05, max_backoff=0.2, **options)


@pytest.fixture
def fake() -> Iterator[FakeVexil]:
    f = FakeVexil(json.loads(json.dumps(RULESET)))
    yield f
    f.close()


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


# --------------------------------------------------------------------------- synchronisation


def test_streams_updates_and_notifies_listeners(fake: FakeVexil) -> None:
    with connect(fake.url, "vx_srv_test") as client:
        client.wait_for_initialization(5)
        wait_until(lambda: client.status.reason == "streaming", what="streaming")
        assert client.bool_value("child", {}, False) is True
        changes: List[FlagChange] = []
        child: List[FlagChange] = []
        statuses: List[Status] = []
        client.on_change(changes.append)
        client.on_flag_change("child", child.append)
        client.on_status_change(statuses.append)
        fake.send("patch", 2, {"kind": "flag", "key": "checkout", "version": 2, "value": flag(enabled=False)})
        wait_until(lambda: len(child) == 1, what="the change listener")
        assert client.bool_value("checkout", {}, True) is False
        assert client.bool_detail("child", {}, True).reason.prerequisite_key == "checkout"
        assert changes == [FlagChange(("checkout", "child"), 2)]
        assert client.status.version == 2
        fake.send("delete", 3, {"kind": "flag", "key": "banner", "version": 3})
        wait_until(lambda: len(changes) == 2, what="the delete")
        assert client.string_detail("banner", {}, "x").reason.error_code is ErrorCode.FLAG_NOT_FOUND
        assert statuses == [], "no state change while streaming"
        auth = fake.seen("GET", "/api/v1/sdk/config")[0][2]["Authorization"]
        assert auth == "Bearer vx_srv_test"


def test_a_dropped_stream_resumes_from_the_last_complete_update(fake: FakeVexil) -> None:
    with connect(fake.url, "vx_srv_test") as client:
        client.wait_for_initialization(5)
        wait_until(lambda: fake.open_streams() == 1, what="the stream")
        # Two updates, as the server would send and store them.
        fake.ruleset["flags"]["checkout"] = flag(enabled=False)
        fake.send("patch", 2, {"kind": "flag", "key": "checkout", "version": 2, "value": flag(enabled=False)})
        fake.ruleset["flags"]["split"] = flag()
        fake.ruleset["version"] = 3
        fake.send("patch", 3, {"kind": "flag", "key": "split", "version": 3, "value": flag()})
        wait_until(lambda: client.status.version == 3, what="version 3")
        fake.drop_streams()
        wait_until(lambda: len(fake.seen("GET", "/api/v1/sdk/stream")) == 2, what="a reconnection")
        # Update 3 was not known to be complete: the check asks from 2, gets 3 whole.
        assert last_header(fake.seen("GET", "/api/v1/sdk/config"), "If-None-Match") == '"2"'
        assert last_header(fake.seen("GET", "/api/v1/sdk/stream"), "Last-Event-ID") == "3"
        wait_until(lambda: fake.open_streams() == 1, what="the second stream")
        fake.drop_streams()
        wait_until(lambda: len(fake.seen("GET", "/api/v1/sdk/stream")) == 3, what="another reconnection")
        assert last_header(fake.seen("GET", "/api/v1/sdk/config"), "If-None-Match") == '"3"'
        assert last_header(fake.seen("GET", "/api/v1/sdk/stream"), "Last-Event-ID") == "3"
        assert client.bool_value("checkout", {}, True) is False, "nothing lost or undone"
        assert client.status.state is State.READY


def test_falls_back_to_polling_when_streaming_fails(fake: FakeVexil) -> None:
    fake.stream_status = 404
    with connect(fake.url, "vx_srv_test", poll_interval=0.1) as client:
        wait_until(lambda: client.status.reason == "polling (streaming unavailable)", what="polling")
        assert client.status.state is State.READY
        fake.ruleset["flags"]["checkout"] = flag(enabled=False)
        fake.ruleset["version"] = 2
        wait_until(lambda: client.bool_value("checkout", {}, True) is False, what="the polled change")
        wait_until(
            lambda: last_header(fake.seen("GET", "/api/v1/sdk/config"), "If-None-Match") == '"2"',
            what="a conditional poll",
        )


def test_polls_when_streaming_is_switched_off(fake: FakeVexil) -> None:
    with connect(fake.url, "vx_srv_test", stream=False, poll_interval=0.1) as client:
        client.wait_for_initialization(5)
        assert client.status.reason == "polling"
        wait_until(lambda: len(fake.seen("GET", "/api/v1/sdk/config")) >= 3, what="polls")
        assert fake.seen("GET", "/api/v1/sdk/stream") == []


def test_a_rejected_key_is_an_error_state(fake: FakeVexil) -> None:
    fake.config_status = 401
    with connect(fake.url, "vx_srv_wrong") as client:
        with pytest.raises(vexil.KeyRejectedError, match="HTTP 401: scripted 401"):
            client.wait_for_initialization(5)
        assert client.status.state is State.ERROR
        assert client.bool_detail("checkout", {}, False).reason.error_code is ErrorCode.CLIENT_NOT_READY


def test_bootstrap_serves_while_the_server_is_unreachable(tmp_path: Path) -> None:
    path = tmp_path / "ruleset.json"
    path.write_text(json.dumps(RULESET))
    with connect(closed_port(), "vx_srv_test", bootstrap=str(path)) as client:
        assert client.bool_value("checkout", {}, False) is True
        with pytest.raises(vexil.InitTimeoutError, match="server unreachable"):
            client.wait_for_initialization(0.5)
        assert client.status.state is State.STALE
        assert client.status.version == 1


def test_without_data_callers_get_their_defaults() -> None:
    with connect(closed_port(), "vx_srv_test") as client:
        detail = client.bool_detail("checkout", {}, True)
        assert detail.value is True and detail.reason.error_code is ErrorCode.CLIENT_NOT_READY
        assert client.get_all_flags() == {} and client.flag_keys() == []
        assert client.evaluate_flag("checkout", "u1") == {
            "enabled": False,
            "value": None,
            "variation": None,
            "reason": "ERROR",
        }
        wait_until(lambda: client.status.state is State.NOT_READY and "unreachable" in client.status.reason)


def test_bad_arguments_are_refused_at_once() -> None:
    with pytest.raises(ValueError, match="invalid server URL"):
        vexil.Client("ftp://example.com", "vx_srv_x")
    with pytest.raises(ValueError, match="API key"):
        vexil.Client("http://example.com", "")
    with pytest.raises(ValueError, match="offline mode needs a bootstrap"):
        vexil.Client(offline=True)
    with pytest.raises(vexil.RulesetError, match=r"flags\.x\.type"):
        vexil.Client(offline=True, bootstrap={"flags": {"x": {}}})
    with pytest.raises(ValueError, match="poll_interval must be positive"):
        vexil.Client("http://example.com", "k", poll_interval=0)


# --------------------------------------------------------------------------- insights


def test_counts_and_events_are_reported(fake: FakeVexil) -> None:
    fake.post_status = 202
    client = connect(fake.url, "vx_srv_test")
    client.wait_for_initialization(5)
    for user in ("u1", "u2", "u3"):
        client.bool_value("checkout", {"targetingKey": user}, False)
    client.string_value("banner", None, "")
    client.bool_value("missing", {}, False)  # errors are not counted
    other = threading.Thread(target=client.bool_value, args=("checkout", {}, False))
    other.start()
    other.join()
    client.track("purchase", {"targetingKey": "u1"}, 9.5)
    client.track("signup")
    client.flush()
    metrics = fake.seen("POST", "/api/v1/sdk/metrics")
    assert len(metrics) == 1
    body = metrics[0][3]
    assert body["flags"]["banner"] == {"a": 1}
    assert body["flags"]["checkout"] == {"on": 4}, "every thread's counts"
    assert body["start"] <= body["end"]
    events = fake.seen("POST", "/api/v1/track")[0][3]["events"]
    assert [e["key"] for e in events] == ["purchase", "signup"]
    assert events[0]["value"] == 9.5 and events[0]["context"] == {"targetingKey": "u1"} and "value" not in events[1]
    client.bool_value("checkout", {}, False)
    client.close()
    total = sum(m[3]["flags"]["checkout"]["on"] for m in fake.seen("POST", "/api/v1/sdk/metrics"))
    assert total == 5, "close() reports what is left, and nothing twice"


def test_a_server_without_insights_is_tolerated_quietly(fake: FakeVexil, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="vexil")
    with connect(fake.url, "vx_srv_test") as client:
        client.wait_for_initialization(5)
        client.bool_value("checkout", {}, False)
        client.track("purchase")
        client.flush()
        client.flush()
    assert len(fake.seen("POST", "/api/v1/sdk/metrics")) == 1
    assert [r for r in caplog.records if r.name == "vexil"] == []


def test_insights_can_be_switched_off(fake: FakeVexil) -> None:
    with connect(fake.url, "vx_srv_test", send_insights=False) as client:
        client.wait_for_initialization(5)
        client.bool_value("checkout", {}, False)
        client.track("purchase")
        client.flush()
    assert [r for r in fake.requests if r[0] == "POST"] == []


# --------------------------------------------------------------------------- evaluation API


@pytest.fixture
def offline() -> Iterator[vexil.Client]:
    with vexil.Client(offline=True, bootstrap=RULESET) as client:
        yield client


def test_typed_getters(offline: vexil.Client) -> None:
    c = offline
    assert c.status.state is State.READY and c.status.reason == "offline"
    assert c.bool_value("checkout", None, False) is True
    assert c.string_value("banner", {}, "x") == "Hello"
    assert c.number_value("limit", {}, 0) == 10
    assert c.json_value("config", {}, None) == {"colors": ["red"]}
    assert c.bool_value("banner", {}, False) is False, "type mismatch serves the default"
    d = c.bool_detail("banner", {}, False)
    assert d.reason.error_code is ErrorCode.TYPE_MISMATCH and d.variation is None and d.flag_version == 0
    assert c.number_value("checkout", {}, 7) == 7, "a boolean is not a number"
    d2 = c.string_detail("banner", {}, "x")
    assert (d2.value, d2.variation, d2.reason.kind, d2.is_default) == ("Hello", "a", ReasonKind.FALLTHROUGH, False)
    assert d2.to_dict() == {
        "value": "Hello",
        "variation": "a",
        "reason": {"kind": "FALLTHROUGH", "in_rollout": False},
        "flag_version": 0,
    }
    missing = c.json_detail("nope", {}, {"d": 1})
    assert missing.value == {"d": 1} and missing.error_code is ErrorCode.FLAG_NOT_FOUND and missing.is_default


def test_json_values_are_copies(offline: vexil.Client) -> None:
    value = offline.json_value("config", {}, None)
    value["colors"].append("blue")
    assert offline.json_value("config", {}, None) == {"colors": ["red"]}


def test_the_documents_shapes(offline: vexil.Client) -> None:
    assert offline.evaluate_flag("checkout", "user-1") == {
        "enabled": True,
        "value": True,
        "variation": "on",
        "reason": "FALLTHROUGH",
    }
    assert offline.evaluate_flag("banner", "user-1") == {
        "enabled": True,
        "value": "Hello",
        "variation": "a",
        "reason": "FALLTHROUGH",
    }
    assert offline.evaluate_flag("nope", "user-1")["reason"] == "ERROR"
    split = offline.evaluate_flag("split", "user-1", {"plan": "pro"})
    assert split["reason"] == "FALLTHROUGH" and split["variation"] in ("on", "off")
    assert offline.evaluate_flag("split")["reason"] == "ERROR", "no targetingKey to bucket by"
    flags = offline.get_all_flags(user_id="user-1")
    assert set(flags) == set(RULESET["flags"]) and flags["banner"] == "Hello" and flags["limit"] == 10
    assert offline.get_all_flags()["split"] is None
    details = offline.evaluate_all({"targetingKey": "u"})
    assert details["child"].reason.kind is ReasonKind.FALLTHROUGH


def test_evaluation_is_safe_across_threads_while_updates_land(offline: vexil.Client) -> None:
    """Readers never see a half-updated ruleset: every value is the old or the new one."""
    store = offline._store
    stop = threading.Event()
    seen: List[Any] = []

    def read() -> None:
        while not stop.is_set():
            seen.append(offline.string_value("banner", {}, "DEFAULT"))

    readers = [threading.Thread(target=read) for _ in range(4)]
    for t in readers:
        t.start()
    for version in range(2, 60):
        text = "Hello" if version % 2 else "Hi"
        banner = dict(RULESET["flags"]["banner"], fallthrough={"variation": "a" if text == "Hello" else "b"})
        store.apply(version, [("flag", "banner", banner)])
    stop.set()
    for t in readers:
        t.join()
    assert seen and set(seen) <= {"Hello", "Hi"}


def test_close_is_idempotent_and_keeps_values(offline: vexil.Client) -> None:
    offline.close()
    offline.close()
    assert offline.status.state is State.STALE and offline.status.reason == "client closed"
    assert offline.bool_value("checkout", {}, False) is True
    assert "offline" in repr(offline)


def test_sources_parse_as_python_3_9() -> None:
    """The package supports Python 3.9: no newer syntax anywhere."""
    import ast

    src = Path(vexil.__file__).parent
    for path in sorted(src.glob("*.py")):
        ast.parse(path.read_text(encoding="utf-8"), str(path), feature_version=(3, 9))
