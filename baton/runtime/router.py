"""The single writer: every event goes to the deciders here, and their actions to the executors.

One asyncio loop, one writer. :meth:`Router.feed` is synchronous: it hands an event to the
fallback policy and the task scheduler and executes the returned actions at once — store writes
and timers inline, I/O as :data:`~baton.runtime.jobs.Job` s whose outcome comes back through
``feed`` as an event. Because nothing awaits between an event and its decision, no lock is needed.

Who sees what: events from opencode's stream (or a resync) and the outcome of a re-send go to
both deciders, after the observers (the tools' call matcher, the session tree); a timer goes to
the decider that set it (the scheduler's keys start with ``tasks:``); every other event is the
outcome of a task action and goes to the scheduler alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Protocol, TypeVar

from baton.actions import Action
from baton.clock import Clock
from baton.events import (
    AssistantMessage,
    CatalogSeen,
    Event,
    PartDelta,
    PartUpdated,
    RecoveredResend,
    ResendResult,
    SessionCreated,
    SessionDeleted,
    SessionError,
    SessionIdle,
    SessionStatus,
    TimerFired,
    UserMessage,
)
from baton.runtime.jobs import Job, Jobs, job_name
from baton.tasks.actions import TaskAction
from baton.tasks.events import SchedulerEvent

__all__ = ["CORE_EVENTS", "Executor", "FallbackDecider", "Observer", "Router", "TaskDecider"]

# Events from opencode's stream (or a resync), which every decider sees; timers and action
# results go only to the decider that asked for them.
CORE_EVENTS = (PartDelta, PartUpdated, AssistantMessage, UserMessage, SessionStatus, SessionIdle, SessionError,
               SessionCreated, SessionDeleted, ResendResult, RecoveredResend, CatalogSeen)
TASK_TIMER_PREFIX = "tasks:"

_R = TypeVar("_R")


class FallbackDecider(Protocol):
    """The runtime-fallback policy (:class:`baton.fallback.policy.FallbackPolicy`)."""

    def handle(self, event: Event, now: float) -> Sequence[Action]: ...


class TaskDecider(Protocol):
    """The task scheduler (:class:`baton.tasks.scheduler.Scheduler`)."""

    def handle(self, event: SchedulerEvent, now: float) -> Sequence[TaskAction]: ...


class Observer(Protocol):
    """Keeps what it needs from the stream's events; decides nothing."""

    def observe(self, event: Event, now: float) -> None: ...


class Executor(Protocol):
    """Carries out actions: what is quick at once, the rest returned as a job to start."""

    def execute(self, action: TaskAction, now: float) -> Job | None: ...


class Router:
    """Feeds events to the deciders and hands their actions to the executor of each action type."""

    def __init__(
        self,
        policy: FallbackDecider,
        scheduler: TaskDecider,
        executors: Iterable[tuple[Iterable[type], Executor]],
        jobs: Jobs,
        clock: Clock,
        *,
        observers: Sequence[Observer] = (),
    ) -> None:
        self._policy = policy
        self._scheduler = scheduler
        self._routes: dict[type, Executor] = {kind: ex for kinds, ex in executors for kind in kinds}
        self._jobs = jobs
        self._clock = clock
        self._observers = tuple(observers)
        self.events = 0
        self.last_event_at: float | None = None

    def feed(self, event: SchedulerEvent) -> None:
        """Hand one event to the deciders and execute their actions. Never awaits, never raises:
        a bug deciding one event is logged and counted, and the next event is decided as usual."""
        try:
            self._feed(event)
        except Exception as exc:
            self._jobs.failed(f"deciding {type(event).__name__}", exc)

    def _feed(self, event: SchedulerEvent) -> None:
        now = self._clock.time()
        self.events += 1
        self.last_event_at = now
        if isinstance(event, TimerFired):
            if event.key.startswith(TASK_TIMER_PREFIX):
                self.run_actions(self._scheduler.handle(event, now), now)
                return
        elif not isinstance(event, CORE_EVENTS):
            self.run_actions(self._scheduler.handle(event, now), now)
            return
        for action in self._policy.handle(event, now):
            self._execute(action, now)
        for observer in self._observers:
            observer.observe(event, now)
        self.run_actions(self._scheduler.handle(event, now), now)

    def run_actions(self, actions: Sequence[TaskAction], now: float | None = None) -> None:
        """Execute actions in order; a scheduler's saves are committed before later I/O starts."""
        if not actions:
            return
        now = self._clock.time() if now is None else now
        for action in actions:
            self._execute(action, now)

    def run_step(self, step: Callable[[float], tuple[_R, Sequence[TaskAction]]]) -> _R:
        """One synchronous decider step taken outside ``feed`` (a tool's launch, cancel or wait),
        its actions executed as if an event had caused them."""
        now = self._clock.time()
        result, actions = step(now)
        self.run_actions(actions, now)
        return result

    def _execute(self, action: TaskAction, now: float) -> None:
        executor = self._routes.get(type(action))
        if executor is None:
            return
        job = executor.execute(action, now)
        if job is not None:
            self._jobs.start(partial(self._outcome, job), name=job_name(job))

    async def _outcome(self, job: Job) -> None:
        outcome = await job()
        if outcome is not None:
            self.feed(outcome)

