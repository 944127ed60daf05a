"""When P's notifications go out and what each delivery report does (background-tasks §12.4
rules 2, 4 and 6), driven through :mod:`task_sim` with a fake clock.

Written against the mutants mutation testing left alive in the notifier (``scripts/mutation.py``).
"""

from __future__ import annotations

from typing import Any

from task_sim import Deliver, Note, P, PollStatus, Schedule, Sim, of

from baton.events import StatusType, UserMessage
from baton.tasks import Task, TaskStatus
from baton.tasks.events import DeliveryOutcome, DeliveryResult
from baton.tasks.notify import deliver_timer

QUIET_S = 2.0  # spec §3 fixed values: quiet period after a user message
COALESCE_S = 0.05  # spec §3 fixed values: coalescing window


def running(s: Sim, **kw: Any) -> Task:
    task = s.launch(**kw)
    s.start(task)
    return task


def test_an_end_during_p_s_launch_call_waits_for_p_s_idle_without_asking() -> None:
    """Rule 4: P is busy while it is inside the launching tool call, so an end then sends nothing and
    asks for no status; P's idle releases it. The same holds for a later launch after P was idle."""
    s = Sim()
    task = running(s)
    assert of(s.answer(task), PollStatus) == [] and of(s.log, Deliver) == []
    (msg,) = s.parent_idle_and_flush()
    s.delivered(msg)
    again = running(s)  # P calls the tool again: busy again
    out = s.answer(again)
    assert of(out, PollStatus) == [] and of(out, Deliver) == []


def test_more_ends_inside_the_window_keep_the_one_delivery_timer() -> None:
    """Rule 3: the window is timed from the first waiting row; later rows do not re-arm it."""
    s = Sim()
    a, b = running(s), running(s)
    s.status(P, StatusType.IDLE)
    first = s.answer(a)
    assert of(first, Schedule) == [Schedule(deliver_timer(P), s.now + COALESCE_S)]
    s.advance(0.01)
    assert of(s.answer(b), Schedule) == []


def test_a_user_message_while_a_notification_waits_moves_its_timer_to_the_end_of_the_quiet_period() -> None:
    s = Sim()
    task = running(s)
    s.status(P, StatusType.IDLE)
    s.answer(task)
    s.advance(0.01)
    out = s.feed(UserMessage(P, s.next_id(), "prov/parent-model", "build"))
    assert of(out, Schedule) == [Schedule(deliver_timer(P), s.now + QUIET_S)]


def test_a_busy_reply_holds_the_message_until_p_is_idle_without_asking_for_p_s_status() -> None:
    """Rule 6: "busy" means P started a turn: nothing is sent, and no status poll is needed, until
    P's next idle; then the same message goes out again."""
    s = Sim()
    a, b = running(s), running(s)
    s.answer(a)
    (msg,) = s.parent_idle_and_flush()
    assert s.delivered(msg, DeliveryOutcome.BUSY) == []
    s.advance(1)
    out = s.answer(b)
    assert of(out, PollStatus) == [] and of(out, Deliver) == []
    (again, *rest) = s.parent_idle_and_flush()
    assert again.message_id == msg.message_id and rest == []


def test_a_failed_delivery_is_logged_with_its_cause_cut_at_200_characters() -> None:
    s = Sim()
    task = running(s)
    s.answer(task)
    (msg,) = s.parent_idle_and_flush()
    cause = "x" * 300
    out = s.feed(DeliveryResult(P, msg.message_id, DeliveryOutcome.RETRY, cause))
    assert [(n.kind, n.text) for n in of(out, Note)] == [
        ("delivery_retry", f"delivery to {P} failed ({'x' * 200}); retrying in 0.5s")]


def test_a_repeated_failure_report_while_the_retry_waits_changes_nothing() -> None:
    """Only the report of the message in flight counts: a second report of the same failed
    delivery neither logs again nor lengthens the backoff."""
    s = Sim()
    task = running(s)
    s.answer(task)
    (msg,) = s.parent_idle_and_flush()
    s.delivered(msg, DeliveryOutcome.RETRY)
    assert s.delivered(msg, DeliveryOutcome.RETRY) == []
    s.advance(0.5)
    assert [d.message_id for d in of(s.fire_delivery(), Deliver)] == [msg.message_id]


def test_a_child_answering_its_waking_notification_before_the_delivery_report_completes_on_the_report() -> None:
    """§8.3: a baton child with a notification in flight is not quiescent; when the 2xx arrives
    after the child already answered and went idle, the report completes it."""
    s = Sim()
    outer = running(s)
    assert outer.session_id is not None
    inner = running(s, parent_session_id=outer.session_id, depth_of_parent=1)
    s.answer(inner)
    (wake,) = s.parent_idle_and_flush(outer.session_id)
    assert wake.no_reply is False and outer.anchor_message_id == wake.message_id
    s.answer(outer)
    assert outer.status.value == "running"  # the notification is still in flight
    s.delivered(wake)
    assert outer.status is TaskStatus.COMPLETED


def test_a_parent_with_nothing_left_is_forgotten_so_a_later_launch_brings_p_s_present_model() -> None:
    """Rule 5: once P's mailbox is empty and P has no live task, what baton saw of P is dropped;
    the next launch records P's model then, newer than any message seen before."""
    s = Sim()
    first = running(s, parent_model="prov/first")
    s.feed(UserMessage(P, s.next_id(), "prov/chosen", "plan"))
    s.advance(QUIET_S)
    s.answer(first)
    (msg,) = s.parent_idle_and_flush()
    assert (msg.agent, msg.model) == ("plan", "prov/chosen")
    s.delivered(msg)
    second = running(s, parent_agent="build", parent_model="prov/second")
    s.answer(second)
    (later,) = s.parent_idle_and_flush()
    assert (later.agent, later.model) == ("build", "prov/second")


def test_an_end_while_a_message_is_in_flight_goes_out_when_that_one_is_delivered() -> None:
    """Rule 2: one delivery per parent at a time; the next message follows the 2xx of the one before."""
    s = Sim()
    a, b, c = running(s), running(s), running(s)
    s.answer(a)
    (first,) = s.parent_idle_and_flush()
    assert of(s.answer(b), Deliver) == []
    s.advance(0.1)
    (second,) = of(s.delivered(first), Deliver)
    assert second.message_id != first.message_id and b.id in second.text
    assert second.no_reply is True and c.status is TaskStatus.RUNNING  # c still runs: context only


def test_a_launch_marks_p_busy_again_while_p_still_has_tasks() -> None:
    """Rule 4: P known idle, then P calls the tool again: P is busy inside that call, so an end
    then waits for P's idle without asking for P's status."""
    s = Sim()
    long, short = running(s), running(s)
    s.answer(short)
    (msg,) = s.parent_idle_and_flush()
    s.delivered(msg)
    assert long.status is TaskStatus.RUNNING and long.session_id is not None
    s.polled({long.session_id: StatusType.BUSY})  # P is absent from the poll: idle
    again = running(s)
    out = s.answer(again)
    assert of(out, PollStatus) == [] and of(out, Deliver) == []
    (later,) = s.parent_idle_and_flush()
    assert again.id in later.text
