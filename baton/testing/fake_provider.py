"""A scriptable OpenAI-compatible model provider, to reproduce provider failures offline.

opencode talks to it as a custom provider (`"npm": "@ai-sdk/openai-compatible"`,
`options.baseURL = FakeProvider.url`).  Each model has a script of steps; every
chat request for that model consumes the next step and the last step repeats
forever, so "fail twice, then answer" is `script("m", Refuse(429, ...),
Refuse(429, ...), Answer("ok"))`.

The server runs uvicorn on its own event loop in a background thread, so sync
tests and async code can both drive it.  Also runnable as
`python -m baton.testing.fake_provider --port N --script script.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from baton.errors import BatonError

# The steps live in fake_script and the OpenAI response shapes in fake_wire; this module is the
# server that plays a script (the docstring above is also the CLI's --help). Their names stay
# importable from here.
from baton.testing.fake_script import (
    Answer,
    Drop,
    Hang,
    Refuse,
    Step,
    ToolCall,
    load_script,
    script_from_json,
    step_from_json,
)
from baton.testing.fake_wire import Completion, default_error_type, error_response, read_json, split_chunks, sse

__all__ = [
    "Answer",
    "Drop",
    "FakeProvider",
    "Hang",
    "LoggedRequest",
    "Refuse",
    "Step",
    "ToolCall",
    "load_script",
    "main",
    "script_from_json",
    "split_chunks",
    "step_from_json",
]

_log = logging.getLogger(__name__)

_DEFAULT_STEP: Step = Answer("ok")
_CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One request the fake provider received, logged before it was answered."""

    path: str
    model: str | None
    received: float
    """`time.monotonic()` when the request body had been read."""
    wall: float
    """`time.time()` at the same moment."""
    body: dict[str, Any]
    headers: dict[str, str]
    step: Step | None
    """The scripted step that answers it (None for non-chat paths)."""

    @property
    def stream(self) -> bool:
        """Whether the client asked for a streamed answer."""
        return bool(self.body.get("stream"))


class _DropConnection(BatonError):
    """Raised inside a response stream to make uvicorn abort the connection."""


class _QuietDrop(logging.Filter):
    """Hides uvicorn's traceback for connections dropped on purpose by a `Drop` step."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if isinstance(exc, _DropConnection):
                return False
            if isinstance(exc, BaseExceptionGroup) and any(isinstance(e, _DropConnection) for e in exc.exceptions):
                return False
            exc = exc.__cause__ or exc.__context__
        return True


class _Server(uvicorn.Server):
    """uvicorn server that signals a threading.Event once its sockets accept connections."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self.ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self.ready.set()


