"""Quota-aware fallback in the session policy: parking, switching back, the spend and context guards.

README "Quota-aware fallback". Every test drives the pure policy with a fake clock (``Sim.now``):
a turn whose whole chain is cooling is parked (opencode's retry stopped, the message kept) and
re-sent when the first model resets; a new prompt or a model change cancels the park; the park
survives a restart; the next turn goes back to a cooled primary; guards pass over pricier models
and windows too small.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from policy_sim import T0, Sim, make_config, notes, resends, schedules, toasts

from baton.actions import AbortTurn, Action, CancelTimer, ClearIntent, SaveIntent
from baton.catalog import Catalog, ModelInfo
from baton.cooldowns import Cooldowns
from baton.events import AssistantMessage, CatalogSeen, RecoveredResend, SessionCreated, UserMessage
from baton.fallback.parking import clock_time, park_key
from baton.models import model_key

S = "ses_1"
PRIMARY, BACKUP, THIRD = "fake/primary", "fake/backup", "fake/third"
DIRECTORY = "/work/project"


def sim(tmp_path: Path, extra: dict[str, Any] | None = None, cooldowns: Cooldowns | None = None) -> Sim:
    settings: dict[str, Any] = {"agents": {"build": {"fallback_models": [BACKUP, THIRD]}}}
    for key, value in (extra or {}).items():
        settings[key] = {**settings.get(key, {}), **value}
    s = Sim(make_config(tmp_path, settings), cooldowns)
    s.feed(SessionCreated(S, None, DIRECTORY))
    return s


def catalog(*models: ModelInfo, connected: tuple[str, ...] | None = None) -> CatalogSeen:
    return CatalogSeen(Catalog({model_key(m.model): m for m in models},
                               frozenset(connected) if connected is not None else None))


def of(actions: list[Action], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def parked(tmp_path: Path, extra: dict[str, Any] | None = None) -> tuple[Sim, list[Action]]:
    """Backup and third cooling for 10 and 5 minutes; the primary fails with a 429 (60 s cooldown)."""
    s = sim(tmp_path, extra, Cooldowns([(BACKUP, T0 + 600), (THIRD, T0 + 300)]))
    s.start_turn(S, model=PRIMARY)
    return s, s.error(S, "Too many requests", 429)


# ------------------------------------------------------------------ parking


def test_a_turn_with_every_model_cooling_is_parked_until_the_first_reset(tmp_path: Path) -> None:
    s, out = parked(tmp_path)
    assert resends(out) == []
    assert of(out, AbortTurn) == [AbortTurn(S, DIRECTORY)]  # opencode's hopeless retry loop is stopped
    (save,) = of(out, SaveIntent)
    intent = save.intent
    assert (intent.model, intent.index, intent.message_id, intent.park_until) == (PRIMARY, -1, "msg_u1", T0 + 60)
    (timer,) = schedules(out)
    assert (timer.key, timer.at) == (park_key(S), T0 + 60)
    (note,) = notes(out, "parked")
    assert note.data["model"] == PRIMARY and note.data["until"] == T0 + 60
    (toast,) = toasts(out)
    assert toast.message.startswith(f"Parked until {clock_time(T0 + 60, T0)}, when {PRIMARY} resets")
    assert toast.directory == DIRECTORY
    snap = s.policy.snapshot(s.now)[0]
    assert (snap.parked_until, snap.park_model) == (T0 + 60, PRIMARY)


def test_the_park_waits_for_the_chain_model_that_resets_first(tmp_path: Path) -> None:
    """A 429 with a long configured cooldown: the third model, back in 5 minutes, is waited for."""
    s, out = parked(tmp_path, {"runtime_fallback": {"cooldown_seconds": 3600}})
    (save,) = of(out, SaveIntent)
    assert (save.intent.model, save.intent.index, save.intent.park_until) == (THIRD, 1, T0 + 300)


def test_the_park_ends_with_one_resend_on_the_reset_model(tmp_path: Path) -> None:
    s, out = parked(tmp_path)
    s.idle(S)  # the abort landed
    (timer,) = schedules(out)
    s.advance(timer.at - s.now)
    fired = s.fire(timer.key)
    (resend,) = resends(fired)
    assert (resend.model, resend.message_id, resend.abort) == (PRIMARY, "msg_u1", False)
    assert notes(fired, "resumed")[0].data == {"model": PRIMARY, "waited_for": PRIMARY}
    done = s.result(S, resend.token)
    fb = s.policy.sessions[S].fb
    assert fb is not None and (fb.current, fb.attempts, fb.index, fb.parked_until) == (PRIMARY, 0, -1, None)
    (toast,) = toasts(done)
    assert toast.title == "baton: resumed after the park" and toast.message == "Continuing on primary"
    assert of(done, ClearIntent) == [ClearIntent(S)]


def test_a_park_whose_model_is_still_cooling_waits_again(tmp_path: Path) -> None:
    """The provider extended the limit meanwhile: the turn waits for the next reset, within the cap."""
    s, out = parked(tmp_path)
    s.idle(S)
    s.policy.cooldowns.extend(PRIMARY, T0 + 900)
    s.advance(60)
    again = s.fire(park_key(S))
    assert resends(again) == []
    (timer,) = schedules(again)
    assert timer.at == T0 + 300  # the third model is now the first back
    assert "still parked" in notes(again, "parked")[0].text
    assert of(again, AbortTurn) == []  # nothing runs: nothing to stop


def test_a_park_that_would_pass_the_cap_is_not_made(tmp_path: Path) -> None:
    s, out = parked(tmp_path, {"runtime_fallback": {"cooldown_seconds": 30_000},
                               "baton": {"max_park_seconds": 120}})
    assert of(out, AbortTurn) == [] and of(out, SaveIntent) == [] and schedules(out) == []
    (refused,) = notes(out, "park_refused")
    assert "max_park_seconds" in refused.text and "opencode's own retry" in refused.text


def test_a_park_that_outgrows_the_cap_gives_up_and_says_so(tmp_path: Path) -> None:
    s, out = parked(tmp_path, {"baton": {"max_park_seconds": 400}})
    s.idle(S)
    for model in (PRIMARY, BACKUP, THIRD):
        s.policy.cooldowns.extend(model, T0 + 3600)
    s.advance(60)
    end = s.fire(park_key(S))
    assert resends(end) == [] and notes(end, "park_gave_up")
    assert ClearIntent(S) in end and [t.variant for t in toasts(end)] == ["error"]


def test_parking_off_leaves_opencode_s_retry_running(tmp_path: Path) -> None:
    s, out = parked(tmp_path, {"baton": {"park_when_exhausted": False}})
    assert of(out, AbortTurn) == [] and notes(out, "no_fallback")


def test_a_new_prompt_cancels_the_park(tmp_path: Path) -> None:
    s, _ = parked(tmp_path)
    s.idle(S)
    out = s.user(S, "msg_u2", PRIMARY)
    assert CancelTimer(park_key(S)) in out and ClearIntent(S) in out
    assert "a new prompt" in notes(out, "unparked")[0].text
    assert resends(s.fire(park_key(S))) == []  # a timer that fired anyway finds nothing parked


def test_a_manual_model_change_cancels_the_park(tmp_path: Path) -> None:
    s, _ = parked(tmp_path)
    out = s.feed(UserMessage(S, "msg_u1", "other/model", "build"))
    assert CancelTimer(park_key(S)) in out and ClearIntent(S) in out
    assert notes(out, "unparked") and notes(out, "reset")


def test_late_failures_and_the_abort_echo_leave_the_park_alone(tmp_path: Path) -> None:
    s, _ = parked(tmp_path)
    echo = s.error(S, "The operation was aborted.", name="MessageAbortedError")
    late = s.retry(S, 2, "Too many requests")
    assert resends(echo + late) == [] and notes(echo + late, "user_stop") == []
    assert of(echo + late, SaveIntent) == [] and s.policy.sessions[S].fb.parked_until == T0 + 60  # type: ignore[union-attr]


def test_a_deleted_session_drops_its_park(tmp_path: Path) -> None:
    s, _ = parked(tmp_path)
    out = s.delete(S)
    assert CancelTimer(park_key(S)) in out and ClearIntent(S) in out


def test_a_parked_session_outlives_the_idle_sweep(tmp_path: Path) -> None:
    """Sessions unseen for 30 minutes are forgotten, but a parked one waits in silence."""
    s, out = parked(tmp_path, {"runtime_fallback": {"cooldown_seconds": 3000}, "baton": {"max_park_seconds": 7200}})
    s.policy.cooldowns.extend(BACKUP, T0 + 3600)
    s.policy.cooldowns.extend(THIRD, T0 + 3600)
    s.idle(S)
    s.advance(2900)
    s.feed(SessionCreated("ses_other", None, DIRECTORY))  # any event runs the sweep
    assert S in s.policy.sessions
    s.advance(100)
    assert resends(s.fire(park_key(S)))


def test_a_park_survives_a_restart_of_baton(tmp_path: Path) -> None:
    """The new baton knows the cooldowns (the store keeps them) but sees the message on the fallback
    model it was re-sent on, so on its own it would wait for that model; the stored park wins: the
    turn waits for the primary's reset, as before the kill, and is re-sent there once."""
    s = sim(tmp_path, cooldowns=Cooldowns([(THIRD, T0 + 300)]))
    s.start_turn(S, model=PRIMARY)
    (resend,) = resends(s.error(S, "Too many requests", 429))
    s.result(S, resend.token)
    s.assistant(S, "msg_b1", "msg_u1", BACKUP)
    out = s.error(S, "Rate limit reached. Please try again in 600s.", 429)
    (save,) = of(out, SaveIntent)
    assert (save.intent.model, save.intent.park_until) == (PRIMARY, T0 + 60)
    t = sim(tmp_path, cooldowns=Cooldowns([(PRIMARY, T0 + 60), (BACKUP, T0 + 600), (THIRD, T0 + 300)]))
    t.advance(20)
    # The resync replays the turn (re-sent on the backup, its failed answer included), then the store's intent.
    out = t.user(S, "msg_u1", BACKUP) + t.assistant(S, "msg_b1", "msg_u1", BACKUP, error={
        "name": "APIError", "data": {"message": "Too many requests", "statusCode": 429}}) + t.idle(S)
    out += t.feed(RecoveredResend(save.intent))
    assert [x.at for x in schedules(out) if x.key == park_key(S)][-1] == T0 + 60
    assert of(out, SaveIntent)[-1].intent == save.intent and resends(out) == []
    t.advance(40)
    (resend,) = resends(t.fire(park_key(S)))
    assert (resend.model, resend.message_id) == (PRIMARY, "msg_u1")


