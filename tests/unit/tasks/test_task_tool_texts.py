"""The exact words the tools answer a model with (background-tasks §14, §13.3, §13.7): each
refusal says what was wrong, how to go on and that nothing was created; ``background_output``
and ``background_cancel`` say where a task stands. Pinned as whole texts, through the scheduler's
tool methods, because the model reads every word. Written against the mutants mutation testing
left alive in ``texts`` (``scripts/mutation.py``); a deliberate rewording updates this file."""

from __future__ import annotations

from typing import Any

import pytest
from task_sim import CreateChild, P, Sim, of

from baton.events import SessionError
from baton.tasks import CancelReport, CancelRequest, KnownAgent, LaunchResult, ToolError

ALL_BUILTIN = ("visual-engineering", "ultrabrain", "deep", "artistry", "quick", "unspecified-low",
               "unspecified-high", "writing")
NOT_STARTED = "[baton] Not started: "
NOTHING = " Nothing was created."
BAD_REQUEST = {"name": "APIError", "data": {"message": "Bad request", "statusCode": 400}}
RATE_LIMIT = {"name": "APIError", "data": {"message": "Rate limit exceeded", "statusCode": 429}}


def refusal(s: Sim, **kw: Any) -> str:
    result, _ = s.launch_raw(**kw)
    assert isinstance(result, ToolError), result
    return result.message


def ended_on(s: Sim, session: str, **kw: Any) -> Any:
    task = s.launch(**kw)
    s.start(task, session)
    s.answer(task)
    return task


@pytest.mark.parametrize(
    ("kw", "text"),
    [
        ({"description": " "}, "description is empty. Fix: give a short description of the work."),
        ({"prompt": "\n"}, "prompt is empty. Fix: write the instructions for the subagent."),
        ({"background": None},
         "run_in_background is missing. Fix: pass true (get notified later) or false (wait for the answer)."),
        ({"tool": "call_agent", "category": "quick"}, "call_agent takes no category. Fix: use task for a category."),
        ({"subagent_type": None}, "give exactly one of category and subagent_type. Fix: category picks a configured "
                                  "kind of work, subagent_type a named agent."),
        ({"known_agents": None}, "baton could not get the list of agents from opencode, so the subagent cannot be "
                                 "checked. Try again in a moment."),
        ({"subagent_type": "ghost"},
         "'ghost' is not an agent opencode knows. Subagents you can use: explore, general, oracle."),
        ({"subagent_type": "ghost", "known_agents": (KnownAgent("build", "primary"),)},
         "'ghost' is not an agent opencode knows. Subagents you can use: none."),
        ({"subagent_type": "Build"},
         "'Build' is a primary agent, not a subagent. Subagents you can use: explore, general, oracle."),
        ({"lineage_error": "GET /session/ses_x: 500"},
         "the ancestry of session ses_parent could not be determined (GET /session/ses_x: 500), so neither the "
         "depth limit nor the descendant limit can be checked. Try again shortly."),
        ({"root_session_id": None},
         "the ancestry of session ses_parent could not be determined (no root was found), so neither the depth "
         "limit nor the descendant limit can be checked. Try again shortly."),
        ({"depth_of_parent": 3},
         "background_task.maxDepth = 3, and the new session would be at depth 4. Caller: ses_parent; root: ses_root. "
         "Continue the work in an existing child session instead (pass its session_id), or wait for running tasks "
         "to end."),
        ({"session_id": "ses_unknown", "subagent_type": None},
         "session ses_unknown is not the session of a baton task, so it cannot be continued. Omit session_id to "
         "start a new task."),
    ],
    ids=["description", "prompt", "background", "call_agent_category", "neither", "agents_unknown", "unknown_agent",
         "no_usable_agent", "primary_agent", "lineage_error", "no_root", "depth", "not_a_task_session"],
)
def test_each_refusal_in_full(kw: dict[str, Any], text: str) -> None:
    """§14.2.1, §13.3, §13.7: the refusal names the problem and the way on, and ends "Nothing was created"."""
    assert refusal(Sim(), **kw) == NOT_STARTED + text + NOTHING


def test_an_unknown_category_lists_the_usable_ones_or_says_none() -> None:
    """§14.2.1: the error enumerates the valid categories; with every one disabled it says "none"."""
    mine = Sim({"categories": {"quick": {"disable": True}, "mine": {"model": "prov/m"}}})
    usable = sorted([*ALL_BUILTIN, "mine"])
    usable.remove("quick")
    assert refusal(mine, category="quick", subagent_type=None) == (
        f"{NOT_STARTED}there is no usable category 'quick'. Known categories: {', '.join(usable)}.{NOTHING}")
    none = Sim({"categories": {name: {"disable": True} for name in ALL_BUILTIN}})
    assert refusal(none, category="quick", subagent_type=None) == (
        f"{NOT_STARTED}there is no usable category 'quick'. Known categories: none.{NOTHING}")


