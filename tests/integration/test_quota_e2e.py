"""Quota-aware fallback end to end: real opencode 1.18.33, ``baton serve``, the scripted fake provider.

Every chain model rate-limited → the turn is parked (opencode's retry stopped) → re-sent once when
the first model resets, with exactly one user message; the park survives ``kill -9`` of baton; the
next turn goes back to a cooled primary; a pricier chain model and a window too small are passed
over. Reset times come from the provider's own words ("try again in 4s").
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import BatonFactory, answer_of, texts, user_messages, wait_until

from baton.testing.baton_process import BatonProcess
from baton.testing.fake_provider import Answer, FakeProvider, Refuse, ToolCall
from baton.testing.opencode import OpencodeServer

pytestmark = pytest.mark.integration

ONE_FALLBACK = {"agents": {"build": {"fallback_models": ["fake/backup"]}}}
PRIMARY_SOON = "Rate limit reached for requests. Please try again in 4s."
BACKUP_LATER = "You exceeded your current quota; it will reset after 90s."


def entries(baton: BatonProcess, session_id: str, kind: str | None = None) -> list[dict[str, Any]]:
    return [e for e in baton.journal() if e["session"] == session_id and (kind is None or e["kind"] == kind)]


def kinds(baton: BatonProcess, session_id: str) -> list[str]:
    return [e["kind"] for e in entries(baton, session_id)]


def parked_entry(baton: BatonProcess, session_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = wait_until(lambda: entries(baton, session_id, "parked"), what="the park")
    return found[0]


def test_whole_chain_limited_parks_then_resumes_on_the_reset(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """Both models rate-limited: parked until the primary's reset, then re-sent there once; one user message."""
    fresh_provider.script("primary", Refuse(429, PRIMARY_SOON), Answer("primary is back"))
    fresh_provider.script("backup", Refuse(429, BACKUP_LATER))
    baton = start_baton(ONE_FALLBACK)
    sid = opencode.create_session("park")["id"]
    opencode.prompt_async(sid, "hello")
    park = parked_entry(baton, sid)
    until = park["data"]["until"]
    assert park["data"]["model"] == "fake/primary"
    (row,) = [s for s in baton.status()["sessions"] if s["id"] == sid]
    assert (row["parked_until"], row["park_model"]) == (until, "fake/primary")
    answer = answer_of(opencode, sid, timeout=30)
    assert texts(answer) == "primary is back" and answer["info"]["modelID"] == "primary"
    opencode.wait_idle(sid)
    first, resumed = fresh_provider.requests_for("primary")
    assert resumed.wall >= until  # not before the reset the provider named
    assert len(fresh_provider.requests_for("backup")) == 1
    assert len(user_messages(opencode, sid)) == 1
    assert kinds(baton, sid).count("resumed") == 1 and "switch" in kinds(baton, sid)