def test_a_park_intent_is_kept_as_a_park_after_a_restart(tmp_path: Path) -> None:
    """The new baton knows nothing cooling (a fresh store): the intent alone sets the park again."""
    s, out = parked(tmp_path)
    (save,) = of(out, SaveIntent)
    t = sim(tmp_path)
    t.advance(20)
    t.user(S, "msg_u1", PRIMARY)
    t.assistant(S, "msg_u1_a1", "msg_u1", PRIMARY)
    t.idle(S)
    out = t.feed(RecoveredResend(save.intent))
    assert [(x.key, x.at) for x in schedules(out)] == [(park_key(S), T0 + 60)] and notes(out, "recovered")
    t.advance(40)
    (resend,) = resends(t.fire(park_key(S)))
    assert (resend.model, resend.message_id) == (PRIMARY, "msg_u1")


def test_a_park_due_while_baton_was_down_resumes_at_once(tmp_path: Path) -> None:
    s, out = parked(tmp_path)
    (save,) = of(out, SaveIntent)
    t = sim(tmp_path)
    t.advance(500)
    t.user(S, "msg_u1", PRIMARY)
    t.assistant(S, "msg_u1_a1", "msg_u1", PRIMARY)
    t.idle(S)
    (timer,) = schedules(t.feed(RecoveredResend(save.intent)))
    assert timer.at == t.now


