"""How the scheduler takes the engine's reports when they come late, twice, or about a task
that moved on (background-tasks §6.6, §8.7, §9 T4, §10.1, §12.5, §15.5), and the journal lines
and end errors of retried host calls. Driven through :mod:`task_sim` with a fake clock.

Written against the mutants mutation testing left alive in ``results`` (``scripts/mutation.py``).
"""

from __future__ import annotations

from task_sim import CreateChild, LookupSession, Note, P, PromptChild, Schedule, Sim, of

from baton.events import SessionError, SessionStatus, StatusType
from baton.tasks import CancelRequest, EndReason, Task, TaskStatus
from baton.tasks.actions import TaskAction
from baton.tasks.events import (
    ActivityRefreshed,
    ChildCreated,
    ChildCreateFailed,
    HostRestarted,
    ParentCompacted,
    PromptRejected,
    SchedulerEvent,
    SessionLookup,
    StatusPolled,
)
from baton.tasks.transient import host_retry_timer

DOWN = "POST /session failed: ConnectError"
PROMPT_DOWN = "POST /session/x/prompt_async failed: ConnectError"
RATE_LIMIT = {"name": "APIError", "data": {"message": "Rate limit exceeded", "statusCode": 429}}
GONE_S = 60.0  # background_task.sessionGoneTimeoutMs default, §3.1


def running(s: Sim, **kw: object) -> Task:
    task = s.launch(**kw)
    s.start(task)
    return task


def retry_timers(actions: list[TaskAction]) -> list[Schedule]:
    return [a for a in of(actions, Schedule) if a.key.startswith(host_retry_timer(""))]


def fail_transiently_until_given_up(s: Sim, event: SchedulerEvent) -> int:
    """Feed the same transient failure after every retry until the scheduler gives up; the calls made."""
    calls = 1
    while True:
        out = s.feed(event)
        timers = retry_timers(out)
        if not timers:
            return calls
        s.advance(timers[0].at - s.now)
        s.fire(timers[0].key)
        calls += 1


def test_the_journal_names_the_call_that_is_retried() -> None:
    """Each retry is journaled with what failed, why, the backoff and the call number."""
    s = Sim()
    task = s.launch()
    out = s.feed(ChildCreateFailed(task.id, DOWN, transient=True))
    (note,) = [n for n in of(out, Note) if n.kind == "task_host_retry"]
    assert note.text == (f"task {task.id}: creating its child session failed ({DOWN}); opencode may be "
                         "restarting, trying again in 0.5s (call 2)")
    s.feed(ChildCreated(task.id, "ses_c"))
    out = s.feed(PromptRejected(task.id, task.attempt, PROMPT_DOWN, transient=True))
    (note,) = [n for n in of(out, Note) if n.kind == "task_host_retry"]
    assert note.text == (f"task {task.id}: prompting its child failed ({PROMPT_DOWN}); opencode may be "
                         "restarting, trying again in 0.5s (call 2)")


def test_a_retried_create_goes_to_the_parent_s_directory() -> None:
    """§6.1: the retried create is made in the directory the first one used."""
    s = Sim()
    task = s.launch(directory="/work/p")
    s.feed(ChildCreateFailed(task.id, DOWN, transient=True))
    s.advance(0.5)
    (create,) = of(s.fire(host_retry_timer(task.id)), CreateChild)
    assert (create.directory, create.adopt) == ("/work/p", True)


def test_a_first_prompt_given_up_on_ends_the_task_saying_how_long_it_tried() -> None:
    """§6.6: the prompt never got through; the task is interrupted with the last error and the retries."""
    s = Sim()
    task = s.launch()
    s.created(task)
    calls = fail_transiently_until_given_up(s, PromptRejected(task.id, 0, PROMPT_DOWN, transient=True))
    assert task.status is TaskStatus.INTERRUPTED and task.end_reason is EndReason.PROMPT_REJECTED
    assert task.error == f"{PROMPT_DOWN} (gave up after {calls} calls over 23s)" and calls == 7


def test_a_4xx_prompt_rejection_ends_the_task_with_its_error() -> None:
    s = Sim()
    task = s.launch()
    s.created(task)
    s.feed(PromptRejected(task.id, 0, "POST /session/x/prompt_async answered 400: bad body"))
    assert task.status is TaskStatus.INTERRUPTED
    assert task.error == "POST /session/x/prompt_async answered 400: bad body"


def test_a_host_restart_resend_refused_for_good_fails_the_task_naming_the_restart() -> None:
    """§15.5: the re-send after opencode restarted did not get through: the task fails, and says so."""
    s = Sim()
    task = running(s)
    assert task.session_id is not None
    s.feed(HostRestarted())
    s.idle(task.session_id)
    assert of(s.polled({}), PromptChild)
    s.feed(PromptRejected(task.id, task.attempt, "POST /session/x/prompt_async answered 400: bad body"))
    assert task.status is TaskStatus.FAILED and task.end_reason is EndReason.HOST_RESTARTED
    assert task.error == "POST /session/x/prompt_async answered 400: bad body"
    (msg,) = s.parent_idle_and_flush()
    assert "opencode restarted twice while it ran and its prompt was lost" in msg.text