def test_the_descendant_refusal_gives_the_limit_the_live_count_and_both_sessions() -> None:
    """§13.7: key and value of the limit, the live count, the parent and the root."""
    s = Sim({"background_task": {"maxDescendants": 2}})
    s.launch()
    s.launch()
    assert refusal(s, parent_session_id="ses_mid") == (
        f"{NOT_STARTED}background_task.maxDescendants = 2, and 2 tasks are already live under this root session. "
        "Caller: ses_mid; root: ses_root. Continue the work in an existing child session instead (pass its "
        f"session_id), or wait for running tasks to end.{NOTHING}")


def test_continuation_refusals_in_full() -> None:
    """§14.2.4: a live session is busy (with how to read its progress), agent and category are kept,
    and a session of another tree is not the caller's."""
    s = Sim()
    task = s.launch()
    s.start(task, "ses_kept")
    assert refusal(s, session_id="ses_kept", subagent_type=None) == (
        f"{NOT_STARTED}task {task.id} is still running in session ses_kept; two prompts would interleave. Wait for "
        f'its notification, or read its progress with baton_background_output(task_id="{task.id}").{NOTHING}')
    s.answer(task)
    assert refusal(s, session_id="ses_kept", subagent_type=None, category="quick") == (
        f"{NOT_STARTED}session ses_kept runs with category 'none', not 'quick'. A continuation keeps its category; "
        f"omit it or start a new task.{NOTHING}")
    assert refusal(s, session_id="ses_kept", subagent_type="oracle") == (
        f"{NOT_STARTED}session ses_kept runs with subagent_type 'explore', not 'oracle'. A continuation keeps its "
        f"subagent_type; omit it or start a new task.{NOTHING}")
    assert refusal(s, session_id="ses_kept", subagent_type=None, parent_session_id="ses_x",
                   root_session_id="ses_x") == (
        f"{NOT_STARTED}session ses_kept does not belong to the session tree of the caller (ses_x), so it cannot be "
        "continued from here. Only the child sessions of tasks started in this tree can be continued. Omit "
        f"session_id to start a new task.{NOTHING}")


def test_a_category_continuation_names_the_category_it_keeps() -> None:
    """§14.2.4: asking another category of a category task's session quotes the category it runs with."""
    s = Sim()
    ended_on(s, "ses_kept", category="quick", subagent_type=None)
    assert refusal(s, session_id="ses_kept", subagent_type=None, category="deep") == (
        f"{NOT_STARTED}session ses_kept runs with category 'quick', not 'deep'. A continuation keeps its category; "
        f"omit it or start a new task.{NOTHING}")


def test_the_launch_answer_in_full() -> None:
    """§14.2.2: id, state with the queue place, agent and model, the promise of a notification, how to read."""
    s = Sim({"background_task": {"defaultConcurrency": 1}})
    first, _ = s.launch_raw()
    queued, _ = s.launch_raw(category="quick")
    assert isinstance(first, LaunchResult) and isinstance(queued, LaunchResult)
    promise = ("You will get a notification here when it ends, and be woken once all your background tasks have "
               "ended, so do not poll; carry on with other work.")
    assert first.text == "\n".join([
        f"[baton] Background task {first.task_id} accepted: starting.",
        "Runs as agent explore on prov/parent-model.", promise,
        f'Afterwards read the result with baton_background_output(task_id="{first.task_id}").'])
    assert queued.text == "\n".join([
        f"[baton] Background task {queued.task_id} accepted: queued, number 1 in line for prov/parent-model.",
        "Runs as category quick (agent general) on prov/parent-model.", promise,
        f'Afterwards read the result with baton_background_output(task_id="{queued.task_id}").'])


def test_a_continuation_s_launch_answer_names_the_task_and_session_it_continues() -> None:
    """§14.2.2: the child session id is given when one already exists."""
    s = Sim()
    old = ended_on(s, "ses_kept")
    result, _ = s.launch_raw(session_id="ses_kept", subagent_type=None)
    assert isinstance(result, LaunchResult)
    lines = result.text.split("\n")
    assert lines[1:4] == ["Runs as agent explore on prov/parent-model.", f"It continues task {old.id}.",
                          "Child session: ses_kept."]


