"""Timeouts T1–T5, measured from the last activity; ends wait for the abort (spec §9)."""

from __future__ import annotations

from task_sim import AbortChild, Deliver, PollStatus, Schedule, Sim, of

from baton.events import StatusType
from baton.tasks import EndReason, TaskStatus
from baton.tasks.actions import RefreshActivity
from baton.tasks.events import ActivityRefreshed, Attached, Detached, SessionLookup
from baton.tasks.lifecycle import TICK_KEY, TICK_S

STALE_S = 180.0
NO_PROGRESS_S = 1800.0


def running(s: Sim, **kw: object):  # type: ignore[no-untyped-def]
    task = s.launch(**kw)
    s.start(task)
    return task


def test_the_tick_is_armed_while_a_task_starts_and_polls_status() -> None:
    """A launch schedules the 3 s tick; the tick polls opencode's status, one call at a time."""
    s = Sim()
    _, actions = s.launch_raw()
    (timer,) = [a for a in of(actions, Schedule) if a.key == TICK_KEY]
    assert timer.at == s.now + TICK_S
    s.advance(TICK_S)
    assert len(of(s.tick(), PollStatus)) == 1
    s.advance(TICK_S)
    assert of(s.tick(), PollStatus) == []  # the first poll has not reported yet


def test_t1_fires_after_stale_timeout_without_activity_and_ends_once_the_abort_succeeded() -> None:
    """An idle child with no activity for staleTimeoutMs is aborted, then recorded cancelled (stale)."""
    s = Sim()
    task = running(s)
    assert task.session_id is not None
    s.idle(task.session_id)
    s.advance(STALE_S - 1)
    s.tick()
    assert task.stop_reason is None
    s.advance(2)
    (abort,) = of(s.tick(), AbortChild)
    assert task.status is TaskStatus.RUNNING and task.stop_reason is EndReason.STALE
    s.abort_done(task, ok=True)
    assert task.status is TaskStatus.CANCELLED and task.end_reason is EndReason.STALE


def test_t1_is_measured_from_the_last_activity_not_from_the_start() -> None:
    """Activity resets the stale clock; a long-running but active task is never stale."""
    s = Sim()
    task = running(s)
    for _ in range(10):
        s.advance(STALE_S - 10)
        s.tool(task)
        s.tick()
    assert task.status is TaskStatus.RUNNING and task.stop_reason is None


def test_a_failed_timeout_abort_is_retried_next_tick_and_the_task_stays_running() -> None:
    """The end is not recorded while the abort fails; the next tick aborts again."""
    s = Sim()
    task = running(s)
    s.advance(STALE_S + 1)
    s.tick()
    s.abort_done(task, ok=False)
    assert task.status is TaskStatus.RUNNING
    s.advance(TICK_S)
    assert len(of(s.tick(), AbortChild)) == 1


def test_a_timed_out_child_seen_idle_ends_without_waiting_for_the_abort_report() -> None:
    """Seeing the child stopped is as good as a confirmed abort."""
    s = Sim()
    task = running(s)
    assert task.session_id is not None
    s.advance(STALE_S + 1)
    s.tick()
    s.idle(task.session_id)
    assert task.status is TaskStatus.CANCELLED and task.end_reason is EndReason.STALE


def test_t2_refreshes_activity_first_and_fires_only_if_still_without_progress() -> None:
    """A busy child past the no-progress limit gets a refresh; a newer activity time saves it."""
    s = Sim()
    task = running(s)
    assert task.session_id is not None
    s.status(task.session_id, StatusType.BUSY)
    s.advance(NO_PROGRESS_S + 1)
    (refresh,) = of(s.tick(), RefreshActivity)
    s.feed(ActivityRefreshed(task.id, s.now - 5))
    assert task.stop_reason is None
    s.advance(NO_PROGRESS_S + 1)
    s.tick()
    s.feed(ActivityRefreshed(task.id, None))  # failed refresh: defer
    assert task.stop_reason is None
    s.advance(TICK_S)
    s.tick()
    s.feed(ActivityRefreshed(task.id, s.now - NO_PROGRESS_S - 100))
    assert task.stop_reason is EndReason.NO_PROGRESS
    s.abort_done(task)
    assert task.status is TaskStatus.CANCELLED


def test_busy_is_not_subject_to_the_stale_limit() -> None:
    """A busy child silent for longer than staleTimeoutMs is not stale (only T2 applies)."""
    s = Sim()
    task = running(s)
    assert task.session_id is not None
    s.status(task.session_id, StatusType.BUSY)
    s.advance(STALE_S * 3)
    s.tick()
    assert task.stop_reason is None


