"""The end procedure's records and the scheduler's views of ended tasks (background-tasks §4.1,
§11, §14.4, §16), driven through :mod:`task_sim` with a fake clock.

Written against the mutants mutation testing left alive in the lifecycle and the scheduler
(``scripts/mutation.py``); each test names the rule it holds.
"""

from __future__ import annotations

from typing import Any

from task_sim import AbortChild, P, Sim, Toast, of

from baton.events import SessionError
from baton.tasks import CancelReport, CancelRequest, EndReason, Task, TaskStatus, ToolError

CLEANUP_S = 600.0  # taskCleanupDelayMs default
BAD_REQUEST = {"name": "APIError", "data": {"message": "bad request", "statusCode": 400}}


def running(s: Sim, **kw: Any) -> Task:
    task = s.launch(**kw)
    s.start(task)
    return task


def test_the_last_attempt_is_closed_with_the_end_and_keeps_a_failure_s_error() -> None:
    """§4.1 ``attempts[]``: each try has its times and error; the end closes the last one."""
    s = Sim()
    done, failed = running(s), running(s)
    s.advance(5)
    s.answer(done)
    s.feed(SessionError(failed.session_id, BAD_REQUEST))
    assert (done.attempts[-1].ended_at, done.attempts[-1].error) == (s.now, None)
    assert failed.attempts[-1].ended_at == s.now and failed.attempts[-1].error == "bad request"


def test_an_ancestor_s_end_cancels_the_whole_subtree_and_counts_it() -> None:
    """§11 step 6: a task that did not complete cancels every live task below it; its own notice
    reports how many (children and grandchildren alike), and they are not notified separately."""
    s = Sim()
    outer = running(s)
    assert outer.session_id is not None
    inner = running(s, parent_session_id=outer.session_id, depth_of_parent=1)
    assert inner.session_id is not None
    innermost = running(s, parent_session_id=inner.session_id, depth_of_parent=2)
    s.feed(SessionError(outer.session_id, BAD_REQUEST))
    assert outer.status is TaskStatus.FAILED
    assert {inner.end_reason, innermost.end_reason} == {EndReason.ANCESTOR_ENDED}
    assert outer.cascaded == 2
    aborted = {a.session_id for a in of(s.log, AbortChild)}
    assert {inner.session_id, innermost.session_id} <= aborted  # their children are stopped


def test_only_background_ends_p_hears_of_are_toasted() -> None:
    """§11: a toast for a background task's end (success or warning); none for a foreground task
    or for a task P cancelled itself."""
    s = Sim()
    done = running(s)
    toasts = of(s.answer(done), Toast)
    assert [t.variant for t in toasts] == ["success"]
    failed = running(s)
    assert [t.variant for t in of(s.feed(SessionError(failed.session_id, BAD_REQUEST)), Toast)] == ["warning"]
    fg = running(s, background=False)
    assert of(s.answer(fg), Toast) == []
    own = running(s)
    _, actions = s.sched.cancel(CancelRequest(task_id=own.id, caller_session_id=P), s.now)
    assert of(actions, Toast) == []


def test_an_ended_task_leaves_the_live_view_after_the_cleanup_delay() -> None:
    """§16.2: ``taskCleanupDelayMs`` after its notification went out (the limit included) the task
    leaves ``baton tasks``; ``--all`` still lists it, with what it was."""
    s = Sim()
    task = running(s, directory="/work/p")
    s.answer(task)
    s.delivered(s.parent_idle_and_flush()[0])
    assert task.ended_at is not None
    s.now = task.ended_at + CLEANUP_S
    (row,) = s.sched.snapshot(s.now)
    assert (row.id, row.parent_session_id, row.session_id, row.agent, row.category, row.model) == (
        task.id, P, task.session_id, "explore", None, "prov/parent-model")
    assert (row.status, row.mode, row.end_reason, row.notify) == ("completed", "background", "completed", "delivered")
    assert row.age_s == s.now - task.created_at and row.queue_position is None
    assert task.started_at is not None and row.run_s == task.ended_at - task.started_at  # not still counting
    s.advance(0.5)
    assert s.sched.snapshot(s.now) == []
    assert [r.id for r in s.sched.snapshot(s.now, include_ended=True)] == [task.id]


def test_the_user_s_cancel_of_all_takes_every_live_task_and_only_those() -> None:
    """§15.6 ``baton tasks cancel``: a user cancel without a calling session reaches every parent's
    live tasks; ended ones are left as they are, and the report names what was cancelled."""
    s = Sim()
    done = running(s)
    s.answer(done)
    mine, other = running(s), running(s, parent_session_id="ses_other_parent")
    report, _ = s.sched.cancel(CancelRequest(all=True, by="user"), s.now)
    assert isinstance(report, CancelReport)
    assert {c.task_id for c in report.cancelled} == {mine.id, other.id}
    assert {c.description for c in report.cancelled} == {mine.description}
    assert {c.session_id for c in report.cancelled} == {mine.session_id, other.session_id}
    assert done.end_reason is EndReason.COMPLETED
    assert {mine.end_reason, other.end_reason} == {EndReason.CANCELLED_BY_USER}


def test_a_cancel_needs_exactly_one_target_and_a_known_caller() -> None:
    """§14.4 rule 1: neither or both of task_id and all is an error; a parent's cancel without a
    known calling session cancels nothing; an unknown id is named."""
    s = Sim()
    task = running(s)
    for request in (CancelRequest(), CancelRequest(task_id=task.id, all=True),
                    CancelRequest(task_id=task.id, caller_session_id=None)):
        result, actions = s.sched.cancel(request, s.now)
        assert isinstance(result, ToolError) and actions == []
    assert "exactly one of task_id and all" in s.sched.cancel(CancelRequest(), s.now)[0].message  # type: ignore[union-attr]
    unknown, _ = s.sched.cancel(CancelRequest(task_id="bg_nothere", caller_session_id=P), s.now)
    assert isinstance(unknown, ToolError) and "bg_nothere" in unknown.message
    assert task.status is TaskStatus.RUNNING


def test_a_live_task_has_run_since_its_start_and_a_queued_one_not_at_all() -> None:
    s = Sim()
    task = running(s)
    s.advance(2.5)
    (row,) = s.sched.snapshot(s.now)
    assert task.started_at is not None and row.run_s == s.now - task.started_at
    queued = s.launch(description="later")
    assert next(r for r in s.sched.snapshot(s.now) if r.id == queued.id).run_s is None
