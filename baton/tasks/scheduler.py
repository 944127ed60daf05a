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
  Failures go through the shared error classifier and cooldowns: retryable ones re-queue the
  task on the next chain model, same session, same anchor (§10). Timeouts run from the last
  activity and end a task only once its child's abort is confirmed (§9).
* The end procedure runs exactly once per task (:meth:`Lifecycle._end`): status, freed slot
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

Nothing here performs I/O, reads a clock, sleeps, or imports an async or HTTP library.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from baton.actions import Note
from baton.cooldowns import Cooldowns
from baton.events import (
    COMPACTION_AGENT,
    AssistantMessage,
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
from baton.fallback.errors import ErrorType, classify_error
from baton.models import same_model
from baton.settings import Config
from baton.tasks import texts
from baton.tasks.actions import ForgetTasks, TaskAction
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
from baton.tasks.lifecycle import TICK_KEY
from baton.tasks.model import (
    LIVE,
    Attempt,
    EndReason,
    Mode,
    NotifyState,
    OutboxRow,
    Task,
    TaskEvent,
    TaskStatus,
)
from baton.tasks.notify import deliver_timer
from baton.tasks.results import Results
from baton.tasks.transient import host_retry_timer

# Ended tasks kept per parent for background_output and `baton tasks --all` (spec §16).
HISTORY_PER_PARENT = 100
HOST_RETRY_PREFIX = host_retry_timer("")

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


class Scheduler(Results):
    """Background tasks for every parent session, from launch to the parent's notification."""

    def __init__(
        self,
        config: Config,
        cooldowns: Cooldowns,
        tasks: Iterable[Task] = (),
        outbox: Iterable[OutboxRow] = (),
        *,
        ids: IdSource | None = None,
    ) -> None:
        super().__init__(config, cooldowns, list(tasks), list(outbox), ids or IdSource())
        self._handlers: dict[type, Callable[[Any, float], list[TaskAction]]] = {
            PartDelta: self._on_delta,
            PartUpdated: self._on_part,
            AssistantMessage: self._on_assistant,
            UserMessage: self._on_user,
            SessionStatus: self._on_status,
            SessionIdle: self._on_idle,
            SessionError: self._on_session_error,
            SessionDeleted: self._on_deleted,
            TimerFired: self._on_timer,
            ChildCreated: self._on_child_created,
            ChildCreateFailed: self._on_child_create_failed,
            PromptAccepted: self._on_prompt_accepted,
            PromptRejected: self._on_prompt_rejected,
            AbortDone: self._on_abort_done,
            StatusPolled: self._on_polled,
            SessionLookup: self._on_lookup,
            DeliveryResult: self._on_delivery,
            ActivityRefreshed: self._on_refresh_result,
            ParentCompacted: self._on_compacted,
            PermissionPending: self._on_permission,
            Detached: self._on_detached,
            Attached: self._on_attached,
            HostRestarted: self._on_host_restarted,
        }

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
            parent_agent=request.parent_agent, parent_model=request.parent_model, created_at=now,
        )
        self.index.add(task)
        self.notifier.ensure(task.parent_session_id, StatusType.BUSY)  # P is inside this very tool call
        actions: list[TaskAction] = []
        self._save(task, actions)
        actions.append(Note(task.parent_session_id, "task_launch",
                            f"task {task.id} launched ({task.agent} on {task.model or 'default model'})",
                            {"task": task.id, "key": task.key, "mode": task.mode.value}))
        self._grant(task.key, now, actions)
        self._arm_tick(now, actions)
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
        done: list[tuple[Task, TaskStatus]] = []
        for task in targets:
            if task.status in LIVE:
                previous = task.status
                self._end(task, TaskEvent.CANCEL, reason, now, actions)
                done.append((task, previous))
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
            self._save(task, actions)
        if task.status is TaskStatus.COMPLETED:
            return texts.foreground_answer(task), actions
        return ToolError(texts.foreground_failure(task)), actions

    def to_background(self, task_id: str, now: float) -> tuple[str | ToolError, list[TaskAction]]:
        """The foreground budget is spent (or baton stops): the task goes on as a background task (§14.2.3)."""
        task = self.index.tasks.get(task_id)
        if task is None:
            return ToolError(texts.unknown_task(task_id)), []
        actions: list[TaskAction] = []
        self._make_background(task, now, actions)
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

    def _on_delta(self, event: PartDelta, now: float) -> list[TaskAction]:
        task = self._running_child(event.session_id)
        if task is not None:
            self._activity(task, now)
            self._watch(task).on_delta(event)
        return []

    def _on_part(self, event: PartUpdated, now: float) -> list[TaskAction]:
        task = self._running_child(event.session_id)
        if task is None:
            return []
        self._activity(task, now)
        watch = self._watch(task)
        if event.type == "text":
            watch.on_text(event, task.anchor_message_id)
            return []
        if event.type != "tool":
            return []
        new, signed = watch.on_tool(event)
        if new:
            task.tool_calls += 1
            tool = event.part.get("tool")
            task.last_tool = tool if isinstance(tool, str) else task.last_tool
        if task.status is not TaskStatus.RUNNING or task.stop_reason is not None:
            return []
        breaker = self.settings.circuit_breaker
        cap = self.settings.tool_call_cap
        actions: list[TaskAction] = []
        if new and cap is not None and task.tool_calls > cap:
            self._stop(task, EndReason.RUNAWAY, f"{task.tool_calls} tool calls, over the cap of {cap}", now, actions)
        elif signed and breaker.enabled and watch.same_calls >= breaker.consecutive_threshold:
            self._stop(task, EndReason.RUNAWAY, f"{watch.same_calls} identical {task.last_tool} calls in a row",
                       now, actions)
        return actions

    def _on_assistant(self, event: AssistantMessage, now: float) -> list[TaskAction]:
        actions: list[TaskAction] = []
        task = self._running_child(event.session_id)
        if task is not None:
            self._activity(task, now)
            watch = self._watch(task)
            newest = watch.on_assistant(event, task.anchor_message_id)
            stale = event.model is not None and task.model is not None and not same_model(event.model, task.model)
            if task.status is TaskStatus.STARTING and newest and not stale and task.anchor_message_id is not None \
                    and task.id not in self._prompt_after_abort:
                self._started(task, now, actions)  # the answer proves the prompt was accepted
            if event.error is not None and newest and not stale:
                self._failure(task, event.error, now, actions)
            elif newest and event.completed:
                self._check_complete(task, now, actions)
        parent = self.notifier.parents.get(event.session_id)
        if parent is not None and event.agent != COMPACTION_AGENT:
            parent.agent = event.agent or parent.agent
            parent.model = event.model or parent.model
            if event.error is not None and classify_error(event.error).type is ErrorType.ABORT:
                parent.user_aborted_at = now
        return actions

    def _on_user(self, event: UserMessage, now: float) -> list[TaskAction]:
        if event.agent == COMPACTION_AGENT:
            return []
        own = self.index.task_on(event.session_id)
        if own is not None and own.anchor_message_id == event.message_id:
            return []  # baton's own prompt to this child
        actions: list[TaskAction] = []
        self.notifier.on_user(event.session_id, event.message_id, event.agent, event.model, now, actions)
        return actions

    def _on_status(self, event: SessionStatus, now: float) -> list[TaskAction]:
        actions: list[TaskAction] = []
        task = self._running_child(event.session_id)
        if task is not None:
            self._child_status(task, event.type, now, actions, event.message)
        self.notifier.on_status(event.session_id, event.type, now, actions)
        return actions

    def _on_idle(self, event: SessionIdle, now: float) -> list[TaskAction]:
        return self._on_status(SessionStatus(event.session_id, StatusType.IDLE), now)

    def _on_session_error(self, event: SessionError, now: float) -> list[TaskAction]:
        task = self._running_child(event.session_id) if event.session_id is not None else None
        actions: list[TaskAction] = []
        if task is not None:
            self._failure(task, event.error, now, actions)
        return actions

    def _on_deleted(self, event: SessionDeleted, now: float) -> list[TaskAction]:
        actions: list[TaskAction] = []
        sid = event.session_id
        task = self.index.live_on(sid)
        if task is not None:
            if task.status is TaskStatus.RUNNING and task.stop_reason is not None:
                self._end(task, TaskEvent.TIMEOUT, task.stop_reason, now, actions)
            else:
                self._end(task, TaskEvent.CANCEL, EndReason.CHILD_DELETED, now, actions)
        for child in self.index.live_children(sid):
            self._end(child, TaskEvent.CANCEL, EndReason.PARENT_DELETED, now, actions)
        self.notifier.drop(sid, actions)
        return actions

    def _on_timer(self, event: TimerFired, now: float) -> list[TaskAction]:
        if event.key == TICK_KEY:
            return self._tick(now)
        if event.key.startswith(HOST_RETRY_PREFIX):
            return self._on_host_retry(event.key[len(HOST_RETRY_PREFIX):], now)
        prefix = deliver_timer("")
        if event.key.startswith(prefix):
            parent = self.notifier.parents.get(event.key[len(prefix):])
            if parent is not None:
                parent.timer_at = None
                actions: list[TaskAction] = []
                self.notifier.pump(parent.id, now, actions)
                return actions
        return []
