"""Timeouts (spec §9): stale and no-progress children, stuck queues, and the periodic tick.

One of the scheduler's parts (:mod:`baton.tasks.scheduler`). Timeouts run from a task's last
activity; a decided timeout (``stop_reason``) aborts the child and the task ends only once that
abort is confirmed (§9 rule 5). The tick (every :data:`baton.tasks.state.TICK_S` while a task
starts or runs) checks them, retries the aborts of ended tasks' children, saves activity
times and asks for the backup status poll.
"""

from __future__ import annotations

from baton.actions import Note
from baton.tasks import texts
from baton.tasks.actions import RefreshActivity, SaveTask, TaskAction
from baton.tasks.lifecycle import ABORT_TRIES, Lifecycle
from baton.tasks.model import LIVE, EndReason, Task, TaskEvent, TaskStatus
from baton.tasks.state import SchedulerState

__all__ = ["Timeouts"]


class Timeouts:
    """T1–T3 and the tick, over the shared state."""

    def __init__(self, state: SchedulerState, lifecycle: Lifecycle) -> None:
        self.state = state
        self.lifecycle = lifecycle
        self.index = state.index

    def stop(self, task: Task, reason: EndReason, detail: str, now: float, actions: list[TaskAction]) -> None:
        """Decide a timeout; the end is recorded once the abort is confirmed (§9 rule 5)."""
        task.stop_reason, task.error = reason, detail
        self.state.save(task, actions)
        actions.append(Note(task.parent_session_id, "task_timeout", f"task {task.id}: {detail}; stopping it",
                            {"task": task.id, "reason": reason.value}))
        self.state.abort(task, now, actions)

    def check_running(self, task: Task, now: float, actions: list[TaskAction]) -> None:
        """T1/T2 for one running task, from its last activity; paused while it has live tasks (§9)."""
        watch = self.state.watch(task)
        if task.stop_reason is not None:
            if task.id not in self.state.aborting:
                self.state.abort(task, now, actions)  # the previous abort failed: try again
            return
        if task.session_id in self.index.live_by_parent or (watch.working and watch.permission):
            self.state.activity(task, now)
            return
        quiet = now - (task.last_activity_at if task.last_activity_at is not None else now)
        s = self.state.settings
        if watch.working:
            if quiet > s.message_staleness_timeout_ms / 1000 and not watch.refreshing and task.session_id:
                watch.refreshing = True
                actions.append(RefreshActivity(task.id, task.session_id, task.directory))
        elif quiet > s.stale_timeout_ms / 1000:
            self.stop(task, EndReason.STALE, f"no activity for {texts.duration(quiet)}", now, actions)

    def on_refreshed(self, task: Task, at: float | None, now: float, actions: list[TaskAction]) -> None:
        watch = self.state.watch(task)
        watch.refreshing = False
        if at is None or task.status is not TaskStatus.RUNNING or task.stop_reason is not None:
            return
        if task.last_activity_at is None or at > task.last_activity_at:
            task.last_activity_at = min(at, now)
            self.state.dirty.add(task.id)
        quiet = now - (task.last_activity_at or now)
        if watch.working and quiet > self.state.settings.message_staleness_timeout_ms / 1000:
            self.stop(task, EndReason.NO_PROGRESS, f"busy without progress for {texts.duration(quiet)}",
                      now, actions)

    def check_queues(self, now: float, actions: list[TaskAction]) -> None:
        """T3 backstop: a waiting task whose key made no progress for ``taskTtlMs`` (§9)."""
        ttl = self.state.settings.task_ttl_ms / 1000
        for key in list(self.index.queues):
            progress = self.index.key_progress.get(key, float("-inf"))
            while (head := self.index.head(key)) is not None:
                # A task waiting out a cooldown is not stuck before its reset (:mod:`baton.tasks.waiting`).
                since = max(head.queued_at, progress, head.not_before or head.queued_at)
                if now - since <= ttl:
                    break
                self.lifecycle.end(head, TaskEvent.QUEUE_TIMEOUT, EndReason.QUEUE_STUCK, now, actions,
                                   error=f"no slot of {key} was granted or used for {texts.duration(now - since)}")

    def tick(self, now: float) -> list[TaskAction]:
        """The periodic tick: timeouts, aborts of ended children, T3, activity saves, the backup poll."""
        self.state.tick_at = None
        actions: list[TaskAction] = []
        if self.state.detached_at is not None:
            return actions
        for tid in list(self.index.slot_holders):
            task = self.index.tasks[tid]
            if task.status is TaskStatus.RUNNING:
                self.check_running(task, now, actions)
        for tid, tries in list(self.state.abort_tries.items()):
            task = self.index.tasks[tid]
            if tid in self.state.aborting:
                continue
            if tries >= ABORT_TRIES or task.session_id is None:
                del self.state.abort_tries[tid]
                continue
            self.state.abort_tries[tid] = tries + 1
            self.state.abort(task, now, actions)
        self.check_queues(now, actions)
        for tid in sorted(self.state.dirty):
            task = self.index.tasks[tid]
            if task.status in LIVE:
                actions.append(SaveTask(task.id, task.to_row()))
        self.state.dirty.clear()
        if self.index.slot_holders:
            self.state.request_poll(actions)
        self.state.arm_tick(now, actions)
        return actions
