"""The exact words of the notifications a parent gets (background-tasks §12.3, §12.5): the
context-only update, the waking summary of a batch, and the list after a compaction. Pinned as
whole texts, through the scheduler with a fake clock, because the parent's model reads every word.
Written against the mutants mutation testing left alive in ``texts`` (``scripts/mutation.py``);
a deliberate rewording updates this file."""

from __future__ import annotations

from task_sim import P, Sim

from baton.events import SessionError
from baton.tasks.events import ParentCompacted

BAD_REQUEST = {"name": "APIError", "data": {"message": "Bad request", "statusCode": 400}}
FAILED = "failed: the model failed with an error a different model would not fix (bad request)"


def test_a_batch_of_three_in_full() -> None:
    """§12.3: each update gives id, description, agent or category, model, outcome and reason, run time
    and queue wait, the child session and how to read the result, and how many are still running;
    the compaction list rides along, in launch order (§12.5); the last end wakes P with the batch, completed tasks
    and the others in groups of their own."""
    s = Sim({"background_task": {"defaultConcurrency": 1}})
    a = s.launch(description="first job")
    s.start(a, "ses_a")
    s.advance(1)
    b = s.launch(description="second job", category="quick", subagent_type=None)
    s.advance(1)
    c = s.launch(description="third job")
    s.advance(88)
    s.answer(a, "A")
    (first,) = s.parent_idle_and_flush()
    assert first.no_reply and first.text == "\n".join([
        "[baton] Background task update (for context; no reply needed).", "",
        f'Task {a.id} "first job" (agent explore on prov/parent-model): completed.',
        "Ran 1m 30s.",
        "Child session: ses_a (continue it by passing session_id).",
        f'Result: baton_background_output(task_id="{a.id}").', "",
        "2 of your background task(s) are still running. You will be woken when all have ended; there is no need "
        "to poll."])
    s.delivered(first)
    s.start(b, "ses_b")
    s.advance(5)
    s.feed(SessionError("ses_b", BAD_REQUEST))
    s.feed(ParentCompacted(P))
    (second,) = s.parent_idle_and_flush()
    assert second.no_reply and second.text == "\n".join([
        "[baton] Background task update (for context; no reply needed).", "",
        f'Task {b.id} "second job" (category quick (agent general) on prov/parent-model): {FAILED}.',
        "Ran 5.0s after waiting 1m 29s in the queue.",
        "Child session: ses_b (continue it by passing session_id).",
        f'Result: baton_background_output(task_id="{b.id}").',
        "[baton] Your background tasks, listed after the compaction so you can continue them instead of starting "
        "the same work again:",
        f'- {a.id} "first job": completed, agent explore, session ses_a',
        f'- {b.id} "second job": failed, category quick, session ses_b',
        f'- {c.id} "third job": starting, agent explore, session not started yet', "",
        "1 of your background task(s) are still running. You will be woken when all have ended; there is no need "
        "to poll."])
    s.delivered(second)
    s.start(c, "ses_c")
    s.advance(3700)
    s.answer(c)
    (wake,) = s.parent_idle_and_flush()
    assert not wake.no_reply and wake.text == "\n".join([
        "[baton] All your background tasks have ended (3 in this batch).",
        "Completed (2):",
        f'- {a.id} "first job": completed; ran 1m 30s',
        f'- {c.id} "third job": completed; ran 1h 1m',
        "Did not complete (1):",
        f'- {b.id} "second job": {FAILED}; ran 5.0s',
        'To use them, read a result with baton_background_output(task_id="<id>").', "",
        f'Task {c.id} "third job" (agent explore on prov/parent-model): completed.',
        "Ran 1h 1m after waiting 1m 33s in the queue.",
        "Child session: ses_c (continue it by passing session_id).",
        f'Result: baton_background_output(task_id="{c.id}").'])


def test_a_compaction_with_nothing_ended_is_the_list_alone() -> None:
    """§12.5: the list of P's tasks after a compaction goes in as context under the update header,
    with nothing about running tasks after it."""
    s = Sim()
    task = s.launch(description="long job")
    s.start(task, "ses_l")
    s.feed(ParentCompacted(P))
    (msg,) = s.parent_idle_and_flush()
    assert msg.no_reply and msg.text == "\n".join([
        "[baton] Background task updates (for context; no reply needed).",
        "[baton] Your background tasks, listed after the compaction so you can continue them instead of starting "
        "the same work again:",
        f'- {task.id} "long job": running, agent explore, session ses_l'])


def test_a_compaction_lists_thirty_tasks_and_counts_the_rest() -> None:
    """§12.3: a message names at most 30 tasks one per line; beyond that it counts them."""
    for n, more in ((30, None), (31, "- … and 1 more")):
        s = Sim({"background_task": {"defaultConcurrency": 0, "maxDescendants": 50}})
        for i in range(n):
            s.launch(description=f"job {i}")
        s.feed(ParentCompacted(P))
        (msg,) = s.parent_idle_and_flush()
        lines = msg.text.split("\n")
        assert len([line for line in lines if line.startswith("- bg_")]) == 30
        assert (lines[-1] if lines[-1].startswith("- …") else None) == more
