"""baton's own HTTP endpoint: the dashboard at ``/``, ``/healthz``, ``/status``, ``/metrics``,
``/tasks`` and ``/mcp``, served by uvicorn.

Every request passes :class:`Guard` first: a foreign ``Host`` or a cross-site ``Origin`` is
refused everywhere, and everything but a minimal ``/healthz`` needs baton's bearer token. A browser
cannot send a bearer header when it opens a page, so the dashboard has its own door: the link
``baton status`` prints (``/?token=...``) is answered with a redirect to ``/`` that sets a cookie
derived from the token (:func:`baton.auth.dashboard_cookie`: ``HttpOnly``, ``SameSite=Strict``,
gone when the browser closes), and that cookie opens the dashboard's read-only pages — nothing else.
uvicorn's signal handling is switched off so that SIGINT/SIGTERM stop the whole daemon in one
place (``baton.daemon``).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Generator
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import asdict
from urllib.parse import parse_qs

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from baton.auth import (
    bearer_matches,
    dashboard_cookie,
    dashboard_cookie_matches,
    host_allowed,
    origin_allowed,
    token_matches,
)
from baton.clock import Clock
from baton.dashboard.routes import SECURITY_HEADERS, dashboard_routes
from baton.engine import Engine
from baton.runtime.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from baton.runtime.task_tools import TaskTools
from baton.tools import build_mcp_app

__all__ = ["Guard", "HttpServer", "bind_socket", "build_app", "standby_app"]

PUBLIC_PATH = "/healthz"
DASHBOARD_LOGIN_PATH = "/"


def _is_dashboard_page(scope: Scope) -> bool:
    """What the dashboard cookie opens: the page, its assets, its feed and task results, read only."""
    path: str = scope["path"]
    return scope["method"] == "GET" and (path == DASHBOARD_LOGIN_PATH or path.startswith("/dashboard/"))


def _cookie_name(scope: Scope) -> str:
    """One cookie per port: browsers share cookies across the ports of a host, and two batons may run."""
    server = scope.get("server") or ("", 0)
    return f"baton_dashboard_{server[1]}"


class Guard:
    """ASGI middleware: Host and Origin checks for every request, the bearer token for all but
    ``/healthz``. A request without the token still reaches ``/healthz``, marked unauthenticated,
    so that it gets the minimal answer."""

    def __init__(self, app: ASGIApp, token: str, names: frozenset[str]) -> None:
        self.app = app
        self.token = token
        self.names = names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host")
        refusal: tuple[int, str] | None = None
        if not host_allowed(host, self.names):
            refusal = (421, "unknown Host header; baton answers only on the addresses it listens on")
        elif not origin_allowed(headers.get("origin"), host):
            refusal = (403, "cross-origin requests are refused")
        elif scope["path"] == DASHBOARD_LOGIN_PATH and "token" in (query := _query(scope)):
            await self._login(query["token"], scope, receive, send)
            return
        else:
            authed = bearer_matches(headers.get("authorization"), self.token) or (
                _is_dashboard_page(scope)
                and dashboard_cookie_matches(headers.get("cookie"), _cookie_name(scope), self.token))
            scope.setdefault("state", {})["authenticated"] = authed
            if not authed and scope["path"] != PUBLIC_PATH:
                refusal = (401, "missing or wrong token: send Authorization: Bearer <token> "
                                "(the token is in baton's state dir, file 'token', or BATON_TOKEN); "
                                "for the dashboard, open the link `baton status` prints")
        if refusal is None:
            await self.app(scope, receive, send)
            return
        response = JSONResponse({"error": refusal[1]}, status_code=refusal[0])
        if refusal[0] == 401:
            response.headers["www-authenticate"] = "Bearer"
        await response(scope, receive, send)

    async def _login(self, given: str, scope: Scope, receive: Receive, send: Send) -> None:
        """``/?token=...``: set the dashboard cookie and send the browser to ``/``, so the token
        leaves the address bar and the history at once."""
        if not token_matches(given, self.token):
            response: Response = PlainTextResponse("wrong token in the link: run `baton status` for a fresh one",
                                                   status_code=401, headers=SECURITY_HEADERS)
        else:
            response = RedirectResponse("/", status_code=303, headers=SECURITY_HEADERS)
            response.set_cookie(_cookie_name(scope), dashboard_cookie(self.token), httponly=True, samesite="strict")
        await response(scope, receive, send)


def _query(scope: Scope) -> dict[str, str]:
    raw: bytes = scope.get("query_string", b"")
    return {key: values[-1] for key, values in parse_qs(raw.decode("latin-1")).items()}


def build_app(
    engine: Engine, *, token: str, names: frozenset[str] = frozenset()
) -> tuple[ASGIApp, Callable[[], AbstractAsyncContextManager[object]]]:
    """The guarded HTTP app, and the context the MCP tools need running while it serves.

    ``names`` are host names (besides IP literals and ``localhost``) that clients may use to
    reach baton; see :func:`baton.auth.host_allowed`.
    """
    async def healthz(request: Request) -> JSONResponse:
        health = engine.health()
        ready = health["attached"]
        body: dict[str, object] = {"attached": ready}
        if request.state.authenticated:
            # The chain checks of the latest attach (baton.chain_check): warnings, never readiness.
            body = {**health, "chain_warnings": [asdict(f) for f in engine.attachment.chain_warnings]}
        return JSONResponse(body, status_code=200 if ready else 503)

    async def status(_: Request) -> JSONResponse:
        fleet = await engine.store.fleet()  # bounded: a shared store answers or says why not
        return JSONResponse({**asdict(engine.stats()), **({"fleet": fleet} if fleet is not None else {})})

    async def metrics(_: Request) -> Response:
        return Response(engine.metrics.render(), media_type=METRICS_CONTENT_TYPE)

    mcp_app, lifespan = build_mcp_app(engine.tasks)
    routes: list[BaseRoute] = [*dashboard_routes(engine),
                               Route("/healthz", healthz), Route("/status", status), Route("/metrics", metrics),
                               *task_routes(engine.tasks, engine.clock),
                               Route("/mcp", endpoint=mcp_app)]  # a Mount would redirect POST /mcp to /mcp/
    return Guard(Starlette(routes=routes), token, names), lifespan


def task_routes(tasks: TaskTools, clock: Clock) -> list[BaseRoute]:
    """``baton tasks`` talks to a running serve through these; ``clock`` is the engine's."""

    async def listing(request: Request) -> JSONResponse:
        rows = tasks.scheduler.snapshot(clock.time(), include_ended=request.query_params.get("all") == "1")
        return JSONResponse([asdict(r) for r in rows])

    async def show(request: Request) -> JSONResponse:
        task_id = request.path_params["task_id"]
        task = tasks.scheduler.task(task_id)
        if task is None:
            return JSONResponse({"error": f"no task {task_id}"}, status_code=404)
        text = tasks.scheduler.output(task_id, None, clock.time())
        return JSONResponse({"row": task.to_row(), "output": text if isinstance(text, str) else text.message})

    async def cancel(request: Request) -> JSONResponse:
        return JSONResponse({"text": tasks.cancel_by_user(request.path_params["task_id"])})

    return [
        Route("/tasks", listing),
        Route("/tasks/{task_id}", show),
        Route("/tasks/{task_id}/cancel", cancel, methods=["POST"]),
    ]


def standby_app(health: Callable[[], dict[str, object]], *, token: str, names: frozenset[str] = frozenset()) -> ASGIApp:
    """What a baton standing by answers (a shared store's lease is another's): ``/healthz`` says
    so — 503, ``state: standby`` and, with the token, who drives the opencode server."""

    async def healthz(request: Request) -> JSONResponse:
        body = health() if request.state.authenticated else {}
        return JSONResponse({"attached": False, **body}, status_code=503)

    async def page(_: Request) -> Response:
        """The dashboard's address on a standby: say so, and who drives (the cookie opened it)."""
        now = health()
        text = (f"This baton stands by: {now.get('driver') or 'another baton'} drives the opencode server "
                f"{now.get('opencode')}. Its dashboard is there; this one takes over if that baton stops.")
        return PlainTextResponse(text, status_code=503, headers=SECURITY_HEADERS)

    return Guard(Starlette(routes=[Route("/healthz", healthz), Route("/", page)]), token, names)


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


def make_server(app: ASGIApp) -> HttpServer:
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    return HttpServer(config)
