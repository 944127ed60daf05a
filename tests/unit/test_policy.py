"""The runtime-fallback policy, driven by event sequences and a fake clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from policy_sim import (
    T0,
    Sim,
    cancels,
    cooldowns_saved,
    make_config,
    notes,
    resends,
    schedules,
    toasts,
)

from baton.cooldowns import Cooldowns
from baton.events import AssistantMessage, PartDelta, ResendOutcome, UserMessage

CHAIN = {"agents": {"build": {"fallback_models": ["fake/backup", "fake/third"]}}}
S = "ses_1"


def sim(tmp_path: Path, extra: dict[str, Any] | None = None, cooldowns: Cooldowns | None = None) -> Sim:
    settings: dict[str, Any] = {**CHAIN, **(extra or {})}
    return Sim(make_config(tmp_path, settings), cooldowns)


def switched(s: Sim, sid: str = S) -> int:
    """Run a first fallback for ``sid`` and accept it; return the resend token."""
    s.start_turn(sid)
    (resend,) = resends(s.retry(sid))
    s.result(sid, resend.token)
    return resend.token


def test_retry_status_switches_to_next_model_with_the_same_message(tmp_path: Path) -> None:
    """A cooling-down retry status re-sends the user's message, same id and parts, on the next model."""
    s = sim(tmp_path)
    s.start_turn(S)
    actions = s.retry(S)
    (resend,) = resends(actions)
    assert resend.model == "fake/backup"
    assert resend.message_id == "msg_u1"
    assert resend.agent == "build"
    assert resend.abort is True
    assert resend.parts is not None and resend.parts[0]["text"] == "hello"
    assert [c.model for c in cooldowns_saved(actions)] == ["fake/primary"]
    assert notes(actions, "switch")


def test_repeated_retry_status_for_the_same_attempt_does_nothing(tmp_path: Path) -> None:
    """The same attempt with a new countdown text is one failure, not two."""
    s = sim(tmp_path, {"agents": {"build": {"fallback_models": []}}})
    s.start_turn(S)
    first = s.retry(S, 1, "All credentials for model primary are cooling down [retrying in 4m 2s attempt #1]")
    again = s.retry(S, 1, "All credentials for model primary are cooling down [retrying in 4m 1s attempt #1]")
    assert notes(first, "no_chain")
    assert again == []


def test_signals_during_an_in_flight_resend_are_ignored(tmp_path: Path) -> None:
    """A second failure signal while the re-send is executing starts no second switch.

    The switch is a proactive reroute, which replaces no assistant message: the running turn's
    failures are of the model in use, on a message no switch replaced, so only the in-flight
    guard (§6.8) keeps them from starting a second switch.
    """
    s = sim(tmp_path, cooldowns=Cooldowns([("fake/primary", T0 + 600)]))
    s.user(S, "msg_u1", "fake/primary")
    (first,) = resends(s.busy(S))
    assert first.model == "fake/backup"
    s.assistant(S, "msg_u1_a1", "msg_u1", "fake/primary")
    assert resends(s.retry(S, 1, "Rate limit exceeded")) == []
    assert resends(s.retry(S, 2, "Rate limit exceeded")) == []
    assert resends(s.error(S, "Too many requests", 429)) == []


def test_accepted_resend_arms_watchdog_and_toasts_the_new_model(tmp_path: Path) -> None:
    """Acceptance commits the switch, schedules the watchdog and names the new model in a toast."""
    s = sim(tmp_path)
    s.start_turn(S)
    (resend,) = resends(s.retry(S))
    actions = s.result(S, resend.token)
    (timer,) = schedules(actions)
    assert timer.at == s.now + 30
    (toast,) = toasts(actions)
    assert "backup" in toast.message
    state = s.policy.sessions[S].fb
    assert state is not None and state.current == "fake/backup" and state.attempts == 1


