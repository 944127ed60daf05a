"""The task executor: carries out the scheduler's actions.

The scheduler (:mod:`baton.tasks.scheduler`) decides; :class:`TaskExecutor` does the I/O it asks
for — opencode REST calls, store writes — and returns each outcome as the event the action's
docstring names, which the router feeds back, so the scheduler stays the single writer of task
state. The tools' side (:mod:`baton.runtime.task_tools`) shares two small pieces with it:
:class:`TaskChanges` (a saved task wakes the tool calls waiting on it) and :class:`SessionTree`
(who is whose parent, and in which directory).

Saves (``SaveTask``/``SaveOutbox``) run synchronously, in the order the scheduler emitted
them and before any I/O of the same batch starts: that ordering is the outbox guarantee.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import anyio

from baton.clock import Clock, SystemClock
from baton.events import Event, SessionCreated
from baton.opencode.client import OpencodeClient, OpencodeError, OpencodeHTTPError, OpencodeUnavailable
from baton.opencode.events import parse_status
from baton.opencode.resync import has_message, newest_time
from baton.runtime.fleet_slots import LocalSlots, SlotGate
from baton.runtime.jobs import Job
from baton.runtime.metrics import Metrics
from baton.store_port import StorePort
from baton.tasks.actions import (
    AbortChild,
    CreateChild,
    Deliver,
    ForgetTasks,
    LookupSession,
    PollStatus,
    PromptChild,
    RefreshActivity,
    SaveOutbox,
    SaveTask,
    TaskAction,
)
from baton.tasks.events import (
    AbortDone,
    ActivityRefreshed,
    ChildCreated,
    ChildCreateFailed,
    DeliveryOutcome,
    DeliveryResult,
    PromptAccepted,
    PromptRejected,
    SessionLookup,
    StatusPolled,
)
from baton.tasks.queues import concurrency_key

__all__ = ["TASK_ACTIONS", "SessionTree", "TaskChanges", "TaskExecutor"]

ABORT_BOUND_S = 5.0
FETCH_LIMIT = 30
LINEAGE_MAX = 64
TASK_ACTIONS: tuple[type, ...] = (SaveTask, SaveOutbox, ForgetTasks, CreateChild, PromptChild, AbortChild, Deliver,
                                  PollStatus, LookupSession, RefreshActivity)


class TaskChanges:
    """Wakes whoever waits on a task (a foreground call, ``background_output``) when it is saved."""

    def __init__(self) -> None:
        self._changed: dict[str, anyio.Event] = {}

    async def wait(self, task_id: str) -> None:
        """Until the task's next save."""
        await self._changed.setdefault(task_id, anyio.Event()).wait()

    def wake(self, task_id: str) -> None:
        event = self._changed.pop(task_id, None)
        if event is not None:
            event.set()


class SessionTree:
    """Parent and directory of the sessions baton has seen or asked about (opencode's ``parentID``)."""

    def __init__(self, client: OpencodeClient, project_dir: str | None = None) -> None:
        self.client = client
        self.project_dir = project_dir
        self._parents: dict[str, tuple[str | None, str | None]] = {}  # session → (parentID, directory)

    def observe(self, event: Event, now: float) -> None:
        if isinstance(event, SessionCreated):
            self._parents[event.session_id] = (event.parent_id, event.directory)

    def remember(self, session_id: str, parent_id: str | None, directory: str | None) -> None:
        self._parents[session_id] = (parent_id, directory)

    async def directory_of(self, session_id: str) -> str | None:
        """A session's directory (asked of opencode once); the project's when opencode cannot say."""
        known = self._parents.get(session_id)
        if known is not None and known[1]:
            return known[1]
        try:
            info = await self.client.session(session_id)
        except OpencodeError:
            return self.project_dir
        self._parents[session_id] = (info.get("parentID"), info.get("directory"))
        return info.get("directory") or self.project_dir

    async def lineage(self, session_id: str) -> tuple[int, str] | str:
        """(depth, root) of a session through ``parentID``; a text when it cannot be known (fail closed)."""
        seen: list[str] = []
        current: str | None = session_id
        while current is not None:
            if current in seen or len(seen) > LINEAGE_MAX:
                return f"the ancestry of {session_id} loops or is deeper than {LINEAGE_MAX} levels"
            seen.append(current)
            known = self._parents.get(current)
            if known is None:
                try:
                    info = await self.client.session(current)
                except OpencodeError as exc:
                    return f"looking up session {current} failed ({exc})"
                known = self._parents[current] = (info.get("parentID"), info.get("directory"))
            current = known[0]
        return len(seen) - 1, seen[-1]


