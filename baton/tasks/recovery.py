"""Restart, reattach and foreground hand-over (§14.2.3, §15).

After ``kill -9`` or a clean stop the engine builds a new scheduler from the stored task
and outbox rows; :meth:`Recovery.resume` then re-issues whatever was in flight:

* ``starting`` without a session → ``CreateChild(adopt=True)``: the engine first looks for a
  child whose title holds the task id, so a child created just before the crash is adopted,
  never duplicated; with a session → ``PromptChild(only_if_absent=True)`` with the stored
  anchor, so a prompt that already went out is not sent twice;
* ``running`` with a decided timeout → the abort again; every running task's activity clock
  restarts (detached time never counts, §9 rule 4), and a status poll resyncs idleness;
* queues are granted again (a changed limit applies at the next grant);
* foreground tasks lost their waiting tool call: live ones become background tasks, ended
  ones whose result was never returned get their notification now;
* frozen notification messages are re-sent with ``check_first`` under their stored ids.
"""

from __future__ import annotations

from baton.actions import Note, Schedule
from baton.tasks.actions import CreateChild, LookupSession, SaveOutbox, TaskAction
from baton.tasks.events import Attached, Detached, HostRestarted
from baton.tasks.lifecycle import Lifecycle, child_title
from baton.tasks.model import LIVE, WAITING, EndReason, Mode, NotifyState, Task, TaskEvent, TaskStatus
from baton.tasks.state import SchedulerState
from baton.tasks.waiting import wake_timer

__all__ = ["Recovery"]


class Recovery:
    """The restart and reattach part of the scheduler, over the shared state."""

    def __init__(self, state: SchedulerState, lifecycle: Lifecycle) -> None:
        self.state = state
        self.lifecycle = lifecycle
        self.index = state.index
        self.notifier = state.notifier

    def resume(self, now: float) -> list[TaskAction]:
        """Call once after constructing from stored rows, when the engine is attached (§15.2-4)."""
        actions: list[TaskAction] = []
        tasks = sorted(self.index.tasks.values(), key=lambda t: t.queue_seq)
        for task in tasks:
            if task.mode is Mode.FOREGROUND and (task.status in LIVE or task.notify is NotifyState.NONE):
                self.make_background(task, now, actions)
        for key in self.index.queues:
            self.index.key_progress[key] = now
        for task in tasks:
            if task.status is TaskStatus.STARTING:
                if task.session_id is None:
                    actions.append(CreateChild(task.id, task.parent_session_id, child_title(task), task.directory,
                                               adopt=True))
                elif len(task.attempts) > 1 or task.anchor_text is not None:
                    # A fallback re-send: its anchor exists already, so presence proves nothing.
                    # Stop whatever runs, then send again (same id, so it replaces, §10.4).
                    self.state.abort(task, now, actions)
                    self.state.prompt_after_abort.add(task.id)
                else:
                    self.lifecycle.prompt(task, now, actions, only_if_absent=True)
            elif task.status is TaskStatus.RUNNING:
                task.last_activity_at = max(task.last_activity_at or now, now)
                self.index.key_progress[task.key] = now
                if task.stop_reason is not None:
                    self.state.abort(task, now, actions)
        # Tasks still waiting for a reset: their wake-ups again.
        actions.extend(Schedule(wake_timer(task.id), task.not_before) for task in tasks
                       if task.not_before is not None and task.not_before > now and task.status in WAITING)
        for key in list(self.index.queues):
            self.lifecycle.grant(key, now, actions)
        if self.index.slot_holders or self.notifier.parents:
            self.state.request_poll(actions)
        for parent_id in list(self.notifier.parents):
            self.notifier.pump(parent_id, now, actions)
        self.state.arm_tick(now, actions)
        return actions

    def make_background(self, task: Task, now: float, actions: list[TaskAction]) -> None:
        """Turn a foreground task into a background one; if it already ended unreported, notify now."""
        if task.mode is Mode.BACKGROUND:
            return
        self.index.set_mode(task, Mode.BACKGROUND)
        if task.status in LIVE:
            self.state.save(task, actions)
            return
        if task.notify is not NotifyState.NONE:
            self.state.save(task, actions)
            return
        row = self.lifecycle.notification_row(task, now, actions)
        self.state.save(task, actions)
        if row is not None:
            self.notifier.add(row, now)
            actions.append(SaveOutbox((row.to_row(),)))
            self.notifier.pump(task.parent_session_id, now, actions)

    def after_poll(self, task: Task, now: float, actions: list[TaskAction]) -> None:
        """After a successful poll: T4 lookups for absent children, and §15.5 re-sends."""
        watch = self.state.watch(task)
        if watch.host_restart:
            watch.host_restart = False
            if watch.idle_seen and not watch.answered and task.stop_reason is None:
                if task.prompt_resends >= 1:
                    self.lifecycle.end(task, TaskEvent.FAIL, EndReason.HOST_RESTARTED, now, actions,
                                       error="the child was idle without an answer after opencode restarted")
                    return
                task.prompt_resends += 1
                self.state.save(task, actions)
                self.lifecycle.prompt(task, now, actions)
                return
        if watch.absent and not watch.answered and not watch.lookup_in_flight and task.session_id is not None:
            watch.lookup_in_flight = True
            actions.append(LookupSession(task.session_id, task.directory))

    def on_detached(self, event: Detached, now: float) -> list[TaskAction]:
        if self.state.detached_at is None:
            self.state.detached_at = now
        return []

    def on_attached(self, event: Attached, now: float) -> list[TaskAction]:
        """Credit the detached time to every running task and queue, then resync (§9 rule 4)."""
        actions: list[TaskAction] = []
        if self.state.detached_at is not None:
            gap = max(0.0, now - self.state.detached_at)
            self.state.detached_at = None
            for tid in self.index.slot_holders:
                task = self.index.tasks[tid]
                if task.last_activity_at is not None:
                    task.last_activity_at = min(now, task.last_activity_at + gap)
                    self.state.dirty.add(tid)
            for key in self.index.queues:
                self.index.key_progress[key] = now
        self.state.tick_at = None
        if self.index.slot_holders:
            self.state.request_poll(actions)
        self.state.arm_tick(now, actions)
        return actions

    def on_host_restarted(self, event: HostRestarted, now: float) -> list[TaskAction]:
        """opencode restarted: a running child found idle without an answer gets its prompt once more."""
        actions: list[TaskAction] = []
        for tid in self.index.slot_holders:
            task = self.index.tasks[tid]
            if task.status is TaskStatus.RUNNING:
                self.state.watch(task).host_restart = True
        actions.append(Note(None, "host_restarted", "opencode restarted; checking running tasks for lost prompts"))
        self.state.request_poll(actions)
        return actions

