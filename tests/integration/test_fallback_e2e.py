"""Runtime fallback end to end: real opencode, baton serve as a subprocess, the scripted fake provider."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from conftest import BatonFactory, answer_of, texts, user_messages, wait_until

from baton.testing.baton_process import BatonProcess
from baton.testing.fake_provider import Answer, FakeProvider, Hang, Refuse
from baton.testing.opencode import OpencodeServer

pytestmark = pytest.mark.integration

COOLING = "All credentials for model primary are cooling down"
CHAIN = {"agents": {"build": {"fallback_models": ["fake/backup", "fake/third"]}}}


def kinds(baton: BatonProcess, session_id: str) -> list[str]:
    return [e["kind"] for e in baton.journal() if e["session"] == session_id]


def test_cooldown_is_answered_by_the_next_model(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """A cooling-down primary: the next model answers, asked exactly once, and the user turn is not duplicated."""
    fresh_provider.script("primary", Refuse(429, COOLING))
    fresh_provider.script("backup", Answer("backup says hello"))
    baton = start_baton(CHAIN)
    sid = opencode.create_session("cooldown")["id"]
    opencode.prompt_async(sid, "hello")
    answer = answer_of(opencode, sid)
    assert texts(answer) == "backup says hello"
    assert answer["info"]["modelID"] == "backup"
    opencode.wait_idle(sid)
    assert len(fresh_provider.requests_for("backup")) == 1
    (user,) = user_messages(opencode, sid)
    assert user["info"]["model"]["modelID"] == "backup"
    assert kinds(baton, sid)[:3] == ["switch", "resent", "answered"]


def test_error_opencode_does_not_retry_still_falls_back(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """A 400 "exhausted your capacity" (opencode gives up at once) moves the session to the next model."""
    fresh_provider.script("primary", Refuse(400, "You have exhausted your capacity on this model"))
    fresh_provider.script("backup", Answer("capacity elsewhere"))
    start_baton(CHAIN)
    sid = opencode.create_session("capacity")["id"]
    opencode.prompt_async(sid, "hello")
    assert texts(answer_of(opencode, sid)) == "capacity elsewhere"
    assert len(fresh_provider.requests_for("primary")) == 1


def test_non_retryable_error_is_left_to_opencode(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """A plain bad request ends the turn with opencode's error; no other model is asked."""
    fresh_provider.script("primary", Refuse(400, "invalid request: bad parameter"))
    baton = start_baton(CHAIN)
    sid = opencode.create_session("bad request")["id"]
    opencode.prompt_async(sid, "hello")

    def errored() -> bool:
        return any(m["info"].get("error") for m in opencode.messages(sid))

    wait_until(errored, what="the turn's error")
    opencode.wait_idle(sid)
    assert fresh_provider.requests_for("backup") == []
    assert "switch" not in kinds(baton, sid)


