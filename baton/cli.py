"""The ``baton`` command line. The one module that prints.

Exit codes: 0 success · 2 bad config or arguments · 3 opencode or the database unreachable ·
4 another baton took over the opencode server (a shared store's lease).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import anyio
import cyclopts
import httpx2
import structlog

from baton import __version__
from baton.auth import read_token
from baton.catalog import Catalog
from baton.chain_check import check_chains, checked_models
from baton.chains import describe
from baton.cli_console import err, out
from baton.cli_console import fail as _fail
from baton.cli_store import explain, store_app
from baton.clock import Clock, SystemClock
from baton.config import Config, ConfigError, json_schema, load_config
from baton.cooldowns import Cooldowns
from baton.daemon import DEFAULT_LISTEN, ServeOptions, default_state_dir, serve
from baton.errors import BatonError
from baton.logs import configure_logging
from baton.opencode.client import OpencodeClient, OpencodeError, OpencodeUnavailable, auth_from_env
from baton.opencode.stream import HEARTBEAT_TIMEOUT_S
from baton.store import Store
from baton.tasks.actions import SaveOutbox, SaveTask
from baton.tasks.launch import ToolError
from baton.tasks.model import OutboxRow, Task
from baton.tasks.scheduler import CancelRequest, Scheduler

if TYPE_CHECKING:
    from rich.console import Group

__all__ = ["app", "main"]

app = cyclopts.App(name="baton", version=__version__, help="Keeps opencode sessions running when providers fail.")
config_app = cyclopts.App(name="config", help="Check or describe the configuration baton reads.")
app.command(config_app)
app.command(store_app)
app.command(explain)



_clock: Clock = SystemClock()
"""Wall time of the offline reads and writes (a running serve uses its engine's)."""


@app.command(name="serve")
def serve_cmd(
    *,
    opencode_url: Annotated[str, cyclopts.Parameter(name="--opencode-url")] = "http://127.0.0.1:4096",
    config: Path | None = None,
    listen: str = DEFAULT_LISTEN,
    state_dir: Path | None = None,
    connect_timeout: float = 30.0,
    project: Path | None = None,
    register_mcp: Annotated[bool, cyclopts.Parameter(negative="--no-register-mcp")] = True,
    allow_remote: bool = False,
    heartbeat_timeout: float = HEARTBEAT_TIMEOUT_S,
    store: str | None = None,
    lease_seconds: float = 6.0,
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
    register_mcp
        Register baton's task tools with opencode on attach (``--no-register-mcp`` to skip).
    allow_remote
        Allow a --listen address beyond loopback (the endpoints then face the network; the token
        still guards them).
    heartbeat_timeout
        Seconds without any event or heartbeat from opencode (it beats every 10 s) before the
        stream counts as dead and baton reconnects.
    store
        A ``postgresql://`` URL: share cooldowns with other batons (default BATON_STORE_URL;
        without one, SQLite in the state dir). The password is never printed.
    lease_seconds
        With --store: batons pointed at the same opencode server stand by while one drives it;
        they take over when its lease goes unrenewed this long (a crash, a lost machine).
    """
    options = ServeOptions(
        opencode_url=opencode_url, config_path=config, listen=listen, state_dir=state_dir,
        connect_timeout=connect_timeout, project_dir=project, announce=lambda line: print(line, flush=True),
        register_mcp=register_mcp, allow_remote=allow_remote, heartbeat_timeout=heartbeat_timeout, store_url=store,
        lease_seconds=lease_seconds,
    )
    try:
        anyio.run(serve, options)
    except KeyboardInterrupt:
        return 0
    except BaseException as exc:
        return _stopped(exc)
    return 0


def _stopped(exc: BaseException) -> int:
    """Exit code and one clear line for whatever ended ``serve``; groups are unwrapped."""
    leaves = list(_leaves(exc))
    for leaf in leaves:
        if isinstance(leaf, BatonError) and leaf.exit_code is not None:
            return _fail(str(leaf), leaf.exit_code)
    if all(isinstance(leaf, KeyboardInterrupt | SystemExit) for leaf in leaves):
        return 0
    first = next(leaf for leaf in leaves if not isinstance(leaf, KeyboardInterrupt | SystemExit))
    structlog.get_logger("baton").error("baton stopped on an internal error", exc_info=first)
    return _fail(f"stopped on an internal error: {type(first).__name__}: {first} "
                 "(the log has the details)", 1)


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc



@config_app.command
def check(
    path: Path | None = None,
    *,
    project: Path | None = None,
    opencode_url: Annotated[str | None, cyclopts.Parameter(name="--opencode-url")] = None,
) -> int:
    """Validate the configuration and print the fallback chain of every agent and category.

    With --opencode-url, also check every chain model against that opencode's models: unknown
    names, providers without credentials, fallbacks with a smaller context window or a higher
    price than their primary. Those findings are warnings: the exit code stays 0 (2 for a bad
    config, 3 when opencode does not answer).

    Parameters
    ----------
    path
        A config file to check instead of the usual search.
    project
        Project directory whose files apply (default: the current directory).
    opencode_url
        A running ``opencode serve`` to check the chains against (basic auth from
        OPENCODE_SERVER_PASSWORD/USERNAME); without it the check stays offline.
    """
    env = dict(os.environ)
    try:
        config = load_config(project or Path.cwd(), explicit=path, env=env)
    except ConfigError as exc:
        return _fail(str(exc), 2)
    from baton.config import printable

    # Plain text written as it is: keys and values from the file are neither markup nor emoji
    # codes, and a file with thousands of agents is not laid out by rich line by line.
    out.file.write("".join(printable(line) + "\n" for line in describe(config)))
    out.file.flush()
    if opencode_url is None:
        return 0
    try:
        catalog, _ = _opencode_catalog(opencode_url, env)
    except OpencodeError as exc:
        return _fail(f"opencode at {opencode_url}: {exc}; the chains above were not checked against its "
                     "models (is `opencode serve` running there?)", 3)
    findings, summary = _chain_report(config, catalog)
    out.file.write("".join(printable(f"chain warning: {f}") + "\n" for f in findings) or printable(summary) + "\n")
    out.file.flush()
    return 0


CATALOG_WAIT_S = 5.0
"""Bound on asking opencode for its models (``config check --opencode-url``, ``doctor``)."""


def _opencode_catalog(url: str, env: dict[str, str], *, with_path: bool = False) -> tuple[Catalog, str | None]:
    """opencode's catalog (and, ``with_path``, the directory it serves); raises OpencodeError,
    also when the whole exchange takes longer than ``CATALOG_WAIT_S``."""

    async def fetch() -> tuple[Catalog, str | None]:
        async with OpencodeClient(url, auth=auth_from_env(env), timeout=CATALOG_WAIT_S) as client:
            with anyio.move_on_after(CATALOG_WAIT_S):
                directory = (await client.path()).get("directory") if with_path else None
                return await client.catalog(), directory if isinstance(directory, str) else None
        raise OpencodeUnavailable(f"no answer within {CATALOG_WAIT_S:g} s", timed_out=True)

    return anyio.run(fetch)


def _chain_report(config: Config, catalog: Catalog) -> tuple[list[str], str]:
    """The findings' lines, and the line to print when there are none."""
    findings = [f.text for f in check_chains(config, catalog)]
    count = len(checked_models(config))
    summary = (f"chains: all {count} models known and connected" if count
               else "chains: no model named in any chain (nothing to check)")
    return findings, summary


@config_app.command
def schema() -> int:
    """Print the JSON Schema of the keys baton reads."""
    print(json.dumps(json_schema(), indent=2))
    return 0


def _auth_headers(state_dir: Path | None) -> dict[str, str]:
    """The running serve's token, found the way serve keeps it: BATON_TOKEN or the state dir."""
    token = read_token(state_dir or default_state_dir(dict(os.environ)), os.environ)
    return {"Authorization": f"Bearer {token}"} if token else {}


def _dashboard_link(listen: str, state_dir: Path | None) -> str | None:
    """The dashboard's address with the token, which the page trades for a cookie at once."""
    token = read_token(state_dir or default_state_dir(dict(os.environ)), os.environ)
    return f"http://{listen}/?token={quote(token, safe='')}" if token else None


def _serve_get(listen: str, path: str, state_dir: Path | None) -> Any | None:
    """JSON from a running serve, or None when none answers at ``listen`` (or it refuses us)."""
    try:
        response = httpx2.get(f"http://{listen}{path}", timeout=5.0, headers=_auth_headers(state_dir))
    except httpx2.HTTPError:
        return None
    if response.status_code == 401:
        err.print("[yellow]baton serve refused the token[/]: pass the same --state-dir as serve, or set BATON_TOKEN")
        return None
    return response.json()


def _status_view(data: dict[str, Any] | None, store: Store | None) -> Group:
    """The status screen at ``_clock``'s now: the serve's ``data`` (None: none runs) and the store's cooling rows."""
    from baton.cli_views import status_view

    now = _clock.time()
    return status_view(data, store.cooling(now) if store is not None else (), now)


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
    data = _serve_get(listen, "/status", state_dir)
    link = _dashboard_link(listen, state_dir) if data is not None else None
    if not watch:
        out.print(_status_view(data, store))
        if link:
            out.print(f"dashboard: {link}", soft_wrap=True)
        return 0
    if link:
        out.print(f"dashboard: {link}", soft_wrap=True)
    try:
        view = _status_view(data, store)
        from rich.live import Live

        with Live(view, console=out, refresh_per_second=2) as live:
            while True:
                time.sleep(1.0)
                live.update(_status_view(_serve_get(listen, "/status", state_dir), store))
    except KeyboardInterrupt:
        return 0


tasks_app = cyclopts.App(name="tasks", help="Background tasks: list, show, cancel (live from serve, else the store).")
app.command(tasks_app)


def _offline_scheduler(state_dir: Path | None) -> tuple[Store, Scheduler] | None:
    path = (state_dir or default_state_dir(dict(os.environ))) / "baton.db"
    if not path.exists():
        return None
    store = Store(path)
    config = load_config(None, env={}, home=Path("/nonexistent"))
    tasks = store.load_tasks(Task.from_row)
    outbox = store.load_outbox(OutboxRow.from_row)
    return store, Scheduler(config, Cooldowns(), tasks, outbox)


@tasks_app.default
def tasks_list(*, all: bool = False, json_output: Annotated[bool, cyclopts.Parameter(name="--json")] = False,
               listen: str = DEFAULT_LISTEN, state_dir: Path | None = None) -> int:
    """List live tasks (with --all, ended ones too): id, parent, agent/category, model, status, age, queue.

    Parameters
    ----------
    all
        Include ended tasks.
    json_output
        Print JSON instead of a table.
    listen
        Where a running ``baton serve`` listens.
    state_dir
        The store to read when no serve runs.
    """
    rows = _serve_get(listen, "/tasks" + ("?all=1" if all else ""), state_dir)
    if rows is None:
        offline = _offline_scheduler(state_dir)
        if offline is None:
            out.print("no tasks (no serve running and no store yet)")
            return 0
        rows = [asdict(r) for r in offline[1].snapshot(_clock.time(), include_ended=all)]
    if json_output:
        print(json.dumps(rows, indent=2))
        return 0
    from baton.cli_views import tasks_table

    out.print(tasks_table(rows, now=_clock.time()) if rows else "no tasks")
    return 0


@tasks_app.command(name="show")
def tasks_show(task_id: str, *, listen: str = DEFAULT_LISTEN, state_dir: Path | None = None) -> int:
    """Everything about one task, and its result or status text.

    Parameters
    ----------
    task_id
        The task id (``bg_...``).
    """
    data = _serve_get(listen, f"/tasks/{task_id}", state_dir)
    if data is None:
        offline = _offline_scheduler(state_dir)
        task = offline[1].task(task_id) if offline else None
        if offline is None or task is None:
            return _fail(f"no task {task_id}", 2)
        text = offline[1].output(task_id, None, _clock.time())
        data = {"row": task.to_row(), "output": text if isinstance(text, str) else text.message}
    if "error" in data:
        return _fail(data["error"], 2)
    for key, value in data["row"].items():
        if key not in ("prompt", "result", "system") and value not in (None, "", [], {}):
            out.print(f"{key}: {value}", markup=False)
    out.print("")
    out.print(data["output"], markup=False)
    return 0


@tasks_app.command(name="cancel")
def tasks_cancel(task_id: str, *, listen: str = DEFAULT_LISTEN, state_dir: Path | None = None) -> int:
    """Cancel a task as the user: its parent is told. Without a running serve the store is updated
    and the child session is left as it is (nothing can reach opencode).

    Parameters
    ----------
    task_id
        The task id (``bg_...``).
    """
    try:
        response = httpx2.post(f"http://{listen}/tasks/{task_id}/cancel", timeout=10.0,
                               headers=_auth_headers(state_dir))
        if response.status_code == 401:
            return _fail("baton serve refused the token: pass the same --state-dir as serve, or set BATON_TOKEN", 2)
        out.print(response.json()["text"], markup=False)
        return 0
    except httpx2.HTTPError:
        pass
    offline = _offline_scheduler(state_dir)
    if offline is None:
        return _fail(f"no task {task_id}", 2)
    store, scheduler = offline
    report, actions = scheduler.cancel(CancelRequest(task_id=task_id, by="user"), _clock.time())
    for action in actions:
        if isinstance(action, SaveTask):
            store.save_tasks([(action.task_id, action.row)], (), _clock.time())
        elif isinstance(action, SaveOutbox):
            store.save_tasks((), action.rows, _clock.time())
    if isinstance(report, ToolError):
        return _fail(report.message, 2)
    if store.problem is not None:
        return _fail(f"the cancel could not be saved: {store.problem}", 2)
    out.print(report.text + "\n(baton serve is not running: the child session was not stopped)", markup=False)
    return 0


@app.command
def doctor(
    *,
    opencode_url: Annotated[str, cyclopts.Parameter(name="--opencode-url")] = "http://127.0.0.1:4096",
    listen: str = DEFAULT_LISTEN,
    state_dir: Path | None = None,
) -> int:
    """Check opencode, the config, the running serve, the MCP tools, the store and every chain
    model against opencode's models; say what to fix. Chain findings are warnings (exit code 0).

    Parameters
    ----------
    opencode_url
        The opencode server baton attaches to.
    listen
        Where ``baton serve`` listens.
    state_dir
        baton's store.
    """
    from rich.markup import escape

    from baton.doctor import run_checks

    env = dict(os.environ)
    failed = 0
    for check in run_checks(opencode_url, listen, state_dir or default_state_dir(env), env):
        mark = "[green]ok[/]  " if check.ok else "[red]FAIL[/]"
        hint = f"\n      → {escape(check.hint)}" if check.hint and not check.ok else ""
        out.print(f"{mark} {escape(check.what)}{hint}")
        failed += not check.ok
    # Chain findings are warnings: they say what to fix before a fallback needs it, and fail nothing.
    try:
        catalog, directory = _opencode_catalog(opencode_url, env, with_path=True)
        config = load_config(Path(directory) if directory else None, env=env)
    except (OpencodeError, ConfigError):
        out.print("[yellow]skip[/] chains: not checked against opencode's models (see above)")
    else:
        findings, summary = _chain_report(config, catalog)
        for line in findings:
            out.print(f"[yellow]warn[/] {escape(line)}")
        if not findings:
            out.print(f"[green]ok[/]   {escape(summary)}")
    return 1 if failed else 0


@app.command
def demo(*, keep: bool = False, fleet: bool = False) -> int:
    """Show a fallback happen, offline: real opencode, a fake provider, one prompt.

    Parameters
    ----------
    keep
        Keep the demo's temporary directory (logs, store) and print where it is.
    fleet
        Two opencode servers behind two batons sharing one PostgreSQL: a cooldown one learns
        reroutes the other's prompt.
    """
    from baton.demo import DemoError, run_demo
    from baton.demo_fleet import run_fleet_demo

    try:
        for line in (run_fleet_demo if fleet else run_demo)(keep=keep):
            out.print(line, markup=False)
    except DemoError as exc:
        return _fail(str(exc), 1)
    return 0


def main() -> None:
    """The CLI's one boundary: a baton error with an exit code (store, config...) is a line, never a traceback."""
    configure_logging()
    try:
        code = app(result_action="return_value")
    except BatonError as exc:
        if exc.exit_code is None:
            raise
        code = _fail(str(exc), exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
