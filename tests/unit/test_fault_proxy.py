"""The fault proxy against a tiny local HTTP server: pass, drop, hold, delay and the SSE faults."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import httpx2
import pytest

from baton.testing.fault_proxy import FaultProxy


class _Handler(BaseHTTPRequestHandler):
    """``/hello`` answers "hello"; ``/event?n=N&end=0|1`` streams N chunked SSE events, then ends or stays open."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/hello":
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"hello")
            return
        query = parse_qs(url.query)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(1, int(query.get("n", ["4"])[0]) + 1):
            event = b'data: {"type":"event.%d","n":%d}\n\n' % (i, i)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
        if query.get("end", ["1"])[0] == "1":
            self.wfile.write(b"0\r\n\r\n")
            self.close_connection = True
            return
        if self.server.more.wait(30) and not self.server.closing.is_set():
            event = b'data: {"type":"event.99","n":99}\n\n'
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
        self.server.closing.wait(30)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.closing = threading.Event()  # the test is over: end open streams
        self.more = threading.Event()  # send one more event (99) on open streams


_SERVERS: dict[int, _Server] = {}


def server(proxy: FaultProxy) -> _Server:
    return _SERVERS[proxy.target[1]]


@pytest.fixture(name="proxy")
def _proxy() -> Iterator[FaultProxy]:
    server = _Server()
    _SERVERS[server.server_address[1]] = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with FaultProxy(server.server_address[1], reorder_flush=0.2) as proxy:
        yield proxy
    server.closing.set()
    server.more.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


def raw_get(proxy: FaultProxy, path: str, timeout: float = 5.0) -> bytes:
    """Send one request on a fresh socket and read until the peer closes."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def order(stream: bytes) -> list[int]:
    """The event numbers in the order they arrived (whole events only)."""
    return [int(line.split(b'"n":')[1].rstrip(b"}")) for line in stream.split(b"\n") if line.endswith(b"}")]


def test_pass_through(proxy: FaultProxy) -> None:
    assert httpx2.get(proxy.url + "/hello", timeout=5).text == "hello"
    stream = raw_get(proxy, "/event?n=3")
    assert order(stream) == [1, 2, 3] and stream.endswith(b"0\r\n\r\n")
    assert (proxy.stats["event_streams"], proxy.stats["events"]) == (1, 3), proxy.stats


def test_drop_resets_open_and_new_connections(proxy: FaultProxy) -> None:
    with httpx2.stream("GET", proxy.url + "/event?n=1&end=0", timeout=5) as response:
        lines = response.iter_lines()
        assert "event.1" in next(lines)
        proxy.drop()
        with pytest.raises(httpx2.HTTPError):
            list(lines)
    with pytest.raises(httpx2.HTTPError):
        httpx2.get(proxy.url + "/hello", timeout=2)
    proxy.release()
    assert httpx2.get(proxy.url + "/hello", timeout=5).text == "hello"


def test_hold_stays_silent_and_release_lets_new_connections_through(proxy: FaultProxy) -> None:
    proxy.hold()
    with pytest.raises(httpx2.ReadTimeout):
        httpx2.get(proxy.url + "/hello", timeout=0.5)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=0.5) as held:
        held.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        proxy.wait_stat("held", 2)
        proxy.release()
        assert httpx2.get(proxy.url + "/hello", timeout=5).text == "hello"
        with pytest.raises(TimeoutError):
            held.recv(1)  # accepted while holding: never answered, like opencode before "listening"


def test_hold_stalls_an_open_stream_until_release(proxy: FaultProxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b"GET /event?n=1&end=0 HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while b"event.1" not in first:
            first += sock.recv(65536)
        proxy.hold()
        server(proxy).more.set()  # the server sends event 99 now; the proxy keeps it back
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(65536)
        proxy.release()
        sock.settimeout(5)
        assert b"event.99" in sock.recv(65536)


def test_delay_adds_latency(proxy: FaultProxy) -> None:
    proxy.delay(0.4)
    started = time.monotonic()
    assert httpx2.get(proxy.url + "/hello", timeout=5).text == "hello"
    assert time.monotonic() - started >= 0.8  # request and answer each delayed


def test_duplicate_sends_every_event_twice(proxy: FaultProxy) -> None:
    proxy.set_mode("duplicate")
    assert order(raw_get(proxy, "/event?n=3")) == [1, 1, 2, 2, 3, 3]
    proxy.set_mode("duplicate", match="event.2")
    assert order(raw_get(proxy, "/event?n=3")) == [1, 2, 2, 3]


def test_reorder_swaps_adjacent_events(proxy: FaultProxy) -> None:
    proxy.set_mode("reorder")
    assert order(raw_get(proxy, "/event?n=4")) == [2, 1, 4, 3]
    assert order(raw_get(proxy, "/event?n=3")) == [2, 1, 3]  # the last one flushed at the end
    with httpx2.stream("GET", proxy.url + "/event?n=1&end=0", timeout=5) as response:
        assert "event.1" in next(response.iter_lines())  # held back, sent after reorder_flush of quiet
    assert proxy.stats["reordered"] == 3


def test_truncate_cuts_mid_data_line_once(proxy: FaultProxy) -> None:
    proxy.set_mode("truncate", match="event.3")
    stream = raw_get(proxy, "/event?n=4")
    assert order(stream) == [1, 2]
    tail = stream.split(b"\r\n")[-2]
    assert tail.startswith(b"data: {") and not tail.endswith(b"}")  # cut inside the data line
    assert proxy.stats["truncated"] == 1
    assert order(raw_get(proxy, "/event?n=4")) == [1, 2, 3, 4]  # times=1: then it passes
