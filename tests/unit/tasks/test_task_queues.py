"""Concurrency keys, limits and FIFO queues."""

from __future__ import annotations

from task_sim import CreateChild, Sim, of

from baton.tasks import CancelRequest, TaskStatus
from baton.tasks.queues import concurrency_key, limit_for

LIMITS = {
    "background_task": {
        "defaultConcurrency": 2,
        "providerConcurrency": {" Prov ": 3},
        "modelConcurrency": {"PROV/Special": 1, "prov/free": 0},
    }
}


def test_limit_precedence_is_model_then_provider_then_default() -> None:
    """A model entry beats its provider's entry, which beats the default; map keys are normalised."""
    settings = Sim(LIMITS).config.background_task
    assert limit_for(settings, "prov/special") == 1
    assert limit_for(settings, "prov/other") == 3
    assert limit_for(settings, "elsewhere/x") == 2
    assert limit_for(Sim().config.background_task, "any/model") == 5


def test_keys_are_trimmed_and_lower_cased_and_fall_back_to_the_agent() -> None:
    """``Prov/Special`` and `` prov/special `` share one key; no model means the agent name is the key."""
    assert concurrency_key(" Prov/Special ", "explore") == "prov/special"
    assert concurrency_key(None, "Explore") == "explore"


def test_slots_per_key_are_limited_and_the_rest_queue_in_fifo_order() -> None:
    """With a limit of 1 the first task starts and the next ones queue in launch order."""
    s = Sim(LIMITS)
    tasks = [s.launch(parent_model="prov/special", description=f"t{i}") for i in range(3)]
    assert [t.status for t in tasks] == [TaskStatus.STARTING, TaskStatus.QUEUED, TaskStatus.QUEUED]
    assert [s.sched.index.position(t) for t in tasks[1:]] == [1, 2]


def test_zero_means_unlimited() -> None:
    """A limit of 0 never queues."""
    s = Sim(LIMITS)
    tasks = [s.launch(parent_model="prov/free") for _ in range(12)]
    assert all(t.status is TaskStatus.STARTING for t in tasks)


def test_keys_are_independent() -> None:
    """A full key does not hold back another key."""
    s = Sim(LIMITS)
    s.launch(parent_model="prov/special")
    s.launch(parent_model="prov/special")
    other = s.launch(parent_model="prov/other")
    assert other.status is TaskStatus.STARTING


def test_a_freed_slot_goes_to_the_head_in_the_same_step() -> None:
    """When a running task ends, the same action list starts the key's next waiter, before any delivery."""
    s = Sim(LIMITS)
    first = s.launch(parent_model="prov/special", description="first")
    second = s.launch(parent_model="prov/special", description="second")
    third = s.launch(parent_model="prov/special", description="third")
    s.start(first)
    actions = s.answer(first)
    assert second.status is TaskStatus.STARTING and third.status is TaskStatus.QUEUED
    (create,) = of(actions, CreateChild)
    assert create.task_id == second.id


def test_cancelling_a_queued_task_removes_exactly_that_one() -> None:
    """Cancelling the middle waiter leaves the others in order and starts nothing."""
    s = Sim(LIMITS)
    tasks = [s.launch(parent_model="prov/special", description=f"t{i}") for i in range(4)]
    report, actions = s.sched.cancel(CancelRequest(task_id=tasks[2].id, caller_session_id=tasks[2].parent_session_id),
                                     s.now)
    assert tasks[2].status is TaskStatus.CANCELLED
    assert list(s.sched.index.queues["prov/special"]) == [tasks[1].id, tasks[3].id]
    assert not of(actions, CreateChild)


def test_a_lowered_limit_applies_at_the_next_grant_without_preemption() -> None:
    """Running tasks keep their slots; the queue waits until use drops below the new limit."""
    s = Sim({"background_task": {"defaultConcurrency": 2}})
    a, b, c = (s.launch() for _ in range(3))
    s.start(a)
    s.start(b)
    s.config = s.sched.config = s.config.model_copy(
        update={"background_task": s.config.background_task.model_copy(update={"default_concurrency": 1})})
    s.sched.settings = s.sched.index.settings = s.config.background_task
    s.answer(a)
    assert b.status is TaskStatus.RUNNING and c.status is TaskStatus.QUEUED
    s.answer(b)
    assert c.status is TaskStatus.STARTING
