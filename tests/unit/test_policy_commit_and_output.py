"""A re-send's commit in the journal's words, and which parts of a message are an answer
(runtime-fallback §6.3, §6.6, §6.10 rule 3).

Written against the mutants mutation testing left alive in ``Switcher.on_resend_result``,
``Switcher.send`` and ``Tracker.on_part`` (``scripts/mutation.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from policy_sim import T0, Sim, make_config, notes, resends, schedules

from baton.actions import Action, CancelTimer, Note, SaveCooldown, Schedule, Toast
from baton.cooldowns import Cooldowns
from baton.events import PartUpdated, ResendOutcome, SessionCreated, UserMessage
from baton.fallback.parking import park_key
from baton.fallback.switching import resend_retry_key, watchdog_key

S = "ses_1"
PRIMARY, BACKUP, THIRD = "fake/primary", "fake/backup", "fake/third"
DIRECTORY = "/work/project"
FIBERS = "All fibers interrupted without error"



def sim(tmp_path: Path, cooldowns: Cooldowns | None = None, **sections: Any) -> Sim:
    s = Sim(make_config(tmp_path, {"agents": {"build": {"fallback_models": [BACKUP, THIRD]}}, **sections}),
            cooldowns)
    s.feed(SessionCreated(S, None, DIRECTORY))
    return s


def switched(s: Sim) -> int:
    """The primary runs and fails with a 429: the token of the re-send on the backup, in flight."""
    s.start_turn(S, model=PRIMARY)
    (resend,) = resends(s.error(S, "Too many requests", 429))
    return resend.token


def kinds(actions: list[Action]) -> list[str]:
    return [n.kind for n in notes(actions)]


# ------------------------------------------------------------------ commits


def test_the_commit_of_a_resumed_park_is_a_fresh_start_said_in_full(tmp_path: Path) -> None:
    s = sim(tmp_path, Cooldowns([(BACKUP, T0 + 600), (THIRD, T0 + 300)]))
    s.start_turn(S, model=PRIMARY)
    assert notes(s.error(S, "Too many requests", 429), "parked")
    s.idle(S)
    s.advance(60)
    (resend,) = resends(s.fire(park_key(S)))
    out = s.result(S, resend.token)
    assert out[1] == Note(S, "resent", f"message re-sent on {PRIMARY} (accepted): resumed after the park",
                          {"model": PRIMARY, "attempt": 0})
    assert out[2:] == [Schedule(watchdog_key(S), T0 + 60 + 30),
                       Toast("baton: resumed after the park", "Continuing on primary", "info", DIRECTORY)]
    (row,) = s.policy.snapshot(s.now)
    assert (row.current, row.attempts, row.awaiting) == (PRIMARY, 0, True)


def test_the_commit_of_a_retried_resend_says_which_try_in_full(tmp_path: Path) -> None:
    s = sim(tmp_path)
    s.result(S, switched(s))
    s.feed(UserMessage(S, "msg_u1", BACKUP, "build"))
    s.error(S, FIBERS, name="UnknownError")
    s.idle(S)
    s.advance(0.5)
    (again,) = resends(s.fire(resend_retry_key(S)))
    out = s.result(S, again.token)
    assert notes(out) == [Note(S, "resent", f"message re-sent again on {BACKUP} (try 2/3, accepted)",
                               {"model": BACKUP, "attempt": 1, "try": 2})]


def test_each_committed_switch_counts_one_attempt(tmp_path: Path) -> None:
    s = sim(tmp_path)
    s.result(S, switched(s))
    s.busy(S)
    s.assistant(S, "msg_a2", "msg_u1", BACKUP)
    (resend,) = resends(s.error(S, "Too many requests", 429))
    s.result(S, resend.token)
    (row,) = s.policy.snapshot(s.now)
    assert (row.current, row.attempts) == (THIRD, 2)


def test_a_resend_answered_before_its_call_reported_needs_no_watchdog(tmp_path: Path) -> None:
    """The backup's output beat the executor's report: the commit finds the switch answered."""
    s = sim(tmp_path)
    token = switched(s)
    s.busy(S)
    s.assistant(S, "msg_a2", "msg_u1", BACKUP)
    s.text(S, "msg_a2")
    out = s.result(S, token)
    assert schedules(out) == [] and kinds(out) == ["resent"]
    (row,) = s.policy.snapshot(s.now)
    assert not row.awaiting


def test_a_watchdog_of_one_second_is_armed(tmp_path: Path) -> None:
    s = sim(tmp_path, runtime_fallback={"timeout_seconds": 1})
    out = s.result(S, switched(s))
    assert [t for t in schedules(out) if t.key == watchdog_key(S)] == [Schedule(watchdog_key(S), T0 + 1)]


def test_a_refused_resend_after_a_watched_switch_cancels_no_timer_twice(tmp_path: Path) -> None:
    """On the backup (watched), its retry status moves the turn to the third (the watchdog cancelled
    then); opencode refuses that re-send: nothing is left to cancel."""
    s = sim(tmp_path)
    s.result(S, switched(s))
    s.busy(S)
    s.assistant(S, "msg_a2", "msg_u1", BACKUP)
    out = s.retry(S, 1, "Rate limit exceeded")
    assert [a for a in out if isinstance(a, CancelTimer)] == [CancelTimer(watchdog_key(S))]
    (resend,) = resends(out)
    refused = s.result(S, resend.token, ResendOutcome.REFUSED)
    assert [a for a in refused if isinstance(a, CancelTimer)] == []


# ------------------------------------------------------------------ what is an answer (§6.6)


def part(mid: str, kind: str, text: str = "") -> PartUpdated:
    body = {"id": f"prt_{kind}", "sessionID": S, "messageID": mid, "type": kind, "text": text}
    return PartUpdated(S, mid, body["id"], kind, text, body)


def on_backup(s: Sim) -> None:
    s.result(S, switched(s))
    s.busy(S)
    s.assistant(S, "msg_a2", "msg_u1", BACKUP)


@pytest.mark.parametrize("kind", ["step-start", "file", "patch"])
def test_a_part_that_shows_nothing_is_not_an_answer(tmp_path: Path, kind: str) -> None:
    s = sim(tmp_path)
    on_backup(s)
    assert s.feed(part("msg_a2", kind)) == []


def test_an_empty_text_part_is_not_an_answer_and_a_written_one_is(tmp_path: Path) -> None:
    s = sim(tmp_path)
    on_backup(s)
    assert s.feed(part("msg_a2", "text")) == []
    out = s.feed(part("msg_a2", "text", "Here is the answer"))
    assert notes(out) == [Note(S, "answered", f"{BACKUP} answered; the switch is confirmed", {"model": BACKUP})]


@pytest.mark.parametrize("kind", ["reasoning", "tool"])
def test_reasoning_and_tool_parts_are_answers(tmp_path: Path, kind: str) -> None:
    s = sim(tmp_path)
    on_backup(s)
    assert kinds(s.feed(part("msg_a2", kind))) == ["answered"]


def test_a_part_of_a_message_not_in_the_turn_is_not_an_answer(tmp_path: Path) -> None:
    s = sim(tmp_path)
    on_backup(s)
    assert s.feed(part("msg_elsewhere", "text", "hi")) == []
    assert s.feed(PartUpdated("ses_unknown", "msg_x", "prt_x", "text", "hi", {})) == []


def test_an_answer_keeps_the_session_from_being_forgotten(tmp_path: Path) -> None:
    """§6.9: the last event counts from the answer (a written part, or a message fetched with output)."""
    for answer in ("part", "message"):
        s = sim(tmp_path)
        on_backup(s)
        s.advance(20 * 60)
        if answer == "part":
            assert kinds(s.feed(part("msg_a2", "text", "Here is the answer"))) == ["answered"]
        else:
            assert kinds(s.assistant(S, "msg_a2", "msg_u1", BACKUP, has_output=True)) == ["answered"]
        s.advance(20 * 60)
        s.feed(SessionCreated("ses_other", None, DIRECTORY))  # any event: the sweep runs
        assert S in s.policy.sessions


def test_a_late_message_of_the_previous_turn_is_not_the_new_turn_s(tmp_path: Path) -> None:
    """On the backup, unanswered; the user sends the next prompt. The previous turn's message then
    shows output, and an error: neither is the new turn's answer or failure."""
    s = sim(tmp_path)
    on_backup(s)
    s.user(S, "msg_u2", BACKUP)
    assert s.assistant(S, "msg_a2", "msg_u1", BACKUP, has_output=True) == []
    late = s.assistant(S, "msg_a2", "msg_u1", BACKUP, error={"name": "APIError", "data": {
        "message": "Too many requests", "statusCode": 429}})
    assert late == [SaveCooldown(BACKUP, T0 + 60, "too many requests", "configured")]  # the backup did fail


