"""Background tasks end to end: a model calls baton's MCP tools through the real opencode."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest
from conftest import BatonFactory, texts, wait_until

from baton.testing.baton_process import BatonProcess
from baton.testing.fake_provider import Answer, FakeProvider, Refuse, ToolCall
from baton.testing.opencode import OpencodeServer

pytestmark = pytest.mark.integration

QUICK = {"categories": {"quick": {"model": "fake/backup", "fallback_models": ["fake/third"]}}}


def task_call(n: int, *, background: bool = True, **extra: Any) -> ToolCall:
    args = {"description": f"job {n}", "prompt": f"do job number {n}", "category": "quick",
            "run_in_background": background, **extra}
    return ToolCall("baton_task", args)


def tool_outputs(opencode: OpencodeServer, session_id: str) -> list[str]:
    """What each baton tool call returned to the model, in order."""
    out = []
    for message in opencode.messages(session_id):
        for part in message["parts"]:
            state = part.get("state") or {}
            if part.get("type") == "tool" and state.get("status") in ("completed", "error"):
                out.append(str(state.get("output") or state.get("error")))
    return out


def all_ended(baton: BatonProcess, count: int) -> bool:
    rows = baton.task_rows()
    return len(rows) == count and all(r["status"] in ("completed", "failed", "cancelled", "interrupted") for r in rows)


def delivered_once(baton: BatonProcess) -> None:
    """Every ended task has exactly one notification row, and every row reached the parent."""
    rows = baton.outbox_rows()
    per_task = Counter(r["task_id"] for r in rows if r["task_id"])
    assert set(per_task.values()) == {1}, per_task
    assert all(r["state"] == "delivered" for r in rows), rows


def test_background_task_notifies_its_parent_once(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """A background task runs in a child of the caller, answers, and the caller is woken exactly once."""
    fresh_provider.script("primary", task_call(1), Answer("carrying on"), Answer("saw the result"))
    fresh_provider.script("backup", Answer("child result: 42"))
    baton = start_baton(QUICK)
    parent = opencode.create_session("parent")["id"]
    opencode.prompt_async(parent, "delegate this")
    wait_until(lambda: all_ended(baton, 1), what="the task's end")
    (task,) = baton.task_rows()
    assert task["status"] == "completed" and "42" in task["result"]
    with opencode.client() as c:
        child = c.get(f"/session/{task['session_id']}").json()
    assert child["parentID"] == parent
    wait_until(lambda: any(texts(m) == "saw the result" for m in opencode.messages(parent)), what="the wake")
    delivered_once(baton)
    wakes = [m for m in opencode.messages(parent) if m["info"]["role"] == "user" and task["id"] in texts(m)]
    assert len(wakes) == 1
    assert "baton_notification_seconds_count 1.0" in baton.get("/metrics").text.splitlines()
    live = cli("tasks", "--all", "--json", "--listen", baton.listen, "--state-dir", str(baton.state_dir))
    assert [(r["id"], r["status"]) for r in json.loads(live)] == [(task["id"], "completed")]
    baton.stop()
    offline = cli("tasks", "show", task["id"], "--listen", baton.listen, "--state-dir", str(baton.state_dir))
    assert "42" in offline and parent in offline


def cli(*args: str) -> str:
    """Run the baton CLI; return its stdout, failing the test on a non-zero exit."""
    result = subprocess.run([sys.executable, "-m", "baton", *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_concurrency_limit_and_fifo_order(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """Six tasks on a model limited to 2: never more than two child requests at once, started in launch order."""
    fresh_provider.script("primary", *(task_call(n) for n in range(1, 7)), Answer("launched"))
    fresh_provider.script("backup", Answer("child done", delay=1.0))
    baton = start_baton({**QUICK, "background_task": {"modelConcurrency": {"fake/backup": 2}}})
    parent = opencode.create_session("fan out")["id"]
    opencode.prompt_async(parent, "six jobs")
    wait_until(lambda: all_ended(baton, 6), timeout=60, what="six tasks ending")
    starts = sorted((r.received, _job(r.body)) for r in fresh_provider.requests_for("backup"))
    assert len(starts) == 6
    overlap = max(sum(1 for s, _ in starts if s <= t < s + 1.0) for t, _ in starts)
    assert overlap <= 2
    order = [job for _, job in starts]
    assert all(order.index(n) < order.index(n + 2) for n in range(1, 5)), order
    assert all(r["status"] == "completed" for r in baton.task_rows())
    wait_until(lambda: all(r["state"] == "delivered" for r in baton.outbox_rows()), what="deliveries")
    delivered_once(baton)


def _job(body: dict[str, Any]) -> int:
    text = str(body["messages"][-1]["content"])
    return int(text.split("job number ")[1][0])


def test_sub_second_task_completes(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """A child that answers at once is still seen as done (an upstream bug kept such tasks running)."""
    fresh_provider.script("primary", task_call(1), Answer("ok"))
    fresh_provider.script("backup", Answer("instant"))
    baton = start_baton(QUICK)
    parent = opencode.create_session("fast")["id"]
    opencode.prompt_async(parent, "quick one")
    wait_until(lambda: all_ended(baton, 1), what="the task's end")
    (task,) = baton.task_rows()
    assert task["status"] == "completed"
    assert task["ended_at"] - task["started_at"] < 1.0


def test_task_on_a_cooling_model_starts_on_the_next(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """With the category's model cooling down (learned from another session), the task starts on the next one."""
    fresh_provider.script("backup", Refuse(429, "All credentials for model backup are cooling down"))
    fresh_provider.script("third", Answer("third did it"))
    baton = start_baton({**QUICK, "baton": {"model_fallbacks": {"fake/backup": ["fake/third"]}}})
    cooler = opencode.create_session("cooler")["id"]
    opencode.prompt_async(cooler, "hello", model="backup")
    wait_until(lambda: any(c["model"] == "fake/backup" for c in baton.status()["cooldowns"]), what="cooldown")
    asked = len(fresh_provider.requests_for("backup"))
    fresh_provider.script("primary", task_call(1), Answer("ok"))
    parent = opencode.create_session("parent")["id"]
    opencode.prompt_async(parent, "delegate")
    wait_until(lambda: all_ended(baton, 1), what="the task's end")
    (task,) = baton.task_rows()
    assert task["status"] == "completed" and task["model"] == "fake/third"
    assert len(fresh_provider.requests_for("backup")) == asked


