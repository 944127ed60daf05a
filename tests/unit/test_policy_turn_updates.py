"""The user's message updated while its turn runs: its parts, and a model opencode did not name
(runtime-fallback §8 rules 2 and 4). Written against the mutants mutation testing left alive in
``Tracker.on_user`` (``scripts/mutation.py``)."""

from __future__ import annotations

from pathlib import Path

from policy_sim import T0, Sim, make_config, notes, resends

from baton.actions import Note
from baton.cooldowns import Cooldowns
from baton.events import ResendOutcome, SessionCreated, UserMessage

S = "ses_1"
PRIMARY, BACKUP, THIRD = "fake/primary", "fake/backup", "fake/third"
EDITED = {"id": "prt_msg_u1", "sessionID": S, "messageID": "msg_u1", "type": "text", "text": "hello, edited"}
FILE = {"id": "prt_file", "sessionID": S, "messageID": "msg_u1", "type": "file", "url": "file:///notes.md"}


def sim(tmp_path: Path) -> Sim:
    s = Sim(make_config(tmp_path, {"agents": {"build": {"fallback_models": [BACKUP, THIRD]}}}))
    s.feed(SessionCreated(S, None, "/work/project"))
    return s


def test_the_message_s_parts_as_opencode_updates_them_are_the_ones_re_sent(tmp_path: Path) -> None:
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    assert s.feed(UserMessage(S, "msg_u1", PRIMARY, "build", (EDITED, FILE))) == []
    (resend,) = resends(s.error(S, "Too many requests", 429))
    assert resend.parts == (EDITED, FILE)


def test_the_same_message_updated_without_a_model_changes_nothing(tmp_path: Path) -> None:
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    assert s.feed(UserMessage(S, "msg_u1", None, "build")) == []
    fb = s.policy.sessions[S].fb
    turn = s.policy.sessions[S].turn
    assert fb is not None and turn is not None and (fb.original, fb.current, turn.model) == (PRIMARY, PRIMARY, PRIMARY)
    (resend,) = resends(s.error(S, "Too many requests", 429))
    assert resend.model == BACKUP and not notes(s.log, "reset")


def test_a_prompt_on_another_model_restarts_the_chain_and_says_why_in_full(tmp_path: Path) -> None:
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    out = s.user(S, "msg_u2", THIRD)
    assert notes(out) == [Note(S, "reset", f"a prompt chose another model: now on {THIRD}, fallback chain restarted",
                               {"model": THIRD})]


def test_the_message_echoed_again_with_its_first_model_after_a_switch_is_no_change(tmp_path: Path) -> None:
    """Switched to the backup (committed); opencode updates the user's message still naming the
    primary, as the turn knew it: not the user picking a model."""
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    (resend,) = resends(s.error(S, "Too many requests", 429))
    s.result(S, resend.token)
    assert s.feed(UserMessage(S, "msg_u1", PRIMARY, "build")) == []
    fb = s.policy.sessions[S].fb
    assert fb is not None and (fb.original, fb.current, fb.attempts) == (PRIMARY, BACKUP, 1)


def test_a_prompt_on_a_cooling_model_updated_before_it_starts_still_moves(tmp_path: Path) -> None:
    s = Sim(make_config(tmp_path, {"agents": {"build": {"fallback_models": [BACKUP, THIRD]}}}),
            Cooldowns([(PRIMARY, T0 + 60)]))
    s.user(S, "msg_u1", PRIMARY)
    assert s.feed(UserMessage(S, "msg_u1", PRIMARY, "build", (EDITED,))) == []
    assert [r.model for r in resends(s.busy(S))] == [BACKUP]


def test_a_message_moved_by_hand_to_another_cooling_model_moves_on_when_it_starts(tmp_path: Path) -> None:
    s = Sim(make_config(tmp_path, {"agents": {"build": {"fallback_models": [BACKUP, THIRD]}}}),
            Cooldowns([(PRIMARY, T0 + 60), (BACKUP, T0 + 60)]))
    s.user(S, "msg_u1", PRIMARY)
    assert notes(s.feed(UserMessage(S, "msg_u1", BACKUP, "build")), "reset")
    assert [r.model for r in resends(s.busy(S))] == [THIRD]


def test_a_refused_switch_back_is_not_tried_again_in_the_same_turn(tmp_path: Path) -> None:
    s = sim(tmp_path)
    s.start_turn(S, model=PRIMARY)
    (resend,) = resends(s.error(S, "Too many requests", 429))
    s.result(S, resend.token)
    s.assistant(S, "msg_b1", "msg_u1", BACKUP)
    s.text(S, "msg_b1")
    s.idle(S)
    s.advance(61)
    s.user(S, "msg_u2", BACKUP)
    (back,) = resends(s.busy(S))
    assert back.model == PRIMARY
    assert notes(s.result(S, back.token, ResendOutcome.REFUSED), "resend_failed")
    s.assistant(S, "msg_u2_a1", "msg_u2", BACKUP)
    assert resends(s.busy(S)) == [] and resends(s.retry(S, 1, "")) == []


def test_a_prompt_on_a_cooling_model_is_moved_when_it_starts_and_says_why(tmp_path: Path) -> None:
    s = Sim(make_config(tmp_path, {"agents": {"build": {"fallback_models": [BACKUP, THIRD]}}}),
            Cooldowns([(PRIMARY, T0 + 60)]))
    s.user(S, "msg_u1", PRIMARY)
    (note,) = notes(s.busy(S), "switch")
    assert note.text == f"{PRIMARY} failed ({PRIMARY} is cooling down); switching to {BACKUP}"


def test_a_model_that_starts_cooling_after_the_prompt_arrived_is_left_to_run(tmp_path: Path) -> None:
    """§8.6 reroutes a turn whose model was cooling when it arrived; one cooled meanwhile (by another
    session's failure) runs, and fails on its own if it must."""
    s = sim(tmp_path)
    s.user(S, "msg_u1", PRIMARY)
    s.policy.cooldowns.extend(PRIMARY, s.now + 60)
    assert resends(s.busy(S)) == []


def test_an_agent_name_with_separators_and_no_agents_configured_has_no_agent_chain(tmp_path: Path) -> None:
    """No ``agents`` section: whatever the agent's name ("a - b" has two separators in a row), the
    session has no agent key and no chain of its own."""
    s = Sim(make_config(tmp_path, {}))
    s.user(S, "msg_u1", PRIMARY, agent="review - strict")
    session = s.policy.sessions[S]
    assert session.agent_key is None and session.fb is not None and session.fb.chain == ()
