"""Parent notifications: context-only vs waking, coalescing, readiness, retry (spec §12)."""

from __future__ import annotations

from task_sim import Deliver, P, PollStatus, SaveOutbox, Schedule, Sim, of

from baton.events import AssistantMessage, StatusType
from baton.tasks import CancelRequest, NotifyState
from baton.tasks.events import DeliveryOutcome, ParentCompacted
from baton.tasks.notify import BACKOFF_FIRST_S, COALESCE_S, QUIET_S, deliver_timer


def answer_prompt(s: Sim, prompt_id: str) -> None:
    """P's model answers the user message ``prompt_id`` (the turn completed)."""
    s.feed(AssistantMessage(P, s.next_id(), prompt_id, "prov/parent-model", "build", completed=True))


def started(s: Sim, n: int) -> list:  # type: ignore[type-arg]
    tasks = [s.launch(description=f"job {i}") for i in range(n)]
    for task in tasks:
        s.start(task)
    return tasks


def test_an_end_while_others_run_is_context_only_and_the_last_one_wakes() -> None:
    """First end → noReply message; last end → one waking message summarising the whole batch."""
    s = Sim()
    a, b = started(s, 2)
    s.answer(a)
    (first,) = s.parent_idle_and_flush()
    assert first.no_reply is True and a.id in first.text and "1 of your background task(s) are still running" \
        in first.text
    s.delivered(first)
    s.feed(AssistantMessage(b.session_id or "", s.next_id(), b.anchor_message_id, b.model, b.agent,
                            error={"name": "APIError", "data": {"message": "bad request", "statusCode": 400}}))
    (wake,) = s.parent_idle_and_flush()
    assert wake.no_reply is False
    assert "All your background tasks have ended (2" in wake.text and "Completed (1)" in wake.text
    assert "Did not complete (1)" in wake.text and "bad request" in wake.text
    s.delivered(wake)
    assert a.notify is NotifyState.DELIVERED and b.notify is NotifyState.DELIVERED
    assert a.batch_closed == b.batch_closed == wake.message_id


def test_simultaneous_ends_are_coalesced_into_one_message() -> None:
    """Ends inside the 50 ms window go out as one message; exactly one wakes P."""
    s = Sim()
    tasks = started(s, 3)
    s.status(P, StatusType.IDLE)
    for task in tasks:
        s.answer(task)
        s.advance(0.01)
    assert of(s.log, Deliver) == []
    s.advance(COALESCE_S)
    (wake,) = of(s.fire_delivery(), Deliver)
    assert wake.no_reply is False and all(t.id in wake.text for t in tasks)
    s.delivered(wake)
    assert len(of(s.log, Deliver)) == 1


def test_a_busy_parent_holds_everything_until_it_is_idle() -> None:
    """While P is busy nothing is delivered; its next idle releases the message."""
    s = Sim()
    (task,) = started(s, 1)
    s.status(P, StatusType.BUSY)
    s.answer(task)
    s.advance(5)
    assert of(s.fire_delivery(), Deliver) == []
    (msg,) = s.parent_idle_and_flush()
    assert msg.parent_session_id == P


def test_a_user_message_holds_delivery_for_the_quiet_period() -> None:
    """No waking message within 2 s of a user message to P."""
    s = Sim()
    (task,) = started(s, 1)
    s.status(P, StatusType.IDLE)
    s.user(P)
    s.answer(task)
    s.advance(COALESCE_S + 0.01)
    assert of(s.fire_delivery(), Deliver) == []
    timers = [a for a in s.log if isinstance(a, Schedule) and a.key == deliver_timer(P)]
    assert timers[-1].at >= s.now - COALESCE_S - 0.01 + QUIET_S - 0.1
    s.advance(QUIET_S)
    assert len(of(s.fire_delivery(), Deliver)) == 1


def test_failed_delivery_is_retried_with_backoff_under_the_same_message_id() -> None:
    """A retryable failure re-sends the same envelope after 0.5 s, then 1 s; a 2xx settles it."""
    s = Sim()
    (task,) = started(s, 1)
    s.answer(task)
    (first,) = s.parent_idle_and_flush()
    actions = s.delivered(first, DeliveryOutcome.RETRY)
    (timer,) = of(actions, Schedule)
    assert timer.at == s.now + BACKOFF_FIRST_S
    s.advance(BACKOFF_FIRST_S)
    (second,) = of(s.fire_delivery(), Deliver)
    assert second == first
    actions = s.delivered(second, DeliveryOutcome.RETRY)
    assert of(actions, Schedule)[0].at == s.now + 2 * BACKOFF_FIRST_S
    s.advance(1)
    (third,) = of(s.fire_delivery(), Deliver)
    s.delivered(third)
    assert task.notify is NotifyState.DELIVERED
    assert all(row["state"] == "delivered" for row in s.outbox.values())


