"""The scheduler's own bookkeeping, seen from outside (background-tasks §7, §9, §10, §15): one
tick armed while slots are held, activity saved once, only slot holders read from their child,
and the spend guard a task's agent sets for its retries.

Written against the mutants mutation testing left alive in ``baton.tasks.state``.
"""

from __future__ import annotations

from task_sim import SaveTask, Schedule, Sim, of

from baton.catalog import Catalog, ModelInfo
from baton.events import CatalogSeen, SessionError
from baton.models import model_key
from baton.tasks.lifecycle import TICK_KEY

RATE_LIMIT = {"name": "APIError", "data": {"message": "Rate limit exceeded", "statusCode": 429}}
TICK_S = 3.0


def ticks(actions: list) -> list[Schedule]:  # type: ignore[type-arg]
    return [a for a in of(actions, Schedule) if a.key == TICK_KEY]


def test_one_tick_is_armed_however_many_tasks_hold_slots() -> None:
    s = Sim()
    first, second = s.launch(), s.launch()
    s.start(first)
    s.start(second)
    assert ticks(s.log) == [Schedule(TICK_KEY, s.now + TICK_S)]


def test_the_tick_is_not_armed_again_once_no_task_holds_a_slot() -> None:
    s = Sim()
    task = s.launch()
    s.start(task)
    s.answer(task)
    s.abort_done(task)  # the ended child's abort is confirmed: nothing left to retry
    s.advance(TICK_S)
    assert ticks(s.tick()) == []


def test_activity_saved_with_the_task_is_not_saved_again_at_the_tick() -> None:
    """Activity times are saved at the next tick, unless a save of the task already wrote them."""
    s = Sim()
    task = s.launch()
    s.created(task)
    s.tool(task)  # activity while starting
    assert of(s.accepted(task), SaveTask) == [SaveTask(task.id, s.rows[task.id])]
    s.advance(TICK_S)
    assert of(s.tick(), SaveTask) == []
    s.tool(task)
    s.advance(TICK_S)
    assert [a.task_id for a in of(s.tick(), SaveTask)] == [task.id]


def test_a_task_back_in_a_queue_ignores_its_former_child() -> None:
    """§10: a task waiting for a slot of its fallback model holds none; a late tool call of the
    child it left is not its activity."""
    s = Sim({"agents": {"explore": {"model": "prov/a", "fallback_models": ["prov/b"]}},
             "background_task": {"defaultConcurrency": 1}})
    s.launch(subagent_type="oracle", category=None, parent_model="prov/b")  # holds prov/b's slot
    task = s.launch()
    s.start(task, "ses_a")
    s.feed(SessionError("ses_a", RATE_LIMIT))
    s.abort_done(task)
    assert task.status.value == "retrying"
    calls, active = task.tool_calls, task.last_activity_at
    s.advance(5)
    s.tool(task)
    assert (task.tool_calls, task.last_activity_at) == (calls, active)


def catalog_sim(settings: dict) -> Sim:  # type: ignore[type-arg]
    s = Sim(settings)
    models = (ModelInfo("prov/a", 1, 4), ModelInfo("prov/b", 10, 40), ModelInfo("other/c", 1, 4))
    s.feed(CatalogSeen(Catalog({model_key(m.model): m for m in models})))
    return s


def test_a_task_retry_uses_its_agent_s_own_spend_guard() -> None:
    """runtime-fallback §6.10: the agent's ``max_cost_ratio`` first, else ``baton.max_cost_ratio``."""
    chain = {"model": "prov/a", "fallback_models": ["prov/b", "other/c"]}
    strict = catalog_sim({"agents": {"explore": {**chain, "max_cost_ratio": 1.0}}})
    task = strict.launch()
    strict.start(task)
    strict.feed(SessionError(task.session_id, RATE_LIMIT))
    assert task.model == "other/c"  # prov/b costs 10x

    lenient = catalog_sim({"agents": {"explore": {**chain, "max_cost_ratio": 20.0}},
                           "baton": {"max_cost_ratio": 1.0}})
    task = lenient.launch()
    lenient.start(task)
    lenient.feed(SessionError(task.session_id, RATE_LIMIT))
    assert task.model == "prov/b"


def test_a_task_retry_before_opencode_s_models_are_known_passes_the_guard() -> None:
    """Without a catalog no price is known, so the guard lets the next model of the chain through."""
    s = Sim({"agents": {"explore": {"model": "prov/a", "fallback_models": ["prov/b"]}},
             "baton": {"max_cost_ratio": 1.0}})
    task = s.launch()
    s.start(task)
    s.feed(SessionError(task.session_id, RATE_LIMIT))
    assert task.model == "prov/b"
