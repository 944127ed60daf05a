"""A TCP/HTTP fault proxy for tests: sits between baton and opencode and misbehaves on demand.

``FaultProxy(opencode_port).start()`` listens on 127.0.0.1 (a free port unless given) and
forwards every connection to the target. It runs its own asyncio loop in a background
thread; the control methods are synchronous and return once the new mode is in force:

* ``set_mode("pass")`` / ``release()``: forward everything untouched.
* ``set_mode("drop")``: reset every open connection, and reset new ones as they arrive.
* ``set_mode("hold", drop_existing=False)``: open connections stop delivering bytes either
  way (they flow again on release); new connections are accepted and their requests read but
  never answered, even after release, like opencode between "port open" and "listening".
  With ``drop_existing`` open connections are reset first.
* ``set_mode("delay", seconds=S)``: every chunk, either way, is delivered S seconds after it
  arrived (latency, not a rate limit).
* SSE faults on ``GET /event`` responses (opencode's chunked ``text/event-stream``); the body is
  decoded into events (blocks ending in a blank line) and re-framed one event per chunk:
  ``set_mode("duplicate", match=None)`` sends each event twice; ``set_mode("reorder", ...)``
  holds an event back and sends it after the next one (or after ``reorder_flush`` s of quiet);
  ``set_mode("truncate", match=None, times=1)`` sends the next event only up to the middle of
  its ``data:`` line and closes the connection, ``times`` times, then passes.
  ``match`` (bytes or str) limits a fault to events containing it.

``proxy.stats`` counts what happened (``accepted``, ``dropped``, ``held``, ``events``,
``duplicated``, ``reordered``, ``truncated``, ``event_streams``) and ``wait_stat`` waits for
a count, so a test can check that a fault really fired.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Self

__all__ = ["MODES", "FaultProxy"]

MODES = ("pass", "drop", "hold", "delay", "duplicate", "reorder", "truncate")
_SSE_MODES = ("duplicate", "reorder", "truncate")
_EVENT_REQUEST = (b"GET /event ", b"GET /event?")
_Chunk = tuple[float, bytes] | None  # (loop time received, data); None: end of stream


@dataclass
class _Mode:
    name: str = "pass"
    seconds: float = 0.0
    match: bytes | None = None
    times: int = 1


class _Conn:
    """One proxied connection: the client's and the target's stream pairs."""

    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream = upstream
        self.sse: _SseShaper | None = None

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            _reset(writer)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a crashed or unplugged peer would."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _SseShaper:
    """Decodes one ``GET /event`` response into SSE events and re-frames them after the proxy's fault."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.head = b""
        self.headers_done = False
        self.chunked = False
        self.raw = b""  # undecoded chunked bytes
        self.chunk_left = 0
        self.need_crlf = False
        self.ended = False
        self.body = b""  # decoded bytes not yet ending in a blank line
        self.pending: bytes | None = None  # an event held back by "reorder"

    def feed(self, data: bytes) -> tuple[list[bytes], bool]:
        """Bytes from the target -> (frames to send to the client, whether to close afterwards)."""
        out: list[bytes] = []
        if not self.headers_done:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return out, False
            head, data = self.head[: end + 4], self.head[end + 4 :]
            self.headers_done = True
            self.chunked = b"transfer-encoding: chunked" in head.lower()
            self.proxy.stats["event_streams"] += 1
            out.append(head)
        if self.chunked:
            self.raw += data
            self.body += self._decode()
        else:
            self.body += data
        *events, self.body = self.body.split(b"\n\n")
        for event in events:
            frames, close = self._shape(event + b"\n\n")
            out += frames
            if close:
                return out, True
        if self.ended:
            out += self.flush()
            out.append(b"0\r\n\r\n")
        return out, False

    def flush(self) -> list[bytes]:
        """The event held back by "reorder", if any."""
        held, self.pending = self.pending, None
        return [] if held is None else [self._frame(held)]

    def _decode(self) -> bytes:
        out = bytearray()
        while not self.ended:
            if self.chunk_left:
                take = self.raw[: self.chunk_left]
                out += take
                self.raw = self.raw[len(take) :]
                self.chunk_left -= len(take)
                if self.chunk_left:
                    break
                self.need_crlf = True
            if self.need_crlf:
                if len(self.raw) < 2:
                    break
                self.raw, self.need_crlf = self.raw[2:], False
            line_end = self.raw.find(b"\r\n")
            if line_end < 0:
                break
            size = int(self.raw[:line_end].split(b";")[0], 16)
            self.raw = self.raw[line_end + 2 :]
            self.chunk_left = size
            self.ended = size == 0
        return bytes(out)

    def _frame(self, data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data

    def _shape(self, event: bytes) -> tuple[list[bytes], bool]:
        stats, mode = self.proxy.stats, self.proxy.mode
        stats["events"] += 1
        hit = mode.name in _SSE_MODES and (mode.match is None or mode.match in event)
        out = [] if mode.name == "reorder" else self.flush()
        if hit and mode.name == "duplicate":
            stats["duplicated"] += 1
            return [*out, self._frame(event), self._frame(event)], False
        if hit and mode.name == "truncate" and mode.times > 0:
            mode.times -= 1
            stats["truncated"] += 1
            start = max(event.find(b"data:"), 0)
            line_end = event.find(b"\n", start)
            cut = start + (line_end - start) // 2 if line_end > start + 1 else len(event) // 2
            return [*out, self._frame(event[: max(cut, 1)])], True
        if mode.name == "reorder" and self.pending is not None:
            stats["reordered"] += 1
            return [self._frame(event), *self.flush()], False
        if hit and mode.name == "reorder":
            self.pending = event
            return [], False
        return [*out, self._frame(event)], False


class FaultProxy:
    """Forwards 127.0.0.1:``port`` to ``target_host:target_port`` with switchable faults (module doc)."""

    def __init__(self, target_port: int, *, target_host: str = "127.0.0.1", host: str = "127.0.0.1",
                 port: int = 0, reorder_flush: float = 0.3) -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = port
        self.reorder_flush = reorder_flush
        self.mode = _Mode()
        self.stats: Counter[str] = Counter()
        self._conns: set[_Conn] = set()
        self._held: set[asyncio.StreamWriter] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> Self:
        """Listen and forward in a background thread; returns once the port accepts connections."""
        ready = threading.Event()
        errors: list[BaseException] = []

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._flowing, self._stop = asyncio.Event(), asyncio.Event()
            self._flowing.set()
            try:
                self._server = await asyncio.start_server(self._handle, self.host, self.port)
                self.port = self._server.sockets[0].getsockname()[1]
            except OSError as exc:
                errors.append(exc)
                return
            finally:
                ready.set()
            async with self._server:
                await self._stop.wait()
                self._abort_all()

        self._thread = threading.Thread(target=asyncio.run, args=(main(),), name="fault-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or errors:
            cause = errors[0] if errors else None
            raise RuntimeError(f"fault proxy could not listen on {self.host}:{self.port}") from cause
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Reset every connection, stop listening and join the thread."""
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is None or stop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)
        self._loop = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control (from any thread) -----------------------------------------------------------------

    def set_mode(self, mode: str, *, drop_existing: bool = False, seconds: float = 0.0,
                 match: bytes | str | None = None, times: int = 1) -> None:
        """Switch to ``mode`` (one of MODES; see the module doc); in force when this returns."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
        needle = match.encode() if isinstance(match, str) else match
        new = _Mode(mode, seconds, needle, times)

        async def apply() -> None:
            assert self._flowing is not None
            self.mode = new
            if mode == "drop" or (mode == "hold" and drop_existing):
                self._abort_all(held_too=mode == "drop")
            if mode == "hold":
                self._flowing.clear()
            else:
                self._flowing.set()

        if self._loop is None:
            raise RuntimeError("the fault proxy is not running")
        asyncio.run_coroutine_threadsafe(apply(), self._loop).result(5.0)

    def release(self) -> None:
        """Back to pass-through. Connections accepted while holding stay silent (see the module doc)."""
        self.set_mode("pass")

    def drop(self) -> None:
        self.set_mode("drop")

    def hold(self, *, drop_existing: bool = False) -> None:
        self.set_mode("hold", drop_existing=drop_existing)

    def delay(self, seconds: float) -> None:
        self.set_mode("delay", seconds=seconds)

    def wait_stat(self, name: str, at_least: int = 1, timeout: float = 10.0) -> int:
        """Poll until ``stats[name] >= at_least``; raises TimeoutError with all counters otherwise."""
        deadline = time.monotonic() + timeout
        while self.stats[name] < at_least:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fault proxy: {name} stayed below {at_least} for {timeout}s: {dict(self.stats)}")
            time.sleep(0.02)
        return self.stats[name]

    # -- the loop's side ---------------------------------------------------------------------------

    def _abort_all(self, *, held_too: bool = True) -> None:
        for conn in list(self._conns):
            conn.abort()
            self.stats["dropped"] += 1
        self._conns.clear()
        if held_too:
            for writer in list(self._held):
                _reset(writer)
            self._held.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats["accepted"] += 1
        if self.mode.name == "drop":
            self.stats["dropped"] += 1
            _reset(writer)
            return
        if self.mode.name == "hold":
            await self._hold(reader, writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        conn = _Conn(writer, up_writer)
        self._conns.add(conn)
        up: asyncio.Queue[_Chunk] = asyncio.Queue()
        down: asyncio.Queue[_Chunk] = asyncio.Queue()
        pumps = [asyncio.create_task(c) for c in (self._read(reader, up), self._read(up_reader, down),
                                                   self._write(conn, up, upstream=True),
                                                   self._write(conn, down, upstream=False))]
        try:
            await asyncio.wait(pumps[2:], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._conns.discard(conn)
            for w in (writer, up_writer):
                w.close()

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Accept and read, never answer (until the client or ``stop``/``drop`` ends it)."""
        self.stats["held"] += 1
        self._held.add(writer)
        try:
            while await reader.read(65536):
                pass
        except OSError:
            pass
        finally:
            self._held.discard(writer)
            writer.close()

    async def _read(self, reader: asyncio.StreamReader, queue: asyncio.Queue[_Chunk]) -> None:
        loop = asyncio.get_running_loop()
        try:
            while data := await reader.read(65536):
                queue.put_nowait((loop.time(), data))
        except OSError:
            pass
        queue.put_nowait(None)

    async def _write(self, conn: _Conn, queue: asyncio.Queue[_Chunk], *, upstream: bool) -> None:
        """Deliver one direction's chunks, applying hold, delay and (towards the client) SSE faults."""
        assert self._flowing is not None
        loop = asyncio.get_running_loop()
        writer = conn.upstream if upstream else conn.client
        try:
            while True:
                held = not upstream and conn.sse is not None and conn.sse.pending is not None
                try:
                    item = await asyncio.wait_for(queue.get(), self.reorder_flush if held else None)
                except TimeoutError:
                    shaper = conn.sse
                    assert shaper is not None
                    await self._flowing.wait()
                    frames, close = shaper.flush(), False
                else:
                    shaper = None if upstream else conn.sse
                    if item is None:
                        if shaper is not None:
                            writer.write(b"".join(shaper.flush()))
                            await writer.drain()
                        return
                    await self._flowing.wait()
                    if self.mode.name == "delay":
                        await asyncio.sleep(max(0.0, item[0] + self.mode.seconds - loop.time()))
                    frames, close = [item[1]], False
                    if upstream and item[1].startswith(_EVENT_REQUEST):
                        conn.sse = _SseShaper(self)
                    elif shaper is not None:
                        frames, close = shaper.feed(item[1])
                for frame in frames:
                    writer.write(frame)
                await writer.drain()
                if close:
                    conn.upstream.transport.abort()
                    writer.close()
                    return
        except (OSError, RuntimeError):
            return
