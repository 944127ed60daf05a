"""The list sent to P after a compaction (background-tasks §12.5) is in launch order, also for
tasks launched in the same instant (the queue sequence breaks the tie)."""

from __future__ import annotations

from task_sim import P, Sim

from baton.events import StatusType
from baton.tasks.events import ParentCompacted


def test_tasks_launched_in_the_same_instant_are_listed_in_launch_order() -> None:
    s = Sim({"background_task": {"defaultConcurrency": 1}})
    tasks = [s.launch(description=f"job {i}") for i in range(8)]  # one clock reading for all
    s.status(P, StatusType.BUSY)
    s.feed(ParentCompacted(P))
    s.advance(0.06)
    (msg,) = s.parent_idle_and_flush()
    listed = [line.split(" ")[1] for line in msg.text.splitlines() if line.startswith("- ")]
    assert listed == [t.id for t in tasks]
