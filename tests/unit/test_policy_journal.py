"""What the fallback policy writes to the journal (``baton explain``) and shows as toasts.

Every journal line belongs to its session, is of a known kind, says something, and names the
models it is about; toasts name the new model by its ID (the part after the last ``/``) and go to
the session's directory (runtime-fallback §7 step 5, §3.3). Written against the mutants mutation
testing left alive in the journal and toast calls (``scripts/mutation.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from policy_sim import Sim, make_config, notes, resends, schedules, toasts

from baton.actions import Action, Note, Toast
from baton.events import ResendOutcome, ResendResult, SessionCreated

S = "ses_1"
DIRECTORY = "/work/project"
PRIMARY, BACKUP, THIRD = "fake/primary", "router/vendor/backup-1", "fake/third"
KINDS = {"answered", "ignored", "no_chain", "no_fallback", "not_retryable", "reset", "resend_failed",
         "resend_gave_up", "resend_retry", "resend_running", "resent", "switch", "user_stop", "watchdog",
         "parked", "park_refused", "unparked", "resumed", "park_gave_up", "switch_back", "guard"}
NO_PARKING = {"baton": {"park_when_exhausted": False}}
FIBERS = "All fibers interrupted without error"


def sim(tmp_path: Path, chain: list[str] | None = None, baton: dict[str, Any] | None = None, **rf: Any) -> Sim:
    settings: dict[str, Any] = {"agents": {"build": {"fallback_models": [BACKUP, THIRD] if chain is None else chain}}}
    if baton:
        settings["baton"] = baton
    if rf:
        settings["runtime_fallback"] = rf
    s = Sim(make_config(tmp_path, settings))
    s.feed(SessionCreated(S, None, DIRECTORY))
    return s


def switched(s: Sim) -> list[Action]:
    s.start_turn(S, model=PRIMARY)
    out = s.retry(S)
    (resend,) = resends(out)
    return out + s.result(S, resend.token)


def scenario_switch_and_answer(s: Sim) -> None:
    switched(s)
    s.assistant(S, "msg_b1", "msg_u1", BACKUP)
    s.text(S, "msg_b1")


def scenario_refused(s: Sim) -> None:
    s.start_turn(S, model=PRIMARY)
    (resend,) = resends(s.retry(S))
    s.result(S, resend.token, ResendOutcome.REFUSED)


def scenario_watchdog(s: Sim) -> None:
    (watchdog,) = schedules(switched(s))
    s.advance(31)
    (again,) = resends(s.fire(watchdog.key))
    s.result(S, again.token)
    s.advance(31)
    s.fire(watchdog.key)  # third: nothing left, the watchdog gives up


def scenario_user_stop_and_reset(s: Sim) -> None:
    switched(s)
    s.advance(10)
    s.assistant(S, "msg_b1", "msg_u1", BACKUP, completed=True)
    s.idle(S)
    s.user(S, "msg_u2", THIRD)


def scenario_in_flight_and_stale_outcome(s: Sim) -> None:
    s.start_turn(S, model=PRIMARY)
    (resend,) = resends(s.retry(S))
    s.error(S, "Too many requests", 429)
    s.user(S, "msg_u2", THIRD)
    s.result(S, resend.token)


def scenario_not_retryable(s: Sim) -> None:
    s.start_turn(S, model=PRIMARY)
    s.error(S, "invalid request: bad parameter", 400)


def scenario_resend_retries(s: Sim) -> None:
    out = switched(s)
    for _ in range(3):
        out = s.error(S, FIBERS, name="UnknownError") + s.idle(S)
        s.error(S, FIBERS, name="UnknownError")  # the same failure again before the retry is due
        due = [t for t in schedules(out) if t.key.startswith("resend-retry:")]
        if not due:
            break
        s.advance(due[0].at - s.now)
        (again,) = resends(s.fire(due[0].key))
        s.result(S, again.token)


def scenario_resend_running(s: Sim) -> None:
    s.start_turn(S, model=PRIMARY)
    (resend,) = resends(s.retry(S))
    s.error(S, FIBERS, name="UnknownError")
    out = s.result(S, resend.token)
    s.busy(S)
    (due,) = [t for t in schedules(out) if t.key.startswith("resend-retry:")]
    s.advance(due.at - s.now)
    s.fire(due.key)


def scenario_failure(s: Sim) -> None:
    s.start_turn(S, model=PRIMARY)
    s.retry(S)


SCENARIOS: dict[str, tuple[Callable[[Sim], None], dict[str, Any], set[str]]] = {
    "switch and answer": (scenario_switch_and_answer, {}, {"switch", "resent", "answered"}),
    "refused": (scenario_refused, {}, {"switch", "resend_failed"}),
    "watchdog": (scenario_watchdog, {}, {"watchdog", "switch", "resent"}),
    "no chain": (scenario_failure, {"chain": []}, {"no_chain"}),
    "chain used up": (scenario_failure, {"chain": [PRIMARY]}, {"parked"}),
    "chain used up, parking off": (scenario_failure, {"chain": [PRIMARY], **NO_PARKING}, {"no_fallback"}),
    "user stop and reset": (scenario_user_stop_and_reset, {}, {"user_stop", "reset"}),
    "in flight, stale outcome": (scenario_in_flight_and_stale_outcome, {}, {"reset", "resent"}),
    "not retryable": (scenario_not_retryable, {}, {"not_retryable"}),
    "re-send retries": (scenario_resend_retries, {}, {"resend_retry", "ignored", "resend_gave_up"}),
    "re-send running": (scenario_resend_running, {}, {"resend_running"}),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_journal_lines_belong_to_their_session_and_say_what_happened(tmp_path: Path, name: str) -> None:
    play, options, expected = SCENARIOS[name]
    s = sim(tmp_path, options.get("chain"), options.get("baton"))
    play(s)
    journal = notes(s.log)
    assert expected <= {n.kind for n in journal}
    for note in journal:
        assert isinstance(note, Note) and note.session_id == S and note.kind in KINDS
        assert isinstance(note.text, str) and note.text and isinstance(note.data, dict)
    for toast in toasts(s.log):
        assert isinstance(toast, Toast) and toast.title in {"baton: model switched", "baton: fallback failed",
                                                            "baton: turn parked"}
        assert toast.message and toast.directory == DIRECTORY


def test_the_switch_and_its_outcome_are_journaled_with_their_models(tmp_path: Path) -> None:
    s = sim(tmp_path)
    journal = notes(switched(s))
    (switch,) = [n for n in journal if n.kind == "switch"]
    assert switch.data == {"from": PRIMARY, "to": BACKUP, "attempt": 1, "chain_source": "agents.build.fallback_models",
                           "cause": "retry_status"}
    assert PRIMARY in switch.text and BACKUP in switch.text
    (resent,) = [n for n in journal if n.kind == "resent"]
    assert resent.data == {"model": BACKUP, "attempt": 1} and BACKUP in resent.text and "accepted" in resent.text
    (toast,) = toasts(s.log)
    assert toast.message == "primary is unavailable; continuing on backup-1"


def test_a_refused_resend_is_journaled_and_toasted_with_opencode_s_words(tmp_path: Path) -> None:
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    (resend,) = resends(s.retry(S))
    out = s.feed(ResendResult(S, resend.token, ResendOutcome.REFUSED, aborted=True, detail="HTTP 400: unknown agent"))
    (failed,) = [n for n in out if isinstance(n, Note) and n.kind == "resend_failed"]
    assert failed.data == {"model": BACKUP} and "HTTP 400: unknown agent" in failed.text
    (toast,) = toasts(out)
    assert (toast.title, toast.message, toast.variant) == (
        "baton: fallback failed", "Could not re-send on backup-1: HTTP 400: unknown agent", "error")


def test_the_reasons_for_not_switching_are_journaled_with_their_data(tmp_path: Path) -> None:
    s = sim(tmp_path, [PRIMARY], NO_PARKING["baton"])
    s.start_turn(S, model=PRIMARY)
    (stay,) = notes(s.retry(S), "no_fallback")
    assert stay.data == {"reason": "no_candidate", "attempts": 0, "chain": [PRIMARY]} and PRIMARY in stay.text
    t = sim(tmp_path)
    t.start_turn(S, model=PRIMARY)
    (bad,) = notes(t.error(S, "invalid request: bad parameter", 400), "not_retryable")
    assert bad.data == {"model": PRIMARY, "status": 400} and "invalid request: bad parameter" in bad.text


def test_resend_retries_are_journaled_with_their_count(tmp_path: Path) -> None:
    s = sim(tmp_path)
    switched(s)
    out = s.error(S, FIBERS, name="UnknownError") + s.idle(S)
    (retry,) = notes(out, "resend_retry")
    assert retry.data == {"model": BACKUP, "try": 2, "tries": 3, "delay": 0.5}
    assert "baton's abort" in retry.text and FIBERS.lower() in retry.text
