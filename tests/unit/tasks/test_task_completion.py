"""Completion: idle + visible answer + quiescent, in any order (spec §8)."""

from __future__ import annotations

from typing import Any

from task_sim import AbortChild, LookupSession, Sim, of

from baton.events import AssistantMessage, PartUpdated, SessionError, StatusType
from baton.tasks import TaskStatus
from baton.tasks.events import ChildCreated, PromptAccepted


def running(s: Sim) -> Any:
    task = s.launch()
    s.start(task)
    return task


def test_answer_then_idle_completes_and_captures_the_answer() -> None:
    """A finished text answer followed by idle completes the task with that text as result."""
    s = Sim()
    task = running(s)
    actions = s.answer(task, "Found it in loader.py")
    assert task.status is TaskStatus.COMPLETED
    assert task.result == "Found it in loader.py"
    (abort,) = of(actions, AbortChild)
    assert abort.session_id == task.session_id


def test_idle_then_answer_completes_too() -> None:
    """The idle may be seen before the finished answer; the order does not matter."""
    s = Sim()
    task = running(s)
    assert task.session_id is not None
    mid = s.next_id()
    s.assistant(task, mid)
    s.text(task.session_id, mid)
    s.idle(task.session_id)
    assert task.status is TaskStatus.RUNNING
    s.assistant(task, mid, completed=True, finish="stop")
    assert task.status is TaskStatus.COMPLETED


def test_a_sub_second_task_completes_even_before_the_prompt_call_returns() -> None:
    """Answer and idle seen while still starting complete the task the moment the prompt is confirmed."""
    s = Sim()
    task = s.launch()
    s.feed(ChildCreated(task.id, "ses_fast"))
    assert task.status is TaskStatus.STARTING
    mid = s.next_id()
    s.feed(AssistantMessage("ses_fast", mid, task.anchor_message_id, task.model, task.agent))
    s.text("ses_fast", mid)
    s.feed(AssistantMessage("ses_fast", mid, task.anchor_message_id, task.model, task.agent, completed=True,
                            finish="stop"))
    s.idle("ses_fast")
    s.feed(PromptAccepted(task.id, task.attempt))
    assert task.status is TaskStatus.COMPLETED


def test_the_idle_after_an_abort_does_not_complete() -> None:
    """An assistant message cut by an abort is no answer, so the following idle leaves the task running."""
    s = Sim()
    task = running(s)
    assert task.session_id is not None
    mid = s.next_id()
    s.assistant(task, mid)
    s.text(task.session_id, mid, "half an ans")
    s.assistant(task, mid, completed=True, error={"name": "MessageAbortedError", "data": {"message": "x"}})
    s.idle(task.session_id)
    assert task.status is not TaskStatus.COMPLETED


def test_reasoning_or_tool_only_messages_and_tool_call_turns_are_no_answer() -> None:
    """Only a finished message with non-empty text counts; finish=tool-calls and reasoning do not."""
    s = Sim()
    task = running(s)
    sid = task.session_id
    assert sid is not None
    mid = s.next_id()
    s.assistant(task, mid)
    pid = s.next_id("prt")
    s.feed(PartUpdated(sid, mid, pid, "reasoning", "thinking", {"id": pid, "type": "reasoning"}))
    s.assistant(task, mid, completed=True, finish="stop")
    s.idle(sid)
    assert task.status is TaskStatus.RUNNING
    mid_tool, pid_tool = s.next_id(), s.next_id("prt")
    s.assistant(task, mid_tool)
    tool = {"id": pid_tool, "type": "tool", "tool": "read", "state": {"status": "completed", "input": {}}}
    s.feed(PartUpdated(sid, mid_tool, pid_tool, "tool", None, tool))
    s.assistant(task, mid_tool, completed=True, finish="stop")
    s.idle(sid)
    assert task.status is TaskStatus.RUNNING
    mid2 = s.next_id()
    s.assistant(task, mid2)
    s.text(sid, mid2, "let me look")
    s.assistant(task, mid2, completed=True, finish="tool-calls")
    s.idle(sid)
    assert task.status is TaskStatus.RUNNING


