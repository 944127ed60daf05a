"""A re-send's result, and opencode failing the re-sent message: the journal lines in full, what is
retried and what is classified as usual (runtime-fallback §6.3, §6.8, §7 rule 6).

Written against the mutants mutation testing left alive in ``Switcher.on_resend_result``,
``resend_failed``, ``_retry_resend``, ``on_resend_retry``, ``clear_switch`` and ``prepare``
(``scripts/mutation.py``). The re-sent message dies inside opencode with ``All fibers interrupted
without error``, as seen right after opencode restarts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from policy_sim import T0, Sim, cancels, make_config, notes, resends, schedules, toasts

from baton.actions import Action, CancelTimer, Note, Resend, Toast
from baton.catalog import Catalog, ModelInfo
from baton.cooldowns import Cooldowns
from baton.events import (
    AssistantMessage,
    CatalogSeen,
    ResendOutcome,
    ResendResult,
    SessionCreated,
    SessionError,
    UserMessage,
)
from baton.fallback.switching import RESEND_ERROR_WINDOW_S, resend_retry_key, watchdog_key
from baton.models import model_key

S = "ses_1"
PRIMARY, BACKUP, THIRD = "fake/primary", "fake/backup", "fake/third"
DIRECTORY = "/work/project"
FIBERS = "All fibers interrupted without error"
FIBERS_SAID = FIBERS.lower()  # as the classifier reports the message


def sim(tmp_path: Path, chain: tuple[str, ...] = (BACKUP, THIRD), **sections: Any) -> Sim:
    s = Sim(make_config(tmp_path, {"agents": {"build": {"fallback_models": list(chain)}}, **sections}), Cooldowns())
    s.feed(SessionCreated(S, None, DIRECTORY))
    return s


def internal_error(s: Sim) -> list[Action]:
    return s.error(S, FIBERS, name="UnknownError") + s.idle(S)


def rerouted(s: Sim) -> Resend:
    """A prompt on the cooling primary: baton aborts it as it starts and re-sends on the backup."""
    s.policy.cooldowns.extend(PRIMARY, s.now + 60)
    s.user(S, "msg_u1", PRIMARY)
    (resend,) = resends(s.busy(S))
    s.feed(UserMessage(S, "msg_u1", resend.model, "build"))  # opencode's echo of the re-sent message
    return resend


def due(s: Sim, actions: list[Action]) -> list[Action]:
    (timer,) = [t for t in schedules(actions) if t.key == resend_retry_key(S)]
    s.advance(timer.at - s.now)
    return s.fire(resend_retry_key(S))


def fibers_in(message_id: str, model: str | None) -> AssistantMessage:
    return AssistantMessage(S, message_id, "msg_u1", model, "build",
                            error={"name": "UnknownError", "data": {"message": FIBERS}})


# ------------------------------------------------------------------ the result of a re-send


def test_a_result_for_nothing_in_flight_commits_nothing(tmp_path: Path) -> None:
    """A duplicate or late report, one for a session without fallback state, one for an unknown session."""
    s = sim(tmp_path)
    resend = rerouted(s)
    assert s.result(S, resend.token + 1) == []  # not the re-send in flight
    committed = s.result(S, resend.token)
    assert notes(committed, "resent")
    assert s.result(S, resend.token) == []  # reported twice
    fb = s.policy.sessions[S].fb
    assert fb is not None and (fb.current, fb.attempts) == (BACKUP, 1)
    s.feed(SessionCreated("ses_2", None, DIRECTORY))
    assert s.feed(ResendResult("ses_2", resend.token, ResendOutcome.ACCEPTED)) == []
    assert s.feed(ResendResult("ses_unknown", resend.token, ResendOutcome.ACCEPTED)) == []


def test_an_older_resend_s_result_does_not_commit_the_newer_one(tmp_path: Path) -> None:
    s = sim(tmp_path)
    first = rerouted(s)
    s.result(S, first.token)
    out = internal_error(s)
    again = resends(due(s, out))[0]
    assert s.result(S, first.token) == []
    fb = s.policy.sessions[S].fb
    assert fb is not None and fb.in_flight is not None and fb.in_flight.token == again.token


def test_a_resend_ended_after_the_user_changed_model_says_so_in_full(tmp_path: Path) -> None:
    s = sim(tmp_path)
    resend = rerouted(s)
    s.user(S, "msg_u1", THIRD)  # the user edits the message's model while the re-send runs
    out = s.result(S, resend.token)
    assert [(n.kind, n.text) for n in notes(out)] == [
        ("resent", f"re-send on {BACKUP} ended (accepted) after the user changed model; nothing to commit")]


def test_a_refused_resend_s_toast_is_cut_at_300_characters(tmp_path: Path) -> None:
    s = sim(tmp_path)
    resend = rerouted(s)
    detail = "x" * 400
    out = s.feed(ResendResult(S, resend.token, ResendOutcome.REFUSED, detail=detail))
    message = ("Could not re-send on backup: " + detail)[:300]
    assert toasts(out) == [Toast("baton: fallback failed", message, "error", DIRECTORY)]
    assert len(message) == 300


# ------------------------------------------------------------------ an error of the re-sent message


def test_an_error_exactly_at_the_end_of_the_window_is_still_the_resend_s(tmp_path: Path) -> None:
    s = sim(tmp_path)
    s.result(S, rerouted(s).token)
    s.advance(RESEND_ERROR_WINDOW_S)
    out = internal_error(s)
    assert notes(out, "resend_retry") and not notes(out, "not_retryable")


def test_a_retry_after_a_resend_that_aborted_nothing_says_so(tmp_path: Path) -> None:
    """The primary's error came after the turn went idle: the switch aborted nothing."""
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    s.idle(S)
    (resend,) = resends(s.error(S, "Too many requests", 429))
    assert not resend.abort
    s.result(S, resend.token)
    (note,) = notes(internal_error(s), "resend_retry")
    assert note.text == (f"re-send on {BACKUP} failed with {FIBERS_SAID} right after baton's re-send; "
                         "retrying (2/3) in 0.5s")


