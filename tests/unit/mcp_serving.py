"""An MCP endpoint served over real HTTP on a free loopback port, the way the daemon serves it."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp

from baton.server import make_server


@contextlib.asynccontextmanager
async def serving_mcp(app: ASGIApp, running: Callable[[], AbstractAsyncContextManager[Any]]) -> AsyncIterator[str]:
    """Serve ``app`` at ``/mcp`` with ``running`` open around it; yield its URL."""
    server = make_server(Starlette(routes=[Route("/mcp", endpoint=app)]))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()  # connections wait in the backlog until uvicorn accepts them: no start-up poll
    with sock:
        async with running(), anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            try:
                yield f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
            finally:
                tg.cancel_scope.cancel()  # faster than uvicorn's 0.1 s shutdown tick; the client is gone by now