def test_answers_from_before_the_anchor_do_not_count() -> None:
    """A continuation's session holds old answers; only messages after the new anchor count."""
    s = Sim()
    task = running(s)
    assert task.session_id is not None
    old = "msg_000000000001aaaaaaaaaaaaaa"
    s.feed(AssistantMessage(task.session_id, old, "msg_0", task.model, task.agent, completed=True, finish="stop"))
    s.text(task.session_id, old, "stale answer")
    s.idle(task.session_id)
    assert task.status is TaskStatus.RUNNING


def test_an_answer_in_the_same_millisecond_as_the_anchor_counts_by_its_parent() -> None:
    """A message whose parent is the anchor counts even if its id does not sort after it."""
    s = Sim()
    task = running(s)
    sid = task.session_id
    assert sid is not None and task.anchor_message_id is not None
    mid = task.anchor_message_id[:16] + "0" * 14  # same stamp, sorts first
    s.assistant(task, mid)
    s.text(sid, mid, "quick")
    s.assistant(task, mid, completed=True, finish="stop")
    s.idle(sid)
    assert task.status is TaskStatus.COMPLETED and task.result == "quick"


def test_absent_from_a_successful_poll_is_idle() -> None:
    """A child missing from a successful status map is idle and completes once it answered."""
    s = Sim()
    task = running(s)
    s.answer(task, idle=False)
    assert task.status is TaskStatus.RUNNING
    s.polled({"ses_other": StatusType.BUSY})
    assert task.status is TaskStatus.COMPLETED


def test_a_failed_poll_tells_nothing() -> None:
    """A failed status call never completes a task, even one that answered."""
    s = Sim()
    task = running(s)
    s.answer(task, idle=False)
    s.polled(None)
    assert task.status is TaskStatus.RUNNING


def test_busy_in_the_poll_keeps_it_running_and_an_unanswered_absent_child_is_looked_up() -> None:
    """Busy protects the task; absence without an answer asks whether the session still exists (T4)."""
    s = Sim()
    task = running(s)
    assert task.session_id is not None
    s.polled({task.session_id: StatusType.BUSY})
    assert task.status is TaskStatus.RUNNING
    actions = s.polled({})
    assert [a.session_id for a in of(actions, LookupSession)] == [task.session_id]


def test_a_child_with_live_tasks_of_its_own_is_not_quiescent() -> None:
    """The task waits for its child's own tasks, and completes after their news reached the child."""
    s = Sim()
    task = running(s)
    assert task.session_id is not None
    grandchild = s.launch(parent_session_id=task.session_id, depth_of_parent=1, description="inner")
    s.start(grandchild)
    s.answer(task)
    assert task.status is TaskStatus.RUNNING
    s.answer(grandchild)
    assert grandchild.status is TaskStatus.COMPLETED
    assert task.status is TaskStatus.RUNNING  # a notification to the child is still undelivered
    (wake,) = s.parent_idle_and_flush(task.session_id)
    assert wake.no_reply is False
    s.delivered(wake)
    assert task.anchor_message_id == wake.message_id  # the wake is the child's new anchor
    s.answer(task, "final, with the inner result")
    assert task.status is TaskStatus.COMPLETED and task.result == "final, with the inner result"


def test_an_error_seen_before_the_prompt_is_confirmed_is_decided_at_acceptance() -> None:
    """A non-retryable error that arrives while starting fails the task once the prompt is accepted."""
    s = Sim()
    task = s.launch()
    s.created(task)
    s.feed(SessionError(task.session_id, {"name": "APIError", "data": {"message": "bad request", "statusCode": 400}}))
    assert task.status is TaskStatus.STARTING
    s.accepted(task)
    assert task.status is TaskStatus.FAILED


def test_late_events_about_an_ended_task_change_nothing() -> None:
    """After the end, more idles, answers or errors for the child are ignored."""
    s = Sim()
    task = running(s)
    s.answer(task)
    before = task.to_row()
    s.answer(task)
    s.feed(SessionError(task.session_id, "boom"))
    assert task.to_row() == before
