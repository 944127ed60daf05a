"""What baton reads from a child's stream: the captured answer, status activity, tool calls
(background-tasks §7, §8, §9 T5), driven through :mod:`task_sim` with a fake clock.

Written against the mutants mutation testing left alive in the child watch (``scripts/mutation.py``).
"""

from __future__ import annotations

from typing import Any

import pytest
from task_sim import Sim, of

from baton.events import AssistantMessage, PartDelta, PartUpdated, StatusType
from baton.tasks import EndReason, Task, TaskStatus
from baton.tasks.actions import RefreshActivity

CAP = 256 * 1024  # spec §3 fixed values: captured answer at most 256 KiB
CUT_NOTE = "[baton: the answer was cut at 256 KiB]"
STALE_S = 180.0
NO_PROGRESS_S = 1800.0


def running(s: Sim, **kw: Any) -> Task:
    task = s.launch(**kw)
    s.start(task)
    return task


def text_part(s: Sim, task: Task, mid: str, pid: str, text: str, **extra: Any) -> None:
    """A text part as ``message.part.updated`` carries it: the part's whole text so far."""
    assert task.session_id is not None
    part = {"id": pid, "sessionID": task.session_id, "messageID": mid, "type": "text", "text": text, **extra}
    s.feed(PartUpdated(task.session_id, mid, pid, "text", text, part))


def finish(s: Sim, task: Task, mid: str) -> None:
    assert task.session_id is not None
    s.assistant(task, mid, completed=True, finish="stop")
    s.idle(task.session_id)


def test_the_answer_is_the_part_s_latest_text_plus_its_deltas() -> None:
    """A part update carries the whole text so far (it replaces), a delta appends."""
    s = Sim()
    task = running(s)
    assert task.session_id is not None
    mid = s.next_id()
    s.assistant(task, mid)
    text_part(s, task, mid, "prt_1", "The loader")
    text_part(s, task, mid, "prt_1", "The loader is in")
    s.feed(PartDelta(task.session_id, mid, "prt_1", "text", " config.py."))
    s.feed(PartDelta(task.session_id, mid, "prt_1", "reasoning", " (not this)"))
    finish(s, task, mid)
    assert task.status is TaskStatus.COMPLETED and task.result == "The loader is in config.py."


def test_a_synthetic_text_part_is_no_answer() -> None:
    """§8.2: text opencode adds itself (``synthetic``) is not the child's answer."""
    s = Sim()
    task = running(s)
    mid = s.next_id()
    s.assistant(task, mid)
    text_part(s, task, mid, "prt_1", "[tool output summarised]", synthetic=True)
    finish(s, task, mid)
    assert task.status is TaskStatus.RUNNING


