"""The MCP server opencode's models call: ``task``, ``call_agent``, ``background_output``, ``background_cancel``.

Served by baton's own small MCP endpoint (:mod:`baton.mcp_wire`: JSON-RPC over streamable HTTP,
stateless, by design: every POST is served on its own, so a baton restart or an SSE reconnect never
leaves opencode holding a dead MCP session). :func:`build_mcp_app` returns the ASGI app together
with the context manager the engine keeps open around uvicorn: closing it cancels the calls still
running, so a foreground wait records its task as a background one before baton exits.

This module only checks argument *types*; everything that needs state (which session called,
whether a category exists, the task itself) is the :class:`TaskService`'s. Each call finds its
calling session first (:meth:`TaskService.call_context`), then runs the service method. A
:class:`ToolFailure` becomes an MCP tool error (``isError``) with its text; any other exception is
logged and becomes a short generic tool error: a model never sees a stack trace.

The engine registers this server with opencode at run time (``POST /mcp``, see
``OpencodeClient.register_mcp``); its models then see the tools as ``baton_<tool>``.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any, Final

import anyio
import structlog
from starlette.types import ASGIApp

from baton.errors import BatonError
from baton.mcp_wire import McpEndpoint, McpServer, Progress
from baton.tasks.service import CallContext, TaskService, ToolFailure

__all__ = [
    "DEFAULT_OUTPUT_TIMEOUT_MS",
    "PROGRESS_INTERVAL_S",
    "SERVER_NAME",
    "TOOL_NAMES",
    "build_mcp_app",
    "build_server",
    "tool_definitions",
]

log = structlog.get_logger("baton.tools")

SERVER_NAME: Final = "baton"
"""The MCP server name opencode knows baton by; it prefixes every tool (``baton_task``)."""

TOOL_NAMES: Final = ("task", "call_agent", "background_output", "background_cancel")

DEFAULT_OUTPUT_TIMEOUT_MS: Final = 30_000
"""``background_output`` wait when the model gives no ``timeout_ms`` (spec §14.3)."""

CALL_MARGIN_S: Final = 5.0
"""Kept free below the host's MCP call limit, so baton answers before opencode gives up."""

PROGRESS_INTERVAL_S: Final = 10.0
"""How often a long call sends MCP progress, when the client asked for it with a progress token."""


INTERNAL_ERROR_TEXT: Final = (
    "[baton] This tool failed because of an internal error in baton; the details are in baton's log. "
    "Nothing here says whether a task was started: check with background_output before retrying."
)

_PROPS_TASK: dict[str, dict[str, Any]] = {
    "description": {
        "type": "string",
        "description": "A short label for the task, 3 to 6 words. Shown in notifications and listings.",
    },
    "prompt": {
        "type": "string",
        "description": (
            "The complete instructions for the subagent. It starts with none of this conversation: "
            "include the goal, the files or facts it needs, constraints, and what its answer should contain."
        ),
    },
    "run_in_background": {
        "type": "boolean",
        "description": (
            "true: return at once with a task id and get a message in this session when the task ends. "
            "false: wait here for the answer."
        ),
    },
    "session_id": {
        "type": "string",
        "description": (
            "Continue an ended task: the child session id a previous result gave. The subagent keeps its "
            "earlier context and receives `prompt` as a follow-up."
        ),
    },
}


def _schema(properties: Mapping[str, Mapping[str, Any]], required: Sequence[str]) -> dict[str, Any]:
    """An object schema. No ``default`` keywords, so nothing between the model and baton fills values in
    (the call matcher compares the arguments with what opencode recorded, see :mod:`baton.runtime.calls`)."""
    return {"type": "object", "properties": {k: dict(v) for k, v in properties.items()}, "required": list(required)}


def _tool(name: str, description: str, input_schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "description": description, "inputSchema": input_schema}


