"""The user's message updated while its turn runs: its parts, and a model opencode did not name
(runtime-fallback §8 rules 2 and 4). Written against the mutants mutation testing left alive in
``Tracker.on_user`` (``scripts/mutation.py``)."""

from __future__ import annotations

from pathlib import Path

from policy_sim import Sim, make_config, notes, resends

from baton.events import SessionCreated, UserMessage

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
