"""A re-send that opencode fails at once (as right after its restart) is re-sent again, bounded.

Seen on opencode 1.18.33 right after a restart: baton's abort lands while opencode initialises,
and the re-sent message dies with ``All fibers interrupted without error`` (a ``session.error``
that names no message) although the fallback model is fine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from policy_sim import Sim, cancels, make_config, notes, resends, schedules, toasts

from baton.actions import Action, Resend
from baton.cooldowns import Cooldowns
from baton.events import ResendOutcome, StatusType, UserMessage
from baton.fallback.switching import RESEND_ERROR_WINDOW_S, resend_retry_key, watchdog_key

CHAIN = {"agents": {"build": {"fallback_models": ["fake/backup", "fake/third"]}}}
S = "ses_1"
FIBERS = "All fibers interrupted without error"


def sim(tmp_path: Path, extra: dict[str, Any] | None = None) -> Sim:
    return Sim(make_config(tmp_path, {**CHAIN, **(extra or {})}), Cooldowns())


def internal_error(s: Sim, sid: str = S) -> list[Action]:
    """opencode's own failure of the turn: an UnknownError without a status, then idle."""
    return s.error(sid, FIBERS, name="UnknownError") + s.idle(sid)


def rerouted(s: Sim) -> Resend:
    """A prompt on the cooling primary: baton aborts it as it starts and re-sends on the backup."""
    s.policy.cooldowns.extend("fake/primary", s.now + 60)
    s.user(S, "msg_u1", "fake/primary")
    (resend,) = resends(s.busy(S))
    assert resend.model == "fake/backup" and resend.abort
    s.feed(UserMessage(S, "msg_u1", resend.model, "build"))  # opencode's echo of the re-sent message
    return resend


def retry_due(s: Sim, actions: list[Action]) -> Resend:
    (timer,) = [t for t in schedules(actions) if t.key == resend_retry_key(S)]
    s.advance(timer.at - s.now)
    (again,) = resends(s.fire(resend_retry_key(S)))
    return again


def test_an_internal_error_right_after_the_resend_resends_on_the_same_model(tmp_path: Path) -> None:
    """The re-sent message dies inside opencode: after 0.5 s the same message goes again on the
    backup (no abort: the turn is over), journaled; the backup then answers and nothing else moves."""
    s = sim(tmp_path)
    first = rerouted(s)
    s.result(S, first.token)
    out = internal_error(s)
    (note,) = notes(out, "resend_retry")
    assert note.text == (f"re-send on fake/backup failed with {FIBERS.lower()} right after baton's abort; "
                         "retrying (2/3) in 0.5s")
    assert watchdog_key(S) in {c.key for c in cancels(out)} and not notes(out, "not_retryable")
    again = retry_due(s, out)
    assert (again.model, again.message_id, again.abort) == ("fake/backup", first.message_id, False)
    assert again.parts == first.parts
    committed = s.result(S, again.token)
    assert "re-sent again on fake/backup (try 2/3" in notes(committed, "resent")[0].text
    assert toasts(committed) == [] and [t.key for t in schedules(committed)] == [watchdog_key(S)]
    state = s.policy.sessions[S].fb
    assert state is not None and (state.current, state.attempts) == ("fake/backup", 1)
    s.busy(S)
    s.assistant(S, "msg_a2", "msg_u1", "fake/backup")
    assert notes(s.text(S, "msg_a2"), "answered")


def test_resend_retries_are_bounded_then_the_error_is_classified_as_usual(tmp_path: Path) -> None:
    """Three calls in all (backoff 0.5 s, then 1 s); the third failure is journaled and left alone."""
    s = sim(tmp_path)
    resend = rerouted(s)
    delays = []
    for _ in range(2):
        s.result(S, resend.token)
        out = internal_error(s)
        (timer,) = [t for t in schedules(out) if t.key == resend_retry_key(S)]
        delays.append(timer.at - s.now)
        resend = retry_due(s, out)
    s.result(S, resend.token)
    out = internal_error(s)
    assert delays == [0.5, 1.0]
    assert "after 3 tries; no more retries" in notes(out, "resend_gave_up")[0].text
    assert notes(out, "not_retryable") and resends(out) == []
    assert [t for t in schedules(out) if t.key == resend_retry_key(S)] == []
    s.advance(5)
    assert resends(s.fire(resend_retry_key(S))) == []


def test_an_error_while_the_resend_is_in_flight_is_decided_once_it_is_accepted(tmp_path: Path) -> None:
    """The error can beat the 204 of prompt_async: nothing happens until the call reports, then a retry."""
    s = sim(tmp_path)
    resend = rerouted(s)
    assert internal_error(s) == []
    out = s.result(S, resend.token)
    assert notes(out, "resend_retry") and retry_due(s, out).model == "fake/backup"


def test_an_error_in_flight_of_a_refused_resend_is_moot(tmp_path: Path) -> None:
    s = sim(tmp_path)
    resend = rerouted(s)
    internal_error(s)
    out = s.result(S, resend.token, ResendOutcome.REFUSED)
    assert notes(out, "resend_failed") and not notes(out, "resend_retry")


