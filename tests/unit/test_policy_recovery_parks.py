"""After a restart of baton: a stored park kept or dropped, and a re-send that reached opencode adopted
(runtime-fallback §7 rule 8, §6.10 rule 4), in the journal's words.

A restart is a fresh policy that sees what the first resync replays (the latest turn, its
assistant messages, the status) and then the intents the store held. Written against the mutants
mutation testing left alive in ``Recovery._repark`` and ``Recovery._adopt`` (``scripts/mutation.py``).
Clock times are read in UTC (``TZ`` set for each test): ``T0`` is 2027-01-15 08:00 UTC.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from policy_sim import T0, Sim, make_config, notes, resends, schedules

from baton.actions import Action, CancelTimer, ClearIntent, ResendIntent, SaveIntent, Schedule
from baton.cooldowns import Cooldowns
from baton.events import RecoveredResend, ResendOutcome, SessionCreated, StatusType, UserMessage
from baton.fallback.parking import park_key
from baton.fallback.recovery import RECOVERY_MAX_AGE_S
from baton.fallback.switching import resend_retry_key, watchdog_key

S = "ses_1"
PRIMARY, BACKUP, THIRD = "fake/primary", "fake/backup", "fake/third"
DIRECTORY = "/work/project"
FIBERS = "All fibers interrupted without error"


pytestmark = pytest.mark.usefixtures("utc")  # clock times read the same on any machine


def sim(tmp_path: Path, cooldowns: Cooldowns | None = None, **rf: Any) -> Sim:
    settings: dict[str, Any] = {"agents": {"build": {"fallback_models": [BACKUP, THIRD]}}}
    if rf:
        settings["runtime_fallback"] = rf
    s = Sim(make_config(tmp_path, settings), cooldowns)
    s.feed(SessionCreated(S, None, DIRECTORY))
    return s


def park_intent(tmp_path: Path) -> ResendIntent:
    """Backup and third cooling; the primary's 429 parks the turn until T0+60."""
    s = sim(tmp_path, Cooldowns([(BACKUP, T0 + 600), (THIRD, T0 + 300)]))
    s.start_turn(S, model=PRIMARY)
    (save,) = [a for a in s.error(S, "Too many requests", 429) if isinstance(a, SaveIntent)]
    return save.intent


def restarted(tmp_path: Path, *, user: str = "msg_u1", assistants: tuple[str, ...] = ("msg_u1_a1",)) -> Sim:
    """A new baton 20 s later whose resync replayed ``user`` on the primary with ``assistants``, idle."""
    t = sim(tmp_path)
    t.advance(20)
    t.user(S, user, PRIMARY)
    for mid in assistants:
        t.assistant(S, mid, user, PRIMARY)
    t.idle(S)
    return t


def recovered(t: Sim, intent: ResendIntent) -> list[Action]:
    return t.feed(RecoveredResend(intent))


# ------------------------------------------------------------------ a stored park


def test_a_kept_park_says_when_the_message_goes_again(tmp_path: Path) -> None:
    intent = park_intent(tmp_path)
    t = restarted(tmp_path)
    out = recovered(t, intent)
    (note,) = notes(out, "recovered")
    assert (note.session_id, note.text, note.data) == (
        S, f"a park from before baton's restart is kept: re-sending on {PRIMARY} at 08:01",
        {"model": PRIMARY, "until": T0 + 60})


def test_a_kept_park_is_the_store_s_again_so_a_new_prompt_clears_it(tmp_path: Path) -> None:
    intent = park_intent(tmp_path)
    t = restarted(tmp_path)
    recovered(t, intent)
    out = t.user(S, "msg_u2", PRIMARY)
    assert CancelTimer(park_key(S)) in out and ClearIntent(S) in out


def test_a_park_whose_turn_ran_again_is_dropped_and_said(tmp_path: Path) -> None:
    """The resync shows an assistant message the park never saw: opencode ran the turn meanwhile."""
    intent = park_intent(tmp_path)
    t = restarted(tmp_path, assistants=("msg_u1_a1", "msg_u1_a2"))
    out = recovered(t, intent)
    assert ClearIntent(S) in out and schedules(out) == []
    (note,) = notes(out, "recovery_skipped")
    assert (note.session_id, note.text, note.data) == (
        S, "a park from before baton's restart was dropped: the turn ran again since it was parked",
        {"model": PRIMARY})


def test_a_park_dropped_for_a_newer_prompt_says_that_first(tmp_path: Path) -> None:
    """A newer prompt that already ran: the journal names the newer prompt, the first reason."""
    intent = park_intent(tmp_path)
    t = restarted(tmp_path, user="msg_u2", assistants=("msg_u2_a1",))
    (note,) = notes(recovered(t, intent), "recovery_skipped")
    assert note.text == "a park from before baton's restart was dropped: a newer prompt was sent"


# ------------------------------------------------------------------ a re-send that reached opencode


