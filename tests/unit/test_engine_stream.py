"""The engine's stream handling: a silent stream is dropped after 30 s without heartbeat, then resynced."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx2
import pytest

from baton.config import load_config
from baton.cooldowns import Cooldowns
from baton.engine import Engine, EngineState
from baton.fallback.policy import FallbackPolicy
from baton.opencode.client import OpencodeClient
from baton.store import Store

pytestmark = pytest.mark.anyio


@pytest.fixture(name="anyio_backend")
def _anyio_backend() -> str:
    return "asyncio"


class JumpClock:
    """Wall time that can be pushed forward, so 30 s of silence takes no real 30 s."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset


async def test_silent_stream_is_dropped_and_resynced(tmp_path: Path) -> None:
    """No heartbeat for 30 s: the engine reconnects and asks opencode for the session statuses again."""
    connects = 0
    status_calls = 0

    async def silent_stream() -> AsyncIterator[bytes]:
        yield b'data: {"type":"server.connected","properties":{}}\n\n'
        await anyio.sleep_forever()

    def handler(request: httpx2.Request) -> httpx2.Response:
        nonlocal connects, status_calls
        if request.url.path == "/event":
            connects += 1
            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=silent_stream())
        if request.url.path == "/session/status":
            status_calls += 1
            return httpx2.Response(200, json={})
        return httpx2.Response(200, json={})

    clock = JumpClock()
    config = load_config(None, env={}, home=tmp_path)
    client = OpencodeClient("http://opencode.test", transport=httpx2.MockTransport(handler))
    engine = Engine(client, FallbackPolicy(config, Cooldowns()), Store(tmp_path / "b.db"), clock=clock)
    async with anyio.create_task_group() as tg:
        tg.start_soon(engine.run)
        with anyio.fail_after(5):
            await engine.attached.wait()
        assert engine.state is EngineState.ATTACHED and status_calls == 1
        clock.offset += 31
        with anyio.fail_after(10):
            while connects < 2 or status_calls < 2:  # noqa: ASYNC110 - counters of a mock, no event to wait on
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    assert engine.stats().connects == 2
