"""How the scheduler takes the outcomes of the actions it asked for (:mod:`baton.tasks.events`).

Every result is checked against the task's current state first: a result about a task that
has moved on (ended, retried, re-prompted) is stale and changes nothing, except that a
child created for an ended task is aborted (§6.6).
"""

from __future__ import annotations

from dataclasses import replace

from baton.events import StatusType
from baton.tasks import texts
from baton.tasks.actions import AbortChild, CreateChild, SaveOutbox, TaskAction
from baton.tasks.children import Children
from baton.tasks.events import (
    AbortDone,
    ActivityRefreshed,
    ChildCreated,
    ChildCreateFailed,
    DeliveryResult,
    ParentCompacted,
    PermissionPending,
    PromptAccepted,
    PromptRejected,
    SessionLookup,
    StatusPolled,
)
from baton.tasks.lifecycle import Lifecycle, child_title
from baton.tasks.model import LIVE, SLOT_HOLDING, EndReason, OutboxRow, RowKind, TaskEvent, TaskStatus
from baton.tasks.recovery import Recovery
from baton.tasks.state import SchedulerState
from baton.tasks.timeouts import Timeouts

__all__ = ["Results"]


class Results:
    """Handlers for the engine's reports, over the shared state; the scheduler dispatches to them."""

    def __init__(self, state: SchedulerState, lifecycle: Lifecycle, children: Children, timeouts: Timeouts,
                 recovery: Recovery) -> None:
        self.state = state
        self.lifecycle = lifecycle
        self.children = children
        self.timeouts = timeouts
        self.recovery = recovery
        self.index = state.index
        self.notifier = state.notifier

    def on_child_created(self, event: ChildCreated, now: float) -> list[TaskAction]:
        task = self.index.tasks.get(event.task_id)
        actions: list[TaskAction] = []
        if task is not None and task.status is TaskStatus.STARTING and task.session_id is None:
            self.state.host_retries.pop(task.id, None)
            self.index.set_session(task, event.session_id)
            if task.anchor_message_id is not None:
                self.state.save(task, actions)
            self.lifecycle.prompt(task, now, actions)  # saves session and anchor before the prompt (§6.2-3)
        elif task is None or task.session_id != event.session_id:
            # Too late (the task ended meanwhile): abort it, never prompt it (§6.6).
            actions.append(AbortChild(event.task_id, event.session_id, task.directory if task else None))
        return actions

    def on_child_create_failed(self, event: ChildCreateFailed, now: float) -> list[TaskAction]:
        task = self.index.tasks.get(event.task_id)
        actions: list[TaskAction] = []
        if task is not None and task.status is TaskStatus.STARTING and task.session_id is None:
            if event.transient and self.lifecycle.retry_host_call(task, "creating its child session", event.error,
                                                                  now, actions):
                return actions
            self.lifecycle.end(task, TaskEvent.CREATE_FAILED, EndReason.CREATE_FAILED, now, actions,
                               error=self.lifecycle.host_gave_up(task, event.error, now))
        return actions

    def on_prompt_accepted(self, event: PromptAccepted, now: float) -> list[TaskAction]:
        task = self.index.tasks.get(event.task_id)
        actions: list[TaskAction] = []
        if task is None or event.attempt != task.attempt:
            return actions
        self.state.host_retries.pop(task.id, None)
        self.state.sent_prompts.pop(task.id, None)
        if task.status is TaskStatus.STARTING:
            self.children.started(task, now, actions)
        return actions

    def on_prompt_rejected(self, event: PromptRejected, now: float) -> list[TaskAction]:
        task = self.index.tasks.get(event.task_id)
        actions: list[TaskAction] = []
        if task is None or event.attempt != task.attempt:
            return actions
        if task.status is not TaskStatus.STARTING and not (task.status is TaskStatus.RUNNING and task.prompt_resends):
            return actions
        prompt = self.state.sent_prompts.get(task.id)
        if event.transient and not event.unknown_agent and prompt is not None and self.lifecycle.retry_host_call(
                task, "prompting its child", event.error, now, actions, prompt=prompt):
            return actions
        error = self.lifecycle.host_gave_up(task, event.error, now)
        if task.status is TaskStatus.STARTING:
            reason = EndReason.AGENT_UNKNOWN if event.unknown_agent else EndReason.PROMPT_REJECTED
            self.lifecycle.end(task, TaskEvent.PROMPT_REJECTED, reason, now, actions, error=error)
        else:
            self.lifecycle.end(task, TaskEvent.FAIL, EndReason.HOST_RESTARTED, now, actions, error=error)
        return actions

    def on_host_retry(self, task_id: str, now: float) -> list[TaskAction]:
        """The backoff after a transient failure has passed: the same call once more, made safe to repeat."""
        retry = self.state.host_retries.get(task_id)
        task = self.index.tasks.get(task_id)
        actions: list[TaskAction] = []
        if retry is None or task is None or task.status not in SLOT_HOLDING:
            return actions
        prompt = retry.prompt
        if prompt is None:
            if task.status is TaskStatus.STARTING and task.session_id is None:
                retry.calls += 1
                actions.append(CreateChild(task.id, task.parent_session_id, child_title(task), task.directory,
                                           adopt=True))  # the failed call may have created it
        elif task.id in self.state.aborting and task.status is TaskStatus.STARTING:
            self.state.prompt_after_abort.add(task.id)  # an abort is on its way: the prompt follows it
        elif prompt.attempt == task.attempt and prompt.session_id == task.session_id:
            retry.calls += 1
            # A first prompt may have arrived although the call failed: look for its anchor first.
            # A re-send (fallback, host restart) replaces its stored message, so it simply goes again.
            first = task.status is TaskStatus.STARTING and len(task.attempts) == 1 and task.anchor_text is None
            actions.append(replace(prompt, only_if_absent=prompt.only_if_absent or first))
        return actions

    def on_abort_done(self, event: AbortDone, now: float) -> list[TaskAction]:
        self.state.aborting.discard(event.task_id)
        task = self.index.tasks.get(event.task_id)
        actions: list[TaskAction] = []
        if task is None:
            return actions
        if event.task_id in self.state.prompt_after_abort:
            self.state.prompt_after_abort.discard(event.task_id)
            if task.status is TaskStatus.STARTING:
                self.lifecycle.prompt(task, now, actions)
        elif task.status is TaskStatus.RUNNING and task.stop_reason is not None:
            if event.ok:
                self.lifecycle.end(task, TaskEvent.TIMEOUT, task.stop_reason, now, actions)
        elif event.ok or task.status in LIVE:
            self.state.abort_tries.pop(event.task_id, None)
        return actions

    def on_polled(self, event: StatusPolled, now: float) -> list[TaskAction]:
        self.state.poll_in_flight = False
        actions: list[TaskAction] = []
        statuses = event.statuses
        if statuses is None:
            return actions  # a failed poll tells nothing (§8.1)
        for tid in list(self.index.slot_holders):
            task = self.index.tasks[tid]
            if task.status is not TaskStatus.RUNNING or task.session_id is None:
                continue
            found = statuses.get(task.session_id)
            watch = self.state.watch(task)
            if found is None:
                self.children.child_status(task, StatusType.IDLE, now, actions)
                watch.absent = True
            else:
                watch.gone_since = None
                self.children.child_status(task, found.type, now, actions, found.message)
            if task.status is TaskStatus.RUNNING:
                self.recovery.after_poll(task, now, actions)
        for parent_id in list(self.notifier.parents):
            found = statuses.get(parent_id)
            self.notifier.on_status(parent_id, found.type if found else StatusType.IDLE, now, actions)
        return actions

    def on_lookup(self, event: SessionLookup, now: float) -> list[TaskAction]:
        task = self.state.running_child(event.session_id)
        actions: list[TaskAction] = []
        if task is None:
            return actions
        watch = self.state.watch(task)
        watch.lookup_in_flight = False
        if event.found is None:
            return actions  # connection errors never count (§9 rule 6)
        if event.found:
            watch.gone_since = None
            return actions
        watch.gone_since = now if watch.gone_since is None else watch.gone_since
        gone_for = now - watch.gone_since
        if task.status is TaskStatus.RUNNING and gone_for >= self.state.settings.session_gone_timeout_ms / 1000:
            self.lifecycle.end(task, TaskEvent.FAIL, EndReason.SESSION_GONE, now, actions,
                               error=f"opencode answered 404 for {event.session_id} over {texts.duration(gone_for)}")
        return actions

    def on_delivery(self, event: DeliveryResult, now: float) -> list[TaskAction]:
        actions: list[TaskAction] = []
        emptied = self.notifier.on_result(event.parent_session_id, event.message_id, event.outcome, event.detail,
                                          now, actions)
        if emptied:
            if (task := self.index.live_on(event.parent_session_id)) is not None:
                self.lifecycle.check_complete(task, now, actions)  # quiescence may hold now (§8.3)
            self.notifier.forget_if_idle(event.parent_session_id)
        return actions

    def on_refresh_result(self, event: ActivityRefreshed, now: float) -> list[TaskAction]:
        task = self.index.tasks.get(event.task_id)
        actions: list[TaskAction] = []
        if task is not None and task.status is TaskStatus.RUNNING:
            self.timeouts.on_refreshed(task, event.at, now, actions)
        return actions

    def on_compacted(self, event: ParentCompacted, now: float) -> list[TaskAction]:
        """One context-only list of P's live and recent tasks, so it continues them (§12.5)."""
        keep = self.state.settings.task_cleanup_delay_ms / 1000
        tasks = sorted(
            (t for tid in self.index.children.get(event.session_id, ())
             if (t := self.index.tasks[tid]).status in LIVE or (t.ended_at is not None and now - t.ended_at <= keep)),
            key=lambda t: (t.created_at, t.queue_seq),  # launched in the same instant: in launch order
        )
        if not tasks:
            return []
        seq = self.notifier.next_seq()
        row = OutboxRow(f"nc_{seq}", event.session_id, RowKind.COMPACTION, seq, now,
                        text=texts.compaction_notice(tasks))
        self.notifier.add(row, now)
        actions: list[TaskAction] = [SaveOutbox((row.to_row(),))]
        self.notifier.pump(event.session_id, now, actions)
        return actions

    def on_permission(self, event: PermissionPending, now: float) -> list[TaskAction]:
        task = self.state.running_child(event.session_id)
        if task is not None:
            self.state.watch(task).permission = event.pending
        return []