class FakeProvider:
    """OpenAI-compatible server whose answer per model is scripted (see module docstring)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._port = port
        self._lock = threading.Condition()
        self._scripts: dict[str, tuple[Step, ...]] = {}
        self._cursor: dict[str, int] = {}
        self._requests: list[LoggedRequest] = []
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._server: _Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/models", self._models, methods=["GET"]),
                Route("/{path:path}", self._other, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
            ]
        )

    # -- scripting ---------------------------------------------------------------------------------

    def script(self, model: str, *steps: Step) -> Self:
        """Replace `model`'s script with `steps` and rewind it; each request takes the next step."""
        if not steps:
            raise ValueError("script() needs at least one step")
        with self._lock:
            self._scripts[model] = tuple(steps)
            self._cursor[model] = 0
        return self

    def _next_step(self, model: str | None) -> Step:
        with self._lock:
            steps = self._scripts.get(model or "")
            if not steps:
                return _DEFAULT_STEP
            i = self._cursor.get(model or "", 0)
            self._cursor[model or ""] = i + 1
            return steps[min(i, len(steps) - 1)]

    # -- request log -------------------------------------------------------------------------------

    @property
    def requests(self) -> list[LoggedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, model: str) -> list[LoggedRequest]:
        """The chat requests received for `model`, oldest first."""
        with self._lock:
            return [r for r in self._requests if r.model == model and r.path in _CHAT_PATHS]

    def clear_requests(self) -> None:
        """Forget the request log (scripts and their positions are kept)."""
        with self._lock:
            self._requests.clear()

    def wait_for_requests(self, model: str | None, n: int, timeout: float = 10.0) -> list[LoggedRequest]:
        """Block until at least `n` chat requests for `model` (any model if None) arrived; return them.

        Raises TimeoutError listing what did arrive, so a failing test says why.
        """

        def matching() -> list[LoggedRequest]:
            return [r for r in self._requests if r.path in _CHAT_PATHS and (model is None or r.model == model)]

        deadline = time.monotonic() + timeout
        with self._lock:
            while len(found := matching()) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(r.path, r.model) for r in self._requests]
                    raise TimeoutError(
                        f"expected {n} chat request(s) for {model!r} within {timeout}s, "
                        f"got {len(found)}; all requests: {seen}"
                    )
                self._lock.wait(left)
            return found

    async def wait_for_requests_async(
        self,
        model: str | None,
        n: int,
        timeout: float = 10.0,  # noqa: ASYNC109 - the wait runs in a worker thread, not this loop
    ) -> list[LoggedRequest]:
        """`wait_for_requests` for async callers, without blocking their event loop."""
        return await anyio.to_thread.run_sync(self.wait_for_requests, model, n, timeout)

    def _record(self, request: Request, body: dict[str, Any], step: Step | None) -> None:
        model = body.get("model")
        entry = LoggedRequest(
            path=request.url.path,
            model=model if isinstance(model, str) else None,
            received=time.monotonic(),
            wall=time.time(),
            body=body,
            headers=dict(request.headers),
            step=step,
        )
        with self._lock:
            self._requests.append(entry)
            self._lock.notify_all()

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (known once started, or when given explicitly)."""
        return self._port

    @property
    def url(self) -> str:
        """Base URL for an OpenAI-compatible client, ending in /v1."""
        if not self._port:
            raise RuntimeError("FakeProvider has no port yet: call start() first")
        return f"http://{self.host}:{self._port}/v1"

    @property
    def running(self) -> bool:
        """Whether the server thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> Self:
        """Start serving in a background thread; return once connections are accepted."""
        if self.running:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_config=None,  # leave the host application's logging alone
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            timeout_keep_alive=30,
        )
        ready = threading.Event()
        self._server = _Server(config, ready)
        self._error = None
        self._thread = threading.Thread(
            target=self._run, args=(self._server, sock), name=f"fake-provider:{self._port}", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout) or not self._server.started:
            self.stop()
            raise RuntimeError(f"fake provider did not start within {timeout}s") from self._error
        return self

    def _run(self, server: _Server, sock: socket.socket) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            await server.serve(sockets=[sock])

        try:
            asyncio.run(serve())
        except BaseException as exc:  # reported through start()
            self._error = exc
            _log.exception("fake provider crashed")
        finally:
            sock.close()
            server.ready.set()  # never leave start() waiting on a server that died early

    def stop(self, timeout: float = 10.0) -> None:
        """Release hanging requests, stop the server and join its thread."""
        thread, server, loop, stopping = self._thread, self._server, self._loop, self._stopping
        if thread is None or server is None:
            return
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(stopping.set)
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout)
        self._thread = self._server = None
        self._loop = self._stopping = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await anyio.to_thread.run_sync(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await anyio.to_thread.run_sync(self.stop)

    # -- endpoints ---------------------------------------------------------------------------------

    async def _models(self, request: Request) -> Response:
        self._record(request, {}, None)
        with self._lock:
            ids = sorted(self._scripts)
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in ids]
        return JSONResponse({"object": "list", "data": data})

    async def _other(self, request: Request) -> Response:
        body = await read_json(request)
        self._record(request, body, None)
        return error_response(404, f"fake provider has no route {request.url.path}", "not_found_error", 404)

    async def _chat(self, request: Request) -> Response:
        body = await read_json(request)
        model = body.get("model")
        step = self._next_step(model if isinstance(model, str) else None)
        self._record(request, body, step)
        match step:
            case Refuse():
                headers: dict[str, str] = {}
                if step.retry_after is not None:
                    headers["retry-after"] = f"{step.retry_after:g}"
                return error_response(
                    step.status,
                    step.message,
                    step.error_type or default_error_type(step.status),
                    step.status if step.code is None else step.code,
                    headers,
                )
            case Hang(partial=""):
                await self._hang(request)
                return error_response(503, "fake provider stopped", "server_error", 503)
            case Answer() | ToolCall():
                if step.delay and await self._sleep(step.delay):
                    return error_response(503, "fake provider stopped", "server_error", 503)
        completion = Completion(f"chatcmpl-{next(self._ids)}", str(model), body)
        if body.get("stream"):
            return StreamingResponse(self._stream(completion, step), media_type="text/event-stream")
        if isinstance(step, Answer | ToolCall):
            return JSONResponse(completion.whole(step))
        # Hang(partial) / Drop on a non-streamed request: a body that never completes.
        return StreamingResponse(self._unfinished_json(step), media_type="application/json")

    async def _stream(self, c: Completion, step: Step) -> AsyncIterator[bytes]:
        """Yield the SSE frames for `step`; cancelled by Starlette when the client disconnects."""
        yield sse(c.chunk({"role": "assistant", "content": ""}))
        text = step.text if isinstance(step, Answer | ToolCall) else getattr(step, "partial", "")
        chunk_delay = step.chunk_delay if isinstance(step, Answer) else 0
        for i, piece in enumerate(split_chunks(text)):
            if i and chunk_delay and await self._sleep(chunk_delay):
                return  # stopping: end the body early
            c.completion_tokens += 1
            yield sse(c.chunk({"content": piece}))
        if isinstance(step, Hang):
            await self._wait_stopping()
            return
        if isinstance(step, Drop):
            raise _DropConnection
        finish = "stop"
        if isinstance(step, ToolCall):
            finish = "tool_calls"
            call_id = f"call_{next(self._ids)}"
            yield sse(
                c.chunk(
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": call_id,
                                "type": "function",
                                "function": {"name": step.name, "arguments": ""},
                            }
                        ]
                    }
                )
            )
            args = json.dumps(dict(step.arguments))
            half = len(args) // 2
            for piece in (args[:half], args[half:]):
                if piece:
                    c.completion_tokens += 1
                    yield sse(c.chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
        yield sse(c.chunk({}, finish_reason=finish))
        opts = c.body.get("stream_options")
        if isinstance(opts, dict) and opts.get("include_usage"):
            yield sse(c.usage_chunk())
        yield b"data: [DONE]\n\n"

    async def _unfinished_json(self, step: Step) -> AsyncIterator[bytes]:
        yield b'{"id": "chatcmpl-partial", "choices": ['
        if isinstance(step, Drop):
            raise _DropConnection
        await self._wait_stopping()

    async def _wait_stopping(self) -> None:
        assert self._stopping is not None
        await self._stopping.wait()

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, returning True early if the server is stopping."""
        assert self._stopping is not None
        with anyio.move_on_after(seconds):
            await self._stopping.wait()
            return True
        return False

    async def _hang(self, request: Request) -> None:
        """Wait until the client disconnects or the server stops, whichever comes first."""
        async with anyio.create_task_group() as tg:

            async def disconnected() -> None:
                while (await request.receive())["type"] != "http.disconnect":
                    pass
                tg.cancel_scope.cancel()

            tg.start_soon(disconnected)
            await self._wait_stopping()
            tg.cancel_scope.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a scripted fake provider in the foreground until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m baton.testing.fake_provider", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on start)")
    parser.add_argument("--script", type=Path, help="JSON file: {model: [step, ...]}")
    args = parser.parse_args(argv)
    provider = FakeProvider(args.host, args.port)
    if args.script is not None:
        for model, steps in load_script(args.script).items():
            provider.script(model, *steps)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    with provider:
        sys.stdout.write(f"fake provider listening on {provider.url}\n")
        sys.stdout.flush()
        done.wait()
    return 0


logging.getLogger("uvicorn.error").addFilter(_QuietDrop())

if __name__ == "__main__":
    raise SystemExit(main())