def test_output_of_a_queued_task_gives_its_place_and_wait() -> None:
    """§14.3.2 queued: the key, the place in the queue, the time waited, that a notification will come."""
    s = Sim({"background_task": {"defaultConcurrency": 1}})
    s.launch()
    queued = s.launch()
    s.advance(65)
    assert s.sched.output(queued.id, P, s.now) == (
        f"[baton] Task {queued.id} is queued (agent explore on prov/parent-model), number 1 in line for "
        "prov/parent-model, waiting 1m 5s. A notification will come when it ends.")


def test_output_of_a_running_task_gives_its_progress() -> None:
    """§14.3.2 running: model and attempt, run time, tool calls and last tool, time since activity, session;
    §14.3.3: a wait that ran out says so."""
    s = Sim()
    task = s.launch()
    s.start(task, "ses_a")
    s.advance(30)
    s.tool(task, "grep")
    s.advance(12)
    running = (f"[baton] Task {task.id} is running (agent explore on prov/parent-model, attempt 1). Running for "
               "42s; 1 tool call(s), last grep; last activity 12s ago. Session: ses_a. A notification will come "
               "when it ends.")
    assert s.sched.output(task.id, P, s.now) == running
    assert s.sched.output(task.id, P, s.now, waited_out=True) == (
        running + "\nThe wait ran out while the task is still running.")


def test_output_of_a_task_still_starting() -> None:
    """§14.3.2 starting: no run time, no activity and no session yet, each said so."""
    s = Sim()
    task = s.launch()
    s.advance(2)
    assert s.sched.output(task.id, P, s.now) == (
        f"[baton] Task {task.id} is starting (agent explore on prov/parent-model, attempt 1). Not started yet; "
        "0 tool call(s); no activity yet. Session: not created yet. A notification will come when it ends.")


def test_output_of_a_task_without_tool_calls_names_no_last_tool() -> None:
    s = Sim()
    task = s.launch()
    s.start(task, "ses_a")
    s.advance(3)
    text = s.sched.output(task.id, P, s.now)
    assert isinstance(text, str) and "Running for 3.0s; 0 tool call(s); last activity 3.0s ago. Session: ses_a." in text


def test_output_of_a_retrying_task_waiting_on_its_new_key() -> None:
    """§14.3.2: a task sent back to a queue by fallback reports its place there and its next attempt."""
    s = Sim({"agents": {"explore": {"model": "prov/a", "fallback_models": ["prov/b"]}},
             "background_task": {"defaultConcurrency": 1}})
    blocker = s.launch(subagent_type="oracle", category=None, parent_model="prov/b")
    task = s.launch()
    s.start(task, "ses_a")
    s.feed(SessionError("ses_a", RATE_LIMIT))
    s.abort_done(task)
    assert blocker.key == "prov/b" and task.status.value == "retrying"
    s.advance(7)
    assert s.sched.output(task.id, P, s.now) == (
        f"[baton] Task {task.id} is retrying (agent explore on prov/b), number 1 in line for prov/b, waiting 7.0s. "
        "A notification will come when it ends.")


def test_output_of_ended_tasks_in_full() -> None:
    """§14.3.2 completed: the answer, run time, model, session; failed: outcome, reason, partial answer;
    an empty answer is said to be empty; a wait that ran out adds nothing to an ended task."""
    s = Sim()
    done = s.launch()
    s.start(done, "ses_done")
    s.advance(75)
    s.answer(done, "the answer")
    assert s.sched.output(done.id, P, s.now, waited_out=True) == (
        f"[baton] Task {done.id} completed in 1m 15s (agent explore on prov/parent-model). Session: ses_done."
        "\n\nthe answer")
    done.result = None
    assert s.sched.output(done.id, P, s.now).endswith("Session: ses_done.\n\n(the answer was empty)")  # type: ignore[union-attr]
    failed = s.launch()
    s.start(failed, "ses_failed")
    s.feed(SessionError("ses_failed", BAD_REQUEST))
    text = (f"[baton] Task {failed.id} failed: the model failed with an error a different model would not fix "
            "(bad request). Session: ses_failed.")
    assert s.sched.output(failed.id, P, s.now, waited_out=True) == text
    failed.result = "half of it"
    assert s.sched.output(failed.id, P, s.now) == text + "\nPartial answer:\nhalf of it"


def test_unknown_and_ended_tasks_for_output_and_cancel() -> None:
    """§14.3.5 an unknown id is quoted; §14.4.2 an ended task's status is stated."""
    s = Sim()
    task = ended_on(s, "ses_kept")
    unknown = s.sched.output("bg_nothere", P, s.now)
    assert isinstance(unknown, ToolError)
    assert unknown.message == "[baton] There is no task 'bg_nothere' that this session can see. Check the id."
    ended, _ = s.sched.cancel(CancelRequest(task_id=task.id, caller_session_id=P), s.now)
    assert isinstance(ended, ToolError)
    assert ended.message == f"[baton] Task {task.id} has already ended (completed); nothing to cancel."


