"""Fault class "driver kill -9, standby takes over": two batons on one opencode server and one
PostgreSQL; the one driving is killed at a different point of a background task each trial, the
standby takes over, and the task completes with its parent told exactly once. The roles swap each
trial (the killed baton comes back as the standby)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fault_helpers import (
    CHAIN,
    FaultTable,
    Trials,
    _opencode,  # noqa: F401 - the fixture
    _provider,  # noqa: F401 - the fixture
    texts,
    user_messages,
    wait_until,
)

from baton.testing.baton_process import BatonProcess
from baton.testing.fake_provider import Answer, FakeProvider, ToolCall
from baton.testing.opencode import OpencodeServer
from baton.testing.postgres import TestPostgres

pytestmark = pytest.mark.integration

KILLS = 4
STEP_S = 0.6
"""Kill points 0, 0.6, 1.2, 1.8 s after the task was stored: the child running, answered, the
notice pending or being delivered."""
LEASE_S = 3.0
QUICK = {"categories": {"quick": {"model": "fake/backup", "fallback_models": ["fake/third"]}}}


def rows(url: str, table: str, parent: str) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn:
        found = conn.execute(f"SELECT row FROM {table} WHERE parent_session_id = %s", (parent,)).fetchall()
    return [json.loads(text) for (text,) in found]


@pytest.fixture(name="pair")
def _pair(opencode: OpencodeServer, postgres: TestPostgres, tmp_path: Path) -> Iterator[tuple[BatonProcess, ...]]:
    url = postgres.new_database()
    args = ["--store", url, "--lease-seconds", str(LEASE_S)]
    settings = {**CHAIN, **QUICK}
    first = BatonProcess(opencode.url, tmp_path / "a", settings=settings, extra_args=args)
    second = BatonProcess(opencode.url, tmp_path / "b", settings=settings, extra_args=args)
    first.start()
    second.start(standby=True)
    # A standby says so: not attached, standing by, and who drives the opencode server.
    assert second.healthz() == (503, {"attached": False, "state": "standby", "opencode": opencode.url.rstrip("/"),
                                      "store": None, "driver": first.status()["fleet"]["instance"]})
    assert second.healthz(authed=False) == (503, {"attached": False})
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


@pytest.mark.timeout(300)
def test_kill_9_of_the_driver_mid_task_the_standby_finishes_it_once(
    fault_table: FaultTable, opencode: OpencodeServer, provider: FakeProvider, pair: tuple[BatonProcess, ...],
) -> None:
    driver, standby = pair
    url = driver.extra_args[1]
    takeovers: list[float] = []

    def trial(i: int) -> str:
        nonlocal driver, standby
        marker = f"<failover-{i:02d}>"
        args = {"description": f"job {i}", "prompt": f"do the job {marker}", "category": "quick",
                "run_in_background": True}
        provider.script("primary", ToolCall("baton_task", args), Answer("launched"), Answer("noted"))
        provider.script("backup", Answer(f"child result {marker}", delay=0.5))
        parent = opencode.create_session(marker)["id"]
        opencode.prompt_async(parent, f"delegate {marker}")
        wait_until(lambda: rows(url, "tasks", parent), 20, f"{marker}: the task stored")
        time.sleep(i * STEP_S)  # the kill point of this trial
        driver.kill()
        at_kill = rows(url, "tasks", parent)[0]["status"]
        takeovers.append(standby.wait_attached(LEASE_S * 4))
        driver.start(standby=True)  # the killed baton comes back, as the standby now
        driver, standby = standby, driver
        assert driver.healthz()[0] == 200  # the port it stood by on now serves the driver's endpoints

        def notified() -> dict[str, Any] | None:
            tasks = rows(url, "tasks", parent)
            boxes = rows(url, "outbox", parent)
            if len(tasks) != 1 or tasks[0]["status"] not in ("completed", "failed", "cancelled", "interrupted"):
                return None
            if not boxes or any(b["state"] != "delivered" for b in boxes) or parent in opencode.session_status():
                return None
            return tasks[0] if any(texts(m) == "noted" for m in opencode.messages(parent)) else None

        task = wait_until(notified, 60, f"{marker}: the task ended and its parent was told")
        assert task["status"] == "completed", f"{marker}: task {task['status']}"
        boxes = [b for b in rows(url, "outbox", parent) if b.get("task_id") == task["id"]]
        assert len(boxes) == 1, f"{marker}: {len(boxes)} notifications"
        told = [m for m in user_messages(opencode, parent) if task["id"] in texts(m)]
        assert len(told) == 1, f"{marker}: the parent was told {len(told)} times"
        return f"killed while {at_kill}; standby attached {takeovers[-1]:.1f} s after the kill"

    trials = Trials("driver kill -9, standby takes over")
    for i in range(KILLS):
        trials.run(i, trial)
    print("\nfailover, task status at the kill:\n  " + "\n  ".join(trials.notes))
    fault_table.record("driver kill -9, standby takes over", trials.runs, trials.survived, trials.detail())
    assert max(takeovers) <= LEASE_S + LEASE_S / 3 + 6.0  # lapse, a standby's try, then attach (bounded)
