"""MCP's streamable HTTP transport, server side and stateless: JSON-RPC 2.0, one message a POST.

baton's own, not the official ``mcp`` SDK's: importing the SDK costs ~55 MB of resident memory (its
client and the pydantic models of every protocol version), and baton needs five methods of it —
``initialize``, ``notifications/initialized``, ``ping``, ``tools/list`` and ``tools/call``.

Stateless by design: every POST is answered on its own (no ``Mcp-Session-Id``, no GET stream), so
a baton restart never leaves opencode holding a dead MCP session. A request is answered with
``application/json``, or with ``text/event-stream`` when it carries a progress token
(``params._meta.progressToken``) and the client accepts a stream: then ``notifications/progress``
can go out before the result, which keeps a long call open past the host's call limit. A
notification or a client's response gets 202; GET and DELETE get 405 (no server stream, no
session to end). JSON-RPC batches exist only in protocol 2025-03-26 (and the 2024-11-05 era
before it): they are answered then, and refused for a client that named a later version.

What the tools do is :mod:`baton.tools`'s: this module only speaks the protocol. Host, Origin and
the bearer token are checked before a request gets here (:class:`baton.server.Guard`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import anyio
import structlog
from starlette.types import Receive as _Receive
from starlette.types import Scope
from starlette.types import Send as _Send

from baton.errors import BatonError

__all__ = ["LATEST_PROTOCOL_VERSION", "PROTOCOL_VERSIONS", "McpEndpoint", "McpServer", "Progress"]

log = structlog.get_logger("baton.mcp")

PROTOCOL_VERSIONS: Final = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
"""The handshake-era revisions baton answers; ``initialize`` gets the client's if listed, else the latest."""

LATEST_PROTOCOL_VERSION: Final = PROTOCOL_VERSIONS[-1]

UNNAMED_VERSION: Final = "2025-03-26"
"""What a request without ``MCP-Protocol-Version`` speaks (transports spec, "Protocol Version Header")."""

BATCH_VERSIONS: Final = frozenset({"2024-11-05", "2025-03-26"})
"""Revisions with JSON-RPC batches; 2025-06-18 removed them."""

MAX_BODY_BYTES: Final = 32 * 1024 * 1024

STOP_WAIT_S: Final = 5.0
"""How long stopping waits for cancelled calls to record how they ended."""

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603

Progress = Callable[[float, str], Awaitable[None]]
"""Sends one ``notifications/progress`` (progress so far, a message) for the call being served."""

Message = dict[str, Any]
_T = TypeVar("_T")


@dataclass(frozen=True)
class McpServer:
    """What the endpoint serves: who it is, and the two tool methods.

    ``call_tool(name, arguments, progress)`` returns a ``CallToolResult`` as a dict; ``progress`` is
    None when the client asked for none or cannot receive it (no token, or no event stream)."""

    name: str
    version: str
    instructions: str
    list_tools: Callable[[], Awaitable[list[dict[str, Any]]]]
    call_tool: Callable[[str, dict[str, Any], Progress | None], Awaitable[dict[str, Any]]]