def test_a_busy_reply_waits_for_the_next_idle() -> None:
    """opencode saying P is busy holds the message until P's next idle."""
    s = Sim()
    (task,) = started(s, 1)
    s.answer(task)
    (first,) = s.parent_idle_and_flush()
    s.delivered(first, DeliveryOutcome.BUSY)
    s.advance(10)
    assert of(s.fire_delivery(), Deliver) == []
    (again,) = s.parent_idle_and_flush()
    assert again.message_id == first.message_id


def test_the_outbox_row_is_saved_before_the_message_goes_out() -> None:
    """The row with its message id is saved in an earlier action than the Deliver that sends it."""
    s = Sim()
    (task,) = started(s, 1)
    s.answer(task)
    s.status(P, StatusType.IDLE)
    s.advance(COALESCE_S)
    actions = s.fire_delivery()
    saves = [i for i, a in enumerate(actions) if isinstance(a, SaveOutbox)
             and any(r["message_id"] for r in a.rows)]
    (deliver_at,) = [i for i, a in enumerate(actions) if isinstance(a, Deliver)]
    assert saves and saves[0] < deliver_at


def test_tasks_cancelled_by_the_parent_are_not_notified_and_do_not_wake_alone() -> None:
    """P's own cancel gives no notification; a batch of only such tasks gives no waking message."""
    s = Sim()
    a, b = started(s, 2)
    s.sched.cancel(CancelRequest(all=True, caller_session_id=P), s.now)
    assert a.notify is NotifyState.SUPPRESSED and b.notify is NotifyState.SUPPRESSED
    assert s.parent_idle_and_flush() == [] and s.outbox == {}
    assert a.batch_closed == "silent"


def test_a_self_cancelled_last_task_still_closes_a_batch_with_real_news() -> None:
    """When P cancels its last task after another one ended, P is still woken once for the batch."""
    s = Sim()
    a, b = started(s, 2)
    s.answer(a)
    (ctx,) = s.parent_idle_and_flush()
    s.delivered(ctx)
    s.sched.cancel(CancelRequest(task_id=b.id, caller_session_id=P), s.now)
    (wake,) = s.parent_idle_and_flush()
    assert wake.no_reply is False and a.id in wake.text and b.id in wake.text


def test_cancel_by_the_user_is_notified() -> None:
    """``baton tasks cancel`` is a user action, so the parent hears about it."""
    s = Sim()
    (task,) = started(s, 1)
    s.sched.cancel(CancelRequest(task_id=task.id, by="user"), s.now)
    (msg,) = s.parent_idle_and_flush()
    assert "cancelled by the user" in msg.text


def test_a_waking_check_at_delivery_downgrades_when_new_tasks_were_launched() -> None:
    """If P launched more work before the wake went out, it goes out context-only and the batch stays open."""
    s = Sim()
    (a,) = started(s, 1)
    s.answer(a)
    s.launch(description="more")
    (msg,) = s.parent_idle_and_flush()
    assert msg.no_reply is True and a.batch_closed is None


def test_user_abort_of_the_parent_turns_the_wake_into_context() -> None:
    """If the user stopped P since the batch began, the summary goes in as context and P is not woken."""
    s = Sim()
    (a,) = started(s, 1)
    s.answer(a)
    s.feed(AssistantMessage(P, s.next_id(), None, "prov/parent-model", "build",
                            error={"name": "MessageAbortedError", "data": {"message": "aborted"}}))
    (msg,) = s.parent_idle_and_flush()
    assert msg.no_reply is True and "All your background tasks have ended" in msg.text


def test_a_parent_gone_drops_its_rows() -> None:
    """A 404 for P drops its notifications; nothing is retried."""
    s = Sim()
    (a,) = started(s, 1)
    s.answer(a)
    (msg,) = s.parent_idle_and_flush()
    s.delivered(msg, DeliveryOutcome.PARENT_GONE)
    assert a.notify is NotifyState.SUPPRESSED
    assert all(row["state"] == "dropped" for row in s.outbox.values())
    s.advance(60)
    assert of(s.fire_delivery(), Deliver) == []


def test_a_deleted_parent_cancels_its_tasks_silently() -> None:
    """Deleting P cancels its live tasks (and their children) and sends nothing."""
    s = Sim()
    a, b = started(s, 2)
    assert a.session_id is not None
    inner = s.launch(parent_session_id=a.session_id, depth_of_parent=1)
    s.deleted(P)
    assert {t.status.value for t in (a, b, inner)} == {"cancelled"}
    assert a.cascaded == 1 and s.outbox == {}