def test_refused_resend_rolls_back_and_keeps_the_cooldown(tmp_path: Path) -> None:
    """A refused prompt leaves the session on its model, arms nothing, and says so."""
    s = sim(tmp_path)
    s.start_turn(S)
    (resend,) = resends(s.retry(S))
    actions = s.result(S, resend.token, ResendOutcome.REFUSED)
    assert schedules(actions) == []
    assert toasts(actions)[0].variant == "error"
    state = s.policy.sessions[S].fb
    assert state is not None and state.current == "fake/primary" and state.attempts == 0
    assert s.policy.cooldowns.is_cooling("fake/primary", s.now)


def test_no_toast_when_notify_is_off(tmp_path: Path) -> None:
    """notify_on_fallback false switches silently."""
    s = sim(tmp_path, {"runtime_fallback": {"notify_on_fallback": False}})
    s.start_turn(S)
    (resend,) = resends(s.retry(S))
    assert toasts(s.result(S, resend.token)) == []


@pytest.mark.parametrize(
    ("message", "status"),
    [
        ("You have exhausted your capacity on this model", 400),
        ("Rate limit reached for requests", None),
        ("Service Unavailable", 503),
        ("Your credit balance is too low", 400),
    ],
)
def test_retryable_session_error_falls_back(tmp_path: Path, message: str, status: int | None) -> None:
    """A retryable terminal error, including a 400 opencode does not retry, moves the session on."""
    s = sim(tmp_path)
    s.start_turn(S)
    s.idle(S)
    (resend,) = resends(s.error(S, message, status))
    assert resend.model == "fake/backup"
    assert resend.abort is False


@pytest.mark.parametrize(
    ("message", "status", "name"),
    [
        ("invalid request: bad parameter", 400, "APIError"),
        ("prompt is too long: 250000 tokens > 200000 maximum", 400, "APIError"),
        ("The operation was aborted", None, "MessageAbortedError"),
        ("Invalid API key", 401, "ProviderAuthError"),
    ],
)
def test_non_retryable_error_never_falls_back(tmp_path: Path, message: str, status: int | None, name: str) -> None:
    """Bad requests, context overflow, aborts and auth errors are left to opencode."""
    s = sim(tmp_path)
    s.start_turn(S)
    actions = s.error(S, message, status, name)
    assert resends(actions) == []
    assert cooldowns_saved(actions) == []


def test_duplicated_error_events_decide_once(tmp_path: Path) -> None:
    """opencode repeats error events; the second copy does nothing."""
    s = sim(tmp_path, {"agents": {"build": {"fallback_models": []}}})
    s.start_turn(S)
    assert notes(s.error(S, "Too many requests", 429), "no_chain")
    assert s.error(S, "Too many requests", 429) == []


def test_chain_exhausted_without_parking_touches_nothing(tmp_path: Path) -> None:
    """park_when_exhausted off: with every fallback cooling, baton neither aborts nor re-sends:
    opencode keeps retrying."""
    cool = Cooldowns([("fake/backup", 2e9), ("fake/third", 2e9)])
    s = sim(tmp_path, {"baton": {"park_when_exhausted": False}}, cooldowns=cool)
    s.start_turn(S)
    actions = s.retry(S)
    assert resends(actions) == []
    (note,) = notes(actions, "no_fallback")
    assert note.data["reason"] == "no_candidate"
    assert "opencode's own retry" in note.text


def test_max_attempts_stops_switching(tmp_path: Path) -> None:
    """After max_fallback_attempts switches the chain is not walked further."""
    s = sim(tmp_path, {"runtime_fallback": {"max_fallback_attempts": 1}, "baton": {"park_when_exhausted": False}})
    switched(s)
    s.assistant(S, "msg_a2", "msg_u1", "fake/backup")
    actions = s.retry(S, 1, "Rate limit exceeded")
    assert resends(actions) == []
    assert notes(actions, "no_fallback")[0].data["reason"] == "max_attempts"


