"""The fallback executor (``baton.runtime.fallback_executor``) and its timers against a mocked opencode:
the re-send's abort and prompt retry loop, what is done at once, and timers replaced or cancelled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from baton.actions import RESEND_INTENT, CancelTimer, ClearIntent, Note, Resend, Schedule, Toast
from baton.events import ResendOutcome, ResendResult, TimerFired
from baton.opencode.client import OpencodeClient
from baton.runtime.fallback_executor import PROMPT_RETRIES, FallbackExecutor
from baton.runtime.timers import Timers
from baton.store import Store
from baton.testing.clock import FakeClock

pytestmark = pytest.mark.anyio

S = "ses_1"
PARTS = ({"id": "prt_1", "sessionID": S, "messageID": "msg_u1", "type": "text", "text": "hello"},)


@pytest.fixture(name="anyio_backend")
def _anyio_backend() -> str:
    return "asyncio"


class Opencode:
    """Records abort and prompt calls; ``prompt`` says how each prompt is answered, in order."""

    def __init__(self, *prompt: Any, messages: list[Any] | None = None) -> None:
        self.prompt = list(prompt)
        self.messages = messages or []
        self.calls: list[str] = []

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if path.endswith("/abort"):
            self.calls.append("abort")
            return httpx2.Response(200, json=True)
        if path.endswith("/prompt_async"):
            self.calls.append("prompt " + json.loads(request.content)["parts"][0]["text"])
            answer = self.prompt.pop(0) if self.prompt else 204
            if isinstance(answer, Exception):
                raise answer
            return httpx2.Response(answer, text="no")
        if path.endswith("/message"):
            return httpx2.Response(200, json=self.messages)
        if path == "/tui/show-toast":
            raise httpx2.ConnectError("no TUI")
        return httpx2.Response(404)


def _executor(tmp_path: Path, opencode: Opencode) -> FallbackExecutor:
    client = OpencodeClient("http://opencode.test", transport=httpx2.MockTransport(opencode.handler))
    return FallbackExecutor(client, Store(tmp_path / "b.db"), Timers(FakeClock()))


def _resend(*, abort: bool = True, parts: tuple[dict[str, Any], ...] | None = PARTS) -> Resend:
    return Resend(S, 7, "msg_u1", "fake/backup", "build", parts, abort)


async def _run(executor: FallbackExecutor, action: Resend) -> ResendResult:
    job = executor.execute(action, 0.0)
    assert job is not None
    result = await job()
    assert isinstance(result, ResendResult) and (result.session_id, result.token) == (S, 7)
    return result


async def test_a_resend_aborts_then_prompts_and_is_accepted(tmp_path: Path) -> None:
    opencode = Opencode(204)
    executor = _executor(tmp_path, opencode)
    result = await _run(executor, _resend())
    assert (result.outcome, result.aborted) == (ResendOutcome.ACCEPTED, True)
    assert opencode.calls == ["abort", "prompt hello"] and executor.fallbacks == 1


async def test_a_prompt_refused_after_baton_s_own_abort_is_tried_again_then_refused(tmp_path: Path) -> None:
    opencode = Opencode(*[500] * PROMPT_RETRIES)
    result = await _run(_executor(tmp_path, opencode), _resend())
    assert (result.outcome, result.aborted) == (ResendOutcome.REFUSED, True) and "answered 500" in result.detail
    assert opencode.calls == ["abort", *["prompt hello"] * PROMPT_RETRIES]


async def test_without_an_abort_a_refused_prompt_is_final(tmp_path: Path) -> None:
    opencode = Opencode(500)
    result = await _run(_executor(tmp_path, opencode), _resend(abort=False))
    assert (result.outcome, result.aborted) == (ResendOutcome.REFUSED, False)
    assert opencode.calls == ["prompt hello"]


async def test_a_timed_out_prompt_may_have_gone_through(tmp_path: Path) -> None:
    """A timeout is ``unknown`` at once, without another prompt (spec §7 step 6)."""
    opencode = Opencode(httpx2.ReadTimeout("slow"))
    result = await _run(_executor(tmp_path, opencode), _resend())
    assert (result.outcome, result.aborted) == (ResendOutcome.UNKNOWN, True)
    assert opencode.calls == ["abort", "prompt hello"]


async def test_a_timeout_is_known_by_the_error_s_flag_not_by_its_words(tmp_path: Path) -> None:
    """A connection refused with "timed out" in its text never reached opencode: tried again, not unknown."""
    opencode = Opencode(httpx2.ConnectError("[Errno 110] Connection timed out"), 204)
    result = await _run(_executor(tmp_path, opencode), _resend())
    assert result.outcome is ResendOutcome.ACCEPTED
    assert opencode.calls == ["abort", "prompt hello", "prompt hello"]


async def test_a_message_the_stream_lacked_is_fetched_and_without_one_nothing_is_touched(tmp_path: Path) -> None:
    rows = [{"info": {"id": "msg_u1", "role": "user"}, "parts": list(PARTS)},
            {"info": {"id": "msg_a1", "role": "assistant"}, "parts": []}]
    opencode = Opencode(204, messages=rows)
    assert (await _run(_executor(tmp_path, opencode), _resend(parts=None))).outcome is ResendOutcome.ACCEPTED
    assert opencode.calls == ["abort", "prompt hello"]
    empty = Opencode()
    result = await _run(_executor(tmp_path / "e", empty), _resend(parts=None))
    assert (result.outcome, result.detail) == (ResendOutcome.REFUSED, "no user message to re-send")
    assert empty.calls == []


async def test_quick_actions_are_done_at_once_and_a_failed_toast_is_a_courtesy(tmp_path: Path) -> None:
    executor = _executor(tmp_path, Opencode())
    assert executor.execute(Note(S, "switch", "switching"), 5.0) is None
    assert isinstance(executor.store, Store)
    assert [e.kind for e in executor.store.read_journal(S)] == ["switch"]
    executor.store.put_pending(RESEND_INTENT, S, {"x": 1}, 5.0)
    assert executor.execute(ClearIntent(S), 6.0) is None
    assert executor.store.load_pending(RESEND_INTENT, lambda row: row) == []
    toast = executor.execute(Toast("t", "m", "warning", None), 6.0)
    assert toast is not None and await toast() is None


async def test_timers_fire_once_and_a_replaced_or_cancelled_timer_does_not(tmp_path: Path) -> None:
    clock = FakeClock(100.0)
    timers = Timers(clock)
    first = timers.schedule("k", 100.0)
    second = timers.schedule("k", 100.0)  # replaces the first
    assert len(timers) == 1
    assert await first() is None
    assert await second() == TimerFired("k") and len(timers) == 0
    executor = FallbackExecutor(OpencodeClient("http://opencode.test"), Store(tmp_path / "b.db"), timers)
    later = executor.execute(Schedule("j", 100.0), 100.0)
    assert later is not None
    assert executor.execute(CancelTimer("j"), 100.0) is None
    with anyio.fail_after(1):
        assert await later() is None
