"""The engine's stream handling: every wait on opencode is bounded, and a dead stream is resynced."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx2
import pytest
import structlog

from baton.config import load_config
from baton.cooldowns import Cooldowns
from baton.engine import FIRST_EVENT_S, Engine, EngineState
from baton.events import SessionIdle
from baton.fallback.policy import FallbackPolicy
from baton.opencode.client import OpencodeClient
from baton.store import Store
from baton.testing.clock import FakeClock

pytestmark = pytest.mark.anyio


@pytest.fixture(name="anyio_backend")
def _anyio_backend() -> str:
    return "asyncio"


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

    clock = FakeClock()  # pushed forward: 30 s of silence takes no real 30 s
    config = load_config(None, env={}, home=tmp_path)
    client = OpencodeClient("http://opencode.test", transport=httpx2.MockTransport(handler))
    engine = Engine(client, FallbackPolicy(config, Cooldowns()), Store(tmp_path / "b.db"), clock=clock)
    async with anyio.create_task_group() as tg:
        tg.start_soon(engine.run)
        with anyio.fail_after(5):
            await engine.attached.wait()
        assert engine.state is EngineState.ATTACHED and status_calls == 1
        clock.advance(31)
        with anyio.fail_after(10):
            while connects < 2 or status_calls < 2:  # noqa: ASYNC110 - counters of a mock, no event to wait on
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    assert engine.stats().connects == 2


async def test_a_silent_peer_is_left_and_reattached_within_two_seconds_of_answering(tmp_path: Path) -> None:
    """opencode accepts but stays silent (between "port open" and "listening"): every wait is
    bounded, the detached state is logged with its cause, and baton attaches ≤ 2 s after it answers."""
    silent = True
    attempts = 0

    async def stream() -> AsyncIterator[bytes]:
        yield b'data: {"type":"server.connected","properties":{}}\n\n'
        await anyio.sleep_forever()

    async def handler(request: httpx2.Request) -> httpx2.Response:
        nonlocal attempts
        if silent:
            attempts += 1
            await anyio.sleep_forever()
        if request.url.path == "/event":
            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=stream())
        return httpx2.Response(200, json={})

    config = load_config(None, env={}, home=tmp_path)
    client = OpencodeClient("http://opencode.test", transport=httpx2.MockTransport(handler))
    engine = Engine(client, FallbackPolicy(config, Cooldowns()), Store(tmp_path / "b.db"))
    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(engine.run)
            with anyio.fail_after(10):
                while attempts < 3:  # noqa: ASYNC110 - counter of a mock, no event to wait on
                    await anyio.sleep(0.05)
            assert engine.health()["attached"] is False
            assert "silent" in str(engine.health()["reason"])
            silent = False
            answered = time.monotonic()
            with anyio.fail_after(5):
                await engine.attached.wait()
            took = time.monotonic() - answered
            tg.cancel_scope.cancel()
    assert took <= 2.0, f"re-attached {took:.2f} s after opencode answered"
    assert any(e["event"] == "waiting for opencode" and "silent" in e["cause"] for e in logs)


async def test_a_stream_without_its_first_event_is_dropped(tmp_path: Path) -> None:
    """Headers but no ``server.connected``: the stream is given up after FIRST_EVENT_S, not waited on forever."""
    connects = 0

    async def mute() -> AsyncIterator[bytes]:
        await anyio.sleep_forever()
        yield b""

    async def talking() -> AsyncIterator[bytes]:
        yield b'data: {"type":"server.connected","properties":{}}\n\n'
        await anyio.sleep_forever()

    def handler(request: httpx2.Request) -> httpx2.Response:
        nonlocal connects
        if request.url.path == "/event":
            connects += 1
            body = mute() if connects == 1 else talking()
            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)
        return httpx2.Response(200, json={})

    config = load_config(None, env={}, home=tmp_path)
    client = OpencodeClient("http://opencode.test", transport=httpx2.MockTransport(handler))
    engine = Engine(client, FallbackPolicy(config, Cooldowns()), Store(tmp_path / "b.db"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(engine.run)
        with anyio.fail_after(FIRST_EVENT_S + 3):
            await engine.attached.wait()
        tg.cancel_scope.cancel()
    assert connects == 2


async def test_a_bug_deciding_one_event_is_logged_and_the_engine_carries_on(tmp_path: Path) -> None:
    """Degrade, don't die: an exception inside a decision is counted in the health, not fatal."""
    config = load_config(None, env={}, home=tmp_path)
    policy = FallbackPolicy(config, Cooldowns())
    engine = Engine(OpencodeClient("http://opencode.test"), policy, Store(tmp_path / "b.db"))

    def broken(*_: object) -> list[object]:
        raise KeyError("boom")

    policy.handle = broken  # type: ignore[method-assign]
    with structlog.testing.capture_logs() as logs:
        engine.feed(SessionIdle("ses_1"))
    health = engine.health()
    assert health["internal_errors"] == 1 and "KeyError" in str(health["last_internal_error"])
    assert any(e["event"].startswith("internal error") for e in logs)
