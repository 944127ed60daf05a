"""What a restarted or reattached baton does with what was in flight (background-tasks §9 rule 4,
§15.2-5), driven through :mod:`task_sim` with a fake clock.

Written against the mutants mutation testing left alive in ``recovery`` (``scripts/mutation.py``).
"""

from __future__ import annotations

from task_sim import CreateChild, LookupSession, Note, P, PollStatus, PromptChild, Schedule, Sim, make_config, of

from baton.events import StatusType
from baton.tasks import EndReason, Mode, TaskStatus
from baton.tasks.events import Attached, Detached, HostRestarted
from baton.tasks.lifecycle import TICK_KEY

STALE_S = 180.0  # background_task.staleTimeoutMs default, §3.1
TTL_S = 1800.0  # background_task.taskTtlMs default


def test_a_starting_task_without_a_session_is_created_again_where_it_was() -> None:
    """§15.3: the create goes again for the same task and parent, in the same directory, adopting a
    child the lost call may have made."""
    s = Sim()
    task = s.launch(directory="/work/p")
    (first,) = of(s.log, CreateChild)
    (again,) = of(s.restart(), CreateChild)
    assert again == CreateChild(task.id, P, first.title, "/work/p", adopt=True)


def test_a_foreground_task_that_ended_unreported_is_notified_after_a_restart() -> None:
    """§15.1: the waiting call died with baton after the task ended but before its result went back;
    the result is not lost: P is notified like for a background task."""
    s = Sim()
    task = s.launch(background=False, description="fg job")
    s.start(task)
    s.answer(task, "the answer")
    assert task.status is TaskStatus.COMPLETED and task.mode is Mode.FOREGROUND
    s.restart()
    restored = s.sched.task(task.id)
    assert restored is not None and restored.mode is Mode.BACKGROUND
    (msg,) = s.parent_idle_and_flush()
    assert task.id in msg.text and "fg job" in msg.text


def test_a_raised_limit_starts_waiting_tasks_at_the_restart() -> None:
    """§5.3.3, §15.2: queues are granted again when baton starts, under the limits now configured."""
    s = Sim({"background_task": {"defaultConcurrency": 1}})
    running = s.launch()
    s.start(running)
    waiting = s.launch()
    assert waiting.status is TaskStatus.QUEUED
    s.config = make_config({"background_task": {"defaultConcurrency": 2}})
    out = s.restart()
    assert [a.task_id for a in of(out, CreateChild)] == [waiting.id]
    restored = s.sched.task(waiting.id)
    assert restored is not None and restored.status is TaskStatus.STARTING


def test_running_children_are_polled_at_once_after_a_restart() -> None:
    """§15.2: the resync starts with GET /session/status for the live children."""
    s = Sim()
    task = s.launch()
    s.start(task)
    assert len(of(s.restart(), PollStatus)) == 1


def test_a_child_the_poll_lists_is_never_looked_up() -> None:
    """§9 T4: only a child missing from a successful poll is checked with GET /session/{id}, in its
    directory (a lookup in another directory can 404)."""
    s = Sim()
    task = s.launch(directory="/work/p")
    s.start(task, "ses_c")
    assert of(s.polled({"ses_c": StatusType.BUSY}), LookupSession) == []
    s.answer(task, idle=False)
    assert of(s.polled({"ses_c": StatusType.BUSY}), LookupSession) == []
    other = s.launch(directory="/work/p")
    s.start(other, "ses_d")
    assert of(s.polled({"ses_c": StatusType.BUSY}), LookupSession) == [LookupSession("ses_d", "/work/p")]


def test_one_restart_of_opencode_re_sends_once_and_never_fails_the_task_by_itself() -> None:
    """§15.5: after one restart the lost prompt goes again once; the child idling again later without
    an answer is not a second restart."""
    s = Sim()
    task = s.launch()
    s.start(task, "ses_c")
    out = s.feed(HostRestarted())
    assert [n.text for n in of(out, Note)] == ["opencode restarted; checking running tasks for lost prompts"]
    s.idle("ses_c")
    assert len(of(s.polled({}), PromptChild)) == 1
    s.accepted(task)
    s.status("ses_c", StatusType.BUSY)
    s.idle("ses_c")
    assert of(s.polled({}), PromptChild) == []
    assert task.status is TaskStatus.RUNNING and task.prompt_resends == 1


def test_a_second_restart_that_loses_the_prompt_again_fails_the_task() -> None:
    """§15.5: if that happens a second time, the task fails with a reason that names the restart."""
    s = Sim()
    task = s.launch()
    s.start(task, "ses_c")
    for _ in range(2):
        s.feed(HostRestarted())
        s.idle("ses_c")
        s.polled({})
    assert task.status is TaskStatus.FAILED and task.end_reason is EndReason.HOST_RESTARTED
    assert task.error == "the child was idle without an answer after opencode restarted"


def test_detached_time_does_not_count_for_a_waiting_queue() -> None:
    """§9 rule 4 for T3: a queue whose key made no progress while baton was detached is not cancelled
    for that time."""
    s = Sim({"background_task": {"defaultConcurrency": 1}})
    running = s.launch()
    s.start(running)
    waiting = s.launch()
    s.advance(TTL_S - 60)
    s.feed(Detached())
    s.advance(3600)
    s.feed(Attached())
    s.advance(30)
    s.tick()
    assert waiting.status is TaskStatus.QUEUED


def test_a_short_detach_is_credited_exactly() -> None:
    """§9 rule 4: half a second detached moves T1 by half a second, not more."""
    s = Sim()
    task = s.launch()
    s.start(task)
    s.idle(task.session_id or "")
    s.advance(100)
    s.feed(Detached())
    s.advance(0.5)
    s.feed(Attached())
    s.advance(STALE_S - 100 - 0.25)
    s.tick()
    assert task.stop_reason is None
    s.advance(0.5)
    s.tick()
    assert task.stop_reason is EndReason.STALE


def test_the_tick_is_armed_again_when_baton_reattaches() -> None:
    """§9 rule 4: nothing is evaluated while detached; once attached, the timeout tick runs again."""
    s = Sim()
    task = s.launch()
    s.start(task)
    s.feed(Detached())
    s.advance(5)
    assert of(s.tick(), Schedule) == []  # detached: the tick does nothing, not even re-arm itself
    out = s.feed(Attached())
    assert [a.key for a in of(out, Schedule)] == [TICK_KEY]