def test_timeouts_pause_while_the_child_has_live_tasks() -> None:
    """A child waiting on its own tasks is not stale."""
    s = Sim()
    task = running(s)
    assert task.session_id is not None
    s.launch(parent_session_id=task.session_id, depth_of_parent=1)
    s.idle(task.session_id)
    s.advance(STALE_S * 2)
    s.tick()
    assert task.stop_reason is None


def test_t4_fails_a_child_confirmed_missing_across_the_gone_timeout() -> None:
    """Repeated 404s spanning sessionGoneTimeoutMs fail the task; a connection error never counts."""
    s = Sim()
    task = running(s)
    sid = task.session_id
    assert sid is not None
    s.polled({})
    s.feed(SessionLookup(sid, False))
    s.advance(30)
    s.polled({})
    s.feed(SessionLookup(sid, None))
    s.advance(31)
    s.polled({})
    assert task.status is TaskStatus.RUNNING
    s.feed(SessionLookup(sid, False))
    assert task.status is TaskStatus.FAILED and task.end_reason is EndReason.SESSION_GONE


def test_t4_resets_when_the_session_is_found_again() -> None:
    """A lookup that finds the session clears the gone clock."""
    s = Sim()
    task = running(s)
    sid = task.session_id
    assert sid is not None
    s.polled({})
    s.feed(SessionLookup(sid, False))
    s.advance(30)
    s.polled({})
    s.feed(SessionLookup(sid, True))
    s.advance(40)
    s.polled({})
    s.feed(SessionLookup(sid, False))
    assert task.status is TaskStatus.RUNNING


def test_t3_cancels_a_waiter_whose_key_made_no_progress() -> None:
    """A queued task whose key saw no grant and no slot activity for taskTtlMs is cancelled."""
    s = Sim({"background_task": {"defaultConcurrency": 1, "staleTimeoutMs": 10_000_000,
                                 "messageStalenessTimeoutMs": 10_000_000}})
    holder = running(s)
    waiter = s.launch()
    assert holder.session_id is not None
    s.status(holder.session_id, StatusType.BUSY)
    s.advance(1799)
    s.tick()
    assert waiter.status is TaskStatus.QUEUED
    s.advance(2)
    s.tick()
    assert waiter.status is TaskStatus.CANCELLED and waiter.end_reason is EndReason.QUEUE_STUCK


def test_t3_never_fires_behind_healthy_work() -> None:
    """Activity of the slot holder counts as progress of the key."""
    s = Sim({"background_task": {"defaultConcurrency": 1}})
    holder = running(s)
    waiter = s.launch()
    for _ in range(20):
        s.advance(170)
        s.tool(holder)
        s.tick()
    assert waiter.status is TaskStatus.QUEUED


def test_t5_stops_a_task_over_the_tool_call_cap_and_the_notice_names_the_key() -> None:
    """More tool calls than maxToolCalls stop the task; the notification says which key raises it."""
    s = Sim({"background_task": {"maxToolCalls": 10}})
    task = running(s)
    for _ in range(11):
        s.tool(task)
    assert task.stop_reason is EndReason.RUNAWAY
    s.abort_done(task)
    assert task.status is TaskStatus.CANCELLED
    (msg,) = s.parent_idle_and_flush()
    assert isinstance(msg, Deliver) and "maxToolCalls" in msg.text and "final" in msg.text


def test_t5_stops_a_loop_of_identical_calls() -> None:
    """consecutiveThreshold identical calls in a row stop the task; varied calls do not."""
    s = Sim({"background_task": {"circuitBreaker": {"consecutiveThreshold": 5}}})
    task = running(s)
    for i in range(4):
        s.tool(task, "grep", {"q": "x"})
        s.tool(task, "grep", {"q": f"y{i}"})
    assert task.stop_reason is None
    for _ in range(5):
        s.tool(task, "grep", {"q": "same"})
    assert task.stop_reason is EndReason.RUNAWAY


def test_detached_time_does_not_count() -> None:
    """Time spent detached from opencode is credited back before any timeout is evaluated."""
    s = Sim()
    task = running(s)
    s.advance(100)
    s.feed(Detached())
    s.advance(600)
    assert s.tick() == []
    s.feed(Attached())
    s.advance(70)
    s.tick()
    assert task.stop_reason is None
    s.advance(20)
    s.tick()
    assert task.stop_reason is EndReason.STALE
