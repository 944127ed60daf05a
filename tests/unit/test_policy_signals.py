"""Auto-retry text, empty completions and the status view of the fallback policy (runtime-fallback §4.4,
§6.4, §6.7, §9), driven through ``handle(event, now)`` with a fake clock. Written against the
mutants mutation testing left alive (``scripts/mutation.py``): each test names the rule it holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from policy_sim import Sim, cancels, cooldowns_saved, make_config, notes, resends, schedules, toasts

from baton.actions import Action
from baton.events import AssistantMessage, SessionCreated, UserMessage

S = "ses_1"
CHAIN = {"agents": {"build": {"fallback_models": ["fake/backup", "fake/third"]}}}
NO_CHAIN = {"agents": {"build": {"fallback_models": []}}, "baton": {"fallback_models": []}}


def sim(tmp_path: Path, extra: dict[str, Any] | None = None) -> Sim:
    return Sim(make_config(tmp_path, {**CHAIN, **(extra or {})}))


def retry_text(s: Sim, mid: str, model: str, text: str, parent: str = "msg_u1", sid: str = S) -> list[Action]:
    """An assistant message update whose status fields carry opencode's auto-retry notice (§4.4)."""
    return s.feed(AssistantMessage(sid, mid, parent, model, "build", retry_text=text))


TEXT_1 = "Usage limit hit - retrying in 30s attempt #1"
TEXT_2 = "Usage limit hit - retrying in 60s attempt #2"


@pytest.mark.parametrize(("timeout", "acts"), [(0, False), (1, True)])
def test_retry_text_is_read_only_while_the_watchdog_is_on(tmp_path: Path, timeout: int, acts: bool) -> None:
    """§9: ``timeout_seconds: 0`` also turns off reading auto-retry text as an error."""
    s = sim(tmp_path, {"runtime_fallback": {"timeout_seconds": timeout}})
    s.start_turn(S)
    actions = retry_text(s, "msg_u1_a1", "fake/primary", TEXT_1)
    assert [r.model for r in resends(actions)] == (["fake/backup"] if acts else [])


def test_retry_text_names_its_reason_in_the_cooldown(tmp_path: Path) -> None:
    """§6.4.5: the failing model cools, and the cooldown records why: the retry text itself."""
    s = sim(tmp_path)
    s.start_turn(S)
    (saved,) = cooldowns_saved(retry_text(s, "msg_u1_a1", "fake/primary", TEXT_1))
    assert (saved.model, saved.reason) == ("fake/primary", TEXT_1.lower())


def test_retry_text_of_the_fallback_model_moves_the_chain_on(tmp_path: Path) -> None:
    """§6.5: after primary → backup, retry text in backup's own message is a live failure of backup,
    attributed to the message's model (the turn's user message still names primary)."""
    s = sim(tmp_path)
    s.start_turn(S)
    (first,) = resends(s.retry(S))
    s.result(S, first.token)
    s.assistant(S, "msg_u1_b1", "msg_u1", "fake/backup")
    (second,) = resends(retry_text(s, "msg_u1_b1", "fake/backup", TEXT_1))
    assert second.model == "fake/third"


def test_retry_text_is_deduplicated_by_attempt_not_by_message(tmp_path: Path) -> None:
    """§6.4.6: the same notice again is one failure; a new attempt on the same message is a new one."""
    s = Sim(make_config(tmp_path, NO_CHAIN))
    s.start_turn(S)
    assert notes(retry_text(s, "msg_u1_a1", "fake/primary", TEXT_1), "no_chain")
    assert retry_text(s, "msg_u1_a1", "fake/primary", TEXT_1) == []
    assert notes(retry_text(s, "msg_u1_a1", "fake/primary", TEXT_2), "no_chain")


def test_retry_text_of_a_turn_baton_never_saw_is_deduplicated_too(tmp_path: Path) -> None:
    """The first signal creates the session's state (§6.2) and keeps its key: a repeat is ignored."""
    s = Sim(make_config(tmp_path, NO_CHAIN))
    assert notes(retry_text(s, "msg_x_a1", "fake/primary", TEXT_1, parent="msg_x"), "no_chain")
    assert retry_text(s, "msg_x_a1", "fake/primary", TEXT_1, parent="msg_x") == []


