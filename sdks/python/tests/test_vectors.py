"""The shared evaluation vectors (spec/vectors at the repository root), read in place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from conftest import VECTORS
from vexil._hash import bucket_of_hash, murmur3_32
from vexil._operands import parse_rfc3339
from vexil.engine import Snapshot

DEFAULT_NOW = "2026-01-01T00:00:00Z"


def _files() -> List[Path]:
    files = sorted(VECTORS.glob("*.json"))
    assert files, f"no vectors found in {VECTORS}"
    return files


def _cases() -> List[Any]:
    out = []
    for path in _files():
        doc = json.loads(path.read_text(encoding="utf-8"))
        if "rows" in doc:
            continue
        for case in doc["cases"]:
            out.append(pytest.param(path.name, case, id=f"{path.stem}: {case['name']}"))
    return out


_SNAPSHOTS: Dict[str, Snapshot] = {}


def _snapshot(name: str) -> Snapshot:
    if name not in _SNAPSHOTS:
        doc = json.loads((VECTORS / name).read_text(encoding="utf-8"))
        _SNAPSHOTS[name] = Snapshot.compile(doc["ruleset"])
    return _SNAPSHOTS[name]


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value (42 == 42.0), booleans never equal to numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def test_every_vector_file_is_read() -> None:
    names = {p.name for p in _files()}
    assert "hash.json" in names and len(names) >= 15, names


@pytest.mark.parametrize(("file", "case"), _cases())
def test_vector(file: str, case: Dict[str, Any]) -> None:
    now = parse_rfc3339(case.get("now", DEFAULT_NOW))
    assert now is not None
    result = _snapshot(file).evaluate(case["flag"], case["context"], now)
    got = {"value": result.value, "variation": result.variation, "reason": result.reason.to_dict()}
    assert json_equal(got, case["expected"]), f"got {got}\nexpected {case['expected']}"


def _rows() -> List[Tuple[str, str, int, int]]:
    doc = json.loads((VECTORS / "hash.json").read_text(encoding="utf-8"))
    return [(r["salt"], r["value"], r["hash"], r["bucket"]) for r in doc["rows"]]


@pytest.mark.parametrize(("salt", "value", "hash_", "bucket"), _rows())
def test_hash_row(salt: str, value: str, hash_: int, bucket: int) -> None:
    h = murmur3_32(f"{salt}.{value}".encode())
    assert h == hash_
    assert bucket_of_hash(h) == bucket
