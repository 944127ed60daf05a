"""A thin typed client for the opencode server endpoints baton uses.

The PyPI SDKs are stale (no ``prompt_async``, no ``session.status``), so this is our own,
checked against the server's ``GET /doc``. httpx2 errors never escape: they become
:class:`OpencodeUnavailable` (no connection) or :class:`OpencodeHTTPError` (an answer we
did not want), both :class:`OpencodeError`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anyio
import httpx2

from baton.catalog import Catalog, catalog_from_providers
from baton.errors import BatonError
from baton.models import to_api_model

__all__ = [
    "OpencodeClient",
    "OpencodeError",
    "OpencodeHTTPError",
    "OpencodeUnavailable",
    "auth_from_env",
    "input_part",
    "resend_parts",
]


class OpencodeError(BatonError):
    """Talking to opencode failed."""


class OpencodeUnavailable(OpencodeError):
    """No answer at all: connection refused, reset, or timed out (``timed_out``)."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class OpencodeHTTPError(OpencodeError):
    """opencode answered with a status baton did not expect."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path} answered {status}: {body[:300]}")
        self.status = status
        self.body = body


@contextmanager
def _translate(method: str, path: str) -> Iterator[None]:
    try:
        yield
    except httpx2.TimeoutException as exc:
        raise OpencodeUnavailable(f"{method} {path} timed out", timed_out=True) from exc
    except httpx2.TransportError as exc:
        # Some transport errors carry no text (a connection reset while opencode restarts):
        # the class name is then the only reason there is, and a reason is never left empty.
        raise OpencodeUnavailable(f"{method} {path} failed: {str(exc) or type(exc).__name__}") from exc


# Fields each part type accepts on input (``TextPartInput`` etc. in GET /doc). Stored parts
# carry more (sessionID, messageID, time, ...) that the prompt endpoint rejects.
_INPUT_FIELDS: dict[str, frozenset[str]] = {
    "text": frozenset({"id", "type", "text", "synthetic", "ignored", "time", "metadata"}),
    "file": frozenset({"id", "type", "mime", "filename", "url", "source"}),
    "agent": frozenset({"id", "type", "name", "source"}),
    "subtask": frozenset({"id", "type", "prompt", "description", "agent", "model", "command"}),
}


# Parts opencode expands when a prompt arrives: a text file becomes synthetic "Read tool" text
# parts, an agent mention an instruction. Measured on 1.18.33: a re-send with the same
# messageID keeps every stored part it does not name, and re-expands the ones it names, so
# sending a file part again shows the model the file twice. Their stored form (and stored
# expansion) is what the model sees, so a re-send leaves them out.
_EXPANDED_ON_INPUT = frozenset({"file", "agent", "subtask"})


def resend_parts(stored: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The body parts that re-run a stored user message once, every stored part kept in place.

    All text parts (synthetic ones included) go with their ids; parts opencode expands on input
    stay stored and untouched. A message made only of such parts is sent whole: a duplicated
    expansion beats a prompt without content.
    """
    parts = [p for p in (input_part(part) for part in stored) if p is not None]
    kept = [p for p in parts if p["type"] not in _EXPANDED_ON_INPUT]
    return kept or parts


def input_part(part: Mapping[str, Any]) -> dict[str, Any] | None:
    """A stored message part as the prompt endpoint takes it; None for parts it cannot take."""
    allowed = _INPUT_FIELDS.get(str(part.get("type")))
    if allowed is None:
        return None
    return {k: v for k, v in part.items() if k in allowed}


