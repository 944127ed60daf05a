"""A continuation (``session_id``) is a new task on an ended task's session that keeps what that
task ran with (background-tasks §14.2.4, §5.2.5, §3.2), driven through :mod:`task_sim`.

Written against the mutants mutation testing left alive in ``launch`` (``scripts/mutation.py``).
"""

from __future__ import annotations

from typing import Any

from task_sim import P, Sim

from baton.cooldowns import Cooldowns
from baton.events import SessionError
from baton.tasks import LaunchResult, Task, ToolError

RATE_LIMIT = {"name": "APIError", "data": {"message": "Rate limit exceeded", "statusCode": 429}}


def ended_on(s: Sim, session: str, **kw: Any) -> Task:
    task = s.launch(**kw)
    s.start(task, session)
    s.answer(task)
    return task


def cont(s: Sim, session: str = "ses_kept", **kw: Any) -> Task:
    kw.setdefault("subagent_type", None)
    return s.launch(session_id=session, **kw)


def test_a_category_continuation_keeps_category_system_depth_and_variant() -> None:
    """§14.2.4: same agent, category, system and tools; the same model keeps its variant; the depth is
    the old task's (the session exists already)."""
    s = Sim({"categories": {"quick": {"model": "prov/quick", "variant": "low", "prompt_append": "Be brief."}}})
    old = ended_on(s, "ses_kept", category="quick", subagent_type=None, depth_of_parent=1)
    new = cont(s, category="QUICK", prompt="More.")
    assert (new.category, new.agent, new.system, new.variant, new.model, new.depth) == (
        "quick", "general", "Be brief.", "low", "prov/quick", old.depth)
    assert new.tools == old.tools and new.attempt == 0


def test_names_are_compared_without_case() -> None:
    """§14.2.1: the subagent_type of a continuation and a configured category's name ignore case."""
    s = Sim({"categories": {"MyCat": {"model": "prov/m"}}})
    ended_on(s, "ses_kept")
    assert cont(s, subagent_type="EXPLORE").agent == "explore"
    assert s.launch(category="mycat", subagent_type=None).category == "MyCat"


def test_disabling_a_category_nobody_defined_is_harmless() -> None:
    s = Sim({"categories": {"never-defined": {"disable": True}}})
    assert s.launch(category="quick", subagent_type=None).category == "quick"


def test_a_continuation_runs_on_the_model_its_task_used_last() -> None:
    """§14.2.4: the model the old task used last — here the last of its chain after a fallback."""
    s = Sim({"agents": {"explore": {"fallback_models": ["prov/b"]}}})
    old = s.launch(parent_model="prov/a")
    s.start(old, "ses_kept")
    s.feed(SessionError("ses_kept", RATE_LIMIT))
    s.abort_done(old)
    s.accepted(old)
    s.answer(old)
    assert old.model == "prov/b" and old.attempt == 1
    new = cont(s, parent_model="prov/a")
    assert (new.model, new.attempt) == ("prov/b", 1)


def test_a_continuation_checks_cooldowns_and_providers_afresh() -> None:
    """§14.2.4, §5.2.5: the old model cooling, or its provider not connected, moves the new task on
    along the chain; a changed model does not keep the old variant."""
    cool = Cooldowns()
    s = Sim({"agents": {"explore": {"model": "prov/a", "variant": "high", "fallback_models": ["alt/b"]}}},
            cooldowns=cool)
    old = ended_on(s, "ses_kept")
    assert (old.model, old.variant) == ("prov/a", "high")
    cool.extend("prov/a", s.now + 300)
    new = cont(s)
    assert (new.model, new.variant, new.attempt) == ("alt/b", None, 1)
    s.answer(new)
    fresh = Sim({"agents": {"explore": {"model": "prov/a", "fallback_models": ["alt/b"]}}})
    ended_on(fresh, "ses_kept")
    assert cont(fresh, connected_providers=frozenset({"alt"})).model == "alt/b"


def test_a_continuation_without_the_caller_s_root_is_refused_saying_why() -> None:
    """§13.3: fail closed, and the refusal says no root was found."""
    s = Sim()
    ended_on(s, "ses_kept")
    result, _ = s.launch_raw(session_id="ses_kept", subagent_type=None, root_session_id=None)
    assert isinstance(result, ToolError)
    assert f"the ancestry of session {P} could not be determined (no root was found)" in result.message


def test_a_continuation_of_a_task_without_a_model_runs_without_one() -> None:
    """§5.3.1: with no model anywhere the key is the agent's name; the continuation is the first try."""
    s = Sim()
    old = ended_on(s, "ses_kept", parent_model=None)
    assert old.model is None and old.key == "explore"
    result, _ = s.launch_raw(session_id="ses_kept", subagent_type=None, parent_model=None)
    assert isinstance(result, LaunchResult)
    new = s.sched.task(result.task_id)
    assert new is not None and (new.model, new.attempt, new.key) == (None, 0, "explore")
