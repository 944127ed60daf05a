"""The notification carries P's variant with P's model (background-tasks §12.4 rule 5): as P's
newest message chose it, else as recorded at launch; a model P did not choose has no variant.

Mutation testing found the notifier always sent ``variant: None``.
"""

from __future__ import annotations

from typing import Any

from task_sim import P, Sim

from baton.events import AssistantMessage, UserMessage
from baton.tasks import Task

QUIET_S = 2.0  # spec §3 fixed values: quiet period after a user message


def running(s: Sim, **kw: Any) -> Task:
    task = s.launch(**kw)
    s.start(task)
    return task


def test_the_notification_carries_the_variant_recorded_at_launch() -> None:
    s = Sim()
    task = running(s, parent_model="prov/parent-model", parent_variant="high")
    s.answer(task)
    (msg,) = s.parent_idle_and_flush()
    assert (msg.model, msg.variant) == ("prov/parent-model", "high")


def test_the_launch_variant_is_kept_across_a_restart() -> None:
    s = Sim()
    task = running(s, parent_variant="high")
    assert s.rows[task.id]["parent_variant"] == "high"
    s.restart()
    s.answer(task)
    (msg,) = s.parent_idle_and_flush()
    assert (msg.model, msg.variant) == ("prov/parent-model", "high")


def test_p_answering_with_its_chosen_model_keeps_the_variant() -> None:
    s = Sim()
    task = running(s, parent_variant="high")
    s.feed(AssistantMessage(P, s.next_id(), None, "prov/parent-model", "build"))
    s.answer(task)
    (msg,) = s.parent_idle_and_flush()
    assert (msg.agent, msg.model, msg.variant) == ("build", "prov/parent-model", "high")


def test_p_answering_with_another_model_drops_the_variant() -> None:
    """P's own fallback moved it to a model the variant was not chosen for: no variant is sent."""
    s = Sim()
    task = running(s, parent_variant="high")
    s.feed(AssistantMessage(P, s.next_id(), None, "prov/fallen-back", "build"))
    s.feed(AssistantMessage(P, s.next_id(), None, "prov/fallen-back", "build"))
    s.answer(task)
    (msg,) = s.parent_idle_and_flush()
    assert (msg.model, msg.variant) == ("prov/fallen-back", None)


def test_a_user_message_sets_model_and_variant_together() -> None:
    """The user's newest message names a model and its variant; naming another model without a variant
    leaves none (the variant known was another model's)."""
    s = Sim()
    first, second = running(s, parent_variant="high"), running(s)
    notifier = s.sched.state.notifier
    notifier.on_user(P, s.next_id(), "plan", "prov/chosen", s.now, [], variant="max")
    s.advance(QUIET_S)
    s.answer(first)
    (msg,) = s.parent_idle_and_flush()
    assert (msg.agent, msg.model, msg.variant) == ("plan", "prov/chosen", "max")
    s.delivered(msg)
    notifier.on_user(P, s.next_id(), None, "prov/other", s.now, [])
    s.advance(QUIET_S)
    s.answer(second)
    (msg,) = s.parent_idle_and_flush()
    assert (msg.agent, msg.model, msg.variant) == ("plan", "prov/other", None)


def test_a_user_message_without_a_model_keeps_model_and_variant() -> None:
    s = Sim()
    task = running(s, parent_variant="high")
    s.feed(UserMessage(P, s.next_id(), None, "plan"))
    s.advance(QUIET_S)
    s.answer(task)
    (msg,) = s.parent_idle_and_flush()
    assert (msg.agent, msg.model, msg.variant) == ("plan", "prov/parent-model", "high")


def test_a_user_message_naming_the_same_model_without_a_variant_keeps_the_variant() -> None:
    """A user message that names P's model and no variant: the one known for that model stays."""
    s = Sim()
    task = running(s, parent_variant="high")
    s.feed(UserMessage(P, s.next_id(), "prov/parent-model", "plan"))
    s.advance(QUIET_S)
    s.answer(task)
    (msg,) = s.parent_idle_and_flush()
    assert (msg.agent, msg.model, msg.variant) == ("plan", "prov/parent-model", "high")


def test_the_variant_of_p_s_newest_prompt_goes_with_its_model() -> None:
    """The scheduler hands the user message's variant (opencode's ``model.variant``) to the notifier."""
    s = Sim()
    task = running(s, parent_variant="high")
    s.feed(UserMessage(P, s.next_id(), "prov/other-model", "build", variant="low"))
    s.advance(QUIET_S)
    s.answer(task)
    (msg,) = s.parent_idle_and_flush()
    assert (msg.model, msg.variant) == ("prov/other-model", "low")
