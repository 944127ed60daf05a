"""What a task's child session reports: its prompt accepted, its status, its failures (§7, §8, §10).

One of the scheduler's parts (:mod:`baton.tasks.scheduler`). A failure is decided by the fallback
core sessions use too (:meth:`baton.fallback.core.FallbackCore.decide`: classify, cool the failed
model, walk the chain); what is task-specific is what follows a decision:

* a stop — an abort not baton's own ends the task ``child_aborted``;
* not retryable — the task fails with the provider's message;
* switch — abort the child, free the slot, re-queue at the new model key's tail, same session
  and same anchor (§10.4);
* stay — no model comes next: with every model of the chain cooling (and parking on, within its
  cap) the task waits in the queue for the first reset (:mod:`baton.tasks.waiting`); else a turn
  that ended in error fails the task ``chain_exhausted``, while a retry status leaves opencode's
  own retry running.

A retry, like a launch, skips providers opencode has not connected (as the newest launch found
them, :attr:`baton.tasks.state.SchedulerState.connected`).
"""

from __future__ import annotations

from baton.actions import Note
from baton.events import StatusType
from baton.fallback.core import Choice, Verdict
from baton.fallback.parking import clock_time
from baton.tasks.actions import TaskAction
from baton.tasks.lifecycle import Lifecycle
from baton.tasks.model import Attempt, EndReason, Task, TaskEvent, TaskStatus
from baton.tasks.queues import concurrency_key
from baton.tasks.state import SchedulerState
from baton.tasks.waiting import Waiting

__all__ = ["Children"]


class Children:
    """Turns what a child says into transitions; the fallback's task half."""

    def __init__(self, state: SchedulerState, lifecycle: Lifecycle, waiting: Waiting) -> None:
        self.state = state
        self.lifecycle = lifecycle
        self.waiting = waiting

    def started(self, task: Task, now: float, actions: list[TaskAction]) -> None:
        """The child accepted the prompt (or answered it, which proves it): the task runs."""
        self.state.index.move(task, TaskEvent.STARTED)
        task.started_at = task.started_at if task.started_at is not None else now
        task.attempts[-1].started_at = now
        self.state.activity(task, now)
        self.state.save(task, actions)
        watch = self.state.watch(task)
        early, watch.early_error = watch.early_error, None
        if early is not None:
            self.failure(task, early, now, actions)
        self.lifecycle.check_complete(task, now, actions)
        self.state.arm_tick(now, actions)

    def child_status(self, task: Task, status: StatusType, now: float, actions: list[TaskAction],
                     retry_message: str = "") -> None:
        watch = self.state.watch(task)
        if watch.set_status(status):
            self.state.activity(task, now)
        if task.status is not TaskStatus.RUNNING:
            return
        if status is StatusType.RETRY and retry_message:
            self.failure(task, retry_message, now, actions, signal=True)
        elif status is StatusType.IDLE:
            if task.stop_reason is not None:
                self.lifecycle.end(task, TaskEvent.TIMEOUT, task.stop_reason, now, actions)
            else:
                self.lifecycle.check_complete(task, now, actions)

    # ------------------------------------------------------------------ failures and fallback (§10)

    def failure(self, task: Task, error: object, now: float, actions: list[TaskAction], *,
                signal: bool = False) -> None:
        """One decision per failure signal of a running child; ``signal`` = a retry status."""
        watch = self.state.watch(task)
        if task.status is TaskStatus.STARTING and not signal:
            watch.early_error = error  # decided once the prompt is known to be accepted
            return
        if task.status is not TaskStatus.RUNNING or task.stop_reason is not None:
            return
        decision = self.state.core.decide(
            error, task.model, now, chain=task.chain, after=task.attempt, attempts=len(task.attempts) - 1,
            connected=self.state.connected, guard=self.state.guard(task),
        )
        if decision.cooldown is not None:
            actions.append(decision.cooldown)
        message = decision.info.message[:500] or "unknown error"
        end = self.lifecycle.end
        if decision.verdict is Verdict.STOP:
            if watch.own_abort_until <= now and not signal:
                end(task, TaskEvent.CANCEL, EndReason.CHILD_ABORTED, now, actions, error=message)
        elif decision.verdict is Verdict.NOT_RETRYABLE:
            if not signal:
                end(task, TaskEvent.FAIL, EndReason.ERROR, now, actions, error=message)
        elif decision.choice is not None:
            self.requeue(task, decision.choice, message, now, actions)
        elif (wait := self.waiting.reset_wait(task, now)) is not None:
            # Every model cooling: wait in the queue for the first reset instead of failing.
            self.requeue(task, Choice(wait.position, wait.model), message, now, actions, not_before=wait.until)
        elif not signal:
            # A retry status without a next model leaves opencode's own retry running; a turn
            # that ended in error fails the task.
            end(task, TaskEvent.FAIL, EndReason.CHAIN_EXHAUSTED, now, actions, error=message)

    def requeue(self, task: Task, choice: Choice, reason: str, now: float, actions: list[TaskAction], *,
                not_before: float | None = None) -> None:
        """Abort, free the slot, re-queue at the new key's tail; same session and anchor (§10.4);
        with ``not_before``, the task is not granted before then (its chain is cooling)."""
        old_key, old_model = task.key, task.model
        task.attempts[-1].ended_at = now
        task.attempts[-1].error = reason
        self.state.abort(task, now, actions)
        model = choice.model
        self.state.index.move(task, TaskEvent.RETRY, requeue=(concurrency_key(model, task.agent), now))
        task.model, task.attempt, task.variant = model, choice.index, None
        task.attempts.append(Attempt(model))
        if not_before is not None:
            self.waiting.hold(task, not_before, actions)
        self.state.save(task, actions)
        if not_before is None:
            actions.append(Note(task.parent_session_id, "task_retry",
                                f"task {task.id}: {old_model} failed ({reason[:200]}); queued again on {model}",
                                {"task": task.id, "from": old_model, "to": model}))
        else:
            actions.append(Note(task.parent_session_id, "task_parked",
                                f"task {task.id}: {old_model} failed ({reason[:200]}) and every model of its chain "
                                f"is cooling; waiting in the queue for {model}, back at {clock_time(not_before, now)}",
                                {"task": task.id, "from": old_model, "to": model, "until": not_before}))
        self.lifecycle.grant(old_key, now, actions)
        self.lifecycle.grant(task.key, now, actions)
