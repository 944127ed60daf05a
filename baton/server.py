"""baton's own HTTP endpoint: ``/healthz`` and ``/status`` (JSON), served by uvicorn.

It runs inside the engine's task group; uvicorn's signal handling is switched off so that
SIGINT/SIGTERM stop the whole daemon in one place (``baton.cli``).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Generator
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import asdict

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from baton.engine import Engine, EngineState
from baton.tasks.runtime import TaskRuntime
from baton.tools import build_mcp_app

__all__ = ["HttpServer", "build_app", "bind_socket"]


def build_app(engine: Engine) -> tuple[Starlette, Callable[[], AbstractAsyncContextManager[object]]]:
    """The HTTP app, and the context the MCP tools need running while it serves."""
    async def healthz(_: Request) -> JSONResponse:
        attached = engine.state is EngineState.ATTACHED
        body: dict[str, object] = {
            "attached": attached,
            "state": engine.state.value,
            "opencode": engine.client.base_url,
            "fallback": engine.fallback_mode(),
        }
        return JSONResponse(body, status_code=200 if attached else 503)

    async def status(_: Request) -> JSONResponse:
        return JSONResponse(asdict(engine.stats()))

    routes: list[BaseRoute] = [Route("/healthz", healthz), Route("/status", status)]
    lifespan: Callable[[], AbstractAsyncContextManager[object]] = contextlib.nullcontext
    tasks = engine.tasks
    if tasks is not None:
        routes += task_routes(tasks)
        mcp_app, lifespan = build_mcp_app(tasks)
        routes.append(Route("/mcp", endpoint=mcp_app))  # a Mount would redirect POST /mcp to /mcp/
    return Starlette(routes=routes), lifespan


def task_routes(tasks: TaskRuntime) -> list[BaseRoute]:
    """``baton tasks`` talks to a running serve through these."""

    async def listing(request: Request) -> JSONResponse:
        rows = tasks.scheduler.snapshot(time.time(), include_ended=request.query_params.get("all") == "1")
        return JSONResponse([asdict(r) for r in rows])

    async def show(request: Request) -> JSONResponse:
        task_id = request.path_params["task_id"]
        task = tasks.scheduler.task(task_id)
        if task is None:
            return JSONResponse({"error": f"no task {task_id}"}, status_code=404)
        text = tasks.scheduler.output(task_id, None, time.time())
        return JSONResponse({"row": task.to_row(), "output": text if isinstance(text, str) else text.message})

    async def cancel(request: Request) -> JSONResponse:
        return JSONResponse({"text": tasks.cancel_by_user(request.path_params["task_id"])})

    return [
        Route("/tasks", listing),
        Route("/tasks/{task_id}", show),
        Route("/tasks/{task_id}/cancel", cancel, methods=["POST"]),
    ]


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind before starting, so a taken port is a clear start-up error rather than a log line."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


class HttpServer(uvicorn.Server):
    """uvicorn without its own signal handlers."""

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def make_server(app: Starlette) -> HttpServer:
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    return HttpServer(config)
