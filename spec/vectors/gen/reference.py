"""Independent Python reference of the Vexil evaluation rules (the semantics in ../README.md).

Used only to cross-check the hand-written expectations in generate.py; it is written from the
specification, not from the Rust engine.
"""
import ipaddress
import math
import re
from datetime import datetime, timezone, timedelta
from fractions import Fraction

try:
    import mmh3  # MurmurHash3 x86_32 (C implementation), used as a cross-check
except ImportError:  # pragma: no cover
    mmh3 = None

DEFAULT_NOW = "2026-01-01T00:00:00Z"


# --------------------------------------------------------------------------- murmur3
def murmur3_x86_32(data: bytes, seed: int = 0) -> int:
    """Pure-Python MurmurHash3 x86_32."""
    c1, c2 = 0xCC9E2D51, 0x1B873593
    h = seed & 0xFFFFFFFF
    n = len(data)
    nblocks = n // 4
    for i in range(nblocks):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * c1) & 0xFFFFFFFF
        k = ((k << 15) | (k >> 17)) & 0xFFFFFFFF
        k = (k * c2) & 0xFFFFFFFF
        h ^= k
        h = ((h << 13) | (h >> 19)) & 0xFFFFFFFF
        h = (h * 5 + 0xE6546B64) & 0xFFFFFFFF
    tail = data[4 * nblocks:]
    k = 0
    if len(tail) >= 3:
        k ^= tail[2] << 16
    if len(tail) >= 2:
        k ^= tail[1] << 8
    if len(tail) >= 1:
        k ^= tail[0]
        k = (k * c1) & 0xFFFFFFFF
        k = ((k << 15) | (k >> 17)) & 0xFFFFFFFF
        k = (k * c2) & 0xFFFFFFFF
        h ^= k
    h ^= n
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h


def hash32(salt: str, value: str) -> int:
    data = (salt + "." + value).encode("utf-8")
    h = murmur3_x86_32(data, 0)
    if mmh3 is not None:
        other = mmh3.hash(data, 0, signed=False)
        assert h == other, (salt, value, h, other)
    return h


def bucket(salt: str, value: str) -> int:
    return (hash32(salt, value) * 100000) >> 32


