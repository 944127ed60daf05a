"""opencode's stream, as the scheduler reads it: children's messages, parts, statuses, errors,
deletions, and the parents' own turns (spec §7, §8, §9, §12); and the scheduler's timers.

One of the scheduler's parts (:mod:`baton.tasks.scheduler`). Stream events are the hot path:
an event about a session that is neither a running child nor a parent with a mailbox costs a
dict lookup or two.
"""

from __future__ import annotations

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
from baton.tasks.actions import TaskAction
from baton.tasks.children import Children
from baton.tasks.lifecycle import Lifecycle
from baton.tasks.model import WAITING, EndReason, TaskEvent, TaskStatus
from baton.tasks.notify import deliver_timer
from baton.tasks.results import Results
from baton.tasks.state import TICK_KEY, SchedulerState
from baton.tasks.timeouts import Timeouts
from baton.tasks.transient import host_retry_timer
from baton.tasks.waiting import WAKE_PREFIX

__all__ = ["StreamEvents"]

HOST_RETRY_PREFIX = host_retry_timer("")
DELIVER_PREFIX = deliver_timer("")


class StreamEvents:
    """Handlers for opencode's events and the scheduler's timers, over the shared state."""

    def __init__(self, state: SchedulerState, lifecycle: Lifecycle, children: Children, timeouts: Timeouts,
                 results: Results) -> None:
        self.state = state
        self.lifecycle = lifecycle
        self.children = children
        self.timeouts = timeouts
        self.results = results
        self.index = state.index
        self.notifier = state.notifier

    def on_delta(self, event: PartDelta, now: float) -> list[TaskAction]:
        task = self.state.running_child(event.session_id)
        if task is not None:
            self.state.activity(task, now)
            self.state.watch(task).on_delta(event)
        return []

    def on_part(self, event: PartUpdated, now: float) -> list[TaskAction]:
        task = self.state.running_child(event.session_id)
        if task is None:
            return []
        self.state.activity(task, now)
        watch = self.state.watch(task)
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
        breaker = self.state.settings.circuit_breaker
        cap = self.state.settings.tool_call_cap
        actions: list[TaskAction] = []
        stop = self.timeouts.stop
        if new and cap is not None and task.tool_calls > cap:
            stop(task, EndReason.RUNAWAY, f"{task.tool_calls} tool calls, over the cap of {cap}", now, actions)
        elif signed and breaker.enabled and watch.same_calls >= breaker.consecutive_threshold:
            stop(task, EndReason.RUNAWAY, f"{watch.same_calls} identical {task.last_tool} calls in a row", now,
                 actions)
        return actions

    def on_assistant(self, event: AssistantMessage, now: float) -> list[TaskAction]:
        actions: list[TaskAction] = []
        task = self.state.running_child(event.session_id)
        if task is not None:
            self.state.activity(task, now)
            watch = self.state.watch(task)
            newest = watch.on_assistant(event, task.anchor_message_id)
            stale = event.model is not None and task.model is not None and not same_model(event.model, task.model)
            if task.status is TaskStatus.STARTING and newest and not stale and task.anchor_message_id is not None \
                    and task.id not in self.state.prompt_after_abort:
                self.children.started(task, now, actions)  # the answer proves the prompt was accepted
            if event.error is not None and newest and not stale:
                self.children.failure(task, event.error, now, actions)
            elif newest and event.completed:
                self.lifecycle.check_complete(task, now, actions)
        parent = self.notifier.parents.get(event.session_id)
        if parent is not None and event.agent != COMPACTION_AGENT:
            parent.agent = event.agent or parent.agent
            self.notifier.on_answer(parent, event.parent_id)
            if event.model:
                self.notifier.on_assistant_model(parent, event.model)
            if event.error is not None and classify_error(event.error).type is ErrorType.ABORT:
                parent.user_aborted_at = now
        return actions

    def on_user(self, event: UserMessage, now: float) -> list[TaskAction]:
        if event.agent == COMPACTION_AGENT:
            return []
        own = self.index.task_on(event.session_id)
        if own is not None and own.anchor_message_id == event.message_id:
            return []  # baton's own prompt to this child
        actions: list[TaskAction] = []
        # A prompt without a variant keeps the one the notifier knows for the same model.
        self.notifier.on_user(event.session_id, event.message_id, event.agent, event.model, now, actions,
                              variant=event.variant)
        return actions

    def on_status(self, event: SessionStatus, now: float) -> list[TaskAction]:
        actions: list[TaskAction] = []
        task = self.state.running_child(event.session_id)
        if task is not None:
            self.children.child_status(task, event.type, now, actions, event.message)
        self.notifier.on_status(event.session_id, event.type, now, actions)
        return actions

    def on_idle(self, event: SessionIdle, now: float) -> list[TaskAction]:
        return self.on_status(SessionStatus(event.session_id, StatusType.IDLE), now)

    def on_session_error(self, event: SessionError, now: float) -> list[TaskAction]:
        task = self.state.running_child(event.session_id) if event.session_id is not None else None
        actions: list[TaskAction] = []
        if task is not None:
            self.children.failure(task, event.error, now, actions)
        return actions

    def on_deleted(self, event: SessionDeleted, now: float) -> list[TaskAction]:
        actions: list[TaskAction] = []
        sid = event.session_id
        task = self.index.live_on(sid)
        if task is not None:
            if task.status is TaskStatus.RUNNING and task.stop_reason is not None:
                self.lifecycle.end(task, TaskEvent.TIMEOUT, task.stop_reason, now, actions)
            else:
                self.lifecycle.end(task, TaskEvent.CANCEL, EndReason.CHILD_DELETED, now, actions)
        for child in self.index.live_children(sid):
            self.lifecycle.end(child, TaskEvent.CANCEL, EndReason.PARENT_DELETED, now, actions)
        self.notifier.drop(sid, actions)
        return actions

    def on_timer(self, event: TimerFired, now: float) -> list[TaskAction]:
        """The tick, a host-call retry, or a parent's delivery timer."""
        if event.key == TICK_KEY:
            return self.timeouts.tick(now)
        if event.key.startswith(WAKE_PREFIX):
            task = self.state.index.tasks.get(event.key[len(WAKE_PREFIX):])
            woken: list[TaskAction] = []
            if task is not None and task.status in WAITING:
                self.lifecycle.grant(task.key, now, woken)
                self.state.arm_tick(now, woken)
            return woken
        if event.key.startswith(HOST_RETRY_PREFIX):
            return self.results.on_host_retry(event.key[len(HOST_RETRY_PREFIX):], now)
        if event.key.startswith(DELIVER_PREFIX):
            parent = self.notifier.parents.get(event.key[len(DELIVER_PREFIX):])
            if parent is not None:
                parent.timer_at = None
                actions: list[TaskAction] = []
                self.notifier.pump(parent.id, now, actions)
                return actions
        return []
