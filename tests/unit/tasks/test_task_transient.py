"""Transient opencode failures while starting a child: retried, bounded, journaled; a 4xx is final.

The scheduler tests drive the pure decider with a fake clock; the executor tests check how
``baton.runtime.tasks.TaskExecutor`` turns opencode's failures into events (transient or not, never an
empty reason).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest
from task_sim import CreateChild, Deliver, Note, PromptChild, Schedule, Sim, of

from baton.events import SessionError
from baton.opencode.client import OpencodeClient, OpencodeUnavailable
from baton.runtime.tasks import SessionTree, TaskChanges, TaskExecutor
from baton.store import Store
from baton.tasks import CancelRequest, EndReason, Task, TaskStatus
from baton.tasks.actions import TaskAction
from baton.tasks.events import (
    ChildCreated,
    ChildCreateFailed,
    DeliveryOutcome,
    DeliveryResult,
    HostRestarted,
    PromptRejected,
    SchedulerEvent,
)
from baton.tasks.transient import HOST_RETRY_BUDGET_S, HOST_RETRY_MAX_S, host_retry_timer

DOWN = "POST /session failed: ConnectError"
RATE_LIMIT = {"name": "APIError", "data": {"message": "Rate limit exceeded", "statusCode": 429}}


def retry_at(actions: list[TaskAction], task: Task) -> float:
    (timer,) = [a for a in of(actions, Schedule) if a.key == host_retry_timer(task.id)]
    return timer.at


def test_a_create_failing_while_opencode_restarts_is_retried_with_backoff() -> None:
    """No connection on POST /session: the task stays starting, tries again after 0.5 s then 1 s,
    each retry journaled, and the retry adopts a child the failed call may have created."""
    s = Sim()
    task = s.launch()
    out = s.feed(ChildCreateFailed(task.id, DOWN, transient=True))
    assert task.status is TaskStatus.STARTING
    assert retry_at(out, task) == s.now + 0.5
    (note,) = [n for n in of(out, Note) if n.kind == "task_host_retry"]
    assert DOWN in note.text and "0.5s" in note.text and "call 2" in note.text
    s.advance(0.5)
    again = s.fire(host_retry_timer(task.id))
    assert of(again, CreateChild) == [CreateChild(task.id, task.parent_session_id, of(s.log, CreateChild)[0].title,
                                                  task.directory, adopt=True)]
    out = s.feed(ChildCreateFailed(task.id, DOWN, transient=True))
    assert retry_at(out, task) == s.now + 1.0
    s.advance(1.0)
    s.fire(host_retry_timer(task.id))
    out = s.feed(ChildCreated(task.id, "ses_late"))
    assert of(out, PromptChild) and task.session_id == "ses_late"
    s.accepted(task)
    assert task.status is TaskStatus.RUNNING


def test_transient_create_failures_give_up_within_about_30_seconds() -> None:
    """The backoff doubles up to 8 s; once the next try would pass 30 s the task fails, saying how long it tried."""
    s = Sim()
    task = s.launch()
    start, delays = s.now, []
    while task.status is TaskStatus.STARTING:
        out = s.feed(ChildCreateFailed(task.id, DOWN, transient=True))
        timers = [a for a in of(out, Schedule) if a.key == host_retry_timer(task.id)]
        if not timers:
            break
        delays.append(timers[0].at - s.now)
        s.advance(delays[-1])
        assert of(s.fire(host_retry_timer(task.id)), CreateChild)
    assert delays == [0.5, 1.0, 2.0, 4.0, HOST_RETRY_MAX_S, HOST_RETRY_MAX_S]
    assert s.now - start <= HOST_RETRY_BUDGET_S
    assert task.status is TaskStatus.FAILED and task.end_reason is EndReason.CREATE_FAILED
    assert task.error is not None and DOWN in task.error and "gave up after 7 calls" in task.error


def test_a_4xx_on_create_is_final() -> None:
    """opencode's own refusal of the request would not change: the task fails at once, no retry."""
    s = Sim()
    task = s.launch()
    out = s.feed(ChildCreateFailed(task.id, "POST /session answered 400: bad parent"))
    assert task.status is TaskStatus.FAILED and task.error == "POST /session answered 400: bad parent"
    assert not [a for a in of(out, Schedule) if a.key.startswith(host_retry_timer(""))]


def test_a_transient_prompt_failure_is_retried_and_a_first_prompt_looks_for_its_anchor() -> None:
    """prompt_async timed out (it may have arrived): the retry first looks for the anchor, same message id."""
    s = Sim()
    task = s.launch()
    (first,) = of(s.created(task), PromptChild)
    out = s.feed(PromptRejected(task.id, task.attempt, "POST /session/x/prompt_async timed out", transient=True))
    assert task.status is TaskStatus.STARTING and retry_at(out, task) == s.now + 0.5
    s.advance(0.5)
    (again,) = of(s.fire(host_retry_timer(task.id)), PromptChild)
    assert again.message_id == first.message_id and again.only_if_absent and not first.only_if_absent
    assert again.text == first.text and again.model == first.model
    s.accepted(task)
    assert task.status is TaskStatus.RUNNING


def test_a_4xx_prompt_rejection_is_final() -> None:
    s = Sim()
    task = s.launch()
    s.created(task)
    s.feed(PromptRejected(task.id, task.attempt, "POST /session/x/prompt_async answered 400: bad body"))
    assert task.status is TaskStatus.INTERRUPTED and task.end_reason is EndReason.PROMPT_REJECTED