class _RpcError(BatonError):
    """A JSON-RPC error for the request being answered (``code`` from the JSON-RPC spec)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _error(request_id: Any, code: int, message: str) -> Message:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def _dump(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _media_types(accept: str | None) -> tuple[bool, bool]:
    """(json, event-stream) acceptable. No ``Accept`` header accepts anything (RFC 9110 §12.5.1)."""
    if accept is None:
        return True, True
    types = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    anything = "*/*" in types
    return (anything or bool(types & {"application/json", "application/*"}),
            anything or bool(types & {"text/event-stream", "text/*"}))


def _is_id(value: Any) -> bool:
    """MCP ids are strings or integers, never null (nor a JSON boolean)."""
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _progress_token(message: Mapping[str, Any]) -> str | int | None:
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    token = meta.get("progressToken") if isinstance(meta, dict) else None
    return token if _is_id(token) else None


async def _respond(send: _Send, status: int, payload: Any = None, headers: Mapping[str, str] | None = None) -> None:
    body = b"" if payload is None else _dump(payload)
    raw = [(b"content-length", str(len(body)).encode())]
    if payload is not None:
        raw.append((b"content-type", b"application/json"))
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: _Receive) -> bytes | None:
    """The whole request body; None when the client went away first. Raises ``_RpcError`` past the cap."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _RpcError(INVALID_REQUEST, f"request body over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class McpEndpoint:
    """The ASGI app for ``POST /mcp``: one JSON-RPC message (or a 2025-03-26 batch) per request."""

    def __init__(self, server: McpServer) -> None:
        self.server = server
        self._calls: set[anyio.CancelScope] = set()
        self._all_ended: anyio.Event | None = None
        """Made when the endpoint stops (so: set while stopping), set once no call runs."""

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Open while the endpoint serves. At its end every call still running is cancelled and
        waited for (at most :data:`STOP_WAIT_S`): a foreground task wait then turns the task into a
        background one (the runtime sees ``stopping``) before the store closes. Requests run in
        uvicorn's connection tasks, which the daemon's own cancellation does not reach."""
        try:
            yield
        finally:
            self._all_ended = anyio.Event()
            if not self._calls:
                self._all_ended.set()
            for scope in list(self._calls):
                scope.cancel()
            with anyio.move_on_after(STOP_WAIT_S, shield=True):
                await self._all_ended.wait()

    async def __call__(self, scope: Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] != "POST":  # no server-initiated stream (GET), no session to end (DELETE)
            await _respond(send, 405, _error(None, INVALID_REQUEST, "Method Not Allowed: POST JSON-RPC to this URL"),
                           {"allow": "POST"})
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        accepts_json, accepts_sse = _media_types(headers.get("accept"))
        if not (accepts_json or accepts_sse):
            await _respond(send, 406, _error(None, INVALID_REQUEST,
                                             "Not Acceptable: accept application/json and text/event-stream"))
            return
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            await _respond(send, 415, _error(None, INVALID_REQUEST,
                                             "Unsupported Media Type: Content-Type must be application/json"))
            return
        try:
            body = await _read_body(receive)
        except _RpcError as exc:
            await _respond(send, 413, _error(None, exc.code, exc.message))
            return
        if body is None:
            return
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as exc:
            await _respond(send, 400, _error(None, PARSE_ERROR, f"Parse error: {exc}"))
            return
        named = headers.get("mcp-protocol-version")
        version = named or UNNAMED_VERSION
        if isinstance(payload, list):
            await self._batch(payload, version, named, accepts_json, receive, send)
            return
        problem = _invalid(payload)
        if problem is not None:
            await _respond(send, 400, problem)
            return
        if named is not None and named not in PROTOCOL_VERSIONS and payload.get("method") != "initialize":
            await _respond(send, 400, _error(payload.get("id"), INVALID_REQUEST,
                                             f"Bad Request: unsupported MCP-Protocol-Version {named!r}; "
                                             f"supported: {', '.join(PROTOCOL_VERSIONS)}"))
            return
        if "method" not in payload or "id" not in payload:  # a notification, or a response to nothing we sent
            await _respond(send, 202)
            return
        token = _progress_token(payload)
        if accepts_sse and (token is not None or not accepts_json):
            await self._stream(payload, token, receive, send)
            return
        answer = await self._call(receive, self._answer(payload, None))
        if answer is not None:
            await _respond(send, 200, answer)
        elif self._all_ended is not None:  # stopping: the call was cancelled, not answered
            await _respond(send, 503, _error(payload["id"], INTERNAL_ERROR, "baton is stopping"))

    async def _batch(self, batch: list[Any], version: str, named: str | None, accepts_json: bool,
                     receive: _Receive, send: _Send) -> None:
        """A 2025-03-26 batch: each request answered in order, without progress, in one JSON array."""
        if named is not None and named not in PROTOCOL_VERSIONS:
            await _respond(send, 400, _error(None, INVALID_REQUEST, f"unsupported MCP-Protocol-Version {named!r}"))
            return
        if version not in BATCH_VERSIONS or not batch:
            why = "an empty batch" if version in BATCH_VERSIONS else f"JSON-RPC batches are not part of MCP {version}"
            await _respond(send, 400, _error(None, INVALID_REQUEST, f"Invalid Request: {why}"))
            return

        async def answer_all() -> list[Message]:
            answers: list[Message] = []
            for message in batch:
                problem = _invalid(message)
                if problem is not None:
                    answers.append(problem)
                elif "method" in message and "id" in message:
                    answers.append(await self._answer(message, None))
            return answers

        answers = await self._call(receive, answer_all())
        if answers is None:
            return
        if not answers:
            await _respond(send, 202)
        elif accepts_json:
            await _respond(send, 200, answers)
        else:
            await _open_stream(send)
            for answer in answers:
                await _event(send, answer)
            await send({"type": "http.response.body", "body": b""})

    async def _stream(self, request: Message, token: str | int | None, receive: _Receive, send: _Send) -> None:
        """Answer as an event stream: progress notifications first (if asked for), then the response."""
        await _open_stream(send)

        async def progress(done: float, message: str) -> None:
            params = {"progressToken": token, "progress": done, "message": message}
            await _event(send, {"jsonrpc": "2.0", "method": "notifications/progress", "params": params})

        answer = await self._call(receive, self._answer(request, progress if token is not None else None))
        if answer is not None:
            await _event(send, answer)
        await send({"type": "http.response.body", "body": b""})

    async def _call(self, receive: _Receive, work: Awaitable[_T]) -> _T | None:
        """``work``'s result, or None when the client hangs up first or baton stops: the work is then
        cancelled, so a tool call whose host gave up does not run on unseen."""
        outcome: list[_T] = []
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                tg.cancel_scope.cancel()

            self._calls.add(tg.cancel_scope)
            try:
                tg.start_soon(watch)
                outcome.append(await work)
                tg.cancel_scope.cancel()
            finally:
                self._calls.discard(tg.cancel_scope)
                if not self._calls and self._all_ended is not None:
                    self._all_ended.set()
        return outcome[0] if outcome else None

    async def _answer(self, request: Message, progress: Progress | None) -> Message:
        """The JSON-RPC response to one valid request; a bug in a method is -32603, logged."""
        request_id = request["id"]
        try:
            result = await self._method(str(request["method"]), request.get("params"), progress)
        except _RpcError as exc:
            return _error(request_id, exc.code, exc.message)
        except Exception:
            log.exception("MCP method failed", method=request["method"])
            return _error(request_id, INTERNAL_ERROR, "Internal error")
        return {"jsonrpc": "2.0", "id": request_id, "result": result}

    async def _method(self, method: str, params: Any, progress: Progress | None) -> dict[str, Any]:
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise _RpcError(INVALID_PARAMS, "Invalid params: params must be an object")
        if method == "initialize":
            asked = params.get("protocolVersion")
            if not isinstance(asked, str):
                raise _RpcError(INVALID_PARAMS, "Invalid params: initialize needs protocolVersion (a string)")
            return {
                "protocolVersion": asked if asked in PROTOCOL_VERSIONS else LATEST_PROTOCOL_VERSION,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": self.server.name, "version": self.server.version},
                "instructions": self.server.instructions,
            }
        if method == "ping":
            return {}
        if method == "tools/list":
            return {"tools": await self.server.list_tools()}
        if method == "tools/call":
            name, arguments = params.get("name"), params.get("arguments")
            if not isinstance(name, str):
                raise _RpcError(INVALID_PARAMS, "Invalid params: tools/call needs a tool name (a string)")
            if arguments is not None and not isinstance(arguments, dict):
                raise _RpcError(INVALID_PARAMS, "Invalid params: tool arguments must be an object")
            return await self.server.call_tool(name, dict(arguments or {}), progress)
        raise _RpcError(METHOD_NOT_FOUND, f"Method not found: {method}")


def _invalid(message: Any) -> Message | None:
    """The error response for something that is no JSON-RPC 2.0 message, else None."""
    if not isinstance(message, dict):
        return _error(None, INVALID_REQUEST, "Invalid Request: not a JSON-RPC message object")
    request_id = message.get("id")
    echo = request_id if _is_id(request_id) else None
    if message.get("jsonrpc") != "2.0":
        return _error(echo, INVALID_REQUEST, 'Invalid Request: jsonrpc must be "2.0"')
    if "method" in message:
        if not isinstance(message["method"], str):
            return _error(echo, INVALID_REQUEST, "Invalid Request: method must be a string")
        if "id" in message and not _is_id(request_id):
            return _error(None, INVALID_REQUEST, "Invalid Request: id must be a string or an integer")
        return None
    if _is_id(request_id) and ("result" in message or "error" in message):
        return None
    return _error(None, INVALID_REQUEST, "Invalid Request: neither a request, a notification nor a response")


async def _open_stream(send: _Send) -> None:
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache, no-transform")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})


async def _event(send: _Send, message: Message) -> None:
    await send({"type": "http.response.body", "body": b"event: message\ndata: " + _dump(message) + b"\n\n",
                "more_body": True})