def test_a_rejection_of_an_earlier_attempt_s_prompt_is_ignored() -> None:
    """§10.4: after a fallback the task starts again on the next model; a late refusal of the prompt of
    the attempt it left does not end it."""
    s = Sim({"agents": {"explore": {"fallback_models": ["prov/b"]}}})
    task = s.launch(parent_model="prov/a")
    s.start(task)
    assert task.session_id is not None
    s.feed(SessionError(task.session_id, RATE_LIMIT))
    s.abort_done(task)
    assert task.status is TaskStatus.STARTING and task.attempt == 1
    assert s.feed(PromptRejected(task.id, 0, "POST /session/x/prompt_async answered 400: bad body")) == []
    s.accepted(task)
    assert task.status is TaskStatus.RUNNING


def test_a_create_failure_for_a_task_cancelled_meanwhile_changes_nothing() -> None:
    """§6.6: cancelled while starting, the task stays cancelled whatever the create call reports."""
    for transient in (False, True):
        s = Sim()
        task = s.launch()
        s.sched.cancel(CancelRequest(task_id=task.id, caller_session_id=P), s.now)
        assert s.feed(ChildCreateFailed(task.id, DOWN, transient=transient)) == []
        assert task.status is TaskStatus.CANCELLED and task.end_reason is EndReason.CANCELLED_BY_PARENT


def test_a_retry_timer_after_the_call_went_through_does_nothing() -> None:
    """The failed call was retried and the child arrived before the backoff ran out: nothing is sent again."""
    s = Sim()
    task = s.launch()
    s.feed(ChildCreateFailed(task.id, DOWN, transient=True))
    s.feed(ChildCreated(task.id, "ses_c"))
    s.accepted(task)
    s.advance(0.5)
    assert s.fire(host_retry_timer(task.id)) == []


def test_a_prompt_retry_timer_of_a_task_cancelled_meanwhile_does_nothing() -> None:
    s = Sim()
    task = s.launch()
    s.created(task)
    s.feed(PromptRejected(task.id, 0, PROMPT_DOWN, transient=True))
    s.sched.cancel(CancelRequest(task_id=task.id, caller_session_id=P), s.now)
    s.advance(0.5)
    assert of(s.fire(host_retry_timer(task.id)), PromptChild) == []


def test_a_retry_status_found_by_the_poll_switches_to_the_next_model() -> None:
    """§8.7, §10.1: the backup poll hands a ``retry`` status, with its message, to the fallback rules."""
    s = Sim({"agents": {"explore": {"fallback_models": ["prov/b"]}}})
    task = s.launch(parent_model="prov/a")
    s.start(task)
    assert task.session_id is not None
    s.feed(StatusPolled({task.session_id: SessionStatus(task.session_id, StatusType.RETRY,
                                                        message="Rate limit exceeded, retrying in 5s")}))
    assert task.model == "prov/b"


def test_the_poll_completes_every_running_task_it_reports_idle() -> None:
    """§8.7: one poll settles all answered children, whatever else holds a slot."""
    s = Sim({"background_task": {"defaultConcurrency": 0}})
    tasks = [running(s) for _ in range(3)]
    starting = s.launch()
    for task in tasks:
        s.answer(task, idle=False)
    s.polled({})
    assert starting.status is TaskStatus.STARTING
    assert [t.status for t in tasks] == [TaskStatus.COMPLETED] * 3


def test_a_child_listed_again_restarts_the_gone_clock() -> None:
    """§9 T4: a poll that lists the child again clears the 404s seen so far; the clock starts anew."""
    s = Sim()
    task = running(s)
    sid = task.session_id
    assert sid is not None
    s.polled({})
    s.feed(SessionLookup(sid, False))
    s.advance(30)
    s.polled({sid: StatusType.BUSY})
    s.advance(1)
    s.polled({})
    s.feed(SessionLookup(sid, False))
    s.advance(GONE_S - 0.01)
    s.polled({})
    s.feed(SessionLookup(sid, False))
    assert task.status is TaskStatus.RUNNING
    s.advance(0.01)
    s.polled({})
    s.feed(SessionLookup(sid, False))
    assert task.status is TaskStatus.FAILED and task.end_reason is EndReason.SESSION_GONE
    assert task.error == f"opencode answered 404 for {sid} over 1m 0s"


def test_the_gone_check_asks_again_after_each_answer() -> None:
    """§9 T4: 404s are checked again and again over the timeout, one lookup at a time."""
    s = Sim()
    task = running(s)
    sid = task.session_id
    assert sid is not None
    assert len(of(s.polled({}), LookupSession)) == 1
    assert of(s.polled({}), LookupSession) == []  # the first is still out
    s.feed(SessionLookup(sid, False))
    s.advance(3)
    assert len(of(s.polled({}), LookupSession)) == 1


def test_reports_about_unknown_tasks_and_sessions_change_nothing() -> None:
    """A refresh for a task baton forgot, or a compaction of a session without tasks, does nothing."""
    s = Sim()
    assert s.feed(ActivityRefreshed("bg_forgotten", s.now)) == []
    assert s.feed(ParentCompacted("ses_without_tasks")) == []


def test_each_compaction_gets_its_own_notice() -> None:
    """§12.5, §12.4.1: two compactions of P make two outbox rows, one message each."""
    s = Sim()
    running(s)
    s.status(P, StatusType.BUSY)
    s.feed(ParentCompacted(P))
    s.feed(ParentCompacted(P))
    assert len(s.outbox) == 2
