"""The scripted fake provider, driven directly over HTTP (fast, no opencode involved)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from baton.testing.fake_provider import (
    Answer,
    Drop,
    FakeProvider,
    Hang,
    Refuse,
    ToolCall,
    script_from_json,
    split_chunks,
    step_from_json,
)


def chat(provider: FakeProvider, model: str, *, stream: bool = True, **extra: Any) -> httpx2.Response:
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}], **extra}
    return httpx2.post(f"{provider.url}/chat/completions", json=body, timeout=10)


def sse_payloads(response: httpx2.Response) -> list[Any]:
    """The JSON payloads of an SSE body, with the final [DONE] kept as a string."""
    out: list[Any] = []
    for line in response.text.splitlines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def streamed_text(response: httpx2.Response) -> str:
    return "".join(
        c["choices"][0]["delta"].get("content") or ""
        for c in sse_payloads(response)
        if isinstance(c, dict) and c["choices"]
    )


def test_steps_are_consumed_in_order_and_last_repeats(fake_provider: FakeProvider) -> None:
    """Each request takes the next scripted step; once the script runs out its last step repeats."""
    fake_provider.script("m", Refuse(429, "slow down"), Answer("first"), Answer("again"))
    results = [chat(fake_provider, "m") for _ in range(5)]
    assert [r.status_code for r in results] == [429, 200, 200, 200, 200]
    assert [streamed_text(r) for r in results[1:]] == ["first", "again", "again", "again"]


def test_unscripted_model_answers_ok(fake_provider: FakeProvider) -> None:
    """A model nobody scripted gets the default answer "ok"."""
    assert streamed_text(chat(fake_provider, "whatever")) == "ok"


def test_rescripting_rewinds(fake_provider: FakeProvider) -> None:
    """Calling script() again replaces the steps and starts from the first one."""
    fake_provider.script("m", Answer("a"), Answer("b"))
    chat(fake_provider, "m")
    fake_provider.script("m", Answer("c"), Answer("d"))
    assert streamed_text(chat(fake_provider, "m")) == "c"


def test_stream_is_openai_shaped_with_usage(fake_provider: FakeProvider) -> None:
    """A streamed answer is word chunks, a stop chunk, a usage chunk when asked for, then [DONE]."""
    fake_provider.script("m", Answer("one two three"))
    response = chat(fake_provider, "m", stream_options={"include_usage": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    payloads = sse_payloads(response)
    assert payloads[-1] == "[DONE]"
    chunks = payloads[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "m" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"]["content"] for c in chunks[1:4]] == ["one ", "two ", "three"]
    assert chunks[4]["choices"][0]["finish_reason"] == "stop"
    assert chunks[5]["choices"] == [] and chunks[5]["usage"]["completion_tokens"] == 3


def test_non_streaming_answer(fake_provider: FakeProvider) -> None:
    """Without stream: true the answer is one chat.completion object."""
    fake_provider.script("m", Answer("whole answer"))
    body = chat(fake_provider, "m", stream=False).json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "whole answer"}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["total_tokens"] > 0


def test_tool_call_is_streamed(fake_provider: FakeProvider) -> None:
    """A ToolCall step streams one tool call whose argument pieces join into the JSON arguments."""
    fake_provider.script("m", ToolCall("read", {"filePath": "/x/y.txt"}))
    chunks = [c for c in sse_payloads(chat(fake_provider, "m")) if isinstance(c, dict) and c["choices"]]
    calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls", [])]
    assert calls[0]["function"]["name"] == "read" and calls[0]["id"].startswith("call_")
    assert json.loads("".join(tc["function"]["arguments"] for tc in calls)) == {"filePath": "/x/y.txt"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_refusal_status_body_and_retry_after(fake_provider: FakeProvider) -> None:
    """A Refuse step answers its status with an OpenAI-shaped error body and a Retry-After header."""
    fake_provider.script(
        "m",
        Refuse(429, "All credentials for model m are cooling down", retry_after=5),
        Refuse(400, "bad parameter", error_type="invalid_request_error", code="bad_param"),
    )
    first, second = chat(fake_provider, "m"), chat(fake_provider, "m")
    assert first.status_code == 429 and first.headers["retry-after"] == "5"
    assert first.json() == {
        "error": {
            "message": "All credentials for model m are cooling down",
            "type": "rate_limit_exceeded",
            "code": 429,
        }
    }
    assert second.status_code == 400 and "retry-after" not in second.headers
    assert second.json()["error"] == {"message": "bad parameter", "type": "invalid_request_error", "code": "bad_param"}


def test_hang_is_released_promptly_on_stop() -> None:
    """A hanging request gets an answer (503) as soon as the provider stops, not at a timeout."""
    provider = FakeProvider().start()
    provider.script("m", Hang())
    result: dict[str, Any] = {}

    def call() -> None:
        try:
            result["status"] = chat(provider, "m").status_code
        except httpx2.HTTPError as exc:
            result["error"] = exc

    caller = threading.Thread(target=call)
    caller.start()
    provider.wait_for_requests("m", 1, timeout=5)
    caller.join(0.3)
    assert caller.is_alive(), "Hang answered before the provider stopped"
    started = time.monotonic()
    provider.stop()
    caller.join(5)
    assert not caller.is_alive()
    assert time.monotonic() - started < 2
    assert result.get("status") == 503 or "error" in result


def test_partial_hang_streams_then_stalls(fake_provider: FakeProvider) -> None:
    """Hang(partial=...) sends its chunks, then the stream stalls until the client gives up."""
    fake_provider.script("m", Hang(partial="half an"))
    seen: list[str] = []
    body = {"model": "m", "stream": True, "messages": []}
    with (
        pytest.raises(httpx2.ReadTimeout),
        httpx2.stream("POST", f"{fake_provider.url}/chat/completions", json=body, timeout=0.5) as r,
    ):
        seen.extend(r.iter_lines())
    assert any("half " in line for line in seen) and not any("[DONE]" in line for line in seen)


def test_drop_cuts_the_connection(fake_provider: FakeProvider) -> None:
    """Drop sends the headers and partial text, then closes the connection mid-body."""
    fake_provider.script("m", Drop(partial="cut here"))
    with pytest.raises(httpx2.RemoteProtocolError):
        chat(fake_provider, "m")


def test_request_log(fake_provider: FakeProvider) -> None:
    """Every request is logged with path, model, body, headers and monotonic receive time."""
    before = time.monotonic()
    chat(fake_provider, "a")
    chat(fake_provider, "b", stream=False)
    httpx2.get(f"{fake_provider.url}/models", timeout=5)
    log = fake_provider.requests
    assert [(r.path, r.model) for r in log] == [
        ("/v1/chat/completions", "a"),
        ("/v1/chat/completions", "b"),
        ("/v1/models", None),
    ]
    assert before <= log[0].received <= log[1].received <= time.monotonic()
    assert log[0].stream and not log[1].stream
    assert log[0].body["messages"] == [{"role": "user", "content": "hi"}]
    assert isinstance(log[0].step, Answer) and log[2].step is None
    assert [r.model for r in fake_provider.requests_for("b")] == ["b"]
    assert len(fake_provider.wait_for_requests("a", 1, timeout=1)) == 1
    with pytest.raises(TimeoutError, match="expected 2"):
        fake_provider.wait_for_requests("a", 2, timeout=0.1)
    fake_provider.clear_requests()
    assert fake_provider.requests == []


def test_split_chunks_round_trips() -> None:
    """Word chunks concatenate back to the original text, whitespace included."""
    for text in ["", "one", " lead and trail ", "a\nb  c"]:
        assert "".join(split_chunks(text)) == text


def test_json_script_forms() -> None:
    """Every JSON step form parses to its step type; unknown keys are rejected."""
    script = script_from_json(
        {
            "m": [
                "plain",
                {"answer": "slow", "chunk_delay": 0.1},
                {"refuse": 429, "message": "cool", "retry_after": 5},
                {"hang": True},
                {"tool_call": "read", "arguments": {"filePath": "/a"}},
                {"drop": True, "partial": "x"},
            ]
        }
    )
    assert script["m"] == [
        Answer("plain"),
        Answer("slow", chunk_delay=0.1),
        Refuse(429, "cool", retry_after=5.0),
        Hang(),
        ToolCall("read", {"filePath": "/a"}),
        Drop("x"),
    ]
    with pytest.raises(ValueError, match="unknown key"):
        step_from_json({"answer": "x", "colour": "red"})


def test_cli_serves_a_json_script(tmp_path: Path) -> None:
    """`python -m baton.testing.fake_provider --script` serves the script and prints its URL."""
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"m": [{"refuse": 503, "message": "down"}, {"answer": "up"}]}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "baton.testing.fake_provider", "--port", "0", "--script", str(script)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line
        url = line.rsplit(" ", 1)[1].strip()
        body = {"model": "m", "stream": True, "messages": []}
        assert httpx2.post(f"{url}/chat/completions", json=body, timeout=5).status_code == 503
        assert "up" in httpx2.post(f"{url}/chat/completions", json=body, timeout=5).text
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        if proc.stdout is not None:
            proc.stdout.close()
