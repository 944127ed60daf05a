"""The engine: baton's running parts for one opencode, composed, and what ``/healthz`` and
``/status`` say about them.

The parts, in dependency order (built by :func:`baton.daemon.build_engine`):

* the deciders — :class:`~baton.fallback.policy.FallbackPolicy` and
  :class:`~baton.tasks.scheduler.Scheduler`, pure;
* :class:`~baton.runtime.jobs.Jobs` and the executors —
  :class:`~baton.runtime.fallback_executor.FallbackExecutor` (with its
  :class:`~baton.runtime.timers.Timers`) and :class:`~baton.runtime.tasks.TaskExecutor`;
* :class:`~baton.runtime.router.Router`, the single writer: events → deciders → executors;
* :class:`~baton.runtime.task_tools.TaskTools`, the MCP tools' service, which takes its scheduler
  steps through the router;
* :class:`~baton.runtime.attach.Attachment`, what happens around each connection (resync,
  stand-down, recovery, the tools' registration, readiness);
* :class:`~baton.opencode.stream.EventStream`, which owns ``GET /event`` and feeds the router.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import anyio

from baton.clock import Clock
from baton.fallback.policy import FallbackPolicy
from baton.opencode.client import OpencodeClient
from baton.opencode.stream import EventStream, StreamState
from baton.runtime.attach import Attachment
from baton.runtime.fallback_executor import FallbackExecutor
from baton.runtime.fleet_slots import SlotGate
from baton.runtime.jobs import Jobs
from baton.runtime.metrics import Metrics
from baton.runtime.router import Router
from baton.runtime.task_tools import TaskTools
from baton.settings import Config
from baton.store_port import StorePort
from baton.tasks.scheduler import Scheduler

__all__ = ["Engine", "EngineStats"]


@dataclass(frozen=True, slots=True)
class EngineStats:
    """A snapshot for ``/status`` and ``baton status``."""

    state: StreamState
    opencode_url: str
    events: int
    connects: int
    last_event_at: float | None
    sessions: list[dict[str, Any]]
    cooldowns: list[dict[str, Any]]
    fallbacks: int
    fallback: str
    tasks: list[dict[str, Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Engine:
    """Attaches to one opencode server and keeps its sessions on a working model."""

    client: OpencodeClient
    clock: Clock
    store: StorePort
    policy: FallbackPolicy
    scheduler: Scheduler
    jobs: Jobs
    fallback: FallbackExecutor
    router: Router
    tasks: TaskTools
    attachment: Attachment
    stream: EventStream
    slots: SlotGate
    metrics: Metrics

    async def run(self) -> None:
        """Run until cancelled: the stream, and whatever the actions start."""
        await self.jobs.run(self.stream.run, self.slots.run)

    async def reload(self, config: Config) -> None:
        """A new config (``kill -HUP``): the deciders and the tools take it at once — sessions and
        tasks already under way keep the chain they resolved — and the chains are checked again."""
        self.policy.state.config = config
        self.scheduler.config = config
        self.tasks.config = config
        if self.attached.is_set():
            await self.attachment.check_chains()

    @property
    def attached(self) -> anyio.Event:
        """Set once attached and baton's tools registered (see :meth:`health` for whether they connected)."""
        return self.attachment.ready

    def health(self) -> dict[str, Any]:
        """Readiness and, when not ready, which part is missing: ``attached`` means usable —
        the stream attached and baton's tools connected in opencode (when it registers them)."""
        stream = self.stream.state is StreamState.ATTACHED
        tools_ok = self.attachment.tools_ok
        problems = [p for p in (self.store.problem, self.slots.problem) if p is not None]
        store_problem = "; ".join(problems) if problems else None
        reason = self.stream.detached_reason if not stream else None
        if stream and not tools_ok:
            reason = f"baton's MCP tools are not connected in opencode ({self.attachment.tools})"
        return {
            "attached": stream and tools_ok,
            "state": self.stream.state.value,
            "reason": reason,
            "tools": self.attachment.tools,
            "store": store_problem,
            "degraded": store_problem is not None,
            "internal_errors": self.jobs.errors,
            "last_internal_error": self.jobs.last_error,
            "opencode": self.client.base_url,
            "fallback": self.fallback_mode(),
        }

    def fallback_mode(self) -> str:
        """``active``, ``disabled`` (config) or ``passive: <why>`` (a competing fallback is on)."""
        if not self.policy.settings.enabled:
            return "disabled"
        reason = self.policy.passive_reason
        return "active" if reason is None else f"passive: {reason}"

    def sessions(self, now: float) -> list[dict[str, Any]]:
        """The sessions with fallback state, newest activity first (``/status``, the dashboard)."""
        return [
            {
                "id": s.session_id, "status": s.status, "agent": s.agent, "original": s.original,
                "current": s.current, "attempts": s.attempts, "max_attempts": s.max_attempts,
                "chain": list(s.chain), "awaiting": s.awaiting,
                "parked_until": s.parked_until, "park_model": s.park_model,
            }
            for s in self.policy.snapshot(now)
        ]

    def cooldowns(self, now: float) -> list[dict[str, Any]]:
        """The models cooling at ``now``, with where each end came from."""
        return [
            {"model": model, "until": until, "seconds_left": math.ceil(until - now),
             "source": self.policy.cooldowns.source(model)}
            for model, until in self.policy.cooldowns.active(now)
        ]

    def stats(self) -> EngineStats:
        now = self.clock.time()
        return EngineStats(
            state=self.stream.state,
            opencode_url=self.client.base_url,
            events=self.router.events,
            connects=self.stream.connects,
            last_event_at=self.router.last_event_at,
            sessions=self.sessions(now),
            cooldowns=self.cooldowns(now),
            fallbacks=self.fallback.fallbacks,
            fallback=self.fallback_mode(),
            tasks=[asdict(view) for view in self.scheduler.snapshot(now)],
        )
