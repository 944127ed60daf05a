"""A clock that tests set and move: no real waiting for a timeout or a cooldown."""

from __future__ import annotations

import time

__all__ = ["FakeClock"]


class FakeClock:
    """A :class:`baton.clock.Clock` that reads ``now`` (default: the real time when made).

    Set ``now`` or call :meth:`advance`; nothing moves it otherwise.
    """

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.now += seconds