def test_the_cancel_report_in_full() -> None:
    """§14.4.4: number, each task's id, description, previous status and session (or "not started"),
    the descendants, and how to continue; §14.4.2: nothing live is a plain statement."""
    s = Sim({"background_task": {"defaultConcurrency": 1}})
    running = s.launch(description="first job")
    s.start(running, "ses_a")
    s.start(s.launch(parent_session_id="ses_other", parent_model="prov/other"))
    waiting = s.launch(description="second job", parent_model="prov/other")
    inner = s.launch(parent_session_id="ses_a", depth_of_parent=1)
    report, _ = s.sched.cancel(CancelRequest(all=True, caller_session_id=P), s.now)
    assert isinstance(report, CancelReport) and inner.status.value == "cancelled"
    assert report.text == "\n".join([
        "[baton] Cancelled 2 task(s):",
        f'- {running.id} "first job" (was running); session ses_a',
        f'- {waiting.id} "second job" (was queued); session not started',
        "1 descendant task(s) were cancelled with them.",
        "To continue one later, call baton_task with its session_id."])
    nothing, _ = s.sched.cancel(CancelRequest(all=True, caller_session_id=P), s.now)
    assert isinstance(nothing, CancelReport)
    assert nothing.text == "[baton] Nothing to cancel: none of your background tasks is running."


def test_cancel_all_creates_no_child_for_a_queued_task_it_cancels() -> None:
    """§14.4.3: a queued task cancelled with the others only leaves its queue; it is reported as queued
    and no session is created for it."""
    s = Sim({"background_task": {"defaultConcurrency": 1}})
    running = s.launch()
    waiting = s.launch()
    s.start(running)
    report, actions = s.sched.cancel(CancelRequest(all=True, caller_session_id=P), s.now)
    assert isinstance(report, CancelReport)
    assert [c.previous_status for c in report.cancelled] == ["running", "queued"]
    assert [a for a in of(actions, CreateChild) if a.task_id == waiting.id] == []


def test_a_cancel_of_unstarted_tasks_offers_no_continuation() -> None:
    s = Sim({"background_task": {"defaultConcurrency": 1}})
    s.launch()
    waiting = s.launch(description="second job")
    report, _ = s.sched.cancel(CancelRequest(task_id=waiting.id, caller_session_id=P), s.now)
    assert isinstance(report, CancelReport)
    assert report.text == f'[baton] Cancelled 1 task(s):\n- {waiting.id} "second job" (was queued); session not started'


def test_the_foreground_answers_in_full() -> None:
    """§14.2.3: completed gives the answer, run time, agent, id and session; a failure the reason and
    session; a spent budget explains the change to background."""
    s = Sim()
    task = s.launch(background=False)
    s.start(task, "ses_fg")
    s.advance(75)
    s.answer(task, "direct answer")
    assert s.sched.foreground_result(task.id, s.now)[0] == (
        f"[baton] Task {task.id} completed in 1m 15s (agent explore on prov/parent-model; session ses_fg)."
        "\n\ndirect answer")
    task.result = ""
    assert s.sched.foreground_result(task.id, s.now)[0] == (
        f"[baton] Task {task.id} completed in 1m 15s (agent explore on prov/parent-model; session ses_fg)."
        "\n\n(the answer was empty)")
    failing = s.launch(background=False)
    s.start(failing, "ses_bad")
    s.feed(SessionError("ses_bad", BAD_REQUEST))
    result, _ = s.sched.foreground_result(failing.id, s.now)
    assert isinstance(result, ToolError) and result.message == (
        f"[baton] Task {failing.id} failed: the model failed with an error a different model would not fix "
        "(bad request). Session: ses_bad.")
    slow = s.launch(background=False)
    s.start(slow)
    assert s.sched.to_background(slow.id, s.now)[0] == (
        f"[baton] Task {slow.id} is still running after the wait budget, so it continues as a background task. "
        "You will be notified when it ends; do not poll. "
        f'Read the result then with baton_background_output(task_id="{slow.id}").')


def test_a_failure_before_the_child_existed_says_not_started() -> None:
    from baton.tasks.events import ChildCreateFailed

    s = Sim()
    task = s.launch(background=False)
    s.feed(ChildCreateFailed(task.id, "HTTP 500"))
    result, _ = s.sched.foreground_result(task.id, s.now)
    assert isinstance(result, ToolError) and result.message == (
        f"[baton] Task {task.id} failed: baton could not create its session (HTTP 500). Session: not started.")
