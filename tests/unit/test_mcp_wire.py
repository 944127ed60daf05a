"""baton's own MCP endpoint on the wire: JSON-RPC 2.0 over streamable HTTP, stateless.

Raw HTTP requests pin what the transport spec asks of a server (status codes, media types, id
echo, version negotiation, batches per version); the official SDK client checks the whole
handshake against it, as opencode's client does.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp_serving import serving_mcp

from baton.mcp_wire import LATEST_PROTOCOL_VERSION, McpEndpoint, McpServer, Progress

pytestmark = pytest.mark.anyio

ACCEPT = "application/json, text/event-stream"
TOOL = {"name": "echo", "description": "says it back", "inputSchema": {"type": "object", "properties": {}}}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def echo_server(ticks: int = 0) -> McpServer:
    """One tool, ``echo``: its arguments back as text, after ``ticks`` progress notifications."""

    async def list_tools() -> list[dict[str, Any]]:
        return [TOOL]

    async def call_tool(name: str, arguments: dict[str, Any], progress: Progress | None) -> dict[str, Any]:
        if progress is not None:
            for n in range(ticks):
                await progress(float(n + 1), f"tick {n + 1}")
        if name == "boom":
            raise RuntimeError("a bug")
        text = json.dumps({"name": name, "arguments": arguments, "progress": progress is not None})
        return {"content": [{"type": "text", "text": text}], "isError": False}

    return McpServer(name="baton", version="1", instructions="be brief", list_tools=list_tools,
                     call_tool=call_tool)


@contextlib.asynccontextmanager
async def serving(server: McpServer) -> AsyncIterator[str]:
    endpoint = McpEndpoint(server)
    async with serving_mcp(endpoint, endpoint.running) as url:
        yield url


async def post(url: str, body: Any, *, headers: dict[str, str] | None = None,
               raw: bytes | None = None) -> httpx2.Response:
    sent = {"accept": ACCEPT, "content-type": "application/json", **(headers or {})}
    async with httpx2.AsyncClient() as http:
        return await http.post(url, content=raw if raw is not None else json.dumps(body), headers=sent, timeout=10)


def request(method: str, params: dict[str, Any] | None = None, request_id: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, **({"params": params} if params else {})}


def sse_messages(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[len("data: "):]) for line in text.splitlines() if line.startswith("data: ")]


@pytest.mark.parametrize(("asked", "answered"), [("2025-06-18", "2025-06-18"), ("2025-03-26", "2025-03-26"),
                                                 ("2025-11-25", "2025-11-25"), ("2099-01-01", LATEST_PROTOCOL_VERSION)])
async def test_initialize_negotiates_the_version(asked: str, answered: str) -> None:
    """The client's version when baton speaks it, else baton's latest; name, tools capability, instructions."""
    params = {"protocolVersion": asked, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
    async with serving(echo_server()) as url:
        response = await post(url, request("initialize", params, "init-1"))
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert "mcp-session-id" not in response.headers  # stateless
    body = response.json()
    assert body["id"] == "init-1" and body["jsonrpc"] == "2.0"
    assert body["result"] == {"protocolVersion": answered, "capabilities": {"tools": {}},
                              "serverInfo": {"name": "baton", "version": "1"}, "instructions": "be brief"}


async def test_methods_and_their_errors() -> None:
    """ping, tools/list and tools/call answer with the request's id; unknown methods and bad params are
    JSON-RPC errors (HTTP 200); a bug in a method is -32603 without its details."""
    headers = {"mcp-protocol-version": "2025-06-18"}
    async with serving(echo_server()) as url:
        ping = (await post(url, request("ping", request_id=7), headers=headers)).json()
        listed = (await post(url, request("tools/list"), headers=headers)).json()
        called = (await post(url, request("tools/call", {"name": "echo", "arguments": {"a": 1}}),
                             headers=headers)).json()
        unknown = await post(url, request("resources/list"), headers=headers)
        no_name = (await post(url, request("tools/call", {"arguments": {}}), headers=headers)).json()
        bad_args = (await post(url, request("tools/call", {"name": "echo", "arguments": [1]}), headers=headers)).json()
        bad_params = (await post(url, {**request("ping"), "params": [1]}, headers=headers)).json()
        boom = (await post(url, request("tools/call", {"name": "boom"}), headers=headers)).json()
    assert ping == {"jsonrpc": "2.0", "id": 7, "result": {}}
    assert listed["result"] == {"tools": [TOOL]}
    assert json.loads(called["result"]["content"][0]["text"]) == {"name": "echo", "arguments": {"a": 1},
                                                                  "progress": False}
    assert unknown.status_code == 200 and unknown.json()["error"]["code"] == -32601
    assert [no_name["error"]["code"], bad_args["error"]["code"], bad_params["error"]["code"]] == [-32602] * 3
    assert boom["error"] == {"code": -32603, "message": "Internal error"}


async def test_malformed_requests() -> None:
    """Bad JSON is -32700, something that is no JSON-RPC request -32600, both HTTP 400."""
    async with serving(echo_server()) as url:
        garbage = await post(url, None, raw=b"{not json")
        no_version = await post(url, {"id": 1, "method": "ping"})
        null_id = await post(url, {"jsonrpc": "2.0", "id": None, "method": "ping"})
        scalar = await post(url, 42)
    assert garbage.status_code == 400 and garbage.json()["error"]["code"] == -32700
    assert no_version.status_code == 400 and no_version.json() == {
        "jsonrpc": "2.0", "id": 1, "error": {"code": -32600, "message": 'Invalid Request: jsonrpc must be "2.0"'}}
    assert null_id.status_code == 400 and null_id.json()["error"]["code"] == -32600
    assert scalar.status_code == 400 and scalar.json()["error"]["code"] == -32600


async def test_http_level_rules() -> None:
    """Notifications and responses: 202, no body; GET and DELETE: 405; a wrong media type: 406/415;
    an unsupported MCP-Protocol-Version: 400 (initialize, which negotiates it, excepted)."""
    async with serving(echo_server()) as url:
        initialized = await post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        a_response = await post(url, {"jsonrpc": "2.0", "id": 3, "result": {}})
        async with httpx2.AsyncClient() as http:
            get = await http.get(url, headers={"accept": "text/event-stream"})
            delete = await http.delete(url)
        not_acceptable = await post(url, request("ping"), headers={"accept": "text/html"})
        not_json = await post(url, request("ping"), headers={"content-type": "text/plain"})
        too_new = await post(url, request("ping"), headers={"mcp-protocol-version": "2026-07-28"})
        init = await post(url, request("initialize", {"protocolVersion": "2025-06-18"}),
                          headers={"mcp-protocol-version": "2026-07-28"})
    assert (initialized.status_code, initialized.content) == (202, b"")
    assert (a_response.status_code, a_response.content) == (202, b"")
    assert get.status_code == 405 and delete.status_code == 405 and get.headers["allow"] == "POST"
    assert not_acceptable.status_code == 406 and not_json.status_code == 415
    assert too_new.status_code == 400 and "2026-07-28" in too_new.json()["error"]["message"]
    assert init.status_code == 200 and init.json()["result"]["protocolVersion"] == "2025-06-18"


async def test_batches_only_where_the_version_has_them() -> None:
    """2025-03-26 (or no version header, which means it) answers a batch in one array, notifications
    left out; 2025-06-18 removed batches: refused."""
    batch = [request("ping", request_id=1), {"jsonrpc": "2.0", "method": "notifications/initialized"},
             request("tools/list", request_id="two"), {"jsonrpc": "1.0", "id": 9, "method": "ping"}]
    async with serving(echo_server()) as url:
        unnamed = await post(url, batch)
        old = await post(url, batch, headers={"mcp-protocol-version": "2025-03-26"})
        only_notes = await post(url, [{"jsonrpc": "2.0", "method": "notifications/initialized"}])
        empty = await post(url, [])
        new = await post(url, batch, headers={"mcp-protocol-version": "2025-06-18"})
    for response in (unnamed, old):
        assert response.status_code == 200
        answers = response.json()
        assert [a["id"] for a in answers] == [1, "two", 9]
        assert answers[0]["result"] == {} and answers[1]["result"] == {"tools": [TOOL]}
        assert answers[2]["error"]["code"] == -32600
    assert only_notes.status_code == 202
    assert empty.status_code == 400 and empty.json()["error"]["code"] == -32600
    assert new.status_code == 400 and "batches" in new.json()["error"]["message"]


async def test_a_progress_token_gets_an_event_stream() -> None:
    """With params._meta.progressToken the answer is an event stream: the progress notifications
    (with the token) first, then the response; without one, plain JSON and no progress."""
    params = {"name": "echo", "arguments": {}, "_meta": {"progressToken": "tok"}}
    async with serving(echo_server(ticks=2)) as url:
        streamed = await post(url, request("tools/call", params, 5))
        json_only = await post(url, request("tools/call", params, 6), headers={"accept": "application/json"})
    assert streamed.headers["content-type"].startswith("text/event-stream")
    messages = sse_messages(streamed.text)
    assert [m.get("method") for m in messages] == ["notifications/progress", "notifications/progress", None]
    assert messages[0]["params"] == {"progressToken": "tok", "progress": 1.0, "message": "tick 1"}
    assert messages[2]["id"] == 5 and json.loads(messages[2]["result"]["content"][0]["text"])["progress"] is True
    assert json_only.headers["content-type"] == "application/json"
    assert json.loads(json_only.json()["result"]["content"][0]["text"])["progress"] is False


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_the_official_client_connects_lists_and_calls_with_progress(mode: str) -> None:
    """The SDK's client (what opencode's does, in Python): handshake at its latest handshake version
    (auto mode probes the 2026 era first, and falls back), list, and a call with a progress callback."""
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))

    async with serving(echo_server(ticks=2)) as url, Client(url, mode=mode) as client:
        assert client.protocol_version == LATEST_PROTOCOL_VERSION
        assert client.server_info is not None and client.server_info.name == "baton"
        assert [tool.name for tool in (await client.list_tools()).tools] == ["echo"]
        result = await client.call_tool("echo", {"x": "y"}, progress_callback=on_progress)
    assert not result.is_error
    assert seen == [(1.0, "tick 1"), (2.0, "tick 2")]
