"""The tool-facing methods: output, cancel, foreground hand-over, snapshot and ownership."""

from __future__ import annotations

from task_sim import AbortChild, P, PromptChild, Sim, of

from baton.events import SessionError
from baton.tasks import CancelReport, CancelRequest, Mode, TaskStatus, ToolError

RATE_LIMIT = {"name": "APIError", "data": {"message": "Rate limit exceeded", "statusCode": 429}}


def test_output_of_an_ended_task_is_the_same_every_time() -> None:
    """Reading a completed task twice, even much later, returns identical text with the answer."""
    s = Sim()
    task = s.launch()
    s.start(task)
    s.answer(task, "the answer")
    first = s.sched.output(task.id, P, s.now)
    s.advance(3600)
    assert s.sched.output(task.id, P, s.now) == first
    assert isinstance(first, str) and "the answer" in first and f"Session: {task.session_id}" in first


def test_output_by_state_and_scope() -> None:
    """A queued task reports its place; an unknown id, or one outside the caller's scope, is an error."""
    s = Sim({"background_task": {"defaultConcurrency": 1}})
    running = s.launch()
    queued = s.launch()
    text = s.sched.output(queued.id, P, s.now)
    assert isinstance(text, str) and "number 1 in line" in text
    running_text = s.sched.output(running.id, None, s.now, waited_out=True)
    assert isinstance(running_text, str) and "wait ran out" in running_text
    assert isinstance(s.sched.output("bg_nothere", P, s.now), ToolError)
    assert isinstance(s.sched.output(queued.id, "ses_stranger", s.now), ToolError)


def test_an_ancestor_can_read_and_cancel_a_grandchild_task() -> None:
    """Scope covers the caller's tasks and their descendants."""
    s = Sim()
    task = s.launch()
    s.start(task)
    assert task.session_id is not None
    inner = s.launch(parent_session_id=task.session_id, depth_of_parent=1)
    assert isinstance(s.sched.output(inner.id, P, s.now), str)
    report, _ = s.sched.cancel(CancelRequest(task_id=inner.id, caller_session_id=P), s.now)
    assert isinstance(report, CancelReport) and inner.status is TaskStatus.CANCELLED


def test_cancel_reports_and_aborts_and_cascades() -> None:
    """Cancelling a running task aborts its child, cancels its descendants, and reports how to continue."""
    s = Sim()
    task = s.launch(description="long job")
    s.start(task)
    assert task.session_id is not None
    inner = s.launch(parent_session_id=task.session_id, depth_of_parent=1)
    report, actions = s.sched.cancel(CancelRequest(all=True, caller_session_id=P), s.now)
    assert isinstance(report, CancelReport)
    assert [(c.task_id, c.previous_status) for c in report.cancelled] == [(task.id, "running")]
    assert report.descendants == 1 and inner.status is TaskStatus.CANCELLED
    assert "long job" in report.text and "session_id" in report.text
    assert task.session_id in {a.session_id for a in of(actions, AbortChild)}


def test_cancel_errors() -> None:
    """Neither or both arguments, an ended task, or nothing live each give a plain answer."""
    s = Sim()
    task = s.launch()
    assert isinstance(s.sched.cancel(CancelRequest(caller_session_id=P), s.now)[0], ToolError)
    both = CancelRequest(task_id=task.id, all=True, caller_session_id=P)
    assert isinstance(s.sched.cancel(both, s.now)[0], ToolError)
    s.sched.cancel(CancelRequest(task_id=task.id, caller_session_id=P), s.now)
    ended, _ = s.sched.cancel(CancelRequest(task_id=task.id, caller_session_id=P), s.now)
    assert isinstance(ended, ToolError) and "already ended (cancelled)" in ended.message
    nothing, _ = s.sched.cancel(CancelRequest(all=True, caller_session_id=P), s.now)
    assert isinstance(nothing, CancelReport) and "Nothing to cancel" in nothing.text


def test_foreground_budget_spent_turns_the_task_into_a_background_task() -> None:
    """After the wait budget the task keeps running as a background task and is notified as usual."""
    s = Sim()
    task = s.launch(background=False)
    s.start(task)
    text, _ = s.sched.to_background(task.id, s.now)
    assert isinstance(text, str) and "background" in text and task.mode is Mode.BACKGROUND
    assert s.sched.index.outstanding_count(P) == 1
    s.answer(task)
    assert len(s.parent_idle_and_flush()) == 1


def test_a_failed_foreground_task_is_a_tool_error_with_the_reason() -> None:
    """The waiting call gets a tool error naming what went wrong; nothing is queued for the parent."""
    s = Sim()
    task = s.launch(background=False)
    s.start(task)
    s.feed(SessionError(task.session_id, {"name": "APIError", "data": {"message": "Bad request", "statusCode": 400}}))
    result, _ = s.sched.foreground_result(task.id, s.now)
    assert isinstance(result, ToolError) and "bad request" in result.message and s.outbox == {}


def test_snapshot_and_ownership() -> None:
    """Snapshot lists live tasks with queue places and keeps ended ones while undelivered; owns() means a task child."""
    s = Sim({"background_task": {"defaultConcurrency": 1}})
    a = s.launch()
    b = s.launch()
    s.start(a, "ses_a")
    views = {v.id: v for v in s.sched.snapshot(s.now)}
    assert views[a.id].status == "running" and views[b.id].queue_position == 1
    assert s.sched.owns("ses_a") and not s.sched.owns(P)
    s.answer(a)
    s.advance(10_000)
    assert a.id in {v.id for v in s.sched.snapshot(s.now)}  # ended long ago, but its notification is pending
    (msg,) = s.parent_idle_and_flush()
    s.delivered(msg)
    assert a.id not in {v.id for v in s.sched.snapshot(s.now)}
    assert a.id in {v.id for v in s.sched.snapshot(s.now, include_ended=True)}


def test_a_restart_during_a_fallback_start_aborts_before_re_sending() -> None:
    """A retry's anchor already exists, so after a restart the child is stopped and the prompt sent again."""
    s = Sim({"agents": {"explore": {"model": "prov/a", "fallback_models": ["prov/b"]}}})
    task = s.launch()
    s.start(task)
    s.feed(SessionError(task.session_id, RATE_LIMIT))
    s.abort_done(task)
    actions = s.restart()
    (abort,) = of(actions, AbortChild)
    assert of(actions, PromptChild) == []
    restored = s.sched.task(task.id)
    assert restored is not None
    (prompt,) = of(s.abort_done(restored), PromptChild)
    assert prompt.model == "prov/b" and prompt.message_id == task.anchor_message_id and not prompt.only_if_absent


def test_a_fallback_after_a_wake_repeats_the_wake_text() -> None:
    """When the anchor is a waking notification, the fallback re-send repeats that message, not the prompt."""
    s = Sim({"agents": {"explore": {"model": "prov/a", "fallback_models": ["prov/b"]}}})
    task = s.launch()
    s.start(task)
    assert task.session_id is not None
    inner = s.launch(parent_session_id=task.session_id, depth_of_parent=1)
    s.start(inner)
    s.answer(inner)
    (wake,) = s.parent_idle_and_flush(task.session_id)
    s.delivered(wake)
    s.feed(SessionError(task.session_id, RATE_LIMIT))
    (prompt,) = of(s.abort_done(task), PromptChild)
    assert prompt.message_id == wake.message_id and prompt.text == wake.text
