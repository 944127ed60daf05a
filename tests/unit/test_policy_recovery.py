"""A durable re-send intent: recorded before every re-send, cleared once its outcome is known, and
finished exactly once by a baton restarted after a ``kill -9`` mid-fallback (spec §7 rule 8).

The policy is driven with a fake clock (``policy_sim``); a restart is a fresh policy that sees what
the engine's first resync replays (the session's latest turn, then its status) and then the
intents the store still held. The last two tests run the engine itself against a mock opencode.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from policy_sim import Sim, make_config, notes, resends, schedules

from baton.actions import RESEND_INTENT, Action, ClearIntent, Resend, ResendIntent, SaveIntent
from baton.clock import SystemClock
from baton.config import Config
from baton.daemon import build_engine
from baton.events import (
    AssistantMessage,
    RecoveredResend,
    ResendOutcome,
    SessionStatus,
    StatusType,
    UserMessage,
)
from baton.fallback.recovery import RECOVERY_MAX_AGE_S
from baton.fallback.switching import resend_retry_key, watchdog_key
from baton.opencode.client import OpencodeClient
from baton.store import Store
from baton.testing.clock import FakeClock

CHAIN = {"agents": {"build": {"fallback_models": ["fake/backup", "fake/third"]}}}
S = "ses_1"
ABORTED = {"name": "MessageAbortedError", "data": {"message": "The operation was aborted."}}
FIBERS = "All fibers interrupted without error"


def config(tmp_path: Path) -> Config:
    return make_config(tmp_path, CHAIN)


def saved(actions: list[Action]) -> list[ResendIntent]:
    return [a.intent for a in actions if isinstance(a, SaveIntent)]


def cleared(actions: list[Action]) -> list[str]:
    return [a.session_id for a in actions if isinstance(a, ClearIntent)]


def index_of(actions: list[Action], kind: type) -> int:
    return next(i for i, a in enumerate(actions) if isinstance(a, kind))


def switch(s: Sim) -> tuple[ResendIntent, Resend]:
    """A first fallback decided, its re-send in flight: the intent and the re-send."""
    s.start_turn(S)
    actions = s.retry(S)
    (intent,) = saved(actions)
    (resend,) = resends(actions)
    return intent, resend


def reply(mid: str, model: str, *, error: object = None, output: bool = False, done: bool = True,
          parent: str = "msg_u1") -> AssistantMessage:
    """An assistant message as a resync replays it."""
    return AssistantMessage(S, mid, parent, model, "build", error=error, completed=done, has_output=output)


PRIMARY_ABORTED = reply("msg_u1_a1", "fake/primary", error=ABORTED)


def restart(
    tmp_path: Path, *, user: str = "msg_u1", model: str = "fake/primary",
    assistants: tuple[AssistantMessage, ...] = (PRIMARY_ABORTED,), status: SessionStatus | None = None,
    now: float | None = None,
) -> Sim:
    """A restarted baton after its first resync replayed ``user``'s turn on ``model`` with
    ``assistants``, then the status (idle by default)."""
    s = Sim(config(tmp_path))
    if now is not None:
        s.now = now
    s.feed(UserMessage(S, user, model, "build", ({"id": f"prt_{user}", "type": "text", "text": "hello"},)))
    for message in assistants:
        s.feed(message)
    s.feed(status or SessionStatus(S, StatusType.IDLE))
    return s


def recover(s: Sim, intent: ResendIntent) -> list[Action]:
    return s.feed(RecoveredResend(intent))


# --- the intent: recorded before the re-send, cleared on every outcome ------------------------------------


def test_a_switch_records_its_intent_before_the_resend(tmp_path: Path) -> None:
    """The intent comes first (the engine writes it before the abort can start) and holds what a
    restarted baton needs: the message, the target, the state before the switch, the time."""
    s = Sim(config(tmp_path))
    s.start_turn(S)
    actions = s.retry(S)
    assert index_of(actions, SaveIntent) < index_of(actions, Resend)
    (intent,) = saved(actions)
    (resend,) = resends(actions)
    assert (intent.session_id, intent.message_id, intent.model, intent.agent) == (
        S, resend.message_id, resend.model, resend.agent)
    assert (intent.original, intent.current, intent.failing) == ("fake/primary",) * 3
    assert (intent.chain, intent.index, intent.from_index, intent.attempts, intent.retry) == (
        ("fake/backup", "fake/third"), 0, -1, 0, 0)
    assert intent.seen == ("msg_u1_a1",) and intent.decided_at == s.now
    assert ResendIntent.from_row(intent.to_row()) == intent


@pytest.mark.parametrize("outcome", list(ResendOutcome))
def test_the_intent_is_cleared_when_the_resend_reports(tmp_path: Path, outcome: ResendOutcome) -> None:
    s = Sim(config(tmp_path))
    _, resend = switch(s)
    actions = s.result(S, resend.token, outcome)
    assert cleared(actions) == [S] and index_of(actions, ClearIntent) == 0


def test_a_resend_retry_records_and_clears_its_own_intent(tmp_path: Path) -> None:
    """opencode failed the re-sent message at once: the same message again on the same model is
    recorded as try 2, before its re-send, and cleared when it reports."""
    s = Sim(config(tmp_path))
    _, resend = switch(s)
    s.result(S, resend.token)
    s.error(S, FIBERS, name="UnknownError")
    s.idle(S)
    s.advance(1)
    actions = s.fire(resend_retry_key(S))
    (intent,) = saved(actions)
    assert index_of(actions, SaveIntent) < index_of(actions, Resend)
    assert (intent.model, intent.current, intent.retry, intent.attempts) == ("fake/backup", "fake/backup", 2, 1)
    assert cleared(s.result(S, resends(actions)[0].token)) == [S]


@pytest.mark.parametrize("how", ["manual model change", "new prompt", "session deleted"])
def test_the_intent_is_cleared_when_the_switch_becomes_moot(tmp_path: Path, how: str) -> None:
    """Cleared at once, and only once: the re-send's late outcome clears nothing more."""
    s = Sim(config(tmp_path))
    _, resend = switch(s)
    if how == "manual model change":
        actions = s.feed(UserMessage(S, "msg_u1", "fake/third", "build"))
    elif how == "new prompt":
        actions = s.user(S, "msg_u2", "fake/primary")
    else:
        actions = s.delete(S)
    assert cleared(actions) == [S]
    assert cleared(s.result(S, resend.token)) == []