def test_late_retry_text_of_an_earlier_turn_is_stale(tmp_path: Path) -> None:
    """§6.4.7: a notice in a message answering an older user message moves nothing."""
    s = sim(tmp_path)
    s.start_turn(S, "msg_u1")
    s.idle(S)
    s.start_turn(S, "msg_u2")
    assert resends(retry_text(s, "msg_u1_a9", "fake/primary", TEXT_1, parent="msg_u1")) == []
    live = retry_text(s, "msg_u2_a1", "fake/primary", TEXT_2, parent="msg_u2")  # the key is kept: a new attempt
    assert [r.message_id for r in resends(live)] == ["msg_u2"]


def test_an_empty_completion_outside_a_switch_is_no_user_stop(tmp_path: Path) -> None:
    """§6.7.2 applies while awaiting a switch's answer only: the user stopping an ordinary turn is
    opencode's business, and so is a late empty completion while the re-send is still in flight."""
    s = sim(tmp_path)
    s.start_turn(S)
    assert s.assistant(S, "msg_u1_a1", "msg_u1", "fake/primary", completed=True) == []
    s.start_turn(S, "msg_u2")
    (resend,) = resends(s.retry(S))
    s.advance(6)  # past the grace of baton's own abort, the call still running
    assert notes(s.assistant(S, "msg_u2_a1", "msg_u2", "fake/primary", completed=True), "user_stop") == []
    assert schedules(s.result(S, resend.token))  # the switch is intact: accepted, watchdog armed


def test_a_user_stop_ends_the_switch_of_its_own_session(tmp_path: Path) -> None:
    """§6.7.2: the note and the disarmed watchdog are the stopped session's."""
    s = sim(tmp_path)
    s.start_turn(S)
    (resend,) = resends(s.retry(S))
    (watchdog,) = schedules(s.result(S, resend.token))
    s.advance(10)
    actions = s.assistant(S, "msg_u1_b1", "msg_u1", "fake/backup", completed=True)
    (note,) = notes(actions, "user_stop")
    assert note.session_id == S and note.text == "the user stopped the turn; no fallback"
    assert [c.key for c in cancels(actions)] == [watchdog.key]


def test_empty_completions_of_half_known_sessions_change_nothing(tmp_path: Path) -> None:
    """A turn whose model is unknown has no state yet; a state made by a failure has no turn yet."""
    s = sim(tmp_path)
    s.feed(UserMessage(S, "msg_u1", None, "build"))
    assert s.assistant(S, "msg_u1_a1", "msg_u1", "fake/primary", completed=True) == []
    other = "ses_2"
    s.busy(other)
    s.error(other, "Too many requests", 429)
    assert s.assistant(other, "msg_v1_a1", "msg_v1", "fake/primary", completed=True) == []


def test_the_session_directory_goes_with_the_resend_and_the_toast(tmp_path: Path) -> None:
    """§3.3: every call on a session passes its directory, learnt from ``session.created`` (a repeat
    of the event without one keeps it)."""
    s = sim(tmp_path)
    s.feed(SessionCreated(S, None, "/work/project"))
    s.feed(SessionCreated(S, None, None))
    s.start_turn(S)
    (resend,) = resends(s.retry(S))
    assert resend.directory == "/work/project"
    assert [t.directory for t in toasts(s.result(S, resend.token))] == ["/work/project"]


def test_the_status_view_lists_sessions_with_a_state_newest_first(tmp_path: Path) -> None:
    """``snapshot``: one row per session baton holds fallback state for, the most recently active first."""
    s = sim(tmp_path, {"runtime_fallback": {"max_fallback_attempts": 4}})
    s.start_turn("ses_old")
    s.advance(5)
    s.start_turn("ses_new", agent="Build")
    (resend,) = resends(s.retry("ses_new"))
    s.result("ses_new", resend.token)
    s.busy("ses_plain")  # a status alone: tracked, but no fallback state
    rows = s.policy.snapshot(s.now)
    assert [r.session_id for r in rows] == ["ses_new", "ses_old"]
    new, old = rows
    assert (new.status, new.agent, new.original, new.current, new.attempts, new.max_attempts, new.awaiting) == (
        "retry", "Build", "fake/primary", "fake/backup", 1, 4, True)
    assert new.chain == ("fake/backup", "fake/third") and new.last_seen == s.now
    assert (old.current, old.attempts, old.awaiting, old.last_seen) == ("fake/primary", 0, False, s.now - 5)
