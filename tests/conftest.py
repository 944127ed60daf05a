"""Shared fixtures: a scripted fake provider and real opencode servers wired to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from baton.testing.fake_provider import FakeProvider
from baton.testing.opencode import OpencodeServer

OpencodeFactory = Callable[..., OpencodeServer]


@pytest.fixture
def fake_provider() -> Iterator[FakeProvider]:
    """A started FakeProvider of its own (unscripted models answer "ok"), stopped after the test."""
    with FakeProvider() as provider:
        yield provider


@pytest.fixture(scope="session")
def opencode_server() -> Iterator[OpencodeFactory]:
    """Factory: `opencode_server(provider_url, models=(...), **OpencodeServer kwargs)` -> a started server.

    Every server it started is closed at the end of the test session; the
    plugin-install template is warmed once, on the first call.
    """
    started: list[OpencodeServer] = []

    def start(provider_url: str, models: tuple[str, ...] = ("primary", "backup"), **kwargs: Any) -> OpencodeServer:
        server = OpencodeServer(provider_url, models, **kwargs)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.close()
