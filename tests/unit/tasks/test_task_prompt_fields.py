"""What the child's prompt carries (background-tasks §6.3, §10.4) and where the tool-call cap
draws its line (§9 T5), driven through :mod:`task_sim`.

Written against the mutants mutation testing left alive in ``lifecycle`` and ``stream``
(``scripts/mutation.py``).
"""

from __future__ import annotations

from task_sim import CreateChild, P, PromptChild, Sim, of

from baton.events import SessionError
from baton.tasks import EndReason

RATE_LIMIT = {"name": "APIError", "data": {"message": "Rate limit exceeded", "statusCode": 429}}


def test_the_prompt_carries_model_variant_system_tools_and_directory() -> None:
    """§6.3: messageID, agent, model, variant (when set), system (when set), tools, the prompt text, in
    the parent's directory; §10.4: a fallback re-send keeps all but the model (and its variant)."""
    s = Sim({"categories": {"quick": {"model": "prov/quick", "variant": "low", "prompt_append": "Be brief.",
                                      "fallback_models": ["prov/b"]}}})
    task = s.launch(category="quick", subagent_type=None, directory="/work/p", prompt="Find it.")
    (prompt,) = of(s.created(task, "ses_c"), PromptChild)
    assert (prompt.session_id, prompt.message_id, prompt.agent, prompt.model, prompt.variant, prompt.system,
            prompt.text, prompt.directory) == (
        "ses_c", task.anchor_message_id, "general", "prov/quick", "low", "Be brief.", "Find it.", "/work/p")
    assert prompt.tools == task.tools and prompt.tools["task"] is False
    s.accepted(task)
    s.feed(SessionError("ses_c", RATE_LIMIT))
    (again,) = of(s.abort_done(task), PromptChild)
    assert (again.message_id, again.model, again.variant, again.system, again.text, again.directory) == (
        prompt.message_id, "prov/b", None, "Be brief.", "Find it.", "/work/p")


def test_the_tool_call_cap_stops_a_task_over_it_not_at_it() -> None:
    """§9 T5: ``tool_calls`` exceeding maxToolCalls stops the task, and the reason gives both numbers."""
    s = Sim({"background_task": {"maxToolCalls": 10}})
    task = s.launch()
    s.start(task)
    for i in range(10):
        s.tool(task, "read", {"path": f"f{i}"})
    assert task.stop_reason is None
    s.tool(task, "read", {"path": "f10"})
    assert task.stop_reason is EndReason.RUNAWAY and task.error == "11 tool calls, over the cap of 10"


def test_the_child_is_created_under_the_parent_in_its_directory_with_a_findable_title() -> None:
    """§6.2: parentID P, the parent's directory, and a title with the description (cut at 80
    characters), the agent and the task id, so that a restart can find the child again."""
    s = Sim()
    task = s.launch(description="d" * 100, directory="/work/p")
    (create,) = of(s.log, CreateChild)
    assert create == CreateChild(task.id, P, f"{'d' * 80} (explore) [{task.id}]", "/work/p")
