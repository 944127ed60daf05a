"""Launch: validation, resolution, spawn limits and continuations (spec §5, §13, §14.2)."""

from __future__ import annotations

from typing import Any

import pytest
from task_sim import ROOT, CreateChild, P, PromptChild, Sim, of

from baton.cooldowns import Cooldowns
from baton.tasks import CancelRequest, LaunchResult, TaskStatus, ToolError


def refused(s: Sim, **kw: Any) -> str:
    result, actions = s.launch_raw(**kw)
    assert isinstance(result, ToolError), result
    assert actions == [] and s.rows == {} and s.sched.index.tasks == {}
    return result.message


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"description": "  "}, "description is empty"),
        ({"prompt": ""}, "prompt is empty"),
        ({"background": None}, "run_in_background"),
        ({"category": "quick", "subagent_type": "explore"}, "exactly one of category and subagent_type"),
        ({"subagent_type": None}, "exactly one of category and subagent_type"),
        ({"category": "nope", "subagent_type": None}, "no usable category 'nope'"),
        ({"subagent_type": "ghost"}, "'ghost' is not an agent opencode knows"),
        ({"subagent_type": "build"}, "primary agent"),
        ({"known_agents": None}, "could not get the list of agents"),
        ({"tool": "call_agent", "category": "quick"}, "call_agent takes no category"),
        ({"session_id": "ses_unknown"}, "not the session of a baton task"),
    ],
)
def test_bad_input_is_a_tool_error_and_stores_nothing(kw: dict[str, Any], words: str) -> None:
    """Each invalid request is refused with a message saying what was wrong; no row, no action."""
    assert words in refused(Sim(), **kw)


def test_unknown_category_lists_the_known_ones_and_disabled_ones_are_unknown() -> None:
    """The error lists usable categories; a disabled one is refused like an unknown one."""
    s = Sim({"categories": {"quick": {"disable": True}, "mine": {"model": "prov/m"}}})
    message = refused(s, category="quick", subagent_type=None)
    assert "mine" in message and "deep" in message and "'quick'" in message


def test_disabled_agents_are_refused_case_insensitively() -> None:
    """An agent in disabled_agents cannot be spawned, whatever its case."""
    assert "disabled_agents" in refused(Sim({"disabled_agents": ["Explore"]}), subagent_type="EXPLORE")


def test_lineage_failure_fails_closed() -> None:
    """A failed ancestry walk refuses the spawn and names the session and the reason."""
    message = refused(Sim(), lineage_error="GET /session/ses_x: 500")
    assert "ancestry" in message and P in message and "500" in message


def test_depth_limit_refuses_a_spawn_from_the_deepest_session() -> None:
    """With maxDepth 3 a depth-2 parent may spawn, a depth-3 parent may not."""
    s = Sim()
    assert isinstance(s.launch_raw(depth_of_parent=2)[0], LaunchResult)
    s2 = Sim()
    message = refused(s2, depth_of_parent=3)
    assert "background_task.maxDepth = 3" in message and "depth 4" in message and ROOT in message
    assert "session_id" in message


def test_children_at_max_depth_are_not_offered_spawning_tools() -> None:
    """A child at depth == maxDepth gets baton_task and baton_call_agent turned off."""
    s = Sim()
    deep = s.launch(depth_of_parent=2, subagent_type="general")
    shallow = s.launch(depth_of_parent=0, subagent_type="general")
    assert deep.tools["baton_task"] is False and deep.tools["task"] is False
    assert "baton_task" not in shallow.tools and shallow.tools["question"] is False


def test_live_descendants_are_limited_per_root_and_released_on_end() -> None:
    """maxDescendants counts live tasks under the root; an end frees one place at once."""
    s = Sim({"background_task": {"maxDescendants": 2}})
    first = s.launch()
    s.launch()
    result, _ = s.launch_raw()
    assert isinstance(result, ToolError) and "maxDescendants = 2" in result.message
    assert isinstance(s.launch_raw(root_session_id="ses_other_root")[0], LaunchResult)
    s.sched.cancel(CancelRequest(task_id=first.id, caller_session_id=P), s.now)
    assert isinstance(s.launch_raw()[0], LaunchResult)