def test_a_new_prompt_while_the_resend_is_in_flight_leaves_its_commit_plain(tmp_path: Path) -> None:
    """The next prompt (on the backup the re-send goes to) arrives before the call reports: the
    commit is a plain commit, with no re-send failure left over to retry."""
    s = sim(tmp_path)
    token = switched(s)
    s.user(S, "msg_u2", BACKUP)
    out = s.result(S, token)
    assert kinds(out) == ["resent"] and [t.key for t in schedules(out)] == [watchdog_key(S)]


def test_a_retry_status_is_read_with_a_watchdog_of_one_second(tmp_path: Path) -> None:
    s = sim(tmp_path, runtime_fallback={"timeout_seconds": 1})
    s.start_turn(S, model=PRIMARY)
    assert [r.model for r in resends(s.retry(S, 1, "Rate limit exceeded"))] == [BACKUP]


def test_the_backup_s_retry_status_like_the_primary_s_is_its_own_failure(tmp_path: Path) -> None:
    """Same attempt, same words: the key holds the failing model, so the backup's status is new."""
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    (first,) = resends(s.retry(S, 1, "Rate limit exceeded"))
    s.result(S, first.token)
    s.busy(S)
    s.assistant(S, "msg_a2", "msg_u1", BACKUP)
    assert [r.model for r in resends(s.retry(S, 1, "Rate limit exceeded"))] == [THIRD]