class TaskExecutor:
    """Executes :data:`TASK_ACTIONS` for one attached opencode."""

    def __init__(self, client: OpencodeClient, store: StorePort, tree: SessionTree, changes: TaskChanges,
                 slots: SlotGate | None = None, metrics: Metrics | None = None, clock: Clock | None = None) -> None:
        self.client = client
        self.clock: Clock = clock or SystemClock()
        self.metrics = metrics or Metrics()
        self.slots: SlotGate = slots or LocalSlots()
        self.store = store
        self.tree = tree
        self.changes = changes
        self._polling = False

    def execute(self, action: TaskAction, now: float) -> Job | None:
        """Run one scheduler action: saves now, I/O as a job whose outcome is an event."""
        if isinstance(action, SaveTask):
            self.store.save_tasks([(action.task_id, action.row)], (), now)
            self.slots.note(action.task_id, action.row)
            self.changes.wake(action.task_id)
        elif isinstance(action, ForgetTasks):
            self.store.forget_tasks(action.task_ids)
        elif isinstance(action, SaveOutbox):
            self.store.save_tasks((), action.rows, now)
        elif isinstance(action, PollStatus):
            if not self._polling:
                self._polling = True
                return self._poll
        elif isinstance(action, CreateChild):
            return partial(self.create_child, action)
        elif isinstance(action, PromptChild):
            return partial(self.prompt_child, action)
        elif isinstance(action, AbortChild):
            return partial(self.abort_child, action)
        elif isinstance(action, Deliver):
            return partial(self.deliver, action)
        elif isinstance(action, LookupSession):
            return partial(self.lookup, action)
        elif isinstance(action, RefreshActivity):
            return partial(self.refresh, action)
        return None

    async def create_child(self, action: CreateChild) -> ChildCreated | ChildCreateFailed | None:
        if not await self.slots.admit(action.task_id, None):
            return None  # it ended while waiting for a slot of the fleet: nothing to create
        try:
            directory = action.directory or await self.tree.directory_of(action.parent_session_id)
            if action.adopt:
                children = await self.client.children(action.parent_session_id, directory)
                for child in children:
                    if action.task_id in str(child.get("title", "")):
                        return ChildCreated(action.task_id, str(child["id"]))
            session = await self.client.create_session(
                title=action.title, parent_id=action.parent_session_id, directory=directory)
            self.tree.remember(str(session["id"]), action.parent_session_id, directory)
            return ChildCreated(action.task_id, str(session["id"]))
        except OpencodeError as exc:
            return ChildCreateFailed(action.task_id, _reason(exc), transient=_transient(exc))
        except KeyError as exc:
            return ChildCreateFailed(action.task_id, f"opencode's answer has no session {_reason(exc)}")

    async def prompt_child(self, action: PromptChild) -> PromptAccepted | PromptRejected | None:
        if not await self.slots.admit(action.task_id, concurrency_key(action.model, action.agent)):
            return None  # it stopped holding its slot while waiting for the fleet's: nothing to send
        try:
            if action.only_if_absent and await self._has_message(action.session_id, action.message_id,
                                                                 action.directory):
                return PromptAccepted(action.task_id, action.attempt)
            extra: dict[str, Any] = {"tools": action.tools}
            if action.variant:
                extra["variant"] = action.variant
            if action.system:
                extra["system"] = action.system
            await self.client.prompt_async(
                action.session_id, parts=[{"type": "text", "text": action.text}], model=action.model,
                agent=action.agent, message_id=action.message_id, directory=action.directory, extra=extra)
        except OpencodeError as exc:
            # Never guessed from the text (spec §6.6). Measured on 1.18.33: an unknown agent is not a
            # rejection at all — prompt_async answers 204 and a generic UnknownError session.error
            # follows, which ends the task as failed with opencode's message. Launches check agents
            # against GET /agent first, so that needs an agent removed in between.
            return PromptRejected(action.task_id, action.attempt, _reason(exc), transient=_transient(exc))
        return PromptAccepted(action.task_id, action.attempt)

    async def abort_child(self, action: AbortChild) -> AbortDone:
        ok = True
        try:
            with anyio.fail_after(ABORT_BOUND_S):
                await self.client.abort(action.session_id, action.directory)
        except (OpencodeError, TimeoutError):
            ok = False
        return AbortDone(action.task_id, ok)

    async def deliver(self, action: Deliver) -> DeliveryResult:
        outcome = DeliveryOutcome.DELIVERED
        detail = ""
        try:
            if not (action.check_first and await self._has_message(action.parent_session_id, action.message_id,
                                                                    action.directory)):
                extra: dict[str, Any] = {}
                if action.variant:
                    extra["variant"] = action.variant
                if action.tools is not None:
                    extra["tools"] = action.tools
                await self.client.prompt_async(
                    action.parent_session_id, parts=[{"type": "text", "text": action.text}], model=action.model,
                    agent=action.agent, message_id=action.message_id, no_reply=action.no_reply,
                    directory=action.directory, extra=extra)
        except OpencodeHTTPError as exc:
            outcome = DeliveryOutcome.PARENT_GONE if exc.status == 404 else DeliveryOutcome.RETRY
            detail = str(exc)
        except OpencodeError as exc:
            outcome, detail = DeliveryOutcome.RETRY, str(exc)
        if outcome is DeliveryOutcome.RETRY:
            self.metrics.deliveries_retried.inc()
        elif outcome is DeliveryOutcome.DELIVERED and action.ended_at is not None:
            self.metrics.notify_seconds.observe(max(0.0, self.clock.time() - action.ended_at))
        return DeliveryResult(action.parent_session_id, action.message_id, outcome, detail)

    async def _poll(self) -> StatusPolled:
        statuses: Mapping[str, Any] | None
        try:
            raw = await self.client.session_status()
            statuses = {sid: parse_status(sid, status) for sid, status in raw.items()}
        except OpencodeError:
            statuses = None
        self._polling = False
        return StatusPolled(statuses)

    async def lookup(self, action: LookupSession) -> SessionLookup:
        found: bool | None = True
        try:
            await self.client.session(action.session_id, action.directory)
        except OpencodeHTTPError as exc:
            found = False if exc.status == 404 else None
        except OpencodeError:
            found = None
        return SessionLookup(action.session_id, found)

    async def refresh(self, action: RefreshActivity) -> ActivityRefreshed:
        newest: float | None = None
        try:
            for row in await self.client.messages(action.session_id, action.directory, limit=10):
                newest = max(newest or 0.0, newest_time(row))
        except OpencodeError:
            newest = None
        return ActivityRefreshed(action.task_id, newest or None)

    async def _has_message(self, session_id: str, message_id: str, directory: str | None) -> bool:
        return has_message(await self.client.messages(session_id, directory, limit=FETCH_LIMIT), message_id)


def _transient(exc: OpencodeError) -> bool:
    """No connection, a timeout or a 5xx: opencode restarting or overloaded, worth another try.
    A 4xx is opencode's answer to this very request and would not change."""
    return isinstance(exc, OpencodeUnavailable) or (isinstance(exc, OpencodeHTTPError) and exc.status >= 500)


def _reason(exc: BaseException) -> str:
    """An exception's text for a task's error; its class when the text is empty (never blank)."""
    return str(exc) or type(exc).__name__
