"""What the fault-injection tests share: fixtures for the real binaries, one fallback, trial loops.

Every trial of a fault class runs to its end or its deadline and is counted; a failed trial
records why, so the table shows how many of how many survived and the assertion says which.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx2
import pytest

from baton.testing.baton_process import BatonProcess
from baton.testing.fake_provider import Answer, FakeProvider, Refuse
from baton.testing.opencode import OpencodeServer
from baton.testing.waiting import wait_until as wait_until  # the tests import it from here

MODELS = ("primary", "backup", "third")
COOLING = "All credentials for model primary are cooling down"
# Cooldowns off: every trial's primary is really asked and really refuses, instead of later
# trials being rerouted before the model is asked (the cooldown a first trial would leave).
CHAIN: dict[str, Any] = {
    "agents": {"build": {"fallback_models": ["fake/backup", "fake/third"]}},
    "runtime_fallback": {"cooldown_seconds": 0},
}


class FaultTable(Protocol):
    """The shared ``fault_table`` fixture (tests/faults/conftest.py)."""

    def record(self, fault_class: str, trials: int, survived: int, detail: str = "") -> None: ...


@pytest.fixture(name="provider", scope="module")
def _provider() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture(name="opencode", scope="module")
def _opencode(provider: FakeProvider) -> Iterator[OpencodeServer]:
    with OpencodeServer(provider.url, MODELS) as server:
        yield server
        for session_id in list(server.session_status()):
            server.abort(session_id)


def texts(message: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in message["parts"] if p.get("type") == "text")


def answers(opencode: OpencodeServer, session_id: str) -> list[dict[str, Any]]:
    """The session's finished assistant messages that carry text."""
    return [m for m in opencode.messages(session_id)
            if m["info"]["role"] == "assistant" and m["info"].get("time", {}).get("completed") and texts(m)]


def user_messages(opencode: OpencodeServer, session_id: str) -> list[dict[str, Any]]:
    return [m for m in opencode.messages(session_id) if m["info"]["role"] == "user"]


def kinds(baton: BatonProcess, session_id: str) -> list[str]:
    return [e["kind"] for e in baton.journal() if e["session"] == session_id]


def requests_with(provider: FakeProvider, model: str, marker: str) -> int:
    """How many chat requests for ``model`` carried ``marker`` (a trial's unique prompt text)."""
    return sum(1 for r in provider.requests_for(model) if marker in json.dumps(r.body))


def attached(baton: BatonProcess, after_connects: int | None = None) -> bool:
    """/healthz (with the token) says attached, and baton connected more than ``after_connects`` times."""
    try:
        code, _ = baton.healthz()
        return code == 200 and (after_connects is None or baton.status()["connects"] > after_connects)
    except httpx2.HTTPError:
        return False


def detached(baton: BatonProcess) -> bool:
    try:
        return baton.healthz()[0] == 503
    except httpx2.HTTPError:
        return False


def start_fallback(opencode: OpencodeServer, provider: FakeProvider, marker: str) -> str:
    """Script a cooling-down primary and an answering backup, prompt a new session; its id."""
    provider.script("primary", Refuse(429, COOLING))
    provider.script("backup", Answer(f"backup answers {marker}"))
    session_id: str = opencode.create_session(marker)["id"]
    opencode.prompt_async(session_id, f"please answer {marker}")
    return session_id


def check_fallback(
    opencode: OpencodeServer, provider: FakeProvider, baton: BatonProcess | None, session_id: str, marker: str,
    timeout: float = 30.0,
) -> None:
    """The session ends with exactly one answer, the backup's, asked once; the user turn is not doubled.

    With ``baton``, its journal must also show exactly one switch and one re-send, confirmed.
    """
    wait_until(lambda: answers(opencode, session_id), timeout, f"{marker}: an answer")
    if baton is not None:
        wait_until(lambda: "answered" in kinds(baton, session_id), timeout, f"{marker}: the journal's 'answered'")
    opencode.wait_idle(session_id, timeout=timeout)
    found = [(m["info"].get("modelID"), texts(m)) for m in answers(opencode, session_id)]
    assert found == [("backup", f"backup answers {marker}")], f"{marker}: answers {found}"
    asked = requests_with(provider, "backup", marker)
    assert asked == 1, f"{marker}: the backup was asked {asked} times"
    users = len(user_messages(opencode, session_id))
    assert users == 1, f"{marker}: {users} user messages"
    if baton is not None:
        decided = kinds(baton, session_id)
        assert decided.count("switch") == 1 and decided.count("resent") == 1, f"{marker}: journal {decided}"


@dataclass
class Trials:
    """Runs numbered trials, each to its end or its deadline; counts the ones that survived."""

    name: str
    failures: list[str] = field(default_factory=list)
    runs: int = 0
    notes: list[str] = field(default_factory=list)

    def run(self, index: int, trial: Callable[[int], object]) -> None:
        self.runs += 1
        try:
            note = trial(index)
        except (AssertionError, TimeoutError, RuntimeError, OSError, httpx2.HTTPError) as exc:
            last = traceback.extract_tb(exc.__traceback__)[-1]
            self.failures.append(f"trial {index}: {type(exc).__name__}: {exc} (at {last.name}:{last.lineno})")
            return
        if note is not None:
            self.notes.append(f"{index}: {note}")

    @property
    def survived(self) -> int:
        return self.runs - len(self.failures)

    def detail(self) -> str:
        return "\n".join(self.failures)
