"""What a launch records and answers (background-tasks §5, §6, §15): the row a restart needs, the
journal line, the tool's result; a child created too late is aborted; an end's attempt and
cascade records.

Written against the mutants mutation testing left alive in ``Scheduler.launch``,
``Results.on_child_created`` and ``Lifecycle.end``.
"""

from __future__ import annotations

import re
from typing import Any

from task_sim import T0, AbortChild, Note, P, Sim, of

from baton.events import SessionError
from baton.tasks import CancelRequest, EndReason, LaunchResult, Task
from baton.tasks.events import ChildCreated

RATE_LIMIT = {"name": "APIError", "data": {"message": "Rate limit exceeded", "statusCode": 429}}


def running(s: Sim, **kw: Any) -> Task:
    task = s.launch(**kw)
    s.start(task)
    return task


def test_the_launch_row_holds_what_a_restart_needs() -> None:
    s = Sim()
    task = s.launch(parent_message_id="msg_call", depth_of_parent=1)
    assert re.fullmatch(r"bg_[0-9a-f]{8}", task.id)
    row = s.rows[task.id]
    assert (row["id"], row["parent_message_id"], row["depth"], row["created_at"]) == (task.id, "msg_call", 2, T0)


def test_the_launch_is_journalled_with_its_agent_and_model() -> None:
    s = Sim()
    _, actions = s.launch_raw(parent_model=None)
    (note,) = [n for n in of(actions, Note) if n.kind == "task_launch"]
    task_id = note.data["task"]
    assert note == Note(P, "task_launch", f"task {task_id} launched (explore on default model)",
                        {"task": task_id, "key": "explore", "mode": "background"})


def test_the_tool_result_of_a_foreground_launch_continuing_a_session() -> None:
    """§6.5: continuing an ended task's session reuses the session (and its directory)."""
    s = Sim()
    first = running(s, directory="/work/p")
    s.answer(first)
    result, _ = s.launch_raw(session_id=first.session_id, background=False)
    assert isinstance(result, LaunchResult)
    assert (result.foreground, result.session_id, result.model) == (True, first.session_id, "prov/parent-model")
    again = s.sched.task(result.task_id)
    assert again is not None and again.directory == "/work/p"


def test_a_child_created_after_its_task_ended_is_aborted_in_its_directory() -> None:
    """§6.6: too late to be used; a creation for a task baton does not know is aborted too."""
    s = Sim()
    task = s.launch(directory="/work/p")
    s.sched.cancel(CancelRequest(task_id=task.id, caller_session_id=P), s.now)
    assert s.feed(ChildCreated(task.id, "ses_late")) == [AbortChild(task.id, "ses_late", "/work/p")]
    assert s.feed(ChildCreated("bg_unknown", "ses_stray")) == [AbortChild("bg_unknown", "ses_stray", None)]


def test_a_completed_retry_records_the_failed_attempt_s_error_only() -> None:
    s = Sim({"agents": {"explore": {"model": "prov/a", "fallback_models": ["prov/b"]}}})
    task = running(s)
    s.feed(SessionError(task.session_id, RATE_LIMIT))
    s.abort_done(task)
    s.accepted(task)
    s.answer(task)
    first, last = s.rows[task.id]["attempts"]
    assert (first["model"], last["model"], last["error"]) == ("prov/a", "prov/b", None)
    assert first["error"] is not None


def test_an_end_counts_every_descendant_it_cancelled() -> None:
    """§11 step 6: the cascade count covers each cancelled child and what each cancelled below it."""
    s = Sim()
    outer = running(s)
    assert outer.session_id is not None
    for _ in range(2):
        running(s, parent_session_id=outer.session_id, depth_of_parent=1)
    s.sched.cancel(CancelRequest(task_id=outer.id, caller_session_id=P), s.now)
    assert outer.end_reason is EndReason.CANCELLED_BY_PARENT and outer.cascaded == 2
