"""Record opencode's `GET /event` stream in a background thread, for tests, the demo and benchmarks."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx2

__all__ = ["EventRecorder"]


class EventRecorder:
    """Records `GET /event` in a background thread: each `data:` JSON payload plus `_t` (s since start).

    `start()` returns once `server.connected` arrived, so nothing sent after it is missed.
    """

    def __init__(self, url: str, auth: tuple[str, str] | None = None, path: str = "/event") -> None:
        self.url = url
        self.auth = auth
        self.path = path
        self._events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: httpx2.Client | None = None
        self._socket: socket.socket | None = None
        self._t0 = 0.0
        self.error: BaseException | None = None

    def at(self, event: dict[str, Any]) -> float:
        """When ``event`` arrived, on ``time.monotonic()`` (``_t`` counts from the subscription)."""
        return self._t0 + float(event["_t"])

    @property
    def events(self) -> list[dict[str, Any]]:
        """A snapshot of the events so far."""
        with self._cond:
            return list(self._events)

    def start(self, timeout: float = 10.0) -> Self:
        """Subscribe and wait for the stream's first event."""
        self._t0 = time.monotonic()
        self._client = httpx2.Client(base_url=self.url, auth=self.auth, timeout=httpx2.Timeout(10.0, read=None))
        self._thread = threading.Thread(target=self._run, name="opencode-events", daemon=True)
        self._thread.start()
        self.wait_for(lambda e: True, timeout)
        return self

    def _run(self) -> None:
        assert self._client is not None
        try:
            with self._client.stream("GET", self.path) as r:
                r.raise_for_status()
                stream = r.extensions.get("network_stream")
                self._socket = stream.get_extra_info("socket") if stream is not None else None
                if self._closed.is_set():
                    return
                data: list[str] = []
                for line in r.iter_lines():
                    if self._closed.is_set():
                        return
                    if line.startswith("data:"):
                        data.append(line[5:].removeprefix(" "))
                    elif not line and data:
                        self._add("\n".join(data))
                        data = []
        except BaseException as exc:
            if not self._closed.is_set():
                self.error = exc
        finally:
            with self._cond:
                self._cond.notify_all()

    def _add(self, payload: str) -> None:
        t = round(time.monotonic() - self._t0, 4)
        try:
            event = json.loads(payload)
        except ValueError:
            event = {"type": "_unparsed", "data": payload}
        if not isinstance(event, dict):
            event = {"type": "_unparsed", "data": event}
        event["_t"] = t
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0, *, after: int = 0
    ) -> dict[str, Any]:
        """Return the first event (from index `after` on) matching `predicate`, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            i = after
            while True:
                while i < len(self._events):
                    if predicate(self._events[i]):
                        return self._events[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or (self._thread is not None and not self._thread.is_alive()):
                    types = [e.get("type") for e in self._events[after:]][-30:]
                    raise TimeoutError(f"no matching event within {timeout}s (error={self.error!r}); saw {types}")
                self._cond.wait(min(left, 0.5))

    def mark(self) -> int:
        """The number of events so far: pass it as `after=` to wait only for later events."""
        with self._cond:
            return len(self._events)

    def wait_type(
        self, event_type: str, session_id: str | None = None, timeout: float = 30.0, *, after: int = 0
    ) -> dict[str, Any]:
        """Wait for an event of `event_type` (for `session_id` if given), from index `after` on."""

        def match(e: dict[str, Any]) -> bool:
            if e.get("type") != event_type:
                return False
            return session_id is None or _session_of(e) == session_id

        return self.wait_for(match, timeout, after=after)

    def stop(self) -> None:
        """Close the stream and join the thread."""
        self._closed.set()
        sock = self._socket
        if sock is not None:  # closing the client does not wake a blocked read; shutting the socket does
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(5)
        if self._client is not None:
            self._client.close()

    def dump(self, path: Path) -> None:
        """Write the events as JSON lines."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as fh:
            for event in self.events:
                fh.write(json.dumps(event, separators=(",", ":")) + "\n")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _session_of(event: Mapping[str, Any]) -> str | None:
    """The session an event is about, wherever this event type keeps it."""
    props = event.get("properties")
    if not isinstance(props, Mapping):
        return None
    for candidate in (props, props.get("info"), props.get("part")):
        if isinstance(candidate, Mapping):
            sid = candidate.get("sessionID")
            if isinstance(sid, str):
                return sid
    return None
