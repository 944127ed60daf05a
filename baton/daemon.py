"""``baton serve``: start-up order, readiness and a clean stop.

Order: parse the listen address → reach opencode (its ``/path`` names the project, which
decides which config files apply) → load the config → open the store → bind the HTTP port →
run the engine until SIGINT/SIGTERM. Failures map to exit codes the CLI documents: 2 for
bad config or arguments, 3 when opencode stays unreachable for ``connect_timeout``.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import anyio
import structlog

from baton.auth import TokenError, is_loopback, load_token
from baton.clock import Clock, SystemClock
from baton.config import Config, ConfigError, load_config
from baton.cooldowns import Cooldowns
from baton.engine import Engine
from baton.errors import BatonError
from baton.fallback.policy import FallbackPolicy
from baton.opencode.client import OpencodeClient, OpencodeError, OpencodeUnavailable, auth_from_env
from baton.opencode.stream import HEARTBEAT_TIMEOUT_S, MIN_HEARTBEAT_TIMEOUT_S, EventStream
from baton.runtime.attach import Attachment
from baton.runtime.calls import CallMatcher
from baton.runtime.fallback_executor import FALLBACK_ACTIONS, RECENT_KEPT, FallbackExecutor
from baton.runtime.fleet_slots import FleetSlots, LocalSlots, SlotGate
from baton.runtime.jobs import Jobs
from baton.runtime.metrics import Metrics
from baton.runtime.router import Executor, Router
from baton.runtime.task_tools import TaskTools
from baton.runtime.tasks import TASK_ACTIONS, SessionTree, TaskChanges, TaskExecutor
from baton.runtime.timers import Timers
from baton.server import HttpServer, bind_socket, build_app, make_server, standby_app
from baton.store import Store
from baton.store_port import StorePort
from baton.tasks.model import OutboxRow, Task
from baton.tasks.queues import limit_for
from baton.tasks.scheduler import Scheduler

__all__ = ["DEFAULT_LISTEN", "ServeOptions", "StartupError", "build_engine", "default_state_dir", "parse_listen",
           "serve"]

log = structlog.get_logger("baton")

DEFAULT_LISTEN = "127.0.0.1:4097"
WILDCARDS = frozenset({"0.0.0.0", "::", ""})


class StartupError(BatonError):
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
    # A non-loopback --listen must be asked for: it puts baton's endpoints on the network.
    allow_remote: bool = False
    heartbeat_timeout: float = HEARTBEAT_TIMEOUT_S
    # Wall time for the engine, the store and the task routes; tests pass a FakeClock.
    clock: Clock = field(default_factory=SystemClock)
    # A postgresql:// URL: the fleet's shared store instead of SQLite in the state dir (or BATON_STORE_URL).
    store_url: str | None = None
    # With a PostgreSQL store: the lease on the opencode server lasts this long unrenewed, so a
    # standby takes over at most this long (plus a third) after its driver died.
    lease_seconds: float = 6.0


def default_state_dir(env: dict[str, str]) -> Path:
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "baton"


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise StartupError(f"--listen must be HOST:PORT, e.g. {DEFAULT_LISTEN} (got {listen!r})", 2)
    return host.strip("[]"), int(port)


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """``http://user:pw@host`` → (``http://host``, (user, pw)): credentials are used, never shown."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc += f":{parts.port}"
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return clean, (unquote(parts.username or "opencode"), unquote(parts.password or ""))


