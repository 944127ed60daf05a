"""The task lifecycle: grants, starts, and the end procedure (spec §5.4, §6, §8, §11).

One of the scheduler's parts (:mod:`baton.tasks.scheduler` has the theory of operation): it
moves tasks along :data:`baton.tasks.model.TRANSITIONS` — a free slot granted to the queue head,
the child created and prompted, completion recognised, and the end procedure run exactly once
per task. It works on the shared :class:`baton.tasks.state.SchedulerState`, appends to an
``actions`` list and never performs I/O. What a child reports (and the fallback) is
:mod:`baton.tasks.children`, timeouts are :mod:`baton.tasks.timeouts`.
"""

from __future__ import annotations

from baton.actions import Note, Schedule, Toast
from baton.tasks import texts
from baton.tasks.actions import CreateChild, PromptChild, SaveOutbox, TaskAction
from baton.tasks.model import (
    LIVE,
    SILENT_REASONS,
    SLOT_HOLDING,
    EndReason,
    Mode,
    NotifyState,
    OutboxRow,
    RowKind,
    Task,
    TaskEvent,
    TaskStatus,
)
from baton.tasks.state import OWN_ABORT_GRACE_S, TICK_KEY, TICK_S, SchedulerState
from baton.tasks.transient import HostRetry, host_retry_timer

__all__ = ["ABORT_TRIES", "OWN_ABORT_GRACE_S", "TICK_KEY", "TICK_S", "Lifecycle", "child_title"]

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
    """Grants, starts and ends: the transitions' side effects, over the shared state."""

    def __init__(self, state: SchedulerState) -> None:
        self.state = state
        self.index = state.index  # the same objects for the scheduler's whole life
        self.notifier = state.notifier

    # ------------------------------------------------------------------ grants and starts (§5.4, §6)

    def grant(self, key: str, now: float, actions: list[TaskAction]) -> None:
        """Give free slots of ``key`` to its queue head(s), in this very step (§5.4 rule 2)."""
        index = self.index
        while (head := index.head(key)) is not None and index.has_slot(key):
            if head.not_before is not None:
                if head.not_before > now:
                    break  # its chain is cooling: it waits for the reset (and the key with it)
                head.not_before = None
            index.move(head, TaskEvent.GRANT)
            index.key_progress[key] = now
            self.state.save(head, actions)
            self.start(head, now, actions)

    def start(self, task: Task, now: float, actions: list[TaskAction]) -> None:
        if task.session_id is None:
            actions.append(CreateChild(task.id, task.parent_session_id, child_title(task), task.directory))
        elif task.id in self.state.aborting:
            self.state.prompt_after_abort.add(task.id)  # the retry's abort must land before the new prompt
        else:
            self.prompt(task, now, actions)

    def prompt(self, task: Task, now: float, actions: list[TaskAction], *, only_if_absent: bool = False) -> None:
        assert task.session_id is not None
        if task.anchor_message_id is None:
            task.anchor_message_id = self.state.ids.message_id(now)
            self.state.save(task, actions)
        self.state.watch(task).new_turn()
        prompt = PromptChild(
            task_id=task.id, attempt=task.attempt, session_id=task.session_id,
            message_id=task.anchor_message_id, agent=task.agent, model=task.model, variant=task.variant,
            system=task.system, tools=dict(task.tools), text=task.anchor_text or task.prompt, directory=task.directory,
            only_if_absent=only_if_absent,
        )
        self.state.sent_prompts[task.id] = prompt
        actions.append(prompt)

    def retry_host_call(self, task: Task, what: str, error: str, now: float, actions: list[TaskAction], *,
                        prompt: PromptChild | None = None) -> bool:
        """Schedule another try of a call that failed for a passing reason; False once the budget is spent."""
        retry = self.state.host_retries.get(task.id)
        if retry is None:
            retry = self.state.host_retries[task.id] = HostRetry(first_at=now)
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

    def host_gave_up(self, task: Task, error: str, now: float) -> str:
        """The error a task ends with: the last failure, and the retries spent on it."""
        retry = self.state.host_retries.pop(task.id, None)
        if retry is None or retry.calls <= 1:
            return error
        return f"{error} (gave up after {retry.calls} calls over {texts.duration(now - retry.first_at)})"

    # ------------------------------------------------------------------ completion and the end (§8, §11)

    def check_complete(self, task: Task, now: float, actions: list[TaskAction]) -> None:
        """Idle + visible answer + quiescent, observed in any order (§8)."""
        if task.status is not TaskStatus.RUNNING or task.stop_reason is not None:
            return
        watch = self.state.watches.get(task.id)
        if watch is None or not watch.idle_seen or not watch.answered:
            return
        session = task.session_id
        if session is None or session in self.index.live_by_parent or self.notifier.pending_for(session):
            return
        self.end(task, TaskEvent.COMPLETE, EndReason.COMPLETED, now, actions)

    def end(self, task: Task, event: TaskEvent, reason: EndReason, now: float, actions: list[TaskAction],
            error: str | None = None) -> None:
        """The end procedure, once per task: status, slot, cascade, outbox row, then I/O (§11)."""
        if task.status not in LIVE:
            return
        held = task.status in SLOT_HOLDING
        watch = self.state.watches.pop(task.id, None)
        self.state.prompt_after_abort.discard(task.id)
        self.state.host_retries.pop(task.id, None)
        self.state.sent_prompts.pop(task.id, None)
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
                self.end(child, TaskEvent.CANCEL, EndReason.ANCESTOR_ENDED, now, actions)
                task.cascaded += 1 + child.cascaded
        row = self.notification_row(task, now, actions)
        self.state.save(task, actions)
        if row is not None:
            self.notifier.add(row, now)
            actions.append(SaveOutbox((row.to_row(),)))
        if held:
            self.grant(task.key, now, actions)
        if held and reason in _ABORT_AFTER_END and task.id not in self.state.aborting:
            self.state.abort(task, now, actions)
            if task.session_id is not None:
                self.state.abort_tries[task.id] = 1
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
            self.check_complete(above, now, actions)
        self.notifier.forget_if_idle(parent)

    def notification_row(self, task: Task, now: float, actions: list[TaskAction]) -> OutboxRow | None:
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
                self.state.save(member, actions)
        return row

