#!/usr/bin/env python3
"""Generate the Vexil evaluation test vectors (../*.json).

Expectations below are written by hand from the evaluation semantics in ../README.md; rollout
buckets are computed with an independent MurmurHash3 (pure Python, checked
against the `mmh3` package).  Every case is then re-evaluated with reference.py, an independent
Python implementation of the spec, and generation fails on any disagreement.

Run:  python3 generate.py      (needs `pip install mmh3` for the cross-check; optional)
Output is deterministic: keys sorted, indent=2, UTF-8.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402

OUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_NOW = ref.DEFAULT_NOW
NOW_MS = ref.now_ms(DEFAULT_NOW)  # 1767225600000


# --------------------------------------------------------------------------- builders
def C(attribute, op, values=None, negate=False, ci=False, explicit=False):
    c = {"attribute": attribute, "op": op}
    if values is not None:
        c["values"] = values
    if negate or explicit:
        c["negate"] = negate
    if ci or explicit:
        c["case_insensitive"] = ci
    return c


def SEG(*keys, negate=False, attribute=None):
    c = {"op": "in_segment", "values": list(keys)}
    if attribute is not None:
        c["attribute"] = attribute
    if negate:
        c["negate"] = True
    return c


def serve(s):
    return {"variation": s} if isinstance(s, str) else s


def rollout(pairs, bucket_by=None, seed=None):
    ro = {"variations": [{"variation": v, "weight": w} for v, w in pairs]}
    if bucket_by is not None:
        ro["bucket_by"] = bucket_by
    if seed is not None:
        ro["seed"] = seed
    return {"rollout": ro}


BOOL = [{"key": "on", "value": True}, {"key": "off", "value": False}]


def rule(clauses, srv, id=None, description=None):
    r = {"clauses": clauses, "serve": serve(srv)}
    if id is not None:
        r["id"] = id
    if description is not None:
        r["description"] = description
    return r


def flag(type="boolean", variations=None, enabled=True, off="off", fallthrough="off",
         targets=None, rules=None, prereqs=None, client_side=False, version=1, archived=None):
    f = {
        "type": type,
        "variations": variations if variations is not None else BOOL,
        "enabled": enabled,
        "off_variation": off,
        "fallthrough": serve(fallthrough),
        "targets": [{"variation": v, "values": vals} for v, vals in (targets or [])],
        "rules": rules or [],
        "prerequisites": [{"flag": k, "variations": vs} for k, vs in (prereqs or [])],
        "client_side": client_side,
        "version": version,
    }
    if archived is not None:
        f["archived"] = archived
    return f


def res(value, variation, kind, in_rollout=False, **extra):
    r = {"kind": kind, "in_rollout": in_rollout}
    r.update(extra)
    return {"value": value, "variation": variation, "reason": r}


def err(code):
    return {"value": None, "variation": None,
            "reason": {"kind": "ERROR", "error_code": code, "in_rollout": False}}


ON_R1 = res(True, "on", "RULE_MATCH", rule_id="r1", rule_index=0)
OFF_FT = res(False, "off", "FALLTHROUGH")


class Suite:
    def __init__(self, name, description):
        self.name = name
        self.description = description
        self.flags = {}
        self.segments = {}
        self.cases = []
        self._clause_flags = {}

    def flag(self, key, **kw):
        assert key not in self.flags, key
        self.flags[key] = flag(**kw)
        return key

    def segment(self, key, included=(), excluded=(), rules=()):
        assert key not in self.segments, key
        self.segments[key] = {"included": list(included), "excluded": list(excluded),
                              "rules": list(rules)}
        return key

    def case(self, name, flag_key, context, expected, now=None):
        assert all(c["name"] != name for c in self.cases), (self.name, name)
        c = {"name": name, "flag": flag_key, "context": context, "expected": expected}
        if now is not None:
            c["now"] = now
        self.cases.append(c)

    def clause_flag(self, clause):
        """A boolean flag: rule r1 = [clause] serves on, fallthrough off."""
        sig = json.dumps(clause, sort_keys=True)
        if sig not in self._clause_flags:
            op = clause["op"].replace("_", "-")
            key = "%s-%03d" % (op, len(self._clause_flags) + 1)
            self.flag(key, rules=[rule([clause], "on", id="r1")])
            self._clause_flags[sig] = key
        return self._clause_flags[sig]

    def clause(self, name, clause, context, match, now=None):
        self.case(name, self.clause_flag(clause), context, ON_R1 if match else OFF_FT, now)

    def ruleset(self):
        return {"version": 1, "flags": self.flags, "segments": self.segments}


def ctx(**kw):
    d = {"targetingKey": "u1"}
    d.update(kw)
    return d


# --------------------------------------------------------------------------- operators_string
def operators_string():
    s = Suite("operators_string",
              "The in, starts_with, ends_with, contains and matches operators: match, no match, "
              "negate, case_insensitive, missing/null attribute, wrong attribute type.")
    # in (strings)
    c_in = C("plan", "in", ["free", "pro"])
    c_in_neg = C("plan", "in", ["free", "pro"], negate=True)
    c_in_ci = C("plan", "in", ["free", "pro"], ci=True)
    c_in_ci_neg = C("plan", "in", ["free", "pro"], negate=True, ci=True)
    s.clause("in: string equal to second value", c_in, ctx(plan="pro"), True)
    s.clause("in: string equal to first value", c_in, ctx(plan="free"), True)
    s.clause("in: string not in values", c_in, ctx(plan="enterprise"), False)
    s.clause("in: no partial match", c_in, ctx(plan="pr"), False)
    s.clause("in: case sensitive by default", c_in, ctx(plan="PRO"), False)
    s.clause("in: explicit negate false and case_insensitive false",
             C("plan", "in", ["free", "pro"], explicit=True), ctx(plan="pro"), True)
    s.clause("in: negate, value not in list -> true", c_in_neg, ctx(plan="enterprise"), True)
    s.clause("in: negate, value in list -> false", c_in_neg, ctx(plan="pro"), False)
    s.clause("in: case_insensitive matches upper-case attribute", c_in_ci, ctx(plan="PRO"), True)
    s.clause("in: case_insensitive lowercases clause values too",
             C("plan", "in", ["Enterprise"], ci=True), ctx(plan="eNTERPRISE"), True)
    s.clause("in: case_insensitive still needs equality", c_in_ci, ctx(plan="PROS"), False)
    s.clause("in: case_insensitive + negate on match -> false", c_in_ci_neg, ctx(plan="Free"), False)
    s.clause("in: case_insensitive non-ASCII (Unicode lowercase)",
             C("city", "in", ["école", "zürich"], ci=True), ctx(city="ZÜRICH"), True)
    s.clause("in: non-ASCII exact equality", C("city", "in", ["東京"]), ctx(city="東京"), True)
    s.clause("in: missing attribute -> false", c_in, ctx(), False)
    s.clause("in: missing attribute, negated -> still false", c_in_neg, ctx(), False)
    s.clause("in: null attribute -> false", c_in, ctx(plan=None), False)
    s.clause("in: null attribute, negated -> still false", c_in_neg, ctx(plan=None), False)
    s.clause("in: empty string equals empty string value", C("plan", "in", [""]), ctx(plan=""), True)
    s.clause("in: number attribute vs string values is incomparable", c_in, ctx(plan=5), False)
    s.clause("in: number attribute vs string values, negated -> still false", c_in_neg,
             ctx(plan=5), False)
    s.clause("in: bool attribute vs string values, negated -> still false", c_in_neg,
             ctx(plan=True), False)
    s.clause("in: object attribute, negated -> still false", c_in_neg,
             ctx(plan={"name": "pro"}), False)
    # in (numbers)
    c_num = C("seats", "in", [10, 20])
    c_num_neg = C("seats", "in", [10, 20], negate=True)
    s.clause("in: number equal", c_num, ctx(seats=20), True)
    s.clause("in: number not equal", c_num, ctx(seats=15), False)
    s.clause("in: number negated, not equal -> true", c_num_neg, ctx(seats=15), True)
    s.clause("in: numbers compare numerically (10.0 == 10)", c_num, ctx(seats=10.0), True)
    s.clause("in: float clause value equals integer attribute", C("ratio", "in", [1.0]),
             ctx(ratio=1), True)
    s.clause("in: float equality", C("ratio", "in", [0.25]), ctx(ratio=0.25), True)
    s.clause("in: negative number", C("delta", "in", [-3]), ctx(delta=-3), True)
    s.clause("in: numeric string \"20\" equals number value 20", c_num, ctx(seats="20"), True)
    s.clause("in: numeric string \"20.0\" equals number value 20", c_num, ctx(seats="20.0"), True)
    s.clause("in: numeric string \"15\" not in number values", c_num, ctx(seats="15"), False)
    s.clause("in: numeric string in number values, negated -> false", c_num_neg,
             ctx(seats="20"), False)
    s.clause("in: numeric string not in number values, negated -> true", c_num_neg,
             ctx(seats="15"), True)
    s.clause("in: negative decimal string \"-3\" equals -3", C("delta", "in", [-3]),
             ctx(delta="-3"), True)
    s.clause("in: non-numeric string vs number values is incomparable, negated -> false",
             c_num_neg, ctx(seats="twenty"), False)
    s.clause("in: \" 20\" (space) is not a number, negated -> false", c_num_neg,
             ctx(seats=" 20"), False)
    s.clause("in: \"+20\" is not a number, negated -> false", c_num_neg, ctx(seats="+20"),
             False)
    s.clause("in: \"2e1\" (exponent) is not a number, negated -> false", c_num_neg,
             ctx(seats="2e1"), False)
    s.clause("in: number vs numeric-string values is incomparable, negated -> false",
             C("code", "in", ["42"], negate=True), ctx(code=42), False)
    s.clause("in: case_insensitive has no effect on numbers", C("seats", "in", [10], ci=True),
             ctx(seats=10), True)
    # in (bools)
    c_bool = C("beta", "in", [True])
    s.clause("in: bool true equals true", c_bool, ctx(beta=True), True)
    s.clause("in: bool false not in [true]", c_bool, ctx(beta=False), False)
    s.clause("in: bool negated, false not in [true] -> true", C("beta", "in", [True], negate=True),
             ctx(beta=False), True)
    s.clause("in: bool attribute vs string \"true\" is incomparable, negated -> false",
             C("beta", "in", ["true"], negate=True), ctx(beta=True), False)
    s.clause("in: string \"true\" vs bool values is incomparable", c_bool, ctx(beta="true"), False)
    s.clause("in: bool true is not the number 1", C("beta", "in", [1], negate=True),
             ctx(beta=True), False)
    # in (mixed values)
    c_mix = C("tier", "in", ["gold", 3, False])
    c_mix_neg = C("tier", "in", ["gold", 3, False], negate=True)
    s.clause("in: mixed values, string matches", c_mix, ctx(tier="gold"), True)
    s.clause("in: mixed values, number matches", c_mix, ctx(tier=3), True)
    s.clause("in: mixed values, bool matches", c_mix, ctx(tier=False), True)
    s.clause("in: mixed values, numeric string \"3\" matches the number", c_mix, ctx(tier="3"),
             True)
    s.clause("in: mixed values, string without match, negated -> true", c_mix_neg,
             ctx(tier="silver"), True)
    s.clause("in: mixed values, numeric string without match, negated -> true", c_mix_neg,
             ctx(tier="4"), True)
    s.clause("in: string value \"007\" is compared as text with string values",
             C("code", "in", ["7"]), ctx(code="007"), False)
    s.clause("in: numeric string \"007\" equals the number 7", C("code", "in", [7]),
             ctx(code="007"), True)
    s.clause("in: mixed values, comparable number without match, negated -> true", c_mix_neg,
             ctx(tier=4), True)
    s.clause("in: mixed values, object attribute negated -> false", c_mix_neg,
             ctx(tier={"a": 1}), False)

    # starts_with
    c_sw = C("name", "starts_with", ["hello", "hi "])
    c_sw_neg = C("name", "starts_with", ["hello", "hi "], negate=True)
    c_sw_ci = C("name", "starts_with", ["hello", "hi "], ci=True)
    s.clause("starts_with: matches first value", c_sw, ctx(name="hello world"), True)
    s.clause("starts_with: matches second value", c_sw, ctx(name="hi there"), True)
    s.clause("starts_with: equal string matches", c_sw, ctx(name="hello"), True)
    s.clause("starts_with: no match", c_sw, ctx(name="say hello"), False)
    s.clause("starts_with: prefix longer than attribute", c_sw, ctx(name="hell"), False)
    s.clause("starts_with: case sensitive by default", c_sw, ctx(name="Hello world"), False)
    s.clause("starts_with: case_insensitive", c_sw_ci, ctx(name="HELLO world"), True)
    s.clause("starts_with: case_insensitive lowercases the value too",
             C("name", "starts_with", ["HEL"], ci=True), ctx(name="help"), True)
    s.clause("starts_with: negate, no match -> true", c_sw_neg, ctx(name="goodbye"), True)
    s.clause("starts_with: negate, match -> false", c_sw_neg, ctx(name="hello world"), False)
    s.clause("starts_with: missing attribute", c_sw, ctx(), False)
    s.clause("starts_with: missing attribute, negated -> false", c_sw_neg, ctx(), False)
    s.clause("starts_with: null attribute, negated -> false", c_sw_neg, ctx(name=None), False)
    s.clause("starts_with: number attribute is incomparable",
             C("code", "starts_with", ["1"]), ctx(code=123), False)
    s.clause("starts_with: number attribute, negated -> false",
             C("code", "starts_with", ["1"], negate=True), ctx(code=123), False)
    s.clause("starts_with: bool attribute, negated -> false", c_sw_neg, ctx(name=True), False)
    s.clause("starts_with: empty prefix matches any string", C("name", "starts_with", [""]),
             ctx(name="anything"), True)
    s.clause("starts_with: non-ASCII prefix", C("name", "starts_with", ["日本"]),
             ctx(name="日本語"), True)

    # ends_with
    c_ew = C("email", "ends_with", ["@acme.com"])
    c_ew_neg = C("email", "ends_with", ["@acme.com"], negate=True)
    c_ew_ci = C("email", "ends_with", ["@acme.com"], ci=True)
    s.clause("ends_with: matches", c_ew, ctx(email="a@acme.com"), True)
    s.clause("ends_with: no match (different TLD)", c_ew, ctx(email="a@acme.co"), False)
    s.clause("ends_with: no match (suffix in the middle)", c_ew, ctx(email="a@acme.com.evil.io"),
             False)
    s.clause("ends_with: case sensitive by default", c_ew, ctx(email="A@ACME.COM"), False)
    s.clause("ends_with: case_insensitive", c_ew_ci, ctx(email="A@ACME.COM"), True)
    s.clause("ends_with: case_insensitive no match", c_ew_ci, ctx(email="a@ACME.ORG"), False)
    s.clause("ends_with: negate, no match -> true", c_ew_neg, ctx(email="a@other.com"), True)
    s.clause("ends_with: negate, match -> false", c_ew_neg, ctx(email="b@acme.com"), False)
    s.clause("ends_with: any of several values",
             C("email", "ends_with", ["@a.io", "@b.io", "@c.io"]), ctx(email="x@b.io"), True)
    s.clause("ends_with: missing attribute", c_ew, ctx(), False)
    s.clause("ends_with: missing attribute, negated -> false", c_ew_neg, ctx(), False)
    s.clause("ends_with: null attribute, negated -> false", c_ew_neg, ctx(email=None), False)
    s.clause("ends_with: object attribute, negated -> false", c_ew_neg,
             ctx(email={"addr": "a@acme.com"}), False)
    s.clause("ends_with: number attribute, negated -> false",
             C("zip", "ends_with", ["0"], negate=True), ctx(zip=10), False)

    # contains
    c_ct = C("title", "contains", ["lo w"])
    c_ct_neg = C("title", "contains", ["lo w"], negate=True)
    s.clause("contains: substring in the middle", c_ct, ctx(title="hello world"), True)
    s.clause("contains: no match", c_ct, ctx(title="hello there"), False)
    s.clause("contains: case sensitive by default", c_ct, ctx(title="HELLO WORLD"), False)
    s.clause("contains: case_insensitive", C("title", "contains", ["LO W"], ci=True),
             ctx(title="Hello World"), True)
    s.clause("contains: negate, no match -> true", c_ct_neg, ctx(title="abc"), True)
    s.clause("contains: negate, match -> false", c_ct_neg, ctx(title="hello world"), False)
    s.clause("contains: non-ASCII substring", C("title", "contains", ["語テ"]),
             ctx(title="日本語テキスト"), True)
    s.clause("contains: whole string", c_ct, ctx(title="lo w"), True)
    s.clause("contains: missing attribute", c_ct, ctx(), False)
    s.clause("contains: missing attribute, negated -> false", c_ct_neg, ctx(), False)
    s.clause("contains: null attribute, negated -> false", c_ct_neg, ctx(title=None), False)
    s.clause("contains: number attribute, negated -> false",
             C("n", "contains", ["2"], negate=True), ctx(n=123), False)
    s.clause("contains: array of numbers, negated -> false (no comparable element)",
             C("n", "contains", ["2"], negate=True), ctx(n=[12, 23]), False)

    # matches
    c_re = C("email", "matches", ["^[a-z]+@acme\\.com$"])
    c_re_neg = C("email", "matches", ["^[a-z]+@acme\\.com$"], negate=True)
    s.clause("matches: full anchored regex matches", c_re, ctx(email="alice@acme.com"), True)
    s.clause("matches: anchored regex rejects extra suffix", c_re, ctx(email="alice@acme.com.au"),
             False)
    s.clause("matches: dot is escaped", c_re, ctx(email="alice@acmeXcom"), False)
    s.clause("matches: negate, no match -> true", c_re_neg, ctx(email="bob@other.org"), True)
    s.clause("matches: negate, match -> false", c_re_neg, ctx(email="bob@acme.com"), False)
    s.clause("matches: search is unanchored ('b' matches 'abc')", C("s", "matches", ["b"]),
             ctx(s="abc"), True)
    s.clause("matches: '^a' anchors at start", C("s", "matches", ["^a"]), ctx(s="abc"), True)
    s.clause("matches: '^b' does not match 'abc'", C("s", "matches", ["^b"]), ctx(s="abc"), False)
    s.clause("matches: 'c$' anchors at end", C("s", "matches", ["c$"]), ctx(s="abc"), True)
    s.clause("matches: case sensitive by default", C("s", "matches", ["^abc"]),
             ctx(s="ABCdef"), False)
    s.clause("matches: case_insensitive", C("s", "matches", ["^abc"], ci=True), ctx(s="ABCdef"),
             True)
    s.clause("matches: digit class", C("s", "matches", ["^v\\d+\\.\\d+$"]), ctx(s="v12.3"), True)
    s.clause("matches: alternation", C("s", "matches", ["(foo|bar)$"]), ctx(s="xbar"), True)
    s.clause("matches: any of several regexes", C("s", "matches", ["^zzz", "q{2}"]),
             ctx(s="aqqa"), True)
    s.clause("matches: empty string attribute against '^$'", C("s", "matches", ["^$"]),
             ctx(s=""), True)
    s.clause("matches: missing attribute", c_re, ctx(), False)
    s.clause("matches: missing attribute, negated -> false", c_re_neg, ctx(), False)
    s.clause("matches: null attribute, negated -> false", c_re_neg, ctx(email=None), False)
    s.clause("matches: number attribute is incomparable, negated -> false",
             C("n", "matches", ["\\d+"], negate=True), ctx(n=123), False)
    s.clause("matches: number attribute is incomparable", C("n", "matches", ["\\d+"]),
             ctx(n=123), False)
    s.clause("matches: bool attribute, negated -> false", c_re_neg, ctx(email=False), False)
    return s


# --------------------------------------------------------------------------- operators_numeric
def operators_numeric():
    s = Suite("operators_numeric",
              "The lt, lte, gt and gte operators on JSON numbers and strings that are plain "
              "decimal numbers: boundaries, floats, negatives, negate, missing/null attribute, "
              "and incomparable values (other strings, bools).")
    for op, cases in {
        "lt": [(4, True), (5, False), (6, False), (4.999, True), (-10, True)],
        "lte": [(4, True), (5, True), (5.0, True), (5.001, False), (6, False)],
        "gt": [(6, True), (5, False), (4, False), (5.5, True), (-6, False)],
        "gte": [(6, True), (5, True), (4.999, False), (1e9, True), (-5, False)],
    }.items():
        c = C("age", op, [5])
        cn = C("age", op, [5], negate=True)
        for v, m in cases:
            s.clause("%s 5: attribute %s -> %s" % (op, json.dumps(v), "match" if m else "no match"),
                     c, ctx(age=v), m)
        s.clause("%s 5: negate, attribute 5 -> %s" % (op, "false" if op in ("lte", "gte") else "true"),
                 cn, ctx(age=5), op not in ("lte", "gte"))
        s.clause("%s 5: missing attribute" % op, c, ctx(), False)
        s.clause("%s 5: missing attribute, negated -> false" % op, cn, ctx(), False)
        s.clause("%s 5: null attribute, negated -> false" % op, cn, ctx(age=None), False)
        below = op in ("lt", "lte")
        s.clause("%s 5: numeric string \"3\" -> %s" % (op, "match" if below else "no match"),
                 c, ctx(age="3"), below)
        s.clause("%s 5: numeric string \"7\", negated -> %s" % (op, str(below).lower()),
                 cn, ctx(age="7"), below)
        s.clause("%s 5: numeric string \"5\" -> %s" % (op, "match" if op in ("lte", "gte")
                                                          else "no match"),
                 c, ctx(age="5"), op in ("lte", "gte"))
        s.clause("%s 5: non-numeric string, negated -> false" % op, cn, ctx(age="five"), False)
        s.clause("%s 5: bool attribute, negated -> false" % op, cn, ctx(age=True), False)
    # floats and negatives in values, several values
    s.clause("lt -1.5: attribute -2 -> match", C("temp", "lt", [-1.5]), ctx(temp=-2), True)
    s.clause("lt -1.5: attribute -1.5 -> no match", C("temp", "lt", [-1.5]), ctx(temp=-1.5), False)
    s.clause("gt 0.1: attribute 0.2 -> match", C("score", "gt", [0.1]), ctx(score=0.2), True)
    s.clause("gte 0: attribute 0 -> match", C("score", "gte", [0]), ctx(score=0), True)
    c_any = C("age", "lt", [5, 10])
    s.clause("lt [5, 10]: attribute 7 matches the second value", c_any, ctx(age=7), True)
    s.clause("lt [5, 10]: attribute 12 matches neither", c_any, ctx(age=12), False)
    s.clause("lt [5, 10]: negated, attribute 7 -> false (any value matched)",
             C("age", "lt", [5, 10], negate=True), ctx(age=7), False)
    s.clause("gt 100: large integer attribute", C("bytes", "gt", [100]),
             ctx(bytes=9007199254740991), True)
    s.clause("gt 100: array attribute, one element matches", C("bytes", "gt", [100]),
             ctx(bytes=[1, 2, 300]), True)
    s.clause("gt 100: array of numeric strings, one element matches",
             C("bytes", "gt", [100]), ctx(bytes=["1", "300"]), True)
    s.clause("gt 100: array of numeric strings, negated, one matches -> false",
             C("bytes", "gt", [100], negate=True), ctx(bytes=["300", "1"]), False)
    s.clause("gt 100: array of numeric strings, negated, none match -> true",
             C("bytes", "gt", [100], negate=True), ctx(bytes=["3", "x", "1"]), True)
    # numbers sent as strings
    cg = C("age", "gt", [12])
    cgn = C("age", "gt", [12], negate=True)
    for text, m in [("13", True), ("12", False), ("12.5", True), ("12.0", False), ("-13", False),
                    ("0013", True), ("1000000000000000000000", True), ("-0", False)]:
        s.clause("gt 12: string \"%s\" -> %s" % (text, "match" if m else "no match"), cg,
                 ctx(age=text), m)
    s.clause("gte 1.5: string \"1.5\" -> match", C("ratio", "gte", [1.5]), ctx(ratio="1.5"),
             True)
    s.clause("lt -1.5: string \"-2\" -> match", C("temp", "lt", [-1.5]), ctx(temp="-2"), True)
    s.clause("lte 0.3: string \"0.1\" -> match", C("share", "lte", [0.3]), ctx(share="0.1"),
             True)
    for text, why in [("", "empty"), (" 13", "leading space"), ("13 ", "trailing space"),
                      ("+13", "plus sign"), ("0x10", "hexadecimal"), ("1e2", "exponent"),
                      ("1e400", "exponent out of range"), ("NaN", "NaN"), ("inf", "inf"),
                      ("Infinity", "Infinity"), ("1_000", "digit separator"),
                      ("1,000", "thousands separator"), ("13.", "no digits after the point"),
                      (".5", "no digits before the point"), ("-", "sign alone"),
                      ("1" * 400, "too large for a 64-bit float"),
                      ("\uff11\uff13", "full-width digits"), ("13a", "trailing letter")]:
        s.clause("gt 12: string %s (%s) is incomparable, negated -> false"
                 % (json.dumps(text if len(text) < 20 else text[:8] + "..."), why),
                 cgn, ctx(age=text), False)
    s.clause("gt 12: negated, string \"3\" -> true", cgn, ctx(age="3"), True)
    s.clause("lte 5: object attribute, negated -> false", C("age", "lte", [5], negate=True),
             ctx(age={"v": 1}), False)
    return s


# --------------------------------------------------------------------------- operators_date
def operators_date():
    s = Suite("operators_date",
              "The before and after operators: RFC 3339 strings and epoch milliseconds on both "
              "sides, offsets, fractional seconds, equality, $now, and incomparable attributes.")
    T = "2026-03-01T12:00:00Z"
    T_MS = ref.now_ms(T)  # 1772366400000
    cb = C("signup", "before", [T])
    ca = C("signup", "after", [T])
    cbn = C("signup", "before", [T], negate=True)
    can = C("signup", "after", [T], negate=True)
    s.clause("before: earlier RFC 3339 attribute", cb, ctx(signup="2026-03-01T11:59:59Z"), True)
    s.clause("before: later attribute", cb, ctx(signup="2026-03-01T12:00:01Z"), False)
    s.clause("before: equal instant is not before", cb, ctx(signup=T), False)
    s.clause("after: equal instant is not after", ca, ctx(signup=T), False)
    s.clause("after: later attribute", ca, ctx(signup="2027-01-01T00:00:00Z"), True)
    s.clause("after: earlier attribute", ca, ctx(signup="2020-01-01T00:00:00Z"), False)
    s.clause("before: negated, later attribute -> true", cbn, ctx(signup="2026-05-01T00:00:00Z"),
             True)
    s.clause("before: negated, earlier attribute -> false", cbn,
             ctx(signup="2026-01-01T00:00:00Z"), False)
    s.clause("after: negated, equal instant -> true", can, ctx(signup=T), True)
    s.clause("before: +01:00 offset equal to the same instant in Z -> not before", cb,
             ctx(signup="2026-03-01T13:00:00+01:00"), False)
    s.clause("before: -05:00 offset, 06:59 local = 11:59 Z -> before", cb,
             ctx(signup="2026-03-01T06:59:00-05:00"), True)
    s.clause("after: +09:00 offset, 21:00:01 local = 12:00:01 Z -> after", ca,
             ctx(signup="2026-03-01T21:00:01+09:00"), True)
    s.clause("after: fractional seconds .001 later -> after", ca,
             ctx(signup="2026-03-01T12:00:00.001Z"), True)
    s.clause("before: fractional seconds .999 earlier -> before", cb,
             ctx(signup="2026-03-01T11:59:59.999Z"), True)
    s.clause("after: fractional .000 is equal -> not after", ca,
             ctx(signup="2026-03-01T12:00:00.000Z"), False)
    s.clause("before: epoch-ms attribute 1 ms earlier", cb, ctx(signup=T_MS - 1), True)
    s.clause("before: epoch-ms attribute equal -> not before", cb, ctx(signup=T_MS), False)
    s.clause("after: epoch-ms attribute 1 ms later", ca, ctx(signup=T_MS + 1), True)
    cbe = C("signup", "before", [T_MS])
    cae = C("signup", "after", [T_MS])
    s.clause("before epoch-ms value: RFC 3339 attribute earlier", cbe,
             ctx(signup="2026-02-28T00:00:00Z"), True)
    s.clause("before epoch-ms value: epoch attribute equal -> not before", cbe, ctx(signup=T_MS),
             False)
    s.clause("after epoch-ms value: RFC 3339 attribute later", cae,
             ctx(signup="2026-03-01T12:00:00.5Z"), True)
    s.clause("after epoch-ms value: epoch attribute earlier", cae, ctx(signup=0), False)
    c_multi = C("signup", "before", ["2020-01-01T00:00:00Z", "2026-01-01T00:00:00Z"])
    s.clause("before: any of several values (second matches)", c_multi,
             ctx(signup="2025-06-01T00:00:00Z"), True)
    s.clause("before: none of several values", c_multi, ctx(signup="2026-06-01T00:00:00Z"), False)
    s.clause("before: missing attribute", cb, ctx(), False)
    s.clause("before: missing attribute, negated -> false", cbn, ctx(), False)
    s.clause("after: null attribute, negated -> false", can, ctx(signup=None), False)
    s.clause("before: unparseable string is incomparable", cb, ctx(signup="yesterday"), False)
    s.clause("before: unparseable string, negated -> false", cbn, ctx(signup="yesterday"), False)
    s.clause("after: date-time without offset is unparseable, negated -> false", can,
             ctx(signup="2027-01-01T00:00:00"), False)
    s.clause("after: bool attribute, negated -> false", can, ctx(signup=True), False)
    s.clause("after: object attribute, negated -> false", can, ctx(signup={"t": T}), False)
    s.clause("after: array attribute, one element later", ca,
             ctx(signup=["2020-01-01T00:00:00Z", "2030-01-01T00:00:00Z"]), True)
    # $now
    c_now_after = C("$now", "after", ["2026-03-01T00:00:00Z"])
    c_now_before = C("$now", "before", ["2026-03-01T00:00:00Z"])
    s.clause("$now after: default now 2026-01-01 is not after 2026-03-01", c_now_after, ctx(),
             False)
    s.clause("$now after: now 2026-06-01 is after 2026-03-01", c_now_after, ctx(), True,
             now="2026-06-01T00:00:00Z")
    s.clause("$now before: default now is before 2026-03-01", c_now_before, ctx(), True)
    s.clause("$now before: now equal to the value is not before", c_now_before, ctx(), False,
             now="2026-03-01T00:00:00Z")
    s.clause("$now after epoch-ms value: 1 ms later", C("$now", "after", [NOW_MS]), ctx(), True,
             now="2026-01-01T00:00:00.001Z")
    s.clause("$now before: works without targetingKey", c_now_before, {}, True)
    s.clause("$now after: negated, now later -> false", C("$now", "after", ["2026-03-01T00:00:00Z"],
                                                          negate=True), ctx(), False,
             now="2026-06-01T00:00:00Z")
    s.clause("after: any attribute name works, not only $now", C("expires", "after", [T]),
             ctx(expires="2026-03-02T00:00:00Z"), True)
    # the clause value "$now"
    cta = C("trial_ends_at", "after", ["$now"])
    ctan = C("trial_ends_at", "after", ["$now"], negate=True)
    ctb = C("trial_ends_at", "before", ["$now"])
    s.clause("after $now: a later date -> match", cta, ctx(trial_ends_at="2026-01-15T00:00:00Z"),
             True)
    s.clause("after $now: an earlier date -> no match", cta,
             ctx(trial_ends_at="2025-12-01T00:00:00Z"), False)
    s.clause("after $now: the same instant is not after", cta,
             ctx(trial_ends_at="2026-01-01T00:00:00Z"), False)
    s.clause("after $now: epoch ms 1 ms later -> match", cta, ctx(trial_ends_at=NOW_MS + 1), True)
    s.clause("after $now: epoch ms equal -> no match", cta, ctx(trial_ends_at=NOW_MS), False)
    s.clause("after $now: the case's now moves the comparison", cta,
             ctx(trial_ends_at="2026-01-15T00:00:00Z"), False, now="2026-02-01T00:00:00Z")
    s.clause("after $now: now with milliseconds", cta, ctx(trial_ends_at="2026-06-01T00:00:00.5Z"),
             True, now="2026-06-01T00:00:00.499Z")
    s.clause("before $now: an earlier date -> match", ctb, ctx(trial_ends_at="2025-12-31T23:59:59Z"),
             True)
    s.clause("before $now: a later date -> no match", ctb,
             ctx(trial_ends_at="2026-01-01T00:00:01Z"), False)
    s.clause("before $now: a date before a later now", ctb,
             ctx(trial_ends_at="2026-01-15T00:00:00Z"), True, now="2026-02-01T00:00:00Z")
    s.clause("after $now: negated, earlier date -> true", ctan,
             ctx(trial_ends_at="2025-12-01T00:00:00Z"), True)
    s.clause("after $now: negated, later date -> false", ctan,
             ctx(trial_ends_at="2027-01-01T00:00:00Z"), False)
    s.clause("after $now: missing attribute, negated -> false", ctan, ctx(), False)
    s.clause("after $now: unparseable attribute, negated -> false", ctan,
             ctx(trial_ends_at="soon"), False)
    cmix = C("trial_ends_at", "before", ["2020-01-01T00:00:00Z", "$now"])
    s.clause("before [2020-01-01, $now]: matches through $now", cmix,
             ctx(trial_ends_at="2025-06-01T00:00:00Z"), True)
    s.clause("before [2020-01-01, $now]: neither", cmix,
             ctx(trial_ends_at="2026-06-01T00:00:00Z"), False)
    s.clause("after $now: the $now attribute is never after itself",
             C("$now", "after", ["$now"]), ctx(), False)
    s.clause("after $now: array attribute, one element later", cta,
             ctx(trial_ends_at=["2020-01-01T00:00:00Z", "2030-01-01T00:00:00Z"]), True)
    return s


# --------------------------------------------------------------------------- operators_semver
def operators_semver():
    s = Suite("operators_semver",
              "The semver_eq/lt/lte/gt/gte operators: SemVer 2.0 precedence, pre-releases, build "
              "metadata, short versions padded with .0, a v/V prefix, JSON numbers as versions, "
              "and incomparable attributes.")
    V = "2.1.0"
    table = {
        "semver_eq": [("2.1.0", True), ("2.1.1", False), ("2.1", True), ("2.1.0+build.7", True),
                      ("2.1.0-rc.1", False), ("2.0.9", False)],
        "semver_lt": [("2.0.9", True), ("2.1.0", False), ("2.1.0-rc.1", True), ("2.1.1", False),
                      ("1.99.99", True), ("2", True)],
        "semver_lte": [("2.1.0", True), ("2.1", True), ("2.1.1", False), ("2.1.0-alpha", True),
                       ("10.0.0", False)],
        "semver_gt": [("2.1.1", True), ("2.1.0", False), ("2.10.0", True), ("2.1.0-rc.1", False),
                      ("3", True)],
        "semver_gte": [("2.1.0", True), ("2.1.0+meta", True), ("2.0.0", False), ("2.2", True),
                       ("2.1.0-rc.9", False)],
    }
    for op, rows in table.items():
        c = C("app_version", op, [V])
        cn = C("app_version", op, [V], negate=True)
        for v, m in rows:
            s.clause("%s %s: attribute %s -> %s" % (op, V, v, "match" if m else "no match"),
                     c, ctx(app_version=v), m)
        equal_matches = op in ("semver_eq", "semver_lte", "semver_gte")
        s.clause("%s %s: negated, attribute 2.1.0 -> %s" % (op, V, str(not equal_matches).lower()),
                 cn, ctx(app_version="2.1.0"), not equal_matches)
        s.clause("%s %s: missing attribute, negated -> false" % (op, V), cn, ctx(), False)
        s.clause("%s %s: negated, attribute v2.1.0 (prefix) -> %s"
                 % (op, V, str(not equal_matches).lower()),
                 cn, ctx(app_version="v2.1.0"), not equal_matches)
        s.clause("%s %s: negated, number attribute 2.1 (is 2.1.0) -> %s"
                 % (op, V, str(not equal_matches).lower()),
                 cn, ctx(app_version=2.1), not equal_matches)
    # pre-release precedence chain (SemVer 2.0 §11 example)
    chain = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
             "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"]
    for lo, hi in zip(chain, chain[1:]):
        s.clause("semver_lt: %s < %s" % (lo, hi), C("v", "semver_lt", [hi]), ctx(v=lo), True)
        s.clause("semver_gt: %s is not > %s" % (lo, hi), C("v", "semver_gt", [hi]), ctx(v=lo),
                 False)
    s.clause("semver_eq: build metadata ignored on both sides (1.0.0+a == 1.0.0+b)",
             C("v", "semver_eq", ["1.0.0+b"]), ctx(v="1.0.0+a"), True)
    s.clause("semver_eq: pre-release is not equal to release", C("v", "semver_eq", ["1.0.0"]),
             ctx(v="1.0.0-alpha"), False)
    s.clause("semver_eq: short version '2' equals 2.0.0", C("v", "semver_eq", ["2.0.0"]),
             ctx(v="2"), True)
    s.clause("semver_eq: any of several values", C("v", "semver_eq", ["1.0.0", "1.2.0", "1.4.0"]),
             ctx(v="1.2.0"), True)
    s.clause("semver_gt: numeric (not lexical) comparison of minor 10 > 9",
             C("v", "semver_gt", ["1.9.0"]), ctx(v="1.10.0"), True)
    s.clause("semver_lt: numeric comparison of major 9 < 10", C("v", "semver_lt", ["10.0.0"]),
             ctx(v="9.0.0"), True)
    cn = C("v", "semver_gte", ["1.0.0"], negate=True)
    s.clause("semver: four components '1.0.0.0' is incomparable, negated -> false", cn,
             ctx(v="1.0.0.0"), False)
    s.clause("semver: garbage string is incomparable, negated -> false", cn, ctx(v="latest"),
             False)
    s.clause("semver: empty string is incomparable, negated -> false", cn, ctx(v=""), False)
    s.clause("semver: leading zero '01.0.0' is incomparable, negated -> false", cn,
             ctx(v="01.0.0"), False)
    s.clause("semver: bool attribute, negated -> false", cn, ctx(v=True), False)
    s.clause("semver: null attribute, negated -> false", cn, ctx(v=None), False)
    s.clause("semver: negated, comparable and not matching -> true", cn, ctx(v="0.9.0"), True)
    s.clause("semver: array attribute, one element matches", C("v", "semver_gte", ["1.0.0"]),
             ctx(v=["0.1.0", "1.2.3"]), True)
    s.clause("semver: array of invalid versions, negated -> false", cn,
             ctx(v=["x", "1.2.3.4"]), False)
    # a v/V prefix
    ce = C("v", "semver_eq", ["2.1.0"])
    cen = C("v", "semver_eq", ["2.1.0"], negate=True)
    s.clause("semver_eq: leading 'v' is accepted", ce, ctx(v="v2.1.0"), True)
    s.clause("semver_eq: leading 'V' is accepted", ce, ctx(v="V2.1.0"), True)
    s.clause("semver_eq: leading 'v' on a short version ('v2.1')", ce, ctx(v="v2.1"), True)
    s.clause("semver_lt: leading 'v' with a pre-release ('v2.1.0-rc.1' < 2.1.0)",
             C("v", "semver_lt", ["2.1.0"]), ctx(v="v2.1.0-rc.1"), True)
    s.clause("semver_eq: leading 'v' with build metadata", ce, ctx(v="v2.1.0+b.5"), True)
    for text in ["vv2.1.0", "v", "ver2.1.0", " v2.1.0", "v 2.1.0", "v-2.1.0", "=2.1.0"]:
        s.clause("semver: %s is incomparable, negated -> false" % json.dumps(text), cen,
                 ctx(v=text), False)
    s.clause("semver_eq: clause value with 'v' prefix", C("v", "semver_eq", ["v2.1.0"]),
             ctx(v="2.1.0"), True)
    s.clause("semver_gte: clause value with 'V' prefix, attribute with 'v'",
             C("v", "semver_gte", ["V1.2.0"]), ctx(v="v1.10.0"), True)
    s.clause("semver_lt: clause value with 'v' prefix and pre-release",
             C("v", "semver_lt", ["v3.0.0-beta.2"]), ctx(v="3.0.0-beta.1"), True)
    # JSON numbers as versions
    s.clause("semver_eq: integer 2 is 2.0.0", C("v", "semver_eq", ["2.0.0"]), ctx(v=2), True)
    s.clause("semver_eq: number 2.0 is 2.0.0", C("v", "semver_eq", ["2.0.0"]), ctx(v=2.0), True)
    s.clause("semver_eq: number 0 is 0.0.0", C("v", "semver_eq", ["0.0.0"]), ctx(v=0), True)
    s.clause("semver_eq: number 1000.0 (a whole number) is 1000.0.0",
             C("v", "semver_eq", ["1000.0.0"]), ctx(v=1e3), True)
    s.clause("semver_eq: number 1.2 is 1.2.0", C("v", "semver_eq", ["1.2.0"]), ctx(v=1.2), True)
    s.clause("semver_eq: number 10.25 is 10.25.0", C("v", "semver_eq", ["10.25.0"]),
             ctx(v=10.25), True)
    s.clause("semver_gt: number 3 > 2.1.0", C("v", "semver_gt", ["2.1.0"]), ctx(v=3), True)
    s.clause("semver_lt: number 2.1 is not < 2.1.0", C("v", "semver_lt", ["2.1.0"]), ctx(v=2.1),
             False)
    s.clause("semver_gt: number 2.1 > 2.1.0-rc.1 (a release)", C("v", "semver_gt", ["2.1.0-rc.1"]),
             ctx(v=2.1), True)
    s.clause("semver_eq: number 1.10 is the number 1.1, so 1.1.0", C("v", "semver_eq", ["1.1.0"]),
             ctx(v=1.10), True)
    s.clause("semver_eq: number 1.10 is not 1.10.0", C("v", "semver_eq", ["1.10.0"]),
             ctx(v=1.10), False)
    s.clause("semver: array of numbers, one element matches", C("v", "semver_gte", ["2.0.0"]),
             ctx(v=[1.5, 2]), True)
    for num, why in [(-1, "negative"), (-1.5, "negative"), (1.05, "fraction with a leading zero"),
                     (0.00001, "fraction with leading zeros"),
                     (1e20, "whole number of 2^64 or more")]:
        s.clause("semver: number %s (%s) is incomparable, negated -> false" % (json.dumps(num), why),
                 cn, ctx(v=num), False)
    return s


# --------------------------------------------------------------------------- operators_cidr
def operators_cidr():
    s = Suite("operators_cidr",
              "The in_cidr operator: IPv4 and IPv6 networks and single addresses, family "
              "mismatch (no match, still comparable), and unparseable addresses (incomparable).")
    c4 = C("ip", "in_cidr", ["10.0.0.0/8", "192.168.1.0/24"])
    c4n = C("ip", "in_cidr", ["10.0.0.0/8", "192.168.1.0/24"], negate=True)
    c6 = C("ip", "in_cidr", ["2001:db8::/32"])
    c6n = C("ip", "in_cidr", ["2001:db8::/32"], negate=True)
    s.clause("in_cidr: IPv4 in /8", c4, ctx(ip="10.1.2.3"), True)
    s.clause("in_cidr: IPv4 network address itself", c4, ctx(ip="10.0.0.0"), True)
    s.clause("in_cidr: IPv4 last address of /8", c4, ctx(ip="10.255.255.255"), True)
    s.clause("in_cidr: IPv4 in second network (/24)", c4, ctx(ip="192.168.1.77"), True)
    s.clause("in_cidr: IPv4 just outside /24", c4, ctx(ip="192.168.2.1"), False)
    s.clause("in_cidr: IPv4 outside /8", c4, ctx(ip="11.0.0.1"), False)
    s.clause("in_cidr: negated, outside -> true", c4n, ctx(ip="8.8.8.8"), True)
    s.clause("in_cidr: negated, inside -> false", c4n, ctx(ip="10.9.9.9"), False)
    s.clause("in_cidr: single IPv4 address value matches exactly",
             C("ip", "in_cidr", ["203.0.113.7"]), ctx(ip="203.0.113.7"), True)
    s.clause("in_cidr: single IPv4 address value, neighbour does not match",
             C("ip", "in_cidr", ["203.0.113.7"]), ctx(ip="203.0.113.8"), False)
    s.clause("in_cidr: /32 network", C("ip", "in_cidr", ["198.51.100.1/32"]),
             ctx(ip="198.51.100.1"), True)
    s.clause("in_cidr: /0 matches every IPv4", C("ip", "in_cidr", ["0.0.0.0/0"]),
             ctx(ip="1.2.3.4"), True)
    s.clause("in_cidr: /0 IPv4 does not match IPv6", C("ip", "in_cidr", ["0.0.0.0/0"]),
             ctx(ip="::1"), False)
    s.clause("in_cidr: /31 boundary", C("ip", "in_cidr", ["172.16.0.0/31"]),
             ctx(ip="172.16.0.2"), False)
    s.clause("in_cidr: IPv6 in /32", c6, ctx(ip="2001:db8::1"), True)
    s.clause("in_cidr: IPv6 uncompressed form", c6, ctx(ip="2001:0db8:0000:0000:0000:0000:0000:0001"),
             True)
    s.clause("in_cidr: IPv6 last of /32", c6, ctx(ip="2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"), True)
    s.clause("in_cidr: IPv6 outside", c6, ctx(ip="2001:db9::1"), False)
    s.clause("in_cidr: IPv6 negated, outside -> true", c6n, ctx(ip="fe80::1"), True)
    s.clause("in_cidr: single IPv6 address value", C("ip", "in_cidr", ["::1"]), ctx(ip="::1"), True)
    s.clause("in_cidr: IPv4 attribute vs IPv6 network -> no match", c6, ctx(ip="10.0.0.1"), False)
    s.clause("in_cidr: IPv4 attribute vs IPv6 network, negated -> true (comparable)", c6n,
             ctx(ip="10.0.0.1"), True)
    s.clause("in_cidr: IPv6 attribute vs IPv4 networks, negated -> true (comparable)", c4n,
             ctx(ip="2001:db8::1"), True)
    s.clause("in_cidr: mixed-family values, IPv6 attribute matches the IPv6 one",
             C("ip", "in_cidr", ["10.0.0.0/8", "2001:db8::/32"]), ctx(ip="2001:db8:1::5"), True)
    s.clause("in_cidr: missing attribute", c4, ctx(), False)
    s.clause("in_cidr: missing attribute, negated -> false", c4n, ctx(), False)
    s.clause("in_cidr: null attribute, negated -> false", c4n, ctx(ip=None), False)
    s.clause("in_cidr: unparseable string, negated -> false", c4n, ctx(ip="not-an-ip"), False)
    s.clause("in_cidr: out-of-range octet, negated -> false", c4n, ctx(ip="10.0.0.256"), False)
    s.clause("in_cidr: CIDR string as attribute is not an IP, negated -> false", c4n,
             ctx(ip="10.0.0.0/8"), False)
    s.clause("in_cidr: number attribute, negated -> false", c4n, ctx(ip=167772161), False)
    s.clause("in_cidr: array attribute, one address inside", c4,
             ctx(ip=["8.8.8.8", "10.0.0.5"]), True)
    s.clause("in_cidr: array attribute, none inside, negated -> true", c4n,
             ctx(ip=["8.8.8.8", "bogus"]), True)
    return s


# --------------------------------------------------------------------------- operators_exists
def operators_exists():
    s = Suite("operators_exists",
              "The exists operator: true when the attribute is present and not null (any type, "
              "including false, 0, empty string, empty object); negate tests absence.")
    ce = C("email", "exists", [])
    cen = C("email", "exists", [], negate=True)
    ce_novals = C("email", "exists")
    s.clause("exists: present string", ce, ctx(email="a@b.c"), True)
    s.clause("exists: missing", ce, ctx(), False)
    s.clause("exists: null counts as absent", ce, ctx(email=None), False)
    s.clause("exists: empty string is present", ce, ctx(email=""), True)
    s.clause("exists: false is present", ce, ctx(email=False), True)
    s.clause("exists: 0 is present", ce, ctx(email=0), True)
    s.clause("exists: empty object is present", ce, ctx(email={}), True)
    s.clause("exists: non-empty array is present", ce, ctx(email=["x"]), True)
    s.clause("exists: attribute names are case sensitive", ce, ctx(Email="a@b.c"), False)
    s.clause("exists negated: missing -> true", cen, ctx(), True)
    s.clause("exists negated: null -> true", cen, ctx(email=None), True)
    s.clause("exists negated: present -> false", cen, ctx(email="a@b.c"), False)
    s.clause("exists negated: present false -> false", cen, ctx(email=False), False)
    s.clause("exists with values omitted: present", ce_novals, ctx(email="x"), True)
    s.clause("exists with values omitted: missing", ce_novals, ctx(), False)
    cd = C("account.plan", "exists", [])
    cdn = C("account.plan", "exists", [], negate=True)
    s.clause("exists: dotted path present", cd, ctx(account={"plan": "pro"}), True)
    s.clause("exists: dotted path, parent present but leaf missing", cd, ctx(account={"id": 1}),
             False)
    s.clause("exists: dotted path, parent not an object", cd, ctx(account="pro"), False)
    s.clause("exists negated: dotted path missing -> true", cdn, ctx(account={}), True)
    s.clause("exists: literal dotted key used when the walk fails", cd, {"account.plan": "pro"},
             True)
    ct = C("targetingKey", "exists", [])
    s.clause("exists: targetingKey present", ct, ctx(), True)
    s.clause("exists: targetingKey absent", ct, {"email": "x"}, False)
    s.clause("exists negated: targetingKey absent -> true", C("targetingKey", "exists", [],
                                                              negate=True), {}, True)
    s.clause("exists: $now always exists", C("$now", "exists", []), {}, True)
    return s


# --------------------------------------------------------------------------- attributes
def attributes():
    s = Suite("attributes",
              "Attribute lookup: dotted paths through nested objects with literal-key fallback, "
              "targetingKey as an ordinary attribute, case-sensitive names, $now, and array "
              "attributes (any element; no comparable element = false even negated).")
    cp = C("account.plan", "in", ["pro"])
    cpn = C("account.plan", "in", ["pro"], negate=True)
    s.clause("dotted: nested object walk", cp, ctx(account={"plan": "pro"}), True)
    s.clause("dotted: nested object walk, different value", cp, ctx(account={"plan": "free"}),
             False)
    s.clause("dotted: nested walk wins over a literal dotted key", cp,
             {"targetingKey": "u1", "account": {"plan": "free"}, "account.plan": "pro"}, False)
    s.clause("dotted: literal key used when parent is missing", cp,
             {"targetingKey": "u1", "account.plan": "pro"}, True)
    s.clause("dotted: literal key used when leaf is missing in nested object", cp,
             {"targetingKey": "u1", "account": {"id": 7}, "account.plan": "pro"}, True)
    s.clause("dotted: literal key used when parent is not an object", cp,
             {"targetingKey": "u1", "account": "acme", "account.plan": "pro"}, True)
    s.clause("dotted: neither nested nor literal -> missing, negated -> false", cpn,
             ctx(account={"id": 7}), False)
    s.clause("dotted: parent is an array, no walk into arrays -> missing, negated -> false", cpn,
             ctx(account=[{"plan": "pro"}]), False)
    c3 = C("org.billing.tier", "in", [3])
    s.clause("dotted: three levels", c3, ctx(org={"billing": {"tier": 3}}), True)
    s.clause("dotted: three levels, middle missing", c3, ctx(org={"tier": 3}), False)
    s.clause("dotted: nested value of wrong type, negated -> false",
             C("account.plan", "starts_with", ["p"], negate=True),
             ctx(account={"plan": {"name": "pro"}}), False)
    s.clause("names are case sensitive", C("Country", "in", ["FR"]), ctx(country="FR"), False)
    s.clause("names are case sensitive, negated missing -> false",
             C("Country", "in", ["FR"], negate=True), ctx(country="FR"), False)
    s.clause("attribute name with a dash", C("x-region", "in", ["eu"]),
             {"targetingKey": "u1", "x-region": "eu"}, True)
    ctk = C("targetingKey", "ends_with", ["-admin"])
    s.clause("targetingKey usable in a clause", ctk, {"targetingKey": "bob-admin"}, True)
    s.clause("targetingKey clause, no match", ctk, {"targetingKey": "bob"}, False)
    s.clause("targetingKey clause, context without targetingKey", ctk, {"name": "bob-admin"},
             False)
    cnow = C("$now", "gte", [NOW_MS])
    s.clause("$now is epoch milliseconds (gte default now)", cnow, ctx(), True)
    s.clause("$now is epoch milliseconds (1 ms before default now is not gte)", cnow, ctx(),
             False, now="2025-12-31T23:59:59.999Z")
    s.clause("$now lt a later epoch", C("$now", "lt", [NOW_MS + 86400000]), ctx(), True)
    s.clause("$now in [exact ms]", C("$now", "in", [NOW_MS]), ctx(), True)
    s.clause("$now is a number, not a string (starts_with is incomparable), negated -> false",
             C("$now", "starts_with", ["17"], negate=True), ctx(), False)
    # arrays
    ca = C("groups", "in", ["admin", "ops"])
    can = C("groups", "in", ["admin", "ops"], negate=True)
    s.clause("array: one element matches", ca, ctx(groups=["dev", "ops"]), True)
    s.clause("array: no element matches", ca, ctx(groups=["dev", "qa"]), False)
    s.clause("array: negated, one element matches -> false", can, ctx(groups=["dev", "ops"]), False)
    s.clause("array: negated, no element matches -> true", can, ctx(groups=["dev", "qa"]), True)
    s.clause("array: empty array -> false", ca, ctx(groups=[]), False)
    s.clause("array: empty array, negated -> false (no comparable element)", can, ctx(groups=[]),
             False)
    s.clause("array: all elements of wrong type, negated -> false", can, ctx(groups=[1, 2, True]),
             False)
    s.clause("array: all elements null, negated -> false", can, ctx(groups=[None]), False)
    s.clause("array: mixed types, a string element matches", ca, ctx(groups=[1, None, "admin"]),
             True)
    s.clause("array: mixed types, comparable element without match, negated -> true", can,
             ctx(groups=[1, "dev"]), True)
    s.clause("array: case_insensitive applies per element",
             C("groups", "in", ["admin"], ci=True), ctx(groups=["x", "ADMIN"]), True)
    s.clause("array: numbers", C("ids", "in", [7]), ctx(ids=[5, 6, 7]), True)
    s.clause("array: ends_with per element", C("emails", "ends_with", ["@acme.com"]),
             ctx(emails=["a@x.io", "b@acme.com"]), True)
    s.clause("array: matches per element, none match", C("tags", "matches", ["^beta-"]),
             ctx(tags=["alpha-1", "gamma"]), False)
    s.clause("array: lt per element", C("scores", "lt", [10]), ctx(scores=[50, 9]), True)
    s.clause("array: lt negated, comparable elements, none match -> true",
             C("scores", "lt", [10], negate=True), ctx(scores=[50, 11, "three"]), True)
    s.clause("array: before per element", C("dates", "before", ["2000-01-01T00:00:00Z"]),
             ctx(dates=["1999-12-31T23:59:59Z", "bad"]), True)
    s.clause("array: dotted path to an array",
             C("user.roles", "in", ["owner"]), ctx(user={"roles": ["member", "owner"]}), True)
    # contexts
    s.clause("extra unrelated attributes are ignored", C("plan", "in", ["pro"]),
             ctx(plan="pro", a=1, b=[1, 2], c={"d": None}), True)
    return s


# --------------------------------------------------------------------------- targets
def targets():
    s = Suite("targets",
              "Individual targets on targetingKey: exact string match, priority over rules, "
              "disabled flags, and contexts whose targetingKey is missing or not a string.")
    s.flag("tgt", variations=[{"key": "a", "value": "A"}, {"key": "b", "value": "B"},
                              {"key": "c", "value": "C"}],
           type="string", off="c", fallthrough="c",
           targets=[("a", ["user-1", "user-2"]), ("b", ["user-3", "5"])],
           rules=[rule([C("targetingKey", "in", ["user-1", "user-3", "user-9"])], "b", id="r1"),
                  rule([C("plan", "in", ["pro"])], "a", id="pro")])
    s.case("target a: user-1", "tgt", {"targetingKey": "user-1"}, res("A", "a", "TARGET_MATCH"))
    s.case("target a: second value in the list", "tgt", {"targetingKey": "user-2"},
           res("A", "a", "TARGET_MATCH"))
    s.case("target b: user-3 (second target)", "tgt", {"targetingKey": "user-3"},
           res("B", "b", "TARGET_MATCH"))
    s.case("targets beat rules: user-1 also matches rule r1 but gets target a", "tgt",
           {"targetingKey": "user-1", "plan": "pro"}, res("A", "a", "TARGET_MATCH"))
    s.case("not targeted, matches rule r1", "tgt", {"targetingKey": "user-9"},
           res("B", "b", "RULE_MATCH", rule_id="r1", rule_index=0))
    s.case("not targeted, matches rule pro", "tgt", {"targetingKey": "user-10", "plan": "pro"},
           res("A", "a", "RULE_MATCH", rule_id="pro", rule_index=1))
    s.case("not targeted, no rule -> fallthrough", "tgt", {"targetingKey": "user-10"},
           res("C", "c", "FALLTHROUGH"))
    s.case("target match is case sensitive", "tgt", {"targetingKey": "USER-1"},
           res("C", "c", "FALLTHROUGH"))
    s.case("target match is exact (no prefix match)", "tgt", {"targetingKey": "user-1x"},
           res("C", "c", "FALLTHROUGH"))
    s.case("string targetingKey \"5\" matches target value \"5\"", "tgt", {"targetingKey": "5"},
           res("B", "b", "TARGET_MATCH"))
    s.case("integer targetingKey 5 does not match target value \"5\"", "tgt", {"targetingKey": 5},
           res("C", "c", "FALLTHROUGH"))
    s.case("no targetingKey: targets skipped, rule still evaluated", "tgt", {"plan": "pro"},
           res("A", "a", "RULE_MATCH", rule_id="pro", rule_index=1))
    s.case("no targetingKey, no rule: fallthrough (not an error for a fixed serve)", "tgt", {},
           res("C", "c", "FALLTHROUGH"))
    s.case("null targetingKey: fallthrough", "tgt", {"targetingKey": None},
           res("C", "c", "FALLTHROUGH"))
    s.case("targetingKey in another attribute does not target", "tgt",
           {"targetingKey": "zzz", "userId": "user-1"}, res("C", "c", "FALLTHROUGH"))
    s.flag("tgt-off", enabled=False, targets=[("on", ["user-1"])], fallthrough="on")
    s.case("disabled flag with a matching target gives OFF", "tgt-off", {"targetingKey": "user-1"},
           res(False, "off", "OFF"))
    s.case("disabled flag, untargeted user gives OFF", "tgt-off", {"targetingKey": "user-2"},
           res(False, "off", "OFF"))
    s.flag("tgt-bool", targets=[("off", ["blocked"]), ("on", ["vip", "vip2"])], fallthrough="on",
           rules=[rule([], "on", id="all")])
    s.case("target can serve the off variation on an enabled flag", "tgt-bool",
           {"targetingKey": "blocked"}, res(False, "off", "TARGET_MATCH"))
    s.case("target serving on", "tgt-bool", {"targetingKey": "vip2"},
           res(True, "on", "TARGET_MATCH"))
    s.case("untargeted user hits the match-all rule", "tgt-bool", {"targetingKey": "someone"},
           res(True, "on", "RULE_MATCH", rule_id="all", rule_index=0))
    s.flag("tgt-empty", targets=[("on", [])], fallthrough="off")
    s.case("target with an empty values list matches nobody", "tgt-empty", {"targetingKey": ""},
           res(False, "off", "FALLTHROUGH"))
    s.flag("tgt-unicode", targets=[("on", ["üser-é", ""])], fallthrough="off")
    s.case("non-ASCII targetingKey", "tgt-unicode", {"targetingKey": "üser-é"},
           res(True, "on", "TARGET_MATCH"))
    s.case("empty-string targetingKey can be targeted", "tgt-unicode", {"targetingKey": ""},
           res(True, "on", "TARGET_MATCH"))
    return s


# --------------------------------------------------------------------------- rules_order
def rules_order():
    s = Suite("rules_order",
              "Rule evaluation order: first matching rule wins, clauses are ANDed, a rule with "
              "no clauses matches everything, rule_id present only when the rule has an id.")
    V3 = [{"key": "first", "value": 1}, {"key": "second", "value": 2},
          {"key": "third", "value": 3}, {"key": "default", "value": 0}]
    s.flag("order", type="number", variations=V3, off="default", fallthrough="default", rules=[
        rule([C("plan", "in", ["pro"]), C("country", "in", ["FR"])], "first", id="pro-fr",
             description="pro users in France"),
        rule([C("plan", "in", ["pro"])], "second", id="pro"),
        rule([C("beta", "in", [True])], "third"),
        rule([C("plan", "in", ["pro", "free"])], "first", id="any-plan"),
    ])
    s.case("both clauses match -> rule 0", "order", ctx(plan="pro", country="FR"),
           res(1, "first", "RULE_MATCH", rule_id="pro-fr", rule_index=0))
    s.case("first clause only -> rule 0 fails (AND), rule 1 matches", "order",
           ctx(plan="pro", country="DE"),
           res(2, "second", "RULE_MATCH", rule_id="pro", rule_index=1))
    s.case("second clause only -> falls past rule 0", "order", ctx(plan="free", country="FR"),
           res(1, "first", "RULE_MATCH", rule_id="any-plan", rule_index=3))
    s.case("rule without id: rule_id absent, rule_index 2", "order", ctx(beta=True),
           res(3, "third", "RULE_MATCH", rule_index=2))
    s.case("earlier rule wins although later rules match too", "order",
           ctx(plan="pro", beta=True),
           res(2, "second", "RULE_MATCH", rule_id="pro", rule_index=1))
    s.case("rule 2 beats rule 3", "order", ctx(plan="free", beta=True),
           res(3, "third", "RULE_MATCH", rule_index=2))
    s.case("nothing matches -> fallthrough", "order", ctx(plan="enterprise"),
           res(0, "default", "FALLTHROUGH"))
    s.case("empty context -> fallthrough", "order", {}, res(0, "default", "FALLTHROUGH"))
    s.flag("catch-all", rules=[rule([C("plan", "in", ["free"])], "off", id="free"),
                               rule([], "on", id="everyone")], fallthrough="off")
    s.case("zero-clause rule matches everything", "catch-all", ctx(),
           res(True, "on", "RULE_MATCH", rule_id="everyone", rule_index=1))
    s.case("zero-clause rule matches an empty context", "catch-all", {},
           res(True, "on", "RULE_MATCH", rule_id="everyone", rule_index=1))
    s.case("earlier rule before the catch-all", "catch-all", ctx(plan="free"),
           res(False, "off", "RULE_MATCH", rule_id="free", rule_index=0))
    s.flag("no-ids", rules=[rule([C("a", "in", [1])], "on"), rule([C("b", "in", [1])], "off")],
           fallthrough="on")
    s.case("rules without ids: index 0", "no-ids", ctx(a=1, b=1),
           res(True, "on", "RULE_MATCH", rule_index=0))
    s.case("rules without ids: index 1", "no-ids", ctx(b=1),
           res(False, "off", "RULE_MATCH", rule_index=1))
    s.case("rules without ids: fallthrough", "no-ids", ctx(),
           res(True, "on", "FALLTHROUGH"))
    s.flag("and-three", rules=[rule([C("a", "exists", []), C("b", "gt", [1]),
                                     C("c", "in", ["x"], negate=True)], "on", id="r1")])
    s.case("three clauses all true", "and-three", ctx(a=0, b=2, c="y"), ON_R1)
    s.case("three clauses, last false (negated match)", "and-three", ctx(a=0, b=2, c="x"), OFF_FT)
    s.case("three clauses, last incomparable (missing, negated) -> rule fails", "and-three",
           ctx(a=0, b=2), OFF_FT)
    s.case("three clauses, middle false", "and-three", ctx(a=0, b=1, c="y"), OFF_FT)
    s.case("three clauses, first false", "and-three", ctx(b=2, c="y"), OFF_FT)
    s.flag("no-rules", fallthrough="on")
    s.case("flag with no rules and no targets -> fallthrough", "no-rules", ctx(),
           res(True, "on", "FALLTHROUGH"))
    s.flag("v-string", type="string", variations=[{"key": "x", "value": ""},
                                                  {"key": "y", "value": "yes"}],
           off="x", fallthrough="y", rules=[rule([C("n", "lt", [0])], "x", id="neg")])
    s.case("string flag: rule serves empty-string value", "v-string", ctx(n=-1),
           res("", "x", "RULE_MATCH", rule_id="neg", rule_index=0))
    s.case("string flag: fallthrough", "v-string", ctx(n=1), res("yes", "y", "FALLTHROUGH"))
    return s


# --------------------------------------------------------------------------- flag types
def flag_types():
    s = Suite("flag_types",
              "String, number and json flags: the served value is the variation's JSON value, "
              "for OFF, TARGET_MATCH, RULE_MATCH and FALLTHROUGH.")
    sv = [{"key": "red", "value": "#ff0000"}, {"key": "blue", "value": "#0000ff"},
          {"key": "none", "value": ""}]
    s.flag("color", type="string", variations=sv, off="none", fallthrough="blue",
           targets=[("red", ["designer"])],
           rules=[rule([C("theme", "in", ["warm"])], "red", id="warm")])
    s.case("string: target", "color", {"targetingKey": "designer"},
           res("#ff0000", "red", "TARGET_MATCH"))
    s.case("string: rule", "color", ctx(theme="warm"),
           res("#ff0000", "red", "RULE_MATCH", rule_id="warm", rule_index=0))
    s.case("string: fallthrough", "color", ctx(), res("#0000ff", "blue", "FALLTHROUGH"))
    s.flag("color-off", type="string", variations=sv, off="none", fallthrough="blue",
           enabled=False)
    s.case("string: off variation with empty-string value", "color-off", ctx(),
           res("", "none", "OFF"))
    nv = [{"key": "low", "value": 3.5}, {"key": "high", "value": 42},
          {"key": "neg", "value": -1}, {"key": "zero", "value": 0}]
    s.flag("limit", type="number", variations=nv, off="zero", fallthrough="low",
           rules=[rule([C("tier", "in", ["gold"])], "high", id="gold"),
                  rule([C("tier", "in", ["banned"])], "neg", id="banned")])
    s.case("number: float fallthrough 3.5", "limit", ctx(), res(3.5, "low", "FALLTHROUGH"))
    s.case("number: integer 42 from a rule", "limit", ctx(tier="gold"),
           res(42, "high", "RULE_MATCH", rule_id="gold", rule_index=0))
    s.case("number: negative -1 from the second rule", "limit", ctx(tier="banned"),
           res(-1, "neg", "RULE_MATCH", rule_id="banned", rule_index=1))
    s.flag("limit-off", type="number", variations=nv, off="zero", fallthrough="low",
           enabled=False)
    s.case("number: off variation 0", "limit-off", ctx(), res(0, "zero", "OFF"))
    jv = [{"key": "obj", "value": {"a": [1, 2], "b": {"c": None, "d": "é"}}},
          {"key": "arr", "value": [1, "two", 3.5, False]},
          {"key": "str", "value": "plain"},
          {"key": "num", "value": 7},
          {"key": "empty", "value": {}}]
    s.flag("config", type="json", variations=jv, off="empty", fallthrough="obj",
           targets=[("arr", ["list-user"])],
           rules=[rule([C("kind", "in", ["s"])], "str"), rule([C("kind", "in", ["n"])], "num")])
    s.case("json: object value via fallthrough", "config", ctx(),
           res(jv[0]["value"], "obj", "FALLTHROUGH"))
    s.case("json: array value via target", "config", {"targetingKey": "list-user"},
           res(jv[1]["value"], "arr", "TARGET_MATCH"))
    s.case("json: string value via rule 0 (no id)", "config", ctx(kind="s"),
           res("plain", "str", "RULE_MATCH", rule_index=0))
    s.case("json: number value via rule 1 (no id)", "config", ctx(kind="n"),
           res(7, "num", "RULE_MATCH", rule_index=1))
    s.flag("config-off", type="json", variations=jv, off="empty", fallthrough="obj",
           enabled=False, client_side=True, version=9)
    s.case("json: off variation {}", "config-off", ctx(), res({}, "empty", "OFF"))
    s.flag("bool-fixed-on", fallthrough="on", client_side=True, version=3, archived=False)
    s.case("boolean: explicit archived false is a normal flag", "bool-fixed-on", ctx(),
           res(True, "on", "FALLTHROUGH"))
    return s


# --------------------------------------------------------------------------- prerequisites
def prerequisites():
    s = Suite("prerequisites",
              "Prerequisites: checked in order after OFF and before targets; pass only when the "
              "prerequisite flag exists, is not archived, is enabled and serves a listed "
              "variation (recursively); the first failing key is reported.")
    s.flag("base-on", fallthrough="on")
    s.flag("base-off-served", fallthrough="off")
    s.flag("base-disabled", enabled=False, off="on", fallthrough="on")
    s.flag("base-archived", archived=True, fallthrough="on")
    s.flag("base-targeted", fallthrough="off", targets=[("on", ["vip"])])
    s.flag("base-rule", fallthrough="off", rules=[rule([C("plan", "in", ["pro"])], "on", id="pro")])
    s.flag("base-rollout-needs-key", fallthrough=rollout([("on", 100000)]))
    s.flag("base-rollout-account", fallthrough=rollout([("off", 0), ("on", 100000)],
                                                       bucket_by="account.id"))
    plan = [{"key": "gold", "value": "gold"}, {"key": "silver", "value": "silver"},
            {"key": "bronze", "value": "bronze"}]
    s.flag("base-plan", type="string", variations=plan, off="bronze", fallthrough="bronze",
           rules=[rule([C("plan", "in", ["gold"])], "gold"), rule([C("plan", "in", ["silver"])],
                                                                  "silver")])

    def child(key, prereqs, **kw):
        s.flag(key, prereqs=prereqs, fallthrough="on", off="off",
               targets=kw.pop("targets", None), rules=kw.pop("rules", None), **kw)

    PF = lambda k: res(False, "off", "PREREQUISITE_FAILED", prerequisite_key=k)  # noqa: E731
    ON_FT = res(True, "on", "FALLTHROUGH")
    child("needs-on", [("base-on", ["on"])])
    s.case("prerequisite serves the required variation -> passes", "needs-on", ctx(), ON_FT)
    child("needs-off-served", [("base-off-served", ["on"])])
    s.case("prerequisite serves another variation -> fails", "needs-off-served", ctx(),
           PF("base-off-served"))
    child("accepts-either", [("base-off-served", ["on", "off"])])
    s.case("any listed variation passes (off listed)", "accepts-either", ctx(), ON_FT)
    child("needs-disabled", [("base-disabled", ["on"])])
    s.case("prerequisite disabled -> fails even though its off_variation is listed",
           "needs-disabled", ctx(), PF("base-disabled"))
    child("needs-archived", [("base-archived", ["on"])])
    s.case("prerequisite archived -> fails", "needs-archived", ctx(), PF("base-archived"))
    s.case("evaluating an archived flag directly -> FLAG_NOT_FOUND", "base-archived", ctx(),
           err("FLAG_NOT_FOUND"))
    child("needs-targeted", [("base-targeted", ["on"])])
    s.case("prerequisite evaluated with the same context: targeted user passes",
           "needs-targeted", {"targetingKey": "vip"}, ON_FT)
    s.case("prerequisite evaluated with the same context: other user fails", "needs-targeted",
           {"targetingKey": "pleb"}, PF("base-targeted"))
    child("needs-rule", [("base-rule", ["on"])])
    s.case("prerequisite rule matches on this context -> passes", "needs-rule", ctx(plan="pro"),
           ON_FT)
    s.case("prerequisite rule does not match -> fails", "needs-rule", ctx(plan="free"),
           PF("base-rule"))
    child("needs-rollout", [("base-rollout-needs-key", ["on"])])
    s.case("prerequisite rollout (100% on) with targetingKey -> passes", "needs-rollout", ctx(),
           ON_FT)
    s.case("prerequisite evaluation error (TARGETING_KEY_MISSING) -> fails", "needs-rollout",
           {"plan": "pro"}, PF("base-rollout-needs-key"))
    child("needs-rollout-account", [("base-rollout-account", ["on"])])
    s.case("prerequisite rollout on account.id -> passes", "needs-rollout-account",
           ctx(account={"id": 12}), ON_FT)
    s.case("prerequisite rollout account.id is a float -> error -> fails", "needs-rollout-account",
           ctx(account={"id": 1.5}), PF("base-rollout-account"))
    child("needs-plan", [("base-plan", ["gold", "silver"])])
    s.case("string prerequisite: gold passes", "needs-plan", ctx(plan="gold"), ON_FT)
    s.case("string prerequisite: silver passes", "needs-plan", ctx(plan="silver"), ON_FT)
    s.case("string prerequisite: bronze (fallthrough) fails", "needs-plan", ctx(plan="tin"),
           PF("base-plan"))
    # ordering
    child("two-prereqs", [("base-rule", ["on"]), ("base-off-served", ["on"])])
    s.case("two prerequisites, first fails -> first key reported", "two-prereqs", ctx(plan="x"),
           PF("base-rule"))
    s.case("two prerequisites, first passes, second fails -> second key", "two-prereqs",
           ctx(plan="pro"), PF("base-off-served"))
    child("two-pass", [("base-on", ["on"]), ("base-rule", ["on"])])
    s.case("two prerequisites both pass", "two-pass", ctx(plan="pro"), ON_FT)
    # OFF before prerequisites, prerequisites before targets and rules
    s.flag("disabled-bad-prereq", enabled=False, prereqs=[("base-off-served", ["on"])],
           fallthrough="on")
    s.case("disabled flag with a failing prerequisite -> OFF (not PREREQUISITE_FAILED)",
           "disabled-bad-prereq", ctx(), res(False, "off", "OFF"))
    child("prereq-before-target", [("base-off-served", ["on"])], targets=[("on", ["u1"])],
          rules=[rule([], "on", id="all")])
    s.case("failing prerequisite beats a target", "prereq-before-target", ctx(),
           PF("base-off-served"))
    s.case("failing prerequisite beats a match-all rule", "prereq-before-target",
           {"targetingKey": "u2"}, PF("base-off-served"))
    child("prereq-then-target", [("base-on", ["on"])], targets=[("off", ["u1"])],
          rules=[rule([], "off", id="all")])
    s.case("passing prerequisite then target", "prereq-then-target", ctx(),
           res(False, "off", "TARGET_MATCH"))
    s.case("passing prerequisite then rule", "prereq-then-target", {"targetingKey": "u2"},
           res(False, "off", "RULE_MATCH", rule_id="all", rule_index=0))
    # off variation of a string flag
    s.flag("str-child", type="string", variations=plan, off="silver", fallthrough="gold",
           prereqs=[("base-off-served", ["on"])])
    s.case("PREREQUISITE_FAILED serves the flag's off_variation value", "str-child", ctx(),
           res("silver", "silver", "PREREQUISITE_FAILED", prerequisite_key="base-off-served"))
    # depth-3 chain: top -> mid -> low -> deep
    s.flag("chain-deep", fallthrough="off", rules=[rule([C("level", "gte", [3])], "on", id="lvl")])
    s.flag("chain-low", fallthrough="on", prereqs=[("chain-deep", ["on"])])
    s.flag("chain-mid", fallthrough="on", prereqs=[("chain-low", ["on"])])
    s.flag("chain-top", fallthrough="on", prereqs=[("chain-mid", ["on"])])
    s.case("chain depth 3: all pass", "chain-top", ctx(level=3), ON_FT)
    s.case("chain depth 3: deepest fails -> top reports its direct prerequisite", "chain-top",
           ctx(level=1), PF("chain-mid"))
    s.case("chain: middle flag reports its own direct prerequisite", "chain-mid", ctx(level=1),
           PF("chain-low"))
    s.case("chain: lowest prerequisite reports the deepest", "chain-low", ctx(level=1),
           PF("chain-deep"))
    s.case("chain: deepest flag itself just falls through", "chain-deep", ctx(level=1),
           res(False, "off", "FALLTHROUGH"))
    # chain with a disabled link
    s.flag("chain2-deep", enabled=False, fallthrough="on")
    s.flag("chain2-mid", fallthrough="on", prereqs=[("chain2-deep", ["on"])])
    s.flag("chain2-top", fallthrough="on", prereqs=[("chain2-mid", ["on"])])
    s.case("chain with a disabled deepest flag fails at the top", "chain2-top", ctx(),
           PF("chain2-mid"))
    # diamond: shared prerequisite used twice
    s.flag("diamond-a", fallthrough="on", prereqs=[("base-rule", ["on"])])
    s.flag("diamond-b", fallthrough="on", prereqs=[("base-rule", ["on"])])
    s.flag("diamond-top", fallthrough="on", prereqs=[("diamond-a", ["on"]), ("diamond-b", ["on"])])
    s.case("diamond: shared prerequisite passes", "diamond-top", ctx(plan="pro"), ON_FT)
    s.case("diamond: shared prerequisite fails -> first branch reported", "diamond-top",
           ctx(plan="free"), PF("diamond-a"))
    return s


# --------------------------------------------------------------------------- segments
def segments():
    s = Suite("segments",
              "Segments and in_segment: included, excluded, rules (any rule, clauses ANDed), "
              "nesting, several segment keys, negate, and attribute ignored.")
    s.segment("beta", included=["inc-1", "both"], excluded=["exc-1", "both"],
              rules=[{"id": "acme", "clauses": [C("email", "ends_with", ["@acme.com"])]},
                     {"clauses": [C("plan", "in", ["pro"]), C("country", "in", ["FR", "DE"])]}])
    s.segment("empty")
    s.segment("only-included", included=["inc-1", "inc-2"])
    s.segment("internal", rules=[{"clauses": [C("email", "ends_with", ["@corp.example"])]}])
    s.segment("staff", excluded=["contractor-1"],
              rules=[{"clauses": [SEG("internal")]}])
    s.segment("staff-eu", rules=[{"clauses": [SEG("staff"), C("region", "in", ["eu"])]}])
    s.segment("everyone", rules=[{"clauses": []}])
    s.segment("nested-exclude", excluded=["inc-1"], rules=[{"clauses": [SEG("only-included")]}])

    s.flag("seg-beta", rules=[rule([SEG("beta", attribute="")], "on", id="r1")])
    s.case("included user", "seg-beta", {"targetingKey": "inc-1"}, ON_R1)
    s.case("excluded user who matches a rule is not in", "seg-beta",
           {"targetingKey": "exc-1", "email": "x@acme.com"}, OFF_FT)
    s.case("user both included and excluded: included wins", "seg-beta",
           {"targetingKey": "both"}, ON_R1)
    s.case("rule 1 (single clause) matches", "seg-beta", ctx(email="bob@acme.com"), ON_R1)
    s.case("rule 2 (two clauses) matches", "seg-beta", ctx(plan="pro", country="DE"), ON_R1)
    s.case("rule 2 with one clause failing does not match", "seg-beta",
           ctx(plan="pro", country="US"), OFF_FT)
    s.case("no rule matches", "seg-beta", ctx(email="bob@other.com"), OFF_FT)
    s.case("segment rules work without a targetingKey", "seg-beta", {"email": "z@acme.com"},
           ON_R1)
    s.case("included list needs a string targetingKey", "seg-beta", {"targetingKey": ["inc-1"]},
           OFF_FT)
    s.flag("seg-beta-neg", rules=[rule([SEG("beta", negate=True)], "on", id="r1")])
    s.case("negated: user not in segment -> true", "seg-beta-neg", ctx(), ON_R1)
    s.case("negated: included user -> false", "seg-beta-neg", {"targetingKey": "inc-1"}, OFF_FT)
    s.case("negated: excluded user -> true", "seg-beta-neg",
           {"targetingKey": "exc-1", "email": "x@acme.com"}, ON_R1)
    s.case("negated in_segment is never incomparable (no targetingKey, empty context)",
           "seg-beta-neg", {}, ON_R1)
    s.flag("seg-empty", rules=[rule([SEG("empty")], "on", id="r1")])
    s.case("segment with no rules and not included -> not in", "seg-empty", ctx(), OFF_FT)
    s.flag("seg-only-inc", rules=[rule([SEG("only-included")], "on", id="r1")])
    s.case("included-only segment: member", "seg-only-inc", {"targetingKey": "inc-2"}, ON_R1)
    s.case("included-only segment: non-member", "seg-only-inc", {"targetingKey": "inc-3"}, OFF_FT)
    s.flag("seg-any", rules=[rule([SEG("empty", "only-included", "internal")], "on", id="r1")])
    s.case("several segment keys: in the second", "seg-any", {"targetingKey": "inc-1"}, ON_R1)
    s.case("several segment keys: in the third (by rule)", "seg-any",
           ctx(email="a@corp.example"), ON_R1)
    s.case("several segment keys: in none", "seg-any", ctx(email="a@corp.other"), OFF_FT)
    s.flag("seg-any-neg", rules=[rule([SEG("empty", "only-included", negate=True)], "on",
                                      id="r1")])
    s.case("several segment keys negated: in one -> false", "seg-any-neg",
           {"targetingKey": "inc-1"}, OFF_FT)
    s.case("several segment keys negated: in none -> true", "seg-any-neg", ctx(), ON_R1)
    # nesting
    s.flag("seg-staff", rules=[rule([SEG("staff")], "on", id="r1")])
    s.case("nested (2 levels): in inner segment via rule -> in outer", "seg-staff",
           ctx(email="ann@corp.example"), ON_R1)
    s.case("nested (2 levels): outer excluded beats inner membership", "seg-staff",
           {"targetingKey": "contractor-1", "email": "c@corp.example"}, OFF_FT)
    s.case("nested (2 levels): not in inner -> not in outer", "seg-staff",
           ctx(email="ann@gmail.com"), OFF_FT)
    s.flag("seg-staff-eu", rules=[rule([SEG("staff-eu")], "on", id="r1")])
    s.case("nested (3 levels): all conditions hold", "seg-staff-eu",
           ctx(email="ann@corp.example", region="eu"), ON_R1)
    s.case("nested (3 levels): region fails", "seg-staff-eu",
           ctx(email="ann@corp.example", region="us"), OFF_FT)
    s.case("nested (3 levels): excluded at the middle level", "seg-staff-eu",
           {"targetingKey": "contractor-1", "email": "c@corp.example", "region": "eu"}, OFF_FT)
    s.case("nested (3 levels): innermost fails", "seg-staff-eu",
           ctx(email="ann@elsewhere.example", region="eu"), OFF_FT)
    s.flag("seg-nested-exclude", rules=[rule([SEG("nested-exclude")], "on", id="r1")])
    s.case("outer exclusion beats inner inclusion", "seg-nested-exclude",
           {"targetingKey": "inc-1"}, OFF_FT)
    s.case("inner inclusion carries through a segment rule", "seg-nested-exclude",
           {"targetingKey": "inc-2"}, ON_R1)
    s.flag("seg-everyone", rules=[rule([SEG("everyone")], "on", id="r1")])
    s.case("segment rule with zero clauses matches everyone", "seg-everyone", {}, ON_R1)
    # in_segment combined with other clauses, and attribute ignored
    s.flag("seg-combo", rules=[rule([SEG("internal", attribute="no_such_attribute"),
                                     C("beta", "in", [True])], "on", id="r1"),
                               rule([SEG("beta")], "off", id="r2")], fallthrough="on")
    s.case("in_segment AND another clause: both hold", "seg-combo",
           ctx(email="x@corp.example", beta=True), ON_R1)
    s.case("in_segment AND another clause: other fails, next rule", "seg-combo",
           ctx(email="x@corp.example", plan="pro", country="FR"),
           res(False, "off", "RULE_MATCH", rule_id="r2", rule_index=1))
    s.case("in_segment ignores its attribute field (names a missing attribute)", "seg-combo",
           {"targetingKey": "u1", "beta": True, "email": "q@corp.example"}, ON_R1)
    s.case("no segment matches -> fallthrough", "seg-combo", ctx(), res(True, "on", "FALLTHROUGH"))
    # targets still beat segments
    s.flag("seg-vs-target", targets=[("off", ["inc-1"])],
           rules=[rule([SEG("only-included")], "on", id="r1")])
    s.case("flag target beats a segment rule", "seg-vs-target", {"targetingKey": "inc-1"},
           res(False, "off", "TARGET_MATCH"))
    return s


# --------------------------------------------------------------------------- rollouts
def find_key(salt, pred, prefix="user-", start=0, limit=5_000_000, used=None):
    for n in range(start, limit):
        k = "%s%d" % (prefix, n)
        if used is not None and k in used:
            continue
        b = ref.bucket(salt, k)
        if pred(b):
            if used is not None:
                used.add(k)
            return k, b
    raise RuntimeError("no key found")


def rollouts():
    s = Suite("rollouts",
              "Percentage rollouts with pinned buckets: bucket = (murmur3_x86_32(salt + '.' + "
              "value) * 100000) >> 32; salt = seed or flag key; first variation whose running "
              "weight sum exceeds the bucket.")
    V3 = [{"key": "a", "value": "A"}, {"key": "b", "value": "B"}, {"key": "c", "value": "C"}]

    def rc(flag_key, user, b, var, value, kind="FALLTHROUGH", extra_ctx=None, label=None,
           **rextra):
        c = {"targetingKey": user} if extra_ctx is None else extra_ctx
        name = label or "%s bucket %d -> %s" % (user, b, var)
        s.case(name, flag_key, c, res(value, var, kind, in_rollout=True, **rextra))

    # 1) three-way split 25/25/50 on the flag key
    key = s.flag("split-3", type="string", variations=V3, off="c",
                 fallthrough=rollout([("a", 25000), ("b", 25000), ("c", 50000)]))
    used = set()
    for lo, hi, var in [(0, 25000, "a"), (25000, 50000, "b"), (50000, 100000, "c")]:
        for part in range(2):
            mid = lo + (hi - lo) * part // 2
            u, b = find_key(key, lambda x, mid=mid, hi=hi: mid <= x < min(hi, mid + (hi - lo) // 2),
                            used=used)
            rc(key, u, b, var, var.upper())
    # 2) boundaries: keys near 25000 / 50000
    u, b = find_key(key, lambda x: 24900 <= x < 25000, used=used)
    rc(key, u, b, "a", "A", label="%s bucket %d (just below 25000) -> a" % (u, b))
    u, b = find_key(key, lambda x: 25000 <= x < 25100, used=used)
    rc(key, u, b, "b", "B", label="%s bucket %d (just above 25000) -> b" % (u, b))
    u, b = find_key(key, lambda x: 49900 <= x < 50000, used=used)
    rc(key, u, b, "b", "B", label="%s bucket %d (just below 50000) -> b" % (u, b))
    u, b = find_key(key, lambda x: 50000 <= x < 50100, used=used)
    rc(key, u, b, "c", "C", label="%s bucket %d (just above 50000) -> c" % (u, b))

    # 3) exact boundaries: weights chosen so the cumulative sum equals a pinned bucket
    ub, bb = find_key("exact", lambda x: 30000 <= x < 70000, prefix="edge-")
    s.flag("exact", fallthrough=rollout([("on", bb), ("off", 100000 - bb)]))
    rc("exact", ub, bb, "off", False,
       label="%s bucket %d, first weight %d (sum == bucket is not > bucket) -> off" % (ub, bb, bb))
    s.flag("exact-plus-1", fallthrough=rollout([("on", bb + 1), ("off", 99999 - bb)],
                                               seed="exact"))
    rc("exact-plus-1", ub, bb, "on", True,
       label="%s seed exact bucket %d, first weight %d -> on" % (ub, bb, bb + 1))

    # 4) extreme buckets 0 and 99999
    u0, b0 = find_key("extremes", lambda x: x == 0, prefix="x-")
    u9, b9 = find_key("extremes", lambda x: x == 99999, prefix="x-")
    s.flag("extremes", type="string", variations=V3, off="c",
           fallthrough=rollout([("a", 0), ("b", 99999), ("c", 1)]))
    rc("extremes", u0, b0, "b", "B", label="%s bucket 0 -> b (weight-0 a is never served)" % u0)
    rc("extremes", u9, b9, "c", "C", label="%s bucket 99999 -> c (last weight 1)" % u9)
    s.flag("extremes-1", type="string", variations=V3, off="c",
           fallthrough=rollout([("a", 1), ("b", 99998), ("c", 1)], seed="extremes"))
    rc("extremes-1", u0, b0, "a", "A", label="%s bucket 0 with weight 1 -> a" % u0)
    s.flag("all-in-one", type="string", variations=V3, off="a",
           fallthrough=rollout([("a", 0), ("b", 0), ("c", 100000)]))
    for i in range(2):
        u, b = find_key("all-in-one", lambda x: True, prefix="any-", start=i)
        rc("all-in-one", u, b, "c", "C", label="%s bucket %d -> c (only non-zero weight)" % (u, b))
    s.flag("zero-middle", type="string", variations=V3, off="a",
           fallthrough=rollout([("a", 50000), ("b", 0), ("c", 50000)]))
    u, b = find_key("zero-middle", lambda x: 50000 <= x < 50200, prefix="zm-")
    rc("zero-middle", u, b, "c", "C", label="%s bucket %d -> c (weight-0 b skipped)" % (u, b))

    # 5) seed: salt is the seed, not the flag key
    # find a user whose bucket differs across the two salts so the case is discriminating
    def seed_pred(n):
        k = "seeded-%d" % n
        return ref.bucket("shared-seed", k) < 50000 <= ref.bucket("seeded-a", k)
    n = next(i for i in range(100000) if seed_pred(i))
    us = "seeded-%d" % n
    s.flag("seeded-a", fallthrough=rollout([("on", 50000), ("off", 50000)], seed="shared-seed"))
    s.flag("seeded-b", fallthrough=rollout([("on", 50000), ("off", 50000)], seed="shared-seed"))
    s.flag("unseeded", fallthrough=rollout([("on", 50000), ("off", 50000)]))
    bs = ref.bucket("shared-seed", us)
    rc("seeded-a", us, bs, "on", True,
       label="%s seed shared-seed bucket %d -> on (flag-key salt would give %d -> off)"
       % (us, bs, ref.bucket("seeded-a", us)))
    rc("seeded-b", us, bs, "on", True,
       label="%s same seed on another flag: same bucket %d -> on" % (us, bs))
    bu = ref.bucket("unseeded", us)
    rc("unseeded", us, bu, "on" if bu < 50000 else "off", bu < 50000,
       label="%s no seed: salt is flag key 'unseeded', bucket %d -> %s"
       % (us, bu, "on" if bu < 50000 else "off"))
    s.flag("empty-seed", fallthrough=rollout([("on", 50000), ("off", 50000)], seed=""))
    ue, be = find_key("", lambda x: x < 50000, prefix="es-")
    rc("empty-seed", ue, be, "on", True,
       label="%s empty-string seed: salt '' bucket %d -> on" % (ue, be))

    # 6) bucket_by custom attribute
    s.flag("by-account", type="string", variations=V3, off="c",
           fallthrough=rollout([("a", 33333), ("b", 33333), ("c", 33334)], bucket_by="account.id"))
    for val in ["acct-1", "acct-2", 12345, -7, 0]:
        b = ref.bucket("by-account", str(val))
        var = "a" if b < 33333 else "b" if b < 66666 else "c"
        rc("by-account", "", b, var, var.upper(),
           extra_ctx={"targetingKey": "ignored", "account": {"id": val}},
           label="account.id %s bucket %d -> %s" % (json.dumps(val), b, var))
    b = ref.bucket("by-account", "acct-9")
    var = "a" if b < 33333 else "b" if b < 66666 else "c"
    rc("by-account", "", b, var, var.upper(), extra_ctx={"account.id": "acct-9"},
       label="account.id via literal dotted key 'acct-9' bucket %d -> %s (no targetingKey needed)"
       % (b, var))
    for label, c in [("missing", {"targetingKey": "u1"}),
                     ("null", {"targetingKey": "u1", "account": {"id": None}}),
                     ("float 1.5", {"targetingKey": "u1", "account": {"id": 1.5}}),
                     ("bool", {"targetingKey": "u1", "account": {"id": True}}),
                     ("object", {"targetingKey": "u1", "account": {"id": {"n": 1}}}),
                     ("array", {"targetingKey": "u1", "account": {"id": ["a"]}})]:
        s.case("bucket_by account.id %s -> TARGETING_KEY_MISSING" % label, "by-account", c,
               err("TARGETING_KEY_MISSING"))
    # integer targetingKey
    s.flag("int-key", fallthrough=rollout([("on", 50000), ("off", 50000)],
                                          bucket_by="targetingKey"))
    for val in [42, -1, 1000000]:
        b = ref.bucket("int-key", str(val))
        rc("int-key", "", b, "on" if b < 50000 else "off", b < 50000, extra_ctx={"targetingKey": val},
           label="integer targetingKey %d bucket %d (hashed as \"%d\")" % (val, b, val))
    b = ref.bucket("int-key", "42")
    rc("int-key", "42", b, "on" if b < 50000 else "off", b < 50000,
       label="string targetingKey \"42\" bucket %d (same as integer 42)" % b)
    b = ref.bucket("int-key", "")
    rc("int-key", "", b, "on" if b < 50000 else "off", b < 50000,
       label="empty-string targetingKey is a string: bucket %d" % b)
    for label, c in [("missing", {}), ("null", {"targetingKey": None}),
                     ("float", {"targetingKey": 2.5}), ("bool", {"targetingKey": False}),
                     ("object", {"targetingKey": {"id": "u1"}})]:
        s.case("targetingKey %s -> TARGETING_KEY_MISSING" % label, "int-key", c,
               err("TARGETING_KEY_MISSING"))
    # 7) rule serving a rollout
    s.flag("rule-rollout", type="string", variations=V3, off="c", fallthrough="c",
           targets=[("c", ["pinned"])],
           rules=[rule([C("plan", "in", ["pro"])],
                       rollout([("a", 60000), ("b", 40000)], seed="rr"), id="pro-split"),
                  rule([C("plan", "in", ["free"])], rollout([("a", 100000), ("b", 0)]))])
    for i in range(2):
        u, b = find_key("rr", (lambda x: x < 60000) if i == 0 else (lambda x: x >= 60000),
                        prefix="rr-")
        var = "a" if b < 60000 else "b"
        rc("rule-rollout", u, b, var, var.upper(), kind="RULE_MATCH",
           extra_ctx={"targetingKey": u, "plan": "pro"},
           label="rule rollout (seed rr): %s bucket %d -> %s" % (u, b, var),
           rule_id="pro-split", rule_index=0)
    b = ref.bucket("rule-rollout", "u7")
    rc("rule-rollout", "u7", b, "a", "A", kind="RULE_MATCH",
       extra_ctx={"targetingKey": "u7", "plan": "free"},
       label="rule rollout without id (salt rule-rollout): u7 bucket %d -> a" % b, rule_index=1)
    s.case("rule rollout with missing targetingKey -> TARGETING_KEY_MISSING (no fallthrough)",
           "rule-rollout", {"plan": "pro"}, err("TARGETING_KEY_MISSING"))
    s.case("rule not matched -> fixed fallthrough, in_rollout false", "rule-rollout",
           ctx(plan="none"), res("C", "c", "FALLTHROUGH"))
    s.case("target beats a rollout rule, in_rollout false", "rule-rollout",
           {"targetingKey": "pinned", "plan": "pro"}, res("C", "c", "TARGET_MATCH"))
    s.flag("rollout-off", enabled=False, fallthrough=rollout([("on", 100000)]))
    s.case("disabled flag with rollout fallthrough: OFF, in_rollout false, no key needed",
           "rollout-off", {}, res(False, "off", "OFF"))
    # 8) non-ASCII / long keys
    for u in ["ユーザー-1", "josé@example.com", "u" * 300]:
        b = ref.bucket("split-3", u)
        var = "a" if b < 25000 else "b" if b < 50000 else "c"
        rc("split-3", u, b, var, var.upper(),
           label="%s bucket %d -> %s" % (u if len(u) < 40 else "'u' x %d" % len(u), b, var))
    # 9) monotonic ramp-up: same user stays in 'on' when its weight grows
    ur, br = find_key("ramp", lambda x: 9000 <= x < 10000, prefix="ramp-")
    for w in [10000, 25000, 100000]:
        kk = s.flag("ramp-%d" % w, fallthrough=rollout([("on", w), ("off", 100000 - w)],
                                                       seed="ramp"))
        rc(kk, ur, br, "on", True, label="ramp %d%%: %s bucket %d -> on" % (w // 1000, ur, br))
    kk = s.flag("ramp-5000", fallthrough=rollout([("on", 5000), ("off", 95000)], seed="ramp"))
    rc(kk, ur, br, "off", False, label="ramp 5%%: %s bucket %d -> off" % (ur, br))
    return s


# --------------------------------------------------------------------------- errors
def errors():
    s = Suite("errors",
              "Error results (value null, variation null, kind ERROR): FLAG_NOT_FOUND for "
              "missing or archived flags, TARGETING_KEY_MISSING for rollouts without a usable "
              "bucket_by value; and the same situations that are NOT errors.")
    s.flag("present", fallthrough="on")
    s.flag("archived-on", archived=True, fallthrough="on", targets=[("on", ["u1"])])
    s.flag("archived-off", archived=True, enabled=False)
    s.flag("rollout-ft", fallthrough=rollout([("on", 50000), ("off", 50000)]))
    s.flag("rollout-ft-disabled", enabled=False, fallthrough=rollout([("on", 100000)]))
    s.case("unknown flag key", "does-not-exist", ctx(), err("FLAG_NOT_FOUND"))
    s.case("flag keys are case sensitive", "PRESENT", ctx(), err("FLAG_NOT_FOUND"))
    s.case("existing flag for comparison", "present", ctx(), res(True, "on", "FALLTHROUGH"))
    s.case("archived enabled flag -> FLAG_NOT_FOUND (even for a targeted user)", "archived-on",
           ctx(), err("FLAG_NOT_FOUND"))
    s.case("archived disabled flag -> FLAG_NOT_FOUND (not OFF)", "archived-off", ctx(),
           err("FLAG_NOT_FOUND"))
    s.case("fallthrough rollout, context without targetingKey", "rollout-ft", {"email": "a@b.c"},
           err("TARGETING_KEY_MISSING"))
    s.case("fallthrough rollout, empty context", "rollout-ft", {}, err("TARGETING_KEY_MISSING"))
    s.case("fallthrough rollout, targetingKey float", "rollout-ft", {"targetingKey": 1.5},
           err("TARGETING_KEY_MISSING"))
    s.case("fallthrough rollout, targetingKey array", "rollout-ft", {"targetingKey": ["u1"]},
           err("TARGETING_KEY_MISSING"))
    s.case("disabled rollout flag without targetingKey -> OFF, not an error",
           "rollout-ft-disabled", {}, res(False, "off", "OFF"))
    s.flag("fixed-ft", fallthrough="on", targets=[("off", ["u1"])],
           rules=[rule([C("plan", "in", ["x"])], "off", id="x")])
    s.case("fixed-serve flag without targetingKey is not an error", "fixed-ft", {},
           res(True, "on", "FALLTHROUGH"))
    s.flag("target-before-rollout", targets=[("off", ["u1"])],
           fallthrough=rollout([("on", 100000)], bucket_by="missing_attr"))
    s.case("a target is served before the rollout needs its attribute", "target-before-rollout",
           ctx(), res(False, "off", "TARGET_MATCH"))
    s.case("untargeted user reaches the rollout on a missing attribute -> error",
           "target-before-rollout", {"targetingKey": "u2"}, err("TARGETING_KEY_MISSING"))
    s.flag("prereq-on-error", prereqs=[("rollout-ft", ["on", "off"])], fallthrough="on")
    s.case("a prerequisite that errors makes the dependent flag PREREQUISITE_FAILED",
           "prereq-on-error", {}, res(False, "off", "PREREQUISITE_FAILED",
                                      prerequisite_key="rollout-ft"))
    b = ref.bucket("rollout-ft", "u1")
    s.case("same prerequisite with a targetingKey passes (u1 bucket %d)" % b, "prereq-on-error",
           ctx(), res(True, "on", "FALLTHROUGH"))
    return s


# --------------------------------------------------------------------------- hash.json
def hash_rows():
    rows_in = [
        ("", ""), ("", "user-1"), ("flag", ""), ("a", "b"), ("a", "bc"), ("a", "bcd"),
        ("a", "bcde"), ("ab", "cde"), ("abc", "defgh"), ("my-flag", "user-1"),
        ("my-flag", "user-2"), ("my-flag", "user-3"), ("new-checkout", "alice"),
        ("new-checkout", "bob"), ("split-3", "user-0"), ("seed-42", "12345"), ("x", "0"),
        ("x", "-7"), ("digits", "0123456789"), ("0", "0"), ("1", "1"), ("12", "34"),
        ("flag", "12345678901234567890"), ("café", "user"), ("flag", "é"), ("flag", "éé"),
        ("flag", "🚀"), ("🚀", "🎉🎉"), ("flag", "日本語"), ("中文", "用户-1"),
        ("flag", "Zoë Ünïcödé"), ("flag.with.dots", "user.with.dots"), ("flag", " "),
        ("flag", "user 1"), ("flag", "\t\n"), ("A", "a"), ("a", "A"),
        ("long", "x" * 1000), ("l" * 1000, "y"), ("l" * 513, "v" * 514), ("long-utf8", "é" * 600),
        ("rollout", "user-17"), ("rollout", "user-18"), ("rollout", "user-19"),
        ("rollout", "user-20"), ("exact", "edge-0"), ("ramp", "ramp-1"), ("", "."), (".", ""),
    ]
    rows = []
    lens = set()
    for salt, value in rows_in:
        h = ref.hash32(salt, value)
        lens.add(len((salt + "." + value).encode("utf-8")) % 4)
        rows.append({"salt": salt, "value": value, "hash": h, "bucket": (h * 100000) >> 32})
    assert lens == {0, 1, 2, 3}, lens
    assert len(rows) >= 40
    return {
        "description": "MurmurHash3 x86_32 (seed 0) of the UTF-8 bytes of salt + \".\" + value, "
                       "as an unsigned 32-bit integer, and bucket = (hash * 100000) >> 32 "
                       "computed in 64-bit arithmetic.",
        "rows": rows,
    }


# --------------------------------------------------------------------------- main
SUITES = [operators_string, operators_numeric, operators_date, operators_semver, operators_cidr,
          operators_exists, attributes, targets, rules_order, flag_types, prerequisites,
          segments, rollouts, errors]


def dump(path, obj):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(obj, f, sort_keys=True, indent=2, ensure_ascii=False)
        f.write("\n")


def main():
    total = 0
    counts = {}
    failures = 0
    for fn in SUITES:
        s = fn()
        rs = s.ruleset()
        ref.validate(rs)
        for c in s.cases:
            got = ref.evaluate(rs, c["flag"], c["context"], c.get("now", DEFAULT_NOW))
            if got != c["expected"]:
                failures += 1
                print("MISMATCH %s / %s\n  expected %s\n  reference %s" % (
                    s.name, c["name"], json.dumps(c["expected"]), json.dumps(got)))
        used = {c["flag"] for c in s.cases}
        used |= {p["flag"] for f in rs["flags"].values() for p in f["prerequisites"]}
        unused = set(rs["flags"]) - used
        assert not unused, (s.name, unused)
        dump(os.path.join(OUT, s.name + ".json"),
             {"name": s.name, "description": s.description, "ruleset": rs, "cases": s.cases})
        counts[s.name] = len(s.cases)
        total += len(s.cases)
    dump(os.path.join(OUT, "hash.json"), hash_rows())
    for k, v in counts.items():
        print("%-20s %4d" % (k, v))
    print("%-20s %4d" % ("TOTAL", total))
    if failures:
        print("%d mismatches" % failures)
        sys.exit(1)


if __name__ == "__main__":
    main()