def test_failure_of_the_fallback_model_advances_the_chain(tmp_path: Path) -> None:
    """The pending model failing is a live failure: the next entry is taken."""
    s = sim(tmp_path)
    switched(s)
    s.assistant(S, "msg_a2", "msg_u1", "fake/backup")
    (resend,) = resends(s.retry(S, 1, "429 Too Many Requests"))
    assert resend.model == "fake/third"


def test_late_error_of_the_model_left_is_stale(tmp_path: Path) -> None:
    """An error of the replaced message arriving after the switch advances nothing."""
    s = sim(tmp_path)
    switched(s)
    late = AssistantMessage(S, "msg_u1_a1", "msg_u1", "fake/primary", "build",
                            error={"name": "APIError", "data": {"message": "Too many requests", "statusCode": 429}})
    assert resends(s.feed(late)) == []


def test_echo_of_the_resent_message_is_not_a_manual_change(tmp_path: Path) -> None:
    """opencode re-emits the user message with the new model; the chain position stays."""
    s = sim(tmp_path)
    s.start_turn(S)
    (resend,) = resends(s.retry(S))
    echo = s.feed(UserMessage(S, "msg_u1", "fake/backup", "build"))
    assert notes(echo, "reset") == []
    s.result(S, resend.token)
    state = s.policy.sessions[S].fb
    assert state is not None and state.attempts == 1


def test_manual_model_change_resets_the_chain(tmp_path: Path) -> None:
    """A prompt on a model that is neither current nor pending starts a fresh chain."""
    s = sim(tmp_path)
    switched(s)
    s.idle(S)
    actions = s.user(S, "msg_u2", "fake/third")
    assert notes(actions, "reset")
    state = s.policy.sessions[S].fb
    assert state is not None
    assert (state.original, state.current, state.attempts, state.index) == ("fake/third", "fake/third", 0, -1)


def test_watchdog_moves_on_when_the_fallback_hangs(tmp_path: Path) -> None:
    """No output from the fallback model before the timeout: it cools and the next model is tried."""
    s = sim(tmp_path)
    switched(s)
    s.busy(S)
    s.assistant(S, "msg_a2", "msg_u1", "fake/backup")
    s.advance(30)
    actions = s.fire(f"watchdog:{S}")
    assert [c.model for c in cooldowns_saved(actions)] == ["fake/backup"]
    (resend,) = resends(actions)
    assert resend.model == "fake/third" and resend.abort is True


def test_answer_clears_the_watchdog(tmp_path: Path) -> None:
    """Visible output from the fallback model confirms the switch; the watchdog is cancelled."""
    s = sim(tmp_path)
    switched(s)
    s.assistant(S, "msg_a2", "msg_u1", "fake/backup")
    actions = s.text(S, "msg_a2")
    assert cancels(actions) and notes(actions, "answered")
    assert s.fire(f"watchdog:{S}") == []


def test_old_answer_in_history_does_not_count(tmp_path: Path) -> None:
    """Output of an earlier turn never clears the watchdog of the current one."""
    s = sim(tmp_path)
    s.start_turn(S, "msg_u0")
    s.text(S, "msg_u0_a1")
    s.idle(S)
    s.user(S, "msg_u1", "fake/primary")
    s.busy(S)
    s.assistant(S, "msg_u1_a1", "msg_u1", "fake/primary")
    (resend,) = resends(s.retry(S))
    s.result(S, resend.token)
    s.feed(PartDelta(S, "msg_u0_a1", "prt_old", "text", "late text of an old message"))
    assert resends(s.fire(f"watchdog:{S}"))


def test_own_abort_is_not_a_user_stop(tmp_path: Path) -> None:
    """The empty completion and idle that follow baton's own abort keep the switch alive."""
    s = sim(tmp_path)
    switched(s)
    s.assistant(S, "msg_u1_a1", "msg_u1", "fake/primary", completed=True)
    s.idle(S)
    state = s.policy.sessions[S].fb
    assert state is not None and state.awaiting and state.pending == "fake/backup"


