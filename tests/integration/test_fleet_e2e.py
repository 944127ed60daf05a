"""Several machines: two batons on two real opencode servers, one PostgreSQL (started by the tests).

The provider account is shared (one fake provider behind both opencode servers), as a team's
is. What one baton learns about it must hold for the other: a cooldown learnt on A reroutes B's
next prompt before it reaches the cooling model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial

import psycopg
import pytest
from conftest import MODELS, BatonFactory, answer_of, texts, wait_until

from baton.testing.fake_provider import Answer, FakeProvider, Refuse, ToolCall
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


QUICK = {"categories": {"quick": {"model": "fake/backup", "fallback_models": ["fake/third"]}},
         "background_task": {"modelConcurrency": {"fake/backup": 2}}}


def task_call(n: int) -> ToolCall:
    return ToolCall("baton_task", {"description": f"job {n}", "prompt": f"do job number {n}", "category": "quick",
                                   "run_in_background": True})


def task_rows(url: str, parent: str) -> list[dict[str, object]]:
    with psycopg.connect(url) as conn:
        found = conn.execute("SELECT row FROM tasks WHERE parent_session_id = %s", (parent,)).fetchall()
    return [json.loads(text) for (text,) in found]


def test_a_limit_of_two_holds_across_two_batons_and_every_task_is_reported_once(
    opencode: OpencodeServer, second_opencode: OpencodeServer, fresh_provider: FakeProvider,
    start_baton: BatonFactory, postgres: TestPostgres,
) -> None:
    url = postgres.new_database()
    fresh_provider.script("backup", Answer("child done", delay=1.5))
    start_baton({**CHAIN, **QUICK}, state="a", extra_args=["--store", url])
    start_baton({**CHAIN, **QUICK}, state="b", url=second_opencode.url, extra_args=["--store", url])
    parents: list[tuple[OpencodeServer, str]] = []
    # Each parent on its own model, so that one's wake-ups never take the other's scripted tool calls.
    for server, model, jobs in ((opencode, "primary", (1, 2, 3)), (second_opencode, "third", (4, 5, 6))):
        fresh_provider.script(model, *(task_call(n) for n in jobs), Answer("launched"))
        parent = server.create_session("fan out")["id"]
        server.prompt_async(parent, "three jobs", model=model)
        parents.append((server, parent))
    for _, parent in parents:
        wait_until(partial(stored, url, parent, 3), timeout=30, what="three tasks stored")

    def ended() -> bool:
        rows = [row for _, parent in parents for row in task_rows(url, parent)]
        return len(rows) == 6 and all(row["status"] == "completed" for row in rows)

    wait_until(ended, timeout=90, what="six tasks completed")
    starts = sorted(r.received for r in fresh_provider.requests_for("backup"))
    assert len(starts) == 6
    peak = max(sum(1 for s in starts if s <= t < s + 1.5) for t in starts)
    assert peak == 2  # two at a time in the whole fleet, not two per baton
    with psycopg.connect(url) as conn:  # one notification per task, each delivered (once: its row says so)
        boxes = [json.loads(text) for (text,) in conn.execute("SELECT row FROM outbox").fetchall()]
    assert sorted(str(b["task_id"]) for b in boxes) == sorted(
        str(t["id"]) for _, parent in parents for t in task_rows(url, parent))
    wait_until(lambda: all(b["state"] == "delivered" for b in outbox(url)), timeout=30, what="deliveries")


def stored(url: str, parent: str, count: int) -> bool:
    return len(task_rows(url, parent)) == count


def outbox(url: str) -> list[dict[str, object]]:
    with psycopg.connect(url) as conn:
        return [json.loads(text) for (text,) in conn.execute("SELECT row FROM outbox").fetchall()]


def test_the_fleet_demo_shows_a_cooldown_shared_between_two_batons() -> None:
    from baton.demo_fleet import run_fleet_demo

    lines = list(run_fleet_demo())
    assert sum("answered by fake/backup" in line for line in lines) == 2, lines
    assert any("B's baton knows: fake/primary cools for 180 min (provider text), learnt by A" in line
               for line in lines), lines
    assert sum(" is driven by baton " in line for line in lines) == 2, lines