def test_the_retry_is_skipped_when_the_resend_runs_after_all(tmp_path: Path) -> None:
    """The error was the aborted turn's: when the retry comes due the backup is busy, so the
    watchdog judges it instead of a second abort."""
    s = sim(tmp_path)
    resend = rerouted(s)
    s.error(S, FIBERS, name="UnknownError")  # before the 204, and no idle follows
    out = s.result(S, resend.token)
    s.assistant(S, "msg_a2", "msg_u1", "fake/backup")
    s.busy(S)
    (timer,) = [t for t in schedules(out) if t.key == resend_retry_key(S)]
    s.advance(timer.at - s.now)
    fired = s.fire(resend_retry_key(S))
    assert resends(fired) == [] and notes(fired, "resend_running")
    assert [t.key for t in schedules(fired)] == [watchdog_key(S)]


def test_a_retryable_error_of_the_new_model_moves_on_along_the_chain(tmp_path: Path) -> None:
    """Not opencode's hiccup but the backup refusing: the next model, as before."""
    s = sim(tmp_path)
    resend = rerouted(s)
    s.result(S, resend.token)
    out = s.error(S, "Rate limit exceeded", 429)
    assert [r.model for r in resends(out)] == ["fake/third"] and not notes(out, "resend_retry")


def test_errors_after_the_window_or_after_an_answer_are_not_resend_failures(tmp_path: Path) -> None:
    late = sim(tmp_path)
    late.result(S, rerouted(late).token)
    late.advance(RESEND_ERROR_WINDOW_S + 1)
    out = internal_error(late)
    assert notes(out, "not_retryable") and not notes(out, "resend_retry")

    answered = sim(tmp_path)
    answered.result(S, rerouted(answered).token)
    answered.assistant(S, "msg_a2", "msg_u1", "fake/backup")
    answered.text(S, "msg_a2")
    out = internal_error(answered)
    assert resends(out) == [] and not notes(out, "resend_retry")


def test_a_stop_or_a_context_overflow_after_the_resend_is_never_resent(tmp_path: Path) -> None:
    s = sim(tmp_path)
    s.result(S, rerouted(s).token)
    out = s.error(S, "prompt is too long: 250000 tokens > 200000 maximum", 400)
    assert resends(out) == [] and not notes(out, "resend_retry")
    t = sim(tmp_path)
    t.result(S, rerouted(t).token)
    out = t.error(S, "The operation was aborted", name="MessageAbortedError")
    assert resends(out) == [] and not notes(out, "resend_retry")


def test_after_a_retry_status_switch_an_unnamed_error_is_the_resend_s(tmp_path: Path) -> None:
    """The primary's assistant message exists (and was replaced): a session.error naming no
    message still counts as the re-send's failure, not as a late error of the replaced message."""
    s = sim(tmp_path)
    s.start_turn(S)
    (resend,) = resends(s.retry(S))
    s.result(S, resend.token)
    out = internal_error(s)
    assert notes(out, "resend_retry") and retry_due(s, out).model == "fake/backup"


def test_an_error_in_the_replaced_message_is_still_stale(tmp_path: Path) -> None:
    """An assistant error naming the message baton replaced is that message's, not the re-send's."""
    s = sim(tmp_path)
    s.start_turn(S)
    (resend,) = resends(s.retry(S))
    s.result(S, resend.token)
    out = s.assistant(S, "msg_u1_a1", "msg_u1", "fake/primary", error={"name": "UnknownError",
                                                                         "data": {"message": FIBERS}})
    assert out == []


def test_an_error_in_the_new_model_s_own_message_is_resent(tmp_path: Path) -> None:
    s = sim(tmp_path)
    s.result(S, rerouted(s).token)
    out = s.assistant(S, "msg_a2", "msg_u1", "fake/backup", error={"name": "UnknownError",
                                                                     "data": {"message": FIBERS}})
    assert notes(out, "resend_retry")
    dup = s.error(S, FIBERS, name="UnknownError")  # opencode's session.error for the same failure
    assert resends(dup) == [] and not notes(dup, "resend_retry")


def test_a_new_prompt_cancels_a_pending_retry(tmp_path: Path) -> None:
    s = sim(tmp_path)
    s.result(S, rerouted(s).token)
    internal_error(s)
    out = s.user(S, "msg_u2", "fake/backup")
    assert resend_retry_key(S) in {c.key for c in cancels(out)}
    s.advance(2)
    assert resends(s.fire(resend_retry_key(S))) == []


def test_a_model_cooling_when_the_retry_comes_due_is_left_for_the_next(tmp_path: Path) -> None:
    """Another session cooled the backup meanwhile: re-sending there is pointless, the chain moves on."""
    s = sim(tmp_path)
    s.result(S, rerouted(s).token)
    out = internal_error(s)
    s.policy.cooldowns.extend("fake/backup", s.now + 60)
    (timer,) = [t for t in schedules(out) if t.key == resend_retry_key(S)]
    s.advance(timer.at - s.now)
    (resend,) = resends(s.fire(resend_retry_key(S)))
    assert resend.model == "fake/third"
    assert s.policy.sessions[S].status is StatusType.IDLE
