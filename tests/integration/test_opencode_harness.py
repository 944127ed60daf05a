"""The real opencode, started by the harness, talking to the scripted fake provider."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from baton.testing.fake_provider import Answer, FakeProvider, Refuse
from baton.testing.opencode import OpencodeServer
from baton.testing.recorder import EventRecorder

OpencodeFactory = Callable[..., OpencodeServer]

pytestmark = pytest.mark.integration


def texts(message: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in message["parts"] if p.get("type") == "text")


def test_prompt_reaches_fake_provider_once(fake_provider: FakeProvider, opencode_server: OpencodeFactory) -> None:
    """One prompt in a titled session makes exactly one chat request and the answer lands in the session."""
    fake_provider.script("primary", Answer("Hello from the fake provider.", chunk_delay=0.01))
    server = opencode_server(fake_provider.url)
    with EventRecorder(server.url) as events:
        session = server.create_session("harness")
        assert session["title"] == "harness"
        server.prompt_async(session["id"], "say hello")
        events.wait_type("session.idle", session["id"], timeout=60)

    (request,) = fake_provider.requests_for("primary")
    assert request.path == "/v1/chat/completions" and request.stream
    assert request.body["messages"][-1] == {"role": "user", "content": "say hello"}
    assert server.session_status() == {}  # idle sessions are not listed
    replies = [m for m in server.messages(session["id"]) if m["info"]["role"] == "assistant"]
    assert [texts(m) for m in replies] == ["Hello from the fake provider."]
    deltas = [e for e in events.events if e["type"] == "message.part.delta"]
    assert "".join(e["properties"]["delta"] for e in deltas) == "Hello from the fake provider."


def test_retry_status_and_model_override(fake_provider: FakeProvider, opencode_server: OpencodeFactory) -> None:
    """A 429 shows up as a retry status; after an abort, prompt_async with another model reaches that model."""
    fake_provider.script("primary", Refuse(429, "All credentials for model primary are cooling down"))
    fake_provider.script("backup", Answer("backup answer"))
    server = opencode_server(fake_provider.url)
    with EventRecorder(server.url) as events:
        sid = server.create_session("retry")["id"]
        server.prompt_async(sid, "hello")
        retry = events.wait_for(
            lambda e: e["type"] == "session.status" and e["properties"]["status"]["type"] == "retry", timeout=30
        )
        status = retry["properties"]["status"]
        assert status["attempt"] == 1 and status["message"] == "All credentials for model primary are cooling down"
        server.abort(sid)
        server.wait_idle(sid)
        mark = events.mark()
        server.prompt_async(sid, "hello again", model="backup")
        # Not the next session.idle: on a loaded machine the aborted run's own idle can come after the mark.
        events.wait_for(lambda e: e["type"] == "message.updated" and e["properties"]["info"].get("modelID") == "backup"
                        and bool(e["properties"]["info"].get("time", {}).get("completed")), timeout=30, after=mark)
    assert fake_provider.requests_for("backup")
    assert texts(server.messages(sid)[-1]) == "backup answer"


def test_password_and_restart(fake_provider: FakeProvider, opencode_server: OpencodeFactory) -> None:
    """A password turns on basic auth; restart() keeps the port, the home and so the sessions."""
    server = opencode_server(fake_provider.url, password="s3cret")
    assert httpx2.get(f"{server.url}/session", timeout=10).status_code == 401
    sid = server.create_session("persist")["id"]
    port, pid = server.port, server.pid
    server.restart()
    assert server.port == port and server.pid != pid
    with server.client() as client:
        assert sid in [s["id"] for s in client.get("/session").json()]
