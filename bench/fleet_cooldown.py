"""Cooldown propagation across batons sharing one PostgreSQL: learnt on A → in B's ledger.

Two PostgreSQL stores as two ``baton serve`` run them (each with its own writer connection pool
and its own LISTEN connection), one real PostgreSQL server (pgserver's, on a Unix socket; or
``BATON_TEST_DATABASE_URL``). Each sample: A saves a cooldown for a new model (what its fallback
executor does when a provider fails); the figure is the time until B's ledger callback holds it —
from then on B's deciders route around that model. Issue 9 target: median ≤ 100 ms.

    .venv/bin/python bench/fleet_cooldown.py [--samples 200]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time

import anyio

from baton.clock import SystemClock
from baton.store_pg import PgStore
from baton.store_port import CoolingRow
from baton.testing.postgres import TestPostgres


async def measure(url: str, samples: int) -> list[float]:
    clock = SystemClock()
    a = await PgStore.open(url, scope="http://a", clock=clock, instance="a")
    b = await PgStore.open(url, scope="http://b", clock=clock, instance="b")
    arrived: dict[str, float] = {}
    got = anyio.Event()

    def heard(row: CoolingRow) -> None:
        arrived[row.model] = time.perf_counter()
        got.set()

    b.watch_cooldowns(heard)
    lags: list[float] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(a.run)
        tg.start_soon(b.run)
        for n in range(-5, samples):  # the first five warm up (connections made, B listening): not counted
            got = anyio.Event()
            model = f"bench/model-{n}"
            sent = time.perf_counter()
            a.save_cooldown(model, clock.time() + 3600, "quota", clock.time())
            with anyio.fail_after(10):
                await got.wait()
            if n >= 0:
                lags.append(arrived[model] - sent)
        tg.cancel_scope.cancel()
    await a.aclose()
    await b.aclose()
    return lags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    server = TestPostgres()
    try:
        url = server.new_database("baton_bench")
        lags = anyio.run(measure, url, args.samples)
    finally:
        server.close()
    ms = sorted(lag * 1000 for lag in lags)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"PostgreSQL {'given' if os.environ.get('BATON_TEST_DATABASE_URL') else 'pgserver, Unix socket'}")
    print(f"cooldown A → B ledger, {len(ms)} samples: median {statistics.median(ms):.2f} ms, "
          f"p95 {ms[math.ceil(len(ms) * 0.95) - 1]:.2f} ms, max {ms[-1]:.2f} ms (target: median ≤ 100 ms)")


if __name__ == "__main__":
    main()
