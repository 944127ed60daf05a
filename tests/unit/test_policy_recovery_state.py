"""A re-send finished or dropped after a restart of baton: the journal lines in full and the state
the restarted baton carries on with (runtime-fallback §7 rule 8).

A restart is a fresh policy that sees what the first resync replays (the latest turn, its
assistant messages, the status) and then the intents the store held. Written against the mutants
mutation testing left alive in ``Recovery.on_recovered``, ``_rebuilt`` and ``_resend_recovered``
(``scripts/mutation.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from policy_sim import T0, Sim, make_config, notes, resends

from baton.actions import Action, ClearIntent, Note, ResendIntent, SaveIntent
from baton.catalog import Catalog, ModelInfo
from baton.events import AssistantMessage, CatalogSeen, RecoveredResend, SessionStatus, StatusType, UserMessage
from baton.models import model_key

S = "ses_1"
PRIMARY, BACKUP, THIRD = "fake/primary", "fake/backup", "fake/third"
CHAIN_SOURCE = "agents.build.fallback_models"
ABORTED = {"name": "MessageAbortedError", "data": {"message": "The operation was aborted."}}
BAD_REQUEST = {"name": "APIError", "data": {"message": "Bad request: unknown field", "statusCode": 400}}


def sim(tmp_path: Path, **sections: Any) -> Sim:
    return Sim(make_config(tmp_path, {"agents": {"build": {"fallback_models": [BACKUP, THIRD]}}, **sections}))


def intents(actions: list[Action]) -> list[ResendIntent]:
    return [a.intent for a in actions if isinstance(a, SaveIntent)]


def first_switch(tmp_path: Path) -> ResendIntent:
    """The primary's retry status: the switch to the backup, decided at T0 (its intent)."""
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    (intent,) = intents(s.retry(S))
    return intent


def second_switch(tmp_path: Path) -> ResendIntent:
    """On the backup (accepted), the backup's 429: the switch to the third (its intent)."""
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    (resend,) = resends(s.retry(S))
    s.result(S, resend.token)
    s.busy(S)
    s.assistant(S, "msg_a2", "msg_u1", BACKUP)
    (intent,) = intents(s.error(S, "Too many requests", 429))
    return intent


def reply(mid: str, model: str, *, error: object = None, done: bool = True) -> AssistantMessage:
    return AssistantMessage(S, mid, "msg_u1", model, "build", error=error, completed=done)


def restart(tmp_path: Path, *assistants: AssistantMessage, user: str = "msg_u1", model: str = PRIMARY,
            status: StatusType = StatusType.IDLE, **sections: Any) -> Sim:
    """A new baton 20 s later, after its first resync replayed the turn, its messages and status."""
    s = sim(tmp_path, **sections)
    s.advance(20)
    s.feed(UserMessage(S, user, model, "build", ({"id": f"prt_{user}", "type": "text", "text": "hello"},)))
    for message in assistants:
        s.feed(message)
    s.feed(SessionStatus(S, status))
    return s


def test_an_intent_for_an_older_prompt_is_dropped_and_said_in_full(tmp_path: Path) -> None:
    intent = first_switch(tmp_path)
    s = restart(tmp_path, user="msg_u2")
    assert s.feed(RecoveredResend(intent)) == [
        ClearIntent(S),
        Note(S, "recovery_skipped", f"a re-send on {BACKUP} from before baton's restart was dropped: a newer "
             "prompt was sent", {"model": BACKUP}),
    ]


def test_an_intent_whose_resend_ran_and_ended_is_dropped_and_said_in_full(tmp_path: Path) -> None:
    intent = first_switch(tmp_path)
    s = restart(tmp_path, reply("msg_u1_a1", PRIMARY, error=ABORTED), reply("msg_a2", BACKUP))
    assert s.feed(RecoveredResend(intent)) == [
        ClearIntent(S),
        Note(S, "recovery_skipped", f"a re-send on {BACKUP} from before baton's restart was dropped: the "
             f"re-sent turn on {BACKUP} ran and ended before the restart", {"model": BACKUP}),
    ]


