"""Failure signals at their edges, and a park cancelled by a new prompt, in the journal's words
(runtime-fallback §4.4, §6.4, §6.7, §6.10 rule 3).

Written against the mutants mutation testing left alive in ``Signals.on_session_error``,
``_on_retry_text``, ``_on_completed_empty`` and ``Parker.unpark`` (``scripts/mutation.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from policy_sim import T0, Sim, make_config, notes, resends

from baton.actions import Action, CancelTimer, ClearIntent, Note, Resend
from baton.cooldowns import Cooldowns
from baton.events import AssistantMessage, SessionCreated, SessionError, UserMessage
from baton.fallback.parking import park_key
from baton.fallback.state import OWN_ABORT_GRACE_S
from baton.fallback.switching import watchdog_key

S = "ses_1"
PRIMARY, BACKUP, THIRD = "fake/primary", "fake/backup", "fake/third"
DIRECTORY = "/work/project"
LIMIT = "Usage limit hit - retrying in 30s"


def sim(tmp_path: Path, cooldowns: Cooldowns | None = None, **sections: Any) -> Sim:
    s = Sim(make_config(tmp_path, {"agents": {"build": {"fallback_models": [BACKUP, THIRD]}}, **sections}),
            cooldowns)
    s.feed(SessionCreated(S, None, DIRECTORY))
    return s


def retry_text(s: Sim, mid: str, model: str | None, text: str = LIMIT) -> list[Action]:
    return s.feed(AssistantMessage(S, mid, "msg_u1", model, "build", retry_text=text))


def on_backup(s: Sim) -> Resend:
    """The primary fails with a 429 while it runs; the re-send on the backup is accepted."""
    s.start_turn(S, model=PRIMARY)
    (resend,) = resends(s.error(S, "Too many requests", 429))
    s.result(S, resend.token)
    return resend


def test_an_error_event_without_a_session_is_ignored_and_said(tmp_path: Path) -> None:
    s = sim(tmp_path)
    assert s.feed(SessionError(None, {"name": "APIError", "data": {"message": "Too many requests"}})) == [
        Note(None, "ignored", "an error event without a session id was ignored")]


def test_the_same_retry_text_in_the_backup_s_message_is_a_new_failure(tmp_path: Path) -> None:
    """The key of an auto-retry text holds the model: the backup saying what the primary said is
    the backup failing, and the chain moves on."""
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    (first,) = resends(retry_text(s, "msg_u1_a1", PRIMARY))
    assert first.model == BACKUP
    s.result(S, first.token)
    s.assistant(S, "msg_a2", "msg_u1", BACKUP)
    assert [r.model for r in resends(retry_text(s, "msg_a2", BACKUP))] == [THIRD]
    assert resends(retry_text(s, "msg_a2", BACKUP)) == []  # said again: the same failure


def test_retry_text_in_a_message_of_no_named_model_is_that_message_s(tmp_path: Path) -> None:
    """The message carrying the text has no model yet: the failing model is the message's as the turn
    knows it, not the newest message's."""
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    s.assistant(S, "msg_u1_a2", "msg_u1", BACKUP)
    assert [r.model for r in resends(retry_text(s, "msg_u1_a1", None))] == [BACKUP]


# ------------------------------------------------------------------ empty completions (§6.7)


def test_an_empty_completion_of_the_new_model_within_baton_s_abort_grace_is_baton_s(tmp_path: Path) -> None:
    s = sim(tmp_path)
    on_backup(s)
    s.assistant(S, "msg_a2", "msg_u1", BACKUP)
    s.advance(OWN_ABORT_GRACE_S - 0.5)
    assert s.assistant(S, "msg_a2", "msg_u1", BACKUP, completed=True) == []


def test_an_empty_completion_of_the_new_model_when_the_grace_ends_is_the_user_s_stop(tmp_path: Path) -> None:
    s = sim(tmp_path)
    on_backup(s)
    s.assistant(S, "msg_a2", "msg_u1", BACKUP)
    s.advance(OWN_ABORT_GRACE_S)
    out = s.assistant(S, "msg_a2", "msg_u1", BACKUP, completed=True)
    assert [(n.kind, n.text) for n in notes(out)] == [("user_stop", "the user stopped the turn; no fallback")]


