"""The task lifecycle: grants, starts, the end procedure, child events, fallback and timeouts.

This is the engine room of :class:`baton.tasks.scheduler.Scheduler` (which adds the public
methods and the event dispatch); see that module for the theory of operation. Every method
appends to an ``actions`` list and never performs I/O.
"""

from __future__ import annotations

from baton.actions import Note, SaveCooldown, Schedule, Toast
from baton.cooldowns import Cooldowns
from baton.events import StatusType
from baton.fallback.errors import ErrorType, classify_error, retry_after_ms
from baton.models import same_model
from baton.settings import Config
from baton.tasks import texts
from baton.tasks.actions import (
    AbortChild,
    CreateChild,
    PollStatus,
    PromptChild,
    RefreshActivity,
    SaveOutbox,
    SaveTask,
    TaskAction,
)
from baton.tasks.ids import IdSource
from baton.tasks.model import (
    LIVE,
    SILENT_REASONS,
    SLOT_HOLDING,
    Attempt,
    EndReason,
    Mode,
    NotifyState,
    OutboxRow,
    RowKind,
    Task,
    TaskEvent,
    TaskStatus,
)
from baton.tasks.notify import Notifier
from baton.tasks.queues import TaskIndex, concurrency_key
from baton.tasks.transient import HostRetry, host_retry_timer
from baton.tasks.watch import ChildWatch

__all__ = ["ABORT_TRIES", "OWN_ABORT_GRACE_S", "TICK_KEY", "TICK_S", "Lifecycle", "child_title"]

TICK_S = 3.0
"""Backup status poll and timeout check period, only while a task starts or runs (§3 fixed values)."""
TICK_KEY = "tasks:tick"
OWN_ABORT_GRACE_S = 5.0
"""An abort error this soon after baton's own abort is baton's, not the user's."""
ABORT_TRIES = 3
"""Aborts of an ended task's child are tried this often (best effort)."""
_ABORT_AFTER_END = frozenset({EndReason.COMPLETED, EndReason.CANCELLED_BY_PARENT, EndReason.CANCELLED_BY_USER,
                              EndReason.PARENT_DELETED, EndReason.ANCESTOR_ENDED})
_SILENT_CLOSE = "silent"
"""``batch_closed`` of a batch that ended without anything to wake P for."""


def child_title(task: Task) -> str:
    """Names the work and the agent, and holds the task id so a restart can adopt the child (§6.2, §15.3)."""
    return f"{task.description[:80]} ({task.agent}) [{task.id}]"


