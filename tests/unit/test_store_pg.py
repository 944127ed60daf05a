"""The PostgreSQL store's own behaviour, on a real server: the fleet's shared cooldowns (NOTIFY),
scopes, migrations, an unreachable or newer database, and a server restarted under running batons."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import psycopg
import pytest

from baton.cli_store import read_journal
from baton.store_pg import PgStore
from baton.store_pg_conn import shown_url
from baton.store_pg_schema import SCHEMA_VERSION
from baton.store_port import CoolingRow, JournalEntry, StoreTooNew, StoreUnreachable
from baton.testing.clock import FakeClock
from baton.testing.postgres import TestPostgres

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0
SCOPE = "http://127.0.0.1:4096"


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Wait (real time: the database is real) until ``condition`` holds; fail after ``within`` s."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await anyio.sleep(0.005)


@asynccontextmanager
async def running(url: str, instance: str, scope: str = SCOPE) -> AsyncIterator[PgStore]:
    """A store with its writer and listener running, as ``baton serve`` runs it."""
    store = await PgStore.open(url, scope=scope, clock=FakeClock(NOW), instance=instance)
    async with anyio.create_task_group() as tg:
        tg.start_soon(store.run)
        try:
            yield store
        finally:
            tg.cancel_scope.cancel()
    await store.aclose()


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://bob:s3cret@db:5432/baton", "postgresql://bob@db:5432/baton"),
    ("postgres://bob:p%40ss@db/baton?sslmode=require", "postgres://bob@db/baton?sslmode=require"),
    ("postgresql://db/baton?password=s3cret&sslmode=require", "postgresql://db/baton?sslmode=require"),
    ("postgresql://bob@/baton?host=/run/pg", "postgresql://bob@/baton?host=/run/pg"),
])
def test_the_password_is_never_part_of_the_url_shown(url: str, shown: str) -> None:
    assert shown_url(url) == shown


async def test_an_unreachable_database_is_exit_3_with_the_url_minus_its_password() -> None:
    url = "postgresql://bob:s3cret@/baton?host=/nonexistent-socket-dir"
    with pytest.raises(StoreUnreachable) as caught:
        await PgStore.open(url, scope=SCOPE, clock=FakeClock(NOW))
    assert caught.value.exit_code == 3
    assert str(caught.value).startswith("cannot reach the database at postgresql://bob@/baton?host=/nonexistent")
    assert "s3cret" not in str(caught.value)


def test_serve_with_an_unreachable_database_exits_3_and_never_prints_the_password() -> None:
    url = "postgresql://bob:s3cret@/baton?host=/nonexistent-socket-dir"
    done = subprocess.run(
        [sys.executable, "-m", "baton", "serve", "--store", url, "--listen", "127.0.0.1:0",
         "--opencode-url", "http://127.0.0.1:9"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert "cannot reach the database at postgresql://bob@/baton" in done.stderr
    assert "s3cret" not in done.stdout + done.stderr


async def test_a_database_of_a_newer_baton_is_refused(pg_url: str) -> None:
    await (await PgStore.open(pg_url, scope=SCOPE, clock=FakeClock(NOW))).aclose()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE baton_meta SET value = '99' WHERE key = 'schema'")
    with pytest.raises(StoreTooNew, match=rf"newer baton \(schema 99, this baton knows {SCHEMA_VERSION}\)"):
        await PgStore.open(pg_url, scope=SCOPE, clock=FakeClock(NOW))


async def test_batons_starting_together_migrate_the_database_once(pg_url: str) -> None:
    stores: list[PgStore] = []

    async def open_one(name: str) -> None:
        stores.append(await PgStore.open(pg_url, scope=SCOPE, clock=FakeClock(NOW), instance=name))

    async with anyio.create_task_group() as tg:
        for name in ("a", "b", "c"):
            tg.start_soon(open_one, name)
    for store in stores:
        await store.aclose()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT value FROM baton_meta WHERE key = 'schema'").fetchall() == [(str(SCHEMA_VERSION),)]


async def test_a_cooldown_learnt_by_one_baton_reaches_the_other_at_once(pg_url: str) -> None:
    heard_a: list[CoolingRow] = []
    heard_b: list[CoolingRow] = []
    async with running(pg_url, "a") as a, running(pg_url, "b") as b:
        a.watch_cooldowns(heard_a.append)
        b.watch_cooldowns(heard_b.append)
        await until(lambda: a.problem is None and b.problem is None)
        await anyio.sleep(0.2)  # both listeners are listening (LISTEN is issued after connecting)
        a.save_cooldown("anthropic/claude", NOW + 3600, "quota", NOW, source="provider text")
        await until(lambda: bool(heard_b))
        assert heard_b == [CoolingRow("anthropic/claude", NOW + 3600, "quota", "provider text")]
        assert b.cooling(NOW) == heard_b
        a.save_cooldown("anthropic/claude", NOW + 60, "rate limit", NOW)  # shorter: the fleet's end stays
        b.save_cooldown("openai/gpt", NOW + 30, "overloaded", NOW)
        await until(lambda: len(heard_a) == 1)
        assert heard_a == [CoolingRow("openai/gpt", NOW + 30, "overloaded", "configured")]  # not its own
        assert heard_b == [CoolingRow("anthropic/claude", NOW + 3600, "quota", "provider text")]


async def test_a_baton_starting_later_sees_the_fleet_s_cooldowns(pg_url: str) -> None:
    async with running(pg_url, "a") as a:
        a.save_cooldown("anthropic/claude", NOW + 3600, "quota", NOW, source="rate-limit header")
        await until(lambda: a.problem is None and not a._ops)
        await a.flush()
        late = await PgStore.open(pg_url, scope="http://127.0.0.1:5000", clock=FakeClock(NOW), instance="late")
        assert late.cooling(NOW) == [CoolingRow("anthropic/claude", NOW + 3600, "quota", "rate-limit header")]
        await late.aclose()


async def test_tasks_belong_to_the_opencode_server_their_baton_drives(pg_url: str) -> None:
    one = await PgStore.open(pg_url, scope="http://a:4096", clock=FakeClock(NOW), instance="one")
    one.save_tasks([("t1", {"id": "t1", "parent_session_id": "p", "status": "running"})], [], NOW)
    one.put_pending("resend", "ses_1", {"session_id": "ses_1"}, NOW)
    await one.aclose()
    other = await PgStore.open(pg_url, scope="http://b:4096", clock=FakeClock(NOW), instance="two")
    assert other.load_tasks() == [] and other.load_pending("resend", dict) == []
    await other.aclose()
    again = await PgStore.open(pg_url, scope="http://a:4096", clock=FakeClock(NOW), instance="three")
    assert [row["id"] for row in again.load_tasks()] == ["t1"]
    await again.aclose()


async def test_a_database_restarted_under_running_batons_loses_nothing(postgres: TestPostgres) -> None:
    if not postgres.owned:
        pytest.skip("BATON_TEST_DATABASE_URL names a server this test may not restart")
    url = postgres.new_database()
    heard: list[CoolingRow] = []
    async with running(url, "a") as a, running(url, "b") as b:
        b.watch_cooldowns(heard.append)
        await until(lambda: a.problem is None and b.problem is None)
        postgres.stop()
        a.save_tasks([("t1", {"id": "t1", "parent_session_id": "p", "status": "running"})], [], NOW)
        a.save_cooldown("anthropic/claude", NOW + 600, "quota", NOW)
        await until(lambda: "database write failed" in (a.problem or "") and b.problem is not None)
        assert a.cooling(NOW)[0].model == "anthropic/claude"  # a keeps deciding from what it knows
        postgres.start()
        await until(lambda: a.problem is None and b.problem is None, within=20)
        await until(lambda: bool(heard))
        assert heard == [CoolingRow("anthropic/claude", NOW + 600, "quota", "configured")]
    again = await PgStore.open(url, scope=SCOPE, clock=FakeClock(NOW), instance="c")
    assert [row["id"] for row in again.load_tasks()] == ["t1"]
    await again.aclose()


async def test_the_journal_keeps_each_server_s_newest_entries(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("baton.store_pg.JOURNAL_KEEP", 500)
    other = await PgStore.open(pg_url, scope="http://other", clock=FakeClock(NOW), instance="o")
    other.journal([JournalEntry(NOW, "s", "note", "other's", {})])
    await other.aclose()
    store = await PgStore.open(pg_url, scope=SCOPE, clock=FakeClock(NOW), instance="a")
    for n in range(1200):
        store.journal([JournalEntry(NOW + n, "s", "note", f"entry {n}", {})])
        if n % 100 == 99:
            assert await store.flush()
    await store.aclose()
    with psycopg.connect(pg_url) as conn:
        kept = conn.execute("SELECT text FROM journal WHERE scope = %s ORDER BY id", (SCOPE,)).fetchall()
        others = conn.execute("SELECT count(*) FROM journal WHERE scope = 'http://other'").fetchone()
    # pruned to the newest 500 at the thousandth entry (entries 500-999), then 200 more written
    assert [text for (text,) in kept] == [f"entry {n}" for n in range(500, 1200)]
    assert others == (1,)  # another opencode server's journal is not this one's to prune


async def test_explain_reads_the_journal_a_fleet_shares(pg_url: str) -> None:
    for scope, text in (("http://a", "a's switch"), ("http://b", "b's note")):
        store = await PgStore.open(pg_url, scope=scope, clock=FakeClock(NOW), instance=scope)
        store.journal([JournalEntry(NOW, f"ses_{scope[-1]}", "switch", text, {"from": "p/a"})])
        await store.aclose()
    assert [e.text for e in await read_journal(pg_url, None, 10)] == ["a's switch", "b's note"]
    (entry,) = await read_journal(pg_url, "ses_b", 10)
    assert (entry.kind, entry.text, entry.data) == ("switch", "b's note", {"from": "p/a"})
    with anyio.fail_after(60):
        done = await anyio.run_process([sys.executable, "-m", "baton", "explain", "ses_a", "--store", pg_url],
                                       check=False)
    assert done.returncode == 0 and done.stdout.decode().endswith(" [switch] a's switch\n"), done.stderr
