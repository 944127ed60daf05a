"""``baton serve``: start-up order, readiness and a clean stop.

Order: parse the listen address → reach opencode (its ``/path`` names the project, which
decides which config files apply) → load the config → open the store → bind the HTTP port →
run the engine until SIGINT/SIGTERM. Failures map to exit codes the CLI documents: 2 for
bad config or arguments, 3 when opencode stays unreachable for ``connect_timeout``.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from socket import socket

import anyio
import structlog

from baton.config import Config, ConfigError, load_config
from baton.engine import Engine
from baton.fallback.policy import FallbackPolicy
from baton.opencode.client import OpencodeClient, OpencodeError, OpencodeUnavailable, auth_from_env
from baton.server import HttpServer, bind_socket, build_app, make_server
from baton.store import Store
from baton.tasks.runtime import TaskRuntime

__all__ = ["DEFAULT_LISTEN", "ServeOptions", "StartupError", "default_state_dir", "parse_listen", "serve"]

log = structlog.get_logger("baton")

DEFAULT_LISTEN = "127.0.0.1:4097"


class StartupError(Exception):
    """baton cannot start; ``exit_code`` says why (2 config/arguments, 3 opencode unreachable)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class ServeOptions:
    opencode_url: str
    config_path: Path | None = None
    listen: str = DEFAULT_LISTEN
    state_dir: Path | None = None
    connect_timeout: float = 30.0
    project_dir: Path | None = None
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    # Where the one "attached" line goes (the CLI prints it to stdout).
    announce: Callable[[str], None] = lambda _line: None
    # Register baton's MCP tools with opencode on attach (POST /mcp).
    register_mcp: bool = True


def default_state_dir(env: dict[str, str]) -> Path:
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "baton"


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise StartupError(f"--listen must be HOST:PORT, e.g. {DEFAULT_LISTEN} (got {listen!r})", 2)
    return host.strip("[]"), int(port)


async def _reach(client: OpencodeClient, patience: float) -> dict[str, object]:
    """Ask opencode where it runs, retrying until ``timeout``: it may still be starting."""
    delay = 0.1
    last = "no answer"
    with anyio.move_on_after(patience):
        while True:
            try:
                return await client.path()
            except OpencodeUnavailable as exc:
                last = str(exc)
            except OpencodeError as exc:
                raise StartupError(f"opencode at {client.base_url} refused baton: {exc}", 3) from exc
            await anyio.sleep(delay)
            delay = min(delay * 2, 1.0)
    raise StartupError(
        f"opencode is not reachable at {client.base_url} after {patience:g}s ({last}); "
        "start it with `opencode serve --port 4096` or pass --opencode-url", 3
    )


def _load(options: ServeOptions, project: Path | None) -> Config:
    try:
        return load_config(project, explicit=options.config_path, env=options.env)
    except ConfigError as exc:
        raise StartupError(f"config error: {exc}", 2) from exc


async def serve(options: ServeOptions) -> None:
    """Run ``baton serve`` until a signal; raises :class:`StartupError` when it cannot start."""
    host, port = parse_listen(options.listen)
    # An explicit file does not depend on the project: load it (and fail) before any network wait.
    explicit = _load(options, None) if options.config_path is not None else None
    client = OpencodeClient(options.opencode_url, auth=auth_from_env(options.env))
    async with client:
        where = await _reach(client, options.connect_timeout)
        directory = where.get("directory")
        project = options.project_dir or (Path(directory) if isinstance(directory, str) else None)
        config = explicit or _load(options, project)
        for warning in config.warnings:
            log.warning(warning)
        state_dir = options.state_dir or default_state_dir(options.env)
        with Store(state_dir / "baton.db") as store:
            try:
                sock = bind_socket(host, port)
            except OSError as exc:
                raise StartupError(f"cannot listen on {options.listen}: {exc.strerror}", 2) from exc
            await _run(options, client, config, store, sock, project)


async def _run(
    options: ServeOptions, client: OpencodeClient, config: Config, store: Store, sock: socket, project: Path | None
) -> None:
    def attached(sessions: int) -> None:
        options.announce(
            f"baton: attached to {options.opencode_url} (watching {sessions} sessions); "
            f"health at http://{options.listen}/healthz"
        )

    cooldowns = Engine.load_cooldowns(store, time.time())
    tasks = TaskRuntime.from_store(client, store, config, cooldowns, project_dir=str(project) if project else None)
    policy = FallbackPolicy(config, cooldowns, owned_elsewhere=tasks.scheduler.owns)
    mcp_url = None if not options.register_mcp else f"http://{options.listen}/mcp"
    engine = Engine(client, policy, store, on_attach=attached, tasks=tasks, mcp_url=mcp_url)
    app, mcp_lifespan = build_app(engine)
    server = make_server(app)
    never_attached = False
    async with mcp_lifespan(), anyio.create_task_group() as tg:
        tg.start_soon(engine.run)
        tg.start_soon(server.serve, [sock])
        tg.start_soon(_stop_on_signal, tg.cancel_scope, server, tasks)
        with anyio.move_on_after(options.connect_timeout):
            await engine.attached.wait()
        if not engine.attached.is_set() and not tg.cancel_scope.cancel_called:
            never_attached = True
            tg.cancel_scope.cancel()
    if never_attached:
        raise StartupError(f"could not open opencode's event stream at {options.opencode_url}", 3)


async def _stop_on_signal(scope: anyio.CancelScope, server: HttpServer, tasks: TaskRuntime) -> None:
    """SIGINT/SIGTERM: stop serving and cancel everything. Children keep running in opencode and
    foreground calls become background tasks: the store has it all for the next start."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("stopping", signal=signal.Signals(signum).name)
            break
    tasks.stopping = True
    server.should_exit = True
    scope.cancel()
