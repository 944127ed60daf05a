"""Parking, in the words and records the user and a restarted baton see (runtime-fallback §6.10 rules 1-3).

README "Quota-aware fallback", Parking: a turn no model can answer now is parked until the first
model of ``[primary, *chain]`` resets (the primary first on a tie), opencode's retry stopped and the
message kept; the journal and a toast say until when ("Parked until 14:32, when M resets"); a park
longer than ``baton.max_park_seconds`` is not made. Only a model that could take the turn is
waited for: one the guards refuse, or whose provider opencode has not connected, is not. Written
against the mutants mutation testing left alive in :mod:`baton.fallback.parking`
(``scripts/mutation.py``). Clock times are read in UTC (``TZ`` set for each test): ``T0`` is
Friday 2027-01-15 08:00 UTC.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from policy_sim import T0, Sim, make_config, notes, resends, schedules, toasts

from baton.actions import AbortTurn, Action, CancelTimer, ResendIntent, SaveIntent, Toast
from baton.catalog import Catalog, ModelInfo
from baton.cooldowns import Cooldowns
from baton.events import AssistantMessage, CatalogSeen, SessionCreated, UserMessage
from baton.fallback.parking import clock_time, park_key
from baton.models import model_key

S = "ses_1"
PRIMARY, BACKUP, THIRD, FOURTH = "fake/primary", "fake/backup", "fake/third", "fake/fourth"
DIRECTORY = "/work/project"
DAY = 86_400


pytestmark = pytest.mark.usefixtures("utc")  # clock times read the same on any machine


def sim(tmp_path: Path, cooling: dict[str, float], chain: list[str] | None = None, **sections: dict[str, Any]) -> Sim:
    """``cooling``: model -> seconds after T0 its cooldown ends (as the shared table holds it)."""
    settings: dict[str, Any] = {"agents": {"build": {"fallback_models": chain or [BACKUP, THIRD]}}, **sections}
    s = Sim(make_config(tmp_path, settings), Cooldowns([(m, T0 + t) for m, t in cooling.items()]))
    s.feed(SessionCreated(S, None, DIRECTORY))
    return s


def catalog(s: Sim, *models: ModelInfo, connected: tuple[str, ...] | None = None) -> None:
    s.feed(CatalogSeen(Catalog({model_key(m.model): m for m in models},
                               frozenset(connected) if connected is not None else None)))


def of(actions: list[Action], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def fail(s: Sim) -> list[Action]:
    return s.error(S, "Too many requests", 429)


def park_of(out: list[Action]) -> tuple[str, float]:
    (save,) = of(out, SaveIntent)
    assert save.intent.park_until is not None
    return save.intent.model, save.intent.park_until - T0


def test_clock_time_is_the_time_today_and_the_weekday_on_another_day() -> None:
    assert clock_time(T0 + 60, T0) == "08:01"
    assert clock_time(T0 + DAY + 5 * 60, T0) == "Sat 08:05"


# ------------------------------------------------------------------ what a park records and says


def test_a_park_after_a_switch_is_recorded_whole_and_said_in_full(tmp_path: Path) -> None:
    """The backup, reached by a first switch, fails too while the third still cools: the turn waits
    for the primary. The intent holds what a restarted baton needs; journal and toast say it all."""
    s = sim(tmp_path, {THIRD: 300})
    s.start_turn(S, model=PRIMARY)
    (first,) = resends(fail(s))
    s.result(S, first.token)
    s.assistant(S, "msg_b1", "msg_u1", BACKUP)
    s.advance(10)
    out = fail(s)
    assert resends(out) == [] and of(out, AbortTurn) == [AbortTurn(S, DIRECTORY)]
    assert of(out, SaveIntent) == [SaveIntent(ResendIntent(
        session_id=S, message_id="msg_u1", model=PRIMARY, agent="build", directory=DIRECTORY, original=PRIMARY,
        current=BACKUP, failing=BACKUP, reason="no model of the chain is usable now", chain=(BACKUP, THIRD),
        chain_source="agents.build.fallback_models", index=-1, from_index=0, attempts=1, retry=0,
        seen=("msg_u1_a1", "msg_b1"), decided_at=T0 + 10, park_until=T0 + 60,
    ))]
    (note,) = notes(out, "parked")
    assert (note.session_id, note.text) == (
        S, f"{BACKUP} failed and no model of the chain is usable now; parked until 08:01, when {PRIMARY} resets")
    assert note.data == {"model": PRIMARY, "until": T0 + 60, "failing": BACKUP, "reason": "no_candidate"}
    assert toasts(out) == [Toast("baton: turn parked", f"Parked until 08:01, when {PRIMARY} resets; a new prompt "
                                 "cancels it", "warning", DIRECTORY)]
    assert notes(out, "no_fallback") == []  # parked, not left to opencode's retry
    (row,) = s.policy.snapshot(s.now)
    assert (row.parked_until, row.park_model, row.awaiting) == (T0 + 60, PRIMARY, False)


def test_a_prompt_that_names_no_agent_is_parked_with_the_session_s_agent(tmp_path: Path) -> None:
    s = sim(tmp_path, {BACKUP: 600, THIRD: 300})
    s.start_turn(S, model=PRIMARY)
    s.idle(S)
    s.feed(UserMessage(S, "msg_u2", PRIMARY, None))
    s.busy(S)
    s.assistant(S, "msg_u2_a1", "msg_u2", PRIMARY)
    (save,) = of(fail(s), SaveIntent)
    assert (save.intent.message_id, save.intent.agent) == ("msg_u2", "build")


def test_a_park_ending_on_another_day_names_the_weekday(tmp_path: Path) -> None:
    """The primary's cooldown of two days is capped at baton.max_cooldown_seconds (a day)."""
    s = sim(tmp_path, {BACKUP: DAY + 600, THIRD: DAY + 300}, runtime_fallback={"cooldown_seconds": 2 * DAY},
            baton={"max_park_seconds": 2 * DAY})
    s.start_turn(S, model=PRIMARY)
    (toast,) = toasts(fail(s))
    assert toast.message.startswith(f"Parked until Sat 08:00, when {PRIMARY} resets")


