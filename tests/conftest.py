"""Shared fixtures: a scripted fake provider and real opencode servers wired to it.

Also the hypothesis profiles, chosen by ``BATON_HYPOTHESIS_PROFILE``:

* ``ci`` (the default, whatever ``CI`` says): derandomized, so every run tries the same
  examples; no example database, no deadline (a loaded machine must not fail a test).
* ``deep``: 20 times as many examples, new ones each run (failures are kept in
  ``.hypothesis/``), no deadline: ``BATON_HYPOTHESIS_PROFILE=deep .venv/bin/pytest tests/unit``.

Tests that set their own example count scale it with the profile:
``max_examples=150 * settings().max_examples // 100`` is 150 under ``ci``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from baton.testing.fake_provider import FakeProvider
from baton.testing.opencode import OpencodeServer
from baton.testing.postgres import TestPostgres

OpencodeFactory = Callable[..., OpencodeServer]

HYPOTHESIS_PROFILE_ENV = "BATON_HYPOTHESIS_PROFILE"
settings.register_profile(
    "ci", max_examples=100, derandomize=True, database=None, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "deep", max_examples=2_000, derandomize=False, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
_profile = os.environ.get(HYPOTHESIS_PROFILE_ENV) or "ci"
if _profile not in ("ci", "deep"):
    raise pytest.UsageError(f"{HYPOTHESIS_PROFILE_ENV}={_profile!r}: use ci (the default) or deep")
settings.load_profile(_profile)


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


@pytest.fixture(name="utc")
def _utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC for the test: clock times in toasts and tables read the same on any machine."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture(scope="session")
def postgres() -> Iterator[TestPostgres]:
    """A real PostgreSQL for the session: ``BATON_TEST_DATABASE_URL``, else a private pgserver one."""
    server = TestPostgres()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_url(postgres: TestPostgres) -> str:
    """A fresh, empty database of its own for one test."""
    return postgres.new_database()