def _url_host(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def mcp_address(listen_host: str, port: int, opencode_url: str) -> str:
    """Where opencode reaches baton: the listen address, or for a wildcard listen the local
    address that routes to opencode (loopback when opencode is local)."""
    if listen_host not in WILDCARDS:
        return _url_host(listen_host, port)
    target = urlsplit(opencode_url).hostname or "127.0.0.1"
    if is_loopback(target):
        return _url_host("::1" if listen_host == "::" else "127.0.0.1", port)
    try:
        family = socket.AF_INET6 if ":" in target else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((target, 9))  # no packet is sent: this only asks for the route
            return _url_host(str(probe.getsockname()[0]), port)
    except OSError:
        return _url_host("127.0.0.1", port)


def host_names(listen_host: str) -> frozenset[str]:
    """Host names (besides IP literals and localhost) that reach this baton."""
    names = {listen_host.lower()} if not is_loopback(listen_host) and listen_host not in WILDCARDS else set()
    if listen_host in WILDCARDS:
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    return frozenset(names)


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


def _check_listen(host: str, options: ServeOptions) -> None:
    if is_loopback(host):
        return
    if not options.allow_remote:
        raise StartupError(
            f"--listen {options.listen} is not a loopback address: baton's endpoints (task prompts and "
            "results) would be reachable from the network. Add --allow-remote to mean it.", 2)
    log.warning("baton's endpoints listen beyond this machine; every request needs the token",
                listen=options.listen)


def _token(state_dir: Path, env: dict[str, str]) -> str:
    try:
        return load_token(state_dir, env)
    except TokenError as exc:
        raise StartupError(str(exc), 2) from exc


async def serve(options: ServeOptions) -> None:
    """Run ``baton serve`` until a signal; raises :class:`StartupError` when it cannot start."""
    host, port = parse_listen(options.listen)
    _check_listen(host, options)
    if options.heartbeat_timeout < MIN_HEARTBEAT_TIMEOUT_S:
        raise StartupError(
            f"--heartbeat-timeout must be at least {MIN_HEARTBEAT_TIMEOUT_S:g} s: opencode beats every "
            f"10 s, so a shorter one would drop a healthy idle stream (got {options.heartbeat_timeout:g})", 2)
    # An explicit file does not depend on the project: load it (and fail) before any network wait.
    explicit = _load(options, None) if options.config_path is not None else None
    state_dir = options.state_dir or default_state_dir(options.env)
    token = _token(state_dir, options.env)
    url, credentials = split_credentials(options.opencode_url)
    # Local problems (state dir, store, port) fail at once, before any wait on the network (the
    # database's, bounded, comes next).
    with _bind(host, port, options.listen) as sock:
        async with _open_store(options, state_dir, scope=url.rstrip("/"), sock=sock, token=token) as store, \
                OpencodeClient(url, auth=credentials or auth_from_env(options.env)) as client:
            where = await _reach(client, options.connect_timeout)
            directory = where.get("directory")
            project = options.project_dir or (Path(directory) if isinstance(directory, str) else None)
            config = explicit or _load(options, project)
            for warning in config.warnings:
                log.warning(warning)
            await _run(options, client, config, store, sock, project, token)


@asynccontextmanager
async def _open_store(options: ServeOptions, state_dir: Path, *, scope: str, sock: socket.socket,
                      token: str) -> AsyncIterator[StorePort]:
    """SQLite in the state dir, or the PostgreSQL the URL names (``scope``: the opencode server
    this baton drives, whose tasks are its own in a shared database). While another baton drives
    that server, this one stands by and its ``/healthz`` says so (on ``sock``)."""
    url = options.store_url or options.env.get("BATON_STORE_URL") or None
    if url is None:
        with Store(state_dir / "baton.db", clock=options.clock) as store:
            yield store
        return
    # psycopg (~12 MB resident) is imported only by a baton that uses PostgreSQL.
    from baton.store_pg import PgStore
    from baton.store_pg_conn import is_database_url, shown_url

    if not is_database_url(url):
        raise StartupError(f"--store must be a postgresql:// URL (got {shown_url(url)!r})", 2)
    waiting: dict[str, object] = {"state": "standby", "opencode": scope, "store": None, "driver": None}
    async with anyio.create_task_group() as tg:
        def standby(driver: str) -> None:
            waiting["driver"] = driver
            options.announce(f"baton: standing by for {scope}: {driver} drives it; taking over if it stops "
                             f"renewing its lease for {options.lease_seconds:g} s")
            app = standby_app(lambda: dict(waiting), token=token, names=host_names(sock.getsockname()[0]))
            tg.start_soon(make_server(app).serve, [sock.dup()])  # a copy: closed at takeover, the port stays bound

        try:
            pg = await PgStore.open(url, scope=scope, clock=options.clock, lease_seconds=options.lease_seconds,
                                    on_standby=standby)
        finally:
            tg.cancel_scope.cancel()
    log.info("store: PostgreSQL", url=shown_url(url), scope=scope, instance=pg.instance)
    try:
        yield pg
    finally:
        with anyio.CancelScope(shield=True):
            await pg.aclose()


@contextmanager
def _bind(host: str, port: int, listen: str) -> Iterator[socket.socket]:
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        raise StartupError(f"cannot listen on {listen}: {exc.strerror or exc}", 2) from exc
    with sock:
        yield sock


async def _run(
    options: ServeOptions, client: OpencodeClient, config: Config, store: StorePort, sock: socket.socket,
    project: Path | None, token: str,
) -> None:
    host, port = parse_listen(options.listen)

    def attached(sessions: int) -> None:
        options.announce(
            f"baton: attached to {client.base_url} (watching {sessions} sessions; tools {engine.health()['tools']}); "
            f"health at http://{_url_host(host, port)}/healthz"
        )

    mcp_url = None if not options.register_mcp else f"http://{mcp_address(host, port, client.base_url)}/mcp"
    engine = build_engine(client, config, store, clock=options.clock, project_dir=str(project) if project else None,
                          mcp_url=mcp_url, mcp_headers={"Authorization": f"Bearer {token}"},
                          heartbeat_timeout=options.heartbeat_timeout, on_attach=attached)
    app, mcp_lifespan = build_app(engine, token=token, names=host_names(host))
    server = make_server(app)
    never_attached = False
    async with mcp_lifespan(), anyio.create_task_group() as tg:
        tg.start_soon(engine.run)
        tg.start_soon(server.serve, [sock])
        tg.start_soon(_stop_on_signal, tg.cancel_scope, server, engine.tasks)
        tg.start_soon(store.run)
        tg.start_soon(_reload_on_hangup, options, project, engine)
        with anyio.move_on_after(options.connect_timeout):
            await engine.attached.wait()
        if not engine.attached.is_set() and not tg.cancel_scope.cancel_called:
            never_attached = True
            tg.cancel_scope.cancel()
    if never_attached:
        raise StartupError(f"could not open opencode's event stream at {client.base_url}", 3)


def build_engine(
    client: OpencodeClient, config: Config, store: StorePort, *, clock: Clock, project_dir: str | None = None,
    mcp_url: str | None = None, mcp_headers: Mapping[str, str] | None = None,
    heartbeat_timeout: float = HEARTBEAT_TIMEOUT_S, on_attach: Callable[[int], None] | None = None,
) -> Engine:
    """Every part of the engine, built in dependency order (see :mod:`baton.engine`): the deciders
    from what the store holds (after a clean stop or a ``kill -9``), the executors, the router that
    feeds the one and runs the other, the tools' service and the attach sequence on the router,
    and last the stream that feeds it all. Nothing is bound late."""
    cooldowns = Cooldowns()
    for row in store.cooling(clock.time()):  # with where each end came from, for baton status
        cooldowns.extend(row.model, row.until, row.source)
    # Another baton's cooldown (a shared store) enters the same ledger the deciders read.
    store.watch_cooldowns(lambda row: cooldowns.extend(row.model, row.until, row.source))
    scheduler = Scheduler(config, cooldowns, store.load_tasks(Task.from_row), store.load_outbox(OutboxRow.from_row))
    policy = FallbackPolicy(config, cooldowns, owned_elsewhere=scheduler.owns)
    jobs = Jobs()
    metrics = Metrics()
    fallback = FallbackExecutor(client, store, Timers(clock), metrics)
    if isinstance(store, Store):  # the dashboard's timeline opens with what the last run decided
        fallback.recent.extend(store.read_journal(None, RECENT_KEPT))
    tree, changes, matcher = SessionTree(client, project_dir), TaskChanges(), CallMatcher(clock=clock)
    slots = _slot_gate(store, scheduler)
    executors: list[tuple[Iterable[type], Executor]] = [
        (FALLBACK_ACTIONS, fallback), (TASK_ACTIONS, TaskExecutor(client, store, tree, changes, slots, metrics, clock))]
    router = Router(policy, scheduler, executors, jobs, clock, observers=(matcher, tree))
    tasks = TaskTools(client, config, scheduler, router, matcher=matcher, tree=tree, changes=changes, clock=clock)
    attachment = Attachment(client, router, policy, scheduler, store, clock, mcp_url=mcp_url, mcp_headers=mcp_headers,
                            on_attach=on_attach)
    stream = EventStream(client, router, attachment, clock=clock, heartbeat_timeout=heartbeat_timeout)
    engine = Engine(client=client, clock=clock, store=store, policy=policy, scheduler=scheduler, jobs=jobs,
                    fallback=fallback, router=router, tasks=tasks, attachment=attachment, stream=stream, slots=slots,
                    metrics=metrics)
    metrics.watch(engine.stats)
    return engine


def _slot_gate(store: StorePort, scheduler: Scheduler) -> SlotGate:
    """A shared store counts task slots for the whole fleet (limits read from the live config)."""
    if isinstance(store, Store):
        return LocalSlots()
    from baton.store_pg import PgStore  # loaded already when the store is one: see _open_store
    from baton.store_pg_slots import SLOT_CHANNEL

    if not isinstance(store, PgStore):
        return LocalSlots()
    return FleetSlots(store, lambda key: limit_for(scheduler.config.background_task, key), SLOT_CHANNEL)


async def _reload_on_hangup(options: ServeOptions, project: Path | None, engine: Engine) -> None:
    """SIGHUP: read the config files again. A broken file is reported (file:line:col) and the
    running config kept: nothing the user wrote stops a running baton."""
    with anyio.open_signal_receiver(signal.SIGHUP) as signals:
        async for _ in signals:
            try:
                config = _load(options, project)
            except StartupError as exc:
                log.error("config not reloaded; the running config stays", error=str(exc))
                continue
            for warning in config.warnings:
                log.warning(warning)
            await engine.reload(config)
            log.info("config reloaded", sources=[str(p) for p in config.sources])


async def _stop_on_signal(scope: anyio.CancelScope, server: HttpServer, tasks: TaskTools) -> None:
    """SIGINT/SIGTERM: stop serving and cancel everything. Children keep running in opencode and
    foreground calls become background tasks: the store has it all for the next start."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("stopping", signal=signal.Signals(signum).name)
            break
    tasks.stopping = True
    server.should_exit = True
    scope.cancel()
