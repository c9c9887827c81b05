"""The OpenFeature provider: offline, and through `openfeature.api` against a real server."""

from __future__ import annotations

import importlib
import threading
from typing import Any, Dict, Iterator, List

import pytest

openfeature = pytest.importorskip(
    "openfeature", reason="needs the openfeature extra: pip install 'vexil-sdk[openfeature]'"
)

from openfeature import api  # noqa: E402
from openfeature.evaluation_context import EvaluationContext  # noqa: E402
from openfeature.event import EventDetails, ProviderEvent  # noqa: E402
from openfeature.exception import ErrorCode  # noqa: E402
from openfeature.provider import ProviderStatus  # noqa: E402

import vexil  # noqa: E402
from fake_server import wait_until  # noqa: E402
from vexil.openfeature import VexilProvider, to_context  # noqa: E402
from vexil_server import VexilServer  # noqa: E402

BOOL = [{"key": "on", "value": True}, {"key": "off", "value": False}]
RULESET: Dict[str, Any] = {
    "version": 3,
    "flags": {
        "beta": {
            "type": "boolean",
            "variations": BOOL,
            "enabled": True,
            "off_variation": "off",
            "fallthrough": {"variation": "off"},
            "version": 4,
            "rules": [
                {
                    "id": "r1",
                    "clauses": [{"attribute": "email", "op": "ends_with", "values": ["@acme.com"]}],
                    "serve": {"variation": "on"},
                }
            ],
        },
        "limit": {
            "type": "number",
            "variations": [{"key": "n", "value": 5}, {"key": "f", "value": 2.5}],
            "enabled": True,
            "off_variation": "n",
            "fallthrough": {"variation": "n"},
        },
        "ratio": {
            "type": "number",
            "variations": [{"key": "f", "value": 2.5}],
            "enabled": True,
            "off_variation": "f",
            "fallthrough": {"variation": "f"},
        },
        "theme": {
            "type": "json",
            "variations": [{"key": "t", "value": {"color": "teal"}}],
            "enabled": True,
            "off_variation": "t",
            "fallthrough": {"variation": "t"},
        },
        "name": {
            "type": "string",
            "variations": [{"key": "s", "value": "Vexil"}],
            "enabled": False,
            "off_variation": "s",
            "fallthrough": {"variation": "s"},
        },
    },
}


@pytest.fixture(autouse=True)
def clean_api() -> Iterator[None]:
    yield
    api.clear_providers()


def test_resolution_through_the_api_offline() -> None:
    api.set_provider(VexilProvider(vexil.Client(offline=True, bootstrap=RULESET)))
    wait_until(lambda: api.get_client().get_provider_status() is ProviderStatus.READY, what="READY")
    client = api.get_client()
    ctx = EvaluationContext("user-1", {"email": "ann@acme.com"})
    d = client.get_boolean_details("beta", False, ctx)
    assert (d.value, d.variant, d.reason) == (True, "on", "TARGETING_MATCH")
    assert d.flag_metadata == {"flagVersion": 4, "ruleId": "r1", "ruleIndex": 0}
    assert client.get_boolean_details("beta", True, EvaluationContext("u2")).reason == "DEFAULT"
    assert client.get_integer_value("limit", 0) == 5
    assert client.get_float_value("limit", 0.0) == 5.0
    assert client.get_float_value("ratio", 0.0) == 2.5
    assert client.get_object_value("theme", {}) == {"color": "teal"}
    named = client.get_string_details("name", "x")
    assert (named.value, named.reason) == ("Vexil", "DISABLED")
    wrong = client.get_integer_details("ratio", 7)
    assert wrong.value == 7 and wrong.error_code == ErrorCode.TYPE_MISMATCH
    missing = client.get_boolean_details("nope", True)
    assert missing.value is True and missing.error_code == ErrorCode.FLAG_NOT_FOUND
    assert client.get_boolean_details("beta", False, EvaluationContext("u", {"email": 3})).value is False


def test_contexts_convert() -> None:
    import datetime

    at = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    ctx = to_context(EvaluationContext("u1", {"signup": at, "tags": ["a"], "nested": {"when": at}}))
    assert ctx == {"targetingKey": "u1", "signup": 1767225600000, "tags": ["a"], "nested": {"when": 1767225600000}}
    assert to_context(None) == {}


