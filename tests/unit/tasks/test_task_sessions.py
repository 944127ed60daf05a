"""Which task a child session belongs to, as tasks end, are continued and are forgotten
(background-tasks §14.2.4, §16, §10.6), driven through :mod:`task_sim` with a fake clock.

Written against the mutants mutation testing left alive in the task index and the continuation
check (``scripts/mutation.py``).
"""

from __future__ import annotations

from task_sim import ROOT, P, Sim

from baton.tasks import LaunchResult, Task, TaskStatus, ToolError
from baton.tasks.scheduler import HISTORY_PER_PARENT


def ended_on(s: Sim, session: str, **kw: object) -> Task:
    """A task run on ``session`` to its answer, its notification delivered."""
    task = s.launch(**kw)
    s.start(task, session)
    s.answer(task)
    for deliver in s.parent_idle_and_flush(task.parent_session_id):
        s.delivered(deliver)
    return task


def fill_history(s: Sim, n: int) -> None:
    for i in range(n):
        ended_on(s, f"ses_filler{i}", description=f"job {i}")
        s.advance(1.0)


def test_a_continuation_keeps_its_session_when_the_task_it_continues_is_forgotten() -> None:
    """§16: once the old task drops out of P's history, the continuation running on the same
    session still gets that session's answer and completes."""
    s = Sim()
    old = ended_on(s, "ses_kept")
    s.advance(1.0)
    cont = s.launch(session_id="ses_kept", subagent_type=None, prompt="Go on.")
    s.accepted(cont)
    fill_history(s, HISTORY_PER_PARENT)
    assert s.sched.task(old.id) is None  # the oldest ended task was forgotten
    assert s.sched.owns("ses_kept")
    s.answer(cont, "the rest")
    assert cont.status is TaskStatus.COMPLETED and cont.result == "the rest"


def test_a_forgotten_task_s_session_is_no_task_child_any_more() -> None:
    """§16 and §14.2.4: after the cap evicts a task, its session is no longer a baton task's child:
    session fallback may act on it again (§10.6), and it cannot be continued as a task."""
    s = Sim()
    old = ended_on(s, "ses_old")
    s.advance(1.0)
    fill_history(s, HISTORY_PER_PARENT)
    assert s.sched.task(old.id) is None
    assert not s.sched.owns("ses_old") and s.sched.owns("ses_filler0")
    result, _ = s.launch_raw(session_id="ses_old", subagent_type=None)
    assert isinstance(result, ToolError) and "is not the session of a baton task" in result.message


def test_a_grandchild_stored_without_root_is_continued_by_its_grandparent_only() -> None:
    """§14.2.4 for rows from before roots were stored: the chain of parent tasks, followed over
    more than one level, must lead to the caller."""
    s = Sim()
    outer = s.launch()
    s.start(outer, "ses_outer")
    inner = ended_on(s, "ses_inner", parent_session_id="ses_outer", depth_of_parent=1)
    inner.root_session_id = ""
    refused, _ = s.launch_raw(session_id="ses_inner", subagent_type=None, parent_session_id="ses_sibling")
    assert isinstance(refused, ToolError) and "does not belong" in refused.message
    result, _ = s.launch_raw(session_id="ses_inner", subagent_type=None)
    assert isinstance(result, LaunchResult)
    task = s.sched.task(result.task_id)
    assert task is not None and (task.parent_session_id, task.session_id, task.root_session_id) == (
        P, "ses_inner", ROOT)
