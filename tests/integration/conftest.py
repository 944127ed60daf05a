"""Fixtures for tests that run the real opencode binary against baton's fake provider."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from baton.testing.baton_process import BatonProcess
from baton.testing.fake_provider import Answer, FakeProvider
from baton.testing.opencode import OpencodeServer
from baton.testing.waiting import wait_until as wait_until  # the tests import it from here

MODELS = ("primary", "backup", "third")


@pytest.fixture(name="provider", scope="session")
def _provider() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture(name="opencode", scope="session")
def _opencode(provider: FakeProvider) -> Iterator[OpencodeServer]:
    with OpencodeServer(provider.url, MODELS) as server:
        yield server


@pytest.fixture(name="fresh_provider")
def _fresh_provider(provider: FakeProvider, opencode: OpencodeServer) -> Iterator[FakeProvider]:
    """The shared provider with every model answering "ok" and an empty request log.

    At teardown every session still running is aborted, so one test's retries never reach the next.
    """
    for model in MODELS:
        provider.script(model, Answer("ok"))
    provider.clear_requests()
    yield provider
    for session_id in opencode.session_status():
        opencode.abort(session_id)
    for session_id in list(opencode.session_status()):
        opencode.wait_idle(session_id, timeout=10)


BatonFactory = Callable[..., BatonProcess]


@pytest.fixture(name="start_baton")
def _start_baton(tmp_path: Path, opencode: OpencodeServer) -> Iterator[BatonFactory]:
    """Start ``baton serve`` against the shared opencode with the given oh-my-opencode settings."""
    started: list[BatonProcess] = []

    def start(settings: dict[str, Any], *, url: str | None = None, state: str = "state",
              extra_args: list[str] | None = None) -> BatonProcess:
        baton = BatonProcess(url or opencode.url, tmp_path / state, settings=settings, extra_args=extra_args)
        started.append(baton.start())
        return baton

    yield start
    for baton in started:
        baton.stop()


def texts(message: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in message["parts"] if p.get("type") == "text")


def answer_of(opencode: OpencodeServer, session_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """Wait for a finished assistant message with text in the session; return it."""

    def find() -> dict[str, Any] | None:
        message: dict[str, Any]
        for message in reversed(opencode.messages(session_id)):
            info = message["info"]
            if info["role"] == "assistant" and info.get("time", {}).get("completed") and texts(message):
                return message
        return None

    result: dict[str, Any] = wait_until(find, timeout, f"an answer in {session_id}")
    return result


def user_messages(opencode: OpencodeServer, session_id: str) -> list[dict[str, Any]]:
    return [m for m in opencode.messages(session_id) if m["info"]["role"] == "user"]
