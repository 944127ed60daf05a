"""Identifiers the scheduler chooses: task ids and opencode message ids.

Task ids are ``bg_`` + 8 hex characters (spec §4.1). Message ids must sort with opencode's
own: opencode orders a session's messages by id, and a notification or prompt whose id sorts
before the assistant's answers would be taken for an old message. opencode's ascending ids
are ``<prefix>_`` + 12 hex characters of the low 48 bits of ``ms * 0x1000 + counter`` + 14
base62 characters; baton uses the same layout, so its ids interleave correctly with
opencode's. ``now`` comes from the caller (the core has no clock), and the ids never go
backwards even if it does. The random characters come from a seedable generator, so tests
are reproducible.
"""

from __future__ import annotations

import random

__all__ = ["IdSource"]

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_MASK48 = (1 << 48) - 1


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(_BASE62[digit])
    return "".join(digits)


class IdSource:
    """Generates ids; ``seed`` makes the sequence reproducible (tests), None draws from the OS."""

    __slots__ = ("_counter", "_last_ms", "_rng")

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)
        self._last_ms = 0
        self._counter = 0

    def task_id(self) -> str:
        return f"bg_{self._rng.getrandbits(32):08x}"

    def ascending(self, prefix: str, now: float) -> str:
        """An id that sorts after every id this source made before, and with opencode's by time."""
        ms = max(int(now * 1000), self._last_ms)
        if ms != self._last_ms:
            self._last_ms, self._counter = ms, 0
        self._counter += 1
        stamp = (ms * 0x1000 + self._counter) & _MASK48
        return f"{prefix}_{stamp:012x}{_base62(self._rng.getrandbits(84), 14)}"

    def message_id(self, now: float) -> str:
        return self.ascending("msg", now)
