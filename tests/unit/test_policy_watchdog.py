"""The watchdog's own path, and what an idle turn clears, action by action (runtime-fallback §6.6, §6.7.3).

A re-sent turn whose model shows no output within ``timeout_seconds`` is moved on: the silent
model cools (``SaveCooldown`` with its reason), the next chain model gets the message; with
nowhere to go the journal says so and the session stops waiting. Written against the mutants
mutation testing left alive in ``Timers.on_timer``, ``Tracker.idle`` and ``FallbackPolicy._on_idle``
(``scripts/mutation.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from policy_sim import T0, Sim, make_config, notes, resends

from baton.actions import Action, CancelTimer, ClearIntent, Note, Resend, ResendIntent, SaveCooldown, SaveIntent
from baton.cooldowns import Cooldowns
from baton.events import AssistantMessage, PartDelta, SessionCreated, SessionIdle, SessionStatus, StatusType
from baton.fallback.parking import park_key
from baton.fallback.policy import FallbackPolicy
from baton.fallback.reset_times import ResetSource
from baton.fallback.switching import watchdog_key

S = "ses_1"
PRIMARY, BACKUP, THIRD = "fake/primary", "fake/backup", "fake/third"
DIRECTORY = "/work/project"
CHAIN = {"agents": {"build": {"fallback_models": [BACKUP, THIRD]}}}
PART = {"id": "prt_msg_u1", "sessionID": S, "messageID": "msg_u1", "type": "text", "text": "hello"}


def sim(tmp_path: Path, cooldowns: Cooldowns | None = None, **sections: dict[str, Any]) -> Sim:
    s = Sim(make_config(tmp_path, {**CHAIN, **sections}), cooldowns)
    s.feed(SessionCreated(S, None, DIRECTORY))
    return s


def on_backup(s: Sim) -> None:
    """The primary fails with a 429; the re-send on the backup is accepted and starts (watchdog armed)."""
    s.start_turn(S, model=PRIMARY)
    (resend,) = resends(s.error(S, "Too many requests", 429))
    s.result(S, resend.token)
    s.busy(S)
    s.assistant(S, "msg_a2", "msg_u1", BACKUP)


def awaiting(s: Sim) -> bool:
    (row,) = s.policy.snapshot(s.now)
    return row.awaiting


def test_a_silent_backup_is_cooled_and_the_turn_moves_on_to_the_next_model(tmp_path: Path) -> None:
    """Exactly: the backup's cooldown (with why), the switch (why: the timeout), the intent, the re-send."""
    s = sim(tmp_path)
    on_backup(s)
    s.advance(30)
    fired = s.fire(watchdog_key(S))
    assert fired == [
        SaveCooldown(BACKUP, T0 + 30 + 60, "no answer before the watchdog fired", ResetSource.CONFIGURED),
        Note(S, "switch", f"{BACKUP} failed (no answer within 30s); switching to {THIRD}",
             {"from": BACKUP, "to": THIRD, "attempt": 2, "chain_source": "agents.build.fallback_models",
              "cause": "timeout"}),
        SaveIntent(ResendIntent(
            session_id=S, message_id="msg_u1", model=THIRD, agent="build", directory=DIRECTORY, original=PRIMARY,
            current=BACKUP, failing=BACKUP, reason="no answer within 30s", chain=(BACKUP, THIRD),
            chain_source="agents.build.fallback_models", index=1, from_index=0, attempts=1, retry=0,
            seen=("msg_u1_a1", "msg_a2"), decided_at=T0 + 30)),
        Resend(S, 2, "msg_u1", THIRD, "build", (PART,), True, DIRECTORY),
    ]
    assert awaiting(s)


def test_a_watchdog_with_nowhere_to_go_says_so_and_stops_waiting(tmp_path: Path) -> None:
    """The third model cools and parking is off: the journal names the silent model, nothing is
    re-sent, and the session no longer waits for an answer (a late answer confirms nothing)."""
    s = sim(tmp_path, Cooldowns([(THIRD, T0 + 600)]), baton={"park_when_exhausted": False})
    on_backup(s)
    s.advance(30)
    fired = s.fire(watchdog_key(S))
    assert resends(fired) == []
    assert [(n.kind, n.text) for n in notes(fired)] == [
        ("watchdog", f"{BACKUP} gave no answer in time"),
        ("no_fallback", f"{BACKUP} failed and no model of the chain is usable now; leaving opencode's own retry "
                        "running"),
    ]
    assert fired[0] == SaveCooldown(BACKUP, T0 + 90, "no answer before the watchdog fired", ResetSource.CONFIGURED)
    assert not awaiting(s)
    assert notes(s.text(S, "msg_a2"), "answered") == []


def test_a_rerouted_turn_that_never_started_a_message_still_moves_on(tmp_path: Path) -> None:
    """The turn was moved off the cooling primary before any assistant message: the watchdog of the
    re-send on the backup, which never wrote one either, names no message and still moves on."""
    s = sim(tmp_path, Cooldowns([(PRIMARY, T0 + 600)]))
    s.user(S, "msg_u1", PRIMARY)
    (resend,) = resends(s.busy(S))
    s.result(S, resend.token)
    s.idle(S)
    s.advance(30)
    fired = s.fire(watchdog_key(S))
    (again,) = resends(fired)
    assert (again.model, again.message_id, again.abort) == (THIRD, "msg_u1", False)
    (save,) = [a.intent for a in fired if isinstance(a, SaveIntent)]
    assert save.seen == ()


