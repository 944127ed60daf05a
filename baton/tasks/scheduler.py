"""The background-task scheduler: a pure state machine, ``handle(event, now) -> actions``.

Theory of operation (rules: ``docs/behaviour/background-tasks.md``, cited as §n):

* State. The task table (``Task`` rows, as the store holds them) plus the outbox rows are
  the whole durable state. Everything else — per-key queues and slots, outstanding(P),
  batch(P), live tasks per root, child session → task — is an index derived from task
  statuses (:mod:`baton.tasks.queues`), updated in one place on every transition, so it is
  O(1) per event and a restart rebuilds exactly the same views (§4.2).
* Transitions. Only :data:`baton.tasks.model.TRANSITIONS` changes a status. A launch inserts
  a ``queued`` task; a free slot of its key (``provider/model``) is granted at once and in
  FIFO order (§5); ``starting`` creates the child and sends the prompt under an anchor
  message id baton chose; ``running`` ends ``completed`` when the child is idle, shows a
  visible answer after the anchor and is quiescent, in whatever order those are seen (§8).
  Failures go through the fallback core sessions use too (:mod:`baton.fallback.core`: the
  error classifier, the shared cooldowns, the chain walk): retryable ones re-queue the task on
  the next chain model, same session, same anchor (§10). Timeouts run from the last
  activity and end a task only once its child's abort is confirmed (§9).
* The end procedure runs exactly once per task (:meth:`Lifecycle.end`): status, freed slot
  (the key's head is granted in the same step), cascade to the child's own live tasks,
  outbox row or ``notify = suppressed``, then I/O (abort, toast, delivery).
* Notifications (:mod:`baton.tasks.notify`): one row per notified end, context-only while P
  has other outstanding tasks, waking when the last one ends; rows are coalesced per parent,
  sent one message at a time when P is idle, retried under the same message id.
* Durability. Every state change is emitted as ``SaveTask``/``SaveOutbox`` *before* the I/O
  action that depends on it in the same list; the engine executes saves synchronously. After
  a restart the engine constructs a scheduler from the stored rows and calls :meth:`resume`,
  which re-issues whatever was in flight (adopting children, re-sending frozen messages with
  the same ids), so no task is lost or run twice and no notification is lost or doubled.
* Time. ``now`` (epoch seconds) comes with every call; timers are ``Schedule`` actions whose
  firing comes back as ``TimerFired``: one periodic tick (3 s, only while a task starts or
  runs) for the backup status poll and the timeouts, and one delivery timer per parent.

Composition. :class:`Scheduler` is a facade: the public methods and the event dispatch. The
work is done by parts with one job each, which share one explicit
:class:`baton.tasks.state.SchedulerState` (the task index, the mailboxes, the marks of calls in
flight) and hold no state of their own:

* :class:`baton.tasks.lifecycle.Lifecycle` — grants, starts, completion, the end procedure;
* :class:`baton.tasks.children.Children` — what a child reports: accepted, status, failures and
  the fallback;
* :class:`baton.tasks.timeouts.Timeouts` — T1–T3 and the tick;
* :class:`baton.tasks.recovery.Recovery` — restart, reattach, foreground hand-over;
* :class:`baton.tasks.results.Results` — the outcomes of the actions the scheduler asked for;
* :class:`baton.tasks.stream.StreamEvents` — opencode's stream and the scheduler's timers.

Nothing here performs I/O, reads a clock, sleeps, or imports an async or HTTP library.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from baton.actions import Note
from baton.cooldowns import Cooldowns
from baton.events import (
    AssistantMessage,
    CatalogSeen,
    PartDelta,
    PartUpdated,
    SessionDeleted,
    SessionError,
    SessionIdle,
    SessionStatus,
    StatusType,
    TimerFired,
    UserMessage,
)
from baton.settings import BackgroundTaskConfig, Config
from baton.tasks import texts
from baton.tasks.actions import ForgetTasks, TaskAction
from baton.tasks.children import Children
from baton.tasks.events import (
    AbortDone,
    ActivityRefreshed,
    Attached,
    ChildCreated,
    ChildCreateFailed,
    DeliveryResult,
    Detached,
    HostRestarted,
    ParentCompacted,
    PermissionPending,
    PromptAccepted,
    PromptRejected,
    SchedulerEvent,
    SessionLookup,
    StatusPolled,
)
from baton.tasks.ids import IdSource
from baton.tasks.launch import LaunchRequest, LaunchResult, ToolError, key_for, plan_launch
from baton.tasks.lifecycle import Lifecycle
from baton.tasks.model import (
    LIVE,
    WAITING,
    Attempt,
    EndReason,
    Mode,
    NotifyState,
    OutboxRow,
    Task,
    TaskEvent,
    TaskStatus,
)
from baton.tasks.notify import Notifier
from baton.tasks.queues import TaskIndex
from baton.tasks.recovery import Recovery
from baton.tasks.results import Results
from baton.tasks.state import SchedulerState
from baton.tasks.stream import StreamEvents
from baton.tasks.timeouts import Timeouts
from baton.tasks.waiting import Waiting
from baton.tasks.watch import ChildWatch

# Ended tasks kept per parent for background_output and `baton tasks --all` (spec §16).
HISTORY_PER_PARENT = 100

__all__ = ["CancelReport", "CancelRequest", "CancelledTask", "Scheduler", "TaskView"]


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """``background_cancel`` (``by="parent"``, scoped to the caller) or ``baton tasks cancel`` (``by="user"``)."""

    task_id: str | None = None
    all: bool = False
    caller_session_id: str | None = None
    by: Literal["parent", "user"] = "parent"


@dataclass(frozen=True, slots=True)
class CancelledTask:
    task_id: str
    description: str
    previous_status: str
    session_id: str | None


@dataclass(frozen=True, slots=True)
class CancelReport:
    """What a cancel did (§14.4 rule 4); ``text`` is the tool result."""

    cancelled: tuple[CancelledTask, ...]
    descendants: int
    text: str


@dataclass(frozen=True, slots=True)
class TaskView:
    """One row of ``baton tasks``."""

    id: str
    parent_session_id: str
    session_id: str | None
    description: str
    agent: str
    category: str | None
    model: str | None
    status: str
    mode: str
    age_s: float
    queue_position: int | None
    end_reason: str | None
    notify: str
    waiting_until: float | None = None
    """Set while the task waits for its chain's first reset (epoch seconds)."""
    run_s: float | None = None
    """How long it has run (to its end, once ended); None until it started."""


