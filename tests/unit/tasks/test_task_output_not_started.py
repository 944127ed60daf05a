"""``background_output`` of a task that has not started (background-tasks §14.3.2): it says so, and
that there was no activity yet, in plain words (it once read "Running for not started … last
activity unknown ago")."""

from __future__ import annotations

from task_sim import P, Sim


def test_a_task_whose_child_exists_but_has_not_started_says_so() -> None:
    s = Sim()
    task = s.launch()
    s.created(task, "ses_a")
    s.advance(2)
    assert s.sched.output(task.id, P, s.now) == (
        f"[baton] Task {task.id} is starting (agent explore on prov/parent-model, attempt 1). Not started yet; "
        "0 tool call(s); no activity yet. Session: ses_a. A notification will come when it ends.")


def test_a_task_not_started_whose_wait_ran_out() -> None:
    s = Sim()
    task = s.launch()
    assert s.sched.output(task.id, P, s.now, waited_out=True) == (
        f"[baton] Task {task.id} is starting (agent explore on prov/parent-model, attempt 1). Not started yet; "
        "0 tool call(s); no activity yet. Session: not created yet. A notification will come when it ends.\n"
        "The wait ran out while the task is still running.")
