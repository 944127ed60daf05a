"""The MCP tools over real streamable HTTP: uvicorn on a loopback port, the SDK's own client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp_serving import serving_mcp

from baton import tools
from baton.tasks.service import CallContext, ToolFailure
from baton.tools import build_mcp_app

pytestmark = pytest.mark.anyio

CONTEXT = CallContext(session_id="ses_p", message_id="msg_p", part_id="prt_p", agent="build", model="prov/m")
LAUNCH = {"description": "scan the repo", "prompt": "list the modules", "category": "quick", "run_in_background": True}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeService:
    """Records every call; ``fail`` maps a method name to the exception it raises."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail: dict[str, BaseException] = {}
        self.hold: anyio.Event | None = None
        self.entered = anyio.Event()
        self.cancelled = anyio.Event()

    def _maybe_fail(self, method: str) -> None:
        if method in self.fail:
            raise self.fail[method]

    def known_categories(self) -> list[str]:
        return ["quick: small edits", "deep"]

    async def call_context(self, tool: str, arguments: dict[str, Any]) -> CallContext:
        self.calls.append(("call_context", tool, arguments))
        self._maybe_fail("call_context")
        return CONTEXT

    async def launch(self, context: CallContext, tool: str, arguments: dict[str, Any]) -> str:
        self.calls.append(("launch", context, tool, arguments))
        self._maybe_fail("launch")
        if self.hold is not None:
            self.entered.set()
            try:
                await self.hold.wait()
            except anyio.get_cancelled_exc_class():
                self.cancelled.set()
                raise
        return f"started {tool}"

    async def output(self, context: CallContext, task_id: str, block: bool, timeout_ms: int | None) -> str:
        self.calls.append(("output", context, task_id, block, timeout_ms))
        self._maybe_fail("output")
        return f"output of {task_id}"

    async def cancel(self, context: CallContext, task_id: str | None, cancel_all: bool) -> str:
        self.calls.append(("cancel", context, task_id, cancel_all))
        self._maybe_fail("cancel")
        return "cancelled 1 task"


@contextlib.asynccontextmanager
async def serving(service: FakeService, *, call_limit_s: float = 60.0) -> AsyncIterator[str]:
    """Serve the MCP app the way the engine does and yield its URL."""
    async with serving_mcp(*build_mcp_app(service, call_limit_s=call_limit_s)) as url:
        yield url


@contextlib.asynccontextmanager
async def connected(service: FakeService, *, mode: str = "legacy", **kwargs: Any) -> AsyncIterator[Client]:
    """A real SDK client on a served app; legacy mode is the initialize handshake opencode uses."""
    async with serving(service, **kwargs) as url, Client(url, mode=mode) as client:
        yield client


def text_of(result: types.CallToolResult) -> str:
    assert len(result.content) == 1 and isinstance(result.content[0], types.TextContent)
    return result.content[0].text


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_lists_four_tools_with_their_required_fields(mode: str) -> None:
    """Both protocol eras list the four tools, their required fields, and the categories in task's text."""
    async with connected(FakeService(), mode=mode) as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(listed) == {"task", "call_agent", "background_output", "background_cancel"}
    required = {name: set(tool.input_schema["required"]) for name, tool in listed.items()}
    assert required == {
        "task": {"description", "prompt", "run_in_background"},
        "call_agent": {"description", "prompt", "subagent_type", "run_in_background"},
        "background_output": {"task_id"},
        "background_cancel": set(),
    }
    assert set(listed["task"].input_schema["properties"]) == {
        "description", "prompt", "category", "subagent_type", "run_in_background", "session_id"}
    description = listed["task"].description or ""
    assert "quick: small edits" in description and "- deep" in description
    assert "exactly one" in description and "no need to poll" in description
    assert all("default" not in prop for tool in listed.values() for prop in tool.input_schema["properties"].values())


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_task_finds_the_caller_then_launches(mode: str) -> None:
    """task passes its arguments unchanged to call_context and then to launch with the found context."""
    service = FakeService()
    async with connected(service, mode=mode) as client:
        result = await client.call_tool("task", LAUNCH)
    assert not result.is_error and text_of(result) == "started task"
    assert service.calls == [("call_context", "task", LAUNCH), ("launch", CONTEXT, "task", LAUNCH)]


async def test_call_agent_launches_with_its_tool_name() -> None:
    """call_agent reaches launch under its own tool name."""
    service = FakeService()
    arguments = {"description": "review", "prompt": "review the diff", "subagent_type": "oracle",
                 "run_in_background": False}
    async with connected(service) as client:
        result = await client.call_tool("call_agent", arguments)
    assert text_of(result) == "started call_agent"
    assert service.calls[-1] == ("launch", CONTEXT, "call_agent", arguments)


async def test_background_output_defaults_and_clamps_the_timeout() -> None:
    """block defaults to false, timeout_ms to 30 s, and no wait exceeds the call limit minus 5 s."""
    service = FakeService()
    async with connected(service, call_limit_s=20.0) as client:
        first = await client.call_tool("background_output", {"task_id": "bg_1"})
        await client.call_tool("background_output", {"task_id": "bg_2", "block": True, "timeout_ms": 4000})
        await client.call_tool("background_output", {"task_id": "bg_3", "block": True, "timeout_ms": 10**9})
    assert text_of(first) == "output of bg_1"
    outputs = [call[2:] for call in service.calls if call[0] == "output"]
    assert outputs == [("bg_1", False, 15_000), ("bg_2", True, 4000), ("bg_3", True, 15_000)]


