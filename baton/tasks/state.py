"""The scheduler's shared state, and the bookkeeping every part of it does the same way.

The scheduler (:mod:`baton.tasks.scheduler`) is a facade over small collaborators with one job
each — the lifecycle, what a child reports, timeouts, the engine's reports, restarts, opencode's
stream — and this is the one object they share: the task index, the parents' mailboxes, the
in-memory marks of calls in flight, and the helpers that keep them consistent (save a task, note
activity, arm the tick, ask for a poll, abort a child). Every method appends to an ``actions``
list and never performs I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from baton.actions import Schedule
from baton.catalog import EMPTY_CATALOG, Catalog
from baton.cooldowns import Cooldowns
from baton.fallback.core import FallbackCore
from baton.fallback.guards import Guard
from baton.settings import BackgroundTaskConfig, Config
from baton.tasks.actions import AbortChild, PollStatus, PromptChild, SaveTask, TaskAction
from baton.tasks.ids import IdSource
from baton.tasks.model import SLOT_HOLDING, OutboxRow, Task
from baton.tasks.notify import Notifier
from baton.tasks.queues import TaskIndex
from baton.tasks.transient import HostRetry
from baton.tasks.watch import ChildWatch

__all__ = ["OWN_ABORT_GRACE_S", "TICK_KEY", "TICK_S", "SchedulerState"]

TICK_S = 3.0
"""Backup status poll and timeout check period, only while a task starts or runs (§3 fixed values)."""
TICK_KEY = "tasks:tick"
OWN_ABORT_GRACE_S = 5.0
"""An abort error this soon after baton's own abort is baton's, not the user's."""


class SchedulerState:
    """Everything the scheduler's parts read and write; the parts hold no state of their own."""

    def __init__(self, config: Config, cooldowns: Cooldowns, tasks: Iterable[Task], rows: Iterable[OutboxRow],
                 ids: IdSource) -> None:
        self.config = config
        self.settings: BackgroundTaskConfig = config.background_task
        self.cooldowns = cooldowns
        self.ids = ids
        self.index = TaskIndex(self.settings, tasks)
        self.watches: dict[str, ChildWatch] = {}
        self.notifier = Notifier(self.index, ids, self.request_poll, self.wake_child, rows)
        for parent in self.index.live_by_parent:  # follow their readiness from the first event on
            self.notifier.ensure(parent)
        self.tick_at: float | None = None
        self.poll_in_flight = False
        self.aborting: set[str] = set()
        """Tasks whose child's abort is on its way (``AbortChild`` sent, ``AbortDone`` not back)."""
        self.prompt_after_abort: set[str] = set()
        """Starting tasks whose prompt waits for that abort to land."""
        self.abort_tries: dict[str, int] = {}
        """Ended tasks whose child is still being aborted, best effort: tries so far."""
        self.host_retries: dict[str, HostRetry] = {}
        self.sent_prompts: dict[str, PromptChild] = {}
        """The newest prompt of a starting task (a transient failure sends it again)."""
        self.dirty: set[str] = set()
        """Tasks with unsaved activity times; saved at the next tick."""
        self.detached_at: float | None = None
        self.connected: frozenset[str] | None = None
        """Providers opencode can call, as the newest launch or attach found them; None: unknown (all count)."""
        self.catalog: Catalog = EMPTY_CATALOG
        """opencode's models (costs, context windows) as the newest attach found them."""

    def guard(self, task: Task) -> Guard:
        """The spend guard for a retry of ``task`` (the agent's own ``max_cost_ratio``, else
        ``baton.max_cost_ratio``), compared with the model that failed (runtime-fallback §6.10)."""
        return Guard(self.catalog, max_cost_ratio=self.config.max_cost_ratio_for(task.agent), reference=task.model)

    @property
    def core(self) -> FallbackCore:
        """The fallback mechanics tasks share with sessions (:mod:`baton.fallback.core`)."""
        return FallbackCore(self.config.runtime_fallback, self.cooldowns, self.config.baton.max_cooldown_seconds)

    # ------------------------------------------------------------------ lookups

    def watch(self, task: Task) -> ChildWatch:
        watch = self.watches.get(task.id)
        if watch is None:
            watch = self.watches[task.id] = ChildWatch()
        return watch

    def running_child(self, session_id: str) -> Task | None:
        """The task whose child is ``session_id``, while it holds a slot (starting or running)."""
        task = self.index.live_on(session_id)
        return task if task is not None and task.status in SLOT_HOLDING else None

    # ------------------------------------------------------------------ bookkeeping

    def save(self, task: Task, actions: list[TaskAction]) -> None:
        self.dirty.discard(task.id)
        actions.append(SaveTask(task.id, task.to_row()))

    def activity(self, task: Task, now: float) -> None:
        task.last_activity_at = now
        self.dirty.add(task.id)
        self.index.key_progress[task.key] = now

    def request_poll(self, actions: list[TaskAction]) -> None:
        if not self.poll_in_flight:
            self.poll_in_flight = True
            actions.append(PollStatus())

    def arm_tick(self, now: float, actions: list[TaskAction]) -> None:
        if self.tick_at is None and self.detached_at is None and (self.index.slot_holders or self.abort_tries):
            self.tick_at = now + TICK_S
            actions.append(Schedule(TICK_KEY, self.tick_at))

    def abort(self, task: Task, now: float, actions: list[TaskAction]) -> None:
        if task.session_id is None:
            return
        self.aborting.add(task.id)
        self.watch(task).own_abort_until = now + OWN_ABORT_GRACE_S
        actions.append(AbortChild(task.id, task.session_id, task.directory))

    def wake_child(self, session_id: str, message_id: str, text: str, now: float,
                   actions: list[TaskAction]) -> None:
        """A waking notification to a task's child is that child's new anchor (§8.3)."""
        task = self.index.live_on(session_id)
        if task is not None:
            task.anchor_message_id = message_id
            task.anchor_text = text
            self.watch(task).new_turn()
            self.save(task, actions)
