"""The ``baton`` command line. The one module that prints.

Exit codes: 0 success · 2 bad config or arguments · 3 opencode unreachable.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import anyio
import cyclopts
import httpx2
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from baton import __version__
from baton.config import ConfigError, describe, json_schema, load_config
from baton.daemon import DEFAULT_LISTEN, ServeOptions, StartupError, default_state_dir, serve
from baton.logs import configure_logging
from baton.store import Store, StoreError

__all__ = ["app", "main"]

app = cyclopts.App(name="baton", version=__version__, help="Keeps opencode sessions running when providers fail.")
config_app = cyclopts.App(name="config", help="Check or describe the configuration baton reads.")
app.command(config_app)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str, code: int) -> int:
    err.print(f"[bold red]baton:[/] {message}")
    return code


@app.command(name="serve")
def serve_cmd(
    *,
    opencode_url: Annotated[str, cyclopts.Parameter(name="--opencode-url")] = "http://127.0.0.1:4096",
    config: Path | None = None,
    listen: str = DEFAULT_LISTEN,
    state_dir: Path | None = None,
    connect_timeout: float = 30.0,
    project: Path | None = None,
) -> int:
    """Attach to a running opencode server and keep its sessions on a working model.

    Parameters
    ----------
    opencode_url
        Base URL of ``opencode serve`` (basic auth from OPENCODE_SERVER_PASSWORD/USERNAME).
    config
        Read only this oh-my-opencode/omo file instead of searching the usual places.
    listen
        HOST:PORT for baton's own /healthz and /status.
    state_dir
        Where baton keeps its SQLite store (default $XDG_STATE_HOME/baton).
    connect_timeout
        Seconds to wait for opencode before giving up with exit code 3.
    project
        Project directory whose config applies (default: the directory opencode serves).
    """
    configure_logging()
    options = ServeOptions(
        opencode_url=opencode_url, config_path=config, listen=listen, state_dir=state_dir,
        connect_timeout=connect_timeout, project_dir=project, announce=lambda line: print(line, flush=True),
    )
    try:
        anyio.run(serve, options)
    except StartupError as exc:
        return _fail(str(exc), exc.exit_code)
    except StoreError as exc:
        return _fail(str(exc), 2)
    except KeyboardInterrupt:
        return 0
    return 0



@config_app.command
def check(path: Path | None = None, *, project: Path | None = None) -> int:
    """Validate the configuration and print the fallback chain of every agent and category.

    Parameters
    ----------
    path
        A config file to check instead of the usual search.
    project
        Project directory whose files apply (default: the current directory).
    """
    try:
        config = load_config(project or Path.cwd(), explicit=path, env=dict(os.environ))
    except ConfigError as exc:
        return _fail(str(exc), 2)
    for line in describe(config):
        out.print(line, markup=False)
    return 0


@config_app.command
def schema() -> int:
    """Print the JSON Schema of the keys baton reads."""
    print(json.dumps(json_schema(), indent=2))
    return 0


def _live_status(url: str) -> dict[str, Any] | None:
    try:
        response = httpx2.get(f"http://{url}/status", timeout=2.0)
    except httpx2.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def _status_view(data: dict[str, Any] | None, store: Store | None) -> Group:
    now = time.time()
    parts: list[Any] = []
    if data is None:
        parts.append("[yellow]baton serve is not running here[/] (showing the store only)")
    else:
        parts.append(
            f"[bold]{data['state']}[/] to {data['opencode_url']} · {data['events']} events · "
            f"{data['fallbacks']} fallbacks · {data['connects']} connects"
        )
        sessions = Table("session", "status", "agent", "model", "original", "attempts", "awaiting",
                         title="sessions with fallback state")
        for s in data["sessions"]:
            sessions.add_row(s["id"], s["status"], s["agent"] or "-", s["current"] or "-", s["original"] or "-",
                             f"{s['attempts']}/{s['max_attempts']}", "yes" if s["awaiting"] else "")
        parts.append(sessions)
    cooling = Table("model", "cooling for", "reason", title="models cooling down")
    rows = [(c["model"], c["until"], "") for c in data["cooldowns"]] if data else []
    if store is not None and data is None:
        rows = store.cooldowns(now)
    for model, until, reason in rows:
        cooling.add_row(model, f"{until - now:.0f}s", reason[:60])
    parts.append(cooling)
    return Group(*parts)


@app.command
def status(*, listen: str = DEFAULT_LISTEN, state_dir: Path | None = None, watch: bool = False) -> int:
    """Show sessions, their models and the models cooling down (live with --watch).

    Parameters
    ----------
    listen
        Where the running ``baton serve`` listens.
    state_dir
        The store to read when no serve is running.
    watch
        Refresh every second until Ctrl-C.
    """
    path = (state_dir or default_state_dir(dict(os.environ))) / "baton.db"
    store = Store(path, readonly=True) if path.exists() else None
    if not watch:
        out.print(_status_view(_live_status(listen), store))
        return 0
    try:
        with Live(_status_view(_live_status(listen), store), console=out, refresh_per_second=2) as live:
            while True:
                time.sleep(1.0)
                live.update(_status_view(_live_status(listen), store))
    except KeyboardInterrupt:
        return 0


@app.command
def explain(session: str | None = None, *, state_dir: Path | None = None, limit: int = 50) -> int:
    """Explain baton's decisions: the journal of one session, or of all.

    Parameters
    ----------
    session
        A session id (``ses_...``); omit for every session.
    state_dir
        The store to read.
    limit
        How many entries to show.
    """
    path = (state_dir or default_state_dir(dict(os.environ))) / "baton.db"
    if not path.exists():
        return _fail(f"no store at {path}: has `baton serve` run with this --state-dir?", 2)
    entries = Store(path, readonly=True).read_journal(session, limit)
    if not entries:
        out.print("nothing journaled" + (f" for {session}" if session else ""))
    for e in entries:
        stamp = time.strftime("%H:%M:%S", time.localtime(e.ts))
        who = f" {e.session_id}" if session is None and e.session_id else ""
        out.print(f"{stamp}{who} [{e.kind}] {e.text}", markup=False)
    return 0


@app.command
def demo(*, keep: bool = False) -> int:
    """Show a fallback happen, offline: real opencode, a fake provider, one prompt.

    Parameters
    ----------
    keep
        Keep the demo's temporary directory (logs, store) and print where it is.
    """
    from baton.demo import DemoError, run_demo

    try:
        for line in run_demo(keep=keep):
            out.print(line, markup=False)
    except DemoError as exc:
        return _fail(str(exc), 1)
    return 0


def main() -> None:
    code = app(result_action="return_value")
    sys.exit(code if isinstance(code, int) else 0)