def retry_intent(tmp_path: Path) -> ResendIntent:
    """A prompt on the cooling primary went to the backup (attempt 1); opencode failed the re-send at
    once, and baton decided its try 2 on the backup: that intent."""
    s = sim(tmp_path)
    s.policy.cooldowns.extend(PRIMARY, s.now + 60)
    s.user(S, "msg_u1", PRIMARY)
    (first,) = resends(s.busy(S))
    s.feed(UserMessage(S, "msg_u1", BACKUP, "build"))
    s.result(S, first.token)
    out = s.error(S, FIBERS, name="UnknownError") + s.idle(S)
    (timer,) = [t for t in schedules(out) if t.key == resend_retry_key(S)]
    s.advance(timer.at - s.now)
    (save,) = [a for a in s.fire(resend_retry_key(S)) if isinstance(a, SaveIntent)]
    assert (save.intent.retry, save.intent.attempts) == (2, 1)
    return save.intent


def running(tmp_path: Path, intent: ResendIntent, **rf: Any) -> tuple[Sim, list[Action]]:
    """The new baton's resync: the message on the backup, a new backup message running, busy."""
    t = sim(tmp_path, **rf)
    t.advance(5)
    t.user(S, "msg_u1", BACKUP)
    t.assistant(S, "msg_b2", "msg_u1", BACKUP)
    t.busy(S)
    assert t.policy.sessions[S].status is StatusType.BUSY
    return t, recovered(t, intent)


def test_an_adopted_retry_counts_no_new_attempt_and_says_so(tmp_path: Path) -> None:
    """A retry is the same switch sent again: adopting it keeps the switch's one attempt."""
    intent = retry_intent(tmp_path)
    t, out = running(tmp_path, intent)
    assert resends(out) == [] and ClearIntent(S) in out
    (note,) = notes(out, "recovered")
    assert (note.session_id, note.text, note.data) == (
        S, f"the re-send on {BACKUP} reached opencode before baton's restart and runs; watching it",
        {"model": BACKUP, "attempt": 1})
    fb = t.policy.sessions[S].fb
    assert fb is not None and (fb.current, fb.attempts) == (BACKUP, 1)


@pytest.mark.parametrize(("timeout", "after"), [(30, 30.0), (1, 1.0), (0, None)])
def test_an_adopted_resend_is_watched_for_timeout_seconds(tmp_path: Path, timeout: int, after: float | None) -> None:
    intent = retry_intent(tmp_path)
    t, out = running(tmp_path, intent, timeout_seconds=timeout)
    assert schedules(out) == ([] if after is None else [Schedule(watchdog_key(S), t.now + after)])


# ------------------------------------------------------------------ when an intent is moot, and a re-sent one


def test_a_park_is_kept_up_to_ten_minutes_after_its_end_and_then_dropped_with_its_age(tmp_path: Path) -> None:
    intent = park_intent(tmp_path)  # park_until T0+60
    kept = restarted(tmp_path)
    kept.now = T0 + 60 + RECOVERY_MAX_AGE_S
    assert notes(recovered(kept, intent), "recovered")
    dropped = restarted(tmp_path)
    dropped.now = T0 + 60 + 3600
    (note,) = notes(recovered(dropped, intent), "recovery_skipped")
    assert note.text == "a park from before baton's restart was dropped: it was decided 60 min ago"


def test_an_intent_for_a_session_opencode_shows_without_a_message_is_dropped(tmp_path: Path) -> None:
    intent = park_intent(tmp_path)
    t = sim(tmp_path)  # the resync created the session, no message came
    (note,) = notes(recovered(t, intent), "recovery_skipped")
    assert note.text.endswith("dropped: opencode shows no such session or message")


def test_an_intent_naming_no_message_is_dropped_once_the_latest_turn_has_an_answer(tmp_path: Path) -> None:
    intent = replace(park_intent(tmp_path), message_id=None, park_until=None)
    t = restarted(tmp_path)
    t.text(S, "msg_u1_a1")
    (note,) = notes(recovered(t, intent), "recovery_skipped")
    assert note.text.endswith("dropped: the session's latest turn has an answer")


def test_an_intent_is_dropped_when_the_new_baton_switched_the_turn_itself(tmp_path: Path) -> None:
    """The restarted baton saw the turn fail and moved it to the backup, which answered: the old
    intent (also for the backup) is moot because baton acted, whatever became of that."""
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    (old,) = [a.intent for a in s.retry(S) if isinstance(a, SaveIntent)]
    t = sim(tmp_path)
    t.start_turn(S, model=PRIMARY)
    (resend,) = resends(t.retry(S))
    t.result(S, resend.token)
    t.assistant(S, "msg_b1", "msg_u1", BACKUP)
    t.text(S, "msg_b1")
    (note,) = notes(recovered(t, old), "recovery_skipped")
    assert note.text.endswith("dropped: baton already acted on the turn since its restart")


