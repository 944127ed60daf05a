"""baton beside the upstream oh-my-opencode plugin, side by side, on this machine, in one run.

Both sides get the same pinned opencode binary and the same scripted fake provider; runs
alternate baton, plugin, baton, plugin… and each scenario prints min / median / p90 per side
and the ratio of the medians (plugin / baton):

1. retry status → first request for the fallback model: WARM (many sessions in one running
   opencode world, the first fallback of each world left out) and COLD (the first fallback of a
   freshly started opencode). The start is opencode's `retry` session status as the bench's own
   event-stream reader sees it (the plugin, in opencode's process, may see it a little earlier:
   in its favour), the end the fake provider's log entry for the fallback request, one clock as
   in bench/reaction.py; a second row starts at the provider's refusal of the primary instead,
   so both ends are the provider's log.
2. prompt → answer: `prompt_async` sent → `session.idle` (the whole turn), and → the provider's
   request (what each side adds before the model is asked).
3. child done → parent notified: a background child's answer completed → the parent's
   notification message stored (opencode's own timestamps, as in bench/notify.py).

The plugin is installed with npm into this bench's own directory (`--ignore-scripts`: its
postinstall checks its CLI binary and clears the plugin from the user's ~/.cache/opencode),
pinned to PLUGIN_VERSION, and loaded by opencode from there (`"plugin": ["file://…/index.js"]`);
it is run, never copied. Its config is a project `.omo/omo.jsonc` (see `_plugin_config`). The
baton side is opencode with no plugin and `baton serve` attached, as a user runs it.

    .venv/bin/python bench/compare.py [--runs 20] [--cold-runs 5] [--plugin-dir DIR]

`--plugin-dir $(mktemp -d)` forces a fresh npm install (default: a cache dir kept between runs).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

from baton.testing.baton_process import BatonProcess
from baton.testing.fake_provider import Answer, FakeProvider, LoggedRequest, Refuse, ToolCall
from baton.testing.opencode import OPENCODE_VERSION, OpencodeServer, baton_cache_dir
from baton.testing.opencode_install import npm_install
from baton.testing.recorder import EventRecorder
from baton.testing.waiting import wait_until

PLUGIN = "oh-my-opencode"
PLUGIN_VERSION = "4.19.4"
"""Newest on npm here; its runtime_fallback handles opencode's `session.status` retry events."""
REFUSAL = "All credentials for model primary are cooling down"  # retryable for both sides
WAIT_S = 30.0
"""Bound on every wait of a run: a side that does not react by then is reported, not waited for."""
SIDES = ("baton", "plugin")
# Migrations 4.19.4 would run on a config without these markers rewrite an agent's
# `fallback_models` into `models`, which its own runtime fallback then does not read (measured).
_PLUGIN_MIGRATIONS = ["2026-07-opencode-config-unification", "2026-08-reasoning-unification"]
_QUIET_ENV = {"DO_NOT_TRACK": "1", "OMO_SEND_ANONYMOUS_TELEMETRY": "no"}


# -- installing the plugin -------------------------------------------------------------------------


def install_plugin(root: Path, timeout: float) -> Path:
    """npm-install the pinned plugin into `root` once; return the module opencode loads.

    Every npm step is bounded (fetch timeout, one retry, the whole command), so an unreachable
    registry ends the bench with npm's own words instead of hanging it.
    """
    entry = root / "node_modules" / PLUGIN / "dist" / "index.js"
    marker = root / f".installed-{PLUGIN}-{PLUGIN_VERSION}"
    if marker.exists() and entry.exists():
        return entry
    try:
        npm_install(root, f"{PLUGIN}@{PLUGIN_VERSION}", timeout=timeout,
                    extra_args=("--ignore-scripts", "--fetch-timeout=20000", "--fetch-retries=1"))
    except RuntimeError as exc:
        raise SystemExit(f"compare.py: {exc}") from None
    manifest = root / "node_modules" / PLUGIN / "package.json"
    version = json.loads(manifest.read_text(encoding="utf-8")).get("version") if manifest.exists() else None
    if version != PLUGIN_VERSION or not entry.exists():
        raise SystemExit(f"compare.py: npm left {PLUGIN} {version} in {root}, not {PLUGIN_VERSION} with {entry.name}")
    marker.write_text(PLUGIN_VERSION + "\n", encoding="utf-8")
    return entry


# -- the two worlds --------------------------------------------------------------------------------