def test_a_park_whose_turn_moved_on_is_dropped_after_a_restart(tmp_path: Path) -> None:
    s, out = parked(tmp_path)
    (save,) = of(out, SaveIntent)
    t = sim(tmp_path)
    t.advance(20)
    t.user(S, "msg_u2", PRIMARY)  # the user prompted again while baton was down
    out = t.feed(RecoveredResend(save.intent))
    assert ClearIntent(S) in out and schedules(out) == [] and notes(out, "recovery_skipped")


# ------------------------------------------------------------------ switching back


def moved_to_backup(s: Sim) -> None:
    """The primary failed once (60 s cooldown); the backup took the turn and answered."""
    s.start_turn(S, model=PRIMARY)
    (resend,) = resends(s.error(S, "Too many requests", 429))
    s.result(S, resend.token)
    s.assistant(S, "msg_b1", "msg_u1", BACKUP)
    s.text(S, "msg_b1")
    s.idle(S)


def test_the_next_turn_goes_back_to_the_cooled_primary(tmp_path: Path) -> None:
    s = sim(tmp_path)
    moved_to_backup(s)
    s.advance(61)
    s.user(S, "msg_u2", BACKUP)
    out = s.busy(S)
    (back,) = notes(out, "switch_back")
    assert back.data == {"from": BACKUP, "to": PRIMARY}
    (resend,) = resends(out)
    assert (resend.model, resend.message_id, resend.abort) == (PRIMARY, "msg_u2", True)
    s.result(S, resend.token)
    fb = s.policy.sessions[S].fb
    assert fb is not None and (fb.current, fb.attempts, fb.index) == (PRIMARY, 0, -1)