def test_the_completion_of_a_message_that_answered_is_not_a_stop(tmp_path: Path) -> None:
    """The backup's message streamed before opencode named its model, then was named and completed:
    it answered, so its completion is no stop, whatever the switch still waits for."""
    s = sim(tmp_path)
    on_backup(s)
    s.feed(AssistantMessage(S, "msg_a2", "msg_u1", None, "build"))
    s.text(S, "msg_a2")
    s.advance(OWN_ABORT_GRACE_S + 1)
    assert s.assistant(S, "msg_a2", "msg_u1", BACKUP, completed=True) == []


# ------------------------------------------------------------------ a park cancelled (§6.10 rule 3)


def parked(tmp_path: Path) -> Sim:
    """Backup and third cooling; the primary's 429 parks the turn until T0+60."""
    s = sim(tmp_path, Cooldowns([(BACKUP, T0 + 600), (THIRD, T0 + 300)]))
    s.start_turn(S, model=PRIMARY)
    assert notes(s.error(S, "Too many requests", 429), "parked")
    s.idle(S)
    return s


def test_a_new_prompt_cancels_the_park_and_says_so_in_full(tmp_path: Path) -> None:
    s = parked(tmp_path)
    out = s.user(S, "msg_u2", PRIMARY)
    assert out[:3] == [
        CancelTimer(park_key(S)),
        Note(S, "unparked", f"park on {PRIMARY} cancelled: a new prompt was sent", {"model": PRIMARY}),
        ClearIntent(S),
    ]


def test_a_new_prompt_without_a_model_still_cancels_the_park_and_its_intent(tmp_path: Path) -> None:
    s = parked(tmp_path)
    out = s.feed(UserMessage(S, "msg_u2", None, "build"))
    assert out == [
        CancelTimer(park_key(S)),
        Note(S, "unparked", f"park on {PRIMARY} cancelled: a new prompt was sent", {"model": PRIMARY}),
        ClearIntent(S),
    ]


def test_a_new_prompt_without_a_model_during_a_resend_leaves_its_intent(tmp_path: Path) -> None:
    """Nothing is parked: the re-send's intent is left for its result (or the next prompt with a model)."""
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    resends(s.error(S, "Too many requests", 429))
    assert s.feed(UserMessage(S, "msg_u2", None, "build")) == []


# ------------------------------------------------------------------ opencode's retry status (§5)


def no_fallback_sim(tmp_path: Path) -> Sim:
    """Every fallback cooling and parking off: a failure only says there is nowhere to go."""
    return sim(tmp_path, Cooldowns([(BACKUP, T0 + 600), (THIRD, T0 + 600)]), baton={"park_when_exhausted": False})


def test_each_attempt_of_opencode_s_retry_is_a_signal_of_its_own(tmp_path: Path) -> None:
    s = no_fallback_sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    assert [n.kind for n in notes(s.retry(S, 1, "Rate limit exceeded"))] == ["no_fallback"]
    assert s.retry(S, 1, "Rate limit exceeded") == []  # the same status again
    assert [n.kind for n in notes(s.retry(S, 2, "Rate limit exceeded"))] == ["no_fallback"]


def test_a_retry_status_of_another_kind_at_the_same_attempt_is_a_signal_of_its_own(tmp_path: Path) -> None:
    s = no_fallback_sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    assert [n.kind for n in notes(s.retry(S, 1, "Rate limit exceeded"))] == ["no_fallback"]
    assert [n.kind for n in notes(s.retry(S, 1, "Provider is overloaded"))] == ["no_fallback"]


def test_a_first_retry_status_of_a_prompt_without_a_model_is_deduped_too(tmp_path: Path) -> None:
    """The prompt named no model: the failing model is the agent's primary, the fallback state is
    made by the failure itself, and its key is kept."""
    s = Sim(make_config(tmp_path, {"agents": {"build": {"model": PRIMARY, "fallback_models": [BACKUP, THIRD]}},
                                   "baton": {"park_when_exhausted": False}}),
            Cooldowns([(BACKUP, T0 + 600), (THIRD, T0 + 600)]))
    s.feed(UserMessage(S, "msg_u1", None, "build"))
    s.busy(S)
    assert [n.kind for n in notes(s.retry(S, 1, "Rate limit exceeded"))] == ["no_fallback"]
    assert s.retry(S, 1, "Rate limit exceeded") == []


