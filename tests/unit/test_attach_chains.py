"""The chain checks at attach (``baton.runtime.attach``): the catalog is fetched, each finding is a
warning and kept for ``/healthz``; a failed or silent ``GET /provider`` never stops the attach."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Coroutine, MutableMapping
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import structlog

import baton.runtime.attach as attach_module
from baton.catalog import EMPTY_CATALOG
from baton.chain_check import FindingKind
from baton.clock import SystemClock
from baton.config import load_config
from baton.daemon import build_engine
from baton.engine import Engine
from baton.opencode.client import OpencodeClient
from baton.store import Store

pytestmark = pytest.mark.anyio

RECORDED = json.loads((Path(__file__).parents[1] / "data" / "provider" / "get_provider.json").read_text("utf-8"))
SETTINGS = {"agents": {"build": {"model": "fake/backup", "fallback_models": ["fake/primray"]}}}

Handler = Callable[[httpx2.Request], Coroutine[None, None, httpx2.Response]]


@pytest.fixture(name="anyio_backend")
def _anyio_backend() -> str:
    return "asyncio"


async def _stream() -> AsyncIterator[bytes]:
    yield b'data: {"type":"server.connected","properties":{}}\n\n'
    await anyio.sleep_forever()


def _opencode(provider: Callable[[], Coroutine[None, None, httpx2.Response]]) -> Handler:
    async def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/event":
            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=_stream())
        if request.url.path == "/provider":
            return await provider()
        return httpx2.Response(200, json={})
    return handler


def _engine(tmp_path: Path, handler: Handler) -> Engine:
    path = tmp_path / "omo.json"
    path.write_text(json.dumps(SETTINGS), encoding="utf-8")
    config = load_config(None, explicit=path, env={}, home=tmp_path)
    client = OpencodeClient("http://opencode.test", transport=httpx2.MockTransport(handler))
    return build_engine(client, config, Store(tmp_path / "b.db"), clock=SystemClock(), mcp_url=None)


async def _attach(engine: Engine) -> list[MutableMapping[str, Any]]:
    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(engine.run)
            with anyio.fail_after(10):
                await engine.attached.wait()
            tg.cancel_scope.cancel()
    return logs


async def test_attach_checks_the_chains_and_keeps_the_catalog(tmp_path: Path) -> None:
    async def provider() -> httpx2.Response:
        return httpx2.Response(200, json=RECORDED)

    engine = _engine(tmp_path, _opencode(provider))
    logs = await _attach(engine)
    attachment = engine.attachment
    assert attachment.catalog.knows("fake/backup") and attachment.catalog.connected == frozenset({"fake", "nokey"})
    assert [(f.owner, f.model, f.kind) for f in attachment.chain_warnings] == [
        ("agents.build", "fake/primray", FindingKind.UNKNOWN_MODEL)]
    warned = [e for e in logs if e.get("model") == "fake/primray"]
    assert len(warned) == 1 and warned[0]["log_level"] == "warning"
    assert "did you mean fake/primary?" in warned[0]["event"]


async def test_a_failing_provider_list_is_logged_and_the_attach_goes_on(tmp_path: Path) -> None:
    async def provider() -> httpx2.Response:
        return httpx2.Response(500, text="boom")

    engine = _engine(tmp_path, _opencode(provider))
    logs = await _attach(engine)
    assert engine.attachment.catalog is EMPTY_CATALOG and engine.attachment.chain_warnings == ()
    assert any(e["event"].startswith("could not fetch opencode's models") and "500" in e["error"] for e in logs)


async def test_a_silent_provider_list_is_given_up_after_its_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(attach_module, "CATALOG_S", 0.2)

    async def provider() -> httpx2.Response:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    engine = _engine(tmp_path, _opencode(provider))
    logs = await _attach(engine)
    assert engine.attachment.catalog is EMPTY_CATALOG
    assert any(e["event"].startswith("could not fetch opencode's models") and "no answer within 0.2 s" in e["error"]
               for e in logs)
