"""Fault class "database restarted under a running fleet": two batons on two opencode servers share
one PostgreSQL, which stops. Both keep deciding from what they know and say so in /healthz; once
it is back they say so too, the decision made meanwhile is in the database, and the cooldown it
learnt reaches the other baton."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fault_helpers import (
    MODELS,
    FaultTable,
    _opencode,  # noqa: F401 - the fixture
    _provider,  # noqa: F401 - the fixture
    answers,
    texts,
    wait_until,
)

from baton.testing.baton_process import BatonProcess
from baton.testing.fake_provider import Answer, FakeProvider, Refuse
from baton.testing.opencode import OpencodeServer
from baton.testing.postgres import TestPostgres

pytestmark = pytest.mark.integration

CHAIN = {"agents": {"build": {"fallback_models": ["fake/backup", "fake/third"]}}}
COOLING = "All credentials for model primary are cooling down"


@pytest.fixture(name="second_opencode")
def _second_opencode(provider: FakeProvider) -> Iterator[OpencodeServer]:
    with OpencodeServer(provider.url, MODELS) as server:
        yield server


def store_problem(baton: BatonProcess) -> str | None:
    problem = baton.healthz()[1]["store"]
    return None if problem is None else str(problem)


@pytest.mark.timeout(240)
def test_database_restarted_under_two_running_batons(
    fault_table: FaultTable, opencode: OpencodeServer, second_opencode: OpencodeServer, provider: FakeProvider,
    postgres: TestPostgres, tmp_path: Path,
) -> None:
    if not postgres.owned:
        pytest.skip("BATON_TEST_DATABASE_URL names a server this test may not restart")
    url = postgres.new_database()
    provider.script("primary", Refuse(429, COOLING))
    provider.script("backup", Answer("decided without the database"))
    a = BatonProcess(opencode.url, tmp_path / "a", settings=CHAIN, extra_args=["--store", url]).start()
    b = BatonProcess(second_opencode.url, tmp_path / "b", settings=CHAIN, extra_args=["--store", url]).start()
    try:
        postgres.stop()
        wait_until(lambda: store_problem(a) and store_problem(b), 20, "both batons saying the database is gone")
        session = opencode.create_session("during the outage")["id"]
        opencode.prompt_async(session, "hello")
        wait_until(lambda: [m for m in answers(opencode, session) if texts(m)], 30, "an answer during the outage")
        assert texts(answers(opencode, session)[-1]) == "decided without the database"
        wait_until(lambda: "database write failed" in (store_problem(a) or ""), 15, "A saying its writes wait")
        postgres.start()
        wait_until(lambda: store_problem(a) is None and store_problem(b) is None, 30, "both batons recovered")
        wait_until(lambda: any(c["model"] == "fake/primary" for c in b.status()["cooldowns"]), 10,
                   "the cooldown A learnt during the outage, at B")
        with psycopg.connect(url) as conn:
            kinds = [k for (k,) in conn.execute(
                "SELECT kind FROM journal WHERE session_id = %s ORDER BY id", (session,)).fetchall()]
        assert kinds[:2] == ["switch", "resent"]  # journaled while the database was down, written back
        fault_table.record("database restarted under a running fleet", 1, 1)
    finally:
        postgres.start()
        a.stop()
        b.stop()