# --------------------------------------------------------------------------- helpers
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T](\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def parse_rfc3339_ms(s):
    """Return epoch milliseconds as a Fraction, or None."""
    m = _RFC3339.match(s)
    if not m:
        return None
    y, mo, d, hh, mi, ss = (int(m.group(i)) for i in range(1, 7))
    try:
        base = datetime(y, mo, d, hh, mi, ss, tzinfo=timezone.utc)
    except ValueError:
        return None
    off = m.group(8)
    if off != "Z":
        sign = 1 if off[0] == "+" else -1
        oh, om = int(off[1:3]), int(off[4:6])
        if oh > 23 or om > 59:
            return None
        base = base - sign * timedelta(hours=oh, minutes=om)
    ms = Fraction(int(base.timestamp()) * 1000)
    if m.group(7):
        frac = m.group(7)[1:]
        ms += Fraction(int(frac), 10 ** len(frac)) * 1000
    return ms


def now_ms(now: str) -> int:
    v = parse_rfc3339_ms(now)
    assert v is not None and v.denominator == 1
    return int(v)


def is_num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


_DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


def parse_decimal(s):
    """A string that is a plain decimal number, as a float; None otherwise."""
    if not isinstance(s, str) or not _DECIMAL.match(s):
        return None
    x = float(s)
    return x if math.isfinite(x) else None


def as_number(x):
    """A JSON number, or a string that is a plain decimal number; None otherwise."""
    if is_num(x):
        return x
    return parse_decimal(x)


def kind_of(x):
    if isinstance(x, bool):
        return "bool"
    if is_num(x):
        return "number"
    if isinstance(x, str):
        return "string"
    return None


_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$")
# A partial version ("2", "2.1"), which may carry a pre-release or build part.
_SHORT = re.compile(
    r"^(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$")


def parse_semver(s, allow_short):
    """A clause version (allow_short False) or a context version (allow_short True)."""
    if allow_short and is_num(s):
        if s < 0:
            return None
        # A whole number N is N.0.0; any other number is read in its shortest decimal
        # form (1.2 -> "1.2", so 1.2.0).
        s = str(s) if is_int(s) else str(int(s)) if s.is_integer() else repr(s)
    if not isinstance(s, str):
        return None
    if s[:1] in ("v", "V"):
        s = s[1:]
    m = _SEMVER.match(s)
    if m:
        pre = m.group(4)
        v = (int(m.group(1)), int(m.group(2)), int(m.group(3)), pre.split(".") if pre else [])
    elif allow_short and _SHORT.match(s):
        m = _SHORT.match(s)
        pre = m.group(3)
        v = (int(m.group(1)), int(m.group(2) or 0), 0, pre.split(".") if pre else [])
    else:
        return None
    # Each of MAJOR, MINOR and PATCH fits in an unsigned 64-bit integer.
    return v if max(v[:3]) < 2 ** 64 else None


def semver_cmp(a, b):
    if a[:3] != b[:3]:
        return -1 if a[:3] < b[:3] else 1
    pa, pb = a[3], b[3]
    if not pa and not pb:
        return 0
    if not pa:
        return 1
    if not pb:
        return -1
    for x, y in zip(pa, pb):
        if x == y:
            continue
        xn, yn = x.isdigit(), y.isdigit()
        if xn and yn:
            return -1 if int(x) < int(y) else 1
        if xn:
            return -1
        if yn:
            return 1
        return -1 if x < y else 1
    if len(pa) == len(pb):
        return 0
    return -1 if len(pa) < len(pb) else 1


def parse_ip(s):
    if not isinstance(s, str):
        return None
    try:
        return ipaddress.ip_address(s)
    except ValueError:
        return None


def parse_time(x, now=None):
    if now is not None and x == "$now":
        return Fraction(now_ms(now))
    if is_num(x):
        return Fraction(x)
    if isinstance(x, str):
        return parse_rfc3339_ms(x)
    return None


# --------------------------------------------------------------------------- evaluator
_MISSING = object()


def lookup(ctx, name, now):
    if name == "$now":
        return now_ms(now)
    if "." in name:
        cur = ctx
        ok = True
        for part in name.split("."):
            if isinstance(cur, dict) and part in cur:
                cur = cur[part]
            else:
                ok = False
                break
        if ok:
            return cur
    return ctx.get(name, _MISSING)


def test_value(op, e, values, ci, now):
    """Return True/False, or None when e is incomparable."""
    if op == "in":
        k = kind_of(e)
        results = []
        same = [v for v in values if k is not None and kind_of(v) == k]
        if same:
            if k == "string" and ci:
                results.append(any(e.lower() == v.lower() for v in same))
            else:
                results.append(any(e == v for v in same))
        numbers = [v for v in values if kind_of(v) == "number"]
        x = parse_decimal(e)
        if k == "string" and numbers and x is not None:
            results.append(any(x == v for v in numbers))
        if not results:
            return None
        return any(results)
    if op in ("starts_with", "ends_with", "contains"):
        if not isinstance(e, str):
            return None
        a = e.lower() if ci else e
        for v in values:
            b = v.lower() if ci else v
            if (op == "starts_with" and a.startswith(b)) or (op == "ends_with" and a.endswith(b)) \
                    or (op == "contains" and b in a):
                return True
        return False
    if op == "matches":
        if not isinstance(e, str):
            return None
        return any(re.search(v, e, re.IGNORECASE if ci else 0) for v in values)
    if op in ("lt", "lte", "gt", "gte"):
        x = as_number(e)
        if x is None:
            return None
        f = {"lt": lambda a, b: a < b, "lte": lambda a, b: a <= b,
             "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b}[op]
        return any(f(x, v) for v in values)
    if op in ("before", "after"):
        t = parse_time(e)
        if t is None:
            return None
        for v in values:
            tv = parse_time(v, now)
            assert tv is not None
            if (op == "before" and t < tv) or (op == "after" and t > tv):
                return True
        return False
    if op.startswith("semver_"):
        a = parse_semver(e, True)
        if a is None:
            return None
        for v in values:
            b = parse_semver(v, False)
            assert b is not None, v
            c = semver_cmp(a, b)
            if {"semver_eq": c == 0, "semver_lt": c < 0, "semver_lte": c <= 0,
                    "semver_gt": c > 0, "semver_gte": c >= 0}[op]:
                return True
        return False
    if op == "in_cidr":
        ip = parse_ip(e)
        if ip is None:
            return None
        for v in values:
            net = ipaddress.ip_network(v, strict=True)
            if net.version == ip.version and ip in net:
                return True
        return False
    raise ValueError(op)


def clause_matches(rs, clause, ctx, now, seg_stack=()):
    op = clause["op"]
    values = clause.get("values", [])
    negate = clause.get("negate", False)
    ci = clause.get("case_insensitive", False)
    if op == "in_segment":
        r = any(in_segment(rs, s, ctx, now, seg_stack) for s in values)
        return r != negate
    v = lookup(ctx, clause.get("attribute", ""), now)
    if op == "exists":
        return (v is not _MISSING and v is not None) != negate
    if v is _MISSING or v is None:
        return False
    elems = v if isinstance(v, list) else [v]
    comparable = False
    matched = False
    for e in elems:
        r = test_value(op, e, values, ci, now)
        if r is None:
            continue
        comparable = True
        matched = matched or r
    if not comparable:
        return False
    return matched != negate


def in_segment(rs, key, ctx, now, seg_stack):
    assert key not in seg_stack, "segment cycle"
    seg = rs["segments"][key]
    tk = ctx.get("targetingKey")
    if isinstance(tk, str):
        if tk in seg.get("included", []):
            return True
        if tk in seg.get("excluded", []):
            return False
    for rule in seg.get("rules", []):
        if all(clause_matches(rs, c, ctx, now, seg_stack + (key,)) for c in rule["clauses"]):
            return True
    return False


def _result(flag, var, kind, in_rollout=False, **extra):
    value = next(v["value"] for v in flag["variations"] if v["key"] == var)
    reason = {"kind": kind, "in_rollout": in_rollout}
    reason.update(extra)
    return {"value": value, "variation": var, "reason": reason}


def _error(code):
    return {"value": None, "variation": None,
            "reason": {"kind": "ERROR", "error_code": code, "in_rollout": False}}


def _serve(key, flag, serve, ctx, now, kind, **extra):
    if "variation" in serve:
        return _result(flag, serve["variation"], kind, False, **extra)
    ro = serve["rollout"]
    v = lookup(ctx, ro.get("bucket_by", "targetingKey"), now)
    if isinstance(v, str):
        value = v
    elif is_int(v):
        value = str(v)
    else:
        return _error("TARGETING_KEY_MISSING")
    salt = ro["seed"] if "seed" in ro else key
    b = bucket(salt, value)
    total = 0
    for wv in ro["variations"]:
        total += wv["weight"]
        if total > b:
            return _result(flag, wv["variation"], kind, True, **extra)
    raise AssertionError("weights do not sum to 100000")


def evaluate(rs, key, ctx, now=DEFAULT_NOW, stack=()):
    assert key not in stack, "prerequisite cycle"
    flag = rs["flags"].get(key)
    if flag is None or flag.get("archived", False):
        return _error("FLAG_NOT_FOUND")
    if not flag["enabled"]:
        return _result(flag, flag["off_variation"], "OFF")
    for p in flag.get("prerequisites", []):
        pf = rs["flags"].get(p["flag"])
        ok = pf is not None and not pf.get("archived", False) and pf["enabled"]
        if ok:
            r = evaluate(rs, p["flag"], ctx, now, stack + (key,))
            ok = r["reason"]["kind"] != "ERROR" and r["variation"] in p["variations"]
        if not ok:
            return _result(flag, flag["off_variation"], "PREREQUISITE_FAILED",
                           prerequisite_key=p["flag"])
    tk = ctx.get("targetingKey")
    if isinstance(tk, str):
        for t in flag.get("targets", []):
            if tk in t["values"]:
                return _result(flag, t["variation"], "TARGET_MATCH")
    for i, rule in enumerate(flag.get("rules", [])):
        if all(clause_matches(rs, c, ctx, now) for c in rule["clauses"]):
            extra = {"rule_index": i}
            if "id" in rule:
                extra["rule_id"] = rule["id"]
            return _serve(key, flag, rule["serve"], ctx, now, "RULE_MATCH", **extra)
    return _serve(key, flag, flag["fallthrough"], ctx, now, "FALLTHROUGH")


# --------------------------------------------------------------------------- validation
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_FLAG_FIELDS = {"type", "variations", "enabled", "off_variation", "fallthrough", "targets",
                "rules", "prerequisites", "client_side", "version", "archived"}
_RULE_FIELDS = {"id", "description", "clauses", "serve"}
_CLAUSE_FIELDS = {"attribute", "op", "values", "negate", "case_insensitive"}
_SEG_FIELDS = {"included", "excluded", "rules"}
_OPS = {"in", "starts_with", "ends_with", "contains", "matches", "lt", "lte", "gt", "gte",
        "before", "after", "semver_eq", "semver_lt", "semver_lte", "semver_gt", "semver_gte",
        "in_cidr", "exists", "in_segment"}


def _type_ok(t, v):
    return {"boolean": isinstance(v, bool), "string": isinstance(v, str),
            "number": is_num(v), "json": True}[t]


def validate(rs):
    assert set(rs) == {"version", "flags", "segments"}, set(rs)
    for key, f in rs["flags"].items():
        assert _KEY.match(key), key
        assert set(f) <= _FLAG_FIELDS and set(f) >= _FLAG_FIELDS - {"archived"}, (key, set(f))
        vkeys = [v["key"] for v in f["variations"]]
        assert len(vkeys) == len(set(vkeys)) and vkeys, key
        for v in f["variations"]:
            assert set(v) == {"key", "value"} and _KEY.match(v["key"]), v
            assert _type_ok(f["type"], v["value"]), (key, v)
        assert f["off_variation"] in vkeys, key
        _validate_serve(rs, key, f["fallthrough"], vkeys)
        seen = set()
        for t in f["targets"]:
            assert set(t) == {"variation", "values"} and t["variation"] in vkeys, key
            for u in t["values"]:
                assert isinstance(u, str) and u not in seen, (key, u)
                seen.add(u)
        ids = set()
        for r in f["rules"]:
            assert set(r) <= _RULE_FIELDS and "clauses" in r and "serve" in r, r
            if "id" in r:
                assert r["id"] not in ids, (key, r["id"])
                ids.add(r["id"])
            for c in r["clauses"]:
                _validate_clause(rs, c)
            _validate_serve(rs, key, r["serve"], vkeys)
        for p in f["prerequisites"]:
            assert set(p) == {"flag", "variations"} and p["flag"] in rs["flags"], (key, p)
            pk = [v["key"] for v in rs["flags"][p["flag"]]["variations"]]
            assert p["variations"] and all(v in pk for v in p["variations"]), (key, p)
    for key, s in rs["segments"].items():
        assert _KEY.match(key) and set(s) == _SEG_FIELDS, key
        for r in s["rules"]:
            assert set(r) <= {"id", "clauses"}, r
            for c in r["clauses"]:
                _validate_clause(rs, c)
    # cycles
    def walk(node, graph, stack):
        assert node not in stack, ("cycle", stack)
        for n in graph(node):
            walk(n, graph, stack + (node,))
    for key in rs["flags"]:
        walk(key, lambda k: [p["flag"] for p in rs["flags"][k]["prerequisites"]], ())
    def segdeps(k):
        out = []
        for r in rs["segments"][k]["rules"]:
            for c in r["clauses"]:
                if c["op"] == "in_segment":
                    out += c["values"]
        return out
    for key in rs["segments"]:
        walk(key, segdeps, ())


def _validate_serve(rs, key, s, vkeys):
    assert len(s) == 1, s
    if "variation" in s:
        assert s["variation"] in vkeys, (key, s)
        return
    ro = s["rollout"]
    assert set(ro) <= {"bucket_by", "seed", "variations"}, ro
    assert sum(w["weight"] for w in ro["variations"]) == 100000, (key, ro)
    for w in ro["variations"]:
        assert set(w) == {"variation", "weight"} and w["variation"] in vkeys, (key, w)
        assert is_int(w["weight"]) and w["weight"] >= 0


def _validate_clause(rs, c):
    assert set(c) <= _CLAUSE_FIELDS and "op" in c and c["op"] in _OPS, c
    op, vals = c["op"], c.get("values", [])
    assert isinstance(vals, list)
    if op != "in_segment":
        assert isinstance(c.get("attribute"), str) and c["attribute"], c
    if op == "exists":
        assert vals == [], c
        return
    assert vals, c
    for v in vals:
        if op == "in":
            assert kind_of(v) is not None, c
        elif op in ("starts_with", "ends_with", "contains"):
            assert isinstance(v, str), c
        elif op == "matches":
            re.compile(v)
        elif op in ("lt", "lte", "gt", "gte"):
            assert is_num(v), c
        elif op in ("before", "after"):
            assert v == "$now" or (isinstance(v, str) and parse_rfc3339_ms(v) is not None) \
                or is_int(v), c
        elif op.startswith("semver_"):
            assert parse_semver(v, False) is not None, c
        elif op == "in_cidr":
            ipaddress.ip_network(v, strict=True)
        elif op == "in_segment":
            assert v in rs["segments"], c
