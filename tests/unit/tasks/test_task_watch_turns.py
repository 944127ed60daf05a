"""Which of a child's messages and parts speak for its task (background-tasks §7, §8, §9 T5):
the newest message after the anchor, text that is really the answer, each call judged once.

Written against the mutants mutation testing left alive in the child watch (``scripts/mutation.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from task_sim import P, Sim

from baton.events import AssistantMessage, PartUpdated
from baton.tasks import CancelRequest, EndReason, Task, TaskStatus
from baton.tasks.watch import call_signature

BAD_REQUEST = {"name": "APIError", "data": {"message": "Bad request", "statusCode": 400}}


def running(s: Sim, **kw: Any) -> Task:
    task = s.launch(**kw)
    s.start(task)
    return task


def text_part(s: Sim, task: Task, mid: str, pid: str, text: str) -> list[Any]:
    assert task.session_id is not None
    part = {"id": pid, "sessionID": task.session_id, "messageID": mid, "type": "text", "text": text}
    return s.feed(PartUpdated(task.session_id, mid, pid, "text", text, part))


def tool_update(s: Sim, task: Task, pid: str, status: str | None, inp: dict[str, Any]) -> None:
    assert task.session_id is not None
    mid = s.next_id()
    part: dict[str, Any] = {"id": pid, "sessionID": task.session_id, "messageID": mid, "type": "tool",
                            "tool": "grep"}
    if status is not None:
        part["state"] = {"status": status, "input": inp}
    s.feed(PartUpdated(task.session_id, mid, pid, "tool", None, part))


def test_a_call_s_signature_is_its_tool_and_its_input_as_compact_sorted_json() -> None:
    part = {"tool": "grep", "state": {"status": "running", "input": {"q": "x", "path": ".", "n": [1, 2]}}}
    assert call_signature(part) == 'grep\x00{"n":[1,2],"path":".","q":"x"}'


def test_a_call_input_json_cannot_hold_is_signed_by_its_text() -> None:
    when = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    part = {"tool": "remind", "state": {"status": "completed", "input": {"at": when}}}
    assert call_signature(part) == 'remind\x00{"at":"2026-11-30 12:00:00+00:00"}'


def test_a_call_input_whose_keys_cannot_be_sorted_is_signed_by_its_repr() -> None:
    part = {"tool": "odd", "state": {"status": "error", "input": {1: "a", "b": 2}}}
    assert call_signature(part) == "odd\x00{1: 'a', 'b': 2}"


def test_a_text_update_after_its_message_completed_still_answers() -> None:
    """§8.2: opencode may update a part after the message's completion; the answer stands."""
    s = Sim()
    task = running(s)
    mid = s.next_id()
    s.assistant(task, mid)
    text_part(s, task, mid, "prt_1", "The loader is")
    s.assistant(task, mid, completed=True, finish="stop")
    text_part(s, task, mid, "prt_1", "The loader is in config.py.")
    assert task.session_id is not None
    s.idle(task.session_id)
    assert task.status is TaskStatus.COMPLETED and task.result == "The loader is in config.py."


def test_a_late_error_of_an_earlier_message_of_the_turn_is_not_the_task_s_failure() -> None:
    """Only the newest message after the anchor speaks for the task: once a newer message began
    (its text seen first), an error reported for an older one changes nothing."""
    s = Sim()
    task = running(s)
    assert task.session_id is not None
    older, newer = s.next_id(), s.next_id()
    s.assistant(task, older)
    text_part(s, task, newer, "prt_n", "The loader")
    assert s.feed(AssistantMessage(task.session_id, older, task.anchor_message_id, task.model, task.agent,
                                   completed=True, error=BAD_REQUEST)) == []
    assert task.status.value == "running"
    s.assistant(task, newer, completed=True, finish="stop")
    s.idle(task.session_id)
    assert task.status is TaskStatus.COMPLETED and task.result == "The loader"


def test_an_error_of_a_message_before_the_anchor_is_not_the_task_s_failure() -> None:
    """§8.1: messages before the anchor belong to an earlier turn (a continued session's history)."""
    s = Sim()
    task = running(s)
    assert task.session_id is not None and task.anchor_message_id is not None
    before = "msg_0" + task.anchor_message_id[5:]
    assert before < task.anchor_message_id
    assert s.feed(AssistantMessage(task.session_id, before, None, task.model, task.agent, completed=True,
                                   error=BAD_REQUEST)) == []
    assert task.status is TaskStatus.RUNNING and task.error is None


def test_an_empty_text_part_is_no_answer() -> None:
    """§8.2: the answer needs non-empty text; a finished message with only empty text completes nothing."""
    s = Sim()
    task = running(s)
    assert task.session_id is not None
    mid = s.next_id()
    s.assistant(task, mid)
    text_part(s, task, mid, "prt_e", "")
    s.assistant(task, mid, completed=True, finish="stop")
    assert s.idle(task.session_id) == []
    assert task.status is TaskStatus.RUNNING
    s.sched.cancel(CancelRequest(task_id=task.id, caller_session_id=P), s.now)
    assert task.result is None


def test_the_prompt_s_own_text_part_is_not_taken_for_a_partial_answer() -> None:
    """opencode streams the parts of baton's prompt too; they are not the child's output, so a task
    ended before it wrote anything has no result."""
    s = Sim()
    task = running(s)
    assert task.anchor_message_id is not None
    text_part(s, task, task.anchor_message_id, "prt_prompt", "Find the config loader.")
    s.sched.cancel(CancelRequest(task_id=task.id, caller_session_id=P), s.now)
    assert task.end_reason is EndReason.CANCELLED_BY_PARENT and task.result is None


def test_a_call_updated_from_running_to_completed_is_one_call_of_a_run() -> None:
    """§9 T5: identical calls, each seen running then completed, count once each in the run."""
    s = Sim({"background_task": {"circuitBreaker": {"consecutiveThreshold": 5}}})
    task = running(s)
    for pid in ("prt_a", "prt_b", "prt_c"):
        tool_update(s, task, pid, "running", {"q": "x"})
        tool_update(s, task, pid, "completed", {"q": "x"})
    assert task.stop_reason is None and task.tool_calls == 3
    tool_update(s, task, "prt_d", "completed", {"q": "x"})
    tool_update(s, task, "prt_e", "completed", {"q": "x"})
    assert task.stop_reason is EndReason.RUNAWAY


def test_a_call_without_a_known_input_is_not_judged_even_after_a_run() -> None:
    """§9 T5: identical calls made before the prompt was confirmed are counted into the run; a later
    call whose input is not known yet is not judged against it (the next known one is)."""
    s = Sim({"background_task": {"circuitBreaker": {"consecutiveThreshold": 5}}})
    task = s.launch()
    s.created(task)
    for i in range(5):
        tool_update(s, task, f"prt_{i}", "completed", {"q": "x"})
    s.accepted(task)
    assert task.status is TaskStatus.RUNNING
    tool_update(s, task, "prt_unknown", None, {})
    assert task.stop_reason is None and task.tool_calls == 6
    tool_update(s, task, "prt_known", "running", {"q": "x"})
    assert task.stop_reason is EndReason.RUNAWAY