async def test_background_cancel_passes_task_id_or_all() -> None:
    """background_cancel hands the service either one task id or the all flag."""
    service = FakeService()
    async with connected(service) as client:
        result = await client.call_tool("background_cancel", {"task_id": "bg_1"})
        await client.call_tool("background_cancel", {"all": True})
    assert text_of(result) == "cancelled 1 task"
    assert [call[2:] for call in service.calls if call[0] == "cancel"] == [("bg_1", False), (None, True)]


async def test_unmatched_caller_is_a_tool_error_with_the_service_text() -> None:
    """A ToolFailure from call_context is returned as isError with its text, and nothing is launched."""
    service = FakeService()
    service.fail["call_context"] = ToolFailure("baton could not tell which session made this call")
    async with connected(service) as client:
        result = await client.call_tool("task", LAUNCH)
    assert result.is_error and text_of(result) == "baton could not tell which session made this call"
    assert [call[0] for call in service.calls] == ["call_context"]


@pytest.mark.parametrize("method", ["launch", "output", "cancel"])
async def test_tool_failure_from_the_service_is_a_tool_error(method: str) -> None:
    """Each service method's ToolFailure reaches the model as isError with exactly its text."""
    service = FakeService()
    service.fail[method] = ToolFailure(f"{method} refused: say why")
    calls: dict[str, tuple[str, dict[str, Any]]] = {
        "launch": ("task", LAUNCH),
        "output": ("background_output", {"task_id": "x"}),
        "cancel": ("background_cancel", {"all": True}),
    }
    async with connected(service) as client:
        result = await client.call_tool(*calls[method])
    assert result.is_error and text_of(result) == f"{method} refused: say why"


async def test_unexpected_exception_is_a_generic_tool_error() -> None:
    """A crash inside the service becomes a short generic isError text with no exception details."""
    service = FakeService()
    service.fail["launch"] = RuntimeError("secret internals at line 42")
    async with connected(service) as client:
        result = await client.call_tool("task", LAUNCH)
    text = text_of(result)
    assert result.is_error and text == tools.INTERNAL_ERROR_TEXT
    assert "secret" not in text and "Traceback" not in text


@pytest.mark.parametrize(
    ("tool", "arguments", "problem"),
    [
        ("task", {**LAUNCH, "run_in_background": "yes"}, "`run_in_background` must be true or false"),
        ("task", {"description": "d", "prompt": "p"}, "`run_in_background` is required"),
        ("call_agent", {"description": "d", "prompt": "p", "run_in_background": True}, "`subagent_type` is required"),
        ("call_agent", {**LAUNCH, "subagent_type": "x"}, "call_agent takes no `category`"),
        ("background_output", {"task_id": 7}, "`task_id` must be a string"),
        ("background_output", {"task_id": "x", "timeout_ms": 1.5}, "whole number of milliseconds"),
        ("background_cancel", {"all": "true"}, "`all` must be true or false"),
    ],
)
async def test_wrong_argument_types_are_refused_before_matching(tool: str, arguments: dict[str, Any],
                                                                problem: str) -> None:
    """Arguments of the wrong JSON type are a tool error naming the field; the service is never asked."""
    service = FakeService()
    async with connected(service) as client:
        result = await client.call_tool(tool, arguments)
    assert result.is_error and problem in text_of(result)
    assert service.calls == []


async def test_unknown_tool_is_a_tool_error() -> None:
    """A tool name baton does not serve is refused with the list of its tools."""
    async with connected(FakeService()) as client:
        result = await client.call_tool("nope", {})
    assert result.is_error and "background_output" in text_of(result)


async def test_long_call_sends_progress_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a progress token, a call that keeps running sends MCP progress at the interval."""
    monkeypatch.setattr(tools, "PROGRESS_INTERVAL_S", 0.05)
    service = FakeService()
    service.hold = anyio.Event()
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)
        if len(seen) == 2:
            assert service.hold is not None
            service.hold.set()

    async with connected(service) as client:
        result = await client.call_tool("task", LAUNCH, progress_callback=on_progress)
    assert text_of(result) == "started task"
    assert seen[:2] == [pytest.approx(0.05), pytest.approx(0.1)]


@pytest.mark.parametrize("progress", [True, False], ids=["event-stream", "json"])
async def test_dropped_connection_cancels_the_service_call(progress: bool) -> None:
    """When the host drops the HTTP request, the running service call is cancelled: whether the
    answer was to come as an event stream (a progress token) or as one JSON body."""
    service = FakeService()
    service.hold = anyio.Event()
    params: dict[str, Any] = {"name": "task", "arguments": LAUNCH}
    if progress:
        params["_meta"] = {"progressToken": 7}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
    headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18"}
    async with serving(service) as url, httpx2.AsyncClient() as http:
        if progress:
            async with http.stream("POST", url, json=body, headers=headers) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                await service.entered.wait()
        else:
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: http.post(url, json=body, headers=headers, timeout=30))
                await service.entered.wait()
                tg.cancel_scope.cancel()  # the request is abandoned: its connection closes
        with anyio.fail_after(5):
            await service.cancelled.wait()