class Scheduler:
    """Background tasks for every parent session, from launch to the parent's notification.

    A facade over the parts that share :attr:`state` (see the module docstring).
    """

    def __init__(
        self,
        config: Config,
        cooldowns: Cooldowns,
        tasks: Iterable[Task] = (),
        outbox: Iterable[OutboxRow] = (),
        *,
        ids: IdSource | None = None,
    ) -> None:
        self.state = state = SchedulerState(config, cooldowns, tasks, outbox, ids or IdSource())
        self.lifecycle = lifecycle = Lifecycle(state)
        self.waiting = waiting = Waiting(state)
        self.children = children = Children(state, lifecycle, waiting)
        self.timeouts = timeouts = Timeouts(state, lifecycle)
        self.recovery = recovery = Recovery(state, lifecycle)
        self.results = results = Results(state, lifecycle, children, timeouts, recovery)
        self.stream = stream = StreamEvents(state, lifecycle, children, timeouts, results)
        self._handlers: dict[type, Callable[[Any, float], list[TaskAction]]] = {
            PartDelta: stream.on_delta,
            PartUpdated: stream.on_part,
            AssistantMessage: stream.on_assistant,
            UserMessage: stream.on_user,
            SessionStatus: stream.on_status,
            SessionIdle: stream.on_idle,
            SessionError: stream.on_session_error,
            SessionDeleted: stream.on_deleted,
            TimerFired: stream.on_timer,
            ChildCreated: results.on_child_created,
            ChildCreateFailed: results.on_child_create_failed,
            PromptAccepted: results.on_prompt_accepted,
            PromptRejected: results.on_prompt_rejected,
            AbortDone: results.on_abort_done,
            StatusPolled: results.on_polled,
            SessionLookup: results.on_lookup,
            DeliveryResult: results.on_delivery,
            ActivityRefreshed: results.on_refresh_result,
            ParentCompacted: results.on_compacted,
            PermissionPending: results.on_permission,
            Detached: recovery.on_detached,
            Attached: recovery.on_attached,
            HostRestarted: recovery.on_host_restarted,
            CatalogSeen: self._on_catalog,
        }

    # ------------------------------------------------------------------ the shared state, as before

    @property
    def config(self) -> Config:
        return self.state.config

    @config.setter
    def config(self, config: Config) -> None:
        self.state.config = config

    @property
    def settings(self) -> BackgroundTaskConfig:
        return self.state.settings

    @settings.setter
    def settings(self, settings: BackgroundTaskConfig) -> None:
        self.state.settings = settings

    @property
    def cooldowns(self) -> Cooldowns:
        return self.state.cooldowns

    @property
    def ids(self) -> IdSource:
        return self.state.ids

    @property
    def index(self) -> TaskIndex:
        return self.state.index

    @property
    def notifier(self) -> Notifier:
        return self.state.notifier

    @property
    def watches(self) -> dict[str, ChildWatch]:
        return self.state.watches

    # ------------------------------------------------------------------ queries

    def owns(self, session_id: str) -> bool:
        """True for the child session of any task: the session-level fallback leaves it alone (§10.6)."""
        return session_id in self.index.by_session

    def task(self, task_id: str) -> Task | None:
        return self.index.tasks.get(task_id)

    def is_live(self, task_id: str) -> bool:
        task = self.index.tasks.get(task_id)
        return task is not None and task.status in LIVE

    def snapshot(self, now: float, *, include_ended: bool = False) -> list[TaskView]:
        """Frozen rows for ``baton tasks``; ended tasks stay in the live view ``taskCleanupDelayMs``
        after their end and while their notification is undelivered (§16)."""
        positions = {tid: i for queue in self.index.queues.values() for i, tid in enumerate(queue, start=1)}
        keep = self.settings.task_cleanup_delay_ms / 1000
        rows = []
        for task in self.index.tasks.values():
            if not include_ended and task.status not in LIVE and task.notify is not NotifyState.PENDING and (
                task.ended_at is None or now - task.ended_at > keep
            ):
                continue
            rows.append(TaskView(
                id=task.id, parent_session_id=task.parent_session_id, session_id=task.session_id,
                description=task.description, agent=task.agent, category=task.category, model=task.model,
                status=task.status.value, mode=task.mode.value, age_s=now - task.created_at,
                queue_position=positions.get(task.id),
                end_reason=task.end_reason.value if task.end_reason else None, notify=task.notify.value,
                waiting_until=task.not_before if task.not_before is not None and task.not_before > now else None,
                run_s=None if task.started_at is None else (task.ended_at or now) - task.started_at,
            ))
        rows.sort(key=lambda v: v.age_s)
        return rows

    def prune(self, parent_session_id: str) -> list[TaskAction]:
        """Keep at most :data:`HISTORY_PER_PARENT` ended tasks per parent, oldest ended evicted first
        (§16). A task whose notification is still due, or that an open batch needs, stays."""
        ids = self.index.children.get(parent_session_id, ())
        ended = [t for tid in ids if (t := self.index.tasks[tid]).status not in LIVE]
        excess = len(ended) - HISTORY_PER_PARENT
        if excess <= 0:
            return []
        batch = self.index.batch.get(parent_session_id, {})
        evictable = sorted(
            (t for t in ended if t.notify is not NotifyState.PENDING and t.id not in batch),
            key=lambda t: t.ended_at or 0.0,
        )[:excess]
        for task in evictable:
            self.index.remove(task)
        return [ForgetTasks(tuple(t.id for t in evictable))] if evictable else []

    # ------------------------------------------------------------------ tool calls

    def launch(self, request: LaunchRequest, now: float) -> tuple[LaunchResult | ToolError, list[TaskAction]]:
        """``task``/``call_agent``: validate, resolve, check limits, insert, start if a slot is free (§5.1)."""
        if request.connected_providers is not None:
            self.state.connected = request.connected_providers  # a retry skips the same providers (§10.3)
        plan = plan_launch(self.config, self.cooldowns, self.index, request, now)
        if isinstance(plan, ToolError):
            return plan, []
        task_id = self.ids.task_id()
        while task_id in self.index.tasks:
            task_id = self.ids.task_id()
        continues = plan.continues
        task = Task(
            id=task_id, parent_session_id=request.parent_session_id, description=request.description.strip(),
            prompt=request.prompt, agent=plan.agent, model=plan.model, key=key_for(plan),
            queue_seq=self.index.next_seq(), queued_at=now,
            mode=Mode.BACKGROUND if request.background else Mode.FOREGROUND,
            parent_message_id=request.parent_message_id, root_session_id=plan.root_session_id, depth=plan.depth,
            category=plan.category, system=plan.system, tools=plan.tools, variant=plan.variant,
            chain=list(plan.chain), attempt=plan.attempt, attempts=[Attempt(plan.model or plan.agent)],
            session_id=continues.session_id if continues else None, continues=continues.id if continues else None,
            directory=request.directory or (continues.directory if continues else None),
            parent_agent=request.parent_agent, parent_model=request.parent_model,
            parent_variant=request.parent_variant, created_at=now,
        )
        self.index.add(task)
        self.state.notifier.ensure(task.parent_session_id, StatusType.BUSY)  # P is inside this very tool call
        actions: list[TaskAction] = []
        self.state.save(task, actions)
        actions.append(Note(task.parent_session_id, "task_launch",
                            f"task {task.id} launched ({task.agent} on {task.model or 'default model'})",
                            {"task": task.id, "key": task.key, "mode": task.mode.value}))
        if task.model is not None and (wait := self.waiting.reset_wait(task, now)) is not None:
            self.waiting.hold(task, wait.until, actions)  # every model cooling: wait for the first reset
            self.state.save(task, actions)
        self.lifecycle.grant(task.key, now, actions)
        self.state.arm_tick(now, actions)
        position = len(self.index.queues[task.key]) if task.status is TaskStatus.QUEUED else None  # the tail
        result = LaunchResult(task.id, task.status.value, task.mode is Mode.FOREGROUND, position, task.session_id,
                              task.model, texts.launch_text(task, position))
        actions += self.prune(request.parent_session_id)  # ends a foreground task reported itself
        return result, actions

    def cancel(self, request: CancelRequest, now: float) -> tuple[CancelReport | ToolError, list[TaskAction]]:
        """``background_cancel`` / ``baton tasks cancel`` (§14.4); descendants follow via the cascade."""
        if (request.task_id is None) == (not request.all):
            return ToolError("[baton] Give exactly one of task_id and all=true."), []
        caller = request.caller_session_id
        if request.by == "parent" and caller is None:
            return ToolError("[baton] The calling session is unknown, so nothing can be cancelled."), []
        reason = EndReason.CANCELLED_BY_USER if request.by == "user" else EndReason.CANCELLED_BY_PARENT
        if request.task_id is not None:
            task = self.index.tasks.get(request.task_id)
            if task is None or (request.by == "parent" and not self._in_scope(task, caller)):
                return ToolError(texts.unknown_task(request.task_id)), []
            if task.status not in LIVE:
                return ToolError(texts.ended_error(task)), []
            targets = [task]
        elif caller is not None:
            targets = self.index.live_children(caller)
        else:
            targets = [t for t in self.index.tasks.values() if t.status in LIVE]
        actions: list[TaskAction] = []
        previous: dict[str, TaskStatus] = {}
        # The waiting ones first: ending a running target frees its slot, which must not go to a
        # queued target about to be cancelled too (it would get a child created for nothing).
        for task in sorted(targets, key=lambda t: t.status not in WAITING):
            if task.status in LIVE:
                previous[task.id] = task.status
                self.lifecycle.end(task, TaskEvent.CANCEL, reason, now, actions)
        done = [(task, previous[task.id]) for task in targets if task.id in previous]
        descendants = sum(t.cascaded for t, _ in done)
        report = CancelReport(
            tuple(CancelledTask(t.id, t.description, p.value, t.session_id) for t, p in done), descendants,
            texts.cancel_report(done, descendants),
        )
        return report, actions

    def output(self, task_id: str, caller: str | None, now: float, *, waited_out: bool = False) -> str | ToolError:
        """``background_output`` text (§14.3); ``caller`` None = no scope (CLI). Ended tasks: idempotent."""
        task = self.index.tasks.get(task_id)
        if task is None or (caller is not None and not self._in_scope(task, caller)):
            return ToolError(texts.unknown_task(task_id))
        return texts.output_text(task, self.index.position(task), now, waited_out)

    def foreground_result(self, task_id: str, now: float) -> tuple[str | ToolError | None, list[TaskAction]]:
        """For a waiting foreground call: None while live; else the answer (or error), and no notification."""
        task = self.index.tasks.get(task_id)
        if task is None:
            return ToolError(texts.unknown_task(task_id)), []
        if task.status in LIVE:
            return None, []
        actions: list[TaskAction] = []
        if task.mode is Mode.FOREGROUND and task.notify is NotifyState.NONE:
            task.notify = NotifyState.SUPPRESSED
            self.state.save(task, actions)
        if task.status is TaskStatus.COMPLETED:
            return texts.foreground_answer(task), actions
        return ToolError(texts.foreground_failure(task)), actions

    def to_background(self, task_id: str, now: float) -> tuple[str | ToolError, list[TaskAction]]:
        """The foreground budget is spent (or baton stops): the task goes on as a background task (§14.2.3)."""
        task = self.index.tasks.get(task_id)
        if task is None:
            return ToolError(texts.unknown_task(task_id)), []
        actions: list[TaskAction] = []
        self.recovery.make_background(task, now, actions)
        return texts.foreground_backgrounded(task), actions

    def _in_scope(self, task: Task, caller: str | None) -> bool:
        """The caller is the task's parent or an ancestor of it (§14.4 rule 1)."""
        current: Task | None = task
        for _ in range(64):
            if current is None:
                return False
            if current.parent_session_id == caller:
                return True
            current = self.index.task_on(current.parent_session_id)
        return False

    # ------------------------------------------------------------------ events

    def resume(self, now: float) -> list[TaskAction]:
        """Call once after constructing from stored rows, when the engine is attached (§15.2-4)."""
        return self.recovery.resume(now)

    def _on_catalog(self, event: CatalogSeen, now: float) -> list[TaskAction]:
        self.state.catalog = event.catalog
        if event.catalog.connected is not None:
            self.state.connected = event.catalog.connected
        return []

    def handle(self, event: SchedulerEvent, now: float) -> list[TaskAction]:
        """Feed one event; return what the engine must do, saves first. Cheap for stream events."""
        handler = self._handlers.get(type(event))
        if handler is None:
            return []
        actions = handler(event, now)
        if isinstance(event, DeliveryResult):
            # A delivered notification is what makes an ended task forgettable.
            actions += self.prune(event.parent_session_id)
        return actions
