"""Wall time as a port: everything that needs "now" gets a :class:`Clock`, so tests can move it.

The deciders take no clock at all (time arrives as ``now``); the engine, the daemon, the HTTP
routes and the store read theirs. :class:`SystemClock` is the real one;
:class:`baton.testing.clock.FakeClock` is the one tests set and advance.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """Wall time in epoch seconds; tests pass a fake one."""

    def time(self) -> float: ...


class SystemClock:
    """The process's wall clock (``time.time()``)."""

    def time(self) -> float:
        return time.time()