def tool_definitions(categories: Sequence[str]) -> list[dict[str, Any]]:
    """The four tools as ``tools/list`` gives them; ``categories`` come from the service at listing time."""
    listed = "\n".join(f"- {c}" for c in categories) or "- (none configured)"
    foreground = (
        "With run_in_background=false the call waits for the answer (up to the configured limit, 10 minutes "
        "by default); a task that needs longer keeps running as a background task and you are told so, with "
        "its id."
    )
    background = (
        "With run_in_background=true the call returns at once with a task id. When the task ends, baton posts "
        "a message with the outcome into this session, so there is no need to poll or to wait: carry on with "
        "other work and read the result when the message arrives."
    )
    task_text = (
        "Hand a self-contained piece of work to a subagent that runs in its own child session, for example "
        "research, a focused change, or a review that does not need you in the loop. Several background "
        "tasks can run at once.\n\n"
        "Choose who does the work with exactly one of:\n"
        "- category: a kind of work; baton picks the agent and model configured for it.\n"
        "- subagent_type: the name of a subagent (not a primary agent).\n"
        "Giving both, or neither, is an error. When continuing with session_id, both may be left out.\n\n"
        f"{background}\n{foreground}\n\n"
        "To follow up on an ended task with its context intact, call again with session_id set to its child "
        "session id and a new prompt.\n\n"
        f"Known categories:\n{listed}"
    )
    call_agent_text = (
        "Run a named subagent on a self-contained piece of work in its own child session. The same as `task` "
        "with subagent_type, and without categories: use it when you know which agent should do the work.\n\n"
        f"{background}\n{foreground}\n\n"
        "To follow up on an ended task with its context intact, call again with session_id set to its child "
        "session id and a new prompt."
    )
    output_text = (
        "Read the state of a task started with task or call_agent: the answer once it has ended, otherwise "
        "its progress (status, model, run time, last activity). Reading an ended task again gives the same "
        "answer. Background tasks announce their end in this session by themselves, so call this to read "
        "a result or to check on a task that seems slow, not in a loop.\n\n"
        f"block=true waits until the task ends or timeout_ms passes (default {DEFAULT_OUTPUT_TIMEOUT_MS} ms); "
        "block defaults to false."
    )
    cancel_text = (
        "Stop tasks this session started (and the tasks they started in turn). Give exactly one of "
        "task_id (one live task) or all=true (every live task of this session). A cancelled task sends no "
        "end-of-task message. The result says, per task, how to continue it later with task(session_id=...)."
    )
    return [
        _tool(
            "task",
            task_text,
            _schema(
                {
                    "description": _PROPS_TASK["description"],
                    "prompt": _PROPS_TASK["prompt"],
                    "category": {
                        "type": "string",
                        "description": "A kind of work from the list of known categories. Not with subagent_type.",
                    },
                    "subagent_type": {
                        "type": "string",
                        "description": "The name of the subagent to run. Not with category.",
                    },
                    "run_in_background": _PROPS_TASK["run_in_background"],
                    "session_id": _PROPS_TASK["session_id"],
                },
                ["description", "prompt", "run_in_background"],
            ),
        ),
        _tool(
            "call_agent",
            call_agent_text,
            _schema(
                {
                    "description": _PROPS_TASK["description"],
                    "prompt": _PROPS_TASK["prompt"],
                    "subagent_type": {"type": "string", "description": "The name of the subagent to run."},
                    "run_in_background": _PROPS_TASK["run_in_background"],
                    "session_id": _PROPS_TASK["session_id"],
                },
                ["description", "prompt", "subagent_type", "run_in_background"],
            ),
        ),
        _tool(
            "background_output",
            output_text,
            _schema(
                {
                    "task_id": {"type": "string", "description": "The task id that task or call_agent returned."},
                    "block": {"type": "boolean", "description": "Wait for a live task to end. Default false."},
                    "timeout_ms": {
                        "type": "integer",
                        "minimum": 0,
                        "description": f"How long block=true waits, in ms. Default {DEFAULT_OUTPUT_TIMEOUT_MS}.",
                    },
                },
                ["task_id"],
            ),
        ),
        _tool(
            "background_cancel",
            cancel_text,
            _schema(
                {
                    "task_id": {"type": "string", "description": "The task to cancel. Not with all."},
                    "all": {"type": "boolean", "description": "true: cancel every live task of this session."},
                },
                [],
            ),
        ),
    ]


# ---------------------------------------------------------------------------- argument checks


class _BadArguments(BatonError):
    """An argument of the wrong JSON type: reported before the calling session is looked up."""


