"""How clause operators read values: context strings that are plain decimal numbers,
dates (RFC 3339 or epoch milliseconds), versions (SemVer 2.0 with a ``v`` prefix, partial
versions and JSON numbers), IP networks, and regular expressions written for the server's
regex dialect.

Every reader returns ``None`` for a value its operator cannot compare; the clause is then
false whether negated or not.
"""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Any, Dict, Optional, Tuple, Union

# --------------------------------------------------------------------------- numbers

_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def decimal_of(s: str) -> Optional[float]:
    """A string that is, in full, a plain decimal number (``-?[0-9]+(\\.[0-9]+)?``), as the
    nearest float; ``None`` for anything else, including numbers too large to be finite."""
    if _DECIMAL.fullmatch(s) is None:
        return None
    x = float(s)
    return x if math.isfinite(x) else None


def float_of(v: Any) -> Optional[float]:
    """A JSON number as a float (booleans are not numbers); ``None`` otherwise."""
    if isinstance(v, bool):
        return None
    if isinstance(v, float):
        return float(v)
    if isinstance(v, int):
        try:
            return float(v)
        except OverflowError:
            return None
    return None


def number_of(v: Any) -> Optional[float]:
    """A context value as a number: a JSON number, or a string that is a plain decimal."""
    t = type(v)
    if t is str:
        return decimal_of(v)
    if t is float:
        return v  # type: ignore[no-any-return]
    if t is int:
        try:
            return float(v)
        except OverflowError:
            return None
    if isinstance(v, str):
        return decimal_of(str.__str__(v))
    return float_of(v)


def is_json_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


I64_MIN = -(1 << 63)
I64_END = 1 << 63
U64_END = 1 << 64

# --------------------------------------------------------------------------- dates

_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)
_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _is_leap(y: int) -> bool:
    return (y % 4 == 0 and y % 100 != 0) or y % 400 == 0


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    mp = m - 3 if m > 2 else m + 9
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def parse_rfc3339(s: str) -> Optional[int]:
    """``YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`` as epoch milliseconds (the fraction is
    truncated to milliseconds; ``t``, a space and ``z`` are accepted as RFC 3339 allows; a
    leap second counts as the next second). ``None`` when it is not such a timestamp."""
    m = _RFC3339.fullmatch(s)
    if m is None:
        return None
    year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
    hour, minute, second = int(m.group(4)), int(m.group(5)), int(m.group(6))
    if not 1 <= month <= 12 or day == 0:
        return None
    dim = 29 if month == 2 and _is_leap(year) else _DAYS[month - 1]
    if day > dim or hour > 23 or minute > 59 or second > 60:
        return None
    millis = 0
    fraction = m.group(7)
    if fraction:
        millis = int((fraction[:3] + "00")[:3])
    offset = 0
    sign = m.group(8)
    if sign:
        oh, om = int(m.group(9)), int(m.group(10))
        if oh > 23 or om > 59:
            return None
        offset = oh * 60 + om
        if sign == "-":
            offset = -offset
    secs = _days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset * 60
    return secs * 1000 + millis


def date_of(v: Any) -> Optional[int]:
    """A date as epoch milliseconds: an RFC 3339 string, or a JSON number of milliseconds
    (a float is truncated toward zero)."""
    t = type(v)
    if t is str:
        return parse_rfc3339(v)
    if t is int:
        if I64_MIN <= v < I64_END:
            return v  # type: ignore[no-any-return]
        return None
    if t is float:
        if math.isfinite(v) and abs(v) < 9.0e18:
            return int(v)
        return None
    if isinstance(v, str):
        return parse_rfc3339(str.__str__(v))
    if is_json_number(v):
        return date_of(int(v) if isinstance(v, int) else float(v))
    return None


def format_rfc3339(ms: int) -> str:
    """Epoch milliseconds as an RFC 3339 UTC timestamp with milliseconds."""
    secs, millis = divmod(ms, 1000)
    days, sod = divmod(secs, 86_400)
    # Inverse of _days_from_civil.
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    if m <= 2:
        y += 1
    return f"{y:04d}-{m:02d}-{d:02d}T{sod // 3600:02d}:{sod % 3600 // 60:02d}:{sod % 60:02d}.{millis:03d}Z"


# --------------------------------------------------------------------------- versions

# A version's sort key: (major, minor, patch, is_release, pre-release identifiers), where an
# identifier is (0, number) or (1, text) so that numeric identifiers sort first, as in
# SemVer 2.0 precedence. Build metadata is not part of the key.
VersionKey = Tuple[int, int, int, int, Tuple[Tuple[int, Union[int, str]], ...]]

_NUM = r"(?:0|[1-9][0-9]*)"
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD_ID = r"[0-9A-Za-z-]+"
_TAIL = rf"(?:-({_PRE_ID}(?:\.{_PRE_ID})*))?(?:\+{_BUILD_ID}(?:\.{_BUILD_ID})*)?"
_FULL = re.compile(rf"({_NUM})\.({_NUM})\.({_NUM}){_TAIL}")
_PARTIAL = re.compile(rf"({_NUM})(?:\.({_NUM}))?(?:\.({_NUM}))?{_TAIL}")
_RELEASE = re.compile(rf"({_NUM})(?:\.({_NUM}))?(?:\.({_NUM}))?")