def test_a_park_survives_kill_9_of_baton(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """Killed while the turn is parked, a new baton on the same store keeps the park and resumes it once."""
    fresh_provider.script("primary", Refuse(429, "Rate limit reached. Please try again in 6s."),
                          Answer("answered after the restart"))
    fresh_provider.script("backup", Refuse(429, BACKUP_LATER))
    baton = start_baton(ONE_FALLBACK)
    sid = opencode.create_session("park kill")["id"]
    opencode.prompt_async(sid, "hello")
    until = parked_entry(baton, sid)["data"]["until"]
    opencode.wait_idle(sid)  # the park stopped opencode's retry
    baton.kill()
    again = start_baton(ONE_FALLBACK)
    answer = answer_of(opencode, sid, timeout=30)
    assert texts(answer) == "answered after the restart"
    opencode.wait_idle(sid)
    assert len(fresh_provider.requests_for("primary")) == 2
    assert fresh_provider.requests_for("primary")[1].wall >= until
    assert len(user_messages(opencode, sid)) == 1
    assert "recovered" in kinds(again, sid) or "recovery_skipped" in kinds(again, sid)


def test_the_next_turn_switches_back_to_the_cooled_primary(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """Moved to the backup by a short limit, the session's next turn (sent on the backup, as the TUI
    does after a switch) goes back to the primary once it has cooled; the journal says so."""
    fresh_provider.script("primary", Refuse(429, "Rate limit reached. Please try again in 2s."),
                          Answer("primary again"))
    # The backup's second answer takes a moment, as a real model's does: baton stops it at its start.
    fresh_provider.script("backup", Answer("backup here"), Answer("backup again", delay=2))
    baton = start_baton(ONE_FALLBACK)
    sid = opencode.create_session("switch back")["id"]
    opencode.prompt_async(sid, "first")
    assert texts(answer_of(opencode, sid)) == "backup here"
    opencode.wait_idle(sid)
    (cooling,) = [c for c in baton.status()["cooldowns"] if c["model"] == "fake/primary"]
    wait_until(lambda: time.time() > cooling["until"] + 0.2, timeout=10, what="the primary's reset")
    opencode.prompt_async(sid, "second", model="backup")
    wait_until(lambda: texts(answer_of(opencode, sid)) == "primary again",
               what=f"the primary's answer (journal: {kinds(baton, sid)})")
    (back,) = entries(baton, sid, "switch_back")
    assert back["data"] == {"from": "fake/backup", "to": "fake/primary"}
    (row,) = [s for s in baton.status()["sessions"] if s["id"] == sid]
    assert (row["current"], row["attempts"]) == ("fake/primary", 0)


# ------------------------------------------------------------------ guards: an opencode with prices and windows

PRICED = {"provider": {"fake": {"models": {
    "primary": {"cost": {"input": 1, "output": 4}, "limit": {"context": 200_000, "output": 8_000}},
    "backup": {"cost": {"input": 10, "output": 40}, "limit": {"context": 200_000, "output": 8_000}},
    "third": {"cost": {"input": 1, "output": 4}, "limit": {"context": 16_000, "output": 4_000}},
}}}}


@pytest.fixture(name="priced", scope="module")
def _priced(provider: FakeProvider) -> Iterator[OpencodeServer]:
    """A second opencode whose models carry prices and context windows."""
    with OpencodeServer(provider.url, ("primary", "backup", "third"), extra_config=PRICED) as server:
        yield server


def test_a_pricier_chain_model_is_passed_over(
    priced: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """max_cost_ratio 1: the backup (10x the primary) is skipped and the third answers; the journal says why."""
    fresh_provider.script("primary", Refuse(429, PRIMARY_SOON))
    fresh_provider.script("third", Answer("cheap and fine"))
    baton = start_baton({"agents": {"build": {"fallback_models": ["fake/backup", "fake/third"]}},
                         "baton": {"max_cost_ratio": 1.0}}, url=priced.url)
    sid = priced.create_session("spend guard")["id"]
    priced.prompt_async(sid, "hello")
    assert texts(answer_of(priced, sid)) == "cheap and fine"
    assert fresh_provider.requests_for("backup") == []
    (guard,) = entries(baton, sid, "guard")
    assert "fake/backup costs 10x fake/primary" in guard["text"]


def test_a_context_window_too_small_is_passed_over(
    priced: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """A session already past the third model's 16k window: a later failure skips it for the backup."""
    fresh_provider.script("primary", Answer("read it all"), Refuse(429, PRIMARY_SOON))
    fresh_provider.script("backup", Answer("big window here"))
    baton = start_baton({"agents": {"build": {"fallback_models": ["fake/third", "fake/backup"]}}}, url=priced.url)
    sid = priced.create_session("context guard")["id"]
    priced.prompt_async(sid, "please read: " + "lorem ipsum dolor sit amet " * 3_000)  # ~20k tokens
    assert texts(answer_of(priced, sid)) == "read it all"
    priced.wait_idle(sid)
    priced.prompt_async(sid, "and now?")
    wait_until(lambda: texts(answer_of(priced, sid)) == "big window here", what="the backup's answer")
    assert fresh_provider.requests_for("third") == []
    (guard,) = entries(baton, sid, "guard")
    assert "fake/third's context window (16,000 tokens) cannot hold the session" in guard["text"]


def test_a_task_whose_chain_is_limited_waits_for_the_reset_then_completes(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """A background task on the backup (chain: the third) meets both rate-limited: it waits in its
    queue for the first reset instead of failing, then runs on that model and is reported once."""
    call = ToolCall("baton_task", {"description": "job", "prompt": "do the job", "category": "quick",
                                   "run_in_background": True})
    fresh_provider.script("primary", call, Answer("carrying on"), Answer("saw the result"))
    fresh_provider.script("backup", Refuse(429, "Rate limit reached. Please try again in 4s."),
                          Answer("child result: 42"))
    fresh_provider.script("third", Refuse(429, "Rate limit reached. Please try again in 10 minutes."))
    baton = start_baton({"categories": {"quick": {"model": "fake/backup", "fallback_models": ["fake/third"]}}})
    parent = opencode.create_session("task waits")["id"]
    opencode.prompt_async(parent, "delegate this")

    def parked() -> list[dict[str, Any]]:
        return [e for e in baton.journal() if e["kind"] == "task_parked"]

    (note,) = wait_until(parked, what="the task's wait")
    assert note["data"]["to"] == "fake/backup"
    (row,) = wait_until(lambda: [r for r in baton.task_rows() if r["status"] == "completed"], timeout=40,
                        what="the task's completion")
    assert "42" in row["result"]
    first, resumed = fresh_provider.requests_for("backup")
    assert resumed.wall >= note["data"]["until"]
    wait_until(lambda: any(texts(m) == "saw the result" for m in opencode.messages(parent)), what="the wake")
