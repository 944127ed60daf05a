"""Notification and cancel texts at their limits, in full (background-tasks §12.3, §14.4): five
updates in detail and the rest listed, lists cut at 30, the batch summary given as context with
the cascade count, the queue wait from one second on, a task on the default model.

Written against the mutants mutation testing left alive in ``baton.tasks.texts``.
"""

from __future__ import annotations

from baton.tasks import EndReason, Task, TaskStatus
from baton.tasks.texts import cancel_report, notification


def done(n: int, *, model: str | None = "prov/m", queued: float = 0.0, cascaded: int = 0) -> Task:
    task = Task(id=f"bg_{n:08d}", parent_session_id="ses_p", description=f"job {n}", prompt="p",
                agent="explore", model=model, key="prov/m", queue_seq=n, queued_at=0.0)
    task.status, task.end_reason = TaskStatus.COMPLETED, EndReason.COMPLETED
    task.started_at, task.ended_at, task.session_id = queued, queued + 5.0, f"ses_{n}"
    task.cascaded = cascaded
    return task


def detail(task: Task, wait: str = "") -> list[str]:
    return ["", f'Task {task.id} "{task.description}" (agent explore on prov/m): completed.', f"Ran 5.0s{wait}.",
            f"Child session: {task.session_id} (continue it by passing session_id).",
            f'Result: baton_background_output(task_id="{task.id}").']


def test_five_updates_are_given_in_detail_and_a_sixth_is_listed_after_them() -> None:
    five = [done(i) for i in range(1, 6)]
    assert notification(five, summary=False, waking=False, batch=[], outstanding=0) == "\n".join([
        "[baton] Background task updates (for context; no reply needed).",
        *(line for t in five for line in detail(t)), "",
        "None of your background tasks is running now."])
    six = [*five, done(6)]
    assert notification(six, summary=False, waking=False, batch=[], outstanding=0) == "\n".join([
        "[baton] Background task updates (for context; no reply needed).",
        *(line for t in five for line in detail(t)), "",
        "Also ended:", '- bg_00000006 "job 6": completed; ran 5.0s', "",
        "None of your background tasks is running now."])


def test_a_closed_batch_summary_given_as_context_says_why_and_counts_the_cascade() -> None:
    """§12.2: the user stopped P's turn, so the summary does not wake P; §11: cancelled descendants."""
    batch = [done(1, cascaded=2), done(2, cascaded=1)]
    assert notification([], summary=True, waking=False, batch=batch, outstanding=0) == "\n".join([
        "[baton] All your background tasks have ended (2 in this batch).",
        "Completed (2):",
        '- bg_00000001 "job 1": completed; ran 5.0s',
        '- bg_00000002 "job 2": completed; ran 5.0s',
        "3 descendant task(s) were cancelled because a task above them ended.",
        'To use them, read a result with baton_background_output(task_id="<id>").',
        "(Added as context only, because your turn was stopped.)"])


def test_lists_show_thirty_tasks_and_count_the_rest() -> None:
    thirty = [done(i) for i in range(1, 31)]
    text = notification([], summary=True, waking=True, batch=thirty, outstanding=0)
    assert text.splitlines()[-2:] == ['- bg_00000030 "job 30": completed; ran 5.0s',
                                      'To use them, read a result with baton_background_output(task_id="<id>").']
    text = notification([], summary=True, waking=True, batch=[*thirty, done(31)], outstanding=0)
    assert text.splitlines()[-2:] == ["- … and 1 more",
                                      'To use them, read a result with baton_background_output(task_id="<id>").']


def test_a_cancel_report_lists_thirty_tasks_and_counts_the_rest() -> None:
    cancelled = [(done(i), TaskStatus.RUNNING) for i in range(1, 32)]
    lines = cancel_report(cancelled[:30], 0).splitlines()
    assert lines[0] == "[baton] Cancelled 30 task(s):" and len(lines) == 32
    assert lines[-2:] == ['- bg_00000030 "job 30" (was running); session ses_30',
                          "To continue one later, call baton_task with its session_id."]
    lines = cancel_report(cancelled, 0).splitlines()
    assert lines[0] == "[baton] Cancelled 31 task(s):"
    assert lines[-2:] == ["- … and 1 more", "To continue one later, call baton_task with its session_id."]


def test_a_queue_wait_is_told_from_one_second_on() -> None:
    assert notification([done(1, queued=1.0)], summary=False, waking=False, batch=[], outstanding=1) == "\n".join([
        "[baton] Background task update (for context; no reply needed).",
        *detail(done(1), " after waiting 1.0s in the queue"), "",
        "1 of your background task(s) are still running. You will be woken when all have ended; there is no "
        "need to poll."])
    assert "waiting" not in notification([done(1, queued=0.99)], summary=False, waking=False, batch=[],
                                         outstanding=0)


def test_a_task_without_a_model_runs_on_the_default_model() -> None:
    text = notification([done(1, model=None)], summary=False, waking=False, batch=[], outstanding=0)
    assert text.splitlines()[2] == 'Task bg_00000001 "job 1" (agent explore on the default model): completed.'
