"""The dashboard's HTTP face: the page at ``/``, its assets, its live feed and a task's result.

The feed is a server-sent event stream (``GET /dashboard/stream``): every :data:`POLL_S` the route
builds the page's JSON (:func:`baton.dashboard.view.picture`) and sends it when it differs from
the last one sent, and at least every :data:`KEEPALIVE_S`, so a change reaches an open page
within a fraction of a second while an unchanged baton costs one comparison per tick, and only
while a page is open. Access is :class:`baton.server.Guard`'s: these routes see only requests
that carried baton's token or the dashboard's cookie.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import anyio
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from baton.chains import NamedChain, configured_chains
from baton.dashboard.view import Picture, picture
from baton.engine import Engine
from baton.settings import Config

__all__ = ["FLEET_EVERY_S", "KEEPALIVE_S", "POLL_S", "dashboard_routes"]

POLL_S: Final = 0.2
KEEPALIVE_S: Final = 15.0
FLEET_EVERY_S: Final = 2.0
"""How often an open page's feed asks a shared store who drives what (one bounded query)."""
STATIC: Final = Path(__file__).resolve().parent / "static"

SECURITY_HEADERS: Final = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                                "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_ASSETS: Final = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                  "style.css": "text/css; charset=utf-8", "icon.svg": "image/svg+xml"}


class _Chains:
    """The configured chains, worked out once per config (a reload brings a new one)."""

    def __init__(self) -> None:
        self._config: Config | None = None
        self._chains: list[NamedChain] = []

    def of(self, config: Config) -> list[NamedChain]:
        if config is not self._config:
            self._config, self._chains = config, configured_chains(config)
        return self._chains


def dashboard_routes(engine: Engine) -> list[BaseRoute]:
    """The page, its assets, the feed and the task results, all read-only."""
    assets = {name: (STATIC / name).read_bytes() for name in _ASSETS}
    chains = _Chains()

    def current(fleet: dict[str, Any] | None) -> dict[str, Any]:
        now = engine.clock.time()
        return picture(Picture(
            health=engine.health(), sessions=engine.sessions(now), cooldowns=engine.cooldowns(now),
            chains=chains.of(engine.policy.state.config), tasks=engine.scheduler.snapshot(now, include_ended=True),
            journal=engine.fallback.recent, fallbacks=engine.fallback.fallbacks, events=engine.router.events,
            fleet=fleet))

    def asset(name: str) -> Route:
        async def serve(_: Request) -> Response:
            return Response(assets[name], media_type=_ASSETS[name], headers=SECURITY_HEADERS)
        return Route("/" if name == "index.html" else f"/dashboard/{name}", serve)

    async def frames() -> AsyncIterator[str]:
        sent, sent_at = "", float("-inf")
        fleet: dict[str, Any] | None = None
        fleet_at = float("-inf")
        while True:
            if time.monotonic() - fleet_at >= FLEET_EVERY_S:
                fleet, fleet_at = await engine.store.fleet(), time.monotonic()  # bounded; None on SQLite
            body = json.dumps(current(fleet), separators=(",", ":"))
            if body != sent or time.monotonic() - sent_at >= KEEPALIVE_S:
                sent, sent_at = body, time.monotonic()
                yield f'data: {{"now":{engine.clock.time()},"state":{body}}}\n\n'
            await anyio.sleep(POLL_S)

    async def stream(_: Request) -> Response:
        return StreamingResponse(frames(), media_type="text/event-stream",
                                 headers={**SECURITY_HEADERS, "X-Accel-Buffering": "no"})

    async def result(request: Request) -> Response:
        task_id = request.path_params["task_id"]
        if engine.scheduler.task(task_id) is None:
            return PlainTextResponse(f"no task {task_id}", status_code=404, headers=SECURITY_HEADERS)
        text = engine.scheduler.output(task_id, None, engine.clock.time())
        return PlainTextResponse(text if isinstance(text, str) else text.message, headers=SECURITY_HEADERS)

    return [*(asset(name) for name in _ASSETS), Route("/dashboard/stream", stream),
            Route("/dashboard/tasks/{task_id}", result)]