def test_an_error_without_a_message_is_said_to_have_none(tmp_path: Path) -> None:
    s = sim(tmp_path)
    s.result(S, rerouted(s).token)
    (note,) = notes(s.feed(SessionError(S, None)), "resend_retry")
    assert note.text == (f"re-send on {BACKUP} failed with an error without a message right after baton's abort; "
                         "retrying (2/3) in 0.5s")


def test_a_long_error_is_cut_at_200_characters_in_the_journal(tmp_path: Path) -> None:
    s = sim(tmp_path)
    s.result(S, rerouted(s).token)
    long = "All fibers interrupted " + "x" * 300
    (note,) = notes(s.error(S, long, name="UnknownError"), "resend_retry")
    said = long.lower()[:200]
    assert note.text == f"re-send on {BACKUP} failed with {said} right after baton's abort; retrying (2/3) in 0.5s"


def test_a_second_failure_before_the_retry_is_due_is_only_journaled(tmp_path: Path) -> None:
    s = sim(tmp_path)
    s.result(S, rerouted(s).token)
    internal_error(s)
    out = s.error(S, FIBERS, name="UnknownError")
    assert out == [Note(S, "ignored", f"{BACKUP} failed again ({FIBERS_SAID}) before the retry was due")]


def test_the_same_message_s_error_again_is_not_a_second_failure(tmp_path: Path) -> None:
    """The backup's own message carried the error; opencode updates that message again: it is the
    one already being retried (it was marked replaced), not a new failure."""
    s = sim(tmp_path)
    s.result(S, rerouted(s).token)
    assert notes(s.feed(fibers_in("msg_a2", BACKUP)), "resend_retry")
    assert s.feed(fibers_in("msg_a2", BACKUP)) == []


def test_an_error_in_a_message_of_no_known_model_is_classified_as_usual(tmp_path: Path) -> None:
    """A message whose model opencode has not named is not the re-sent model's: the error is read
    as the turn's (the message's model is the backup), not retried as a re-send failure."""
    s = sim(tmp_path)
    s.result(S, rerouted(s).token)
    out = s.feed(fibers_in("msg_a2", None))
    assert not notes(out, "resend_retry")
    assert [n.kind for n in notes(out)] == ["not_retryable"]
    assert CancelTimer(watchdog_key(S)) in out


def test_after_the_last_try_the_error_is_given_up_in_full_and_classified(tmp_path: Path) -> None:
    """The primary failed with a session.error before any assistant message (its dedupe key is the
    turn's); each retry clears that key, so the last failure is still classified."""
    s = sim(tmp_path)
    s.user(S, "msg_u1", PRIMARY)
    s.busy(S)
    (resend,) = resends(s.error(S, "Too many requests", 429))
    s.feed(UserMessage(S, "msg_u1", BACKUP, "build"))  # opencode's echo of the re-sent message
    for _ in range(2):
        s.result(S, resend.token)
        (resend,) = resends(due(s, internal_error(s)))
    s.result(S, resend.token)
    out = internal_error(s)
    assert [(n.kind, n.text) for n in notes(out)] == [
        ("resend_gave_up", f"re-send on {BACKUP} failed again with {FIBERS_SAID} after 3 tries; no more retries"),
        ("not_retryable", f"{BACKUP} failed with an error that is not retryable: {FIBERS_SAID}"),
    ]