def test_the_abort_a_park_sends_is_baton_s_own_for_five_seconds(tmp_path: Path) -> None:
    """§6.7.1: the park aborts the running turn; a late abort error within 5 s is that abort's echo,
    after 5 s it is the user's stop (the turn resumed on the primary 3 s after the park)."""
    for late, stopped in ((4.0, False), (5.5, True)):
        s = sim(tmp_path, {BACKUP: 600, THIRD: 600}, runtime_fallback={"cooldown_seconds": 3})
        s.start_turn(S, model=PRIMARY)
        assert of(fail(s), AbortTurn)
        s.idle(S)
        s.advance(3)
        (resume,) = resends(s.fire(park_key(S)))
        assert (resume.model, resume.abort) == (PRIMARY, False)
        s.result(S, resume.token)
        s.assistant(S, "msg_p2", "msg_u1", PRIMARY)
        s.advance(late - 3)
        out = s.error(S, "The operation was aborted.", name="MessageAbortedError")
        assert bool(notes(out, "user_stop")) is stopped, late


# ------------------------------------------------------------------ which model the park waits for


def test_on_a_tie_the_primary_is_waited_for(tmp_path: Path) -> None:
    s = sim(tmp_path, {BACKUP: 60, THIRD: 300})
    s.start_turn(S, model=PRIMARY)
    assert park_of(fail(s)) == (PRIMARY, 60)


def test_a_used_up_chain_waits_for_the_first_reset_still_ahead(tmp_path: Path) -> None:
    """Attempts used up: the third's cooldown ends this very moment and the fourth never failed,
    so neither is waited for; the primary resets first."""
    s = sim(tmp_path, {THIRD: 10}, [BACKUP, THIRD, FOURTH], runtime_fallback={"max_fallback_attempts": 1})
    s.start_turn(S, model=PRIMARY)
    (first,) = resends(fail(s))
    s.result(S, first.token)
    s.assistant(S, "msg_b1", "msg_u1", BACKUP)
    s.advance(10)
    out = fail(s)
    assert park_of(out) == (PRIMARY, 60)
    assert "the fallback attempts are used up" in notes(out, "parked")[0].text