def test_a_swept_session_clears_its_intent(tmp_path: Path) -> None:
    s = Sim(config(tmp_path))
    switch(s)
    s.advance(31 * 60)
    assert cleared(s.user("ses_other", "msg_o1", "fake/primary")) == [S]


def test_a_user_stop_after_the_switch_clears_nothing_twice(tmp_path: Path) -> None:
    """The intent went with the outcome; the user's later stop ends the switch with no second clear."""
    s = Sim(config(tmp_path))
    _, resend = switch(s)
    assert cleared(s.result(S, resend.token)) == [S]
    s.advance(6)  # past the grace of baton's own abort
    stopped = s.assistant(S, "msg_a2", "msg_u1", "fake/backup", error=ABORTED)
    assert notes(stopped, "user_stop") and cleared(stopped) == []


# --- recovery after a restart ---------------------------------------------------------------------------------


def test_an_unanswered_message_is_resent_once_after_a_restart(tmp_path: Path) -> None:
    """Killed after the abort, before the prompt: the session is idle on an aborted turn. The message
    goes on the backup without an abort, journaled, and commits like the original switch would have."""
    intent, _ = switch(Sim(config(tmp_path)))
    s = restart(tmp_path)
    actions = recover(s, intent)
    (note,) = notes(actions, "recovered")
    assert note.text.startswith("re-send after a restart of baton")
    (resend,) = resends(actions)
    assert (resend.model, resend.message_id, resend.abort) == ("fake/backup", "msg_u1", False)
    assert resend.parts is not None and resend.parts[0]["text"] == "hello"
    assert index_of(actions, SaveIntent) < index_of(actions, Resend) and cleared(actions) == []
    done = s.result(S, resend.token)
    assert cleared(done) == [S]
    assert notes(done, "resent")[0].text == "message re-sent on fake/backup after a restart of baton (accepted)"
    state = s.policy.sessions[S].fb
    assert state is not None and (state.current, state.attempts, state.index) == ("fake/backup", 1, 0)
    s.busy(S)
    s.assistant(S, "msg_a2", "msg_u1", "fake/backup")
    assert notes(s.text(S, "msg_a2"), "answered")
    assert resends(recover(s, intent)) == []  # the same intent again: baton has acted since, nothing more


