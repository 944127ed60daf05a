"""opencode's event stream, owned end to end: connect, frame, watch, reconnect.

:class:`EventStream` keeps one ``GET /event`` open and hands every event baton understands, typed
(:mod:`baton.events`, :mod:`baton.tasks.events`), to a :class:`Feed`. Every phase is bounded:
connect and response headers by the client (``EVENT_HEADERS_S``), the first event by
``FIRST_EVENT_S``, then a heartbeat (or any event) within ``heartbeat_timeout``, watched by one
watcher per connection — never a timeout per line. A wait that timed out reconnects at once; a
refusal backs off ``BACKOFF_FIRST_S`` doubling to ``BACKOFF_MAX_S``. Every detach is logged with
its cause, with a reminder every ``STILL_DETACHED_LOG_S`` while it lasts.

The first frame of each connection is the :class:`StreamListener`'s: ``catch_up`` (replay what the
stream missed) before the stream counts as attached, ``attached`` after. The stream has no
replay, so that catch-up is the only record of what happened while detached.

**Framing.** Lines end at ``\\n``, ``\\r\\n`` or ``\\r`` only, as the SSE format says (:class:`SseLines`);
each ``data:`` line is one JSON payload (opencode sends one line per event). httpx2's
``aiter_lines`` also splits at Unicode line separators (U+2028, U+0085, ...), which opencode's JSON
carries raw inside strings: such an event was cut in two and lost. httpx2's own ``EventSource``
frames correctly but cost 2 µs more per event than this (``bench/throughput.py``), half a decision.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Protocol

import anyio
import structlog
from anyio.abc import TaskGroup

from baton.clock import Clock
from baton.opencode.client import OpencodeClient, OpencodeError, OpencodeUnavailable
from baton.opencode.events import STREAM_EVENTS, parse_event
from baton.tasks.events import SchedulerEvent

__all__ = [
    "ATTACH_CALL_S",
    "BACKOFF_FIRST_S",
    "BACKOFF_MAX_S",
    "FIRST_EVENT_S",
    "HEARTBEAT_TIMEOUT_S",
    "MIN_HEARTBEAT_TIMEOUT_S",
    "EventStream",
    "Feed",
    "SseLines",
    "StreamListener",
    "StreamState",
]

log = structlog.get_logger("baton")

HEARTBEAT_TIMEOUT_S = 30.0
"""Default silence (no heartbeat, no event) after which a stream counts as dead; opencode beats every 10 s."""
MIN_HEARTBEAT_TIMEOUT_S = 15.0
FIRST_EVENT_S = 2.0
"""opencode sends ``server.connected`` at once: a stream without it is not served."""
WATCH_PERIOD_S = 0.25
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 0.5
"""Reconnect attempts are cheap local calls; a short cap keeps re-attach within ~1 s of opencode answering."""
STILL_DETACHED_LOG_S = 10.0
ATTACH_CALL_S = 5.0
"""Bound on each call of the attach sequence (config, resync, MCP registration); the whole sequence gets 4."""


class StreamState(StrEnum):
    UNOPENED = "unopened"
    ATTACHED = "attached"
    DETACHED = "detached"
    CLOSED = "closed"


class Feed(Protocol):
    """Where typed events go: the single writer that hands them to the deciders. Never raises."""

    def feed(self, event: SchedulerEvent) -> None: ...


class StreamListener(Protocol):
    """What happens around a connection, beyond its events."""

    async def catch_up(self) -> None:
        """First frame of a connection, before it counts as attached: replay what was missed."""
        ...

    async def attached(self, *, first: bool, host_restarted: bool) -> None:
        """The stream is attached. ``first``: the first time since start; ``host_restarted``: while
        detached, opencode refused connections (its process was gone)."""
        ...

    def detached(self, *, was_attached: bool) -> None:
        """A connection attempt failed or an attached stream was lost (``was_attached``)."""
        ...


class SseLines:
    """Incremental SSE line framing over decoded text chunks (see the module docstring)."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, text: str) -> list[str]:
        """Complete lines of ``text`` (with what came before); an unfinished line waits for more."""
        if "\r" in text:
            # A "\r\n" split over two chunks yields one empty line more: a no-op for data lines.
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        if self._pending:
            lines[0] = self._pending + lines[0]
        self._pending = lines.pop()
        return lines

    def flush(self) -> list[str]:
        """The last line, when the stream ended without its line break."""
        pending, self._pending = self._pending, ""
        return [pending] if pending else []


