"""The tools' side of background tasks: :class:`TaskTools` implements
:class:`~baton.tasks.service.TaskService` for the MCP tools (:mod:`baton.tools`) and the
``baton tasks`` routes.

It finds the calling session (:class:`~baton.runtime.calls.CallMatcher`), walks its lineage
(:class:`~baton.runtime.tasks.SessionTree`), and takes the scheduler's tool steps — launch,
cancel, a foreground wait — through :class:`Steps` (the router), so their actions run exactly as
if an event had caused them. Waits end at each save of the task (:class:`~baton.runtime.tasks.TaskChanges`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import anyio

from baton.clock import Clock
from baton.models import normalize_model
from baton.opencode.client import OpencodeClient, OpencodeError
from baton.runtime.calls import CallMatcher
from baton.runtime.tasks import SessionTree, TaskChanges
from baton.settings import Config
from baton.tasks.actions import TaskAction
from baton.tasks.launch import KnownAgent, LaunchRequest, ToolError, known_categories
from baton.tasks.scheduler import CancelRequest, Scheduler
from baton.tasks.service import CallContext, ToolFailure

__all__ = ["HOST_CALL_LIMIT_S", "Steps", "TaskTools"]

HOST_CALL_LIMIT_S = 60.0  # opencode's default MCP call timeout

_R = TypeVar("_R")


class Steps(Protocol):
    """Runs one synchronous scheduler step and executes its actions (the router)."""

    def run_step(self, step: Callable[[float], tuple[_R, Sequence[TaskAction]]]) -> _R: ...


class TaskTools:
    """Background tasks as the tools see them: launch, output, cancel; and ``baton tasks cancel``."""

    def __init__(self, client: OpencodeClient, config: Config, scheduler: Scheduler, steps: Steps, *,
                 matcher: CallMatcher, tree: SessionTree, changes: TaskChanges, clock: Clock) -> None:
        self.client = client
        self.config = config
        self.scheduler = scheduler
        self.matcher = matcher
        self._steps = steps
        self._tree = tree
        self._changes = changes
        self._clock = clock
        # Set by a clean stop (SIGINT/SIGTERM) before the tool calls are cancelled.
        self.stopping = False

    def known_categories(self) -> list[str]:
        return [f"{name}: {about}" if about else name for name, about in known_categories(self.config).items()]

    async def call_context(self, tool: str, arguments: dict[str, Any]) -> CallContext:
        return await self.matcher.match(tool, arguments)

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
        lineage = await self._tree.lineage(context.session_id)
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
            parent_variant=context.variant,
            depth_of_parent=depth,
            root_session_id=root,
            lineage_error=lineage if isinstance(lineage, str) else None,
            known_agents=await self._known_agents(),
            connected_providers=await self._connected_providers(),
            directory=await self._tree.directory_of(context.session_id),
            tool=tool,
        )
        result = self._steps.run_step(lambda now: self.scheduler.launch(request, now))
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
                    outcome = self._steps.run_step(lambda now: self.scheduler.foreground_result(task_id, now))
                    if outcome is not None:
                        if isinstance(outcome, ToolError):
                            raise ToolFailure(outcome.message)
                        return outcome
                    await self._changes.wait(task_id)
        except anyio.get_cancelled_exc_class():
            # Synchronous steps, so the cancellation cannot interrupt them.
            if self.stopping:
                # baton stops: the task carries on in opencode and is reported as a background
                # task (§15.1); the restarted baton picks it up.
                self._steps.run_step(lambda now: self.scheduler.to_background(task_id, now))
            else:
                # The host gave up on the call: the task is cancelled with it, no notification (§14.2).
                self._steps.run_step(lambda now: self.scheduler.cancel(
                    CancelRequest(task_id=task_id, caller_session_id=context.session_id), now))
            raise
        text = self._steps.run_step(lambda now: self.scheduler.to_background(task_id, now))
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
                    await self._changes.wait(task_id)
                waited_out = False
        text = self.scheduler.output(task_id, context.session_id, self._clock.time(), waited_out=waited_out)
        if isinstance(text, ToolError):
            raise ToolFailure(text.message)
        return text

    async def cancel(self, context: CallContext, task_id: str | None, cancel_all: bool) -> str:
        request = CancelRequest(task_id=task_id, all=cancel_all, caller_session_id=context.session_id)
        report = self._steps.run_step(lambda now: self.scheduler.cancel(request, now))
        if isinstance(report, ToolError):
            raise ToolFailure(report.message)
        return report.text

    def cancel_by_user(self, task_id: str) -> str:
        """``baton tasks cancel``: a user action, so the parent is told (§15.6)."""
        report = self._steps.run_step(lambda now: self.scheduler.cancel(CancelRequest(task_id=task_id, by="user"), now))
        return report.message if isinstance(report, ToolError) else report.text


def _agent_model(row: Mapping[str, Any]) -> str | None:
    return normalize_model(row.get("model"))
