"""The client against a real `vexil serve` (the binary named by VEXIL_BIN): live changes,
a server that dies and comes back, parity with the server's own evaluation, and the
package README's quick start."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List

import pytest

import vexil
from fake_server import wait_until
from vexil import ReasonKind, State, Status
from vexil_server import VexilServer


def connect(url: str, key: str, **options: Any) -> vexil.Client:
    """A client that retries quickly (tests wait for reconnections)."""
    return vexil.Client(url, key, initial_backoff=0.1, max_backoff=0.5, **options)


README = Path(__file__).resolve().parents[1] / "README.md"


def evaluate_on_server(server: VexilServer, key: str, flag: str, context: Dict[str, Any]) -> Any:
    request = urllib.request.Request(
        server.url + "/api/v1/evaluate",
        data=json.dumps({"flag_key": flag, "context": context}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read())


def test_a_change_reaches_a_running_client_within_a_second(server: VexilServer) -> None:
    flag_id = server.create_flag("live-change")
    server.configure(flag_id, {"enabled": True})
    with connect(server.url, server.server_key()) as client:
        client.wait_for_initialization(10)
        wait_until(lambda: client.status.reason == "streaming", what="the stream")
        assert client.bool_value("live-change", {"targetingKey": "u1"}, False) is True
        changed = threading.Event()
        client.on_flag_change("live-change", lambda change: changed.set())
        started = time.monotonic()
        server.configure(flag_id, {"enabled": False, "comment": "switch off"})
        assert changed.wait(1.0), "the change did not arrive within 1 s"
        elapsed = time.monotonic() - started
        assert client.bool_value("live-change", {"targetingKey": "u1"}, True) is False
        assert client.bool_detail("live-change", {}, True).reason.kind is ReasonKind.OFF
        print(f"change propagated in {elapsed * 1000:.0f} ms (including the PATCH request)")


def test_local_evaluation_matches_the_server(server: VexilServer) -> None:
    flag_id = server.create_flag(
        "parity",
        type="string",
        variations=[{"key": "a", "value": "A"}, {"key": "b", "value": "B"}, {"key": "c", "value": "C"}],
    )
    server.configure(
        flag_id,
        {
            "enabled": True,
            "targets": [{"variation": "c", "values": ["vip"]}],
            "rules": [
                {
                    "clauses": [{"attribute": "email", "op": "ends_with", "values": ["@acme.com"]}],
                    "serve": {"variation": "b"},
                },
                {
                    "clauses": [
                        {"attribute": "version", "op": "semver_gte", "values": ["2.0.0"]},
                        {"attribute": "country", "op": "in", "values": ["FR", "DE"]},
                    ],
                    "serve": {
                        "rollout": {
                            "variations": [{"variation": "a", "weight": 30000}, {"variation": "c", "weight": 70000}]
                        }
                    },
                },
            ],
            "fallthrough": {
                "rollout": {
                    "seed": "s1",
                    "variations": [{"variation": "a", "weight": 25000}, {"variation": "b", "weight": 75000}],
                }
            },
        },
    )
    key = server.server_key()
    contexts: List[Dict[str, Any]] = [{"targetingKey": "vip"}, {"targetingKey": "x", "email": "ann@acme.com"}, {}]
    for i in range(60):
        contexts.append({"targetingKey": f"user-{i}", "version": f"{i % 4}.1.0", "country": ["FR", "US"][i % 2]})
    with connect(server.url, key, send_insights=False) as client:
        client.wait_for_initialization(10)
        for ctx in contexts:
            remote = evaluate_on_server(server, key, "parity", ctx)
            local = client.string_detail("parity", ctx, "default")
            got = {
                "value": None if local.is_default else local.value,
                "variation": local.variation,
                "reason": local.reason.to_dict(),
                "flag_version": local.flag_version,
            }
            assert got == {k: remote[k] for k in got}, ctx


def test_a_dead_server_leaves_values_served_and_a_restart_recovers(own_server: VexilServer) -> None:
    flag_id = own_server.create_flag("survivor")
    own_server.configure(flag_id, {"enabled": True})
    statuses: List[Status] = []
    with connect(own_server.url, own_server.server_key()) as client:
        client.wait_for_initialization(10)
        wait_until(lambda: client.status.reason == "streaming", what="the stream")
        client.on_status_change(statuses.append)

        own_server.kill()
        wait_until(lambda: client.status.state is State.STALE, timeout=5, what="STALE")
        assert client.bool_value("survivor", {"targetingKey": "u1"}, False) is True
        detail = client.bool_detail("survivor", {"targetingKey": "u1"}, False)
        assert detail.reason.kind is ReasonKind.FALLTHROUGH and not detail.is_default
        assert "unreachable" in client.status.reason

        own_server.start()  # same port, same database
        wait_until(lambda: client.status.reason == "streaming", timeout=10, what="recovery")
        assert client.status.state is State.READY
        changed = threading.Event()
        client.on_flag_change("survivor", lambda change: changed.set())
        own_server.configure(flag_id, {"enabled": False})
        assert changed.wait(1.0), "no change after the restart"
        assert client.bool_value("survivor", {"targetingKey": "u1"}, True) is False
        wait_until(lambda: [s.state for s in statuses][-1:] == [State.READY], what="the READY notification")
        assert [s.state for s in statuses][:1] == [State.STALE]


def test_evaluation_counts_and_tracked_events_reach_the_server_insights(
    server: VexilServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="vexil")
    flag_id = server.create_flag("counted")
    server.configure(flag_id, {"enabled": True, "watch_events": ["purchase"]})
    with connect(server.url, server.server_key()) as client:
        client.wait_for_initialization(10)
        for i in range(10):
            assert client.bool_value("counted", {"targetingKey": f"u{i}"}, False) is True
        client.track("purchase", {"targetingKey": "u1"}, 12.5)
        client.flush()
    assert [r.getMessage() for r in caplog.records if r.name == "vexil"] == []
    path = f"/api/v1/flags/{flag_id}/environments/{server.environment()}/insights"

    def arrived() -> bool:
        on = server.api("GET", path)["variations"]["on"]
        return bool(on["evaluations"] == 10 and on["events"].get("purchase"))

    wait_until(arrived, what="the counts and the event in the server's insights")
    on = server.api("GET", path)["variations"]["on"]
    assert on["evaluations"] == 10
    assert on["events"]["purchase"] == {"count": 1, "sum": 12.5}


def test_a_wrong_key_is_reported(server: VexilServer) -> None:
    with connect(server.url, "vx_srv_not-a-key") as client:
        with pytest.raises(vexil.KeyRejectedError, match="HTTP 401"):
            client.wait_for_initialization(10)
        assert client.status.state is State.ERROR


def _readme_block(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block under '## {heading}' in {README}"
    return match.group(1)


def _run(code: str, server: VexilServer, key: str) -> str:
    env = dict(os.environ, VEXIL_URL=server.url, VEXIL_SERVER_KEY=key)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.stdout


def test_the_readme_quick_start_runs(server: VexilServer) -> None:
    flag_id = server.create_flag("new-checkout")
    server.configure(
        flag_id,
        {
            "enabled": True,
            "fallthrough": {"variation": "off"},
            "rules": [
                {
                    "clauses": [{"attribute": "email", "op": "ends_with", "values": ["@acme.com"]}],
                    "serve": {"variation": "on"},
                }
            ],
        },
    )
    out = _run(_readme_block("Quick start"), server, server.server_key())
    assert "new checkout for user-42" in out, out
    assert "True on RULE_MATCH" in out, out


def test_the_readme_openfeature_example_runs(server: VexilServer) -> None:
    api = pytest.importorskip(
        "openfeature.api", reason="needs the openfeature extra: pip install 'vexil-sdk[openfeature]'"
    )
    if not hasattr(api, "set_provider_and_wait"):
        pytest.skip("the README's example needs openfeature-sdk 0.9 or later (Python 3.10 or later)")
    server.create_flag("dark-mode")
    out = _run(_readme_block("OpenFeature"), server, server.server_key())
    assert "dark-mode: False" in out, out
