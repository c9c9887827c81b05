"""The engine's parts and the validation of rulesets and of incremental changes."""

from __future__ import annotations

import copy
import re
from typing import Any, Dict, List

import pytest

from vexil import ReasonKind, RulesetError, Snapshot
from vexil import _operands as ops

BOOL = [{"key": "on", "value": True}, {"key": "off", "value": False}]


def flag(**fields: Any) -> Dict[str, Any]:
    base: Dict[str, Any] = {
        "type": "boolean",
        "variations": copy.deepcopy(BOOL),
        "enabled": True,
        "off_variation": "off",
        "fallthrough": {"variation": "on"},
    }
    base.update(fields)
    return base


def rule(*clauses: Dict[str, Any], serve: str = "on", **fields: Any) -> Dict[str, Any]:
    return {"clauses": list(clauses), "serve": {"variation": serve}, **fields}


def errors_of(ruleset: Dict[str, Any]) -> List[str]:
    with pytest.raises(RulesetError) as e:
        Snapshot.compile(ruleset)
    return [f"{p}: {m}" for p, m in e.value.errors]


# --------------------------------------------------------------------------- operands


def test_plain_decimal_strings() -> None:
    for s, x in [("13", 13.0), ("1.5", 1.5), ("-2", -2.0), ("-0", 0.0), ("007", 7.0), ("9007199254740993", 2.0**53)]:
        assert ops.decimal_of(s) == x, s
    for s in ["", " 13", "13 ", "+3", "-", "0x10", "1e2", "NaN", "inf", "1_000", "1.", ".5", "１３", "1" * 400]:
        assert ops.decimal_of(s) is None, s


def test_rfc3339() -> None:
    p = ops.parse_rfc3339
    assert p("1970-01-01T00:00:00Z") == 0
    assert p("2026-01-01T00:00:00Z") == 1_767_225_600_000
    assert p("2026-01-01T01:00:00+01:00") == 1_767_225_600_000
    assert p("2025-12-31T19:00:00-05:00") == 1_767_225_600_000
    assert p("2026-01-01t00:00:00.5z") == 1_767_225_600_500
    assert p("2026-01-01 00:00:00.123456Z") == 1_767_225_600_123
    assert p("2024-02-29T00:00:00Z") == 1_709_164_800_000
    assert p("1969-12-31T23:59:59Z") == -1000
    for bad in [
        "",
        "2026-01-01",
        "2026-01-01T00:00:00",
        "2026-13-01T00:00:00Z",
        "2025-02-29T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T00:00:00.Z",
        "2026-01-01T00:00:00+0100",
        "2026-01-01T00:00:00Zjunk",
        "２０２６-01-01T00:00:00Z",
    ]:
        assert p(bad) is None, bad
    for ms in [0, 951_782_400_000, 1_709_164_800_000, 4_102_444_799_999, -86_400_000 * 400, -1]:
        assert p(ops.format_rfc3339(ms)) == ms
    assert ops.format_rfc3339(1_767_225_600_123) == "2026-01-01T00:00:00.123Z"


def test_context_versions() -> None:
    v = ops.clause_version
    cv = ops.context_version
    assert cv("2.1.0") == v("2.1.0") == v("v2.1.0")
    assert cv("V2.1") == v("2.1.0")
    assert cv("v2") == v("2.0.0")
    assert cv("2.1-beta") == v("2.1.0-beta")
    assert cv("2+b") == v("2.0.0")
    assert cv(2) == v("2.0.0") and cv(2.0) == v("2.0.0") and cv(1.2) == v("1.2.0")
    assert cv(1.10) == v("1.1.0") and cv(10.25) == v("10.25.0") and cv(-0.0) == v("0.0.0")
    for bad in ["vv2.1.0", "v", " v2.1.0", "2..1", "", "01.0.0", "1.2.3.4", -1, -1.5, 1.05, 0.00001, 1e20, True, None]:
        assert cv(bad) is None, bad
    assert v("1.2") is None and v("vv1.2.3") is None and v("1.2.3-01") is None
    # Precedence: pre-releases sort before the release, numerically where numeric.
    order = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
    ]
    keys = [v(s) for s in order]
    assert None not in keys and keys == sorted(k for k in keys if k is not None)
    assert v("1.0.0+a") == v("1.0.0+b")


