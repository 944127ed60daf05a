"""Children deleted, gone or silent, the backup poll, compaction and P's own turns
(background-tasks §7–§9, §12), driven through :mod:`task_sim` with a fake clock.

Written against the mutants mutation testing left alive in the stream handlers and results
(``scripts/mutation.py``); each test names the rule it holds.
"""

from __future__ import annotations

from typing import Any

from task_sim import AbortChild, Deliver, P, PollStatus, PromptChild, Sim, of

from baton.events import AssistantMessage, SessionError, StatusType, UserMessage
from baton.tasks import EndReason, NotifyState, Task, TaskStatus
from baton.tasks.events import HostRestarted, ParentCompacted, SessionLookup

STALE_S = 180.0
GONE_S = 60.0  # sessionGoneTimeoutMs default
CLEANUP_S = 600.0  # taskCleanupDelayMs default
TICK_S = 3.0


def running(s: Sim, **kw: Any) -> Task:
    task = s.launch(**kw)
    s.start(task)
    return task


def test_a_child_deleted_outside_baton_cancels_its_task_and_p_hears_of_it() -> None:
    """§4.3, §12.1: the child deleted in opencode ends the task cancelled (child deleted), notified."""
    s = Sim()
    task = running(s)
    assert task.session_id is not None
    s.deleted(task.session_id)
    assert task.status is TaskStatus.CANCELLED and task.end_reason is EndReason.CHILD_DELETED
    assert task.notify is NotifyState.PENDING
    (msg,) = s.parent_idle_and_flush()
    assert task.id in msg.text


def test_a_timed_out_child_seen_deleted_ends_with_its_timeout() -> None:
    """§9 rule 5: a child observed deleted is as good as a confirmed abort: the timeout is the end."""
    s = Sim()
    task = running(s)
    assert task.session_id is not None
    s.advance(STALE_S + 1)
    s.tick()
    assert task.stop_reason is EndReason.STALE
    s.deleted(task.session_id)
    assert task.status is TaskStatus.CANCELLED and task.end_reason is EndReason.STALE


def test_streamed_text_is_activity() -> None:
    """§7.2: a delta is activity; the stale clock runs from the last one."""
    s = Sim()
    task = running(s)
    assert task.session_id is not None
    s.advance(100)
    s.text(task.session_id, s.next_id(), "thinking out loud")
    assert task.last_activity_at == s.now
    s.advance(STALE_S + 1)
    s.tick()
    assert task.stop_reason is EndReason.STALE


def test_t4_fails_a_child_missing_for_the_whole_gone_timeout() -> None:
    """§9 T4: 404s on checks spread over ``sessionGoneTimeoutMs`` (first to last) fail the task."""
    s = Sim()
    task = running(s)
    sid = task.session_id
    assert sid is not None
    s.feed(SessionLookup(sid, False))
    s.advance(GONE_S - 1)
    s.feed(SessionLookup(sid, False))
    assert task.status is TaskStatus.RUNNING
    s.advance(1)
    s.feed(SessionLookup(sid, False))
    assert task.status is TaskStatus.FAILED and task.end_reason is EndReason.SESSION_GONE
    assert task.error == f"opencode answered 404 for {sid} over 1m 0s"


def test_the_backup_poll_is_asked_again_once_the_last_one_reported() -> None:
    """§8.7: at most one status call at a time; after its report (even a failed one) the next tick asks again."""
    s = Sim()
    running(s)
    s.advance(TICK_S)
    assert len(of(s.tick(), PollStatus)) == 1
    s.polled(None)
    s.advance(TICK_S)
    assert len(of(s.tick(), PollStatus)) == 1


def test_p_busy_in_the_poll_holds_its_notification() -> None:
    """§12.4 rule 4: the poll's status of P counts like the stream's: busy holds, absent is idle."""
    s = Sim()
    task = running(s)
    assert task.session_id is not None
    s.answer(task)
    resumed = s.restart()  # P's status unknown: baton asks the poll
    assert of(resumed, PollStatus)
    assert of(s.polled({P: StatusType.BUSY}), Deliver) == []
    s.advance(1)
    assert len(of(s.polled({}), Deliver)) == 1


