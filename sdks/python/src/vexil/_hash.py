"""MurmurHash3 x86_32 and the bucketing formula that places a unit in a percentage rollout.

``bucket = (murmur3_x86_32(utf8(salt + "." + value), seed 0) * 100000) >> 32``, a number in
``[0, 100000)``: one bucket is a thousandth of a percent. A rollout hashes the same
``salt + "."`` prefix for every unit, so its whole 4-byte blocks are hashed once
(:class:`SaltedHash`) and each evaluation hashes only the rest.
"""

from __future__ import annotations

import struct
from typing import Callable, Dict, Tuple

BUCKETS = 100_000
"""Number of buckets: rollout weights are thousandths of a percent, so 100000 is 100 %."""

_MASK = 0xFFFFFFFF
_UNPACK: Dict[int, Callable[[bytes], Tuple[int, ...]]] = {}


def _blocks(h: int, data: bytes, count: int) -> int:
    """Mixes the first ``count`` little-endian 4-byte blocks of ``data`` into ``h``."""
    unpack = _UNPACK.get(count)
    if unpack is None:
        unpack = struct.Struct(f"<{count}I").unpack_from
        if len(_UNPACK) < 1024:
            _UNPACK[count] = unpack
    for k in unpack(data):
        k = (k * 0xCC9E2D51) & _MASK
        h ^= (((k << 15) | (k >> 17)) * 0x1B873593) & _MASK
        h = ((((h << 13) | (h >> 19)) & _MASK) * 5 + 0xE6546B64) & _MASK
    return h


def _finish(h: int, data: bytes, length: int) -> int:
    """Hashes ``data`` into the state ``h`` and finalizes for a total input of ``length``."""
    n = len(data)
    if n >= 4:
        h = _blocks(h, data, n >> 2)
    rest = n & 3
    if rest:
        k = int.from_bytes(data[n - rest :], "little")
        k = (k * 0xCC9E2D51) & _MASK
        h ^= (((k << 15) | (k >> 17)) * 0x1B873593) & _MASK
    h ^= length & _MASK
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    return h ^ (h >> 16)


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86_32 of ``data``, as an unsigned 32-bit integer."""
    return _finish(seed & _MASK, data, len(data))


class SaltedHash:
    """MurmurHash3 (seed 0) of ``prefix + value`` for a fixed prefix, with the prefix's
    whole blocks hashed once."""

    __slots__ = ("_consumed", "_state", "_tail")

    def __init__(self, prefix: bytes) -> None:
        whole = len(prefix) >> 2
        self._state = _blocks(0, prefix, whole) if whole else 0
        self._consumed = whole << 2
        self._tail = prefix[self._consumed :]

    def __call__(self, value: bytes) -> int:
        data = self._tail + value
        return _finish(self._state, data, self._consumed + len(data))


def bucket_of_hash(h: int) -> int:
    """The bucket, in ``[0, 100000)``, of a 32-bit hash."""
    return (h * BUCKETS) >> 32


def bucket(salt: str, value: str) -> int:
    """The bucket of ``value`` in a rollout salted with ``salt`` (its seed, or the flag key)."""
    return bucket_of_hash(murmur3_32(f"{salt}.{value}".encode()))