def test_a_fallback_resend_that_fails_transiently_is_sent_again_not_looked_up() -> None:
    """A retry attempt's anchor is stored already (presence proves nothing): it simply goes again."""
    s = Sim({"agents": {"explore": {"fallback_models": ["prov/b"]}}})
    task = s.launch(parent_model="prov/a")
    s.start(task)
    assert task.session_id is not None
    s.feed(PromptRejected(task.id, task.attempt, "stale", transient=True))  # an old attempt's: ignored
    s.feed(SessionError(task.session_id, RATE_LIMIT))
    s.abort_done(task)
    assert task.status is TaskStatus.STARTING and task.model == "prov/b"
    out = s.feed(PromptRejected(task.id, task.attempt, "POST /session/x/prompt_async failed: ReadError",
                                transient=True))
    s.advance(retry_at(out, task) - s.now)
    (again,) = of(s.fire(host_retry_timer(task.id)), PromptChild)
    assert not again.only_if_absent and again.model == "prov/b"


def test_a_retry_timer_of_a_task_that_ended_meanwhile_does_nothing() -> None:
    """Cancelled during the backoff: the timer finds nothing to retry."""
    s = Sim()
    task = s.launch()
    s.feed(ChildCreateFailed(task.id, DOWN, transient=True))
    s.sched.cancel(CancelRequest(task_id=task.id, caller_session_id=task.parent_session_id), s.now)
    s.advance(1)
    assert s.fire(host_retry_timer(task.id)) == []


def test_a_host_restart_resend_failing_transiently_is_retried() -> None:
    """The §15.5 re-send after opencode restarted is itself retried when opencode is not back yet."""
    s = Sim()
    task = s.launch()
    s.start(task)
    assert task.session_id is not None
    s.feed(HostRestarted())
    s.idle(task.session_id)
    (resend,) = of(s.polled({}), PromptChild)
    out = s.feed(PromptRejected(task.id, task.attempt, "POST failed: ConnectError", transient=True))
    assert task.status is TaskStatus.RUNNING
    s.advance(retry_at(out, task) - s.now)
    (again,) = of(s.fire(host_retry_timer(task.id)), PromptChild)
    assert again == resend


# ---------------------------------------------------------------------- the executor


def _executor(tmp_path: Path, handler: Any) -> TaskExecutor:
    client = OpencodeClient("http://opencode.test", transport=httpx2.MockTransport(handler))
    return TaskExecutor(client, Store(tmp_path / "b.db"), SessionTree(client, "/p"), TaskChanges())


async def _outcome(executor: TaskExecutor, action: TaskAction) -> SchedulerEvent | None:
    """Execute one I/O action as the router does: its job, run to its outcome."""
    job = executor.execute(action, 0.0)
    assert job is not None
    return await job()


def _reset(request: httpx2.Request) -> httpx2.Response:
    raise httpx2.RemoteProtocolError("")  # a connection dropped by a restarting server: no text at all


@pytest.mark.parametrize(
    ("handler", "transient", "words"),
    [
        (_reset, True, "POST /session failed: RemoteProtocolError"),
        (lambda r: httpx2.Response(503, text="starting"), True, "answered 503"),
        (lambda r: httpx2.Response(400, text="bad"), False, "answered 400"),
        (lambda r: httpx2.Response(200, json={"no": "id"}), False, "no session"),
    ],
)
@pytest.mark.anyio
async def test_create_failures_say_whether_they_are_transient_and_never_have_an_empty_reason(
    tmp_path: Path, handler: Any, transient: bool, words: str
) -> None:
    event = await _outcome(_executor(tmp_path, handler), CreateChild("bg_1", "ses_p", "title [bg_1]", "/p"))
    assert isinstance(event, ChildCreateFailed) and event.transient is transient and words in event.error


@pytest.mark.anyio
async def test_prompt_failures_say_whether_they_are_transient(tmp_path: Path) -> None:
    status = 502

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, text="gateway")

    executor = _executor(tmp_path, handler)
    action = PromptChild("bg_1", 0, "ses_c", "msg_1", "explore", "prov/a", None, None, {}, "hi", "/p")
    first = await _outcome(executor, action)
    status = 404
    second = await _outcome(executor, action)
    assert isinstance(first, PromptRejected) and isinstance(second, PromptRejected)
    assert (first.transient, second.transient) == (True, False)


@pytest.mark.anyio
async def test_a_transport_error_without_text_names_its_class(tmp_path: Path) -> None:
    """httpx errors raised while opencode restarts often have an empty str(): the class is the reason."""
    client = OpencodeClient("http://opencode.test", transport=httpx2.MockTransport(_reset))
    with pytest.raises(OpencodeUnavailable, match=r"^POST /session failed: RemoteProtocolError$"):
        await client.create_session(title="t")
    await client.aclose()


@pytest.fixture(name="anyio_backend")
def _anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize(
    ("handler", "outcome"),
    [
        (_reset, DeliveryOutcome.RETRY),
        (lambda r: httpx2.Response(503, text="starting"), DeliveryOutcome.RETRY),
        (lambda r: httpx2.Response(404, text="gone"), DeliveryOutcome.PARENT_GONE),
        (lambda r: httpx2.Response(204), DeliveryOutcome.DELIVERED),
    ],
)
@pytest.mark.anyio
async def test_a_notification_that_cannot_reach_opencode_is_retried(
    tmp_path: Path, handler: Any, outcome: DeliveryOutcome
) -> None:
    """Deliveries already treat no connection and 5xx as "try again" (the notifier backs off and
    keeps the row); only a 404 for the parent drops it."""
    event = await _outcome(_executor(tmp_path, handler), Deliver("ses_p", "msg_n1", "task done", directory="/p"))
    assert isinstance(event, DeliveryResult) and event.outcome is outcome
    assert outcome is DeliveryOutcome.DELIVERED or event.detail