def second_switch_intent(tmp_path: Path) -> ResendIntent:
    """Primary -> backup accepted; the backup failed too: the switch to the third, in flight."""
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    (first,) = resends(s.error(S, "Too many requests", 429))
    s.result(S, first.token)
    s.assistant(S, "msg_b1", "msg_u1", BACKUP)
    (save,) = [a for a in s.error(S, "Too many requests", 429) if isinstance(a, SaveIntent)]
    assert (save.intent.model, save.intent.current, save.intent.attempts) == (THIRD, BACKUP, 1)
    return save.intent


def resync_without_directory_or_agent(tmp_path: Path) -> Sim:
    """A new baton whose resync gave no directory (no session.created) and a message without agent."""
    t = Sim(make_config(tmp_path, {"agents": {"build": {"fallback_models": [BACKUP, THIRD]}}}))
    t.advance(5)
    t.feed(UserMessage(S, "msg_u1", BACKUP, None, ({"id": "prt_1", "type": "text", "text": "hello"},)))
    t.assistant(S, "msg_b1", "msg_u1", BACKUP)
    t.idle(S)
    return t


def test_a_recovered_resend_goes_where_and_as_whom_the_switch_was_decided(tmp_path: Path) -> None:
    intent = second_switch_intent(tmp_path)
    t = resync_without_directory_or_agent(tmp_path)
    (resend,) = resends(recovered(t, intent))
    assert (resend.model, resend.directory, resend.agent) == (THIRD, DIRECTORY, "build")


def test_a_refused_recovered_resend_leaves_the_session_where_the_switch_found_it(tmp_path: Path) -> None:
    intent = second_switch_intent(tmp_path)
    t = resync_without_directory_or_agent(tmp_path)
    (resend,) = resends(recovered(t, intent))
    t.result(S, resend.token, ResendOutcome.REFUSED)
    (row,) = t.policy.snapshot(t.now)
    assert (row.original, row.current, row.attempts, row.chain) == (PRIMARY, BACKUP, 1, (BACKUP, THIRD))


def test_a_recovered_resend_opencode_fails_at_once_is_retried_as_its_first_try(tmp_path: Path) -> None:
    intent = second_switch_intent(tmp_path)
    t = resync_without_directory_or_agent(tmp_path)
    (resend,) = resends(recovered(t, intent))
    t.result(S, resend.token)
    out = t.error(S, FIBERS, name="UnknownError") + t.idle(S)
    assert "retrying (2/3) in 0.5s" in notes(out, "resend_retry")[0].text


def test_a_recovered_resend_is_said_and_recorded_with_its_reason(tmp_path: Path) -> None:
    intent = second_switch_intent(tmp_path)
    t = resync_without_directory_or_agent(tmp_path)
    out = recovered(t, intent)
    (note,) = notes(out, "recovered")
    assert (note.session_id, note.text, note.data) == (
        S, f"re-send after a restart of baton: the message is unanswered; re-sending it on {THIRD}",
        {"model": THIRD, "decided_at": intent.decided_at})
    (save,) = [a for a in out if isinstance(a, SaveIntent)]
    assert save.intent.reason == intent.reason


def test_a_recovered_resend_whose_target_cooled_meanwhile_goes_to_the_next_as_a_first_try(tmp_path: Path) -> None:
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    (intent,) = [a.intent for a in s.retry(S) if isinstance(a, SaveIntent)]
    assert intent.model == BACKUP
    t = sim(tmp_path, Cooldowns([(BACKUP, T0 + 600)]))
    t.advance(5)
    t.user(S, "msg_u1", PRIMARY)
    t.assistant(S, "msg_u1_a1", "msg_u1", PRIMARY)
    t.idle(S)
    out = recovered(t, intent)
    assert notes(out, "recovered")[0].text.endswith(f"re-sending it on {THIRD} ({BACKUP} is cooling down now)")
    (resend,) = resends(out)
    t.result(S, resend.token)
    failed = t.error(S, FIBERS, name="UnknownError") + t.idle(S)
    assert "retrying (2/3) in 0.5s" in notes(failed, "resend_retry")[0].text


def test_a_resend_intent_for_a_turn_the_new_baton_parked_itself_is_left_to_that_park(tmp_path: Path) -> None:
    """A switch from before the restart; the new baton finds every model cooling and parks the turn:
    its own park stands (a stored park, by contrast, would replace it)."""
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    (intent,) = [a.intent for a in s.retry(S) if isinstance(a, SaveIntent)]
    t = sim(tmp_path, Cooldowns([(BACKUP, T0 + 600), (THIRD, T0 + 300)]))
    t.advance(5)
    t.start_turn(S, model=PRIMARY)
    assert notes(t.error(S, "Too many requests", 429), "parked")
    out = recovered(t, intent)
    (note,) = notes(out, "recovery_skipped")
    assert note.text == ("a re-send from before baton's restart was found, but baton already re-sends this turn "
                         "since its restart")
    assert schedules(out) == [] and ClearIntent(S) not in out