def test_an_unknown_parent_status_is_polled_before_delivering() -> None:
    """After a restart P's status is unknown: the scheduler asks for a poll instead of guessing."""
    s = Sim()
    (a,) = started(s, 1)
    s.answer(a)
    resumed = s.restart()
    assert of(resumed, Deliver) == [] and len(of(resumed, PollStatus)) == 1
    s.advance(1)
    actions = s.polled({})
    assert len(of(actions, Deliver)) == 1


def test_compaction_lists_live_and_recent_tasks_as_context() -> None:
    """After P is compacted it gets a context-only list of its tasks with their sessions."""
    s = Sim()
    a, b = started(s, 2)
    s.answer(a)
    s.feed(ParentCompacted(P))
    (msg,) = s.parent_idle_and_flush()
    assert msg.no_reply is True and a.id in msg.text and b.id in msg.text and "compaction" in msg.text


def test_fifty_tasks_give_a_bounded_waking_text() -> None:
    """The waking summary of 50 tasks stays well under 16 KB."""
    s = Sim({"background_task": {"defaultConcurrency": 0}})
    tasks = started(s, 50)
    s.status(P, StatusType.IDLE)
    for task in tasks:
        s.answer(task, "x" * 1000)
    s.advance(COALESCE_S)
    (wake,) = of(s.fire_delivery(), Deliver)
    assert wake.no_reply is False and len(wake.text) < 16_000 and "and 20 more" in wake.text


def test_a_user_message_already_answered_does_not_hold_delivery() -> None:
    """Issue 10 §4: the quiet period protects a turn the user just started; once P answered that
    message, the turn is under way or over, and the notice goes as soon as P is idle."""
    s = Sim()
    (task,) = started(s, 1)
    s.status(P, StatusType.IDLE)
    asked = s.next_id()
    s.user(P, asked)
    answer_prompt(s, asked)
    s.answer(task)
    s.advance(COALESCE_S + 0.01)
    assert len(of(s.fire_delivery(), Deliver)) == 1  # 50 ms after the end, not 2 s after the prompt


def test_an_answer_to_an_older_prompt_does_not_lift_the_quiet_period() -> None:
    """A late update of the previous turn's answer says nothing of the prompt the user just sent."""
    s = Sim()
    (task,) = started(s, 1)
    s.status(P, StatusType.IDLE)
    older = s.next_id()
    s.user(P, older)
    s.user(P)
    answer_prompt(s, older)
    s.answer(task)
    s.advance(COALESCE_S + 0.01)
    assert of(s.fire_delivery(), Deliver) == []
    s.advance(QUIET_S)
    assert len(of(s.fire_delivery(), Deliver)) == 1


def test_an_update_of_the_prompt_already_answered_does_not_start_a_new_quiet_period() -> None:
    """opencode updates a user message again at its turn's end (its summary): not a new prompt."""
    s = Sim()
    (task,) = started(s, 1)
    s.status(P, StatusType.IDLE)
    asked = s.next_id()
    s.user(P, asked)
    answer_prompt(s, asked)
    s.user(P, asked)  # the same message, updated
    s.answer(task)
    s.advance(COALESCE_S + 0.01)
    assert len(of(s.fire_delivery(), Deliver)) == 1


def test_the_launching_prompt_updated_after_the_launch_is_not_a_new_prompt() -> None:
    """The prompt P answers by launching came before P had a mailbox; its update at the turn's end
    (opencode's summary) must not hold the notice for 2 s (seen on a cold opencode in CI)."""
    s = Sim()
    asked = s.next_id()
    s.user(P, asked)  # before any task: P has no mailbox yet
    (task,) = started(s, 1)
    s.user(P, asked)  # the same prompt, updated once P's turn ends
    s.status(P, StatusType.IDLE)
    s.answer(task)
    s.advance(COALESCE_S + 0.01)
    assert len(of(s.fire_delivery(), Deliver)) == 1


def test_a_message_carries_when_the_earliest_task_it_reports_ended() -> None:
    """The notification-latency metric starts at the task's end, not at the message's composition."""
    s = Sim()
    a, b = started(s, 2)
    s.status(P, StatusType.IDLE)
    s.answer(a)
    ended_a = s.now
    s.advance(0.01)
    s.answer(b)
    s.advance(COALESCE_S)
    (wake,) = of(s.fire_delivery(), Deliver)
    assert a.id in wake.text and b.id in wake.text
    assert wake.ended_at == a.ended_at == ended_a and b.ended_at is not None and b.ended_at > ended_a
