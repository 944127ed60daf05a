"""Failures and fallback retries of task children (spec §10)."""

from __future__ import annotations

from typing import Any

from task_sim import AbortChild, CreateChild, PromptChild, Sim, of

from baton.actions import SaveCooldown
from baton.events import SessionError, StatusType
from baton.tasks import EndReason, TaskStatus
from baton.tasks.events import PromptRejected

CHAIN = {"agents": {"explore": {"model": "prov/a", "fallback_models": ["prov/b", "other/c"]}},
         "background_task": {"modelConcurrency": {"prov/b": 1}}}
RATE_LIMIT = {"name": "APIError", "data": {"message": "Rate limit exceeded", "statusCode": 429}}
NO_PARKING = {"baton": {"park_when_exhausted": False}}


def running(s: Sim, **kw: Any) -> Any:
    task = s.launch(**kw)
    s.start(task)
    return task


def test_a_retryable_error_requeues_on_the_next_model_in_the_same_session() -> None:
    """429 → abort, retrying under the new key, then the same prompt and anchor on the new model."""
    s = Sim(CHAIN)
    task = running(s)
    session, anchor = task.session_id, task.anchor_message_id
    actions = s.feed(SessionError(session, RATE_LIMIT))
    assert [c.model for c in of(actions, SaveCooldown)] == ["prov/a"]
    (abort,) = of(actions, AbortChild)
    assert task.status is TaskStatus.STARTING and task.model == "prov/b" and task.key == "prov/b"
    assert of(actions, PromptChild) == []  # the prompt waits for the abort to land
    (prompt,) = of(s.abort_done(task), PromptChild)
    assert (prompt.session_id, prompt.message_id, prompt.model, prompt.attempt) == (session, anchor, "prov/b", 1)
    assert prompt.system == task.system and prompt.tools == task.tools and prompt.text == task.prompt
    assert not of(s.log, CreateChild)[1:]  # no second session
    s.accepted(task)
    assert task.status is TaskStatus.RUNNING and [a.model for a in task.attempts] == ["prov/a", "prov/b"]


def test_a_retried_task_joins_the_tail_of_its_new_key() -> None:
    """Fallback respects the new key's limit and FIFO: it waits behind that key's queue."""
    s = Sim(CHAIN)
    holder = running(s, known_agents=(), subagent_type=None, category="deep", parent_model="prov/b")
    waiter = s.launch(category="deep", subagent_type=None, parent_model="prov/b")
    task = running(s)
    s.feed(SessionError(task.session_id, RATE_LIMIT))
    assert task.status is TaskStatus.RETRYING
    assert list(s.sched.index.queues["prov/b"]) == [waiter.id, task.id]
    s.answer(holder)
    assert waiter.status is TaskStatus.STARTING and task.status is TaskStatus.RETRYING


def test_the_freed_slot_of_the_old_key_goes_to_its_head() -> None:
    """A retry frees its old slot and the old key's waiter starts in the same step."""
    s = Sim({**CHAIN, "background_task": {"modelConcurrency": {"prov/a": 1}}})
    task = running(s)
    waiter = s.launch()
    actions = s.feed(SessionError(task.session_id, RATE_LIMIT))
    assert waiter.status is TaskStatus.STARTING
    assert [c.task_id for c in of(actions, CreateChild)] == [waiter.id]


def test_a_retry_status_acts_at_once() -> None:
    """opencode's retry countdown is a failure signal: no waiting it out."""
    s = Sim(CHAIN)
    task = running(s)
    s.status(task.session_id, StatusType.RETRY, "Rate limit exceeded, retrying in 5s")
    assert task.model == "prov/b"


def test_a_retry_status_without_a_next_model_leaves_opencodes_retry_running() -> None:
    """Decision: with no model left and parking off, a retry status does not end the task (opencode
    may still succeed)."""
    s = Sim({"baton": {"park_when_exhausted": False}})
    task = running(s)
    s.status(task.session_id, StatusType.RETRY, "Rate limit exceeded, retrying in 5s")
    assert task.status is TaskStatus.RUNNING


def test_a_non_retryable_error_fails_and_notifies() -> None:
    """An error the next model would not fix ends the task failed with the provider's message."""
    s = Sim(CHAIN)
    task = running(s)
    s.feed(SessionError(task.session_id, {"name": "APIError", "data": {"message": "Bad request", "statusCode": 400}}))
    assert task.status is TaskStatus.FAILED and task.end_reason is EndReason.ERROR and "bad request" in (
        task.error or "")
    (msg,) = s.parent_idle_and_flush()
    assert "bad request" in msg.text


def test_the_chain_running_out_fails_the_task() -> None:
    """After the last model fails, with parking off, the task fails as chain exhausted."""
    s = Sim({**CHAIN, **NO_PARKING})
    task = running(s)
    for _ in range(2):
        s.feed(SessionError(task.session_id, RATE_LIMIT))
        s.abort_done(task)
        s.accepted(task)
    assert task.model == "other/c"
    s.feed(SessionError(task.session_id, RATE_LIMIT))
    assert task.status is TaskStatus.FAILED and task.end_reason is EndReason.CHAIN_EXHAUSTED


