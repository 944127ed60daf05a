"""The deciders' timers (``Schedule``/``CancelTimer``), one per key.

A timer is a :data:`~baton.runtime.jobs.Job` that sleeps until its time and comes back as
``TimerFired(key)``; scheduling a key again replaces its timer, cancelling it drops it. The keys
are the deciders' own (the scheduler's start with ``tasks:``).
"""

from __future__ import annotations

from functools import partial

import anyio

from baton.clock import Clock
from baton.events import TimerFired
from baton.runtime.jobs import Job

__all__ = ["Timers"]


class Timers:
    """Pending timers by key; times are the clock's (epoch seconds)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._scopes: dict[str, anyio.CancelScope] = {}

    def __len__(self) -> int:
        return len(self._scopes)

    def schedule(self, key: str, at: float) -> Job:
        """Replace the timer of ``key``; the returned job fires it at ``at``."""
        self.cancel(key)
        scope = self._scopes[key] = anyio.CancelScope()
        return partial(self._wait, key, at, scope)

    def cancel(self, key: str) -> None:
        scope = self._scopes.pop(key, None)
        if scope is not None:
            scope.cancel()

    async def _wait(self, key: str, at: float, scope: anyio.CancelScope) -> TimerFired | None:
        with scope:
            await anyio.sleep(max(0.0, at - self.clock.time()))
            if self._scopes.get(key) is scope:
                del self._scopes[key]
                return TimerFired(key)
        return None
