"""The queue sequence a restart rebuilds the queues from (background-tasks §4.3, §10.4, §15):
tasks are numbered in launch order from 1, and the numbering goes on after a restart."""

from __future__ import annotations

from task_sim import Sim


def test_tasks_are_numbered_in_launch_order_and_a_restart_goes_on_counting() -> None:
    s = Sim({"background_task": {"defaultConcurrency": 1}})
    first, second = s.launch(), s.launch()
    assert [s.rows[t.id]["queue_seq"] for t in (first, second)] == [1, 2]
    s.restart()
    third = s.launch()
    assert s.rows[third.id]["queue_seq"] == 3
    positions = {view.id: view.queue_position for view in s.sched.snapshot(s.now)}
    assert positions == {first.id: None, second.id: 1, third.id: 2}
