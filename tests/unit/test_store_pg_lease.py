"""One driver per opencode server: the lease in PostgreSQL, standbys, takeover, and the fence that
keeps a baton which lost its lease from committing anything."""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import psycopg
import pytest

from baton.store_pg import PgStore
from baton.store_pg_lease import LeaseLost
from baton.testing.clock import FakeClock

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0
SCOPE = "http://127.0.0.1:4096"
ROW = {"id": "t1", "parent_session_id": "p", "status": "running"}


async def open_driver(url: str, name: str, seconds: float, told: Callable[[str], None] | None = None) -> PgStore:
    return await PgStore.open(url, scope=SCOPE, clock=FakeClock(NOW), instance=name, lease_seconds=seconds,
                              on_standby=told)


def holder(url: str) -> str | None:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT holder FROM leases WHERE scope = %s", (SCOPE,)).fetchone()
    return None if row is None else str(row[0])


async def test_a_standby_waits_while_the_driver_lives_and_takes_over_at_its_clean_stop(pg_url: str) -> None:
    driver = await open_driver(pg_url, "a", 3.0)
    driver.save_tasks([("t1", ROW)], [], NOW)
    heard: list[str] = []
    standing_by, took_over = anyio.Event(), anyio.Event()
    standby: list[PgStore] = []

    def told(driver: str) -> None:
        heard.append(driver)
        standing_by.set()

    async def stand_by() -> None:
        standby.append(await open_driver(pg_url, "b", 3.0, told))
        took_over.set()

    async with anyio.create_task_group() as outer:
        outer.start_soon(stand_by)
        async with anyio.create_task_group() as tg:
            tg.start_soon(driver.run)
            with anyio.fail_after(10):
                await standing_by.wait()
            assert heard == ["a"] and not standby and holder(pg_url) == "a"
            await anyio.sleep(4.0)  # past the lease's length: renewed all along, still a's
            assert not standby
            tg.cancel_scope.cancel()
        await driver.aclose()  # releases the lease
        with anyio.fail_after(5):
            await took_over.wait()
    (b,) = standby
    assert holder(pg_url) == "b"
    assert [row["id"] for row in b.load_tasks()] == ["t1"]  # loaded as the driver left it
    await b.aclose()


async def test_a_driver_that_stops_renewing_is_replaced_within_the_lease_and_a_third(pg_url: str) -> None:
    seconds = 1.5
    gone = await open_driver(pg_url, "a", seconds)  # never runs: like a baton killed with -9
    started = time.monotonic()
    b = await open_driver(pg_url, "b", seconds)
    took = time.monotonic() - started
    assert holder(pg_url) == "b"
    assert took <= seconds + seconds / 3 + 0.5
    await gone.aclose()  # nothing to write; b's lease is not a's to release
    assert holder(pg_url) == "b"
    await b.aclose()


async def test_a_baton_that_lost_its_lease_commits_nothing_and_stops(pg_url: str) -> None:
    a = await open_driver(pg_url, "a", 30.0)
    with psycopg.connect(pg_url, autocommit=True) as conn:  # b took over while a was cut off
        conn.execute("UPDATE leases SET holder = 'b' WHERE scope = %s", (SCOPE,))
    a.save_tasks([("t1", ROW)], [], NOW)
    with pytest.raises(LeaseLost, match="another baton drives http://127.0.0.1:4096 now"):
        with anyio.fail_after(10):
            await a.run()
    assert a.problem is not None and a.problem.startswith("another baton drives")
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM tasks").fetchone() == (0,)
    await a.aclose()
    assert holder(pg_url) == "b"  # a stopping does not release b's lease