@pytest.mark.parametrize("how", ["part", "deltas"])
def test_the_captured_answer_is_cut_at_256_kib_with_a_note(how: str) -> None:
    """§3 fixed values: at most 256 KiB of the answer is kept, and the result says it was cut;
    an answer of exactly 256 KiB is kept whole."""
    for size, cut in ((CAP, False), (CAP + 10, True)):
        s = Sim()
        task = running(s)
        assert task.session_id is not None
        mid = s.next_id()
        s.assistant(task, mid)
        if how == "part":
            text_part(s, task, mid, "prt_1", "x" * (size - 5))
            text_part(s, task, mid, "prt_1", "x" * size)  # the same part grown: replaced, not added
        else:
            text_part(s, task, mid, "prt_1", "")
            for _ in range(size // 1024):
                s.feed(PartDelta(task.session_id, mid, "prt_1", "text", "x" * 1024))
            s.feed(PartDelta(task.session_id, mid, "prt_1", "text", "x" * (size % 1024)))
        finish(s, task, mid)
        assert task.result is not None
        assert task.result.startswith("x" * CAP)
        assert task.result.endswith(CUT_NOTE) is cut
        assert len(task.result) == CAP + (len("\n\n" + CUT_NOTE) if cut else 0)


def test_a_change_of_status_to_busy_is_activity_a_repeat_or_an_idle_is_not() -> None:
    """§7.2: activity is a change to busy or retry; the same status again, or idle, is not."""
    s = Sim()
    task = running(s)
    assert task.session_id is not None
    s.advance(100)
    s.status(task.session_id, StatusType.BUSY)
    busy_at = s.now
    s.advance(1000)
    s.status(task.session_id, StatusType.BUSY)  # the poll saying busy again
    assert task.last_activity_at == busy_at
    s.advance(NO_PROGRESS_S - 1000 + 1)
    assert of(s.tick(), RefreshActivity)  # T2 counts from the change, not from the repeat

    idle = Sim()
    quiet = running(idle)
    assert quiet.session_id is not None
    idle.advance(100)
    idle.idle(quiet.session_id)
    idle.advance(STALE_S - 100 + 1)
    idle.tick()
    assert quiet.stop_reason is EndReason.STALE  # the idle did not reset the stale clock


def test_an_idle_before_the_child_works_again_does_not_complete_its_later_answer() -> None:
    """§8.1: the idle must come after the answer's turn: a busy in between cancels the earlier idle."""
    s = Sim()
    task = running(s)
    assert task.session_id is not None
    s.idle(task.session_id)
    s.status(task.session_id, StatusType.BUSY)
    s.answer(task, idle=False)
    assert task.status is TaskStatus.RUNNING
    s.idle(task.session_id)
    assert task.status is TaskStatus.COMPLETED


def tool_update(s: Sim, task: Task, mid: str, pid: str, tool: str, status: str, inp: dict[str, Any]) -> None:
    assert task.session_id is not None
    part = {"id": pid, "sessionID": task.session_id, "messageID": mid, "type": "tool", "tool": tool,
            "state": {"status": status, "input": inp}}
    s.feed(PartUpdated(task.session_id, mid, pid, "tool", None, part))


def test_a_tool_call_counts_once_across_its_updates() -> None:
    """§7.4: each tool part id adds one to ``tool_calls``, however often it is updated."""
    s = Sim()
    task = running(s)
    mid = s.next_id()
    for status in ("pending", "running", "completed"):
        tool_update(s, task, mid, "prt_t1", "grep", status, {"q": "x"})
    tool_update(s, task, mid, "prt_t2", "read", "running", {"path": "a"})
    assert (task.tool_calls, task.last_tool) == (2, "read")


def test_identical_calls_compare_tool_and_input_as_canonical_json() -> None:
    """§9 T5: the same tool with the same input, key order aside, five times in a row is a loop;
    another tool with that input breaks the run, and a call is judged once its input is known."""
    s = Sim({"background_task": {"circuitBreaker": {"consecutiveThreshold": 5}}})
    task = running(s)
    mid = s.next_id()
    inputs = [{"q": "x", "path": "."}, {"path": ".", "q": "x"}] * 2
    for i, inp in enumerate(inputs):
        tool_update(s, task, mid, f"prt_p{i}", "grep", "pending", inp)  # not yet a call
        tool_update(s, task, mid, f"prt_p{i}", "grep", "running", inp)
    tool_update(s, task, mid, "prt_other", "glob", "running", {"q": "x", "path": "."})
    for i, inp in enumerate(inputs):
        tool_update(s, task, mid, f"prt_q{i}", "grep", "completed", inp)
    assert task.stop_reason is None  # four in a row since the other tool
    tool_update(s, task, mid, "prt_q9", "grep", "completed", {"path": ".", "q": "x"})
    assert task.stop_reason is EndReason.RUNAWAY
    assert task.error == "5 identical grep calls in a row"


def test_a_late_error_of_the_model_the_task_left_neither_fails_nor_completes_it() -> None:
    """§10: after a fallback retry, an error reported for the old model's message is stale, and
    that message (with text, finished) is no answer of the task either."""
    s = Sim({"agents": {"explore": {"model": "prov/a", "fallback_models": ["prov/b"]}}})
    task = running(s)
    assert task.session_id is not None
    old = s.next_id()
    s.assistant(task, old)
    s.text(task.session_id, old, "half an answer from a")
    s.status(task.session_id, StatusType.RETRY, "Rate limit exceeded, retrying in 5s")
    assert task.model == "prov/b"
    s.abort_done(task)
    s.accepted(task)
    s.feed(AssistantMessage(task.session_id, old, task.anchor_message_id, "prov/a", task.agent, completed=True,
                            finish="stop", error={"name": "APIError", "data": {"message": "bad request"}}))
    s.idle(task.session_id)
    assert task.status is TaskStatus.RUNNING
    s.answer(task, "the answer from b")
    assert task.status is TaskStatus.COMPLETED and task.result == "the answer from b"


def test_a_pending_call_s_empty_input_is_not_what_is_compared() -> None:
    """§9 T5: opencode shows a call ``pending`` with an empty input before the input is known; five
    different reads that each start that way are no loop of identical calls."""
    s = Sim({"background_task": {"circuitBreaker": {"consecutiveThreshold": 5}}})
    task = running(s)
    mid = s.next_id()
    for i in range(5):
        tool_update(s, task, mid, f"prt_r{i}", "read", "pending", {})
        tool_update(s, task, mid, f"prt_r{i}", "read", "running", {"path": f"file{i}.py"})
    assert task.stop_reason is None and task.tool_calls == 5


def test_a_tool_part_without_a_state_is_counted_but_never_compared() -> None:
    """A tool part whose ``state`` is missing is a call (§7.4) but cannot be judged identical (§9 T5)."""
    s = Sim({"background_task": {"circuitBreaker": {"consecutiveThreshold": 5}}})
    task = running(s)
    assert task.session_id is not None
    mid = s.next_id()
    for i in range(6):
        part = {"id": f"prt_s{i}", "sessionID": task.session_id, "messageID": mid, "type": "tool", "tool": "read"}
        s.feed(PartUpdated(task.session_id, mid, f"prt_s{i}", "tool", None, part))
    assert task.stop_reason is None and (task.tool_calls, task.last_tool) == (6, "read")


def test_the_cap_counts_every_text_part_of_the_answer() -> None:
    """§3 fixed values: 256 KiB is the cap of the whole answer, however many parts it comes in."""
    s = Sim()
    task = running(s)
    mid = s.next_id()
    s.assistant(task, mid)
    for i, letter in enumerate("abcd"):
        text_part(s, task, mid, f"prt_{i}", letter * (100 * 1024))
    finish(s, task, mid)
    assert task.result == "a" * (100 * 1024) + "b" * (100 * 1024) + "c" * (56 * 1024) + "\n\n" + CUT_NOTE
