"""The task runtime: carries out the scheduler's actions and serves the MCP tools.

The scheduler (:mod:`baton.tasks.scheduler`) decides; this module does the I/O it asks for —
opencode REST calls, store writes — and reports each outcome back as an event through the
engine's ``feed``, so the scheduler stays the single writer of task state. It also implements
:class:`~baton.tasks.service.TaskService` for the MCP tools: finding the calling session,
walking its lineage, and waiting on foreground tasks.

Saves (``SaveTask``/``SaveOutbox``) run synchronously, in the order the scheduler emitted
them and before any I/O of the same batch starts: that ordering is the outbox guarantee.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

import anyio
import structlog

from baton.events import AssistantMessage, Event, PartUpdated, SessionCreated
from baton.models import normalize_model
from baton.opencode.client import OpencodeClient, OpencodeError, OpencodeHTTPError, OpencodeUnavailable
from baton.opencode.events import parse_status
from baton.runtime.calls import CallMatcher
from baton.settings import Config
from baton.store import Store
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
from baton.tasks.launch import KnownAgent, LaunchRequest, ToolError, known_categories
from baton.tasks.model import OutboxRow, Task
from baton.tasks.scheduler import CancelRequest, Scheduler
from baton.tasks.service import CallContext, ToolFailure

__all__ = ["TASK_ACTIONS", "TaskRuntime"]

log = structlog.get_logger("baton.tasks")

ABORT_BOUND_S = 5.0
FETCH_LIMIT = 30
LINEAGE_MAX = 64
HOST_CALL_LIMIT_S = 60.0  # opencode's default MCP call timeout
TASK_ACTIONS = (SaveTask, SaveOutbox, ForgetTasks, CreateChild, PromptChild, AbortChild, Deliver, PollStatus,
                LookupSession, RefreshActivity)

Spawn = Callable[..., None]
_R = TypeVar("_R")


class TaskRuntime:
    """Background tasks of one attached opencode: scheduler + executor + tool service."""

    def __init__(self, client: OpencodeClient, store: Store, config: Config, scheduler: Scheduler,
                 *, project_dir: str | None = None) -> None:
        self.client = client
        self.store = store
        self.config = config
        self.scheduler = scheduler
        self.matcher = CallMatcher()
        self.project_dir = project_dir
        self._feed: Callable[[Any], None] = lambda _event: None
        self._run_actions: Callable[[list[Any]], None] = lambda _actions: None
        self._spawn: Spawn = lambda *_args: None
        self._changed: dict[str, anyio.Event] = {}
        self._parents: dict[str, tuple[str | None, str | None]] = {}  # session → (parentID, directory)
        self._polling = False
        # Set by a clean stop (SIGINT/SIGTERM) before the tool calls are cancelled.
        self.stopping = False
        self._io: dict[type, Callable[[Any], Coroutine[Any, Any, None]]] = {
            CreateChild: self._create_child, PromptChild: self._prompt_child, AbortChild: self._abort_child,
            Deliver: self._deliver, LookupSession: self._lookup, RefreshActivity: self._refresh,
        }

    @classmethod
    def from_store(cls, client: OpencodeClient, store: Store, config: Config, cooldowns: Any,
                   *, project_dir: str | None = None) -> TaskRuntime:
        """Rebuild the scheduler from what the store holds (after a clean stop or a ``kill -9``)."""
        tasks = store.load_tasks(Task.from_row)
        outbox = store.load_outbox(OutboxRow.from_row)
        return cls(client, store, config, Scheduler(config, cooldowns, tasks, outbox), project_dir=project_dir)

    def bind(self, feed: Callable[[Any], None], run_actions: Callable[[list[Any]], None], spawn: Spawn) -> None:
        """Connect to the engine: ``feed`` hands an event to the single writer, ``run_actions`` executes
        the actions of a step taken outside ``feed`` (launch, cancel), ``spawn`` starts I/O."""
        self._feed = feed
        self._run_actions = run_actions
        self._spawn = spawn

    # ------------------------------------------------------------------ events from the stream

    def observe(self, event: Event) -> None:
        """Keep what the tools need from the stream: tool parts, callers' messages, lineage."""
        if isinstance(event, PartUpdated):
            if event.type == "tool":
                self.matcher.observe_part(event, time.time())
        elif isinstance(event, AssistantMessage):
            self.matcher.observe_message(event)
        elif isinstance(event, SessionCreated):
            self._parents[event.session_id] = (event.parent_id, event.directory)

    def resync_sessions(self) -> set[str]:
        """Children of live tasks: their messages are the only record of what happened while detached."""
        return {t.session_id for t in self.scheduler.index.tasks.values()
                if t.session_id and self.scheduler.is_live(t.id)}

    # ------------------------------------------------------------------ executing actions

    def execute(self, action: Any, now: float) -> None:
        """Run one scheduler action: saves now, I/O as a task whose outcome comes back as an event."""
        if isinstance(action, SaveTask):
            self.store.save_tasks([(action.task_id, action.row)], (), now)
            self._wake(action.task_id)
        elif isinstance(action, ForgetTasks):
            self.store.forget_tasks(action.task_ids)
        elif isinstance(action, SaveOutbox):
            self.store.save_tasks((), action.rows, now)
        elif isinstance(action, PollStatus):
            if not self._polling:
                self._polling = True
                self._spawn(self._poll)
        else:
            self._spawn(self._io[type(action)], action)

    def _wake(self, task_id: str) -> None:
        event = self._changed.pop(task_id, None)
        if event is not None:
            event.set()

    async def _create_child(self, action: CreateChild) -> None:
        try:
            directory = action.directory or await self._directory_of(action.parent_session_id)
            if action.adopt:
                children = await self.client.children(action.parent_session_id, directory)
                for child in children:
                    if action.task_id in str(child.get("title", "")):
                        self._feed(ChildCreated(action.task_id, str(child["id"])))
                        return
            session = await self.client.create_session(
                title=action.title, parent_id=action.parent_session_id, directory=directory)
            self._parents[str(session["id"])] = (action.parent_session_id, directory)
            self._feed(ChildCreated(action.task_id, str(session["id"])))
        except OpencodeError as exc:
            self._feed(ChildCreateFailed(action.task_id, _reason(exc), transient=_transient(exc)))
        except KeyError as exc:
            self._feed(ChildCreateFailed(action.task_id, f"opencode's answer has no session {_reason(exc)}"))

    async def _prompt_child(self, action: PromptChild) -> None:
        try:
            if action.only_if_absent and await self._has_message(action.session_id, action.message_id,
                                                                 action.directory):
                self._feed(PromptAccepted(action.task_id, action.attempt))
                return
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
            self._feed(PromptRejected(action.task_id, action.attempt, _reason(exc), transient=_transient(exc)))
        else:
            self._feed(PromptAccepted(action.task_id, action.attempt))

    async def _abort_child(self, action: AbortChild) -> None:
        ok = True
        try:
            with anyio.fail_after(ABORT_BOUND_S):
                await self.client.abort(action.session_id, action.directory)
        except (OpencodeError, TimeoutError):
            ok = False
        self._feed(AbortDone(action.task_id, ok))

    async def _deliver(self, action: Deliver) -> None:
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
        self._feed(DeliveryResult(action.parent_session_id, action.message_id, outcome, detail))

    async def _poll(self) -> None:
        statuses: Mapping[str, Any] | None
        try:
            raw = await self.client.session_status()
            statuses = {sid: parse_status(sid, status) for sid, status in raw.items()}
        except OpencodeError:
            statuses = None
        self._polling = False
        self._feed(StatusPolled(statuses))

    async def _lookup(self, action: LookupSession) -> None:
        found: bool | None = True
        try:
            await self.client.session(action.session_id, action.directory)
        except OpencodeHTTPError as exc:
            found = False if exc.status == 404 else None
        except OpencodeError:
            found = None
        self._feed(SessionLookup(action.session_id, found))

    async def _refresh(self, action: RefreshActivity) -> None:
        newest: float | None = None
        try:
            for row in await self.client.messages(action.session_id, action.directory, limit=10):
                newest = max(newest or 0.0, _newest_time(row))
        except OpencodeError:
            newest = None
        self._feed(ActivityRefreshed(action.task_id, newest or None))

    async def _has_message(self, session_id: str, message_id: str, directory: str | None) -> bool:
        rows = await self.client.messages(session_id, directory, limit=FETCH_LIMIT)
        return any(isinstance(r, dict) and r.get("info", {}).get("id") == message_id for r in rows)

    async def _directory_of(self, session_id: str) -> str | None:
        known = self._parents.get(session_id)
        if known is not None and known[1]:
            return known[1]
        try:
            info = await self.client.session(session_id)
        except OpencodeError:
            return self.project_dir
        self._parents[session_id] = (info.get("parentID"), info.get("directory"))
        return info.get("directory") or self.project_dir

    # ------------------------------------------------------------------ the tool service

    def known_categories(self) -> list[str]:
        return [f"{name}: {about}" if about else name for name, about in known_categories(self.config).items()]

    async def call_context(self, tool: str, arguments: dict[str, Any]) -> CallContext:
        return await self.matcher.match(tool, arguments)

    async def _lineage(self, session_id: str) -> tuple[int, str] | str:
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

    async def _known_agents(self) -> tuple[KnownAgent, ...] | None:
        """opencode's agents, fetched per launch like the providers (a user may add one at any
        time); None when the call failed, and then agent launches are refused."""
        try:
            rows = await self.client.agents()
        except OpencodeError:
            return None
        return tuple(KnownAgent(str(r["name"]), str(r.get("mode", "subagent")), _agent_model(r))
                     for r in rows if isinstance(r, dict) and r.get("name"))

    async def _connected_providers(self) -> frozenset[str] | None:
        """Providers opencode can call (fetched per launch: a user may connect one at any time);
        None when unknown, and then every provider counts as connected."""
        try:
            return frozenset(await self.client.connected_providers())
        except OpencodeError:
            return None

    async def launch(self, context: CallContext, tool: str, arguments: dict[str, Any]) -> str:
        lineage = await self._lineage(context.session_id)
        depth, root = lineage if isinstance(lineage, tuple) else (0, None)
        request = LaunchRequest(
            parent_session_id=context.session_id,
            description=str(arguments.get("description") or ""),
            prompt=str(arguments.get("prompt") or ""),
            background=arguments.get("run_in_background"),
            category=arguments.get("category"),
            subagent_type=arguments.get("subagent_type"),
            session_id=arguments.get("session_id"),
            parent_message_id=context.message_id,
            parent_agent=context.agent,
            parent_model=context.model,
            depth_of_parent=depth,
            root_session_id=root,
            lineage_error=lineage if isinstance(lineage, str) else None,
            known_agents=await self._known_agents(),
            connected_providers=await self._connected_providers(),
            directory=await self._directory_of(context.session_id),
            tool=tool,
        )
        result = self._run(lambda now: self.scheduler.launch(request, now))
        if isinstance(result, ToolError):
            raise ToolFailure(result.message)
        if not result.foreground:
            return result.text
        return await self._wait_foreground(result.task_id, context)

    async def _wait_foreground(self, task_id: str, context: CallContext) -> str:
        budget = self._wait_limit(context)
        try:
            with anyio.move_on_after(budget):
                while True:
                    outcome = self._run(lambda now: self.scheduler.foreground_result(task_id, now))
                    if outcome is not None:
                        if isinstance(outcome, ToolError):
                            raise ToolFailure(outcome.message)
                        return outcome
                    await self._changed.setdefault(task_id, anyio.Event()).wait()
        except anyio.get_cancelled_exc_class():
            # Synchronous steps, so the cancellation cannot interrupt them.
            if self.stopping:
                # baton stops: the task carries on in opencode and is reported as a background
                # task (§15.1); the restarted baton picks it up.
                self._run(lambda now: self.scheduler.to_background(task_id, now))
            else:
                # The host gave up on the call: the task is cancelled with it, no notification (§14.2).
                self._run(lambda now: self.scheduler.cancel(
                    CancelRequest(task_id=task_id, caller_session_id=context.session_id), now))
            raise
        text = self._run(lambda now: self.scheduler.to_background(task_id, now))
        if isinstance(text, ToolError):
            raise ToolFailure(text.message)
        return text

    def _wait_limit(self, context: CallContext) -> float:
        """How long a tool call may wait: ``syncPollTimeoutMs``, and under opencode's 60 s MCP call
        limit unless the call is kept alive by progress (measured on 1.18.33: progress resets it)."""
        limit = self.config.background_task.sync_poll_timeout_ms / 1000.0
        return limit if context.keepalive else min(limit, HOST_CALL_LIMIT_S - 5.0)

    async def output(self, context: CallContext, task_id: str, block: bool, timeout_ms: int | None) -> str:
        waited_out = False
        if block and self.scheduler.is_live(task_id):
            limit = (30_000 if timeout_ms is None else timeout_ms) / 1000.0
            waited_out = True
            with anyio.move_on_after(max(0.0, min(limit, self._wait_limit(context)))):
                while self.scheduler.is_live(task_id):
                    await self._changed.setdefault(task_id, anyio.Event()).wait()
                waited_out = False
        text = self.scheduler.output(task_id, context.session_id, time.time(), waited_out=waited_out)
        if isinstance(text, ToolError):
            raise ToolFailure(text.message)
        return text

    async def cancel(self, context: CallContext, task_id: str | None, cancel_all: bool) -> str:
        request = CancelRequest(task_id=task_id, all=cancel_all, caller_session_id=context.session_id)
        report = self._run(lambda now: self.scheduler.cancel(request, now))
        if isinstance(report, ToolError):
            raise ToolFailure(report.message)
        return report.text

    def cancel_by_user(self, task_id: str) -> str:
        """``baton tasks cancel``: a user action, so the parent is told (§15.6)."""
        report = self._run(lambda now: self.scheduler.cancel(CancelRequest(task_id=task_id, by="user"), now))
        return report.message if isinstance(report, ToolError) else report.text

    def _run(self, step: Callable[[float], tuple[_R, list[Any]]]) -> _R:
        """One synchronous scheduler step with its actions executed, like an event through ``feed``."""
        result, actions = step(time.time())
        self._run_actions(actions)
        return result


def _transient(exc: OpencodeError) -> bool:
    """No connection, a timeout or a 5xx: opencode restarting or overloaded, worth another try.
    A 4xx is opencode's answer to this very request and would not change."""
    return isinstance(exc, OpencodeUnavailable) or (isinstance(exc, OpencodeHTTPError) and exc.status >= 500)


def _reason(exc: BaseException) -> str:
    """An exception's text for a task's error; its class when the text is empty (never blank)."""
    return str(exc) or type(exc).__name__


def _agent_model(row: Mapping[str, Any]) -> str | None:
    return normalize_model(row.get("model"))


def _newest_time(row: Any) -> float:
    """Newest creation/completion/part time of a fetched message, in epoch seconds."""
    if not isinstance(row, dict):
        return 0.0
    holders = [row.get("info") or {}, *(p for p in row.get("parts") or () if isinstance(p, dict))]
    stamps = [float(v) for h in holders for v in (h.get("time") or {}).values() if isinstance(v, int | float)]
    return max(stamps, default=0.0) / 1000.0

