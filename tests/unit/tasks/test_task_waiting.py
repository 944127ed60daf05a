"""Tasks whose whole chain is cooling wait in their queue for the first reset (README "Parking").

The task half of parking: instead of failing ``chain_exhausted``, a task waits on the model whose
cooldown ends first — not granted before then, woken on time, kept across a restart, and not
taken for a stuck queue while it waits. Beyond ``baton.max_park_seconds`` it fails as before.
"""

from __future__ import annotations

from typing import Any

from task_sim import T0, Sim

from baton.actions import Note, Schedule
from baton.cooldowns import Cooldowns
from baton.events import SessionError
from baton.tasks import EndReason, TaskStatus
from baton.tasks.actions import CreateChild, PromptChild, TaskAction
from baton.tasks.waiting import wake_timer

CHAIN: dict[str, Any] = {"agents": {"explore": {"model": "prov/a", "fallback_models": ["prov/b"]}}}
RATE_LIMIT = {"name": "APIError", "data": {"message": "Rate limit exceeded", "statusCode": 429}}


def of(actions: list[TaskAction], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def waiting_task(extra: dict[str, Any] | None = None) -> tuple[Sim, Any, list[TaskAction]]:
    """prov/b cools for 10 minutes; the task runs on prov/a, which fails with a 429 (60 s cooldown)."""
    s = Sim({**CHAIN, **(extra or {})}, cooldowns=Cooldowns([("prov/b", T0 + 600)]))
    task = s.launch()
    s.start(task)
    out = s.feed(SessionError(task.session_id, RATE_LIMIT))
    return s, task, out


def test_a_task_with_every_model_cooling_waits_instead_of_failing() -> None:
    s, task, out = waiting_task()
    assert task.status is TaskStatus.RETRYING and task.end_reason is None
    assert (task.model, task.not_before) == ("prov/a", T0 + 60)
    assert Schedule(wake_timer(task.id), T0 + 60) in out
    (note,) = [n for n in of(out, Note) if n.kind == "task_parked"]
    assert note.data == {"task": task.id, "from": "prov/a", "to": "prov/a", "until": T0 + 60}
    assert "every model of its chain is cooling" in note.text


def test_a_waiting_task_is_not_granted_before_the_reset_and_is_woken_on_time() -> None:
    s, task, _ = waiting_task()
    assert of(s.abort_done(task), PromptChild) == []  # the abort landed and the slot is free: it still waits
    s.advance(59)
    assert of(s.tick(), PromptChild) == []
    s.advance(1)
    (prompt,) = of(s.fire(wake_timer(task.id)), PromptChild)
    assert (prompt.model, prompt.session_id, prompt.message_id) == ("prov/a", task.session_id, task.anchor_message_id)
    assert task.status is TaskStatus.STARTING and task.not_before is None


def test_a_launch_with_every_model_cooling_waits_for_the_first_reset() -> None:
    s = Sim(CHAIN, cooldowns=Cooldowns([("prov/a", T0 + 300), ("prov/b", T0 + 120)]))
    task = s.launch()
    assert task.status is TaskStatus.QUEUED and (task.model, task.not_before) == ("prov/b", T0 + 120)
    assert of(s.log, CreateChild) == []
    s.advance(120)
    assert [c.task_id for c in of(s.fire(wake_timer(task.id)), CreateChild)] == [task.id]


def test_a_wait_beyond_the_cap_fails_the_task_as_before() -> None:
    s, task, _ = waiting_task({"runtime_fallback": {"cooldown_seconds": 3600}, "baton": {"max_park_seconds": 300}})
    assert task.status is TaskStatus.FAILED and task.end_reason is EndReason.CHAIN_EXHAUSTED


def test_parking_off_fails_the_task_as_before() -> None:
    s, task, _ = waiting_task({"baton": {"park_when_exhausted": False}})
    assert task.status is TaskStatus.FAILED and task.end_reason is EndReason.CHAIN_EXHAUSTED


def test_a_waiting_task_keeps_waiting_across_a_restart() -> None:
    s, task, _ = waiting_task()
    s.abort_done(task)
    s.advance(10)
    out = s.restart()
    again = s.sched.task(task.id)
    assert again is not None and again.not_before == T0 + 60 and again.status is TaskStatus.RETRYING
    assert Schedule(wake_timer(task.id), T0 + 60) in out and of(out, PromptChild) == []
    s.advance(50)
    assert [p.task_id for p in of(s.fire(wake_timer(task.id)), PromptChild)] == [task.id]


def test_the_queue_timeout_counts_from_the_reset_not_from_the_queueing() -> None:
    """A 40-minute wait (taskTtlMs is 30) is not a stuck queue; 30 minutes past the reset is."""
    s = Sim({**CHAIN, "runtime_fallback": {"cooldown_seconds": 2400}}, cooldowns=Cooldowns([("prov/b", T0 + 2400)]))
    task = s.launch()
    s.start(task)
    s.feed(SessionError(task.session_id, RATE_LIMIT))
    s.abort_done(task)
    assert task.not_before == T0 + 2400
    s.sched.timeouts.check_queues(T0 + 2300, [])
    assert task.status is TaskStatus.RETRYING
    s.sched.timeouts.check_queues(T0 + 2400 + 1801, [])
    assert task.status is TaskStatus.CANCELLED and task.end_reason is EndReason.QUEUE_STUCK
    assert task.error == "no slot of prov/a was granted or used for 30m 1s"


def test_a_task_retry_passes_over_a_pricier_model() -> None:
    """The spend guard holds for tasks too: with max_cost_ratio 1, a retry skips a model 10x the price."""
    from baton.catalog import Catalog, ModelInfo
    from baton.events import CatalogSeen
    from baton.models import model_key

    s = Sim({"agents": {"explore": {"model": "prov/a", "fallback_models": ["prov/b", "other/c"]}},
             "baton": {"max_cost_ratio": 1.0}})
    models = (ModelInfo("prov/a", 1, 4), ModelInfo("prov/b", 10, 40), ModelInfo("other/c", 1, 4))
    s.feed(CatalogSeen(Catalog({model_key(m.model): m for m in models})))
    task = s.launch()
    s.start(task)
    s.feed(SessionError(task.session_id, RATE_LIMIT))
    assert task.model == "other/c"


def test_baton_tasks_shows_when_a_waiting_task_resumes() -> None:
    from rich.console import Console

    from baton.cli_views import tasks_table

    s, task, _ = waiting_task()
    s.abort_done(task)
    (view,) = s.sched.snapshot(s.now)
    assert view.waiting_until == T0 + 60
    console = Console(record=True, width=200)
    console.print(tasks_table([vars_of(view)], now=s.now))
    assert "waits for the reset at" in console.export_text()
    s.advance(60)
    s.fire(wake_timer(task.id))
    (view,) = s.sched.snapshot(s.now)
    assert view.waiting_until is None


def vars_of(view: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(view)
