"""The event stream (``baton.opencode.stream``) as the engine runs it: every wait on opencode is
bounded, a dead stream is resynced, the SSE framing loses no event, and a bug deciding one event
is counted, not fatal."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path

import anyio
import httpx2
import pytest
import structlog

from baton.actions import Action
from baton.clock import Clock, SystemClock
from baton.config import load_config
from baton.daemon import build_engine
from baton.engine import Engine
from baton.events import Event, PartDelta, SessionIdle
from baton.opencode.client import OpencodeClient
from baton.opencode.stream import FIRST_EVENT_S, SseLines, StreamState
from baton.store import Store
from baton.tasks.events import SchedulerEvent
from baton.testing.clock import FakeClock

pytestmark = pytest.mark.anyio

Handler = (Callable[[httpx2.Request], httpx2.Response]
           | Callable[[httpx2.Request], Coroutine[None, None, httpx2.Response]])


@pytest.fixture(name="anyio_backend")
def _anyio_backend() -> str:
    return "asyncio"


def _engine(tmp_path: Path, handler: Handler, clock: Clock | None = None) -> Engine:
    config = load_config(None, env={}, home=tmp_path)
    client = OpencodeClient("http://opencode.test", transport=httpx2.MockTransport(handler))
    return build_engine(client, config, Store(tmp_path / "b.db"), clock=clock or SystemClock())


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
    engine = _engine(tmp_path, handler, clock)
    async with anyio.create_task_group() as tg:
        tg.start_soon(engine.run)
        with anyio.fail_after(5):
            await engine.attached.wait()
        assert engine.stream.state is StreamState.ATTACHED and status_calls == 1
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

    engine = _engine(tmp_path, handler)
    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(engine.run)
            with anyio.fail_after(10):
                # two whole hedged waits met silence: a counter of a mock, no event to wait on
                while attempts < 9 or "silent" not in str(engine.health()["reason"]):  # noqa: ASYNC110
                    await anyio.sleep(0.05)
            assert engine.health()["attached"] is False
            assert "silent" in str(engine.health()["reason"])
            silent = False
            answered = time.monotonic()
            with anyio.fail_after(5):
                await engine.attached.wait()
            took = time.monotonic() - answered
            tg.cancel_scope.cancel()
    # The bound is 2 s; hedged attempts (one every EVENT_HEDGE_S) make it well under 1 s.
    assert took <= 1.0, f"re-attached {took:.2f} s after opencode answered"
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

    engine = _engine(tmp_path, handler)
    async with anyio.create_task_group() as tg:
        tg.start_soon(engine.run)
        with anyio.fail_after(FIRST_EVENT_S + 3):
            await engine.attached.wait()
        tg.cancel_scope.cancel()
    assert connects == 2


async def test_a_bug_deciding_one_event_is_logged_and_the_engine_carries_on(tmp_path: Path) -> None:
    """Degrade, don't die: an exception inside a decision is counted in the health, not fatal."""
    engine = _engine(tmp_path, lambda _request: httpx2.Response(200, json={}))

    def broken(event: Event, now: float) -> Sequence[Action]:
        raise KeyError("boom")

    engine.policy.handle = broken  # type: ignore[method-assign]
    with structlog.testing.capture_logs() as logs:
        engine.router.feed(SessionIdle("ses_1"))
    health = engine.health()
    assert health["internal_errors"] == 1 and "KeyError" in str(health["last_internal_error"])
    assert any(e["event"].startswith("internal error") for e in logs)


def test_sse_lines_end_only_at_line_breaks_the_format_knows() -> None:
    """``\\n``, ``\\r\\n`` and ``\\r`` end a line, across chunk boundaries too; Unicode line separators,
    which opencode's JSON carries raw inside strings, do not; a last line without its break is flushed."""
    framing = SseLines()
    assert framing.feed('data: {"a":"x\u2028y\u0085z"}\n\ndata: 1\r\n') == [
        'data: {"a":"x\u2028y\u0085z"}', "", "data: 1"]
    assert framing.feed("data: 2") == []
    assert framing.feed("3\r") == ["data: 23"]
    assert framing.feed("\ndata: 4\rdata: 5") == ["", "data: 4"]
    assert framing.flush() == ["data: 5"]
    assert framing.flush() == []


async def test_an_event_with_a_unicode_line_separator_in_its_text_is_decided(tmp_path: Path) -> None:
    """A streamed delta whose text holds U+2028 reaches the deciders whole (it was cut in two and lost)."""
    delta = ('{"type":"message.part.delta","properties":{"sessionID":"ses_1","messageID":"msg_1",'
             '"partID":"prt_1","field":"text","delta":"one\u2028two"}}')

    async def stream() -> AsyncIterator[bytes]:
        yield b'data: {"type":"server.connected","properties":{}}\n\n'
        for cut in (10, 30):  # split across chunks as a socket may
            yield ("data: " + delta + "\n\n").encode()[:cut]
            yield ("data: " + delta + "\n\n").encode()[cut:]
        await anyio.sleep_forever()

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/event":
            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=stream())
        return httpx2.Response(200, json={})

    engine = _engine(tmp_path, handler)
    seen: list[SchedulerEvent] = []
    observe = engine.router.feed

    def recording(event: SchedulerEvent) -> None:
        seen.append(event)
        observe(event)

    engine.router.feed = recording  # type: ignore[method-assign]
    async with anyio.create_task_group() as tg:
        tg.start_soon(engine.run)
        with anyio.fail_after(5):
            while sum(isinstance(e, PartDelta) for e in seen) < 2:  # noqa: ASYNC110 - a list, no event to wait on
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    deltas = [e for e in seen if isinstance(e, PartDelta)]
    assert [d.delta for d in deltas] == ["one\u2028two", "one\u2028two"]
