"""Restart from the stored rows: nothing lost, nothing run or sent twice (spec §15)."""

from __future__ import annotations

from task_sim import AbortChild, CreateChild, Deliver, P, PromptChild, Sim, of

from baton.events import StatusType
from baton.tasks import Mode, NotifyState, TaskStatus
from baton.tasks.notify import COALESCE_S

LIMITED = {"background_task": {"defaultConcurrency": 1}}


def test_restart_rebuilds_the_same_queues_and_slots() -> None:
    """Queues come back in queue_seq order and slot use is derived from the statuses."""
    s = Sim(LIMITED)
    tasks = [s.launch(description=f"t{i}") for i in range(4)]
    s.start(tasks[0])
    before = {k: list(v) for k, v in s.sched.index.queues.items()}
    s.restart()
    assert {k: list(v) for k, v in s.sched.index.queues.items()} == before
    assert s.sched.index.active == {tasks[0].key: {tasks[0].id}}


def test_a_starting_task_without_a_session_is_adopted_not_duplicated() -> None:
    """After a crash between create and record, the engine is told to adopt a child with the task id."""
    s = Sim()
    task = s.launch()
    actions = s.restart()
    (create,) = of(actions, CreateChild)
    assert create.adopt is True and task.id in create.title


def test_a_starting_task_with_a_session_re_sends_only_if_the_anchor_is_absent() -> None:
    """The prompt is re-issued with the stored anchor id and the only-if-absent guard."""
    s = Sim()
    task = s.launch()
    s.created(task)
    actions = s.restart()
    (prompt,) = of(actions, PromptChild)
    assert prompt.only_if_absent and prompt.message_id == task.anchor_message_id
    assert of(actions, CreateChild) == []


def test_a_pending_notification_is_redelivered_with_the_same_message_id() -> None:
    """A message composed but not confirmed before the crash goes out again under the same id, checked first."""
    s = Sim()
    task = s.launch()
    s.start(task)
    s.answer(task)
    (sent,) = s.parent_idle_and_flush()
    s.restart()
    (again,) = of(s.polled({}), Deliver)
    assert again.message_id == sent.message_id and again.text == sent.text and again.check_first
    s.delivered(again)
    restored = s.sched.task(task.id)
    assert restored is not None and restored.notify is NotifyState.DELIVERED


def test_a_delivered_notification_is_not_sent_again() -> None:
    """Rows marked delivered stay delivered after a restart."""
    s = Sim()
    task = s.launch()
    s.start(task)
    s.answer(task)
    (sent,) = s.parent_idle_and_flush()
    s.delivered(sent)
    after = s.restart()
    after += s.polled({})  # P's status known: anything still owed would go out here
    s.advance(1)
    after += s.fire_delivery()
    assert of(after, Deliver) == []


def test_an_undelivered_row_not_yet_composed_is_sent_after_restart() -> None:
    """A row saved at the end but never composed is delivered once after the restart."""
    s = Sim()
    task = s.launch()
    s.start(task)
    s.answer(task)
    s.restart()
    out = s.polled({})
    s.advance(COALESCE_S)
    out += s.fire_delivery()
    (msg,) = of(out, Deliver)
    assert task.id in msg.text and not msg.check_first


def test_running_tasks_keep_running_and_get_a_fresh_activity_clock() -> None:
    """A running task survives the restart; time spent down does not make it stale."""
    s = Sim()
    task = s.launch()
    s.start(task)
    s.advance(1000)
    s.restart()
    restored = s.sched.task(task.id)
    assert restored is not None and restored.status is TaskStatus.RUNNING and restored.last_activity_at == s.now
    s.answer(restored)
    assert restored.status is TaskStatus.COMPLETED


def test_a_decided_timeout_is_carried_through_the_restart() -> None:
    """A task waiting for its timeout abort is aborted again after the restart."""
    s = Sim()
    task = s.launch()
    s.start(task)
    s.advance(200)
    s.tick()
    assert task.stop_reason is not None
    actions = s.restart()
    assert [a.task_id for a in of(actions, AbortChild)] == [task.id]


def test_foreground_tasks_become_background_tasks_after_a_restart() -> None:
    """The waiting call died with baton: a live foreground task is notified like a background one."""
    s = Sim()
    task = s.launch(background=False)
    s.start(task)
    s.restart()
    restored = s.sched.task(task.id)
    assert restored is not None and restored.mode is Mode.BACKGROUND
    s.status(P, StatusType.IDLE)
    s.answer(restored)
    s.advance(COALESCE_S)
    assert len(of(s.fire_delivery(), Deliver)) == 1
