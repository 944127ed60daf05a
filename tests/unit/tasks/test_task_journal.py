"""What the scheduler writes to the journal and shows as toasts (background-tasks §11).

A task's journal lines belong to its parent, are of a known kind, say something and name the task;
end toasts carry the description and the outcome to the task's directory. Written against the
mutants mutation testing left alive in the journal calls (``scripts/mutation.py``).
"""

from __future__ import annotations

from typing import Any

from task_sim import Deliver, P, Sim, Toast, of

from baton.actions import Note
from baton.events import SessionError, StatusType
from baton.tasks import Task
from baton.tasks.events import ChildCreateFailed, DeliveryOutcome, HostRestarted

KINDS = {"task_launch", "task_end", "task_retry", "task_timeout", "task_host_retry", "parent_gone", "delivery_retry",
         "host_restarted"}
CHAIN = {"agents": {"explore": {"model": "prov/a", "fallback_models": ["prov/b"]}}}
RATE_LIMIT = {"name": "APIError", "data": {"message": "Rate limit exceeded", "statusCode": 429}}


def running(s: Sim, **kw: Any) -> Task:
    task = s.launch(**kw)
    s.start(task)
    return task


def journal(s: Sim) -> list[Note]:
    return [a for a in s.log if isinstance(a, Note)]


def test_task_journal_lines_belong_to_the_parent_and_name_the_task() -> None:
    s = Sim(CHAIN)
    retried = running(s, directory="/work/p", description="look around the loader")
    s.feed(SessionError(retried.session_id, RATE_LIMIT))
    s.abort_done(retried)
    s.accepted(retried)
    stale = running(s)
    s.answer(retried)
    s.advance(181)
    s.tick()
    s.abort_done(stale)
    flaky = s.launch()
    s.feed(ChildCreateFailed(flaky.id, "POST /session: ConnectError", transient=True))
    (msg,) = s.parent_idle_and_flush()
    s.delivered(msg, DeliveryOutcome.RETRY)
    s.feed(HostRestarted())
    lines = journal(s)
    assert {"task_launch", "task_retry", "task_timeout", "task_host_retry", "task_end", "delivery_retry",
            "host_restarted"} <= {n.kind for n in lines}
    for note in lines:
        assert note.kind in KINDS and isinstance(note.text, str) and note.text and isinstance(note.data, dict)
        assert note.session_id == (None if note.kind == "host_restarted" else P)
        if note.kind.startswith("task_"):
            assert note.data["task"] in note.text
    by_kind = {n.kind: n for n in lines if n.data.get("task") == retried.id}
    assert by_kind["task_launch"].data == {"task": retried.id, "key": "prov/a", "mode": "background"}
    assert by_kind["task_retry"].data == {"task": retried.id, "from": "prov/a", "to": "prov/b"}
    assert by_kind["task_end"].data == {"task": retried.id, "status": "completed", "reason": "completed"}
    (timeout,) = [n for n in lines if n.kind == "task_timeout"]
    assert timeout.data == {"task": stale.id, "reason": "stale"}
    (host,) = [n for n in lines if n.kind == "task_host_retry"]
    assert host.data["task"] == flaky.id and host.data["call"] == 2 and host.data["delay"] > 0
    (delivery,) = [n for n in lines if n.kind == "delivery_retry"]
    assert "0.5s" in delivery.text


def test_end_toasts_carry_the_description_and_outcome_to_the_task_s_directory() -> None:
    s = Sim()
    done = running(s, directory="/work/p", description="x" * 70)
    (toast,) = of(s.answer(done), Toast)
    assert (toast.title, toast.message, toast.variant, toast.directory) == (
        "baton: background task", "x" * 60 + ": completed", "success", "/work/p")


def test_a_gone_parent_is_journaled() -> None:
    s = Sim()
    task = running(s)
    s.status(P, StatusType.IDLE)
    s.answer(task)
    s.advance(0.06)
    (msg,) = of(s.fire_delivery(), Deliver)
    out = s.delivered(msg, DeliveryOutcome.PARENT_GONE)
    (gone,) = [a for a in out if isinstance(a, Note) and a.kind == "parent_gone"]
    assert gone.session_id == P and P in gone.text and "1 notification" in gone.text