def test_compaction_lists_live_tasks_and_those_ended_within_the_cleanup_delay() -> None:
    """§12.5: the list P gets after compaction holds its live tasks and the recently ended ones
    (``taskCleanupDelayMs``, the limit included), not older ones."""
    s = Sim()
    old, recent, live = s.launch(description="old"), s.launch(description="recent"), s.launch(description="live")
    for task in (old, recent, live):
        s.start(task)
    s.answer(old)
    s.delivered(s.parent_idle_and_flush()[0])
    s.advance(100)
    s.answer(recent)
    s.delivered(s.parent_idle_and_flush()[0])
    assert recent.ended_at is not None
    s.now = recent.ended_at + CLEANUP_S  # recent ended exactly the delay ago, old 100 s before it
    s.feed(ParentCompacted(P))
    (msg,) = s.parent_idle_and_flush()
    assert recent.id in msg.text and live.id in msg.text and old.id not in msg.text


def test_a_failed_turn_of_p_is_no_user_stop() -> None:
    """§12.4 rule 4: only P's abort turns the wake into context; P failing otherwise still gets woken."""
    s = Sim()
    task = running(s)
    s.answer(task)
    s.feed(AssistantMessage(P, s.next_id(), None, "prov/parent-model", "build",
                            error={"name": "APIError", "data": {"message": "Too many requests", "statusCode": 429}}))
    (wake,) = s.parent_idle_and_flush()
    assert wake.no_reply is False


def test_an_echo_of_a_child_s_own_prompt_is_no_user_message_to_it() -> None:
    """§6 rule 3: baton knows its own prompts by their message ids: the re-sent prompt a child
    shows again (a fallback retry re-sends the anchor) does not hold the child's notifications."""
    s = Sim()
    outer = running(s)
    assert outer.session_id is not None and outer.anchor_message_id is not None
    inner = running(s, parent_session_id=outer.session_id, depth_of_parent=1)
    s.status(outer.session_id, StatusType.IDLE)
    s.answer(inner)
    s.feed(UserMessage(outer.session_id, outer.anchor_message_id, "prov/parent-model", "explore"))
    s.advance(0.06)
    assert len(of(s.fire_delivery(outer.session_id), Deliver)) == 1


def test_text_from_before_a_continuation_s_anchor_is_not_its_partial_answer() -> None:
    """§8.2, §11 step 1: a continued session's old text is neither the new task's answer nor, when
    it fails, its partial answer."""
    s = Sim()
    old = s.launch()
    s.start(old, "ses_kept")
    s.answer(old, "the first task's answer")
    new = s.launch(session_id="ses_kept", subagent_type=None)
    s.start(new, "ses_kept")
    before_anchor = "msg_000000000001aaaaaaaaaaaaaa"
    s.text("ses_kept", before_anchor, "an old message's late text")
    s.feed(SessionError("ses_kept", {"name": "APIError", "data": {"message": "bad request", "statusCode": 400}}))
    assert new.status is TaskStatus.FAILED and new.result is None
    assert of(s.log, AbortChild)  # (the completed first task's child was aborted, as always)


def test_after_opencode_restarted_an_unanswered_child_is_prompted_again_once() -> None:
    """§15.5: a running child idle without an answer after opencode restarted gets its last prompt
    again, same message id; the second time it fails, naming the restart. A busy child is left be."""
    s = Sim()
    task = running(s)
    busy = running(s)
    assert task.session_id is not None and busy.session_id is not None
    s.feed(HostRestarted())
    s.idle(task.session_id)
    (again,) = of(s.polled({busy.session_id: StatusType.BUSY}), PromptChild)
    assert (again.task_id, again.message_id, again.text) == (task.id, task.anchor_message_id, task.prompt)
    s.accepted(task)
    s.feed(HostRestarted())
    s.idle(task.session_id)
    out = s.polled({busy.session_id: StatusType.BUSY})
    assert of(out, PromptChild) == []
    assert task.status is TaskStatus.FAILED and task.end_reason is EndReason.HOST_RESTARTED
    assert task.error == "the child was idle without an answer after opencode restarted"
    assert busy.status is TaskStatus.RUNNING and busy.prompt_resends == 0


def test_after_opencode_restarted_an_answered_child_completes() -> None:
    """§15.5 concerns lost prompts only: a child that had answered is complete, not prompted again."""
    s = Sim()
    task = running(s)
    assert task.session_id is not None
    s.answer(task, idle=False)
    s.feed(HostRestarted())
    out = s.polled({})
    assert of(out, PromptChild) == [] and task.status is TaskStatus.COMPLETED
