"""Task slots for the whole fleet on a real PostgreSQL: two batons, one limit, FIFO per key across
them, a claim released while waiting, and the slots of a driver that died without a successor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import psycopg
import pytest

from baton.runtime.fleet_slots import FleetSlots
from baton.store_pg import PgStore
from baton.store_pg_slots import SLOT_CHANNEL
from baton.testing.clock import FakeClock

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0
KEY = "fake/backup"


def row(status: str, key: str = KEY) -> dict[str, str]:
    return {"status": status, "key": key}


@asynccontextmanager
async def baton(url: str, scope: str, limit: int = 2) -> AsyncIterator[FleetSlots]:
    """One baton's store (driving ``scope``) and its fleet slots, running."""
    store = await PgStore.open(url, scope=scope, clock=FakeClock(NOW), instance=scope, lease_seconds=30.0)
    gate = FleetSlots(store, lambda key: limit, SLOT_CHANNEL)
    async with anyio.create_task_group() as tg:
        tg.start_soon(store.run)
        tg.start_soon(gate.run)
        try:
            yield gate
        finally:
            tg.cancel_scope.cancel()
    await store.aclose()


class Admissions:
    """Which tasks got through the gate, in order."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.refused: list[str] = []
        self._changed = anyio.Event()

    async def admit(self, gate: FleetSlots, task_id: str) -> None:
        if await gate.admit(task_id, None):
            self.order.append(task_id)
        else:
            self.refused.append(task_id)
        self._changed.set()

    async def until(self, n: int) -> None:
        with anyio.fail_after(10):
            while len(self.order) + len(self.refused) < n:
                await self._changed.wait()
                self._changed = anyio.Event()


async def test_a_limit_of_two_holds_for_the_fleet_in_first_come_order(pg_url: str) -> None:
    got = Admissions()
    async with baton(pg_url, "http://a") as a, baton(pg_url, "http://b") as b, anyio.create_task_group() as tg:
        for gate, task in ((a, "a1"), (a, "a2"), (b, "b1"), (a, "a3"), (b, "b2")):
            gate.note(task, row("starting"))
            tg.start_soon(got.admit, gate, task)
            await anyio.sleep(0.05)  # claims reach the database in this order
        await got.until(2)
        await anyio.sleep(0.3)
        assert got.order == ["a1", "a2"]  # b1, a3, b2 wait: two run in the whole fleet
        a.note("a1", row("completed"))
        await got.until(3)
        assert got.order == ["a1", "a2", "b1"]  # the oldest waiting claim, whichever baton made it
        b.note("b1", row("failed"))
        await got.until(4)
        assert got.order == ["a1", "a2", "b1", "a3"]  # a3 asked before b2
        a.note("a2", row("cancelled"))
        await got.until(5)
        assert got.order == ["a1", "a2", "b1", "a3", "b2"]


async def test_a_task_that_ends_while_waiting_is_refused_and_its_claim_goes(pg_url: str) -> None:
    got = Admissions()
    async with baton(pg_url, "http://a", limit=1) as a, anyio.create_task_group() as tg:
        a.note("a1", row("running"))
        tg.start_soon(got.admit, a, "a1")
        await got.until(1)
        a.note("a2", row("starting"))
        tg.start_soon(got.admit, a, "a2")
        await anyio.sleep(0.3)
        a.note("a2", row("cancelled"))
        await got.until(2)
        assert got.order == ["a1"] and got.refused == ["a2"]
        with anyio.fail_after(5):
            while True:
                with psycopg.connect(pg_url) as conn:
                    left = conn.execute("SELECT task_id FROM slot_claims ORDER BY seq").fetchall()
                if left == [("a1",)]:
                    break
                await anyio.sleep(0.05)


async def test_the_slots_of_a_driver_gone_without_a_successor_stop_counting(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("baton.store_pg_slots.DEAD_DRIVER_GRACE_S", 1.0)
    got = Admissions()
    async with baton(pg_url, "http://a", limit=1) as a, baton(pg_url, "http://b", limit=1) as b, \
            anyio.create_task_group() as tg:
        a.note("a1", row("running"))
        tg.start_soon(got.admit, a, "a1")
        await got.until(1)
        with psycopg.connect(pg_url, autocommit=True) as conn:  # a's machine is gone: its lease lapses
            conn.execute("UPDATE leases SET expires_at = now() - interval '5 seconds' WHERE scope = 'http://a'")
        b.note("b1", row("starting"))
        tg.start_soon(got.admit, b, "b1")
        await got.until(2)  # at b's next check of its waiting claim
        assert got.order == ["a1", "b1"]