def test_descendants_are_released_by_failures_before_start() -> None:
    """A task whose child could not be created no longer counts toward the root's limit."""
    from baton.tasks.events import ChildCreateFailed

    s = Sim({"background_task": {"maxDescendants": 1}})
    task = s.launch()
    s.feed(ChildCreateFailed(task.id, "500"))
    assert task.status is TaskStatus.FAILED
    assert isinstance(s.launch_raw()[0], LaunchResult)


def test_model_resolution_order_for_categories() -> None:
    """Category model first, then the category agent's model, then the parent's model."""
    s = Sim({"categories": {"quick": {"model": "prov/quick", "variant": "low", "prompt_append": "Be brief."}},
             "agents": {"general": {"model": "prov/general"}}})
    quick = s.launch(category="quick")
    deep = s.launch(category="deep")
    assert (quick.model, quick.variant, quick.system, quick.agent) == ("prov/quick", "low", "Be brief.", "general")
    assert deep.model == "prov/general"
    assert Sim().launch(category="deep").model == "prov/parent-model"


def test_model_resolution_order_for_agents_and_the_prompt_sends_it_explicitly() -> None:
    """Configured agent model first, then opencode's agent model, then the parent's; always sent."""
    from baton.tasks import KnownAgent

    agents = (KnownAgent("explore", "subagent", "prov/own"), KnownAgent("oracle", "subagent"))
    s = Sim({"agents": {"oracle": {"model": "prov/oracle"}}})
    assert s.launch(known_agents=agents, subagent_type="oracle").model == "prov/oracle"
    task = s.launch(known_agents=agents)
    assert task.model == "prov/own"
    actions = s.created(task)
    (prompt,) = of(actions, PromptChild)
    assert prompt.model == "prov/own" and prompt.agent == "explore" and prompt.message_id == task.anchor_message_id
    assert prompt.tools["write"] is False  # explore is read-only


def test_start_skips_cooling_models_of_the_chain() -> None:
    """The first chain entry not cooling down is used, and its key is the task's key."""
    cool = Cooldowns([("prov/parent-model", 2e9)])
    s = Sim({"agents": {"explore": {"fallback_models": ["alt/backup"]}}}, cooldowns=cool)
    task = s.launch()
    assert task.model == "alt/backup" and task.key == "alt/backup" and task.attempt == 1


def test_background_launch_text_promises_a_notification() -> None:
    """The tool result names the task and state and says a notification will come, so no polling."""
    s = Sim({"background_task": {"defaultConcurrency": 1}})
    s.launch()
    result, actions = s.launch_raw()
    assert isinstance(result, LaunchResult) and result.queue_position == 1 and result.status == "queued"
    assert "number 1 in line" in result.text and "notification" in result.text and "do not poll" in result.text
    assert not of(actions, CreateChild)


def test_continuation_creates_a_new_task_on_the_same_session() -> None:
    """session_id of an ended task starts a new task there: new id and anchor, same agent and tools."""
    s = Sim()
    old = s.launch()
    s.start(old, "ses_kept")
    s.answer(old)
    new = s.launch(session_id="ses_kept", subagent_type=None, parent_session_id="ses_other", prompt="More.")
    assert new.id != old.id and new.continues == old.id and new.session_id == "ses_kept"
    assert new.tools == old.tools and new.agent == old.agent and new.parent_session_id == "ses_other"
    (prompt,) = [a for a in s.log if isinstance(a, PromptChild) and a.task_id == new.id]
    assert prompt.session_id == "ses_kept" and prompt.message_id != old.anchor_message_id and prompt.text == "More."
    assert s.sched.index.task_on("ses_kept") is new


