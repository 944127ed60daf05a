"""Which tasks a tool call may touch, and what it answers for one it may not (background-tasks
§14.3.5, §14.4.1), plus the attempts record of a fallback (§4.1). Driven through :mod:`task_sim`.

Written against the mutants mutation testing left alive in ``scheduler`` and ``children``
(``scripts/mutation.py``).
"""

from __future__ import annotations

from task_sim import AbortChild, P, Sim, of

from baton.events import SessionError
from baton.tasks import CancelRequest, TaskStatus, ToolError

UNKNOWN = "[baton] There is no task 'bg_nothere' that this session can see. Check the id."
RATE_LIMIT = {"name": "APIError", "data": {"message": "Rate limit exceeded", "statusCode": 429}}


def test_every_tool_quotes_an_unknown_task_id() -> None:
    """§14.3.5: an unknown task_id is a tool error quoting the id, for every tool that takes one."""
    s = Sim()
    for result in (s.sched.output("bg_nothere", P, s.now), s.sched.foreground_result("bg_nothere", s.now)[0],
                   s.sched.to_background("bg_nothere", s.now)[0],
                   s.sched.cancel(CancelRequest(task_id="bg_nothere", caller_session_id=P), s.now)[0]):
        assert isinstance(result, ToolError) and result.message == UNKNOWN


def test_a_task_outside_the_caller_s_scope_is_not_found_and_not_cancelled() -> None:
    """§14.4.1: a task_id outside the caller's tasks and their descendants is reported as not found."""
    s = Sim()
    task = s.launch()
    s.start(task)
    result, actions = s.sched.cancel(CancelRequest(task_id=task.id, caller_session_id="ses_stranger"), s.now)
    assert isinstance(result, ToolError) and result.message == f"[baton] There is no task '{task.id}' that this " \
        "session can see. Check the id."
    assert actions == [] and task.status is TaskStatus.RUNNING
    report, _ = s.sched.cancel(CancelRequest(task_id=task.id, by="user"), s.now)  # the CLI has no scope
    assert not isinstance(report, ToolError) and task.status is TaskStatus.CANCELLED


def test_a_cancel_from_an_unknown_session_is_refused() -> None:
    """§14.1.2: the calling session could not be found, so there is no scope to cancel in."""
    s = Sim()
    task = s.launch()
    result, actions = s.sched.cancel(CancelRequest(task_id=task.id, caller_session_id=None), s.now)
    assert isinstance(result, ToolError)
    assert result.message == "[baton] The calling session is unknown, so nothing can be cancelled."
    assert actions == [] and task.status is not TaskStatus.CANCELLED


def test_a_fallback_closes_the_attempt_it_leaves_and_times_the_next() -> None:
    """§4.1 ``attempts[]``: one entry per try, with its model, times and error."""
    s = Sim({"agents": {"explore": {"fallback_models": ["prov/b"]}}})
    task = s.launch(parent_model="prov/a")
    s.start(task, "ses_c")
    started = s.now
    s.advance(10)
    s.feed(SessionError("ses_c", RATE_LIMIT))
    s.abort_done(task)
    failed_at = s.now
    s.advance(1)
    s.accepted(task)
    first, second = task.attempts
    assert (first.model, first.started_at, first.ended_at) == ("prov/a", started, failed_at)
    assert first.error is not None and "rate limit exceeded" in first.error.lower()
    assert (second.model, second.started_at, second.ended_at) == ("prov/b", s.now, None)
    assert task.started_at == started  # the run time counts from the first start


def test_an_abort_goes_to_the_child_s_directory() -> None:
    """§6.1, §14.4.3: calls about the child name the directory it was created in."""
    s = Sim()
    task = s.launch(directory="/work/p")
    s.start(task, "ses_c")
    _, actions = s.sched.cancel(CancelRequest(task_id=task.id, caller_session_id=P), s.now)
    assert of(actions, AbortChild) == [AbortChild(task.id, "ses_c", "/work/p")]


def test_the_provider_of_a_key_is_the_text_before_its_first_slash() -> None:
    """§5.3.1-2: ``openrouter/anthropic/claude`` is a model of provider ``openrouter``, whose limit applies."""
    s = Sim({"background_task": {"providerConcurrency": {"openrouter": 1}}})
    first = s.launch(parent_model="openrouter/anthropic/claude")
    second = s.launch(parent_model="openrouter/anthropic/claude")
    assert (first.status, second.status) == (TaskStatus.STARTING, TaskStatus.QUEUED)