def test_an_answer_while_a_retry_is_due_cancels_the_retry(tmp_path: Path) -> None:
    """The error was not the re-send's after all: the backup answers before the retry is due."""
    s = sim(tmp_path)
    s.result(S, rerouted(s).token)
    internal_error(s)
    s.busy(S)
    s.assistant(S, "msg_a2", "msg_u1", BACKUP)
    out = s.text(S, "msg_a2")
    assert [n.kind for n in notes(out)] == ["answered"]
    assert cancels(out) == [CancelTimer(resend_retry_key(S))]
    s.advance(5)
    assert s.fire(resend_retry_key(S)) == []


def test_a_retry_due_after_an_answer_named_late_sends_nothing(tmp_path: Path) -> None:
    """The backup's message streamed before opencode named its model, then was named: when the retry
    comes due the turn has the backup's answer, so the switch is over and nothing is re-sent."""
    s = sim(tmp_path)
    s.result(S, rerouted(s).token)
    out = internal_error(s)
    s.feed(AssistantMessage(S, "msg_a2", "msg_u1", None, "build"))
    s.text(S, "msg_a2")
    s.feed(AssistantMessage(S, "msg_a2", "msg_u1", BACKUP, "build"))
    assert due(s, out) == []
    (row,) = s.policy.snapshot(s.now)
    assert not row.awaiting


def test_an_error_after_an_answer_named_late_is_classified_as_usual(tmp_path: Path) -> None:
    s = sim(tmp_path)
    s.result(S, rerouted(s).token)
    s.feed(AssistantMessage(S, "msg_a2", "msg_u1", None, "build"))
    s.text(S, "msg_a2")
    s.feed(AssistantMessage(S, "msg_a2", "msg_u1", BACKUP, "build"))
    out = internal_error(s)
    assert not notes(out, "resend_retry") and [n.kind for n in notes(out)] == ["not_retryable"]


# ------------------------------------------------------------------ choosing without a failure's decision


def catalog(s: Sim, *models: ModelInfo, connected: tuple[str, ...] | None = None) -> None:
    s.feed(CatalogSeen(Catalog({model_key(m.model): m for m in models},
                               frozenset(connected) if connected is not None else None)))


def test_a_reroute_skips_a_model_whose_provider_is_not_connected(tmp_path: Path) -> None:
    s = sim(tmp_path, chain=("other/backup", THIRD))
    catalog(s, connected=("fake",))
    s.policy.cooldowns.extend(PRIMARY, T0 + 60)
    s.user(S, "msg_u1", PRIMARY)
    assert [r.model for r in resends(s.busy(S))] == [THIRD]


def test_a_reroute_passes_over_a_pricier_model_under_the_spend_guard(tmp_path: Path) -> None:
    s = sim(tmp_path, baton={"max_cost_ratio": 2})
    catalog(s, ModelInfo(PRIMARY, 1, 1), ModelInfo(BACKUP, 10, 10), ModelInfo(THIRD, 1, 1))
    s.policy.cooldowns.extend(PRIMARY, T0 + 60)
    s.user(S, "msg_u1", PRIMARY)
    out = s.busy(S)
    assert [r.model for r in resends(out)] == [THIRD]
    assert [n.kind for n in notes(out)] == ["guard", "switch"]


def test_the_toast_of_a_switch_names_the_models_the_spend_guard_passed_over(tmp_path: Path) -> None:
    s = sim(tmp_path, chain=(BACKUP, "fake/fourth", THIRD), baton={"max_cost_ratio": 1.0})
    catalog(s, ModelInfo(PRIMARY, 1, 4), ModelInfo(BACKUP, 5, 20), ModelInfo("fake/fourth", 9, 9),
            ModelInfo(THIRD, 1, 4))
    s.start_turn(S, model=PRIMARY)
    (resend,) = resends(s.error(S, "Too many requests", 429))
    assert toasts(s.result(S, resend.token)) == [
        Toast("baton: model switched", "primary is unavailable; continuing on third (passed over backup: pricier, "
              "fourth: pricier)", "warning", DIRECTORY)]


def test_a_rate_limit_while_a_retry_is_due_moves_on_and_cancels_the_retry(tmp_path: Path) -> None:
    """opencode failed the re-send at once (retry due), then the backup itself reports a rate limit:
    that is a failure a fallback acts on; the chain moves on and the pending retry is dropped."""
    s = sim(tmp_path)
    s.result(S, rerouted(s).token)
    internal_error(s)
    out = s.error(S, "Too many requests", 429)
    assert [r.model for r in resends(out)] == [THIRD]
    assert CancelTimer(resend_retry_key(S)) in out
    s.advance(5)
    assert s.fire(resend_retry_key(S)) == []
