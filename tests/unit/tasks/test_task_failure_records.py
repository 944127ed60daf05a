"""What a child's failure leaves behind (background-tasks §10, runtime-fallback §6): the journal
lines of a retry and of a wait for a reset, each naming the cause cut at 200 characters; the error
an end records.

Written against the mutants mutation testing left alive in ``Children.failure`` and ``requeue``.
"""

from __future__ import annotations

import pytest
from task_sim import Note, P, Sim, of

from baton.events import SessionError
from baton.tasks import EndReason, TaskStatus

CHAIN = {"agents": {"explore": {"model": "prov/a", "fallback_models": ["prov/b"]}}}
ABORTED = {"name": "MessageAbortedError", "data": {"message": "The operation was aborted."}}


def rate_limit(message: str) -> dict[str, object]:
    return {"name": "APIError", "data": {"message": message, "statusCode": 429}}


@pytest.mark.usefixtures("utc")
def test_a_retry_and_a_wait_for_the_reset_are_journalled_with_the_cause_cut_at_200() -> None:
    s = Sim(CHAIN)
    task = s.launch()
    s.start(task)
    out = s.feed(SessionError(task.session_id, rate_limit("Rate limit exceeded " + "x" * 600)))
    cause = ("rate limit exceeded " + "x" * 600)[:200]
    assert [(n.session_id, n.kind, n.text) for n in of(out, Note) if n.kind == "task_retry"] == [
        (P, "task_retry", f"task {task.id}: prov/a failed ({cause}); queued again on prov/b")]
    s.abort_done(task)
    s.accepted(task)
    out = s.feed(SessionError(task.session_id, rate_limit("Quota used up " + "y" * 600)))
    cause = ("quota used up " + "y" * 600)[:200]
    assert [(n.session_id, n.kind, n.text) for n in of(out, Note) if n.kind == "task_parked"] == [
        (P, "task_parked", f"task {task.id}: prov/b failed ({cause}) and every model of its chain is cooling; "
                           "waiting in the queue for prov/a, back at 08:01")]


def test_a_child_stopped_outside_baton_ends_the_task_with_opencode_s_words() -> None:
    s = Sim()
    task = s.launch()
    s.start(task)
    s.advance(10)  # past baton's own abort grace
    s.feed(SessionError(task.session_id, ABORTED))
    assert (task.status, task.end_reason, task.error) == (
        TaskStatus.CANCELLED, EndReason.CHILD_ABORTED, "the operation was aborted.")


def test_a_chain_with_nothing_left_ends_with_the_last_cause_cut_at_500() -> None:
    s = Sim({**CHAIN, "baton": {"park_when_exhausted": False}})
    task = s.launch()
    s.start(task)
    s.feed(SessionError(task.session_id, rate_limit("Rate limit exceeded")))
    s.abort_done(task)
    s.accepted(task)
    s.feed(SessionError(task.session_id, rate_limit("Too many requests " + "z" * 600)))
    assert (task.status, task.end_reason) == (TaskStatus.FAILED, EndReason.CHAIN_EXHAUSTED)
    assert task.error == ("too many requests " + "z" * 600)[:500]
