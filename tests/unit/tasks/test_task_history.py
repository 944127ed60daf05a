"""History retention (spec §16): ended tasks are capped per parent, never before they were reported."""

from __future__ import annotations

from task_sim import Sim, of

from baton.tasks.actions import ForgetTasks
from baton.tasks.scheduler import HISTORY_PER_PARENT


def run_to_end(s: Sim, n: int) -> None:
    """Launch and finish ``n`` tasks one after another, each reported to the parent."""
    for i in range(n):
        task = s.launch(description=f"job {i}")
        s.start(task)
        s.answer(task)
        for deliver in s.parent_idle_and_flush():
            s.delivered(deliver)
        s.advance(1.0)


def test_history_is_capped_per_parent_oldest_first() -> None:
    """Past the cap the oldest ended tasks are forgotten, in memory and (through ForgetTasks) in the store."""
    s = Sim()
    run_to_end(s, HISTORY_PER_PARENT + 3)
    kept = s.sched.snapshot(s.now, include_ended=True)
    assert len(kept) == HISTORY_PER_PARENT
    forgotten = [tid for action in of(s.log, ForgetTasks) for tid in action.task_ids]
    assert len(forgotten) == 3
    assert all(s.sched.task(tid) is None for tid in forgotten)
    assert {v.description for v in kept} == {f"job {i}" for i in range(3, HISTORY_PER_PARENT + 3)}


def test_unreported_tasks_are_never_forgotten() -> None:
    """A task whose notification is still due stays, whatever the cap says."""
    s = Sim()
    run_to_end(s, HISTORY_PER_PARENT)
    late = s.launch(description="late")
    s.start(late)
    s.answer(late)  # ended, its notification not yet delivered
    assert s.sched.prune("ses_other") == []
    assert s.sched.task(late.id) is not None