def test_a_turn_opencode_still_runs_is_aborted_before_the_resend(tmp_path: Path) -> None:
    intent, _ = switch(Sim(config(tmp_path)))
    s = restart(tmp_path, assistants=(reply("msg_u1_a1", "fake/primary", done=False),),
                status=SessionStatus(S, StatusType.BUSY))
    (resend,) = resends(recover(s, intent))
    assert resend.abort is True and resend.model == "fake/backup"


def test_a_target_cooling_since_the_decision_is_chosen_again(tmp_path: Path) -> None:
    """The backup started cooling after the switch chose it (another session failed on it): the
    recovered re-send goes to the next usable model, as the switch would choose now."""
    intent, _ = switch(Sim(config(tmp_path)))
    s = restart(tmp_path)
    s.policy.cooldowns.extend("fake/backup", s.now + 60)
    actions = recover(s, intent)
    (resend,) = resends(actions)
    assert resend.model == "fake/third" and saved(actions)[0].model == "fake/third"
    assert notes(actions, "recovered")[0].text.endswith("on fake/third (fake/backup is cooling down now)")
    s.result(S, resend.token)
    state = s.policy.sessions[S].fb
    assert state is not None and (state.current, state.index, state.attempts) == ("fake/third", 1, 1)


def test_a_recovered_resend_retry_goes_again_on_the_same_model(tmp_path: Path) -> None:
    """Killed during try 2 of a re-send opencode failed at once: try 2 is made, on the backup."""
    s = Sim(config(tmp_path))
    _, resend = switch(s)
    s.result(S, resend.token)
    s.assistant(S, "msg_a2", "msg_u1", "fake/backup")
    s.error(S, FIBERS, name="UnknownError")
    s.idle(S)
    s.advance(1)
    (intent,) = saved(s.fire(resend_retry_key(S)))
    assert intent.seen == ("msg_u1_a1", "msg_a2")
    died = {"name": "UnknownError", "data": {"message": FIBERS}}
    failed = (PRIMARY_ABORTED, reply("msg_a2", "fake/backup", error=died))
    s2 = restart(tmp_path, model="fake/backup", assistants=failed, now=s.now)
    (again,) = resends(recover(s2, intent))
    assert (again.model, again.abort) == ("fake/backup", False)
    assert "re-sent again on fake/backup after a restart of baton (try 2/3" in notes(
        s2.result(S, again.token), "resent")[0].text


def test_nothing_is_resent_when_the_answer_came_before_the_restart(tmp_path: Path) -> None:
    """The re-send was accepted (and answered) before the kill, its outcome never recorded."""
    intent, _ = switch(Sim(config(tmp_path)))
    answered = (PRIMARY_ABORTED, reply("msg_a2", "fake/backup", output=True))
    s = restart(tmp_path, model="fake/backup", assistants=answered)
    actions = recover(s, intent)
    assert resends(actions) == [] and cleared(actions) == [S]
    assert "fake/backup answered before the restart" in notes(actions, "recovery_skipped")[0].text