def test_user_stop_while_awaiting_clears_without_fallback(tmp_path: Path) -> None:
    """The user pressing stop on the fallback turn ends the wait; attempts are kept."""
    s = sim(tmp_path)
    switched(s)
    s.advance(10)
    s.busy(S)
    actions = s.assistant(S, "msg_a2", "msg_u1", "fake/backup", completed=True)
    assert notes(actions, "user_stop") and resends(actions) == []
    state = s.policy.sessions[S].fb
    assert state is not None and not state.awaiting and state.attempts == 1


def test_timeout_zero_ignores_retry_status_but_not_errors(tmp_path: Path) -> None:
    """timeout_seconds 0 disables retry-status detection and the watchdog, as upstream."""
    s = sim(tmp_path, {"runtime_fallback": {"timeout_seconds": 0}})
    s.start_turn(S)
    assert s.retry(S) == []
    (resend,) = resends(s.error(S, "Rate limit exceeded", 429))
    assert schedules(s.result(S, resend.token)) == []


def test_cooldown_is_shared_and_reroutes_a_new_prompt(tmp_path: Path) -> None:
    """Once one session saw the primary cool down, another session's prompt to it is rerouted at start."""
    s = sim(tmp_path)
    switched(s, "ses_a")
    s.user("ses_b", "msg_b1", "fake/primary")
    (resend,) = resends(s.busy("ses_b"))
    assert resend.session_id == "ses_b" and resend.model == "fake/backup" and resend.message_id == "msg_b1"


def test_cooled_primary_is_used_again_after_the_cooldown(tmp_path: Path) -> None:
    """When the cooldown has passed, a prompt naming the primary runs on it."""
    s = sim(tmp_path)
    switched(s)
    s.idle(S)
    s.advance(61)
    s.user(S, "msg_u2", "fake/primary")
    assert resends(s.busy(S)) == []


def test_provider_retry_time_sets_the_cooldown(tmp_path: Path) -> None:
    """A `next` far beyond opencode's backoff is the provider's retry time and becomes the cooldown."""
    s = sim(tmp_path)
    s.start_turn(S)
    next_ms = int((s.now + 240) * 1000)
    (saved,) = cooldowns_saved(s.retry(S, 1, COOLDOWN := "Rate limit exceeded", next_ms))
    assert saved.until == pytest.approx(next_ms / 1000, abs=1e-3)  # abs: epoch seconds dwarf a relative bound
    assert COOLDOWN


def test_opencode_backoff_is_not_a_provider_time(tmp_path: Path) -> None:
    """A `next` inside opencode's own backoff band leaves the configured cooldown in force."""
    s = sim(tmp_path, {"runtime_fallback": {"cooldown_seconds": 90}})
    s.start_turn(S)
    (saved,) = cooldowns_saved(s.retry(S, 2, "Rate limit exceeded", int((s.now + 4.5) * 1000)))
    assert saved.until == pytest.approx(s.now + 90, abs=1e-3)


@pytest.mark.parametrize(
    ("attempt", "delay", "provider"),
    [
        (1, 2.0, False),  # opencode's own 2 s for attempt 1
        (1, 2.6, False),  # plus its 30 % jitter
        (1, 3.5, True),  # past the jitter and half a second of latency: the provider's time
        (1, 4.0, True),
        (1, 1.2, True),  # sooner than opencode would retry: the provider's Retry-After
        (3, 8.0, False),  # 2 s * 2**2
        (3, 10.4, False),
        (3, 12.0, True),
        (0, 2.0, False),  # no usable attempt number: read as attempt 1
        (-1, 2.0, False),
        (None, 2.0, False),
        ("x", 2.0, False),
    ],
)
def test_retry_next_is_the_provider_s_time_only_outside_opencode_s_backoff(
    tmp_path: Path, attempt: object, delay: float, provider: bool
) -> None:
    """§6.1.3 (b): a retry status's ``next`` cools the model until then, unless it is opencode's own
    backoff for the attempt (2 s * 2**(attempt-1), up to 30 % more); then the configured cooldown."""
    s = sim(tmp_path)
    s.start_turn(S)
    (saved,) = cooldowns_saved(s.retry(S, attempt, "Rate limit exceeded", int((s.now + delay) * 1000)))  # type: ignore[arg-type]
    assert saved.until == pytest.approx(s.now + (delay if provider else 60), abs=1e-3)