def test_retryable_failure_moves_the_task_along_its_chain(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """The child's model refusing mid-task re-runs the same child session on the next model of the chain."""
    fresh_provider.script("primary", task_call(1), Answer("ok"))
    fresh_provider.script("backup", Refuse(429, "Rate limit exceeded"))
    fresh_provider.script("third", Answer("third finished it"))
    baton = start_baton(QUICK)
    parent = opencode.create_session("parent")["id"]
    opencode.prompt_async(parent, "delegate")
    wait_until(lambda: all_ended(baton, 1), timeout=30, what="the task's end")
    (task,) = baton.task_rows()
    assert task["status"] == "completed" and task["model"] == "fake/third"
    (third,) = fresh_provider.requests_for("third")
    assert "do job number 1" in str(third.body["messages"])


def test_depth_limit_refuses_a_spawn(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """A session already at maxDepth gets a tool error naming the limit, and no task is stored."""
    baton = start_baton({**QUICK, "background_task": {"maxDepth": 1}})
    with opencode.client() as c:
        root = c.post("/session", json={"title": "root"}).json()["id"]
        nested = c.post("/session", json={"title": "nested", "parentID": root}).json()["id"]
    fresh_provider.script("primary", task_call(1), Answer("ok"))
    opencode.prompt_async(nested, "spawn")
    wait_until(lambda: tool_outputs(opencode, nested), what="the tool's answer")
    (output,) = tool_outputs(opencode, nested)
    assert "maxDepth" in output
    assert baton.task_rows() == []


def test_foreground_task_returns_the_answer(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """run_in_background false: the tool call itself returns the child's answer, and no notification follows."""
    fresh_provider.script("primary", task_call(1, background=False), Answer("thanks"))
    fresh_provider.script("backup", Answer("the foreground answer is 7"))
    baton = start_baton(QUICK)
    parent = opencode.create_session("foreground")["id"]
    opencode.prompt_async(parent, "do it now")
    wait_until(lambda: tool_outputs(opencode, parent), what="the tool's answer")
    (output,) = tool_outputs(opencode, parent)
    assert "the foreground answer is 7" in output
    assert baton.outbox_rows() == []


def test_kill_9_and_restart_loses_nothing(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """baton killed with tasks running and queued: after a restart all complete, each notified exactly once."""
    fresh_provider.script("primary", *(task_call(n) for n in range(1, 5)), Answer("launched"))
    fresh_provider.script("backup", Answer("child done", delay=1.5))
    settings = {**QUICK, "background_task": {"modelConcurrency": {"fake/backup": 1}}}
    baton = start_baton(settings)
    parent = opencode.create_session("crash")["id"]
    opencode.prompt_async(parent, "four jobs")
    wait_until(lambda: len(baton.task_rows()) == 4 and fresh_provider.requests_for("backup"), what="4 launches")
    baton.kill()
    statuses = Counter(r["status"] for r in baton.task_rows())
    assert statuses["queued"] >= 2, statuses
    baton.start()
    wait_until(lambda: all_ended(baton, 4), timeout=60, what="all four ending")
    assert all(r["status"] == "completed" for r in baton.task_rows())
    assert len(fresh_provider.requests_for("backup")) == 4
    wait_until(lambda: all(r["state"] == "delivered" for r in baton.outbox_rows()), what="deliveries")
    delivered_once(baton)
    sent = [m["info"]["id"] for m in opencode.messages(parent) if m["info"]["role"] == "user"]
    assert len(sent) == len(set(sent))


def test_stop_during_a_foreground_call_keeps_the_task(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """SIGTERM while a foreground task runs: the task is kept as a background one and reported after restart."""
    fresh_provider.script("primary", task_call(1, background=False), Answer("carry on"), Answer("noted"))
    fresh_provider.script("backup", Answer("slow foreground answer", delay=4.0))
    baton = start_baton(QUICK)
    parent = opencode.create_session("foreground stop")["id"]
    opencode.prompt_async(parent, "do it now")
    fresh_provider.wait_for_requests("backup", 1, timeout=20)
    assert baton.stop() == 0
    (task,) = baton.task_rows()
    assert task["status"] in ("running", "completed") and task["mode"] == "background"
    baton.start()
    wait_until(lambda: all_ended(baton, 1), timeout=30, what="the task's end")
    wait_until(lambda: all(r["state"] == "delivered" for r in baton.outbox_rows()) and baton.outbox_rows(),
               what="the notification")
    delivered_once(baton)
    assert baton.task_rows()[0]["status"] == "completed"


def test_user_cancel_from_the_cli_notifies_the_parent(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """`baton tasks cancel ID` stops a running task through the serve, and the parent is told."""
    fresh_provider.script("primary", task_call(1), Answer("waiting"), Answer("noted"))
    fresh_provider.script("backup", Answer("too slow", delay=30.0))
    baton = start_baton(QUICK)
    parent = opencode.create_session("cancel me")["id"]
    opencode.prompt_async(parent, "delegate")
    fresh_provider.wait_for_requests("backup", 1, timeout=20)
    (task,) = baton.task_rows()
    out = cli("tasks", "cancel", task["id"], "--listen", baton.listen, "--state-dir", str(baton.state_dir))
    assert task["id"] in out
    wait_until(lambda: all_ended(baton, 1), what="the cancel")
    assert baton.task_rows()[0]["status"] == "cancelled"
    wait_until(lambda: baton.outbox_rows() and all(r["state"] == "delivered" for r in baton.outbox_rows()),
               what="the parent's notification")
    delivered_once(baton)
    wait_until(lambda: task["session_id"] not in opencode.session_status(), what="the child's abort")
