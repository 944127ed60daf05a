"""Fleet task throughput on one PostgreSQL: 1, 2 and 4 batons' worth of task lifecycles at once.

What the database does for each background task of a fleet, per baton instance (each with its own
PostgreSQL store — writer pool, LISTEN connection, lease — and its own fleet slot gate, as
``baton serve --store`` runs them): the task row saved as queued, the slot claimed and granted
(``FleetSlots``, one transaction per key under an advisory lock), the row saved as running, three
journal entries, the row saved as completed, the slot released. No opencode and no model: the
figure is how many tasks per second the coordination itself sustains, the ceiling the database
puts on a fleet. Every instance runs in this one process (2 cores here, shared with the server),
so the figure is a lower bound for instances on their own machines.

    .venv/bin/python bench/fleet_throughput.py [--tasks 300] [--limit 4]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time

import anyio

from baton.clock import SystemClock
from baton.runtime.fleet_slots import FleetSlots
from baton.store_pg import PgStore
from baton.store_pg_slots import SLOT_CHANNEL
from baton.store_port import JournalEntry
from baton.testing.postgres import TestPostgres


async def instance(url: str, name: str, tasks: int, limit: int, workers: int, done: list[float]) -> None:
    clock = SystemClock()
    store = await PgStore.open(url, scope=f"http://{name}", clock=clock, instance=name, lease_seconds=30.0)
    gate = FleetSlots(store, lambda key: limit, SLOT_CHANNEL)
    todo = iter(range(tasks))

    async def worker() -> None:
        for n in todo:
            task_id = f"{name}-{n}"
            row = {"id": task_id, "parent_session_id": "p", "status": "queued", "key": "fake/backup"}
            store.save_tasks([(task_id, row)], [], clock.time())
            row = {**row, "status": "starting"}
            store.save_tasks([(task_id, row)], [], clock.time())
            gate.note(task_id, row)
            await gate.admit(task_id, None)
            store.save_tasks([(task_id, {**row, "status": "running"})], [], clock.time())
            store.journal([JournalEntry(clock.time(), "p", "task", f"{task_id} step {i}", {}) for i in range(3)])
            row = {**row, "status": "completed"}
            store.save_tasks([(task_id, row)], [], clock.time())
            gate.note(task_id, row)
            done.append(time.perf_counter())

    async with anyio.create_task_group() as tg:
        tg.start_soon(store.run)
        tg.start_soon(gate.run)
        async with anyio.create_task_group() as inner:
            for _ in range(workers):
                inner.start_soon(worker)
        await store.flush()
        tg.cancel_scope.cancel()
    await store.aclose()


async def run_fleet(server: TestPostgres, instances: int, tasks: int, limit: int) -> float:
    url = server.new_database(f"baton_fleet{instances}")
    done: list[float] = []
    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for i in range(instances):
            tg.start_soon(instance, url, f"b{i}", tasks // instances, limit, limit, done)
    return len(done) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=300, help="tasks per run, split between the instances")
    parser.add_argument("--limit", type=int, default=4, help="the fleet's slots for the one model")
    args = parser.parse_args()
    logging.getLogger("psycopg").setLevel(logging.CRITICAL)  # connections cut at each run's end are expected
    server = TestPostgres()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"PostgreSQL {'given' if os.environ.get('BATON_TEST_DATABASE_URL') else 'pgserver, Unix socket'}; "
          f"{args.tasks} tasks per run, {args.limit} slots fleet-wide")
    try:
        for instances in (1, 2, 4):
            rate = anyio.run(run_fleet, server, instances, args.tasks, args.limit)
            print(f"{instances} instance{'s' if instances > 1 else ' '}: {rate:7.1f} task lifecycles/s")
    finally:
        server.close()


if __name__ == "__main__":
    main()
