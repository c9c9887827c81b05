"""Exponential backoff with jitter: the n-th consecutive failure waits a random time in
``[d/2, d]`` with ``d = min(max, initial * 2**n)``, so that many clients cut off together do
not reconnect in lockstep."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = max(maximum, initial)
        self.failures = 0
        self._random = random.Random()

    def next_delay(self) -> float:
        """The wait before the next attempt, counting one more failure."""
        ceiling = min(self.maximum, self.initial * float(1 << min(self.failures, 30)))
        self.failures += 1
        jitter: float = self._random.random()
        return ceiling / 2 + jitter * ceiling / 2

    def reset(self) -> None:
        self.failures = 0
