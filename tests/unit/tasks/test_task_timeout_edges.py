"""Timeouts at their edges, and what the tick does besides (background-tasks §8.8, §9).

Written against the mutants mutation testing left alive in the timeouts (``scripts/mutation.py``):
the limits are strict (``now − last_activity_at > limit``), a refresh is asked once at a time and
names its child, a failed abort of a finished child is retried a bounded number of times, and
the tick saves activity times of live tasks. Driven through :mod:`task_sim`, fake clock.
"""

from __future__ import annotations

from task_sim import AbortChild, Sim, of

from baton.events import StatusType
from baton.tasks import EndReason, Task, TaskStatus
from baton.tasks.actions import RefreshActivity, SaveTask
from baton.tasks.events import ActivityRefreshed

STALE_S = 180.0  # staleTimeoutMs default
NO_PROGRESS_S = 1800.0  # messageStalenessTimeoutMs default
TTL_S = 1800.0  # taskTtlMs default
TICK_S = 3.0  # spec §3 fixed values: the backup poll / tick period


def running(s: Sim, **kw: object) -> Task:
    task = s.launch(**kw)
    s.start(task)
    return task


def test_t1_fires_past_the_limit_not_at_it() -> None:
    """§9 T1: ``now − last_activity_at > staleTimeoutMs``; the decision names the quiet time."""
    s = Sim()
    task = running(s)
    s.advance(STALE_S)
    s.tick()
    assert task.stop_reason is None
    s.advance(0.5)
    (abort,) = of(s.tick(), AbortChild)
    assert abort.session_id == task.session_id
    assert task.stop_reason is EndReason.STALE and task.error == "no activity for 3m 0s"


def test_t2_asks_for_a_refresh_past_the_limit_once_and_for_its_child() -> None:
    """§9 rule 3: a busy child past the no-progress limit gets one refresh of its activity at a time."""
    s = Sim()
    task = running(s, directory="/work/project")
    assert task.session_id is not None
    s.status(task.session_id, StatusType.BUSY)
    s.advance(NO_PROGRESS_S)
    assert of(s.tick(), RefreshActivity) == []
    s.advance(0.5)
    (refresh,) = of(s.tick(), RefreshActivity)
    assert (refresh.task_id, refresh.session_id, refresh.directory) == (task.id, task.session_id, "/work/project")
    s.advance(TICK_S)
    assert of(s.tick(), RefreshActivity) == []  # the first is still on its way
    s.feed(ActivityRefreshed(task.id, s.now - NO_PROGRESS_S))  # exactly at the limit: not past it
    assert task.stop_reason is None
    s.advance(TICK_S)
    (again,) = of(s.tick(), RefreshActivity)
    s.feed(ActivityRefreshed(again.task_id, s.now - NO_PROGRESS_S - 100))
    assert task.stop_reason is EndReason.NO_PROGRESS and task.error == "busy without progress for 30m 3s"


def test_a_refresh_never_moves_activity_back() -> None:
    """An older time from the refresh leaves the newer activity baton saw on the stream."""
    s = Sim()
    task = running(s)
    assert task.session_id is not None
    s.status(task.session_id, StatusType.BUSY)
    s.advance(NO_PROGRESS_S + 1)
    (refresh,) = of(s.tick(), RefreshActivity)
    s.tool(task)  # activity while the refresh runs
    seen = task.last_activity_at
    s.feed(ActivityRefreshed(refresh.task_id, s.now - 500))
    assert task.last_activity_at == seen and task.stop_reason is None


def test_t3_fires_past_the_ttl_not_at_it() -> None:
    """§9 T3: a waiter whose key made no progress for ``taskTtlMs``, strictly more."""
    s = Sim({"background_task": {"defaultConcurrency": 1, "staleTimeoutMs": 10_000_000,
                                 "messageStalenessTimeoutMs": 10_000_000}})
    holder = running(s)
    waiter = s.launch()
    assert holder.session_id is not None
    s.status(holder.session_id, StatusType.BUSY)
    s.advance(TTL_S)
    s.tick()
    assert waiter.status is TaskStatus.QUEUED
    s.advance(0.5)
    s.tick()
    assert waiter.status is TaskStatus.CANCELLED and waiter.end_reason is EndReason.QUEUE_STUCK
    assert waiter.error == "no slot of prov/parent-model was granted or used for 30m 0s"


def test_a_failed_abort_of_a_finished_child_is_retried_three_times_in_all() -> None:
    """§8.8: completing aborts the child (bounded, best effort); a failed abort is tried again on
    the next ticks, three calls in all, and a successful one ends the retries."""
    s = Sim()
    task = running(s)
    assert len(of(s.answer(task), AbortChild)) == 1
    assert task.status is TaskStatus.COMPLETED
    calls = 1
    for _ in range(5):
        s.abort_done(task, ok=False)
        s.advance(TICK_S)
        calls += len(of(s.tick(), AbortChild))
    assert calls == 3

    ok = Sim()
    other = running(ok)
    ok.answer(other)
    ok.abort_done(other, ok=True)
    ok.advance(TICK_S)
    assert of(ok.tick(), AbortChild) == []


def test_the_tick_saves_the_activity_times_of_live_tasks() -> None:
    """§4.1: ``last_activity_at`` reaches the store at the next tick (up to a few seconds late)."""
    s = Sim()
    task = running(s)
    s.advance(1)
    s.tool(task)
    s.advance(TICK_S)
    (save,) = [a for a in of(s.tick(), SaveTask) if a.task_id == task.id]
    assert save.row["last_activity_at"] == task.last_activity_at == s.now - TICK_S
    s.advance(TICK_S)
    assert [a for a in of(s.tick(), SaveTask) if a.task_id == task.id] == []  # nothing new to save