def _baton_settings() -> dict[str, Any]:
    """baton's chain for the `build` agent and the `quick` category's model for background tasks.

    cooldown 0: every session meets the failing primary itself instead of being rerouted.
    """
    return {"runtime_fallback": {"cooldown_seconds": 0},
            "agents": {"build": {"fallback_models": ["fake/backup"]}},
            "categories": {"quick": {"model": "fake/backup"}}}


def _plugin_config() -> dict[str, Any]:
    """The same chain in the plugin's 4.x file, plus what it needs that baton does not.

    The agent's `model` is where 4.19.4 learns the failing model: opencode's retry status names
    none, and without it the plugin logs "missing model info, cannot fallback" (measured).
    `sisyphus` is the plugin's agent that may call its `task` tool (`build` may not, measured).
    """
    return {"[opencode]": {"runtime_fallback": {"enabled": True, "cooldown_seconds": 0},
                           "agents": {"build": {"model": "fake/primary", "fallback_models": ["fake/backup"]},
                                      "sisyphus": {"model": "fake/primary"}},
                           "categories": {"quick": {"model": "fake/backup"}}},
            "_migrations": _PLUGIN_MIGRATIONS}


@dataclass
class World:
    """One opencode with one side attached, and the bench's own reader of its event stream."""

    side: str
    opencode: OpencodeServer
    events: EventRecorder
    parent_agent: str
    """The agent whose model calls the side's background-task tool."""
    task_tool: str
    task_extra: dict[str, Any] = field(default_factory=dict)


def _plugin_parent_agent(opencode: OpencodeServer) -> str:
    """The plugin's primary Sisyphus agent; asking also proves the plugin loaded."""
    with opencode.client(timeout=WAIT_S) as client:
        agents = client.get("/agent").json()
    for agent in agents:
        if str(agent.get("name", "")).startswith("Sisyphus") and agent.get("mode") == "primary":
            return str(agent["name"])
    raise RuntimeError(f"opencode did not load {PLUGIN} (no Sisyphus agent):\n{opencode.log_tail()}")


@contextlib.contextmanager
def open_world(side: str, provider: FakeProvider, models: tuple[str, ...], plugin_entry: Path,
               scratch: Path) -> Iterator[World]:
    """Start opencode with `side` attached; everything is stopped again on leaving."""
    place = Path(tempfile.mkdtemp(prefix=f"{side}-", dir=scratch))
    (place / "tmp").mkdir()  # the plugin logs to $TMPDIR/oh-my-opencode.log: keep it ours
    env = {**_QUIET_ENV, "TMPDIR": str(place / "tmp")}
    extra: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        if side == "baton":
            opencode = stack.enter_context(OpencodeServer(provider.url, models, env=env))
            stack.enter_context(BatonProcess(opencode.url, place / "state", settings=_baton_settings()))
            parent_agent, task_tool = "build", "baton_task"
        else:
            project = place / "project"
            (project / ".omo").mkdir(parents=True)
            (project / ".omo" / "omo.jsonc").write_text(json.dumps(_plugin_config()), encoding="utf-8")
            plugin = {"plugin": [plugin_entry.as_uri()]}
            opencode = stack.enter_context(OpencodeServer(provider.url, models, project_dir=project,
                                                          extra_config=plugin, env=env))
            parent_agent, task_tool, extra = _plugin_parent_agent(opencode), "task", {"load_skills": []}
        events = stack.enter_context(EventRecorder(opencode.url))
        yield World(side, opencode, events, parent_agent, task_tool, extra)


# -- one run of each scenario ----------------------------------------------------------------------


def _request_for(provider: FakeProvider, model: str, marker: str) -> LoggedRequest:
    """The first chat request for `model` whose messages carry `marker` (this run's prompt)."""
    def found() -> LoggedRequest | None:
        return next((r for r in provider.requests_for(model) if marker in json.dumps(r.body.get("messages"))), None)

    result: LoggedRequest = wait_until(found, WAIT_S, f"request for {model} carrying {marker!r}", every=0.01)
    return result


def _settle(world: World, session: str) -> None:
    """Let the session go idle, so nothing of this run spills into the next."""
    world.opencode.wait_idle(session, timeout=WAIT_S)