def test_networks() -> None:
    net = ops.parse_cidr("10.1.0.0/16")
    assert net == (4, 0x0A010000, 0xFFFF0000)
    assert ops.parse_cidr("10.1.2.3/8") == (4, 0x0A000000, 0xFF000000), "host bits are masked"
    assert isinstance(ops.parse_cidr("10.0.0.0/33"), str)
    assert isinstance(ops.parse_cidr("10.0.0.0/+8"), str)
    assert isinstance(ops.parse_cidr("10.0.0/8"), str)
    assert ops.parse_ip("fe80::1%eth0") is None
    assert ops.parse_ip("::ffff:1.2.3.4") is not None


def test_regexes_read_as_the_server_reads_them() -> None:
    t = ops.python_regex
    assert t("abc$") == "abc\\Z"
    assert t("[$]x") == "[$]x" and t("\\$") == "\\$" and t("[]$]") == "[]$]"
    assert t("(?m)^a$") == "(?m)^a$"
    assert t("(?<year>\\d{4})") == "(?P<year>\\d{4})"
    assert t("a\\z") == "a\\Z"
    assert re.search(t("abc$"), "abc\n") is None
    assert re.search(t("abc$"), "abc") is not None


# --------------------------------------------------------------------------- validation


def test_a_valid_ruleset_compiles_and_reports_its_parts() -> None:
    snap = Snapshot.compile({"version": 7, "flags": {"a": flag(), "b": flag(archived=True)}})
    assert snap.version == 7 and snap.flag_keys() == ["a"] and len(snap) == 1
    assert snap.evaluate("b").reason.error_code is not None, "archived counts as missing"
    assert not snap.uses_now


def test_every_problem_is_reported_with_its_path() -> None:
    errors = errors_of(
        {
            "flags": {
                "bad key!": flag(),
                "f": flag(
                    off_variation="nope",
                    rules=[
                        rule({"attribute": "a", "op": "wat", "values": [1]}),
                        rule({"attribute": "a", "op": "matches", "values": [3]}),
                        rule({"attribute": "a", "op": "semver_gt", "values": ["1.2"]}),
                        rule({"attribute": "a", "op": "in_cidr", "values": ["10.0.0.0/40"]}),
                        rule({"op": "in_segment", "values": ["ghost"]}),
                        rule({"attribute": "a", "op": "exists", "values": [1]}),
                        {"clauses": [], "serve": {"rollout": {"variations": [{"variation": "on", "weight": 5}]}}},
                    ],
                ),
                "g": {
                    "type": "boolean",
                    "variations": [{"key": "on", "value": True}],
                    "off_variation": "on",
                    "fallthrough": {"variation": "on"},
                },
            }
        }
    )
    text = "\n".join(errors)
    for expected in [
        "flags.bad key!: invalid flag key",
        "flags.f.off_variation: unknown variation 'nope'",
        "flags.f.rules[0].clauses[0].op: unknown operator 'wat'",
        "flags.f.rules[1].clauses[0].values[0]: must be a regular expression string",
        "flags.f.rules[2].clauses[0].values[0]: must be a complete semantic version",
        "flags.f.rules[3].clauses[0].values[0]: invalid CIDR",
        "flags.f.rules[4].clauses[0].values[0]: unknown segment 'ghost'",
        "flags.f.rules[5].clauses[0].values: exists takes no values",
        "flags.f.rules[6].serve.rollout.variations: weights must sum to 100000 (100%), got 5",
        "flags.g.variations: a boolean flag has exactly two variations",
    ]:
        assert expected in text, f"{expected!r} not in\n{text}"


def test_cycles_are_rejected() -> None:
    pre = [{"flag": "b", "variations": ["on"]}]
    errors = errors_of(
        {"flags": {"a": flag(prerequisites=pre), "b": flag(prerequisites=[{"flag": "a", "variations": ["on"]}])}}
    )
    assert any("prerequisite cycle: a → b → a" in e for e in errors), errors
    seg = {"rules": [{"clauses": [{"op": "in_segment", "values": ["t"]}]}]}
    seg2 = {"rules": [{"clauses": [{"op": "in_segment", "values": ["s"]}]}]}
    errors = errors_of({"flags": {}, "segments": {"s": seg, "t": seg2}})
    assert any("segment cycle" in e for e in errors), errors


# --------------------------------------------------------------------------- evaluation details


