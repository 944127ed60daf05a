"""The router (``baton.runtime.router``): who sees which event, actions to the executor of their type,
a job's outcome fed back, and a job that fails counted, never fatal."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import anyio.lowlevel
import pytest
import structlog

from baton.actions import Action, CancelTimer, Note, Schedule
from baton.events import Event, SessionIdle, TimerFired
from baton.runtime.jobs import Job, Jobs
from baton.runtime.router import Router
from baton.tasks.actions import PollStatus, TaskAction
from baton.tasks.events import Attached, SchedulerEvent, StatusPolled
from baton.testing.clock import FakeClock

pytestmark = pytest.mark.anyio


@pytest.fixture(name="anyio_backend")
def _anyio_backend() -> str:
    return "asyncio"


class Decider:
    def __init__(self, *answers: TaskAction) -> None:
        self.seen: list[SchedulerEvent] = []
        self.answers = list(answers)

    def handle(self, event: SchedulerEvent, now: float) -> list[TaskAction]:
        self.seen.append(event)
        return [self.answers.pop(0)] if self.answers else []


class Policy(Decider):
    def handle(self, event: Event, now: float) -> Sequence[Action]:  # type: ignore[override]
        self.seen.append(event)
        return []


class Executor:
    def __init__(self, outcome: SchedulerEvent | None = None, *, fail: bool = False) -> None:
        self.done: list[TaskAction] = []
        self.outcome = outcome
        self.fail = fail

    def execute(self, action: TaskAction, now: float) -> Job | None:
        self.done.append(action)

        async def job() -> SchedulerEvent | None:
            if self.fail:
                raise RuntimeError("bug")
            return self.outcome

        return job


class Observer:
    def __init__(self) -> None:
        self.seen: list[Event] = []

    def observe(self, event: Event, now: float) -> None:
        self.seen.append(event)


def test_stream_events_go_to_both_deciders_timers_and_outcomes_to_their_own() -> None:
    policy, scheduler, observer = Policy(), Decider(), Observer()
    router = Router(policy, scheduler, [], Jobs(), FakeClock(10.0), observers=[observer])
    for event in (SessionIdle("ses_1"), TimerFired("fb:x"), TimerFired("tasks:tick"), Attached(),
                  StatusPolled(None)):
        router.feed(event)
    assert policy.seen == [SessionIdle("ses_1"), TimerFired("fb:x")]
    assert observer.seen == [SessionIdle("ses_1"), TimerFired("fb:x")]
    assert scheduler.seen == [SessionIdle("ses_1"), TimerFired("fb:x"), TimerFired("tasks:tick"), Attached(),
                              StatusPolled(None)]
    assert (router.events, router.last_event_at) == (5, 10.0)


async def test_actions_go_to_the_executor_of_their_type_and_outcomes_come_back() -> None:
    scheduler = Decider(PollStatus(), Note(None, "k", "t"), Schedule("tasks:x", 1.0), CancelTimer("x"))
    core, tasks = Executor(), Executor(StatusPolled(None))
    jobs = Jobs()
    router = Router(Policy(), scheduler, [((Note, Schedule), core), ((PollStatus,), tasks)], jobs, FakeClock())
    async with anyio.create_task_group() as tg:
        tg.start_soon(jobs.run)
        await anyio.lowlevel.checkpoint()
        router.feed(Attached())  # → PollStatus → its outcome, StatusPolled, is fed back
        with anyio.fail_after(1):
            while StatusPolled(None) not in scheduler.seen:  # noqa: ASYNC110 - a list, no event to wait on
                await anyio.sleep(0.01)
        router.feed(Attached())  # → Note
        router.feed(Attached())  # → Schedule
        router.feed(Attached())  # → CancelTimer: no executor for it here, ignored
        tg.cancel_scope.cancel()
    assert tasks.done == [PollStatus()]
    assert core.done == [Note(None, "k", "t"), Schedule("tasks:x", 1.0)]


async def test_a_job_that_fails_is_counted_and_the_rest_carries_on() -> None:
    jobs = Jobs()
    router = Router(Policy(), Decider(PollStatus()), [((PollStatus,), Executor(fail=True))], jobs, FakeClock())
    with structlog.testing.capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(jobs.run)
            await anyio.lowlevel.checkpoint()
            router.feed(Attached())
            with anyio.fail_after(1):
                while not jobs.errors:  # noqa: ASYNC110 - a counter, no event to wait on
                    await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
    assert jobs.errors == 1 and "RuntimeError: bug" in str(jobs.last_error)
    assert "execute.<locals>.job" in str(jobs.last_error)
    assert any(e["event"].startswith("internal error") for e in logs)


def test_a_step_outside_feed_runs_its_actions_at_the_same_time() -> None:
    core = Executor()
    router = Router(Policy(), Decider(), [((Note,), core)], Jobs(), FakeClock(42.0))
    assert router.run_step(lambda now: (now, [Note(None, "k", "t")])) == 42.0
    assert core.done == [Note(None, "k", "t")]