def _key(major: str, minor: Optional[str], patch: Optional[str], pre: Optional[str]) -> Optional[VersionKey]:
    a, b, c = int(major), int(minor or 0), int(patch or 0)
    if a >= U64_END or b >= U64_END or c >= U64_END:
        return None
    if not pre:
        return (a, b, c, 1, ())
    ids = tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))
    return (a, b, c, 0, ids)


def _strip_v(s: str) -> str:
    return s[1:] if s[:1] in ("v", "V") else s


def clause_version(s: str) -> Optional[VersionKey]:
    """A clause's version: complete SemVer 2.0, optionally prefixed with one ``v``/``V``."""
    m = _FULL.fullmatch(_strip_v(s))
    if m is None:
        return None
    return _key(m.group(1), m.group(2), m.group(3), m.group(4))


# Context versions are few (an app's releases): their keys are cached, within a bound.
_VERSIONS: Dict[str, Optional[VersionKey]] = {}
_VERSIONS_MAX = 4096
_UNSEEN = object()


def _string_version(text: str) -> Optional[VersionKey]:
    s = _strip_v(text)
    m = _RELEASE.fullmatch(s)
    if m is not None:
        return _key(m.group(1), m.group(2), m.group(3), None)
    m = _PARTIAL.fullmatch(s)
    if m is None:
        return None
    return _key(m.group(1), m.group(2), m.group(3), m.group(4))


def context_version(v: Any) -> Optional[VersionKey]:
    """A context value read as a version: a SemVer string (one ``v``/``V`` prefix allowed;
    ``"2"`` and ``"2.1"`` mean 2.0.0 and 2.1.0), or a non-negative JSON number (``2`` is
    2.0.0; ``1.2`` is 1.2.0, read from its shortest decimal form)."""
    t = type(v)
    if t is str or isinstance(v, str):
        text = str.__str__(v)
        key = _VERSIONS.get(text, _UNSEEN)
        if key is _UNSEEN:
            key = _string_version(text)
            if len(_VERSIONS) >= _VERSIONS_MAX:
                _VERSIONS.clear()
            _VERSIONS[text] = key
        return key  # type: ignore[return-value]
    if not is_json_number(v):
        return None
    if isinstance(v, int):
        return (int(v), 0, 0, 1, ()) if 0 <= v < U64_END else None
    f = float(v)
    if not math.isfinite(f) or f < 0:
        return None
    if f.is_integer():
        return (int(f), 0, 0, 1, ()) if f < 18446744073709551616.0 else None
    m = _RELEASE.fullmatch(repr(f))
    if m is None:
        return None
    return _key(m.group(1), m.group(2), m.group(3), None)


# --------------------------------------------------------------------------- networks

Network = Tuple[int, int, int]
"""(IP version, masked network address, mask)."""

_PREFIX = re.compile(r"[0-9]{1,3}")


def parse_cidr(s: str) -> Union[Network, str]:
    """An IPv4 or IPv6 network (a single address is a /32 or /128); an error message if
    ``s`` is not one. Host bits may be set: they are masked off."""
    addr, slash, prefix_text = s.partition("/")
    ip = parse_ip(addr)
    if ip is None:
        return f"invalid IP address '{addr}'"
    version, value = ip
    bits = 32 if version == 4 else 128
    if slash:
        if _PREFIX.fullmatch(prefix_text) is None or int(prefix_text) > bits:
            return f"invalid prefix length '{prefix_text}' (0 to {bits})"
        prefix = int(prefix_text)
    else:
        prefix = bits
    mask = ((1 << bits) - 1) ^ ((1 << (bits - prefix)) - 1)
    return (version, value & mask, mask)


def parse_ip(s: str) -> Optional[Tuple[int, int]]:
    """An IP address as (version, integer); ``None`` if ``s`` is not one. Zone ids
    (``fe80::1%eth0``) are not addresses."""
    if "%" in s or not s.isascii():
        return None
    try:
        ip = ipaddress.ip_address(s)
    except ValueError:
        return None
    return (ip.version, int(ip))


# --------------------------------------------------------------------------- regexes

_INLINE_FLAGS = re.compile(r"\(\?[A-Za-z]*m")


def python_regex(pattern: str) -> str:
    """Adapts a pattern written for the server's regex dialect (Rust ``regex``) to Python's
    ``re`` where the two read the same text differently: ``$`` (without the ``m`` flag)
    matches only at the very end, ``\\z`` is the end of the text, and ``(?<name>…)`` names
    a group. Everything else is passed through."""
    multiline = _INLINE_FLAGS.search(pattern) is not None
    out: list[str] = []
    i, n = 0, len(pattern)
    depth = 0  # nesting of character classes
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            out.append("\\Z" if nxt == "z" and depth == 0 else c + nxt)
            i += 2
            continue
        if depth:
            if c == "[":
                depth += 1
            elif c == "]":
                depth -= 1
            out.append(c)
        elif c == "[":
            depth = 1
            out.append(c)
            # A ']' (or '^]') right after the opening bracket is a literal.
            if pattern.startswith("^]", i + 1):
                out.append("^]")
                i += 2
            elif pattern.startswith("]", i + 1):
                out.append("]")
                i += 1
        elif c == "$" and not multiline:
            out.append("\\Z")
        elif c == "(" and pattern.startswith("(?<", i) and pattern[i + 3 : i + 4] not in ("=", "!"):
            out.append("(?P<")
            i += 3
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)