def _string(args: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = args.get(key)
    if value is None:
        if required:
            raise _BadArguments(f"`{key}` is required (a string)")
        return None
    if not isinstance(value, str):
        raise _BadArguments(f"`{key}` must be a string")
    return value


def _boolean(args: Mapping[str, Any], key: str, *, required: bool = False) -> bool | None:
    value = args.get(key)
    if value is None:
        if required:
            raise _BadArguments(f"`{key}` is required (true or false)")
        return None
    if not isinstance(value, bool):
        raise _BadArguments(f"`{key}` must be true or false")
    return value


def _milliseconds(args: Mapping[str, Any], key: str) -> int | None:
    value = args.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _BadArguments(f"`{key}` must be a whole number of milliseconds")
    if value != int(value):
        raise _BadArguments(f"`{key}` must be a whole number of milliseconds")
    return int(value)


def _check_launch(tool: str, args: Mapping[str, Any]) -> None:
    _string(args, "description", required=True)
    _string(args, "prompt", required=True)
    _boolean(args, "run_in_background", required=True)
    _string(args, "session_id")
    _string(args, "subagent_type", required=tool == "call_agent" and args.get("session_id") is None)
    if tool == "task":
        _string(args, "category")
    elif args.get("category") is not None:
        raise _BadArguments("call_agent takes no `category`; use task for a category")


def _wait_limit_ms(call_limit_s: float) -> int:
    return max(0, int((call_limit_s - CALL_MARGIN_S) * 1000))


# ---------------------------------------------------------------------------- serving


def _text(text: str, *, error: bool = False) -> dict[str, Any]:
    """A ``CallToolResult``: one text block, ``isError`` for a tool error the model should read."""
    return {"content": [{"type": "text", "text": text}], "isError": error}


class _Tools:
    """The tool handlers, bound to one service."""

    def __init__(self, service: TaskService, call_limit_s: float) -> None:
        self.service = service
        self.call_limit_s = call_limit_s

    async def list_tools(self) -> list[dict[str, Any]]:
        try:
            categories = list(self.service.known_categories())
        except Exception:
            log.exception("listing categories failed")
            categories = []
        return tool_definitions(categories)

    async def call_tool(self, name: str, arguments: dict[str, Any], progress: Progress | None) -> dict[str, Any]:
        """One ``tools/call``; ``progress`` is None unless the host asked for progress and can receive it."""
        try:
            if name not in TOOL_NAMES:
                return _text(f"[baton] There is no tool {name!r}. baton's tools: {', '.join(TOOL_NAMES)}.", error=True)
            self._check(name, arguments)
            if progress is not None:
                return _text(await _with_progress(progress, self._run(name, arguments, keepalive=True)))
            return _text(await self._run(name, arguments, keepalive=False))
        except _BadArguments as exc:
            return _text(f"[baton] Not done: {exc}. Nothing was started or changed.", error=True)
        except ToolFailure as exc:
            return _text(exc.text, error=True)
        except Exception:
            log.exception("tool call failed", tool=name)
            return _text(INTERNAL_ERROR_TEXT, error=True)

    def _check(self, name: str, args: Mapping[str, Any]) -> None:
        if name in ("task", "call_agent"):
            _check_launch(name, args)
        elif name == "background_output":
            _string(args, "task_id", required=True)
            _boolean(args, "block")
            _milliseconds(args, "timeout_ms")
        else:
            _string(args, "task_id")
            _boolean(args, "all")

    async def _run(self, name: str, args: dict[str, Any], *, keepalive: bool) -> str:
        context: CallContext = replace(await self.service.call_context(name, args), keepalive=keepalive)
        if name in ("task", "call_agent"):
            return await self.service.launch(context, name, args)
        if name == "background_output":
            timeout_ms = _milliseconds(args, "timeout_ms")
            timeout_ms = DEFAULT_OUTPUT_TIMEOUT_MS if timeout_ms is None else timeout_ms
            if not keepalive:  # without progress the host's call limit bounds the wait
                timeout_ms = min(max(0, timeout_ms), _wait_limit_ms(self.call_limit_s))
            return await self.service.output(context, str(args["task_id"]), bool(args.get("block")), timeout_ms)
        return await self.service.cancel(context, _string(args, "task_id"), bool(args.get("all")))


async def _with_progress(progress: Progress, call: Awaitable[str]) -> str:
    """Await ``call`` while sending MCP progress every :data:`PROGRESS_INTERVAL_S` (spec §14.2 rule 3)."""

    async def tick() -> None:
        elapsed = 0.0
        while True:
            await anyio.sleep(PROGRESS_INTERVAL_S)
            elapsed += PROGRESS_INTERVAL_S
            try:
                await progress(elapsed, f"still working after {elapsed:g} s")
            except Exception:
                log.debug("progress notification failed; no more will be sent", exc_info=True)
                return

    # Outcome kept outside the task group, which would wrap an exception in an ExceptionGroup.
    result = ""
    failure: Exception | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        try:
            result = await call
        except Exception as exc:
            failure = exc
        finally:
            tg.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return result


def build_server(service: TaskService, *, call_limit_s: float = 60.0) -> McpServer:
    """baton's tools as an MCP server description; :func:`build_mcp_app` serves it over HTTP."""
    tools = _Tools(service, call_limit_s)
    return McpServer(
        name=SERVER_NAME,
        version="1",
        instructions=(
            "baton runs subagent tasks in child sessions. Background tasks report back in this session "
            "when they end, so they never need polling."
        ),
        list_tools=tools.list_tools,
        call_tool=tools.call_tool,
    )


def build_mcp_app(
    service: TaskService,
    *,
    call_limit_s: float = 60.0,
) -> tuple[ASGIApp, Callable[[], AbstractAsyncContextManager[None]]]:
    """The MCP endpoint as an ASGI app, and a factory for the context that must be open while it serves.

    Mount the app at ``/mcp`` with ``Route("/mcp", endpoint=app)`` (a ``Mount`` would redirect
    ``/mcp`` to ``/mcp/``). Enter the context in the task that runs uvicorn, around it: when it
    closes, calls still running are cancelled and waited for (see :meth:`McpEndpoint.running`).
    ``call_limit_s`` is the host's MCP call timeout; waits are kept 5 s below it. Host, Origin and
    the token are checked before the app (:class:`baton.server.Guard`, which also knows a
    non-loopback ``--listen``).
    """
    endpoint = McpEndpoint(build_server(service, call_limit_s=call_limit_s))
    return endpoint, endpoint.running
