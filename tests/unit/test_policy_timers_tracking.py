"""Timers, deletion, switching back and manual model changes, in the journal's and toasts' words.

runtime-fallback §6.9 (deletion and expiry), §6.10 rules 3 and 5 (the end of a park, switching
back), §8 rules 4-5 (a model changed by hand), §6.6 (what counts as an answer). Written against
the mutants mutation testing left alive in :mod:`baton.fallback.timers` and
:mod:`baton.fallback.tracking` (``scripts/mutation.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from policy_sim import T0, Sim, make_config, notes, resends, toasts

from baton.actions import Action, CancelTimer, ClearIntent, SaveIntent, Toast
from baton.catalog import Catalog
from baton.cooldowns import Cooldowns
from baton.events import CatalogSeen, PartDelta, SessionCreated, UserMessage
from baton.fallback.parking import park_key
from baton.fallback.switching import resend_retry_key, watchdog_key

S = "ses_1"
PRIMARY, BACKUP, THIRD = "fake/primary", "fake/backup", "fake/third"
DIRECTORY = "/work/project"
FIBERS = "All fibers interrupted without error"


def sim(tmp_path: Path, cooldowns: Cooldowns | None = None, **sections: dict[str, Any]) -> Sim:
    settings: dict[str, Any] = {"agents": {"build": {"fallback_models": [BACKUP, THIRD]}}, **sections}
    s = Sim(make_config(tmp_path, settings), cooldowns)
    s.feed(SessionCreated(S, None, DIRECTORY))
    return s


def of(actions: list[Action], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def parked(tmp_path: Path) -> Sim:
    """Backup and third cooling; the primary fails with a 429 (60 s): parked until T0+60."""
    s = sim(tmp_path, Cooldowns([(BACKUP, T0 + 600), (THIRD, T0 + 300)]))
    s.start_turn(S, model=PRIMARY)
    assert notes(s.error(S, "Too many requests", 429), "parked")
    s.idle(S)
    return s


def switched(s: Sim) -> list[Action]:
    """The primary fails with a 429; the re-send on the backup is accepted (watchdog armed)."""
    s.start_turn(S, model=PRIMARY)
    (resend,) = resends(s.error(S, "Too many requests", 429))
    return s.result(S, resend.token)


# ------------------------------------------------------------------ the end of a park


def test_the_park_ends_with_the_resume_said_and_recorded(tmp_path: Path) -> None:
    s = parked(tmp_path)
    s.advance(60)
    fired = s.fire(park_key(S))
    (note,) = notes(fired, "resumed")
    assert (note.session_id, note.text) == (S, f"the park ended: re-sending the message on {PRIMARY}")
    assert CancelTimer(park_key(S)) in fired
    (save,) = of(fired, SaveIntent)
    intent = save.intent
    assert (intent.model, intent.failing, intent.reason, intent.retry, intent.decided_at, intent.park_until) == (
        PRIMARY, PRIMARY, "resumed after the park", 0, T0 + 60, None)


def test_a_park_that_waits_again_says_which_model_failed(tmp_path: Path) -> None:
    s = parked(tmp_path)
    s.policy.cooldowns.extend(PRIMARY, T0 + 900)
    s.advance(60)
    (note,) = notes(s.fire(park_key(S)), "parked")
    assert note.text.startswith(f"{PRIMARY} failed and no model of the chain is usable now; still parked until ")
    assert note.text.endswith(f", when {THIRD} resets")


def test_a_park_whose_providers_are_gone_gives_up_and_tells_the_user(tmp_path: Path) -> None:
    """The catalog of the newest attach connects no provider of the chain: nothing to resume on,
    nothing to wait for. The park ends, its timer and intent dropped, the user told to send again."""
    s = parked(tmp_path)
    s.feed(CatalogSeen(Catalog({}, frozenset({"other"}))))
    s.advance(60)
    end = s.fire(park_key(S))
    assert resends(end) == [] and CancelTimer(park_key(S)) in end and ClearIntent(S) in end
    (note,) = notes(end, "park_gave_up")
    assert (note.session_id, note.text) == (
        S, "the park ended and no model of the chain is usable; the turn stays stopped until a new prompt")
    assert toasts(end) == [Toast("baton: park ended", "No model of the chain is usable yet; send the prompt "
                                 "again later", "error", DIRECTORY)]


def test_a_park_timer_after_the_park_was_cancelled_does_nothing(tmp_path: Path) -> None:
    s = parked(tmp_path)
    s.user(S, "msg_u2", PRIMARY)
    s.advance(60)
    assert s.fire(park_key(S)) == []


# ------------------------------------------------------------------ deletion and expiry (§6.9)


def test_deleting_a_session_cancels_exactly_its_armed_timers(tmp_path: Path) -> None:
    s = sim(tmp_path)
    switched(s)
    assert s.delete(S) == [CancelTimer(watchdog_key(S))]


def test_deleting_a_session_with_a_retry_due_cancels_the_retry(tmp_path: Path) -> None:
    s = sim(tmp_path)
    switched(s)
    s.error(S, FIBERS, name="UnknownError")
    s.idle(S)
    assert s.delete(S) == [CancelTimer(resend_retry_key(S))]


def test_deleting_a_session_baton_holds_nothing_for_does_nothing(tmp_path: Path) -> None:
    s = sim(tmp_path)
    assert s.delete("ses_unknown") == []
    assert s.delete(S) == []  # created, never prompted: no fallback state


def test_output_keeps_a_session_from_being_forgotten(tmp_path: Path) -> None:
    """§6.9: a session is forgotten 30 minutes after its last event; streamed output counts."""
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    s.advance(20 * 60)
    s.feed(PartDelta(S, "msg_u1_a1", "prt_a", "text", "still writing"))
    s.advance(20 * 60)
    s.feed(SessionCreated("ses_other", None, DIRECTORY))  # any event: the sweep runs
    assert S in s.policy.sessions


def test_a_delta_for_a_session_without_a_turn_is_ignored(tmp_path: Path) -> None:
    s = sim(tmp_path)
    assert s.feed(PartDelta(S, "msg_x", "prt_x", "text", "hi")) == []
    assert s.feed(PartDelta("ses_unknown", "msg_x", "prt_x", "text", "hi")) == []


# ------------------------------------------------------------------ answers (§6.6)


def test_an_answer_confirms_the_switch_in_the_journal(tmp_path: Path) -> None:
    s = sim(tmp_path)
    switched(s)
    s.assistant(S, "msg_b1", "msg_u1", BACKUP)
    (note,) = notes(s.text(S, "msg_b1"), "answered")
    assert (note.session_id, note.text, note.data) == (S, f"{BACKUP} answered; the switch is confirmed",
                                                       {"model": BACKUP})


def test_an_answer_with_no_switch_awaited_writes_nothing(tmp_path: Path) -> None:
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    assert s.text(S, "msg_u1_a1") == []


# ------------------------------------------------------------------ switching back (§6.10 rule 5)


def moved_to_backup(s: Sim) -> None:
    switched(s)
    s.assistant(S, "msg_b1", "msg_u1", BACKUP)
    s.text(S, "msg_b1")
    s.idle(S)
    s.advance(61)


def test_switching_back_is_said_recorded_and_toasted(tmp_path: Path) -> None:
    s = sim(tmp_path)
    moved_to_backup(s)
    s.user(S, "msg_u2", BACKUP)
    out = s.busy(S)
    (note,) = notes(out, "switch_back")
    assert (note.session_id, note.text) == (S, f"{PRIMARY} has cooled: this turn goes back to it from {BACKUP}")
    (save,) = of(out, SaveIntent)
    assert (save.intent.failing, save.intent.reason, save.intent.retry) == (BACKUP, "back on the primary", 0)
    done = s.result(S, resends(out)[0].token)
    assert toasts(done) == [Toast("baton: back on the primary", "Continuing on primary", "info", DIRECTORY)]


def test_a_switch_back_that_opencode_fails_at_once_is_retried_as_its_first_try(tmp_path: Path) -> None:
    s = sim(tmp_path)
    moved_to_backup(s)
    s.user(S, "msg_u2", BACKUP)
    (back,) = resends(s.busy(S))
    s.result(S, back.token)
    out = s.error(S, FIBERS, name="UnknownError") + s.idle(S)
    assert "retrying (2/3) in 0.5s" in notes(out, "resend_retry")[0].text


def test_no_switch_back_to_a_primary_whose_provider_is_not_connected(tmp_path: Path) -> None:
    for connected, goes_back in ((("fake", "other"), True), (("other",), False)):
        s = sim(tmp_path, agents={"build": {"fallback_models": ["other/backup"]}})
        s.feed(CatalogSeen(Catalog({}, frozenset(connected))))
        s.start_turn(S, model=PRIMARY)
        (resend,) = resends(s.error(S, "Too many requests", 429))
        s.result(S, resend.token)
        s.idle(S)
        s.advance(61)
        s.user(S, "msg_u2", "other/backup")
        assert bool(notes(s.busy(S), "switch_back")) is goes_back, connected


def test_a_turn_changed_to_the_primary_before_it_started_is_not_switched_back(tmp_path: Path) -> None:
    """The prompt went to the backup, then another client set it to the primary: the turn is on the
    primary already, nothing to go back to."""
    s = sim(tmp_path)
    moved_to_backup(s)
    s.user(S, "msg_u2", BACKUP)
    s.feed(UserMessage(S, "msg_u2", PRIMARY, "build"))
    out = s.busy(S)
    assert resends(out) == [] and notes(out, "switch_back") == []


# ------------------------------------------------------------------ a model changed by hand (§8)


def test_a_model_change_disarms_the_watchdog_and_says_so(tmp_path: Path) -> None:
    s = sim(tmp_path)
    switched(s)
    out = s.feed(UserMessage(S, "msg_u1", THIRD, "build"))
    assert CancelTimer(watchdog_key(S)) in out
    (note,) = notes(out, "reset")
    assert (note.text, note.data) == (f"the message's model was changed: now on {THIRD}, fallback chain restarted",
                                      {"model": THIRD})


def test_a_model_change_without_a_watchdog_cancels_nothing(tmp_path: Path) -> None:
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    out = s.feed(UserMessage(S, "msg_u1", THIRD, "build"))
    assert of(out, CancelTimer) == [] and notes(out, "reset")


def test_a_model_given_to_a_message_baton_knew_without_one_is_a_change(tmp_path: Path) -> None:
    s = sim(tmp_path)
    s.feed(UserMessage(S, "msg_u1", None, "build"))
    out = s.feed(UserMessage(S, "msg_u1", PRIMARY, "build"))
    assert notes(out, "reset")[0].data == {"model": PRIMARY}


def test_a_model_change_cancels_a_park_and_a_retry_and_says_why(tmp_path: Path) -> None:
    s = parked(tmp_path)
    out = s.feed(UserMessage(S, "msg_u1", THIRD, "build"))
    (note,) = notes(out, "unparked")
    assert note.text == f"park on {PRIMARY} cancelled: the model was changed"

    t = sim(tmp_path)
    switched(t)
    t.error(S, FIBERS, name="UnknownError")
    t.idle(S)
    assert CancelTimer(resend_retry_key(S)) in t.feed(UserMessage(S, "msg_u1", THIRD, "build"))


def test_the_aborted_turn_s_echo_after_a_change_during_a_resend_is_baton_s_own(tmp_path: Path) -> None:
    """The user changes the model while baton's re-send runs; the aborted message then completes
    empty: baton's own abort, nothing to do."""
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    resends(s.error(S, "Too many requests", 429))
    s.feed(UserMessage(S, "msg_u1", THIRD, "build"))
    assert s.assistant(S, "msg_u1_a1", "msg_u1", PRIMARY, completed=True) == []
