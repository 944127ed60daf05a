"""baton's own HTTP endpoint: ``/healthz`` and ``/status`` (JSON), served by uvicorn.

It runs inside the engine's task group; uvicorn's signal handling is switched off so that
SIGINT/SIGTERM stop the whole daemon in one place (``baton.cli``).
"""

from __future__ import annotations

import socket
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import asdict

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from baton.engine import Engine, EngineState

__all__ = ["HttpServer", "build_app", "bind_socket"]


def build_app(engine: Engine) -> Starlette:
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

    return Starlette(routes=[Route("/healthz", healthz), Route("/status", status)])


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