def test_the_fallback_attempt_budget_is_shared_with_sessions() -> None:
    """runtime_fallback.max_fallback_attempts bounds the retries of a task."""
    s = Sim({**CHAIN, "runtime_fallback": {"max_fallback_attempts": 1}})
    task = running(s)
    s.feed(SessionError(task.session_id, RATE_LIMIT))
    s.abort_done(task)
    s.accepted(task)
    s.feed(SessionError(task.session_id, RATE_LIMIT))
    assert task.status is TaskStatus.FAILED


def test_a_user_abort_in_the_child_cancels_and_notifies() -> None:
    """An abort baton did not ask for is the user's: cancelled (aborted in opencode), and P is told."""
    s = Sim(CHAIN)
    task = running(s)
    s.feed(SessionError(task.session_id, {"name": "MessageAbortedError", "data": {"message": "Aborted"}}))
    assert task.status is TaskStatus.CANCELLED and task.end_reason is EndReason.CHILD_ABORTED
    assert task.notify.value == "pending"


def test_batons_own_abort_is_not_taken_for_the_users() -> None:
    """The abort error that follows baton's retry abort is ignored."""
    s = Sim(CHAIN)
    task = running(s)
    s.feed(SessionError(task.session_id, RATE_LIMIT))
    s.abort_done(task)
    s.accepted(task)
    s.feed(SessionError(task.session_id, {"name": "MessageAbortedError", "data": {"message": "Aborted"}}))
    assert task.status is TaskStatus.RUNNING


def test_an_unknown_agent_rejection_interrupts() -> None:
    """A rejected prompt ends the task interrupted; an unknown agent is named as such."""
    s = Sim()
    task = s.launch()
    s.created(task)
    s.feed(PromptRejected(task.id, task.attempt, "agent not found", unknown_agent=True))
    assert task.status is TaskStatus.INTERRUPTED and task.end_reason is EndReason.AGENT_UNKNOWN
    (msg,) = s.parent_idle_and_flush()
    assert "does not know the agent explore" in msg.text


def test_a_child_created_for_a_cancelled_task_is_aborted_and_never_prompted() -> None:
    """Cancel while starting ends the task at once; the late child is aborted, the task stays ended."""
    from baton.tasks import CancelRequest

    s = Sim()
    task = s.launch()
    s.sched.cancel(CancelRequest(task_id=task.id, caller_session_id=task.parent_session_id), s.now)
    actions = s.created(task, "ses_late")
    assert [a.session_id for a in of(actions, AbortChild)] == ["ses_late"] and of(actions, PromptChild) == []
    assert task.status is TaskStatus.CANCELLED and task.session_id is None


def test_a_retry_skips_providers_opencode_has_not_connected_like_a_launch() -> None:
    """The next model of a retry is on a connected provider, as a launch's first model is (§5.2.5, §10.3).

    The chain is prov/a → mid/b → other/c and opencode has not connected ``mid``: the launch
    starts on prov/a, and its 429 moves the task to other/c, never to mid/b (it used to).
    """
    s = Sim({"agents": {"explore": {"model": "prov/a", "fallback_models": ["mid/b", "other/c"]}}})
    task = running(s, connected_providers=frozenset({"prov", "other"}))
    assert task.model == "prov/a"
    s.feed(SessionError(task.session_id, RATE_LIMIT))
    assert task.model == "other/c" and task.attempt == 2 and [a.model for a in task.attempts] == ["prov/a", "other/c"]


def test_a_retry_with_no_connected_model_left_fails_as_chain_exhausted() -> None:
    """Only unconnected providers after the failing model: no retry, the task fails (chain exhausted)
    — parking off; with it, the task waits for the failing model's reset (test_task_waiting.py)."""
    s = Sim({"agents": {"explore": {"model": "prov/a", "fallback_models": ["mid/b"]}}, **NO_PARKING})
    task = running(s, connected_providers=frozenset({"prov"}))
    s.feed(SessionError(task.session_id, RATE_LIMIT))
    assert task.status is TaskStatus.FAILED and task.end_reason is EndReason.CHAIN_EXHAUSTED


def test_the_newest_launch_tells_which_providers_are_connected() -> None:
    """A provider connected since an earlier launch counts for that task's retry; an unknown set
    (the lookup failed) keeps the last one known."""
    s = Sim({"agents": {"explore": {"model": "prov/a", "fallback_models": ["mid/b", "other/c"]}}})
    task = running(s, connected_providers=frozenset({"prov", "other"}))
    running(s, connected_providers=frozenset({"prov", "mid", "other"}))
    running(s, connected_providers=None)
    s.feed(SessionError(task.session_id, RATE_LIMIT))
    assert task.model == "mid/b"
