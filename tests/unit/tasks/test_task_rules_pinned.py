"""Task rules that no other unit test pinned: each test here fails when its rule is broken.

The tests drive the pure scheduler through :mod:`task_sim` (``Scheduler.handle``/``launch`` and
the other public methods) with a fake clock, and assert on the actions and the public task
record only. Each was checked by breaking its rule in the code, seeing the test fail, and
restoring the code. Spec references (§n) are to ``docs/behaviour/background-tasks.md``.
"""

from __future__ import annotations

from typing import Any

import pytest
from task_sim import T0, AbortChild, Deliver, P, Sim, of

from baton.actions import SaveCooldown
from baton.cooldowns import Cooldowns
from baton.events import PartUpdated, SessionError, StatusType
from baton.tasks import EndReason, Task, TaskStatus
from baton.tasks.actions import RefreshActivity
from baton.tasks.events import ActivityRefreshed, PermissionPending

QUIET_S = 2.0  # spec §3 fixed values: the quiet period after a user message to P
WINDOW_S = 0.06  # just past the 50 ms coalescing window
NO_PROGRESS_S = 1800.0  # messageStalenessTimeoutMs default
CHAIN = {"agents": {"explore": {"model": "prov/a", "fallback_models": ["prov/b", "other/c"]}}}
RATE_LIMIT: dict[str, Any] = {"name": "APIError", "data": {"message": "Rate limit exceeded", "statusCode": 429}}


def running(s: Sim) -> Task:
    task = s.launch()
    s.start(task)
    return task


@pytest.mark.parametrize("echo", ["before the delivery result", "after the delivery result"])
def test_the_echo_of_baton_s_own_notification_is_not_a_user_message(echo: str) -> None:
    """§12.4 rule 4: only the *user's* messages hold delivery for 2 s.

    opencode echoes every delivered notification back as a user message on P (before or after
    the prompt call returns). Taken for the user's own, it would hold P's next notification
    for the quiet period; ignored, the next one goes out once the 50 ms window has passed.
    """
    s = Sim()
    first, last = running(s), running(s)
    s.answer(first)
    (context,) = s.parent_idle_and_flush()
    assert context.no_reply is True
    if echo == "before the delivery result":
        s.user(P, context.message_id)
        s.delivered(context)
    else:
        s.delivered(context)
        s.user(P, context.message_id)
    s.answer(last)
    s.advance(WINDOW_S)
    (wake,) = of(s.fire_delivery(), Deliver)
    assert wake.no_reply is False and last.id in wake.text


def test_a_real_user_message_does_hold_the_next_notification() -> None:
    """The control for the echo test: the user's own message to P holds delivery for the quiet period."""
    s = Sim()
    first, last = running(s), running(s)
    s.answer(first)
    s.delivered(s.parent_idle_and_flush()[0])
    s.user(P)
    s.answer(last)
    s.advance(WINDOW_S)
    assert of(s.fire_delivery(), Deliver) == []
    s.advance(QUIET_S)
    assert len(of(s.fire_delivery(), Deliver)) == 1


def test_no_progress_timeout_pauses_while_a_permission_request_is_open() -> None:
    """§9 rule 3: T2 does not run while the busy child waits for a permission answer.

    The clock counts again from the answer: the task is judged no sooner than the full
    ``messageStalenessTimeoutMs`` after it (first a refresh of its activity, then the stop).
    """
    s = Sim()
    task = running(s)
    child = task.session_id
    assert child is not None
    s.status(child, StatusType.BUSY)
    s.feed(PermissionPending(child, True))
    s.advance(NO_PROGRESS_S * 2)
    paused = s.tick()
    assert of(paused, RefreshActivity) == [] and of(paused, AbortChild) == []
    s.feed(PermissionPending(child, False))
    answered_at = s.now
    s.advance(NO_PROGRESS_S - 1)
    assert of(s.tick(), RefreshActivity) == []
    s.advance(2)
    (refresh,) = of(s.tick(), RefreshActivity)
    (abort,) = of(s.feed(ActivityRefreshed(refresh.task_id, answered_at - 5)), AbortChild)
    assert abort.session_id == child
    s.abort_done(task)
    assert task.status is TaskStatus.CANCELLED and task.end_reason is EndReason.NO_PROGRESS


@pytest.mark.parametrize("kind", ["tool", "reasoning"])
def test_a_tool_or_reasoning_part_alone_does_not_complete_a_task(kind: str) -> None:
    """§8.2: only a finished message with text is an answer; a tool call or reasoning is not,
    even in a message that finished with ``stop``. (The fallback's watchdog counts them: a
    different question, runtime-fallback §6.6.)"""
    s = Sim()
    task = running(s)
    child = task.session_id
    assert child is not None
    mid, pid = s.next_id(), s.next_id("prt")
    s.assistant(task, mid)
    part: dict[str, Any] = {"id": pid, "sessionID": child, "messageID": mid, "type": kind}
    if kind == "tool":
        part |= {"tool": "read", "state": {"status": "completed", "input": {"path": "x"}, "output": "data"}}
    else:
        part |= {"text": "The loader must be in config.py."}
    s.feed(PartUpdated(child, mid, pid, kind, part.get("text"), part))
    s.assistant(task, mid, completed=True, finish="stop")
    s.idle(child)
    assert task.status is TaskStatus.RUNNING
    assert of(s.log, AbortChild) == []
    s.answer(task, "It is in config.py.")
    assert task.status is TaskStatus.COMPLETED and task.result == "It is in config.py."


def test_cooldown_seconds_zero_records_no_cooldown_and_skips_no_cooling_model() -> None:
    """runtime-fallback §6.1.4, shared by tasks (§10.3): with ``cooldown_seconds: 0`` a child's
    retryable failure enters nothing in the table, and the next model is taken although the
    table says it is cooling."""
    cooldowns = Cooldowns([("prov/b", T0 + 600)])  # e.g. learned before the config changed
    s = Sim({**CHAIN, "runtime_fallback": {"cooldown_seconds": 0}}, cooldowns=cooldowns)
    task = running(s)
    assert task.model == "prov/a"
    error = {**RATE_LIMIT, "data": {**RATE_LIMIT["data"], "responseHeaders": {"retry-after": "600"}}}
    actions = s.feed(SessionError(task.session_id, error))
    assert of(actions, SaveCooldown) == []
    assert not cooldowns.is_cooling("prov/a", s.now)
    assert task.model == "prov/b" and task.status is not TaskStatus.FAILED