def test_provider_events_follow_the_client() -> None:
    client = vexil.Client(offline=True, bootstrap=RULESET)
    provider = VexilProvider(client)
    events: List[EventDetails] = []
    got = threading.Event()

    def on_event(details: EventDetails) -> None:
        events.append(details)
        got.set()

    api.set_provider(provider)
    wait_until(lambda: api.get_client().get_provider_status() is ProviderStatus.READY, what="READY")
    api.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, on_event)
    try:
        theme = dict(RULESET["flags"]["theme"], variations=[{"key": "t", "value": {"color": "red"}}])
        client._store.apply(4, [("flag", "theme", theme)])
        assert got.wait(2)
        assert events[0].flags_changed == ["theme"]
        assert api.get_client().get_object_value("theme", {}) == {"color": "red"}
    finally:
        api.remove_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, on_event)
    stale = threading.Event()
    api.add_handler(ProviderEvent.PROVIDER_STALE, lambda d: stale.set())
    client.close()  # the client's status turns STALE ("client closed")
    assert stale.wait(2)
    assert api.get_client().get_provider_status() is ProviderStatus.STALE


def test_without_data_the_provider_is_not_ready() -> None:
    provider = VexilProvider(vexil.Client("http://127.0.0.1:9", "vx_srv_x", initial_backoff=0.05), init_timeout=0.2)
    errors = threading.Event()
    api.add_handler(ProviderEvent.PROVIDER_ERROR, lambda d: errors.set())
    api.set_provider(provider)
    assert errors.wait(5)
    details = api.get_client().get_boolean_details("beta", True)
    assert details.value is True and details.error_code == ErrorCode.PROVIDER_NOT_READY


def test_the_provider_against_a_real_server(server: VexilServer) -> None:
    flag_id = server.create_flag("of-flag")
    server.configure(
        flag_id,
        {
            "enabled": True,
            "fallthrough": {"variation": "off"},
            "rules": [
                {
                    "id": "staff",
                    "clauses": [{"attribute": "email", "op": "ends_with", "values": ["@acme.com"]}],
                    "serve": {"variation": "on"},
                }
            ],
        },
    )
    provider = VexilProvider(vexil.Client(server.url, server.server_key(), initial_backoff=0.1, max_backoff=0.5))
    if hasattr(api, "set_provider_and_wait"):
        api.set_provider_and_wait(provider)
    else:  # openfeature-sdk 0.8 (the last for Python 3.9)
        api.set_provider(provider)
        wait_until(lambda: api.get_client().get_provider_status() is ProviderStatus.READY, what="READY")
    client = api.get_client()
    assert client.get_provider_status() is ProviderStatus.READY
    staff = EvaluationContext("user-1", {"email": "ann@acme.com"})
    details = client.get_boolean_details("of-flag", False, staff)
    assert (details.value, details.variant, details.reason) == (True, "on", "TARGETING_MATCH")
    assert details.flag_metadata["ruleId"] == "staff"
    assert client.get_boolean_value("of-flag", True, EvaluationContext("user-2")) is False

    changed: List[EventDetails] = []
    got = threading.Event()

    def on_change(d: EventDetails) -> None:
        changed.append(d)
        got.set()

    api.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, on_change)
    server.configure(flag_id, {"enabled": False})
    # The event of the provider's first load may reach this handler late on a busy
    # machine: wait for the change itself, then for its event.
    wait_until(lambda: client.get_boolean_value("of-flag", True, staff) is False, 1.0, "the change")
    assert got.wait(1.0), "no PROVIDER_CONFIGURATION_CHANGED within 1 s"
    assert all(d.flags_changed == ["of-flag"] for d in changed), changed
    track = getattr(client, "track", None)  # openfeature-sdk 0.9+ (Python 3.10+) has tracking
    if track is not None:
        details = importlib.import_module("openfeature.track").TrackingEventDetails(value=19.99)
        track("purchase", staff, details)
    api.remove_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, on_change)
