"""Fault classes "baton kill -9 mid-fallback" and "mid-task": killed at a different point each
trial (a fixed step, no randomness), restarted on the same state dir; nothing lost, nothing twice."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_helpers import (
    CHAIN,
    FaultTable,
    Trials,
    _opencode,  # noqa: F401 - the fixture
    _provider,  # noqa: F401 - the fixture
    check_fallback,
    kinds,
    start_fallback,
    texts,
    user_messages,
    wait_until,
)

from baton.testing.baton_process import BatonProcess
from baton.testing.fake_provider import Answer, FakeProvider, ToolCall
from baton.testing.opencode import OpencodeServer

pytestmark = pytest.mark.integration

KILLS = 20
FALLBACK_STEP_S = 0.01
"""Kill points 0, 10, ..., 190 ms after the prompt: measured here the switch comes at ~90 ms, the
re-send at ~120 ms and the answer at ~150 ms, so the points fall before, between and after them."""
TASK_STEP_S = 0.15
"""Kill points 0, 150, ..., 2850 ms after the task was stored: the child running, answered, its notice
pending (the parent is told 2 s after its own message at the earliest), being delivered, delivered."""
QUICK = {"categories": {"quick": {"model": "fake/backup", "fallback_models": ["fake/third"]}}}


@pytest.fixture(name="baton")
def _baton(opencode: OpencodeServer, tmp_path: Path) -> Iterator[BatonProcess]:
    baton = BatonProcess(opencode.url, tmp_path / "state", settings={**CHAIN, **QUICK})
    with baton:
        yield baton


@pytest.mark.timeout(300)
def test_kill_9_mid_fallback(
    fault_table: FaultTable, opencode: OpencodeServer, provider: FakeProvider, baton: BatonProcess
) -> None:
    """Each session ends with exactly one answer, the backup's, asked once, one user turn, one re-send."""

    def trial(i: int) -> str:
        marker = f"<kill-fallback-{i:02d}>"
        session_id = start_fallback(opencode, provider, marker)
        time.sleep(i * FALLBACK_STEP_S)  # the kill point of this trial
        baton.kill()
        seen = kinds(baton, session_id)
        baton.start()
        try:
            check_fallback(opencode, provider, None, session_id, marker)
        except (AssertionError, TimeoutError) as exc:
            state = explain(opencode, baton, session_id)
            raise AssertionError(f"{exc}\n  journal at the kill: {seen}\n  {state}") from exc
        resent = kinds(baton, session_id).count("resent")
        assert resent <= 1, f"{marker}: re-sent {resent} times"
        return f"killed after {seen}"

    trials = Trials("kill -9 mid-fallback")
    for i in range(KILLS):
        trials.run(i, trial)
    print("\nkill -9 mid-fallback, journal at the kill:\n  " + "\n  ".join(trials.notes))
    fault_table.record("baton kill -9 mid-fallback", trials.runs, trials.survived, trials.detail())


def explain(opencode: OpencodeServer, baton: BatonProcess, session_id: str) -> str:
    """What a failed trial's session looks like: status, messages, baton's journal after the restart."""
    messages = [(m["info"]["role"], m["info"].get("modelID") or m["info"].get("model", {}).get("modelID"),
                 (m["info"].get("error") or {}).get("name"), texts(m)[:40]) for m in opencode.messages(session_id)]
    journal = [(e["kind"], e["text"][:120]) for e in baton.journal() if e["session"] == session_id]
    return (f"status now: {opencode.session_status().get(session_id)}; messages: {messages}; "
            f"journal now: {journal}")


def parent_tasks(baton: BatonProcess, parent: str) -> list[dict[str, Any]]:
    return [row for row in baton.task_rows() if row.get("parent_session_id") == parent]


def notified(baton: BatonProcess, opencode: OpencodeServer, parent: str) -> dict[str, Any] | None:
    """The parent's one task once it ended, its notification was delivered and the parent answered it."""
    tasks = parent_tasks(baton, parent)
    if len(tasks) != 1 or tasks[0]["status"] not in ("completed", "failed", "cancelled", "interrupted"):
        return None
    rows = [r for r in baton.outbox_rows() if r.get("task_id") == tasks[0]["id"]]
    if not rows or any(r["state"] != "delivered" for r in rows) or parent in opencode.session_status():
        return None
    woken = any(texts(m) == "noted" for m in opencode.messages(parent))  # the wake's turn is over
    return tasks[0] if woken else None


@pytest.mark.timeout(420)
def test_kill_9_mid_task(
    fault_table: FaultTable, opencode: OpencodeServer, provider: FakeProvider, baton: BatonProcess
) -> None:
    """Each background task completes and its parent is notified exactly once (one outbox row, one
    message naming the task), whatever the point baton was killed at."""

    def trial(i: int) -> str:
        marker = f"<kill-task-{i:02d}>"
        args = {"description": f"job {i}", "prompt": f"do the job {marker}", "category": "quick",
                "run_in_background": True}
        provider.script("primary", ToolCall("baton_task", args), Answer("launched"), Answer("noted"))
        provider.script("backup", Answer(f"child result {marker}", delay=0.5))
        parent = opencode.create_session(marker)["id"]
        opencode.prompt_async(parent, f"delegate {marker}")
        wait_until(lambda: parent_tasks(baton, parent), 20, f"{marker}: the task stored")
        time.sleep(i * TASK_STEP_S)  # the kill point of this trial
        baton.kill()
        at_kill = parent_tasks(baton, parent)[0]["status"]
        at_kill += "".join(f", notice {r['state']}" for r in baton.outbox_rows()
                           if r.get("parent_session_id") == parent)
        baton.start()
        task = wait_until(lambda: notified(baton, opencode, parent), 60, f"{marker}: the task ended and notified")
        assert task["status"] == "completed", f"{marker}: task {task['status']}"
        rows = [r for r in baton.outbox_rows() if r.get("task_id") == task["id"]]
        assert len(rows) == 1, f"{marker}: {len(rows)} notifications"
        told = [m for m in user_messages(opencode, parent) if task["id"] in texts(m)]
        assert len(told) == 1, f"{marker}: the parent was told {len(told)} times"
        return f"killed while {at_kill}"

    trials = Trials("kill -9 mid-task")
    for i in range(KILLS):
        trials.run(i, trial)
    print("\nkill -9 mid-task, task status at the kill:\n  " + "\n  ".join(trials.notes))
    fault_table.record("baton kill -9 mid-task", trials.runs, trials.survived, trials.detail())
