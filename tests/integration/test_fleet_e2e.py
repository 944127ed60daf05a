"""Several machines: two batons on two real opencode servers, one PostgreSQL (started by the tests).

The provider account is shared (one fake provider behind both opencode servers), as a team's
is. What one baton learns about it must hold for the other: a cooldown learnt on A reroutes B's
next prompt before it reaches the cooling model.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from conftest import MODELS, BatonFactory, answer_of, texts, wait_until

from baton.testing.fake_provider import Answer, FakeProvider, Refuse
from baton.testing.opencode import OpencodeServer
from baton.testing.postgres import TestPostgres

pytestmark = pytest.mark.integration

COOLING = "All credentials for model primary are cooling down"
CHAIN = {"agents": {"build": {"fallback_models": ["fake/backup", "fake/third"]}}}


@pytest.fixture(name="second_opencode")
def _second_opencode(provider: FakeProvider) -> Iterator[OpencodeServer]:
    """Another developer's opencode server, on the same provider account."""
    with OpencodeServer(provider.url, MODELS) as server:
        yield server


def cooling_models(status: dict[str, object]) -> list[str]:
    rows = status["cooldowns"]
    assert isinstance(rows, list)
    return [row["model"] for row in rows]


def test_a_cooldown_learnt_by_one_baton_reroutes_the_other_s_next_prompt(
    opencode: OpencodeServer, second_opencode: OpencodeServer, fresh_provider: FakeProvider,
    start_baton: BatonFactory, postgres: TestPostgres,
) -> None:
    url = postgres.new_database()
    fresh_provider.script("primary", Refuse(429, COOLING))
    fresh_provider.script("backup", Answer("the fleet knew"))
    a = start_baton(CHAIN, state="a", extra_args=["--store", url])
    b = start_baton(CHAIN, state="b", url=second_opencode.url, extra_args=["--store", url])

    first = opencode.create_session("on A")["id"]
    opencode.prompt_async(first, "hello")
    assert texts(answer_of(opencode, first)) == "the fleet knew"
    wait_until(lambda: "fake/primary" in cooling_models(b.status()), timeout=5, what="A's cooldown at B")

    second = second_opencode.create_session("on B")["id"]
    second_opencode.prompt_async(second, "hello from B")
    answer = answer_of(second_opencode, second)
    assert texts(answer) == "the fleet knew"
    assert answer["info"]["modelID"] == "backup"
    assert a.healthz()[1]["store"] is None and b.healthz()[1]["store"] is None
    fleet = b.status()["fleet"]  # what `baton status` shows: who drives which opencode server
    drivers = {server["opencode"]: server["driver"] for server in fleet["servers"]}
    assert drivers == {opencode.url.rstrip("/"): a.status()["fleet"]["instance"],
                       second_opencode.url.rstrip("/"): fleet["instance"]}

    with psycopg.connect(url) as conn:  # one ledger, each baton's journal under its own opencode server
        (source,) = conn.execute("SELECT source FROM model_health WHERE model = 'fake/primary'").fetchone() or ("",)
        switches = conn.execute(
            "SELECT scope, session_id, text FROM journal WHERE kind = 'switch' ORDER BY id").fetchall()
        b_first = conn.execute("SELECT kind, text FROM journal WHERE session_id = %s ORDER BY id LIMIT 1",
                               (second,)).fetchone()
    assert source == "configured"
    assert [(scope, sid) for scope, sid, _ in switches] == [
        (opencode.url.rstrip("/"), first), (second_opencode.url.rstrip("/"), second)]
    # B moved its turn because the fleet's ledger said so, before any failure of its own (a failure
    # would be named first: "fake/primary failed (<the provider's error>)").
    assert b_first == ("switch", "fake/primary failed (fake/primary is cooling down); switching to fake/backup")
