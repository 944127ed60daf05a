"""The bounded retry of a re-send opencode fails at once: its journal lines in full, its intent, and
what the retry does when it comes due (runtime-fallback §7 rules 6 and 8; ``Switcher.resend_failed``).

Written against the mutants mutation testing left alive in ``Switcher._failed_in_flight`` and
``Switcher.on_resend_retry`` (``scripts/mutation.py``). The scenarios are those of
``test_policy_resend_retry.py``: a prompt on the cooling primary is re-sent on the backup, and
opencode kills the re-sent message with ``All fibers interrupted without error``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from policy_sim import Sim, cancels, make_config, notes, resends, schedules

from baton.actions import Action, Resend, SaveIntent, Schedule
from baton.cooldowns import Cooldowns
from baton.events import UserMessage
from baton.fallback.switching import resend_retry_key, watchdog_key

S = "ses_1"
PRIMARY, BACKUP, THIRD = "fake/primary", "fake/backup", "fake/third"
FIBERS = "All fibers interrupted without error"
FIBERS_SAID = FIBERS.lower()  # as the classifier reports the message


def sim(tmp_path: Path, **rf: Any) -> Sim:
    settings: dict[str, Any] = {"agents": {"build": {"fallback_models": [BACKUP, THIRD]}},
                                "baton": {"park_when_exhausted": False}}
    if rf:
        settings["runtime_fallback"] = rf
    return Sim(make_config(tmp_path, settings), Cooldowns())


def internal_error(s: Sim) -> list[Action]:
    return s.error(S, FIBERS, name="UnknownError") + s.idle(S)


def rerouted(s: Sim) -> Resend:
    s.policy.cooldowns.extend(PRIMARY, s.now + 60)
    s.user(S, "msg_u1", PRIMARY)
    (resend,) = resends(s.busy(S))
    s.feed(UserMessage(S, "msg_u1", resend.model, "build"))
    return resend


def due(s: Sim, actions: list[Action]) -> list[Action]:
    """Advance to the re-send retry's timer and fire it."""
    (timer,) = [t for t in schedules(actions) if t.key == resend_retry_key(S)]
    s.advance(timer.at - s.now)
    return s.fire(resend_retry_key(S))


def test_an_error_in_flight_is_retried_once_accepted_and_said_in_full(tmp_path: Path) -> None:
    s = sim(tmp_path)
    resend = rerouted(s)
    internal_error(s)
    out = s.result(S, resend.token)
    (note,) = notes(out, "resend_retry")
    assert note.text == (f"re-send on {BACKUP} failed with {FIBERS_SAID} right after baton's abort; "
                         "retrying (2/3) in 0.5s")


def test_the_retry_is_recorded_as_a_retry_of_the_same_switch(tmp_path: Path) -> None:
    """The intent a restart would finish: the same model and chain position, the failing model
    the session left, try 2, and why."""
    s = sim(tmp_path)
    s.result(S, rerouted(s).token)
    fired = due(s, internal_error(s))
    (save,) = [a for a in fired if isinstance(a, SaveIntent)]
    intent = save.intent
    assert (intent.model, intent.index, intent.failing, intent.reason, intent.retry) == (
        BACKUP, 0, PRIMARY, "re-send failed at once", 2)


def test_the_last_try_failing_in_flight_gives_up_and_says_so_in_full(tmp_path: Path) -> None:
    """Three calls in all: the third re-send's failure arrives before its 204; once it reports,
    baton gives up, journals both lines, and stops watching the turn."""
    s = sim(tmp_path)
    s.result(S, rerouted(s).token)
    (second,) = resends(due(s, internal_error(s)))
    s.result(S, second.token)
    (third,) = resends(due(s, internal_error(s)))
    internal_error(s)  # in flight
    out = s.result(S, third.token)
    assert resends(out) == [] and notes(out, "resend_retry") == []
    (gave_up,) = notes(out, "resend_gave_up")
    assert (gave_up.session_id, gave_up.text, gave_up.data) == (
        S, f"re-send on {BACKUP} failed again with {FIBERS_SAID} after 3 tries; no more retries",
        {"model": BACKUP, "tries": 3})
    (final,) = notes(out, "not_retryable")
    assert (final.session_id, final.text, final.data) == (
        S, f"{BACKUP} failed with an error that is not retryable: {FIBERS_SAID}", {"model": BACKUP})
    assert watchdog_key(S) in {c.key for c in cancels(out)}  # armed by the commit, disarmed again
    (row,) = s.policy.snapshot(s.now)
    assert row.awaiting is False


@pytest.mark.parametrize(("timeout", "watchdog_after"), [(30, 30.0), (1, 1.0), (0, None)])
def test_a_resend_that_runs_after_all_is_left_to_the_watchdog(
    tmp_path: Path, timeout: int, watchdog_after: float | None
) -> None:
    """The retry comes due while the backup is busy: no second abort; the watchdog, if there is one
    (timeout_seconds > 0), judges the turn timeout_seconds from now."""
    s = sim(tmp_path, timeout_seconds=timeout)
    resend = rerouted(s)
    s.error(S, FIBERS, name="UnknownError")
    out = s.result(S, resend.token)
    s.assistant(S, "msg_a2", "msg_u1", BACKUP)
    s.busy(S)
    fired = due(s, out)
    assert resends(fired) == [] and notes(fired, "resend_running")
    expected = [] if watchdog_after is None else [Schedule(watchdog_key(S), s.now + watchdog_after)]
    assert schedules(fired) == expected


def test_a_retry_due_on_a_model_now_cooling_moves_on_and_watches_the_next(tmp_path: Path) -> None:
    s = sim(tmp_path)
    s.result(S, rerouted(s).token)
    out = internal_error(s)
    s.policy.cooldowns.extend(BACKUP, s.now + 60)
    fired = due(s, out)
    (switch,) = notes(fired, "switch")
    assert switch.text == f"{BACKUP} failed ({BACKUP} is cooling down); switching to {THIRD}"
    (resend,) = resends(fired)
    s.result(S, resend.token)
    s.assistant(S, "msg_t1", "msg_u1", THIRD)
    assert notes(s.text(S, "msg_t1"), "answered")  # the switch to the third is awaited and confirmed


def test_a_retry_due_with_nothing_left_stops_awaiting(tmp_path: Path) -> None:
    """Backup and third both cooling when the retry comes due (parking off): nothing is sent, the
    journal says why, and the session no longer awaits an answer."""
    s = sim(tmp_path)
    s.result(S, rerouted(s).token)
    out = internal_error(s)
    s.policy.cooldowns.extend(BACKUP, s.now + 60)
    s.policy.cooldowns.extend(THIRD, s.now + 60)
    fired = due(s, out)
    assert resends(fired) == [] and notes(fired, "no_fallback")
    (row,) = s.policy.snapshot(s.now)
    assert row.awaiting is False


def test_a_retry_due_after_the_turn_was_given_up_does_nothing(tmp_path: Path) -> None:
    """The backup hits a rate limit while its retry is pending and nothing is left: the turn is
    opencode's again, so the retry timer, when it fires, sends and journals nothing."""
    s = sim(tmp_path)
    s.result(S, rerouted(s).token)
    out = internal_error(s)
    s.policy.cooldowns.extend(THIRD, s.now + 600)
    s.assistant(S, "msg_a2", "msg_u1", BACKUP)
    assert notes(s.error(S, "Too many requests", 429), "no_fallback")
    assert due(s, out) == []