def test_no_switch_back_while_the_primary_cools(tmp_path: Path) -> None:
    s = sim(tmp_path)
    moved_to_backup(s)
    s.advance(30)
    s.user(S, "msg_u2", BACKUP)
    assert resends(s.busy(S)) == []


def test_no_switch_back_when_it_is_turned_off(tmp_path: Path) -> None:
    s = sim(tmp_path, {"runtime_fallback": {"restore_primary_after_cooldown": False}})
    moved_to_backup(s)
    s.advance(61)
    s.user(S, "msg_u2", BACKUP)
    assert resends(s.busy(S)) == []


def test_no_switch_back_in_the_middle_of_a_turn(tmp_path: Path) -> None:
    """The primary cools while the backup still answers the same turn: nothing moves."""
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    (resend,) = resends(s.error(S, "Too many requests", 429))
    s.result(S, resend.token)
    s.advance(61)
    out = s.assistant(S, "msg_b1", "msg_u1", BACKUP) + s.busy(S) + s.text(S, "msg_b1")
    assert resends(out) == [] and notes(out, "switch_back") == []


def test_a_primary_that_fails_again_cools_again_and_the_next_turn_stays(tmp_path: Path) -> None:
    s = sim(tmp_path)
    moved_to_backup(s)
    s.advance(61)
    s.user(S, "msg_u2", BACKUP)
    (back,) = resends(s.busy(S))
    s.result(S, back.token)
    s.assistant(S, "msg_p2", "msg_u2", PRIMARY)
    (down,) = resends(s.error(S, "Too many requests", 429))
    assert down.model == BACKUP
    s.result(S, down.token)
    s.idle(S)
    s.advance(10)
    s.user(S, "msg_u3", BACKUP)
    assert resends(s.busy(S)) == []


# ------------------------------------------------------------------ guards


PRICES = (ModelInfo(PRIMARY, 1.0, 4.0, 128_000), ModelInfo(BACKUP, 5.0, 20.0, 128_000),
          ModelInfo(THIRD, 1.0, 4.0, 200_000))


def test_the_spend_guard_passes_over_a_pricier_model_and_says_why(tmp_path: Path) -> None:
    s = sim(tmp_path, {"baton": {"max_cost_ratio": 1.0}})
    s.feed(catalog(*PRICES))
    s.start_turn(S, model=PRIMARY)
    out = s.error(S, "Too many requests", 429)
    (resend,) = resends(out)
    assert resend.model == THIRD
    (guard,) = notes(out, "guard")
    assert BACKUP in guard.text and "5x" in guard.text and "max_cost_ratio 1" in guard.text
    assert guard.data == {"refused": [BACKUP]}
    (toast,) = toasts(s.result(S, resend.token))
    assert toast.message == "primary is unavailable; continuing on third (passed over backup: pricier)"


def test_an_agent_s_own_cost_ratio_overrides_the_global_one(tmp_path: Path) -> None:
    s = sim(tmp_path, {"baton": {"max_cost_ratio": 1.0}, "agents": {"build": {"fallback_models": [BACKUP, THIRD],
                                                                               "max_cost_ratio": 10}}})
    s.feed(catalog(*PRICES))
    s.start_turn(S, model=PRIMARY)
    assert [r.model for r in resends(s.error(S, "Too many requests", 429))] == [BACKUP]


