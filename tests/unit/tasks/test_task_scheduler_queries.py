"""What the engine asks the scheduler between events: whether a task is still live (a blocking
``background_output`` waits while it is; attaching re-watches live children)."""

from __future__ import annotations

from task_sim import Sim

from baton.tasks import CancelRequest


def test_a_task_is_live_from_its_launch_until_it_ends() -> None:
    s = Sim({"background_task": {"defaultConcurrency": 1}})
    running, queued = s.launch(), s.launch()
    s.start(running)
    assert s.sched.is_live(running.id) and s.sched.is_live(queued.id)
    s.answer(running)
    assert not s.sched.is_live(running.id)
    assert s.sched.is_live(queued.id)


def test_a_cancelled_task_and_an_unknown_id_are_not_live() -> None:
    s = Sim()
    task = s.launch()
    s.sched.cancel(CancelRequest(task_id=task.id, caller_session_id="ses_parent"), s.now)
    assert not s.sched.is_live(task.id)
    assert not s.sched.is_live("bt_unknown")
