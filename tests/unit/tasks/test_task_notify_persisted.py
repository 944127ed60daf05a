"""What the notifier writes down and in which order (background-tasks §12.2-12.4, §15.2), driven
through :mod:`task_sim` with a fake clock: coalesced updates keep the order the tasks ended in, and
a delivered notification and a closed batch stay so across a restart.

Written against the mutants mutation testing left alive in ``notify`` (``scripts/mutation.py``).
"""

from __future__ import annotations

from task_sim import Deliver, P, Sim, of

from baton.events import StatusType
from baton.tasks import NotifyState, Task
from baton.tasks.events import ParentCompacted
from baton.tasks.notify import COALESCE_S


def running(s: Sim, **kw: object) -> Task:
    task = s.launch(**kw)
    s.start(task)
    return task


def test_coalesced_updates_come_in_the_order_the_tasks_ended() -> None:
    """§12.4.3: the rows of ends that happened together go out as one message, oldest end first."""
    s = Sim()
    tasks = [running(s, description=f"job {i}") for i in range(4)]
    s.status(P, StatusType.IDLE)
    for task in (tasks[2], tasks[0], tasks[1]):
        s.answer(task)
        s.advance(0.01)
    s.advance(COALESCE_S)
    (msg,) = s.parent_idle_and_flush()
    heads = [line for line in msg.text.split("\n") if line.startswith("Task ")]
    assert [h.split(" ")[1] for h in heads] == [tasks[2].id, tasks[0].id, tasks[1].id]


def test_a_delivered_wake_stays_delivered_and_its_batch_closed_after_a_restart() -> None:
    """§15.2: the stored rows say the task was reported and its batch is over, so after a restart
    the next batch holds only what ended since, and nothing is reported twice."""
    s = Sim()
    first = running(s, description="first job")
    s.answer(first)
    (wake,) = s.parent_idle_and_flush()
    s.delivered(wake)
    s.restart()
    restored = s.sched.task(first.id)
    assert restored is not None and restored.notify is NotifyState.DELIVERED
    assert restored.batch_closed == wake.message_id
    second = running(s, description="second job")
    s.answer(second)
    (next_wake,) = s.parent_idle_and_flush()
    assert "(1 in this batch)" in next_wake.text and first.id not in next_wake.text


def test_a_compaction_notice_owed_at_a_restart_goes_out_after_it() -> None:
    """§12.4.1, §15.2: the list after a compaction is an outbox row like any other; its text survives
    a restart and is sent once P is ready."""
    s = Sim()
    task = running(s, description="long job")
    s.status(P, StatusType.BUSY)
    s.feed(ParentCompacted(P))
    s.restart()
    s.advance(1)
    sent = of(s.polled({task.session_id or "": StatusType.BUSY}), Deliver)  # P absent: idle
    sent += s.parent_idle_and_flush()
    (msg,) = sent
    assert msg.no_reply and f'- {task.id} "long job": running, agent explore' in msg.text
