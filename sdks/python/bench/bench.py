"""Local evaluation benchmarks of the Python SDK.

    python bench/bench.py            # from sdks/python, with the package installed (pip install -e .)

Prints the time of one evaluation of a boolean flag with 5 rules (through the engine and
through the client's typed getter, with and without evaluation counting), and of
evaluating 1,000 flags for one context.
"""

from __future__ import annotations

import logging
import platform
import statistics
import timeit
from typing import Any, Callable, Dict, List

import vexil
from vexil.engine import Snapshot

BOOL = [{"key": "on", "value": True}, {"key": "off", "value": False}]


def five_rule_flag() -> Dict[str, Any]:
    """A boolean flag with 5 rules of common operators; the benchmark context matches none,
    so every rule is tried and the 25 % rollout of the fallthrough buckets the user."""
    return {
        "type": "boolean",
        "variations": BOOL,
        "enabled": True,
        "off_variation": "off",
        "targets": [{"variation": "on", "values": ["vip-1", "vip-2"]}],
        "rules": [
            {
                "id": "staff",
                "clauses": [{"attribute": "email", "op": "ends_with", "values": ["@acme.com"]}],
                "serve": {"variation": "on"},
            },
            {
                "id": "eu-pro",
                "clauses": [
                    {"attribute": "country", "op": "in", "values": ["FR", "DE", "ES"]},
                    {"attribute": "plan", "op": "in", "values": ["pro"]},
                ],
                "serve": {"variation": "on"},
            },
            {
                "id": "new-app",
                "clauses": [{"attribute": "app_version", "op": "semver_gte", "values": ["3.0.0"]}],
                "serve": {"variation": "on"},
            },
            {
                "id": "seniors",
                "clauses": [{"attribute": "age", "op": "gte", "values": [65]}],
                "serve": {"variation": "off"},
            },
            {
                "id": "beta",
                "clauses": [{"attribute": "beta", "op": "in", "values": [True]}],
                "serve": {"variation": "on"},
            },
        ],
        "fallthrough": {
            "rollout": {"variations": [{"variation": "on", "weight": 25000}, {"variation": "off", "weight": 75000}]}
        },
        "prerequisites": [],
        "client_side": False,
        "version": 1,
    }


CONTEXT = {
    "targetingKey": "user-123",
    "email": "bob@example.com",
    "country": "US",
    "plan": "free",
    "app_version": "2.9.1",
    "age": 30,
    "beta": False,
}


def thousand_flags() -> Dict[str, Any]:
    """1,000 flags of every type with 0 to 4 rules each, some rollouts and prerequisites."""
    flags: Dict[str, Any] = {}
    clauses: List[Dict[str, Any]] = [
        {"attribute": "email", "op": "ends_with", "values": ["@acme.com"]},
        {"attribute": "country", "op": "in", "values": ["FR", "DE"]},
        {"attribute": "app_version", "op": "semver_lt", "values": ["1.0.0"]},
        {"attribute": "age", "op": "lt", "values": [18]},
    ]
    for i in range(1000):
        kind = ("boolean", "string", "number", "json")[i % 4]
        if kind == "boolean":
            variations = BOOL
        elif kind == "string":
            variations = [{"key": "a", "value": "alpha"}, {"key": "b", "value": "beta"}]
        elif kind == "number":
            variations = [{"key": "a", "value": 1}, {"key": "b", "value": 2.5}]
        else:
            variations = [{"key": "a", "value": {"x": 1}}, {"key": "b", "value": [1, 2]}]
        first, second = variations[0]["key"], variations[1]["key"]
        flag: Dict[str, Any] = {
            "type": kind,
            "variations": variations,
            "enabled": i % 10 != 0,
            "off_variation": second,
            "fallthrough": {"variation": first},
            "rules": [{"clauses": [clauses[(i + r) % 4]], "serve": {"variation": first}} for r in range(i % 5)],
        }
        if i % 7 == 0:
            flag["fallthrough"] = {
                "rollout": {
                    "variations": [{"variation": first, "weight": 50000}, {"variation": second, "weight": 50000}]
                }
            }
        if i % 50 == 1 and i > 1:
            flag["prerequisites"] = [{"flag": f"flag-{i - 1:04d}", "variations": [variations[0]["key"]]}]
            flags[f"flag-{i - 1:04d}"]["type"] = kind
            flags[f"flag-{i - 1:04d}"]["variations"] = variations
            flags[f"flag-{i - 1:04d}"]["off_variation"] = second
            flags[f"flag-{i - 1:04d}"]["fallthrough"] = {"variation": first}
            flags[f"flag-{i - 1:04d}"]["rules"] = []
        flags[f"flag-{i:04d}"] = flag
    return {"version": 1, "flags": flags, "segments": {}}


def measure(name: str, fn: Callable[[], Any], number: int) -> float:
    """Best of 5 runs of ``number`` calls, in microseconds per call (median shown too)."""
    fn()
    runs = [t / number * 1e6 for t in timeit.repeat(fn, number=number, repeat=5)]
    best, median = min(runs), statistics.median(runs)
    print(f"  {name:<58} {best:9.2f} µs   (median {median:.2f} µs)")
    return best


def main() -> None:
    logging.getLogger("vexil").setLevel(logging.CRITICAL)
    print(f"Python {platform.python_version()} ({platform.python_implementation()}) on {platform.machine()}")
    ruleset = {"version": 1, "flags": {"checkout": five_rule_flag()}, "segments": {}}
    snap = Snapshot.compile(ruleset)
    assert snap.evaluate("checkout", CONTEXT).reason.kind is vexil.ReasonKind.FALLTHROUGH

    print("boolean flag with 5 rules (no rule matches; 25 % rollout fallthrough):")
    measure("engine: Snapshot.evaluate", lambda: snap.evaluate("checkout", CONTEXT), 100_000)
    offline = vexil.Client(offline=True, bootstrap=ruleset)
    measure(
        "client: bool_value (offline, no counting)", lambda: offline.bool_value("checkout", CONTEXT, False), 100_000
    )
    # A client that counts evaluations (its server is unreachable; it serves the bootstrap).
    counting = vexil.Client("http://127.0.0.1:9", "vx_srv_bench", bootstrap=ruleset, initial_backoff=30.0)
    measure(
        "client: bool_value (counting evaluations)", lambda: counting.bool_value("checkout", CONTEXT, False), 100_000
    )
    measure("client: bool_detail", lambda: offline.bool_detail("checkout", CONTEXT, False), 100_000)
    rule_hit = dict(CONTEXT, email="ann@acme.com")
    measure("client: bool_value, first rule matches", lambda: offline.bool_value("checkout", rule_hit, False), 100_000)

    big = thousand_flags()
    compile_best = measure("compile 1,000 flags (Snapshot.compile)", lambda: Snapshot.compile(big), 3)
    del compile_best
    snap_big = Snapshot.compile(big)
    client_big = vexil.Client(offline=True, bootstrap=big)
    assert len(snap_big) == 1000
    print("1,000 flags for one context:")
    measure("engine: Snapshot.evaluate_all", lambda: snap_big.evaluate_all(CONTEXT), 200)
    measure("client: get_all_flags", lambda: client_big.get_all_flags(CONTEXT), 200)
    offline.close()
    counting.close()
    client_big.close()


if __name__ == "__main__":
    main()