def test_exhausted_chain_leaves_opencode_retrying(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """Parking off: with every fallback failing too, baton stops switching but never aborts: opencode
    keeps retrying (with parking on, test_quota_e2e.py)."""
    fresh_provider.script("primary", Refuse(429, COOLING))
    fresh_provider.script("backup", Refuse(429, "Rate limit exceeded, slow down"))
    baton = start_baton({"agents": {"build": {"fallback_models": ["fake/backup"]}},
                         "baton": {"park_when_exhausted": False}})
    sid = opencode.create_session("exhausted")["id"]
    opencode.prompt_async(sid, "hello")
    fresh_provider.wait_for_requests("backup", 2, timeout=20)
    assert opencode.session_status().get(sid, {}).get("type") in ("retry", "busy")
    assert kinds(baton, sid).count("switch") == 1
    assert "no_fallback" in kinds(baton, sid)


def test_hanging_fallback_is_left_when_the_watchdog_fires(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """The fallback model never answers: after timeout_seconds the chain moves on and the third answers."""
    fresh_provider.script("primary", Refuse(429, COOLING))
    fresh_provider.script("backup", Hang())
    fresh_provider.script("third", Answer("third time lucky"))
    baton = start_baton({**CHAIN, "runtime_fallback": {"timeout_seconds": 2}})
    sid = opencode.create_session("hang")["id"]
    opencode.prompt_async(sid, "hello")
    assert texts(answer_of(opencode, sid)) == "third time lucky"
    assert len(fresh_provider.requests_for("backup")) == 1
    assert kinds(baton, sid).count("switch") == 2


def test_manual_model_change_resets_the_chain(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """After a fallback, a prompt that picks another model starts a fresh chain on it."""
    fresh_provider.script("primary", Refuse(429, COOLING))
    fresh_provider.script("backup", Answer("from backup"))
    fresh_provider.script("third", Answer("from third"))
    baton = start_baton(CHAIN)
    sid = opencode.create_session("manual")["id"]
    opencode.prompt_async(sid, "first")
    answer_of(opencode, sid)
    opencode.wait_idle(sid)
    opencode.prompt_async(sid, "second", model="third")
    wait_until(lambda: texts(answer_of(opencode, sid)) == "from third", what="third's answer")
    (row,) = [s for s in baton.status()["sessions"] if s["id"] == sid]
    assert (row["original"], row["current"], row["attempts"]) == ("fake/third", "fake/third", 0)
    assert "reset" in kinds(baton, sid)


def test_file_part_is_resent_intact(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """Every part of the user's message, a file included, reaches the fallback model under its original id."""
    fresh_provider.script("primary", Refuse(429, COOLING))
    fresh_provider.script("backup", Answer("read your file"))
    start_baton(CHAIN)
    sid = opencode.create_session("file part")["id"]
    content = "the secret word is pelican"
    url = "data:text/plain;base64," + base64.b64encode(content.encode()).decode()
    opencode.prompt_async(sid, parts=[
        {"type": "text", "text": "what does the file say?"},
        {"type": "file", "mime": "text/plain", "filename": "notes.txt", "url": url},
    ])
    (refused,) = fresh_provider.wait_for_requests("primary", 1)
    before = user_messages(opencode, sid)[0]["parts"]
    answer_of(opencode, sid)
    (user,) = user_messages(opencode, sid)
    assert [(p["id"], p["type"], p.get("url")) for p in user["parts"]] == [
        (p["id"], p["type"], p.get("url")) for p in before
    ]
    (request,) = fresh_provider.requests_for("backup")
    sent = request.body["messages"][1:]
    assert sent == refused.body["messages"][1:]
    assert str(sent).count("pelican") == 1


def test_cooldown_is_shared_between_sessions(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """Once the primary cooled in one session, another session's prompt to it is rerouted at once."""
    fresh_provider.script("primary", Refuse(429, COOLING))
    fresh_provider.script("backup", Answer("shared cooldown"))
    baton = start_baton(CHAIN)
    first = opencode.create_session("first")["id"]
    opencode.prompt_async(first, "hello")
    answer_of(opencode, first)
    second = opencode.create_session("second")["id"]
    opencode.prompt_async(second, "hello again")
    assert texts(answer_of(opencode, second)) == "shared cooldown"
    (switch,) = [e for e in baton.journal() if e["session"] == second and e["kind"] == "switch"]
    assert "cooling down" in switch["text"]
    assert any(c["model"] == "fake/primary" for c in baton.status()["cooldowns"])


def test_baton_restarted_mid_session_picks_up_the_retry(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """baton killed with -9 and restarted while a session sits in opencode's retry wait: resync switches it."""
    baton = start_baton(CHAIN)
    sid = opencode.create_session("restart")["id"]
    opencode.prompt_async(sid, "warm up")
    answer_of(opencode, sid)
    opencode.wait_idle(sid)
    baton.kill()
    fresh_provider.script("primary", Refuse(429, COOLING, retry_after=60))
    fresh_provider.script("backup", Answer("after the restart"))
    opencode.prompt_async(sid, "now fail")
    wait_until(lambda: opencode.session_status().get(sid, {}).get("type") == "retry", what="retry status")
    baton.start()
    wait_until(lambda: texts(answer_of(opencode, sid)) == "after the restart", timeout=15, what="fallback answer")
    assert len(user_messages(opencode, sid)) == 2


def test_opencode_restarted_under_baton(
    fresh_provider: FakeProvider, tmp_path: Path
) -> None:
    """opencode going away and coming back: baton reports detached, re-attaches, and falls back again."""
    with OpencodeServer(fresh_provider.url, ("primary", "backup", "third")) as own, \
            BatonProcess(own.url, tmp_path / "state", settings=CHAIN) as baton:
        own.stop()
        wait_until(lambda: baton.healthz()[0] == 503, what="detached health")
        own.start()
        baton.wait_attached_again(after_connects=1)
        fresh_provider.script("primary", Refuse(429, COOLING))
        fresh_provider.script("backup", Answer("back again"))
        sid = own.create_session("after restart")["id"]
        own.prompt_async(sid, "hello")
        assert texts(answer_of(own, sid)) == "back again"
        assert baton.stop() == 0


def test_metrics_count_the_fallback_behind_the_token(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """GET /metrics after a real fallback: the switch by model pair, the re-send's duration, the cooldown."""
    fresh_provider.script("primary", Refuse(429, COOLING))
    fresh_provider.script("backup", Answer("counted"))
    baton = start_baton(CHAIN)
    sid = opencode.create_session("metrics")["id"]
    opencode.prompt_async(sid, "hello")
    answer_of(opencode, sid)
    assert baton.get("/metrics", authed=False).status_code == 401  # like every endpoint but a bare /healthz
    response = baton.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    # opencode retries a 429 itself: baton acts on the retry status, before any error event.
    assert 'baton_fallbacks_total{from_model="fake/primary",reason="retry_status",to_model="fake/backup"} 1.0' in lines
    assert "baton_reaction_seconds_count 1.0" in lines
    assert "baton_cooldowns_active 1.0" in lines and "baton_attached 1.0" in lines
