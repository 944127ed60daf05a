"""Throughput of the decision path: SSE ``data:`` line → JSON → typed event → the engine's deciders.

Replays the recorded opencode event streams in ``tests/data/events/`` (a long streamed answer
dominates, so ``message.part.delta`` is most of the load), repeated across many sessions so the
policy holds realistic state. Prints events/s for the full path (``Router.feed``: policy,
scheduler, matcher, journal) and, as a baseline measured in the same process, for ``json.loads``
alone, plus their ratio. Then the SSE framing in front of it, in CPU time per event (framing +
``json.loads``, the body cut in 16 KiB chunks as a socket delivers it): httpx2's ``aiter_lines``
(baton's framing until the stream adapter; it splits at U+2028 too), baton's ``SseLines`` (now),
and httpx2's ``EventSource`` (considered).

    .venv/bin/python bench/throughput.py [--events 300000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx2
import structlog

from baton.clock import SystemClock
from baton.config import Config, load_config
from baton.cooldowns import Cooldowns
from baton.daemon import build_engine
from baton.engine import Engine
from baton.fallback.policy import FallbackPolicy
from baton.opencode.client import OpencodeClient
from baton.opencode.events import STREAM_EVENTS, parse_event
from baton.opencode.stream import SseLines
from baton.store import Store
from baton.tasks.events import SchedulerEvent

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "events"


def recorded_lines() -> list[str]:
    """Every recorded payload as the SSE line it arrived in, session ids made unique per file."""
    lines: list[str] = []
    for path in sorted(DATA.glob("*.jsonl")):
        for raw in path.read_text().splitlines():
            payload = json.loads(raw)
            payload.pop("_t", None)
            lines.append("data: " + json.dumps(payload, separators=(",", ":")))
    return lines


def workload(total: int) -> list[str]:
    base = recorded_lines()
    if not base:
        raise SystemExit(f"no recordings in {DATA}")
    out: list[str] = []
    copy = 0
    while len(out) < total:
        copy += 1
        # A fresh set of session ids per copy: many concurrent sessions, as in a busy server.
        out.extend(line.replace("ses_", f"ses_{copy:05d}") for line in base)
    return out[:total]


def run_path(lines: list[str], handle: Callable[[SchedulerEvent], object]) -> float:
    start = time.perf_counter()
    for line in lines:
        if not line.startswith("data:"):
            continue
        payload = json.loads(line[5:])
        if payload.get("type") in STREAM_EVENTS:
            continue
        event = parse_event(payload)
        if event is not None:
            handle(event)
    return time.perf_counter() - start


def _policy_handler(config: Config, now: float) -> Callable[[SchedulerEvent], object]:
    policy = FallbackPolicy(config, Cooldowns())
    # Every parsed event, task-only ones too (the policy returns nothing for them), as this figure always had.
    return lambda event: policy.handle(event, now)  # type: ignore[arg-type]


def engine(config: Config, tmp: Path) -> Engine:
    """A real engine (store on disk, scheduler, matcher), as serve builds it; its client is never called here."""
    return build_engine(OpencodeClient("http://127.0.0.1:9"), config, Store(tmp / "baton.db"), clock=SystemClock())


def run_baseline(lines: list[str]) -> float:
    start = time.perf_counter()
    for line in lines:
        json.loads(line[5:])
    return time.perf_counter() - start


FRAMING_CHUNK = 16 * 1024


def _response(body: bytes) -> httpx2.Response:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), FRAMING_CHUNK):
            yield body[i:i + FRAMING_CHUNK]

    return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=chunks(),
                           request=httpx2.Request("GET", "http://opencode.test/event"))


async def _framed_aiter_lines(body: bytes) -> int:
    n = 0
    async for line in _response(body).aiter_lines():
        if line.startswith("data:"):
            json.loads(line[5:])
            n += 1
    return n


async def _framed_sse_lines(body: bytes) -> int:
    n = 0
    framing = SseLines()
    async for text in _response(body).aiter_text():
        for line in framing.feed(text):
            if line.startswith("data:"):
                json.loads(line[5:])
                n += 1
    return n


async def _framed_event_source(body: bytes) -> int:
    n = 0
    async for sse in httpx2.EventSource(_response(body), max_event_size=None):
        json.loads(sse.data)
        n += 1
    return n


def framing_costs(lines: list[str], rounds: int) -> dict[str, float]:
    """CPU µs per event of framing + ``json.loads`` for each framing, best of ``rounds``."""
    body = "".join(line + "\n\n" for line in lines).encode()
    paths = {"aiter_lines": _framed_aiter_lines, "SseLines": _framed_sse_lines,
             "EventSource": _framed_event_source}
    best = dict.fromkeys(paths, float("inf"))
    for _ in range(rounds):
        for name, path in paths.items():
            start = time.process_time()
            n = asyncio.run(path(body))
            best[name] = min(best[name], (time.process_time() - start) / n * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    # Decisions are journaled and logged as in serve; the log lines themselves are not the subject here.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    lines = workload(args.events)
    kinds = Counter(json.loads(line[5:]).get("type") for line in lines)
    config = load_config(None, env={}, home=Path("/nonexistent"))
    now = time.time()
    policy_s = min(run_path(lines, _policy_handler(config, now)) for _ in range(args.rounds))
    with tempfile.TemporaryDirectory() as tmp:
        engine_s = min(run_path(lines, engine(config, Path(tmp) / str(i)).router.feed) for i in range(args.rounds))
    base = min(run_baseline(lines) for _ in range(args.rounds))
    n = len(lines)
    print(f"machine: {platform.machine()} · {os.cpu_count()} cores · Python {platform.python_version()}")
    print(f"events: {n} (top kinds: {', '.join(f'{k} {v}' for k, v in kinds.most_common(3))})")
    print(f"parse + fallback policy: {n / policy_s:,.0f} events/s ({policy_s / n * 1e6:.2f} µs/event)")
    print(f"parse + Router.feed (policy, scheduler, matcher): {n / engine_s:,.0f} events/s "
          f"({engine_s / n * 1e6:.2f} µs/event)")
    print(f"baseline json.loads only: {n / base:,.0f} events/s")
    print(f"time ratios vs baseline: policy path {policy_s / base:.2f}x, engine path {engine_s / base:.2f}x "
          "(target ≥ 100,000 events/s on one core)")
    costs = framing_costs(lines, args.rounds)
    print("SSE framing + json.loads, CPU µs/event: " + ", ".join(f"{k} {v:.2f}" for k, v in costs.items()))


if __name__ == "__main__":
    main()