def auth_from_env(env: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """Basic auth as opencode's own clients use it: ``OPENCODE_SERVER_PASSWORD`` (+ username)."""
    env = os.environ if env is None else env
    password = env.get("OPENCODE_SERVER_PASSWORD")
    if not password:
        return None
    return env.get("OPENCODE_SERVER_USERNAME") or "opencode", password


EVENT_HEADERS_S = 1.0
EVENT_HEDGE_S = 0.25
"""While an ``GET /event`` waits for headers, another starts every ``EVENT_HEDGE_S``: a request
opencode caught in its start-up never returns, so a fresh one catches the moment it serves."""
"""Bound on connecting to ``GET /event`` and receiving its headers."""


def _params(directory: str | None) -> dict[str, str]:
    return {"directory": directory} if directory else {}


class OpencodeClient:
    """REST calls to one opencode server. Use as an async context manager."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: tuple[str, str] | None = None,
        timeout: float = 10.0,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx2.AsyncClient(
            base_url=self.base_url,
            auth=auth,
            timeout=httpx2.Timeout(timeout, connect=min(timeout, 5.0)),
            transport=transport,
            limits=httpx2.Limits(max_connections=50, max_keepalive_connections=20),
        )

    async def __aenter__(self) -> OpencodeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        directory: str | None = None,
        json: object = None,
        params: Mapping[str, str | int] | None = None,
        time_limit: float | None = None,
    ) -> Any:
        query: dict[str, str | int] = {**_params(directory), **(params or {})}
        extra: dict[str, Any] = {}
        if time_limit is not None:
            extra["timeout"] = time_limit
        with _translate(method, path):
            response = await self._http.request(method, path, params=query, json=json, **extra)
        if response.status_code >= 300:
            raise OpencodeHTTPError(method, path, response.status_code, response.text)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text

    # --- sessions -------------------------------------------------------------------------

    async def session_status(self, directory: str | None = None) -> dict[str, Any]:
        """Status of busy and retrying sessions; idle sessions are absent (opencode 1.18)."""
        data = await self._request("GET", "/session/status", directory=directory)
        return data if isinstance(data, dict) else {}

    async def session(self, session_id: str, directory: str | None = None) -> dict[str, Any]:
        data = await self._request("GET", f"/session/{session_id}", directory=directory)
        return data if isinstance(data, dict) else {}

    async def messages(
        self, session_id: str, directory: str | None = None, limit: int | None = None
    ) -> list[Any]:
        params = {"limit": limit} if limit else None
        data = await self._request(
            "GET", f"/session/{session_id}/message", directory=directory, params=params
        )
        return data if isinstance(data, list) else []

    async def children(self, session_id: str, directory: str | None = None) -> list[Any]:
        data = await self._request("GET", f"/session/{session_id}/children", directory=directory)
        return data if isinstance(data, list) else []

    async def agents(self) -> list[Any]:
        """``GET /agent``: name, mode (primary/subagent/all) and model of every agent."""
        data = await self._request("GET", "/agent")
        return data if isinstance(data, list) else []

    async def catalog(self) -> Catalog:
        """``GET /provider`` parsed: every model's price and window, and the connected providers."""
        return catalog_from_providers(await self._request("GET", "/provider"))

    async def connected_providers(self) -> list[str]:
        """``GET /provider``'s ``connected`` list: the providers opencode can actually call."""
        return sorted((await self.catalog()).connected or ())

    async def register_mcp(self, name: str, url: str, *, headers: Mapping[str, str] | None = None) -> str:
        """Add a remote MCP server at run time (``POST /mcp``); its tools appear as ``<name>_<tool>``.

        ``headers`` go with every call opencode makes to it (baton's token); OAuth discovery is
        off, since baton never asks for it. Returns the server's status (``connected``, ...).
        """
        config: dict[str, Any] = {"type": "remote", "url": url, "oauth": False}
        if headers:
            config["headers"] = dict(headers)
        data = await self._request("POST", "/mcp", json={"name": name, "config": config})
        return _mcp_status(data, name)

    async def mcp_status(self, name: str) -> str:
        """One MCP server's status from ``GET /mcp`` (``connected``, ``failed``, ... or ``absent``)."""
        return _mcp_status(await self._request("GET", "/mcp"), name)

    async def create_session(
        self, *, title: str, parent_id: str | None = None, directory: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"title": title}
        if parent_id:
            body["parentID"] = parent_id
        data = await self._request("POST", "/session", directory=directory, json=body)
        return data if isinstance(data, dict) else {}

    async def abort(self, session_id: str, directory: str | None = None) -> None:
        await self._request("POST", f"/session/{session_id}/abort", directory=directory)

    async def prompt_async(
        self,
        session_id: str,
        *,
        parts: list[dict[str, Any]],
        model: str | None = None,
        agent: str | None = None,
        message_id: str | None = None,
        no_reply: bool | None = None,
        directory: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Queue a prompt; returns once opencode accepted it (204), before the model answers."""
        body: dict[str, Any] = {"parts": parts}
        if message_id:
            body["messageID"] = message_id
        if model:
            body["model"] = to_api_model(model)
        if agent:
            body["agent"] = agent
        if no_reply is not None:
            body["noReply"] = no_reply
        if extra:
            body.update(extra)
        await self._request("POST", f"/session/{session_id}/prompt_async", directory=directory, json=body)

    # --- server ---------------------------------------------------------------------------

    async def show_toast(
        self, title: str, message: str, variant: str = "warning", directory: str | None = None
    ) -> None:
        body = {"title": title, "message": message, "variant": variant, "duration": 5000}
        await self._request("POST", "/tui/show-toast", directory=directory, json=body, time_limit=3.0)

    async def config(self) -> dict[str, Any]:
        data = await self._request("GET", "/config")
        return data if isinstance(data, dict) else {}

    async def plugins(self) -> list[str]:
        """Names of the plugins opencode loads: ``GET /config``'s ``plugin``, each a name or ``[name, options]``."""
        plugins = (await self.config()).get("plugin") or []
        names = [p[0] if isinstance(p, list) and p else p for p in plugins]
        return [n for n in names if isinstance(n, str)]

    async def get_json(self, path: str) -> Any:
        """Any GET endpoint's JSON (used by ``baton doctor`` for /global/health and /mcp)."""
        return await self._request("GET", path)

    async def path(self) -> dict[str, Any]:
        """The directories the server instance serves (``directory``, ``worktree``, ...)."""
        data = await self._request("GET", "/path")
        return data if isinstance(data, dict) else {}

    @asynccontextmanager
    async def event_text(self) -> AsyncIterator[AsyncIterator[str]]:
        """Open ``GET /event`` and yield its body as decoded text chunks; framing and reconnecting
        are the caller's (:mod:`baton.opencode.stream`).

        Connecting and the response headers are bounded (``EVENT_HEADERS_S``): opencode answers
        at once when it serves, and between "port open" and "listening" it accepts and stays
        silent. Reads are not bounded here: the caller watches the heartbeat.
        """
        with _translate("GET", "/event"):
            response = await self._open_event_stream()
        if response is None:
            raise OpencodeUnavailable(
                f"GET /event: no answer within {EVENT_HEADERS_S:g} s (opencode accepts but is silent)",
                timed_out=True)
        try:
            if response.status_code != 200:
                body = (await response.aread()).decode(errors="replace")
                raise OpencodeHTTPError("GET", "/event", response.status_code, body)
            yield _text(response)
        finally:
            await response.aclose()


    async def _open_event_stream(self) -> httpx2.Response | None:
        """Hedged ``GET /event``: attempts start every ``EVENT_HEDGE_S`` until one answers with
        headers or ``EVENT_HEADERS_S`` has passed (None). A transport error (refused: nothing
        listens) ends the wait at once and is raised."""
        winner: httpx2.Response | None = None
        failure: httpx2.TransportError | None = None

        async def attempt(delay: float, scope: anyio.CancelScope) -> None:
            nonlocal winner, failure
            await anyio.sleep(delay)
            request = self._http.build_request(
                "GET", "/event", headers={"accept": "text/event-stream"},
                timeout=httpx2.Timeout(None, connect=EVENT_HEADERS_S))
            try:
                response = await self._http.send(request, stream=True)
            except httpx2.TransportError as exc:
                failure = failure or exc
                scope.cancel()
                return
            if winner is None:
                winner = response
                scope.cancel()
            else:
                with anyio.CancelScope(shield=True):
                    await response.aclose()

        with anyio.move_on_after(EVENT_HEADERS_S):
            async with anyio.create_task_group() as tg:
                for i in range(max(1, int(EVENT_HEADERS_S / EVENT_HEDGE_S))):
                    tg.start_soon(attempt, i * EVENT_HEDGE_S, tg.cancel_scope)
        if winner is None and failure is not None:
            raise failure
        return winner


def _mcp_status(data: object, name: str) -> str:
    entry = data.get(name) if isinstance(data, dict) else None
    status = entry.get("status") if isinstance(entry, dict) else None
    if status == "failed" and isinstance(entry, dict) and entry.get("error"):
        return f"failed: {entry['error']}"
    return str(status) if status else "absent"


async def _text(response: httpx2.Response) -> AsyncIterator[str]:
    with _translate("GET", "/event"):
        async for text in response.aiter_text():
            yield text