def test_a_resend_that_reached_opencode_and_runs_is_watched_not_sent_again(tmp_path: Path) -> None:
    """Killed after opencode accepted the prompt: the message names the backup, which runs it. The
    switch is adopted (committed, watchdog armed) and the backup's answer confirms it."""
    intent, _ = switch(Sim(config(tmp_path)))
    running = (PRIMARY_ABORTED, reply("msg_a2", "fake/backup", done=False))
    s = restart(tmp_path, model="fake/backup", assistants=running, status=SessionStatus(S, StatusType.BUSY))
    actions = recover(s, intent)
    assert resends(actions) == [] and cleared(actions) == [S]
    assert "reached opencode before baton's restart" in notes(actions, "recovered")[0].text
    assert [t.key for t in schedules(actions)] == [watchdog_key(S)]
    state = s.policy.sessions[S].fb
    assert state is not None and (state.original, state.current, state.attempts) == ("fake/primary", "fake/backup", 1)
    assert notes(s.text(S, "msg_a2"), "answered")


@pytest.mark.parametrize(
    ("what", "why"),
    [
        ("newer prompt", "a newer prompt was sent"),
        ("model changed", "the message's model was changed to fake/third"),
        ("too old", "it was decided 11 min ago"),
        ("session gone", "opencode shows no such session or message"),
        ("ran and ended", "the re-sent turn on fake/backup ran and ended before the restart"),
    ],
)
def test_a_moot_intent_is_cleared_with_a_journal_note(tmp_path: Path, what: str, why: str) -> None:
    intent, _ = switch(Sim(config(tmp_path)))
    if what == "newer prompt":
        s = restart(tmp_path, user="msg_u2", assistants=())
    elif what == "model changed":
        s = restart(tmp_path, model="fake/third", assistants=())
    elif what == "too old":
        s = restart(tmp_path, now=intent.decided_at + RECOVERY_MAX_AGE_S + 60)
    elif what == "session gone":
        s = Sim(config(tmp_path))
    else:
        ended = (PRIMARY_ABORTED, reply("msg_a2", "fake/backup"))
        s = restart(tmp_path, model="fake/backup", assistants=ended)
    actions = recover(s, intent)
    assert resends(actions) == [] and cleared(actions) == [S]
    (note,) = notes(actions, "recovery_skipped")
    assert note.text == f"a re-send on fake/backup from before baton's restart was dropped: {why}"


def test_a_switch_the_restarted_baton_made_itself_keeps_its_own_intent(tmp_path: Path) -> None:
    """Killed before the abort: opencode still retries, the resync's retry status switches anew
    (its intent replaces the old one in the store), and the recovered intent neither re-sends nor
    clears the new one."""
    intent, _ = switch(Sim(config(tmp_path)))
    retrying = SessionStatus(S, StatusType.RETRY, 1, "All credentials for model primary are cooling down", None)
    s = restart(tmp_path, assistants=(reply("msg_u1_a1", "fake/primary", done=False),), status=retrying)
    assert len(resends(s.log)) == 1 and len(saved(s.log)) == 1
    actions = recover(s, intent)
    assert resends(actions) == [] and cleared(actions) == []
    assert notes(actions, "recovery_skipped")


# --- the engine: the intent is written before the abort starts, and recovered at start ---------------------


@pytest.fixture(name="anyio_backend")
def _anyio_backend() -> str:
    return "asyncio"


class MockOpencode:
    """Just enough of opencode's API for one session: its messages, status, abort and prompt."""

    def __init__(self, store: Store, messages: list[dict[str, Any]], status: dict[str, Any]) -> None:
        self.store, self.messages, self.status = store, messages, status
        self.calls: list[tuple[str, Any]] = []
        self.prompted = anyio.Event()

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if path == "/event":
            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=self._stream())
        if path == "/session/status":
            return httpx2.Response(200, json=self.status)
        if path == f"/session/{S}/message":
            return httpx2.Response(200, json=self.messages)
        if path == f"/session/{S}/abort":
            self.calls.append(("abort", self.store.load_pending(RESEND_INTENT, ResendIntent.from_row)))
            return httpx2.Response(200, json=True)
        if path == f"/session/{S}/prompt_async":
            self.calls.append(("prompt", json.loads(request.content)))
            self.prompted.set()
            return httpx2.Response(204)
        return httpx2.Response(200, json={})

    @staticmethod
    async def _stream() -> Any:
        yield b'data: {"type":"server.connected","properties":{}}\n\n'
        await anyio.sleep_forever()