def test_a_recovered_second_switch_goes_on_from_where_the_chain_stood(tmp_path: Path) -> None:
    """The intent's state before the switch (on the backup, index 0, attempt 1, its chain's source)
    is the state the re-send is recorded and committed with."""
    intent = second_switch(tmp_path)
    assert (intent.model, intent.from_index, intent.attempts) == (THIRD, 0, 1)
    s = restart(tmp_path, reply("msg_u1_a1", PRIMARY, error=ABORTED), reply("msg_a2", BACKUP, error=ABORTED),
                model=BACKUP)
    out = s.feed(RecoveredResend(intent))
    (again,) = intents(out)
    assert (again.model, again.current, again.index, again.from_index, again.attempts, again.chain_source) == (
        THIRD, BACKUP, 1, 0, 1, CHAIN_SOURCE)
    (resend,) = resends(out)
    s.result(S, resend.token)
    fb = s.policy.sessions[S].fb
    assert fb is not None and (fb.current, fb.index, fb.attempts, fb.chain_source) == (THIRD, 1, 2, CHAIN_SOURCE)


def test_a_recovered_intent_on_a_model_cooling_now_is_sent_to_the_next_one(tmp_path: Path) -> None:
    intent = first_switch(tmp_path)
    s = restart(tmp_path, reply("msg_u1_a1", PRIMARY, error=ABORTED))
    s.policy.cooldowns.extend(BACKUP, s.now + 60)
    out = s.feed(RecoveredResend(intent))
    assert [r.model for r in resends(out)] == [THIRD]
    (note,) = notes(out, "recovered")
    assert note.text == ("re-send after a restart of baton: the message is unanswered; re-sending it on "
                         f"{THIRD} ({BACKUP} is cooling down now)")


def test_a_recovered_intent_re_chosen_keeps_the_spend_guard_of_the_failing_model(tmp_path: Path) -> None:
    """The backup cools since the decision; the third costs ten times the primary that failed, above
    ``max_cost_ratio``: nothing else may be taken, so the message still goes to the backup."""
    intent = first_switch(tmp_path)
    s = restart(tmp_path, reply("msg_u1_a1", PRIMARY, error=ABORTED), baton={"max_cost_ratio": 2})
    s.feed(CatalogSeen(Catalog({model_key(m.model): m for m in (
        ModelInfo(PRIMARY, 1, 1), ModelInfo(BACKUP, 1, 1), ModelInfo(THIRD, 10, 10))})))
    s.policy.cooldowns.extend(BACKUP, s.now + 60)
    assert [r.model for r in resends(s.feed(RecoveredResend(intent)))] == [BACKUP]


def test_an_error_the_resync_showed_is_not_decided_again_after_an_adoption(tmp_path: Path) -> None:
    """The re-sent turn runs on the backup after the restart (adopted, watched); the resync had shown
    a failed message of the backup's, already journaled then: that message updated again is not a
    second failure."""
    intent = first_switch(tmp_path)
    s = restart(tmp_path, reply("msg_u1_a1", PRIMARY, error=ABORTED), reply("msg_a2", BACKUP, error=BAD_REQUEST),
                reply("msg_a3", BACKUP, done=False), model=BACKUP, status=StatusType.BUSY)
    out = s.feed(RecoveredResend(intent))
    assert [n.kind for n in notes(out)] == ["recovered"]
    assert s.feed(reply("msg_a2", BACKUP, error=BAD_REQUEST)) == []
    fb = s.policy.sessions[S].fb
    assert fb is not None and fb.awaiting and fb.watchdog_at == T0 + 20 + 30


def test_an_intent_for_a_turn_the_new_baton_switched_itself_is_skipped_and_said_in_full(tmp_path: Path) -> None:
    """The resync showed the primary's 429: the new baton switched the turn itself (its own intent
    replaced the old one in the store), so the old intent is only journaled."""
    intent = first_switch(tmp_path)
    s = restart(tmp_path, reply("msg_u1_a1", PRIMARY, error={"name": "APIError", "data": {
        "message": "Too many requests", "statusCode": 429}}))
    assert s.feed(RecoveredResend(intent)) == [
        Note(S, "recovery_skipped", "a re-send from before baton's restart was found, but baton already re-sends "
             "this turn since its restart")]


def test_a_kept_park_writes_the_very_intent_back_to_the_store_first(tmp_path: Path) -> None:
    """Backup and third cooling: the primary's 429 parks the turn (until T0+60); a new baton 20 s
    later keeps that park: the store holds this intent again, before the timer is set."""
    s = sim(tmp_path)
    s.policy.cooldowns.extend(BACKUP, T0 + 600)
    s.policy.cooldowns.extend(THIRD, T0 + 300)
    s.start_turn(S, model=PRIMARY)
    (park,) = intents(s.error(S, "Too many requests", 429))
    assert park.park_until == T0 + 60
    t = restart(tmp_path, reply("msg_u1_a1", PRIMARY, error=ABORTED))
    out = t.feed(RecoveredResend(park))
    assert out[0] == SaveIntent(park) and [n.kind for n in notes(out)] == ["recovered"]
