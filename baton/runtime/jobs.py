"""Background jobs of the runtime, and the count of baton's own bugs.

The executors never feed anyone: an action's I/O is a :data:`Job` — a coroutine function that
returns its outcome as an event (or None) — which the router starts here and whose outcome it
feeds to the deciders. A job that raises is a bug: it is logged and counted
(``internal_errors`` in ``/healthz``), never the daemon's end.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import structlog
from anyio.abc import TaskGroup

from baton.tasks.events import SchedulerEvent

__all__ = ["Job", "Jobs", "Outcome", "job_name"]

log = structlog.get_logger("baton")

Outcome = SchedulerEvent | None
"""What an action's I/O came to, for the decider that asked for it (None: nothing to report)."""

Job = Callable[[], Awaitable[Outcome]]
"""An action's I/O, not started yet."""


class Jobs:
    """Runs background work in one task group; counts and logs what fails in it."""

    def __init__(self) -> None:
        self._tg: TaskGroup | None = None
        self.errors = 0
        self.last_error: str | None = None

    async def run(self, *mains: Callable[[], Awaitable[None]]) -> None:
        """Run ``mains`` (and every job started meanwhile) until cancelled."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for main in mains:
                tg.start_soon(_call, main)

    def start(self, fn: Callable[[], Awaitable[object]], *, name: str | None = None) -> None:
        """Start ``fn()``; before :meth:`run`, nothing runs (a decision fed in a test, a benchmark)."""
        if self._tg is not None:
            self._tg.start_soon(self._guarded, name or job_name(fn), fn)

    async def _guarded(self, name: str, fn: Callable[[], Awaitable[object]]) -> None:
        try:
            await fn()
        except Exception as exc:
            self.failed(name, exc)

    def failed(self, where: str, exc: Exception) -> None:
        """A bug: log it with its traceback and count it; baton carries on."""
        self.errors += 1
        self.last_error = f"{where}: {type(exc).__name__}: {exc}"
        log.error("internal error; baton carries on", where=where, error=f"{type(exc).__name__}: {exc}",
                  exc_info=exc)


async def _call(main: Callable[[], Awaitable[None]]) -> None:
    await main()


def job_name(fn: object) -> str:
    """A job's function name, for the log of a failure."""
    inner = getattr(fn, "func", fn)  # a functools.partial names its function
    return str(getattr(inner, "__qualname__", inner))
