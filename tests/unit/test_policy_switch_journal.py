"""What a switch writes to the journal, in full: the models the guards passed over, a switch that
cannot happen (in flight, parked, no chain), the reason cut at 200 characters (runtime-fallback
§6.3, §6.8, §6.10 rule 6).

Written against the mutants mutation testing left alive in ``Switcher.switch``,
``FallbackCore.refusals`` and ``Signals._on_failure`` (``scripts/mutation.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from policy_sim import T0, Sim, make_config, notes, resends

from baton.actions import Action, CancelTimer, Note, Toast
from baton.catalog import Catalog, ModelInfo
from baton.cooldowns import Cooldowns
from baton.events import CatalogSeen, SessionCreated
from baton.fallback.state import OWN_ABORT_GRACE_S
from baton.fallback.switching import watchdog_key
from baton.models import model_key

S = "ses_1"
PRIMARY, BACKUP, THIRD, FOURTH, FIFTH = "fake/primary", "fake/backup", "fake/third", "fake/fourth", "fake/fifth"
DIRECTORY = "/work/project"
ABORTED = {"name": "MessageAbortedError", "data": {"message": "The operation was aborted."}}
PRICES = (ModelInfo(PRIMARY, 1, 4), ModelInfo(BACKUP, 5, 20), ModelInfo(FOURTH, 3, 3), ModelInfo(THIRD, 1, 4),
          ModelInfo(FIFTH, 9, 9))


def sim(tmp_path: Path, chain: tuple[str, ...] = (BACKUP, THIRD), cooldowns: Cooldowns | None = None,
        **sections: Any) -> Sim:
    s = Sim(make_config(tmp_path, {"agents": {"build": {"fallback_models": list(chain)}}, **sections}), cooldowns)
    s.feed(SessionCreated(S, None, DIRECTORY))
    return s


def priced(tmp_path: Path, chain: tuple[str, ...]) -> Sim:
    """The spend guard at 1x: the backup (5x), the fourth (3x) and the fifth (9x) cost more than the primary."""
    s = sim(tmp_path, chain, baton={"max_cost_ratio": 1.0})
    s.feed(CatalogSeen(Catalog({model_key(m.model): m for m in PRICES})))
    return s


def kinds(actions: list[Action]) -> list[str]:
    return [n.kind for n in notes(actions)]


# ------------------------------------------------------------------ the guards (§6.10 rule 6)


def test_the_guard_line_names_the_models_passed_over_before_the_choice_only(tmp_path: Path) -> None:
    """The fifth, after the chosen third, is not "passed over": the walk never reached it."""
    s = priced(tmp_path, (BACKUP, FOURTH, THIRD, FIFTH))
    s.start_turn(S, model=PRIMARY)
    out = s.error(S, "Too many requests", 429)
    (guard,) = notes(out, "guard")
    assert guard == Note(S, "guard", f"passed over: {BACKUP} costs 5x {PRIMARY}, above max_cost_ratio 1; "
                         f"{FOURTH} costs 3x {PRIMARY}, above max_cost_ratio 1", {"refused": [BACKUP, FOURTH]})
    assert [r.model for r in resends(out)] == [THIRD]


def test_a_later_switch_does_not_name_again_the_models_passed_over_before(tmp_path: Path) -> None:
    """Primary → third (the backup passed over); the third fails: the walk starts after the third,
    so only the models after it are looked at (the fourth costs the same as the third)."""
    s = priced(tmp_path, (BACKUP, THIRD, FOURTH))
    s.feed(CatalogSeen(Catalog({model_key(m.model): m for m in (
        ModelInfo(PRIMARY, 1, 4), ModelInfo(BACKUP, 5, 20), ModelInfo(THIRD, 1, 4), ModelInfo(FOURTH, 1, 4))})))
    s.start_turn(S, model=PRIMARY)
    (resend,) = resends(s.error(S, "Too many requests", 429))
    assert resend.model == THIRD
    s.result(S, resend.token)
    s.busy(S)
    s.assistant(S, "msg_a2", "msg_u1", THIRD)
    out = s.error(S, "Too many requests", 429)
    assert [r.model for r in resends(out)] == [FOURTH]
    assert kinds(out) == ["switch"]


# ------------------------------------------------------------------ a switch that cannot happen


def test_a_reroute_while_the_last_re_send_is_in_flight_is_not_a_second_switch(tmp_path: Path) -> None:
    """The primary fails and its re-send on the backup is in flight; the user's next prompt, on the
    (now cooling) primary, starts: one switch at a time (§6.8)."""
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    assert resends(s.error(S, "Too many requests", 429))
    s.user(S, "msg_u2", PRIMARY)
    assert s.busy(S) == [
        Note(S, "ignored", f"{PRIMARY} failed while a re-send is in flight; not switching twice")]


def test_a_failure_while_the_turn_is_parked_leaves_the_park_as_it_is(tmp_path: Path) -> None:
    s = sim(tmp_path, cooldowns=Cooldowns([(BACKUP, T0 + 600), (THIRD, T0 + 300)]))
    s.start_turn(S, model=PRIMARY)
    assert notes(s.error(S, "Too many requests", 429), "parked")
    assert s.retry(S, 2, "Rate limit exceeded") == [
        Note(S, "ignored", f"{PRIMARY} failed while the turn is parked; it waits as it is")]


def test_a_failure_without_a_chain_says_how_to_configure_one(tmp_path: Path) -> None:
    s = Sim(make_config(tmp_path, {"agents": {"build": {"fallback_models": []}}, "baton": {"fallback_models": []}}))
    s.start_turn(S, model=PRIMARY)
    (note,) = notes(s.error(S, "Too many requests", 429))
    assert note == Note(S, "no_chain", f"{PRIMARY} failed but this session has no fallback chain (configure "
                        "agents.<name>.fallback_models or baton.fallback_models)")


# ------------------------------------------------------------------ the reason and the error's words


LONG = "Too many requests: " + "x" * 300


def test_a_switch_s_reason_is_the_error_cut_at_200_characters(tmp_path: Path) -> None:
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    (note,) = notes(s.error(S, LONG, 429), "switch")
    assert note.text == f"{PRIMARY} failed ({LONG.lower()[:200]}); switching to {BACKUP}"


def test_a_not_retryable_error_is_journaled_cut_at_200_characters(tmp_path: Path) -> None:
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    words = "Bad request: " + "y" * 300
    (note,) = notes(s.error(S, words, 400))
    assert note == Note(S, "not_retryable", f"{PRIMARY} failed with an error that is not retryable: "
                        f"{words.lower()[:200]}", {"model": PRIMARY, "status": 400})


def on_backup(s: Sim) -> None:
    s.start_turn(S, model=PRIMARY)
    (resend,) = resends(s.error(S, "Too many requests", 429))
    s.result(S, resend.token)
    s.busy(S)
    s.assistant(S, "msg_a2", "msg_u1", BACKUP)


def test_a_terminal_error_of_the_new_model_stops_its_watchdog_for_good(tmp_path: Path) -> None:
    s = sim(tmp_path)
    on_backup(s)
    s.advance(20)
    out = s.error(S, "Bad request", 400)
    assert CancelTimer(watchdog_key(S)) in out and kinds(out) == ["not_retryable"]
    assert s.idle(S) == []
    assert s.delete(S) == []


def test_baton_s_own_abort_is_consumed_once_and_the_next_abort_is_the_user_s(tmp_path: Path) -> None:
    """Within the grace one abort error is baton's; a second, of another message, is the user's stop."""
    s = sim(tmp_path)
    on_backup(s)
    s.advance(OWN_ABORT_GRACE_S / 2)
    assert s.assistant(S, "msg_a2", "msg_u1", BACKUP, error=ABORTED) == []
    s.assistant(S, "msg_a3", "msg_u1", BACKUP)
    out = s.assistant(S, "msg_a3", "msg_u1", BACKUP, error=ABORTED)
    assert kinds(out) == ["user_stop"]


# ------------------------------------------------------------------ the context guard


WINDOWS = (ModelInfo(PRIMARY, context=200_000), ModelInfo(BACKUP, context=128_000), ModelInfo(THIRD, context=400_000))


def sized(tmp_path: Path, tokens: int) -> Sim:
    """The session is ``tokens`` big (its newest assistant message says so) and its primary fails."""
    s = sim(tmp_path)
    s.feed(CatalogSeen(Catalog({model_key(m.model): m for m in WINDOWS})))
    s.start_turn(S, model=PRIMARY)
    s.assistant(S, "msg_u1_a1", "msg_u1", PRIMARY, tokens=tokens)
    return s


def test_a_model_whose_window_cannot_hold_the_session_is_passed_over_and_said(tmp_path: Path) -> None:
    s = sized(tmp_path, 150_000)
    out = s.error(S, "Too many requests", 429)
    assert notes(out, "guard") == [Note(S, "guard", f"passed over: {BACKUP}'s context window (128,000 tokens) "
                                        "cannot hold the session (150,000 tokens)", {"refused": [BACKUP]})]
    (resend,) = resends(out)
    assert resend.model == THIRD
    (toast,) = [a for a in s.result(S, resend.token) if isinstance(a, Toast)]
    assert toast.message == "primary is unavailable; continuing on third (passed over backup: window too small)"


def test_a_window_exactly_the_session_s_size_holds_it(tmp_path: Path) -> None:
    s = sized(tmp_path, 128_000)
    out = s.error(S, "Too many requests", 429)
    assert notes(out, "guard") == [] and [r.model for r in resends(out)] == [BACKUP]