def test_a_retry_status_with_nowhere_to_go_leaves_the_watchdog_running(tmp_path: Path) -> None:
    """On the backup (watched), the backup's retry status finds no model left: opencode keeps retrying,
    so the switch still waits and its watchdog stays armed (only a terminal error stops them)."""
    s = sim(tmp_path, Cooldowns([(THIRD, T0 + 600)]), baton={"park_when_exhausted": False})
    on_backup(s)
    s.busy(S)
    s.assistant(S, "msg_a2", "msg_u1", BACKUP)
    out = s.retry(S, 1, "Rate limit exceeded")
    assert [n.kind for n in notes(out)] == ["no_fallback"]
    assert [a for a in out if isinstance(a, CancelTimer)] == []
    fb = s.policy.sessions[S].fb
    assert fb is not None and fb.awaiting and fb.watchdog_at is not None


def test_a_retry_status_that_switches_again_cancels_the_watchdog_of_the_last_switch(tmp_path: Path) -> None:
    s = sim(tmp_path)
    on_backup(s)
    s.busy(S)
    s.assistant(S, "msg_a2", "msg_u1", BACKUP)
    out = s.retry(S, 1, "Rate limit exceeded")
    assert [r.model for r in resends(out)] == [THIRD]
    assert [a for a in out if isinstance(a, CancelTimer)] == [CancelTimer(watchdog_key(S))]


# ------------------------------------------------------------------ which model failed (§6.4 rule 4)


def test_an_error_with_no_message_to_name_is_the_turn_s_model_s(tmp_path: Path) -> None:
    """Rerouted off the cooling primary before any assistant message, and opencode has not echoed
    the message on the backup yet: a session.error then is the turn's model's (the primary's), which
    the session left: stale, nothing moves."""
    s = sim(tmp_path, Cooldowns([(PRIMARY, T0 + 60)]))
    s.user(S, "msg_u1", PRIMARY)
    (resend,) = resends(s.busy(S))
    s.result(S, resend.token)
    assert resends(s.error(S, "Too many requests", 429)) == []


def test_an_error_of_a_prompt_without_a_model_is_the_current_model_s(tmp_path: Path) -> None:
    """After a switch to the backup, the next prompt names no model and fails before any assistant
    message: the failing model is the one the session is on, and the chain moves on."""
    s = sim(tmp_path)
    on_backup(s)
    s.feed(UserMessage(S, "msg_u2", None, "build"))
    s.busy(S)
    assert [r.model for r in resends(s.error(S, "Too many requests", 429))] == [THIRD]


def test_an_error_of_a_session_baton_knows_nothing_of_is_ignored_and_said(tmp_path: Path) -> None:
    s = sim(tmp_path)
    assert s.error("ses_new", "Too many requests", 429) == [
        Note("ses_new", "ignored", "a failure arrived but the failing model is unknown")]


ABORTED = {"name": "MessageAbortedError", "data": {"message": "The operation was aborted."}}


def test_an_abort_error_within_baton_s_abort_grace_is_baton_s(tmp_path: Path) -> None:
    s = sim(tmp_path)
    on_backup(s)
    s.assistant(S, "msg_a2", "msg_u1", BACKUP)
    s.advance(OWN_ABORT_GRACE_S - 0.5)
    assert s.assistant(S, "msg_a2", "msg_u1", BACKUP, error=ABORTED) == []


def test_an_abort_error_when_baton_s_abort_grace_ends_is_the_user_s_stop(tmp_path: Path) -> None:
    s = sim(tmp_path)
    on_backup(s)
    s.assistant(S, "msg_a2", "msg_u1", BACKUP)
    s.advance(OWN_ABORT_GRACE_S)
    out = s.assistant(S, "msg_a2", "msg_u1", BACKUP, error=ABORTED)
    assert [(n.kind, n.text) for n in notes(out)] == [("user_stop", "the user stopped the turn; no fallback")]


def test_the_configured_status_codes_decide_what_is_retried(tmp_path: Path) -> None:
    """``retry_on_errors`` lists 418: a teapot error moves the turn on, as a 429 would by default."""
    s = sim(tmp_path, runtime_fallback={"retry_on_errors": [418]})
    s.start_turn(S, model=PRIMARY)
    assert [r.model for r in resends(s.error(S, "I'm a teapot", 418))] == [BACKUP]


def test_a_context_overflow_that_names_a_reset_time_is_still_not_retried(tmp_path: Path) -> None:
    """A reset time in the text makes an unclassified failure retryable (the provider says it is
    temporary), but an overflow is no provider limit: another model of the chain would not help."""
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    out = s.error(S, "prompt is too long: 250000 tokens > 200000 maximum; try again in 5 minutes", 400)
    assert resends(out) == [] and [n.kind for n in notes(out)] == ["not_retryable"]
