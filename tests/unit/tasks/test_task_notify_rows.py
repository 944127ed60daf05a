"""What a restart needs of the notifier (background-tasks §12.4 rule 7, §15): the outbox rows'
order, the rows of a message whose lead row was lost, and the task rows a delivery settles.

Written against the mutants mutation testing left alive in the notifier (``scripts/mutation.py``).
"""

from __future__ import annotations

from task_sim import Deliver, P, Sim, of

from baton.events import StatusType
from baton.tasks import NotifyState


def test_outbox_rows_are_numbered_from_one_and_go_on_after_a_restart() -> None:
    """The rows' ``seq`` orders P's updates; a restart continues after the highest one stored."""
    s = Sim()
    first, second, third = s.launch(), s.launch(), s.launch()
    for task in (first, second, third):
        s.start(task)
    s.status(P, StatusType.BUSY)
    s.answer(first)
    s.answer(second)
    s.restart()
    s.answer(third)
    assert [(row["id"], row["seq"]) for row in s.outbox.values()] == [
        (f"nt_{first.id}", 1), (f"nt_{second.id}", 2), (f"nt_{third.id}", 3)]


def test_a_frozen_message_whose_lead_row_was_lost_is_sent_again_as_context_under_its_id() -> None:
    """Rule 7: after a restart a composed message goes out under the same id (checked first). If the
    row holding its envelope is gone, the rest is composed again as a context-only update with P's
    agent, model and variant as recorded at its newest launch."""
    s = Sim()
    first = s.launch(description="first job")
    second = s.launch(description="second job", parent_agent="plan", parent_model="prov/launch",
                      parent_variant="high", directory="/work/p")
    s.start(first, "ses_a")
    s.start(second, "ses_b")
    s.status(P, StatusType.IDLE)
    s.answer(first)
    s.advance(0.01)
    s.answer(second)
    s.advance(0.06)
    (sent,) = of(s.fire_delivery(), Deliver)
    assert sent.no_reply is False
    del s.outbox[f"nt_{first.id}"]  # the lead row, which held the envelope
    s.advance(1)
    s.restart()
    (again,) = of(s.status(P, StatusType.IDLE), Deliver)
    assert again == Deliver(
        parent_session_id=P, message_id=sent.message_id, no_reply=True, agent="plan", model="prov/launch",
        variant="high", tools=None, directory="/work/p", check_first=True, ended_at=second.ended_at,
        text="\n".join([
            "[baton] Background task update (for context; no reply needed).", "",
            f'Task {second.id} "second job" (agent explore on prov/launch): completed.',
            "Ran 0.0s.",
            "Child session: ses_b (continue it by passing session_id).",
            f'Result: baton_background_output(task_id="{second.id}").', "",
            "None of your background tasks is running now.",
        ]))


def test_the_task_rows_record_the_closed_batch_and_the_delivery() -> None:
    """The waking message closes the batch and a 2xx marks the tasks delivered, in their saved rows:
    a restart sends nothing again."""
    s = Sim()
    a, b = s.launch(), s.launch()
    s.start(a)
    s.start(b)
    s.status(P, StatusType.IDLE)
    s.answer(a)
    s.answer(b)
    s.advance(0.06)
    (wake,) = of(s.fire_delivery(), Deliver)
    assert [s.rows[t.id]["batch_closed"] for t in (a, b)] == [wake.message_id] * 2
    assert [s.rows[t.id]["notify"] for t in (a, b)] == [NotifyState.PENDING.value] * 2
    s.delivered(wake)
    assert [s.rows[t.id]["notify"] for t in (a, b)] == [NotifyState.DELIVERED.value] * 2
    assert [row["state"] for row in s.outbox.values()] == ["delivered", "delivered"]
    s.restart()
    s.status(P, StatusType.IDLE)
    s.advance(5)
    assert of(s.fire_delivery(), Deliver) == []
