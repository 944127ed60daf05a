"""``baton demo --fleet``: two opencode servers behind two batons, one PostgreSQL, one provider account.

The team's case: developer A's session meets a model that is out of quota; baton A moves it to
the fallback and writes the cooldown to the shared database. Developer B, on another opencode
server behind another baton, then prompts the same model: baton B already knows, and moves B's
turn before any failure of its own. Real parts: the pinned opencode binary, baton's fake provider,
``baton serve --store postgresql://…`` twice, and a PostgreSQL from the ``pgserver`` package
(installed with baton's dev extras) or ``BATON_TEST_DATABASE_URL``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from baton.demo import DemoError, prepare_opencode
from baton.store_pg_conn import shown_url
from baton.testing.baton_process import BatonProcess
from baton.testing.fake_provider import Answer, FakeProvider, Refuse
from baton.testing.opencode import OpencodeServer

__all__ = ["run_fleet_demo"]

T = TypeVar("T")

REFUSAL = "You have exceeded your quota for model primary. Your quota will reset in 3 hours."
SETTINGS = {"agents": {"build": {"fallback_models": ["fake/backup"]}}}


def run_fleet_demo(*, keep: bool = False) -> Iterator[str]:
    """Run the fleet demo; yields the lines to print as they become known."""
    yield "baton demo --fleet: two batons, two opencode servers, one PostgreSQL, one provider account"
    binary = yield from prepare_opencode()
    work = Path(tempfile.mkdtemp(prefix="baton-demo-fleet-"))
    try:
        from baton.testing.postgres import TestPostgres
    except ImportError as exc:  # pgserver/psycopg are baton's dev extras
        raise DemoError(f"the fleet demo needs baton's dev extras (pip install -e '.[dev]'): {exc}") from exc
    try:
        database = TestPostgres(work / "pg")
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        raise DemoError(f"could not start PostgreSQL for the demo: {exc}") from exc
    try:
        yield from _scenario(work, binary, database.new_database("baton_demo"))
    except (RuntimeError, TimeoutError, OSError) as exc:
        raise DemoError(f"the fleet demo failed: {exc} (files kept in {work})") from exc
    finally:
        database.close()
        if keep:
            yield f"  files kept in {work}"
        else:
            shutil.rmtree(work, ignore_errors=True)


def _scenario(work: Path, binary: Path, url: str) -> Iterator[str]:
    with FakeProvider() as provider, \
            OpencodeServer(provider.url, ("primary", "backup"), binary=binary) as first, \
            OpencodeServer(provider.url, ("primary", "backup"), binary=binary) as second:
        provider.script("primary", Refuse(429, REFUSAL))
        provider.script("backup", Answer("Answered by the fallback model."))
        store = ["--store", url]
        with BatonProcess(first.url, work / "a", settings=SETTINGS, extra_args=store) as a, \
                BatonProcess(second.url, work / "b", settings=SETTINGS, extra_args=store) as b:
            yield f"  PostgreSQL at {shown_url(url)}"
            yield f"  developer A: opencode at {first.url}, baton at http://{a.listen}"
            yield f"  developer B: opencode at {second.url}, baton at http://{b.listen}"
            yield "  both: chain for agent build fake/primary -> fake/backup; one fake provider behind both"
            yield ""
            started = time.time()
            session_a = first.create_session("A's work")["id"]
            first.prompt_async(session_a, "Say hello.")
            yield f"  A prompts fake/primary: {_answered(first, session_a)}"
            learnt = _wait(lambda: next((c for c in b.status()["cooldowns"] if c["model"] == "fake/primary"), None))
            yield (f"  +{(time.time() - started) * 1000:5.0f} ms  B's baton knows: fake/primary cools for "
                   f"{round(learnt['seconds_left'] / 60)} min ({learnt['source']}), learnt by A")
            asked = len(provider.requests_for("primary"))
            session_b = second.create_session("B's work")["id"]
            second.prompt_async(session_b, "Say hello.")
            yield f"  B prompts fake/primary: {_answered(second, session_b)}"
            again = len(provider.requests_for("primary")) - asked
            yield (f"  requests B's session sent to the cooling model: {again}"
                   + ("" if again else " — baton B moved the turn before it reached the provider"))
            drivers = {s["opencode"]: s["driver"] for s in b.status()["fleet"]["servers"]}
            yield ""
            for server, driver in drivers.items():
                yield f"  {server} is driven by baton {driver}"
            yield ("  next: `baton serve --store postgresql://user:password@host/db` on each machine "
                   "(README: Several machines)")


def _answered(opencode: OpencodeServer, session: str) -> str:
    def answer() -> str | None:
        for message in reversed(opencode.messages(session)):
            info = message["info"]
            text = "".join(p.get("text", "") for p in message["parts"] if p.get("type") == "text")
            if info["role"] == "assistant" and text and info.get("time", {}).get("completed"):
                return f'answered by {info["providerID"]}/{info["modelID"]}: "{text}"'
        return None

    return _wait(answer)


def _wait(probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    while (found := probe()) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing after {timeout:g} s")
        time.sleep(0.05)
    return found
