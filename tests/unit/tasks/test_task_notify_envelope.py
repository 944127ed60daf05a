"""What a parent notification is sent with, and what becomes of it when P goes (background-tasks
§12.4 rules 5–6, §12.5), driven through :mod:`task_sim` with a fake clock.

Written against the mutants mutation testing left alive in the notifier (``scripts/mutation.py``).
"""

from __future__ import annotations

from typing import Any

from task_sim import Deliver, P, Sim, of

from baton.events import AssistantMessage, StatusType, UserMessage
from baton.tasks import NotifyState, Task
from baton.tasks.events import DeliveryOutcome

BACKOFF_FIRST_S = 0.5  # spec §3 fixed values: delivery retry backoff starts at 0.5 s, doubles
QUIET_S = 2.0  # spec §3 fixed values: quiet period after a user message before a parent may be woken


def running(s: Sim, **kw: Any) -> Task:
    task = s.launch(**kw)
    s.start(task)
    return task


def test_the_notification_takes_p_s_present_agent_and_model() -> None:
    """Rule 5: P's agent and model as its newest message shows them (compaction turns aside),
    else those recorded at launch; P's directory goes with it."""
    s = Sim()
    first = running(s, parent_agent="build", parent_model="prov/parent-model", directory="/work/p")
    second = running(s, directory="/work/p")  # every launch under P knows P's directory
    s.answer(first)
    (at_launch,) = s.parent_idle_and_flush()
    assert (at_launch.agent, at_launch.model, at_launch.directory) == ("build", "prov/parent-model", "/work/p")
    s.delivered(at_launch)
    s.feed(UserMessage(P, s.next_id(), "prov/chosen", "plan"))
    s.feed(AssistantMessage(P, s.next_id(), None, "prov/fallen-back", "plan"))  # P's own fallback switch
    s.feed(UserMessage(P, s.next_id(), "prov/summariser", "compaction"))
    s.feed(AssistantMessage(P, s.next_id(), None, "prov/summariser", "compaction"))
    s.advance(2.1)  # the user's quiet period
    s.answer(second)
    (present,) = s.parent_idle_and_flush()
    assert (present.agent, present.model) == ("plan", "prov/fallen-back")


def test_tools_go_with_the_notification_only_when_p_is_a_baton_child() -> None:
    """Rule 5: a notification to a baton child carries that child's stored tools (it can never
    widen them); one to an ordinary session carries none, and the child's directory is used."""
    s = Sim()
    outer = running(s, directory="/work/outer")
    assert outer.session_id is not None
    inner = running(s, parent_session_id=outer.session_id, depth_of_parent=1)
    s.answer(inner)
    (to_child,) = s.parent_idle_and_flush(outer.session_id)
    assert to_child.tools == outer.tools and to_child.tools is not None
    assert to_child.directory == "/work/outer"
    s.delivered(to_child)
    s.answer(outer)
    (to_root,) = s.parent_idle_and_flush()
    assert to_root.tools is None


def test_a_deleted_parent_s_undelivered_notification_is_dropped() -> None:
    """§12.5: P deleted with a notification still owed: its rows are dropped, nothing is sent."""
    s = Sim()
    task = running(s)
    s.status(P, StatusType.BUSY)
    s.answer(task)
    assert task.notify is NotifyState.PENDING
    s.deleted(P)
    assert task.notify is NotifyState.SUPPRESSED
    assert [row["state"] for row in s.outbox.values()] == ["dropped"]
    s.status(P, StatusType.IDLE)
    s.advance(5)
    assert of(s.fire_delivery(), Deliver) == []


def test_a_delivery_result_for_another_message_changes_nothing() -> None:
    """Only the report of the message in flight settles it; a stray or repeated report is ignored."""
    s = Sim()
    task = running(s)
    s.answer(task)
    (sent,) = s.parent_idle_and_flush()
    stray = Deliver(P, "msg_not_sent", "x")
    assert s.delivered(stray) == []
    assert task.notify is NotifyState.PENDING
    s.delivered(sent)
    assert task.notify is NotifyState.DELIVERED
    assert s.delivered(sent) == []


def test_the_backoff_starts_again_after_a_delivery_went_through() -> None:
    """Rule 6: 0.5 s doubling while P cannot be reached; a success resets it for the next message."""
    s = Sim()
    first, second = running(s), running(s)
    s.answer(first)
    (msg,) = s.parent_idle_and_flush()
    s.delivered(msg, DeliveryOutcome.RETRY)
    s.advance(BACKOFF_FIRST_S)
    (again,) = of(s.fire_delivery(), Deliver)
    s.delivered(again)
    s.answer(second)
    (wake,) = s.parent_idle_and_flush()
    s.delivered(wake, DeliveryOutcome.RETRY)
    s.advance(BACKOFF_FIRST_S)
    assert len(of(s.fire_delivery(), Deliver)) == 1


def test_a_user_message_while_a_notification_waits_holds_it_and_sets_its_agent_and_model() -> None:
    """Rule 4: the user writing to P while a notification waits in its window holds it for the 2 s
    quiet period from that message; rule 5: the user's message is P's newest, so its agent and
    model go with the notification."""
    s = Sim()
    task = running(s, parent_agent="build", parent_model="prov/parent-model")
    s.status(P, StatusType.IDLE)
    s.answer(task)
    s.advance(0.01)
    s.feed(UserMessage(P, s.next_id(), "prov/chosen", "plan"))
    s.advance(0.05)
    assert of(s.fire_delivery(), Deliver) == []
    s.advance(QUIET_S - 0.05)
    (msg,) = of(s.fire_delivery(), Deliver)
    assert (msg.agent, msg.model) == ("plan", "prov/chosen")


def test_a_user_message_without_agent_or_model_keeps_the_known_ones() -> None:
    """Rule 5: a message of P that carries no agent or model does not erase the ones known."""
    s = Sim()
    task = running(s)
    s.feed(AssistantMessage(P, s.next_id(), None, "prov/fallen-back", "plan"))
    s.feed(UserMessage(P, s.next_id(), None, None))
    s.advance(QUIET_S)
    s.answer(task)
    (msg,) = s.parent_idle_and_flush()
    assert (msg.agent, msg.model) == ("plan", "prov/fallen-back")