def test_ofrep_reasons() -> None:
    rollout = {"rollout": {"variations": [{"variation": "on", "weight": 50000}, {"variation": "off", "weight": 50000}]}}
    snap = Snapshot.compile(
        {
            "flags": {
                "static": flag(),
                "off": flag(enabled=False),
                "split": flag(fallthrough=rollout),
                "targeted": flag(targets=[{"variation": "on", "values": ["u1"]}]),
                "ruled": flag(rules=[rule({"attribute": "x", "op": "exists"}, id="r1")]),
            }
        }
    )
    ctx = {"targetingKey": "u1", "x": 1}
    got = {k: snap.evaluate(k, ctx).ofrep_reason for k in snap.flag_keys()}
    assert got == {
        "static": "STATIC",
        "off": "DISABLED",
        "split": "SPLIT",
        "targeted": "TARGETING_MATCH",
        "ruled": "TARGETING_MATCH",
    }
    assert snap.evaluate("targeted", {"targetingKey": "u2"}).ofrep_reason == "DEFAULT"
    r = snap.evaluate("ruled", ctx).reason
    assert r.to_dict() == {"kind": "RULE_MATCH", "rule_id": "r1", "rule_index": 0, "in_rollout": False}
    assert snap.evaluate("split", {}).reason.error_code == "TARGETING_KEY_MISSING"


def test_now_is_read_only_when_a_clause_uses_it() -> None:
    trial = rule({"attribute": "trial_ends_at", "op": "after", "values": ["$now"]})
    assert Snapshot.compile({"flags": {"t": flag(rules=[trial])}}).uses_now
    assert Snapshot.compile(
        {"flags": {"t": flag(rules=[rule({"attribute": "$now", "op": "gt", "values": [0]})])}}
    ).uses_now
    plain = rule({"attribute": "signup", "op": "before", "values": ["2026-01-01T00:00:00Z"]})
    assert not Snapshot.compile({"flags": {"t": flag(rules=[plain])}}).uses_now
    snap = Snapshot.compile({"flags": {"t": flag(rules=[trial], fallthrough={"variation": "off"})}})
    assert snap.evaluate("t", {"trial_ends_at": 2000}, now_ms=1000).value is True
    assert snap.evaluate("t", {"trial_ends_at": 2000}, now_ms=3000).value is False


def test_contexts_may_use_tuples_and_str_subclasses() -> None:
    import enum

    class Plan(str, enum.Enum):
        PRO = "pro"

    snap = Snapshot.compile(
        {
            "flags": {
                "f": flag(
                    fallthrough={"variation": "off"}, rules=[rule({"attribute": "plan", "op": "in", "values": ["pro"]})]
                )
            }
        }
    )
    assert snap.evaluate("f", {"plan": ("free", "pro")}).value is True
    assert snap.evaluate("f", {"plan": Plan.PRO}).value is True
    assert snap.evaluate("f", {"plan": 1}).value is False


# --------------------------------------------------------------------------- incremental changes


def test_apply_compiles_only_changes_and_validates_the_whole() -> None:
    base = Snapshot.compile(
        {
            "version": 1,
            "flags": {"p": flag(), "c": flag(prerequisites=[{"flag": "p", "variations": ["on"]}])},
            "segments": {"s": {"included": ["u1"]}},
        }
    )
    assert base.evaluate("c").reason.kind is ReasonKind.FALLTHROUGH
    off = base.apply(2, [("flag", "p", flag(enabled=False))])
    assert off.version == 2 and off.evaluate("c").reason.prerequisite_key == "p"
    assert base.evaluate("c").reason.kind is ReasonKind.FALLTHROUGH, "the old snapshot is untouched"
    assert off.flags["c"] is base.flags["c"], "unchanged flags are shared"

    with pytest.raises(RulesetError, match="unknown flag 'p'"):
        base.apply(3, [("flag", "p", None)])
    both = base.apply(3, [("flag", "p", None), ("flag", "c", flag())])
    assert both.flag_keys() == ["c"]

    seg_rule = rule({"op": "in_segment", "values": ["s"]})
    with_seg = base.apply(4, [("flag", "x", flag(fallthrough={"variation": "off"}, rules=[seg_rule]))])
    assert with_seg.evaluate("x", {"targetingKey": "u1"}).value is True
    with pytest.raises(RulesetError, match="unknown segment 's'"):
        with_seg.apply(5, [("segment", "s", None)])
    moved = with_seg.apply(5, [("segment", "s", {"included": ["u2"]})])
    assert moved.evaluate("x", {"targetingKey": "u1"}).value is False
    with pytest.raises(RulesetError, match="prerequisite cycle"):
        base.apply(6, [("flag", "p", flag(prerequisites=[{"flag": "c", "variations": ["on"]}]))])
    with pytest.raises(RulesetError, match="has no variation 'on'"):
        base.apply(
            7,
            [
                (
                    "flag",
                    "p",
                    flag(
                        variations=[{"key": "yes", "value": True}, {"key": "no", "value": False}],
                        off_variation="no",
                        fallthrough={"variation": "yes"},
                    ),
                )
            ],
        )
