"""The seam between the MCP tools (``baton/tools.py``) and the task runtime (the engine side).

The tools know MCP and how to phrase a result; the runtime knows opencode, the store and the
scheduler. Neither imports the other: the tools take a :class:`TaskService`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from baton.errors import BatonError

__all__ = ["CallContext", "TaskService", "ToolFailure"]


@dataclass(frozen=True, slots=True)
class CallContext:
    """The opencode tool call an MCP call belongs to, found on the event stream (spec §14.1)."""

    session_id: str
    message_id: str | None
    part_id: str
    agent: str | None
    model: str | None
    # The variant the caller's newest prompt chose, when that prompt named the model of this call.
    variant: str | None = None
    # The call gets MCP progress every few seconds: opencode 1.18.33 then keeps it open past its
    # 60 s call limit (measured), so waits may run to ``syncPollTimeoutMs``.
    keepalive: bool = False


class ToolFailure(BatonError):
    """A tool error for the model to read (MCP ``isError``): what was wrong, and what to do instead."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class TaskService(Protocol):
    """What the MCP tools need from the running baton. Every method raises :class:`ToolFailure`."""

    def known_categories(self) -> list[str]:
        """Category names for the ``task`` tool description."""
        ...

    async def call_context(self, tool: str, arguments: dict[str, Any]) -> CallContext:
        """Find the calling session: the running tool part ``baton_<tool>`` with these arguments."""
        ...

    async def launch(self, context: CallContext, tool: str, arguments: dict[str, Any]) -> str:
        """``task`` / ``call_agent``: start (or, in the foreground, run to its end) a task."""
        ...

    async def output(self, context: CallContext, task_id: str, block: bool, timeout_ms: int | None) -> str:
        """``background_output``: a task's status or result."""
        ...

    async def cancel(self, context: CallContext, task_id: str | None, cancel_all: bool) -> str:
        """``background_cancel``: cancel one of the caller's tasks, or all of them."""
        ...
