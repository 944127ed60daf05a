"""``baton demo``: a provider failure and baton's answer to it, offline, in one command.

Real parts only: the pinned opencode binary (from PATH, or installed once with npm into baton's
cache), baton's scripted fake provider with a cooling-down primary and a healthy fallback, and
``baton serve`` as its own process. One prompt; the timeline is read back from the provider's
request log, opencode's event stream and baton's journal.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from baton.errors import BatonError
from baton.testing.baton_process import BatonProcess
from baton.testing.fake_provider import Answer, FakeProvider, Refuse
from baton.testing.opencode import OPENCODE_VERSION, OpencodeServer, find_opencode, warm_template
from baton.testing.recorder import EventRecorder

__all__ = ["DemoError", "prepare_opencode", "run_demo"]

REFUSAL = "All credentials for model primary are cooling down"
ANSWER = "Hello from the backup model: your session kept going while the primary cools down."
PROMPT = "Say hello."


class DemoError(BatonError):
    """The demo could not run (no npm, opencode failed to start, ...)."""

    exit_code = 1


def run_demo(*, keep: bool = False) -> Iterator[str]:
    """Run the demo; yields the lines to print as they become known."""
    yield "baton demo: a cooling-down model, and what baton does about it"
    binary = yield from prepare_opencode()
    work = Path(tempfile.mkdtemp(prefix="baton-demo-"))
    try:
        yield from _scenario(work, binary)
    except (RuntimeError, TimeoutError, OSError) as exc:
        raise DemoError(f"the demo failed: {exc} (files kept in {work})") from exc
    finally:
        if keep:
            yield f"  files kept in {work} (baton's store, logs, opencode's home)"
        else:
            shutil.rmtree(work, ignore_errors=True)


def prepare_opencode() -> Generator[str, None, Path]:
    """The pinned opencode binary, installed and first-started once (saying so); returns its path."""
    binary = _opencode(lambda: None)
    if binary is None:
        yield f"  installing opencode-ai@{OPENCODE_VERSION} once into baton's cache (npm, about a minute)..."
        binary = _opencode(None)
    assert binary is not None
    yield "  preparing opencode's first-start plugin install (once per machine)..."
    try:
        warm_template(binary)
    except (OSError, RuntimeError, TimeoutError) as exc:
        raise DemoError(f"opencode's first start failed: {exc}") from exc
    return binary


def _opencode(install: object) -> Path | None:
    try:
        return find_opencode(install=install is None)
    except (OSError, RuntimeError) as exc:
        if install is None:
            raise DemoError(str(exc)) from exc
        return None


def _scenario(work: Path, binary: Path) -> Iterator[str]:
    project = work / "project"
    (project / ".opencode").mkdir(parents=True)
    settings = {"agents": {"build": {"fallback_models": ["fake/backup"]}}}
    (project / ".opencode" / "oh-my-opencode.jsonc").write_text(
        "// baton reads oh-my-opencode's own file: a fallback chain for the build agent\n"
        + json.dumps(settings, indent=2) + "\n"
    )
    home = work / "home"
    with FakeProvider() as provider, OpencodeServer(
        provider.url, ("primary", "backup"), project_dir=project, home=home, binary=binary
    ) as opencode:
        provider.script("primary", Refuse(429, REFUSAL))
        provider.script("backup", Answer(ANSWER, chunk_delay=0.01))
        isolated = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
        with BatonProcess(opencode.url, work / "state", env=isolated) as baton:
            yield f"  opencode {OPENCODE_VERSION} at {opencode.url} · fake provider at {provider.url}"
            yield f"  baton serve at http://{baton.listen} · chain for agent build: fake/primary -> fake/backup"
            yield ""
            recorder_wall = time.time()
            with EventRecorder(opencode.url) as events:
                session = opencode.create_session("baton demo")["id"]
                sent = time.time()
                opencode.prompt_async(session, PROMPT)
                _wait_for_answer(opencode, session, timeout=60)
                timeline = _timeline(sent, recorder_wall, events.events, provider, baton, opencode, session)
            yield from timeline


def _wait_for_answer(opencode: OpencodeServer, session: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _answer(opencode.messages(session)) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no answer within {timeout:g}s")
        time.sleep(0.05)


def _answer(messages: list[dict[str, Any]]) -> tuple[str, str, float] | None:
    for message in reversed(messages):
        info = message["info"]
        text = "".join(p.get("text", "") for p in message["parts"] if p.get("type") == "text")
        if info["role"] == "assistant" and text and info.get("time", {}).get("completed"):
            return text, f"{info['providerID']}/{info['modelID']}", info["time"]["completed"] / 1000
    return None


def _timeline(
    sent: float,
    recorder_wall: float,
    events: list[dict[str, Any]],
    provider: FakeProvider,
    baton: BatonProcess,
    opencode: OpencodeServer,
    session: str,
) -> Iterator[str]:
    rows: list[tuple[float, str]] = [(sent, f'prompt sent: "{PROMPT}" on fake/primary')]
    for request in provider.requests:
        if request.model == "primary":
            rows.append((request.wall, f"provider refused fake/primary: 429 {REFUSAL}"))
        elif request.model == "backup":
            rows.append((request.wall, "provider received the re-sent message for fake/backup"))
    retry_at = None
    for event in events:
        status = event.get("properties", {}).get("status", {})
        if event.get("type") == "session.status" and status.get("type") == "retry":
            at = recorder_wall + event["_t"]
            retry_at = retry_at or at
            wait = status.get("next", 0) / 1000 - at
            rows.append((at, f"opencode began its own retry countdown (attempt {status.get('attempt')}, "
                             f"next try in {wait:.1f} s)"))
    rows += [(e["ts"], f"baton [{e['kind']}] {e['text']}") for e in baton.journal() if e["session"] == session]
    answer = _answer(opencode.messages(session))
    if answer is not None:
        text, model, completed = answer
        rows.append((completed, f'answer from {model}: "{text}"'))
    for at, what in sorted(rows):
        yield f"  +{(at - sent) * 1000:6.0f} ms  {what}"
    yield ""
    backup = [r.wall for r in provider.requests if r.model == "backup"]
    if retry_at is not None and backup:
        yield f"  baton's reaction: {(backup[0] - retry_at) * 1000:.0f} ms from opencode's retry status " \
              "to the request on the fallback model."
    users = [m for m in opencode.messages(session) if m["info"]["role"] == "user"]
    yield f"  the session holds {len(users)} user message: baton re-sent the turn in place, it added none."
    yield "  without baton, opencode retries the primary five times (about 70 s) and then fails."
    yield "  next: `baton serve --opencode-url http://127.0.0.1:4096` beside your own opencode."
