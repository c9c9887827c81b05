"""Serves compiled: a fixed variation, or a percentage rollout that buckets the unit by
MurmurHash3 of ``seed-or-flag-key + "." + value`` and walks the running sums of weights."""

from __future__ import annotations

from bisect import bisect_right
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple

from . import _operands as ops
from ._clauses import Context, Errors, getter
from ._hash import SaltedHash
from ._results import Evaluation

TOTAL_WEIGHT = 100_000

Rollout = Callable[[Context, int], Evaluation]


class Serve:
    """A compiled serve: a fixed variation index, or a rollout."""

    __slots__ = ("bucket_by", "fixed", "salt", "slices")

    def __init__(
        self, fixed: Optional[int], bucket_by: str = "", salt: str = "", slices: Sequence[Tuple[int, int]] = ()
    ):
        self.fixed = fixed
        self.bucket_by = bucket_by
        self.salt = salt
        self.slices = tuple(slices)  # (running sum of weights, variation index)


def compile_serve(flag_key: str, raw: Any, path: str, index: Mapping[str, int], errors: Errors) -> Optional[Serve]:
    before = len(errors)
    if not isinstance(raw, Mapping):
        errors.append((path, "must be an object with 'variation' or 'rollout'"))
        return None
    variation = raw.get("variation")
    rollout = raw.get("rollout")
    if (variation is None) == (rollout is None):
        errors.append((path, "must have exactly one of 'variation' or 'rollout'"))
        return None
    if variation is not None:
        if not isinstance(variation, str) or variation not in index:
            errors.append((f"{path}.variation", f"unknown variation {variation!r}"))
            return None
        return Serve(index[variation])
    rpath = f"{path}.rollout"
    if not isinstance(rollout, Mapping):
        errors.append((rpath, "must be an object"))
        return None
    bucket_by = rollout.get("bucket_by", "targetingKey")
    if not isinstance(bucket_by, str) or not bucket_by:
        errors.append((f"{rpath}.bucket_by", "must be a non-empty string"))
    seed = rollout.get("seed")
    if seed is not None and not isinstance(seed, str):
        errors.append((f"{rpath}.seed", "must be a string"))
    raw_variations = rollout.get("variations")
    if not isinstance(raw_variations, list) or not raw_variations:
        errors.append((f"{rpath}.variations", "at least one variation is required"))
        return None
    slices: List[Tuple[int, int]] = []
    total = 0
    seen = set()
    for i, wv in enumerate(raw_variations):
        vpath = f"{rpath}.variations[{i}]"
        if not isinstance(wv, Mapping):
            errors.append((vpath, "must be an object"))
            continue
        key = wv.get("variation")
        weight = wv.get("weight")
        if not isinstance(key, str) or key not in index:
            errors.append((f"{vpath}.variation", f"unknown variation {key!r}"))
        elif key in seen:
            errors.append((f"{vpath}.variation", f"variation '{key}' appears twice in the rollout"))
        if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight < 1 << 32:
            errors.append((f"{vpath}.weight", "must be an integer from 0 to 100000"))
            continue
        total += weight
        if isinstance(key, str) and key in index and key not in seen:
            slices.append((total, index[key]))
        if isinstance(key, str):
            seen.add(key)
    if len(errors) == before and total != TOTAL_WEIGHT:
        errors.append((f"{rpath}.variations", f"weights must sum to {TOTAL_WEIGHT} (100%), got {total}"))
    if len(errors) != before:
        return None
    return Serve(None, bucket_by, seed if seed is not None else flag_key, slices)


def rollout_of(serve: Serve, results: Sequence[Evaluation], missing: Evaluation) -> Rollout:
    get = getter(serve.bucket_by)
    salted = SaltedHash((serve.salt + ".").encode())
    thresholds = [upto for upto, _ in serve.slices]
    last = len(results) - 1
    i64_min, u64_end = ops.I64_MIN, ops.U64_END

    def rollout(ctx: Context, now: int) -> Evaluation:
        v = get(ctx, now)
        t = type(v)
        if t is str:
            text = v
        elif t is int:
            if not i64_min <= v < u64_end:
                return missing
            text = str(v)
        elif isinstance(v, str):
            text = str.__str__(v)
        elif isinstance(v, int) and not isinstance(v, bool) and i64_min <= v < u64_end:
            text = str(int(v))
        else:
            return missing
        bucket = (salted(text.encode()) * 100_000) >> 32
        i = bisect_right(thresholds, bucket)
        return results[i if i <= last else last]

    return rollout
