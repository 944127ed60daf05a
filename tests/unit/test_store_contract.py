"""The store contract: what the engine relies on, run against SQLite and a real PostgreSQL.

Each test writes through one store, closes it, opens the same database again and reads: what a
restart (or a standby) sees. ``settle`` is where the PostgreSQL store's writer sends its queue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

import pytest

from baton.store import Store
from baton.store_pg import PgStore
from baton.store_port import JournalEntry, StorePort
from baton.testing.clock import FakeClock

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0


class Opener(Protocol):
    async def open(self) -> StorePort: ...

    async def close(self, store: StorePort) -> None: ...


class SqliteOpener:
    def __init__(self, path: Path, clock: FakeClock) -> None:
        self.path, self.clock = path, clock

    async def open(self) -> StorePort:
        return Store(self.path, clock=self.clock)

    async def close(self, store: StorePort) -> None:
        assert isinstance(store, Store)
        store.close()


class PgOpener:
    def __init__(self, url: str, clock: FakeClock) -> None:
        self.url, self.clock = url, clock

    async def open(self) -> StorePort:
        return await PgStore.open(self.url, scope="http://127.0.0.1:4096", clock=self.clock, instance="test")

    async def close(self, store: StorePort) -> None:
        assert isinstance(store, PgStore)
        await store.aclose()
        assert store.problem is None


@pytest.fixture(params=["sqlite", "postgresql"])
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    clock = FakeClock(NOW)
    if request.param == "sqlite":
        yield SqliteOpener(tmp_path / "baton.db", clock)
    else:
        yield PgOpener(request.getfixturevalue("pg_url"), clock)


async def reopened(opener: Opener, write: Callable[[StorePort], Any]) -> StorePort:
    """Open, ``write``, close; then the store as a restart opens it."""
    store = await opener.open()
    write(store)
    await opener.close(store)
    return await opener.open()


def task(tid: str, status: str = "running", parent: str = "ses_p") -> dict[str, Any]:
    return {"id": tid, "parent_session_id": parent, "status": status, "description": f"task {tid}"}


def box(bid: str, task_id: str, state: str = "pending") -> dict[str, Any]:
    return {"id": bid, "task_id": task_id, "parent_session_id": "ses_p", "state": state}


async def test_tasks_and_outbox_rows_survive_a_restart(opener: Opener) -> None:
    def write(store: StorePort) -> None:
        store.save_tasks([("t1", task("t1")), ("t2", task("t2"))], [box("b1", "t1")], NOW)
        store.save_tasks([("t1", task("t1", "completed"))], [box("b1", "t1", "delivered"), box("b2", "t2")], NOW + 1)

    store = await reopened(opener, write)
    assert sorted((row["id"], row["status"]) for row in store.load_tasks()) == [("t1", "completed"), ("t2", "running")]
    assert [row["id"] for row in store.load_outbox()] == ["b2"]  # b1 was delivered: a restart does not resend it
    assert sorted(row["id"] for row in store.load_outbox(include_done=True)) == ["b1", "b2"]
    await opener.close(store)


async def test_forgotten_tasks_take_their_notification_rows_with_them(opener: Opener) -> None:
    def write(store: StorePort) -> None:
        store.save_tasks([("t1", task("t1")), ("t2", task("t2"))], [box("b1", "t1"), box("b2", "t2")], NOW)
        store.forget_tasks(["t1"])

    store = await reopened(opener, write)
    assert [row["id"] for row in store.load_tasks()] == ["t2"]
    assert [row["id"] for row in store.load_outbox(include_done=True)] == ["b2"]
    await opener.close(store)


async def test_a_cooldown_is_never_shortened_and_the_winning_end_keeps_its_source(opener: Opener) -> None:
    def write(store: StorePort) -> None:
        store.save_cooldown("p/a", NOW + 600, "quota", NOW, source="provider text")
        store.save_cooldown("p/a", NOW + 60, "rate limit", NOW + 1)  # shorter: the end stays
        store.save_cooldown("p/b", NOW + 30, "overloaded", NOW)
        store.save_cooldown("p/old", NOW - 1, "long ago", NOW - 100)

    store = await reopened(opener, write)
    rows = store.cooling(NOW)
    assert [(row.model, row.until) for row in rows] == [("p/b", NOW + 30), ("p/a", NOW + 600)]  # soonest first
    assert store.cooling(NOW + 30) == [rows[1]]  # cooling while now < until
    await opener.close(store)


async def test_pending_intents_are_kept_by_kind_until_forgotten(opener: Opener) -> None:
    def write(store: StorePort) -> None:
        store.put_pending("resend", "ses_a", {"session_id": "ses_a", "n": 1}, NOW)
        store.put_pending("resend", "ses_b", {"session_id": "ses_b"}, NOW)
        store.put_pending("resend", "ses_a", {"session_id": "ses_a", "n": 2}, NOW + 1)
        store.put_pending("resend", "ses_b", None, NOW + 2)
        store.put_pending("other", "x", {"session_id": "x"}, NOW)

    store = await reopened(opener, write)
    assert store.load_pending("resend", dict) == [{"session_id": "ses_a", "n": 2}]
    assert store.load_pending("other", lambda row: row["session_id"]) == ["x"]
    await opener.close(store)


async def test_a_row_the_reader_rejects_is_set_aside_and_the_rest_load(opener: Opener) -> None:
    def strict(row: dict[str, Any]) -> str:
        return str(row["description"])  # KeyError for a row without one

    def write(store: StorePort) -> None:
        store.save_tasks([("good", task("good")), ("bad", {"id": "bad", "parent_session_id": "p", "status": "x"})],
                         [], NOW)

    store = await reopened(opener, write)
    assert store.load_tasks(strict) == ["task good"]
    await opener.close(store)
    store = await opener.open()
    assert [row["id"] for row in store.load_tasks()] == ["good"]  # moved into quarantine, not loaded again
    await opener.close(store)


async def test_journal_entries_are_taken_without_error(opener: Opener) -> None:
    store = await opener.open()
    store.journal([JournalEntry(NOW, "ses_a", "switch", "p/a → p/b", {"from": "p/a"})])
    await opener.close(store)  # the PostgreSQL opener asserts the write went through