def fallback_ms(world: World, provider: FakeProvider, tag: str) -> tuple[float, float]:
    """retry status seen → the provider logs the request for the fallback model; and the same end
    from the provider's refusal of the primary, both ends on the provider's own log."""
    provider.script("primary", Refuse(429, REFUSAL))
    provider.script("backup", Answer("ok"))
    mark = world.events.mark()
    session = world.opencode.create_session(f"compare {tag}")["id"]
    text = f"hello {tag}"
    world.opencode.prompt_async(session, text, model="primary", agent="build")

    def is_retry(e: dict[str, Any]) -> bool:
        props = e.get("properties", {})
        return bool(e.get("type") == "session.status" and props.get("sessionID") == session
                    and props.get("status", {}).get("type") == "retry")

    retry = world.events.wait_for(is_retry, WAIT_S, after=mark)
    request = _request_for(provider, "backup", text)
    world.events.wait_type("session.idle", session, WAIT_S, after=mark)
    refused = [r for r in provider.requests_for("primary")
               if text in json.dumps(r.body.get("messages")) and r.received < request.received]
    _settle(world, session)
    return (request.received - world.events.at(retry)) * 1000, (request.received - refused[-1].received) * 1000


def prompt_ms(world: World, provider: FakeProvider, tag: str) -> tuple[float, float]:
    """prompt_async sent → session idle (the turn), and → the provider's request."""
    provider.script("primary", Answer("ok"))
    session = world.opencode.create_session(f"compare {tag}")["id"]
    text = f"hello {tag}"
    mark = world.events.mark()
    sent = time.monotonic()
    world.opencode.prompt_async(session, text, model="primary", agent="build")
    idle = world.events.wait_type("session.idle", session, WAIT_S, after=mark)
    request = _request_for(provider, "primary", text)
    _settle(world, session)
    return (world.events.at(idle) - sent) * 1000, (request.received - sent) * 1000


def _texts(message: dict[str, Any]) -> str:
    return " ".join(str(p.get("text", "")) for p in message["parts"] if p.get("type") == "text")


def notify_ms(world: World, provider: FakeProvider, tag: str, parent_model: str) -> tuple[float]:
    """A background child's answer completed → the parent's notification message stored.

    The parent gets a model of its own per run (`parent_model`): a side that wakes the parent
    late then consumes only that run's script, never the next run's.
    """
    description = f"compare {tag}"
    call = {"description": description, "prompt": "answer briefly", "category": "quick",
            "run_in_background": True, **world.task_extra}
    provider.script(parent_model, ToolCall(world.task_tool, call), Answer("waiting"), Answer("woken"))
    answer = f"child answer {tag}"
    provider.script("backup", Answer(answer))
    oc = world.opencode
    parent = oc.create_session(f"parent {tag}")["id"]
    oc.prompt_async(parent, "delegate", model=parent_model, agent=world.parent_agent)
    with oc.client() as client:
        children = wait_until(lambda: client.get(f"/session/{parent}/children").json(), WAIT_S,
                              "child session started", every=0.01)
    child = children[0]["id"]

    def child_done() -> float:
        return max((m["info"]["time"].get("completed", 0) for m in oc.messages(child)
                    if m["info"]["role"] == "assistant" and answer in _texts(m)), default=0)

    done = wait_until(child_done, WAIT_S, "child answered", every=0.01)

    def notice() -> list[dict[str, Any]]:  # both sides' notifications name the task's description
        return [m for m in oc.messages(parent) if m["info"]["role"] == "user" and description in _texts(m)]

    first = wait_until(notice, WAIT_S, "parent notified", every=0.01)[0]
    _settle(world, parent)
    return (float(first["info"]["time"]["created"] - done),)


# -- running and reporting -------------------------------------------------------------------------


@dataclass
class Row:
    """One scenario's figures per side, or why a side has none."""

    label: str
    figures: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in SIDES})
    failed: dict[str, str] = field(default_factory=dict)


Measure = Callable[[], tuple[float, ...]]


def _attempt(rows: tuple[Row, ...], side: str, measure: Measure) -> None:
    """Add one run's figures, one a row; a plugin side that cannot do it is reported with the
    reason, a failing baton ends the bench."""
    if side in rows[0].failed:
        return
    try:
        figures = measure()
    except (TimeoutError, RuntimeError, httpx2.HTTPError) as exc:
        if side == "baton":
            raise
        for row in rows:
            row.failed[side] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:140]}"
        return
    for row, figure in zip(rows, figures, strict=True):
        row.figures[side].append(figure)