def test_an_unknown_cost_never_blocks(tmp_path: Path) -> None:
    s = sim(tmp_path, {"baton": {"max_cost_ratio": 1.0}})
    s.feed(catalog(PRICES[0], PRICES[2]))  # the backup is not listed
    s.start_turn(S, model=PRIMARY)
    assert [r.model for r in resends(s.error(S, "Too many requests", 429))] == [BACKUP]


def test_the_context_guard_passes_over_a_window_too_small(tmp_path: Path) -> None:
    s = sim(tmp_path)
    s.feed(catalog(*PRICES[:1], ModelInfo(BACKUP, 1.0, 4.0, 100_000), PRICES[2]))
    s.start_turn(S, model=PRIMARY)
    s.feed(AssistantMessage(S, "msg_u1_a1", "msg_u1", PRIMARY, "build", tokens=150_000))
    out = s.error(S, "Too many requests", 429)
    assert [r.model for r in resends(out)] == [THIRD]
    assert "context window (100,000 tokens) cannot hold the session (150,000 tokens)" in notes(out, "guard")[0].text


def test_a_provider_opencode_has_not_connected_is_skipped(tmp_path: Path) -> None:
    s = sim(tmp_path, {"agents": {"build": {"fallback_models": ["other/backup", THIRD]}}})
    s.feed(catalog(*PRICES, connected=("fake",)))
    s.start_turn(S, model=PRIMARY)
    assert [r.model for r in resends(s.error(S, "Too many requests", 429))] == [THIRD]


OVERFLOW = "prompt is too long: 140000 tokens > 128000 maximum"


def test_a_context_overflow_moves_to_a_larger_window_when_asked(tmp_path: Path) -> None:
    s = sim(tmp_path, {"baton": {"on_context_overflow": "larger-model"}})
    s.feed(catalog(*PRICES))
    s.start_turn(S, model=PRIMARY)
    out = s.error(S, OVERFLOW, 400)
    (resend,) = resends(out)
    assert resend.model == THIRD  # the backup's window is no larger
    assert not s.policy.cooldowns.is_cooling(PRIMARY, s.now)  # the primary is fine for smaller sessions


def test_a_context_overflow_is_left_to_opencode_by_default(tmp_path: Path) -> None:
    s = sim(tmp_path)
    s.feed(catalog(*PRICES))
    s.start_turn(S, model=PRIMARY)
    out = s.error(S, OVERFLOW, 400)
    assert resends(out) == [] and notes(out, "not_retryable")


# ------------------------------------------------------------------ baton status


def test_status_lists_parked_turns_with_their_resume_time(monkeypatch: Any) -> None:
    import time

    from rich.console import Console

    from baton import cli
    from baton.testing.clock import FakeClock

    monkeypatch.setattr(cli, "_clock", FakeClock(T0))
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    row = {"id": S, "status": "idle", "agent": "build", "current": PRIMARY, "original": PRIMARY, "attempts": 0,
           "max_attempts": 3, "chain": [BACKUP], "awaiting": False, "parked_until": T0 + 754, "park_model": THIRD}
    live = {"state": "attached", "opencode_url": "http://x", "events": 0, "fallbacks": 0, "connects": 1,
            "sessions": [row, {**row, "id": "ses_2", "parked_until": None, "park_model": None}], "tasks": [],
            "cooldowns": []}
    console = Console(record=True, width=200)
    try:
        console.print(cli._status_view(live, None))
        at = clock_time(T0 + 754, T0)  # in the same zone as the table
    finally:
        monkeypatch.undo()
        time.tzset()
    text = console.export_text()
    assert "parked turns" in text
    rows = [" ".join(line.replace("│", " ").split()) for line in text.splitlines() if "754s" in line]
    assert rows == [f"{S} {at} {THIRD} 754s"]


def test_a_failure_naming_its_reset_is_retryable_whatever_its_wording(tmp_path: Path) -> None:
    """"You exceeded your current quota" reads as billing (not retryable), but with "it will reset
    after 90s" the provider says it is temporary: the session moves on, the model cools 90 s."""
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    out = s.retry(S, 1, "You exceeded your current quota; it will reset after 90s.")
    assert [r.model for r in resends(out)] == [BACKUP]
    assert s.policy.cooldowns.until(PRIMARY) == T0 + 90
    t = sim(tmp_path)
    t.start_turn(S, model=PRIMARY)
    assert resends(t.retry(S, 1, "You exceeded your current quota, please check your plan and billing details.")) == []
