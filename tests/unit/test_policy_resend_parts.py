"""The re-send carries the user's message part by part, each once (runtime-fallback §7 rule 2).

A message fetched whole (a resync's ``UserMessage`` with its parts) and the stream's part updates
name the same parts by their ids: a part seen both ways is one part, its newest version; parts
without an id are kept apart by their place. Written against the mutants mutation testing left
alive in ``state.parts_by_id`` (``scripts/mutation.py``).
"""

from __future__ import annotations

from pathlib import Path

from policy_sim import Sim, make_config, resends

from baton.events import PartUpdated, UserMessage

S = "ses_1"


def sim(tmp_path: Path) -> Sim:
    return Sim(make_config(tmp_path, {"agents": {"build": {"fallback_models": ["fake/backup"]}}}))


def resent_parts(s: Sim) -> list[dict[str, object]]:
    s.busy(S)
    s.assistant(S, "msg_u1_a1", "msg_u1", "fake/primary")
    (resend,) = resends(s.retry(S))
    assert resend.parts is not None
    return list(resend.parts)


def test_a_fetched_part_updated_on_the_stream_is_resent_once_in_its_newest_version(tmp_path: Path) -> None:
    s = sim(tmp_path)
    first = {"id": "prt_1", "type": "text", "text": "draft"}
    second = {"id": "prt_2", "type": "file", "url": "file:///a.txt"}
    s.feed(UserMessage(S, "msg_u1", "fake/primary", "build", (first, second)))
    edited = {**first, "text": "final"}
    s.feed(PartUpdated(S, "msg_u1", "prt_1", "text", "final", edited))
    assert resent_parts(s) == [edited, second]


def test_parts_without_an_id_are_all_resent(tmp_path: Path) -> None:
    s = sim(tmp_path)
    parts = ({"type": "text", "text": "one"}, {"type": "text", "text": "two"})
    s.feed(UserMessage(S, "msg_u1", "fake/primary", "build", parts))
    assert resent_parts(s) == list(parts)