REFUSED = {
    "window too small for the session": ({}, None, ModelInfo(BACKUP, 1.0, 4.0, 100_000)),
    "provider not connected": ({}, ("fake",), ModelInfo("other/backup", 1.0, 4.0, 200_000)),
    "pricier than max_cost_ratio allows": ({"max_cost_ratio": 2.0}, None, ModelInfo(BACKUP, 5.0, 20.0, 200_000)),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_park_never_waits_for_or_resumes_on_a_model_that_could_not_take_the_turn(
    tmp_path: Path, case: str
) -> None:
    """The model resetting first is refused: the park waits for the third; when its time comes the
    refused model, no longer cooling, is passed over again and the turn resumes on the third."""
    baton, connected, refused = REFUSED[case]
    s = sim(tmp_path, {refused.model: 100, THIRD: 300}, [refused.model, THIRD],
            runtime_fallback={"cooldown_seconds": 3600}, baton=baton)
    catalog(s, ModelInfo(PRIMARY, 1.0, 4.0, 200_000), refused, ModelInfo(THIRD, 1.0, 4.0, 200_000),
            connected=connected)
    s.start_turn(S, model=PRIMARY)
    s.feed(AssistantMessage(S, "msg_u1_a1", "msg_u1", PRIMARY, "build", tokens=150_000))
    out = fail(s)
    assert park_of(out) == (THIRD, 300)
    s.idle(S)
    s.advance(300)
    (resume,) = resends(s.fire(park_key(S)))
    assert resume.model == THIRD


def test_with_nothing_that_could_take_the_turn_to_wait_for_opencode_s_retry_runs(tmp_path: Path) -> None:
    """The catalog arrives after the switch: backup and third cost five times the primary, above a
    ratio of 2, and the primary has cooled. No park; the journal says why baton did not step in."""
    s = sim(tmp_path, {THIRD: 600}, baton={"max_cost_ratio": 2.0})
    s.start_turn(S, model=PRIMARY)
    (first,) = resends(fail(s))
    s.result(S, first.token)
    catalog(s, ModelInfo(PRIMARY, 1.0, 4.0, 200_000), ModelInfo(BACKUP, 5.0, 20.0, 200_000),
            ModelInfo(THIRD, 5.0, 20.0, 200_000))
    s.assistant(S, "msg_b1", "msg_u1", BACKUP)
    s.advance(61)
    out = fail(s)
    assert of(out, SaveIntent) == [] and of(out, AbortTurn) == [] and notes(out, "parked") == []
    assert notes(out, "no_fallback")


# ------------------------------------------------------------------ when parking applies, and its cap


def test_without_cooldowns_nothing_is_parked(tmp_path: Path) -> None:
    """§6.10.1 parks only while cooldowns are on: with cooldown_seconds 0 the shared table's old
    entries do not make baton stop opencode's retry."""
    s = sim(tmp_path, {PRIMARY: 600, BACKUP: 600, THIRD: 600},
            runtime_fallback={"cooldown_seconds": 0, "max_fallback_attempts": 1})
    s.start_turn(S, model=PRIMARY)
    (first,) = resends(fail(s))
    s.result(S, first.token)
    s.assistant(S, "msg_b1", "msg_u1", BACKUP)
    out = fail(s)
    assert of(out, SaveIntent) == [] and notes(out, "no_fallback")


def test_a_one_second_cooldown_still_parks(tmp_path: Path) -> None:
    s = sim(tmp_path, {BACKUP: 600, THIRD: 300}, runtime_fallback={"cooldown_seconds": 1})
    s.start_turn(S, model=PRIMARY)
    assert park_of(fail(s)) == (PRIMARY, 1)


def test_a_park_of_exactly_the_cap_is_made(tmp_path: Path) -> None:
    s = sim(tmp_path, {BACKUP: 600, THIRD: 300}, baton={"max_park_seconds": 60})
    s.start_turn(S, model=PRIMARY)
    out = fail(s)
    assert park_of(out) == (PRIMARY, 60) and notes(out, "park_refused") == []


@pytest.mark.parametrize(("cap", "said"), [(3570, "59m30s"), (3 * 3600 + 5 * 60, "3h05m")])
def test_a_park_beyond_the_cap_is_refused_and_the_journal_says_the_cap(tmp_path: Path, cap: int, said: str) -> None:
    s = sim(tmp_path, {BACKUP: 20_000, THIRD: 20_000}, runtime_fallback={"cooldown_seconds": 30_000},
            baton={"max_park_seconds": cap})
    s.start_turn(S, model=PRIMARY)
    out = fail(s)
    (refused,) = notes(out, "park_refused")
    assert (refused.session_id, refused.text, refused.data) == (
        S, f"not parking: {BACKUP} resets at 13:33, more than baton.max_park_seconds ({said}) away; leaving "
        "opencode's own retry running", {"model": BACKUP, "until": T0 + 20_000})
    assert of(out, SaveIntent) == []


def test_the_cap_counts_from_the_first_park_not_from_a_wait_again(tmp_path: Path) -> None:
    """Parked at T0 for 60 s with a cap of 400 s; at T0+60 every model was extended to T0+450:
    waiting on would end 450 s after the park began, past the cap, so the park ends, its timer
    cancelled, and the user is told."""
    s = sim(tmp_path, {BACKUP: 600, THIRD: 300}, baton={"max_park_seconds": 400})
    s.start_turn(S, model=PRIMARY)
    fail(s)
    s.idle(S)
    for model in (PRIMARY, THIRD):
        s.policy.cooldowns.extend(model, T0 + 450)
    s.advance(60)
    end = s.fire(park_key(S))
    (refused,) = notes(end, "park_refused")
    assert refused.data == {"model": PRIMARY, "until": T0 + 450}
    assert CancelTimer(park_key(S)) in end and notes(end, "park_gave_up") and schedules(end) == []
    assert [t.variant for t in toasts(end)] == ["error"]
