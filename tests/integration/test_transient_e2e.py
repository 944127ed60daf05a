"""Transient host errors end to end: real opencode, baton serve, the scripted fake provider.

* a fallback right after opencode restarted still ends with the fallback model's answer;
* a re-send that fails at once is sent again on the same model (bounded, journaled);
* a task session of another session tree cannot be continued through ``baton_task``.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import BatonFactory, answer_of, texts, wait_until

from baton.testing.baton_process import BatonProcess
from baton.testing.fake_provider import Answer, FakeProvider, Refuse, ToolCall
from baton.testing.opencode import OpencodeServer

pytestmark = pytest.mark.integration

COOLING = "All credentials for model primary are cooling down"
CHAIN = {"agents": {"build": {"fallback_models": ["fake/backup", "fake/third"]}}}


def journal(baton: BatonProcess, session_id: str) -> list[dict[str, Any]]:
    return [e for e in baton.journal() if e["session"] == session_id]


def test_a_fallback_right_after_an_opencode_restart_gets_the_fallback_answer(
    fake_provider: FakeProvider, opencode_server: Any, start_baton: BatonFactory
) -> None:
    """opencode restarts under baton (twice); each time the next prompt on the refusing primary
    ends with the backup's answer, without the user doing anything."""
    opencode: OpencodeServer = opencode_server(fake_provider.url, ("primary", "backup", "third"))
    fake_provider.script("primary", Refuse(429, COOLING))
    fake_provider.script("backup", Answer("backup after restart"))
    baton = start_baton(CHAIN, url=opencode.url)
    for round_ in range(2):
        connects = baton.status()["connects"]
        opencode.restart()
        baton.wait_attached_again(connects)
        sid = opencode.create_session(f"after restart {round_}")["id"]
        opencode.prompt_async(sid, "hello")
        answer = answer_of(opencode, sid)
        assert texts(answer) == "backup after restart" and answer["info"]["modelID"] == "backup"
        kinds = [e["kind"] for e in journal(baton, sid)]
        assert "switch" in kinds and "not_retryable" not in kinds


def test_a_resend_failing_at_once_is_sent_again_on_the_same_model(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """The backup fails baton's re-send at once with an error no fallback acts on: baton sends the
    same message on the backup again after a backoff and the backup's answer arrives."""
    fresh_provider.script("primary", Refuse(429, COOLING))
    # A 400 opencode does not retry itself (it does retry one that says "internal error").
    fresh_provider.script("backup", Refuse(400, "invalid request: not ready yet"), Answer("second time lucky"))
    baton = start_baton(CHAIN)
    sid = opencode.create_session("resend fails at once")["id"]
    opencode.prompt_async(sid, "hello")
    answer = answer_of(opencode, sid)
    assert texts(answer) == "second time lucky" and answer["info"]["modelID"] == "backup"
    assert len(fresh_provider.requests_for("backup")) == 2 and fresh_provider.requests_for("third") == []
    entries = journal(baton, sid)
    (retry,) = [e for e in entries if e["kind"] == "resend_retry"]
    assert "fake/backup" in retry["text"] and "retrying (2/3)" in retry["text"]
    assert "not_retryable" not in [e["kind"] for e in entries]
    users = [m for m in opencode.messages(sid) if m["info"]["role"] == "user"]
    assert len(users) == 1  # the same message, replaced in place


def test_a_task_session_of_another_tree_cannot_be_continued(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory
) -> None:
    """A session's agent passes session_id of a task child started by an unrelated session: refused."""
    quick = {"categories": {"quick": {"model": "fake/backup"}}}
    launch = {"description": "job", "prompt": "do the job", "category": "quick", "run_in_background": True}
    fresh_provider.script("primary", ToolCall("baton_task", launch), Answer("carrying on"), Answer("seen"))
    fresh_provider.script("backup", Answer("child result"))
    baton = start_baton(quick)
    owner = opencode.create_session("owner")["id"]
    opencode.prompt_async(owner, "delegate")
    wait_until(lambda: any(texts(m) == "seen" for m in opencode.messages(owner)), what="the owner's wake")
    (task,) = baton.task_rows()
    steal = {**launch, "session_id": task["session_id"]}
    fresh_provider.script("primary", ToolCall("baton_task", steal), Answer("refused, fine"))
    stranger = opencode.create_session("stranger")["id"]
    opencode.prompt_async(stranger, "continue someone else's task")

    def tool_result() -> str | None:
        for message in opencode.messages(stranger):
            for part in message["parts"]:
                state = part.get("state") or {}
                if part.get("type") == "tool" and state.get("status") in ("completed", "error"):
                    return str(state.get("output") or state.get("error"))
        return None

    result = wait_until(tool_result, what="the tool's answer")
    assert "does not belong to the session tree of the caller" in result
    assert len(baton.task_rows()) == 1