def user_row(model: str) -> dict[str, Any]:
    provider, model_id = model.split("/")
    return {"info": {"id": "msg_u1", "sessionID": S, "role": "user", "agent": "build",
                     "model": {"providerID": provider, "modelID": model_id}},
            "parts": [{"id": "prt_1", "sessionID": S, "messageID": "msg_u1", "type": "text", "text": "hello"}]}


def aborted_row() -> dict[str, Any]:
    return {"info": {"id": "msg_a1", "sessionID": S, "role": "assistant", "parentID": "msg_u1", "agent": "build",
                     "providerID": "fake", "modelID": "primary", "time": {"created": 1, "completed": 2},
                     "error": ABORTED}, "parts": []}


async def until_cleared(store: Store) -> None:
    with anyio.fail_after(5):
        while store.load_pending(RESEND_INTENT, ResendIntent.from_row):  # noqa: ASYNC110 - a store row, no event
            await anyio.sleep(0.01)


@pytest.mark.anyio
async def test_the_engine_writes_the_intent_before_the_abort_starts(tmp_path: Path) -> None:
    store = Store(tmp_path / "baton.db")
    mock = MockOpencode(store, [user_row("fake/primary")], {})
    client = OpencodeClient("http://opencode.test", transport=httpx2.MockTransport(mock.handler))
    engine = build_engine(client, config(tmp_path), store, clock=SystemClock())
    async with anyio.create_task_group() as tg:
        tg.start_soon(engine.run)
        with anyio.fail_after(5):
            await engine.attached.wait()
        engine.router.feed(UserMessage(S, "msg_u1", "fake/primary", "build"))
        engine.router.feed(SessionStatus(S, StatusType.BUSY))
        engine.router.feed(SessionStatus(S, StatusType.RETRY, 1, "All credentials for model primary are cooling down"))
        with anyio.fail_after(5):
            await mock.prompted.wait()
        await until_cleared(store)
        tg.cancel_scope.cancel()
    (abort, prompt) = mock.calls
    assert abort[0] == "abort" and [(i.session_id, i.model) for i in abort[1]] == [(S, "fake/backup")]
    assert prompt[0] == "prompt"
    store.close()


@pytest.mark.anyio
async def test_the_engine_finishes_an_intent_a_killed_baton_left(tmp_path: Path) -> None:
    """At start the store holds an intent and opencode an idle session on an aborted turn (a session
    the resync would not look at otherwise): the message is re-sent on the backup, without an abort."""
    intent, _ = switch(Sim(config(tmp_path)))
    store = Store(tmp_path / "baton.db")
    store.put_pending(RESEND_INTENT, S, intent.to_row(), intent.decided_at)
    mock = MockOpencode(store, [user_row("fake/primary"), aborted_row()], {})
    client = OpencodeClient("http://opencode.test", transport=httpx2.MockTransport(mock.handler))

    clock = FakeClock(intent.decided_at + 2)
    engine = build_engine(client, config(tmp_path), store, clock=clock)
    async with anyio.create_task_group() as tg:
        tg.start_soon(engine.run)
        with anyio.fail_after(5):
            await mock.prompted.wait()
        await until_cleared(store)
        tg.cancel_scope.cancel()
    ((kind, body),) = mock.calls
    assert kind == "prompt"
    assert (body["messageID"], body["model"], body["agent"]) == ("msg_u1", {"providerID": "fake", "modelID": "backup"},
                                                                 "build")
    assert body["parts"][0]["text"] == "hello"
    assert [e.kind for e in store.read_journal(S)] == ["recovered", "resent"]
    store.close()