def test_equivalent_model_in_chain_is_skipped(tmp_path: Path) -> None:
    """A chain entry equal to the failing model (case, `.` vs `-`) is never chosen."""
    s = sim(tmp_path, {"agents": {"build": {"fallback_models": ["Fake/Primary", "fake/backup"]}}})
    s.start_turn(S)
    (resend,) = resends(s.retry(S))
    assert resend.model == "fake/backup"


def test_compaction_messages_are_ignored(tmp_path: Path) -> None:
    """The compaction agent's turns never change the session's model or trigger a fallback."""
    s = sim(tmp_path)
    s.start_turn(S)
    s.feed(UserMessage(S, "msg_c", "fake/third", "compaction"))
    state = s.policy.sessions[S].fb
    assert state is not None and state.current == "fake/primary"


def test_per_model_and_default_chains(tmp_path: Path) -> None:
    """Without an agent chain, baton.model_fallbacks then baton.fallback_models apply."""
    s = Sim(make_config(tmp_path, {"baton": {"model_fallbacks": {"fake/primary": "fake/third"},
                                             "fallback_models": ["fake/backup"]}}))
    s.start_turn(S, agent="plan")
    assert resends(s.retry(S))[0].model == "fake/third"
    s.start_turn("ses_2", model="fake/other", agent="plan")
    assert resends(s.retry("ses_2", message="Rate limit exceeded"))[0].model == "fake/backup"


def test_deleted_session_is_forgotten(tmp_path: Path) -> None:
    """session.deleted drops the state and its watchdog."""
    s = sim(tmp_path)
    switched(s)
    assert cancels(s.delete(S))
    assert S not in s.policy.sessions


def test_inactive_sessions_expire(tmp_path: Path) -> None:
    """Sessions unseen for 30 minutes are swept."""
    s = sim(tmp_path)
    s.start_turn(S)
    s.advance(31 * 60)
    s.start_turn("ses_other")
    assert S not in s.policy.sessions


def test_disabled_policy_decides_nothing(tmp_path: Path) -> None:
    """runtime_fallback false: no observation, no decision."""
    s = sim(tmp_path, {"runtime_fallback": False})
    s.start_turn(S)
    assert s.retry(S) == []
    assert s.policy.sessions == {}


def test_session_error_without_session_is_journaled(tmp_path: Path) -> None:
    """An error event without a session id is noted and ignored."""
    from baton.events import SessionError

    s = sim(tmp_path)
    assert notes(s.feed(SessionError(None, {"name": "APIError"})), "ignored")


def test_retry_without_seen_turn_still_falls_back(tmp_path: Path) -> None:
    """A retry status for a session whose turn baton never saw uses the agent's model and newest message."""
    s = Sim(make_config(tmp_path, {"baton": {"fallback_models": ["fake/backup"]},
                                   "agents": {"build": {"model": "fake/primary"}}}))
    s.busy(S)
    s.policy.sessions[S].agent_key = "build"
    (resend,) = resends(s.retry(S))
    assert resend.message_id is None and resend.parts is None and resend.model == "fake/backup"


def test_late_abort_error_after_the_switch_is_baton_s_own(tmp_path: Path) -> None:
    """One abort can yield both an empty completion and a late abort error; neither is a user stop."""
    s = sim(tmp_path)
    switched(s)
    s.assistant(S, "msg_u1_a1", "msg_u1", "fake/primary", completed=True)
    s.idle(S)
    s.busy(S)
    s.assistant(S, "msg_a2", "msg_u1", "fake/backup")
    late = s.error(S, "The operation was aborted", name="MessageAbortedError")
    assert notes(late, "user_stop") == []
    assert notes(s.text(S, "msg_a2"), "answered")