def test_output_whose_model_was_named_later_is_the_answer_the_watchdog_finds(tmp_path: Path) -> None:
    """The backup's message streamed text before opencode named its model: no switch was confirmed
    then, but when the watchdog fires the turn has the backup's answer: nothing moves, nothing cools,
    and the session stops waiting."""
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    (resend,) = resends(s.error(S, "Too many requests", 429))
    s.result(S, resend.token)
    s.busy(S)
    s.feed(AssistantMessage(S, "msg_a2", "msg_u1", None, "build"))
    assert notes(s.text(S, "msg_a2"), "answered") == []
    s.feed(AssistantMessage(S, "msg_a2", "msg_u1", BACKUP, "build"))
    assert awaiting(s)
    s.advance(30)
    assert s.fire(watchdog_key(S)) == []
    assert not awaiting(s) and not s.policy.core.cooling(BACKUP, s.now)


# ------------------------------------------------------------------ idle (§6.7.3)


def parked_on_a_retry_status(s: Sim) -> list[Action]:
    """On the backup (watchdog armed), the backup reports a rate limit through opencode's retry
    status; the primary and the third cool: the turn is parked (opencode's retry aborted)."""
    on_backup(s)
    s.policy.cooldowns.extend(PRIMARY, s.now + 300)
    out = s.retry(S, message="Rate limit exceeded", next_ms=int((s.now + 120) * 1000))
    assert notes(out, "parked")
    return out


def test_an_idle_after_a_park_decided_on_a_retry_status_cancels_the_watchdog(tmp_path: Path) -> None:
    s = sim(tmp_path, Cooldowns([(THIRD, T0 + 900)]))
    parked_on_a_retry_status(s)
    assert s.feed(SessionStatus(S, StatusType.IDLE)) == [CancelTimer(watchdog_key(S))]
    assert s.feed(SessionIdle(S)) == []
    assert s.delete(S) == [CancelTimer(park_key(S)), ClearIntent(S)]


def test_session_idle_alone_ends_the_turn_as_an_idle_status_does(tmp_path: Path) -> None:
    """opencode's ``session.idle`` without a ``session.status`` idle before it."""
    s = sim(tmp_path, Cooldowns([(THIRD, T0 + 900)]))
    parked_on_a_retry_status(s)
    assert s.feed(SessionIdle(S)) == [CancelTimer(watchdog_key(S))]
    assert s.feed(SessionIdle(S)) == []


def test_an_idle_after_an_answered_switch_cancels_nothing(tmp_path: Path) -> None:
    s = sim(tmp_path)
    on_backup(s)
    assert notes(s.text(S, "msg_a2"), "answered")
    assert s.idle(S) == []
    assert s.delete(S) == []


def test_idle_of_a_session_another_owner_runs_is_not_the_policys(tmp_path: Path) -> None:
    """A task child belongs to the scheduler (§1): its idle is not looked at, and no session is made."""
    policy = FallbackPolicy(make_config(tmp_path, CHAIN), Cooldowns(), owned_elsewhere=lambda sid: sid == "ses_child")
    assert list(policy.handle(SessionIdle("ses_child"), T0)) == []
    assert list(policy.handle(SessionStatus("ses_child", StatusType.IDLE), T0)) == []
    assert "ses_child" not in policy.sessions


def test_a_delta_after_the_park_is_not_an_answer(tmp_path: Path) -> None:
    s = sim(tmp_path, Cooldowns([(THIRD, T0 + 900)]))
    parked_on_a_retry_status(s)
    assert s.feed(PartDelta(S, "msg_a2", "prt_x", "text", "late")) == []


# ------------------------------------------------------------------ forgetting (§6.9)


def test_unseen_sessions_are_looked_for_every_five_minutes_not_at_every_event(tmp_path: Path) -> None:
    """A sweep at T0+29:59 keeps the session (unseen 29:59); the next sweep is due five minutes
    later, so an event at T0+30:50 finds it still there, and the one at T0+34:59 forgets it."""
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    s.advance(30 * 60 - 1)
    s.feed(SessionCreated("ses_other", None, DIRECTORY))
    assert S in s.policy.sessions
    s.advance(51)
    s.feed(SessionCreated("ses_other", None, DIRECTORY))
    assert S in s.policy.sessions
    s.advance(4 * 60 + 9)
    s.feed(SessionCreated("ses_other", None, DIRECTORY))
    assert S not in s.policy.sessions


def test_a_session_unseen_for_exactly_thirty_minutes_is_kept(tmp_path: Path) -> None:
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    s.advance(25 * 60)
    s.feed(SessionCreated("ses_other", None, DIRECTORY))  # a sweep; the next one is due in 5 minutes
    s.advance(5 * 60)
    s.feed(SessionCreated("ses_other", None, DIRECTORY))
    assert S in s.policy.sessions
