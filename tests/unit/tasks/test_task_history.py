"""History retention (spec §16): ended tasks are capped per parent, never before they were reported."""

from __future__ import annotations

from task_sim import P, Sim, of

from baton.events import StatusType
from baton.tasks import NotifyState
from baton.tasks.actions import ForgetTasks
from baton.tasks.events import DeliveryOutcome
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


def foreground_done(s: Sim, n: int) -> list[str]:
    """``n`` foreground tasks run and return their answer to P's blocking call (nothing to notify)."""
    ids = []
    for i in range(n):
        task = s.launch(description=f"fg {i}", background=False)
        s.start(task)
        s.answer(task)
        answer, _ = s.sched.foreground_result(task.id, s.now)
        assert isinstance(answer, str)
        ids.append(task.id)
        s.advance(1.0)
    return ids


def forgotten(s: Sim) -> list[str]:
    return [tid for action in of(s.log, ForgetTasks) for tid in action.task_ids]


def test_unreported_tasks_are_never_forgotten() -> None:
    """P's oldest ended task, whose notification is still due, outlives the cap; the next oldest goes.

    Its waking message was composed (the batch is closed) and failed to go out, then P got busy
    with foreground calls: only the undelivered notification keeps it past the cap.
    """
    s = Sim()
    late = s.launch(description="late")
    s.start(late)
    s.answer(late)
    (deliver,) = s.parent_idle_and_flush()
    assert deliver.no_reply is False  # waking: the batch is closed
    s.delivered(deliver, DeliveryOutcome.RETRY)
    s.status(P, StatusType.BUSY)
    fg = foreground_done(s, HISTORY_PER_PARENT)
    assert late.notify is NotifyState.PENDING
    assert forgotten(s) == []
    assert s.sched.prune(P) == [ForgetTasks((fg[0],))]  # 101 ended, one over the cap
    assert s.sched.task(late.id) is not None


def test_a_reported_task_an_open_batch_still_needs_is_never_forgotten() -> None:
    """P's oldest ended task, reported context-only while another of P's tasks runs, outlives the cap:
    the waking summary still has to list it."""
    s = Sim()
    early, slow = s.launch(description="early"), s.launch(description="slow")
    s.start(early)
    s.start(slow)
    s.answer(early)
    (context,) = s.parent_idle_and_flush()
    assert context.no_reply is True
    s.delivered(context)
    assert early.notify is NotifyState.DELIVERED
    s.status(P, StatusType.BUSY)
    fg = foreground_done(s, HISTORY_PER_PARENT)
    assert forgotten(s) == []
    assert s.sched.prune(P) == [ForgetTasks((fg[0],))]  # 101 ended, one over the cap
    assert s.sched.task(early.id) is not None