def _stats(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    return ordered[0], statistics.median(ordered), ordered[math.ceil(len(ordered) * 0.9) - 1]


def print_table(rows: list[Row]) -> None:
    """One line per scenario: n, min / median / p90 per side, and the ratio of the medians."""
    print(f"{'scenario':<44} {'n':>3}  {'baton ms min/med/p90':>22}  {'plugin ms min/med/p90':>22}  plugin/baton")
    for row in rows:
        cells: list[str] = []
        medians: list[float] = []
        for side in SIDES:
            if side in row.failed or not row.figures[side]:
                cells.append(f"{'n/a':>22}")
                continue
            low, mid, p90 = _stats(row.figures[side])
            medians.append(mid)
            cells.append(f"{f'{low:.0f} / {mid:.0f} / {p90:.0f}':>22}")
        n = max(len(v) for v in row.figures.values())
        ratio = f"{medians[1] / medians[0]:.1f}×" if len(medians) == 2 and medians[0] > 0 else "n/a"
        print(f"{row.label:<44} {n:>3}  {cells[0]}  {cells[1]}  {ratio}")
        for side, reason in row.failed.items():
            print(f"    {side} n/a: {reason}")


def _machine_line(plugin_dir: Path) -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=Path(__file__).parent,
                              check=False, timeout=10).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no")
    commit = (git("rev-parse", "--short", "HEAD") or "?") + (" + uncommitted changes" if dirty else "")
    return (f"machine: {platform.machine()} · {os.cpu_count()} cores · load {os.getloadavg()[0]:.1f} · "
            f"Python {platform.python_version()} · "
            f"opencode {OPENCODE_VERSION} · {PLUGIN} {PLUGIN_VERSION} (npm, {plugin_dir}) · baton {commit}")


def _alternate(rows: tuple[Row, ...], worlds: tuple[World, World], runs: int,
               measure: Callable[[World, int], tuple[float, ...]]) -> None:
    """`runs` rounds of baton then plugin: neither side gets the quieter half of the run."""
    for i in range(runs):
        for w in worlds:
            _attempt(rows, w.side, functools.partial(measure, w, i))


def run_warm(rows: dict[str, Row], provider: FakeProvider, models: tuple[str, ...], entry: Path,
             scratch: Path, runs: int) -> None:
    """Both worlds up at once, runs alternating; the first fallback of each world is left out."""
    with open_world("baton", provider, models, entry, scratch) as a, \
            open_world("plugin", provider, models, entry, scratch) as b:
        _alternate((Row("warm-up"), Row("warm-up")), (a, b), 1,
                   lambda w, i: fallback_ms(w, provider, f"{w.side}-warmup"))
        _alternate((rows["warm"], rows["warm-p"]), (a, b), runs,
                   lambda w, i: fallback_ms(w, provider, f"{w.side}-w{i}"))
        _alternate((rows["prompt"], rows["request"]), (a, b), runs,
                   lambda w, i: prompt_ms(w, provider, f"{w.side}-p{i}"))
        _alternate((rows["notify"],), (a, b), runs,
                   lambda w, i: notify_ms(w, provider, f"{w.side}-n{i}", f"boss{i}"))


def run_cold(rows: tuple[Row, Row], provider: FakeProvider, models: tuple[str, ...], entry: Path,
             scratch: Path, runs: int) -> None:
    """A fresh opencode (and baton) per run; its very first fallback is the figure."""
    def first(side: str, i: int) -> tuple[float, float]:
        with open_world(side, provider, models, entry, scratch) as w:
            return fallback_ms(w, provider, f"{side}-c{i}")

    for i in range(runs):
        for side in SIDES:
            _attempt(rows, side, functools.partial(first, side, i))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="runs per side of each warm scenario")
    parser.add_argument("--cold-runs", type=int, default=5, help="fresh opencode worlds per side")
    parser.add_argument("--plugin-dir", type=Path, default=baton_cache_dir() / "bench-compare" / PLUGIN_VERSION,
                        help="where npm installs the pinned plugin (kept between runs)")
    parser.add_argument("--npm-timeout", type=float, default=300, help="seconds the npm install may take")
    args = parser.parse_args()
    entry = install_plugin(args.plugin_dir, args.npm_timeout)
    print(_machine_line(args.plugin_dir), flush=True)
    rows = {"warm": Row("1  retry status → fallback request, WARM"),
            "warm-p": Row("1  primary refused → fallback request, WARM"),
            "cold": Row("1  retry status → fallback request, COLD"),
            "cold-p": Row("1  primary refused → fallback request, COLD"),
            "prompt": Row("2  prompt → answer (prompt_async → idle)"),
            "request": Row("2  prompt → request at the provider"),
            "notify": Row("3  child done → parent notified")}
    models = ("primary", "backup", *(f"boss{i}" for i in range(args.runs)))
    scratch = Path(tempfile.mkdtemp(prefix="baton-compare-"))
    try:
        with FakeProvider() as provider:
            run_warm(rows, provider, models, entry, scratch, args.runs)
            run_cold((rows["cold"], rows["cold-p"]), provider, models, entry, scratch, args.cold_runs)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print_table(list(rows.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