def test_continuation_of_a_live_task_or_with_another_agent_is_refused() -> None:
    """A still-live session cannot take a second prompt; a different subagent_type is an error."""
    s = Sim()
    old = s.launch()
    s.start(old, "ses_kept")
    result, _ = s.launch_raw(session_id="ses_kept", subagent_type=None)
    assert isinstance(result, ToolError) and "still running" in result.message
    s.answer(old)
    result, _ = s.launch_raw(session_id="ses_kept", subagent_type="oracle")
    assert isinstance(result, ToolError) and "subagent_type" in result.message


def test_continuations_count_toward_the_root_limit() -> None:
    """A continuation is refused when the root is at maxDescendants."""
    s = Sim({"background_task": {"maxDescendants": 1}})
    old = s.launch()
    s.start(old, "ses_kept")
    s.answer(old)
    s.launch()
    result, _ = s.launch_raw(session_id="ses_kept", subagent_type=None)
    assert isinstance(result, ToolError) and "maxDescendants" in result.message


def test_foreground_tasks_take_slots_and_return_their_answer_without_notification() -> None:
    """A foreground task queues like any other; its answer goes to the waiting call, not the outbox."""
    s = Sim({"background_task": {"defaultConcurrency": 1}})
    fg = s.launch(background=False)
    bg = s.launch()
    assert bg.status is TaskStatus.QUEUED
    s.start(fg)
    s.answer(fg, "direct answer")
    result, _ = s.sched.foreground_result(fg.id, s.now)
    assert isinstance(result, str) and "direct answer" in result
    assert s.outbox == {} and fg.notify.value == "suppressed"


def _ended_task_on(s: Sim, session: str, **kw: Any) -> None:
    old = s.launch(**kw)
    s.start(old, session)
    s.answer(old)


def test_continuing_a_session_of_another_tree_is_refused() -> None:
    """session_id of a task started under another root cannot be continued: a clear error, nothing stored."""
    s = Sim()
    _ended_task_on(s, "ses_kept")
    rows = dict(s.rows)
    result, actions = s.launch_raw(session_id="ses_kept", subagent_type=None, parent_session_id="ses_stranger",
                                   root_session_id="ses_stranger")
    assert isinstance(result, ToolError) and actions == [] and s.rows == rows
    assert "does not belong to the session tree of the caller (ses_stranger)" in result.message
    assert "Omit session_id" in result.message


def test_continuing_within_the_callers_tree_is_allowed() -> None:
    """A descendant of the caller, or a task child elsewhere in the caller's root tree, can be continued."""
    s = Sim()
    _ended_task_on(s, "ses_kept")
    inner = s.launch(parent_session_id="ses_kept", depth_of_parent=1)
    s.start(inner, "ses_inner")
    s.answer(inner)
    deeper = s.launch(session_id="ses_inner", subagent_type=None)  # the caller P is its grandparent
    assert deeper.session_id == "ses_inner" and deeper.parent_session_id == P
    s.answer(deeper)
    sibling = s.launch(session_id="ses_kept", subagent_type=None, parent_session_id="ses_sibling")
    assert sibling.session_id == "ses_kept" and sibling.root_session_id == ROOT


def test_a_task_stored_without_root_is_continued_only_by_its_ancestors() -> None:
    """Rows from before roots were stored: the chain of parent tasks must lead to the caller."""
    s = Sim()
    _ended_task_on(s, "ses_kept")
    old = s.sched.index.task_on("ses_kept")
    assert old is not None
    old.root_session_id = ""
    result, _ = s.launch_raw(session_id="ses_kept", subagent_type=None, parent_session_id="ses_sibling")
    assert isinstance(result, ToolError) and "does not belong" in result.message
    assert s.launch(session_id="ses_kept", subagent_type=None).session_id == "ses_kept"


def test_a_continuation_whose_caller_lineage_failed_is_refused() -> None:
    """Ownership cannot be checked without the caller's root: fail closed."""
    s = Sim()
    _ended_task_on(s, "ses_kept")
    result, _ = s.launch_raw(session_id="ses_kept", subagent_type=None, lineage_error="GET /session: 500")
    assert isinstance(result, ToolError) and "ancestry" in result.message