class Lifecycle:
    """State shared by the whole scheduler plus the transitions' side effects."""

    def __init__(self, config: Config, cooldowns: Cooldowns, tasks: list[Task], rows: list[OutboxRow],
                 ids: IdSource) -> None:
        self.config = config
        self.settings = config.background_task
        self.cooldowns = cooldowns
        self.ids = ids
        self.index = TaskIndex(self.settings, tasks)
        self.watches: dict[str, ChildWatch] = {}
        self.notifier = Notifier(self.index, ids, self._request_poll, self._wake_child, rows)
        for parent in self.index.live_by_parent:  # follow their readiness from the first event on
            self.notifier.ensure(parent)
        self._tick_at: float | None = None
        self._poll_in_flight = False
        self._aborting: set[str] = set()
        self._prompt_after_abort: set[str] = set()
        self._abort_tries: dict[str, int] = {}
        self._host_retries: dict[str, HostRetry] = {}
        self._sent_prompts: dict[str, PromptChild] = {}  # the newest prompt of a starting task
        self._dirty: set[str] = set()
        self._detached_at: float | None = None

    # ------------------------------------------------------------------ helpers

    def _watch(self, task: Task) -> ChildWatch:
        watch = self.watches.get(task.id)
        if watch is None:
            watch = self.watches[task.id] = ChildWatch()
        return watch

    def _save(self, task: Task, actions: list[TaskAction]) -> None:
        self._dirty.discard(task.id)
        actions.append(SaveTask(task.id, task.to_row()))

    def _request_poll(self, actions: list[TaskAction]) -> None:
        if not self._poll_in_flight:
            self._poll_in_flight = True
            actions.append(PollStatus())

    def _arm_tick(self, now: float, actions: list[TaskAction]) -> None:
        if self._tick_at is None and self._detached_at is None and (self.index.slot_holders or self._abort_tries):
            self._tick_at = now + TICK_S
            actions.append(Schedule(TICK_KEY, self._tick_at))

    def _activity(self, task: Task, now: float) -> None:
        task.last_activity_at = now
        self._dirty.add(task.id)
        self.index.key_progress[task.key] = now

    def _abort(self, task: Task, now: float, actions: list[TaskAction]) -> None:
        if task.session_id is None:
            return
        self._aborting.add(task.id)
        self._watch(task).own_abort_until = now + OWN_ABORT_GRACE_S
        actions.append(AbortChild(task.id, task.session_id, task.directory))

    # ------------------------------------------------------------------ grants and starts (§5.4, §6)

    def _grant(self, key: str, now: float, actions: list[TaskAction]) -> None:
        """Give free slots of ``key`` to its queue head(s), in this very step (§5.4 rule 2)."""
        index = self.index
        while (head := index.head(key)) is not None and index.has_slot(key):
            index.move(head, TaskEvent.GRANT)
            index.key_progress[key] = now
            self._save(head, actions)
            self._start(head, now, actions)

    def _start(self, task: Task, now: float, actions: list[TaskAction]) -> None:
        if task.session_id is None:
            actions.append(CreateChild(task.id, task.parent_session_id, child_title(task), task.directory))
        elif task.id in self._aborting:
            self._prompt_after_abort.add(task.id)  # the retry's abort must land before the new prompt
        else:
            self._prompt(task, now, actions)

    def _prompt(self, task: Task, now: float, actions: list[TaskAction], *, only_if_absent: bool = False) -> None:
        assert task.session_id is not None
        if task.anchor_message_id is None:
            task.anchor_message_id = self.ids.message_id(now)
            self._save(task, actions)
        self._watch(task).new_turn()
        prompt = PromptChild(
            task_id=task.id, attempt=task.attempt, session_id=task.session_id,
            message_id=task.anchor_message_id, agent=task.agent, model=task.model, variant=task.variant,
            system=task.system, tools=dict(task.tools), text=task.anchor_text or task.prompt, directory=task.directory,
            only_if_absent=only_if_absent,
        )
        self._sent_prompts[task.id] = prompt
        actions.append(prompt)

    def _retry_host_call(self, task: Task, what: str, error: str, now: float, actions: list[TaskAction], *,
                         prompt: PromptChild | None = None) -> bool:
        """Schedule another try of a call that failed for a passing reason; False once the budget is spent."""
        retry = self._host_retries.get(task.id)
        if retry is None:
            retry = self._host_retries[task.id] = HostRetry(first_at=now)
        delay = retry.next_delay(now)
        if delay is None:
            return False
        retry.delay, retry.prompt = delay, prompt
        actions.append(Schedule(host_retry_timer(task.id), now + delay))
        actions.append(Note(task.parent_session_id, "task_host_retry",
                            f"task {task.id}: {what} failed ({error[:200]}); opencode may be restarting, "
                            f"trying again in {delay:g}s (call {retry.calls + 1})",
                            {"task": task.id, "call": retry.calls + 1, "delay": delay}))
        return True

    def _host_gave_up(self, task: Task, error: str, now: float) -> str:
        """The error a task ends with: the last failure, and the retries spent on it."""
        retry = self._host_retries.pop(task.id, None)
        if retry is None or retry.calls <= 1:
            return error
        return f"{error} (gave up after {retry.calls} calls over {texts.duration(now - retry.first_at)})"

    def _started(self, task: Task, now: float, actions: list[TaskAction]) -> None:
        self.index.move(task, TaskEvent.STARTED)
        task.started_at = task.started_at if task.started_at is not None else now
        task.attempts[-1].started_at = now
        self._activity(task, now)
        self._save(task, actions)
        watch = self._watch(task)
        early, watch.early_error = watch.early_error, None
        if early is not None:
            self._failure(task, early, now, actions)
        self._check_complete(task, now, actions)
        self._arm_tick(now, actions)

    def _wake_child(self, session_id: str, message_id: str, text: str, now: float,
                    actions: list[TaskAction]) -> None:
        """A waking notification to a task's child is that child's new anchor (§8.3)."""
        task = self.index.live_on(session_id)
        if task is not None:
            task.anchor_message_id = message_id
            task.anchor_text = text
            self._watch(task).new_turn()
            self._save(task, actions)

    # ------------------------------------------------------------------ completion and the end (§8, §11)

    def _check_complete(self, task: Task, now: float, actions: list[TaskAction]) -> None:
        """Idle + visible answer + quiescent, observed in any order (§8)."""
        if task.status is not TaskStatus.RUNNING or task.stop_reason is not None:
            return
        watch = self.watches.get(task.id)
        if watch is None or not watch.idle_seen or not watch.answered:
            return
        session = task.session_id
        if session is None or session in self.index.live_by_parent or self.notifier.pending_for(session):
            return
        self._end(task, TaskEvent.COMPLETE, EndReason.COMPLETED, now, actions)

    def _end(self, task: Task, event: TaskEvent, reason: EndReason, now: float, actions: list[TaskAction],
             error: str | None = None) -> None:
        """The end procedure, once per task: status, slot, cascade, outbox row, then I/O (§11)."""
        if task.status not in LIVE:
            return
        held = task.status in SLOT_HOLDING
        watch = self.watches.pop(task.id, None)
        self._prompt_after_abort.discard(task.id)
        self._host_retries.pop(task.id, None)
        self._sent_prompts.pop(task.id, None)
        self.index.move(task, event)
        task.end_reason, task.stop_reason, task.ended_at = reason, None, now
        if error is not None:
            task.error = error
        if watch is not None and (text := watch.result_text()) is not None:
            task.result = text
        if task.attempts and task.attempts[-1].ended_at is None:
            task.attempts[-1].ended_at = now
            task.attempts[-1].error = task.error if reason is not EndReason.COMPLETED else None
        if reason is not EndReason.COMPLETED and task.session_id is not None:
            for child in self.index.live_children(task.session_id):
                self._end(child, TaskEvent.CANCEL, EndReason.ANCESTOR_ENDED, now, actions)
                task.cascaded += 1 + child.cascaded
        row = self._notification_row(task, now, actions)
        self._save(task, actions)
        if row is not None:
            self.notifier.add(row, now)
            actions.append(SaveOutbox((row.to_row(),)))
        if held:
            self._grant(task.key, now, actions)
        if held and reason in _ABORT_AFTER_END and task.id not in self._aborting:
            self._abort(task, now, actions)
            if task.session_id is not None:
                self._abort_tries[task.id] = 1
        actions.append(Note(task.parent_session_id, "task_end", f"task {task.id} {texts.outcome(task)}",
                            {"task": task.id, "status": task.status.value, "reason": reason.value}))
        if task.mode is Mode.BACKGROUND and reason not in SILENT_REASONS:
            variant = "success" if reason is EndReason.COMPLETED else "warning"
            actions.append(Toast("baton: background task", f"{task.description[:60]}: {task.status.value}", variant,
                                 task.directory))
        parent = task.parent_session_id
        if row is not None:
            self.notifier.pump(parent, now, actions)
        if (above := self.index.live_on(parent)) is not None:
            self._check_complete(above, now, actions)
        self.notifier.forget_if_idle(parent)

    def _notification_row(self, task: Task, now: float, actions: list[TaskAction]) -> OutboxRow | None:
        """Decide ``notify`` and build the outbox row, waking when nothing is left outstanding (§12.1-2)."""
        parent = task.parent_session_id
        if task.end_reason in SILENT_REASONS:
            task.notify = NotifyState.SUPPRESSED
        elif task.mode is Mode.FOREGROUND:
            return None  # the waiting tool call is the delivery; NONE until it returns
        row = None
        if task.notify is not NotifyState.SUPPRESSED:
            task.notify = NotifyState.PENDING
            row = OutboxRow(f"nt_{task.id}", parent, RowKind.END, self.notifier.next_seq(), now, task_id=task.id)
        if task.mode is not Mode.BACKGROUND or self.index.outstanding_count(parent):
            return row
        batch = self.index.batch_of(parent)
        if any(t.end_reason not in SILENT_REASONS for t in batch):
            if row is not None:
                row.waking = True
            elif not self.notifier.has_waking(parent):
                row = OutboxRow(f"nw_{self.notifier.seq + 1}_{task.id}", parent, RowKind.SUMMARY,
                                self.notifier.next_seq(), now, waking=True)
            return row
        for member in batch:  # only tasks P cancelled itself (or silent ends): no wake (§12.2.3)
            member.batch_closed = _SILENT_CLOSE
            self.index.unbatch(member)
            if member is not task:
                self._save(member, actions)
        return row

    # ------------------------------------------------------------------ child status (§7, §8)

    def _child_status(self, task: Task, status: StatusType, now: float, actions: list[TaskAction],
                      retry_message: str = "") -> None:
        watch = self._watch(task)
        if watch.set_status(status):
            self._activity(task, now)
        if task.status is not TaskStatus.RUNNING:
            return
        if status is StatusType.RETRY and retry_message:
            self._failure(task, retry_message, now, actions, signal=True)
        elif status is StatusType.IDLE:
            if task.stop_reason is not None:
                self._end(task, TaskEvent.TIMEOUT, task.stop_reason, now, actions)
            else:
                self._check_complete(task, now, actions)

    # ------------------------------------------------------------------ failures and fallback (§10)

    def _failure(self, task: Task, error: object, now: float, actions: list[TaskAction], *,
                 signal: bool = False) -> None:
        """One decision per failure signal of a running child; ``signal`` = a retry status."""
        watch = self._watch(task)
        if task.status is TaskStatus.STARTING and not signal:
            watch.early_error = error  # decided once the prompt is known to be accepted
            return
        if task.status is not TaskStatus.RUNNING or task.stop_reason is not None:
            return
        rf = self.config.runtime_fallback
        info = classify_error(error, rf.retry_on_errors)
        message = info.message[:500] or "unknown error"
        if info.type is ErrorType.ABORT:
            if watch.own_abort_until <= now and not signal:
                self._end(task, TaskEvent.CANCEL, EndReason.CHILD_ABORTED, now, actions, error=message)
            return
        if not info.retryable:
            if not signal:
                self._end(task, TaskEvent.FAIL, EndReason.ERROR, now, actions, error=message)
            return
        if task.model is not None and rf.cooldown_seconds > 0:
            header_ms = retry_after_ms(error, int(now * 1000))
            until = header_ms / 1000.0 if header_ms is not None else now + rf.cooldown_seconds
            if self.cooldowns.extend(task.model, until):
                actions.append(SaveCooldown(task.model, until, message[:200]))
        choice = self._next_model(task, now)
        if choice is None:
            # A retry status without a next model leaves opencode's own retry running; a turn
            # that ended in error fails the task.
            if not signal:
                self._end(task, TaskEvent.FAIL, EndReason.CHAIN_EXHAUSTED, now, actions, error=message)
            return
        self._retry(task, choice, message, now, actions)

    def _next_model(self, task: Task, now: float) -> int | None:
        """Next chain entry: not the failing model, not cooling, within the attempt budget (§10.3)."""
        rf = self.config.runtime_fallback
        if not rf.enabled or len(task.attempts) - 1 >= rf.max_fallback_attempts:
            return None
        for i in range(task.attempt + 1, len(task.chain)):
            model = task.chain[i]
            if same_model(model, task.model):
                continue
            if rf.cooldown_seconds > 0 and self.cooldowns.is_cooling(model, now):
                continue
            return i
        return None

    def _retry(self, task: Task, choice: int, reason: str, now: float, actions: list[TaskAction]) -> None:
        """Abort, free the slot, re-queue at the new key's tail; same session and anchor (§10.4)."""
        old_key, old_model = task.key, task.model
        task.attempts[-1].ended_at = now
        task.attempts[-1].error = reason
        self._abort(task, now, actions)
        model = task.chain[choice]
        self.index.move(task, TaskEvent.RETRY, requeue=(concurrency_key(model, task.agent), now))
        task.model, task.attempt, task.variant = model, choice, None
        task.attempts.append(Attempt(model))
        self._save(task, actions)
        actions.append(Note(task.parent_session_id, "task_retry",
                            f"task {task.id}: {old_model} failed ({reason[:200]}); queued again on {model}",
                            {"task": task.id, "from": old_model, "to": model}))
        self._grant(old_key, now, actions)
        self._grant(task.key, now, actions)

    # ------------------------------------------------------------------ timeouts (§9)

    def _stop(self, task: Task, reason: EndReason, detail: str, now: float, actions: list[TaskAction]) -> None:
        """Decide a timeout; the end is recorded once the abort is confirmed (§9 rule 5)."""
        task.stop_reason, task.error = reason, detail
        self._save(task, actions)
        actions.append(Note(task.parent_session_id, "task_timeout", f"task {task.id}: {detail}; stopping it",
                            {"task": task.id, "reason": reason.value}))
        self._abort(task, now, actions)

    def _check_running(self, task: Task, now: float, actions: list[TaskAction]) -> None:
        """T1/T2 for one running task, from its last activity; paused while it has live tasks (§9)."""
        watch = self._watch(task)
        if task.stop_reason is not None:
            if task.id not in self._aborting:
                self._abort(task, now, actions)  # the previous abort failed: try again
            return
        if task.session_id in self.index.live_by_parent or (watch.working and watch.permission):
            self._activity(task, now)
            return
        quiet = now - (task.last_activity_at if task.last_activity_at is not None else now)
        s = self.settings
        if watch.working:
            if quiet > s.message_staleness_timeout_ms / 1000 and not watch.refreshing and task.session_id:
                watch.refreshing = True
                actions.append(RefreshActivity(task.id, task.session_id, task.directory))
        elif quiet > s.stale_timeout_ms / 1000:
            self._stop(task, EndReason.STALE, f"no activity for {texts.duration(quiet)}", now, actions)

    def _on_refreshed(self, task: Task, at: float | None, now: float, actions: list[TaskAction]) -> None:
        watch = self._watch(task)
        watch.refreshing = False
        if at is None or task.status is not TaskStatus.RUNNING or task.stop_reason is not None:
            return
        if task.last_activity_at is None or at > task.last_activity_at:
            task.last_activity_at = min(at, now)
            self._dirty.add(task.id)
        quiet = now - (task.last_activity_at or now)
        if watch.working and quiet > self.settings.message_staleness_timeout_ms / 1000:
            self._stop(task, EndReason.NO_PROGRESS, f"busy without progress for {texts.duration(quiet)}",
                       now, actions)

    def _check_queues(self, now: float, actions: list[TaskAction]) -> None:
        """T3 backstop: a waiting task whose key made no progress for ``taskTtlMs`` (§9)."""
        ttl = self.settings.task_ttl_ms / 1000
        for key in list(self.index.queues):
            progress = self.index.key_progress.get(key, float("-inf"))
            while (head := self.index.head(key)) is not None and now - max(head.queued_at, progress) > ttl:
                self._end(head, TaskEvent.QUEUE_TIMEOUT, EndReason.QUEUE_STUCK, now, actions,
                          error=f"no slot of {key} was granted or used for {texts.duration(now - progress)}")

    def _tick(self, now: float) -> list[TaskAction]:
        self._tick_at = None
        actions: list[TaskAction] = []
        if self._detached_at is not None:
            return actions
        for tid in list(self.index.slot_holders):
            task = self.index.tasks[tid]
            if task.status is TaskStatus.RUNNING:
                self._check_running(task, now, actions)
        for tid, tries in list(self._abort_tries.items()):
            task = self.index.tasks[tid]
            if tid in self._aborting:
                continue
            if tries >= ABORT_TRIES or task.session_id is None:
                del self._abort_tries[tid]
                continue
            self._abort_tries[tid] = tries + 1
            self._abort(task, now, actions)
        self._check_queues(now, actions)
        for tid in sorted(self._dirty):
            task = self.index.tasks[tid]
            if task.status in LIVE:
                actions.append(SaveTask(task.id, task.to_row()))
        self._dirty.clear()
        if self.index.slot_holders:
            self._request_poll(actions)
        self._arm_tick(now, actions)
        return actions