class EventStream:
    """One opencode's ``GET /event``, kept open for as long as :meth:`run` runs."""

    def __init__(self, client: OpencodeClient, feed: Feed, listener: StreamListener, *, clock: Clock,
                 heartbeat_timeout: float = HEARTBEAT_TIMEOUT_S) -> None:
        self.client = client
        self._feed = feed
        self._listener = listener
        self._clock = clock
        self.heartbeat_timeout = heartbeat_timeout
        self.state = StreamState.UNOPENED
        self.detached_reason: str | None = "not connected yet"
        self.connects = 0
        self._deadline = 0.0
        self._detached_since: float | None = None
        self._last_detached_log = 0.0
        self._host_was_down = False
        self._resynced = False
        self._tg: TaskGroup | None = None

    async def run(self) -> None:
        """Connect, consume, and on any failure reconnect at once or after a short backoff; forever.

        The watchers run in this task group, beside the loop, so errors of the stream itself reach
        the reconnect loop unwrapped.
        """
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                await self._loop()
        finally:
            self.state = StreamState.CLOSED

    async def _loop(self) -> None:
        backoff = BACKOFF_FIRST_S
        while True:
            cause = "event stream closed by opencode"
            timed_out = False
            try:
                async with self.client.event_text() as chunks:
                    backoff = BACKOFF_FIRST_S
                    await self._consume_watched(chunks)
            except OpencodeUnavailable as exc:
                cause, timed_out = str(exc), exc.timed_out
                if self.state is StreamState.DETACHED and not exc.timed_out:
                    # Refused while detached: the opencode process itself was gone, so children
                    # that were mid-turn lost that turn (background-tasks spec §15.5).
                    self._host_was_down = True
            except OpencodeError as exc:
                cause = str(exc)
            except TimeoutError as exc:
                cause, timed_out = str(exc) or "no event from opencode in time", True
            self._detach(cause)
            if not timed_out:
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _detach(self, cause: str) -> None:
        """Record why baton is not attached; log the change, and a reminder while it lasts."""
        now = self._clock.time()
        was_attached = self.state is StreamState.ATTACHED
        if was_attached:
            self.state = StreamState.DETACHED
        self._listener.detached(was_attached=was_attached)
        changed = cause != self.detached_reason
        self.detached_reason = cause
        if was_attached:
            self._detached_since = now
            log.warning("detached from opencode; reconnecting", cause=cause, url=self.client.base_url)
        elif changed or now - self._last_detached_log >= STILL_DETACHED_LOG_S:
            waiting = "waiting for opencode" if self.state is StreamState.UNOPENED else "still detached from opencode"
            log.warning(waiting, cause=cause, url=self.client.base_url,
                        seconds=round(now - (self._detached_since or now), 1))
        else:
            return
        self._last_detached_log = now

    async def _consume_watched(self, chunks: AsyncIterator[str]) -> None:
        """Consume the stream while a watcher ends it when opencode falls silent.

        One watcher per connection instead of a timeout around every read: a cancel scope per
        line cost 6.8 µs, more than deciding the event. The first event must come within
        ``FIRST_EVENT_S``, then a heartbeat (or any event) within ``heartbeat_timeout``.
        """
        self._deadline = self._clock.time() + FIRST_EVENT_S
        reading = anyio.CancelScope()
        watching = anyio.CancelScope()
        dead = anyio.Event()

        async def watch() -> None:
            with watching:
                # A periodic check: heartbeats only move the deadline, so there is no event to wait on.
                while self._clock.time() <= self._deadline:  # noqa: ASYNC110
                    await anyio.sleep(WATCH_PERIOD_S)
                dead.set()
                reading.cancel()

        assert self._tg is not None
        self._tg.start_soon(watch)
        try:
            with reading:
                await self._consume(chunks)
        finally:
            watching.cancel()
        if dead.is_set():
            if self.state is StreamState.ATTACHED:
                raise TimeoutError(f"no heartbeat from opencode for {self.heartbeat_timeout:g} s")
            raise TimeoutError(f"opencode sent no event within {FIRST_EVENT_S:g} s of answering")

    async def _consume(self, chunks: AsyncIterator[str]) -> None:
        framing = SseLines()
        self._resynced = False
        async for text in chunks:
            await self._lines(framing.feed(text))
        await self._lines(framing.flush())

    async def _lines(self, lines: list[str]) -> None:
        feed = self._feed.feed
        for line in lines:
            if not line.startswith("data:"):
                continue
            try:
                payload = json.loads(line[5:])
            except ValueError:
                continue
            self._deadline = self._clock.time() + self.heartbeat_timeout
            kind = payload.get("type") if isinstance(payload, dict) else None
            if kind in STREAM_EVENTS:
                if not self._resynced:
                    self._resynced = True
                    with anyio.fail_after(ATTACH_CALL_S * 4):
                        await self._attach()
                continue
            event = parse_event(payload)
            if event is not None:
                feed(event)

    async def _attach(self) -> None:
        """First frame of a (re)connection: catch up, count as attached, then the listener's rest."""
        self.connects += 1
        await self._listener.catch_up()
        first = self.state is StreamState.UNOPENED
        self.state = StreamState.ATTACHED
        self.detached_reason = None
        self._detached_since = None
        host_restarted, self._host_was_down = self._host_was_down, False
        await self._listener.attached(first=first, host_restarted=host_restarted)
