"""The PostgreSQL store: the SQLite store's interface, for batons that share one database.

What one baton learns about a provider holds for all: model health (cooldowns with their reset
times and source) is one table, and every cooldown written is announced with ``NOTIFY`` so that
the other batons apply it as it happens (:meth:`PgStore.watch_cooldowns`), not at their next poll.
Tasks, outbox, pending intents and the journal are kept per ``scope`` — the opencode server a
baton drives — so batons on different servers share the database and not their sessions.

Like the SQLite store, every read is answered from the in-memory :class:`~baton.store_mirror.Mirror`
and no write raises or waits: a write updates the mirror and queues a statement, and one writer
task sends the queue to the database in a transaction. When the database is lost the writer keeps
the mirror, says so in ``problem`` (``/healthz``), buffers the journal, and once the server answers
again writes the whole mirror back; the listener reconnects and catches up on the cooldowns it
missed. The URL's password is never shown: :func:`shown_url`.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar, overload
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import anyio
import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from baton.clock import Clock
from baton.store_mirror import SHAPE_ERRORS, BoxRow, Cooldown, JournalRow, Mirror, PendingRow, TaskRow, json_object
from baton.store_pg_lease import LeaseLost, fence, release, take, wait_for_lease
from baton.store_pg_schema import (
    COOLDOWN_CHANNEL,
    DELETE_BOX,
    DELETE_PENDING,
    DELETE_TASK,
    INSERT_JOURNAL,
    INSERT_QUARANTINE,
    SCHEMA_VERSION,
    UPSERT_BOX,
    UPSERT_COOLDOWN,
    UPSERT_PENDING,
    UPSERT_TASK,
    migrate,
)
from baton.store_port import CoolingRow, JournalEntry, StoreError, StoreTooNew, StoreUnreachable

__all__ = ["PgStore", "is_database_url", "shown_url"]

log = structlog.get_logger("baton")

T = TypeVar("T")
Conn = psycopg.AsyncConnection[Any]
Op = Callable[[Conn], Awaitable[None]]

# Every wait on the database is bounded: connecting, taking a pooled connection, a listener's ping.
CONNECT_TIMEOUT_S = 5.0
# A silent listener connection is pinged this often, so a server that went away is noticed.
LISTEN_PING_S = 5.0
# Pause before retrying a failed write or a lost listener (doubling up to the max).
RETRY_FIRST_S, RETRY_MAX_S = 0.25, 4.0
_KEEPALIVES: dict[str, Any] = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}


def is_database_url(target: str) -> bool:
    """True for a PostgreSQL URL (``postgresql://`` or ``postgres://``)."""
    return target.startswith(("postgresql://", "postgres://"))


def shown_url(url: str) -> str:
    """``url`` without its password (in the user part or the query): what logs and errors print."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}@{host}"
    query = "&".join(item for item in parts.query.split("&") if item.partition("=")[0] != "password")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _password(url: str) -> str:
    parts = urlsplit(url)
    found = dict(parse_qsl(parts.query)).get("password")
    return parts.password or found or ""


class PgStore:
    """baton's durable state in PostgreSQL; open it with :meth:`open`, run :meth:`run` while serving."""

    def __init__(self, url: str, *, scope: str, clock: Clock, instance: str | None = None) -> None:
        self.url = url
        self.scope = scope
        self.instance = instance or f"{socket.gethostname()}:{os.getpid()}"
        self._clock = clock
        self._mirror = Mirror()
        self._write_problem: str | None = None
        self._listen_problem: str | None = None
        self._ops: list[Op] = []
        self._journal: list[JournalRow] = []
        self._wake = asyncio.Event()
        self._resync = False  # the database missed writes: the next flush writes the whole mirror
        self._on_cooldown: Callable[[CoolingRow], object] | None = None
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._lease_s: float | None = None  # set: this baton drives ``scope`` under a lease
        self._lost: LeaseLost | None = None
        self.heard = 0
        """Cooldowns announced by other batons and applied here."""

    # --- opening and closing ---------------------------------------------------------------

    @classmethod
    async def open(cls, url: str, *, scope: str, clock: Clock, instance: str | None = None,
                   lease_seconds: float | None = None, on_standby: Callable[[str], object] | None = None) -> PgStore:
        """Connect, migrate and load this scope's rows. Raises :class:`StoreUnreachable` (exit 3) when
        the server does not answer, :class:`StoreTooNew` for a database of a newer baton.

        With ``lease_seconds``, first stand by until this baton holds the scope's lease
        (:mod:`baton.store_pg_lease`; ``on_standby`` hears who drives it meanwhile): the rows are
        loaded only then, as the driver before it left them."""
        store = cls(url, scope=scope, clock=clock, instance=instance)
        async with await store._connect() as conn:
            try:
                before, _ = await migrate(conn)
                if before > SCHEMA_VERSION:
                    raise StoreTooNew(
                        f"the database at {shown_url(url)} was written by a newer baton (schema {before}, this baton "
                        f"knows {SCHEMA_VERSION}); upgrade baton or use another database")
                if lease_seconds is not None:
                    await wait_for_lease(conn, scope, store.instance, lease_seconds, on_standby)
                    store._lease_s = lease_seconds
                await store._load(conn)
            except psycopg.Error as exc:
                raise StoreError(f"cannot set up the database at {shown_url(url)}: {store._say(exc)}") from exc
        store._pool = AsyncConnectionPool(
            url, min_size=1, max_size=2, open=False, timeout=CONNECT_TIMEOUT_S, reconnect_timeout=24 * 3600.0,
            kwargs={"autocommit": True, "connect_timeout": int(CONNECT_TIMEOUT_S), **_KEEPALIVES},
            check=AsyncConnectionPool.check_connection, name="baton")
        await store._pool.open(wait=False)
        return store

    async def _connect(self) -> Conn:
        try:
            with anyio.fail_after(CONNECT_TIMEOUT_S + 1):
                return await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT_S), **_KEEPALIVES)
        except (psycopg.Error, TimeoutError) as exc:
            raise StoreUnreachable(f"cannot reach the database at {shown_url(self.url)}: {self._say(exc)}") from exc

    def _say(self, exc: BaseException) -> str:
        """An error's first line, with the password (should a driver echo it) blanked."""
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        secret = _password(self.url)
        return text.replace(secret, "***") if secret else text

    async def _load(self, conn: Conn) -> None:
        m, scope = self._mirror, (self.scope,)
        for tid, parent, status, text, updated in await _rows(
                conn, "SELECT id, parent_session_id, status, row, updated FROM tasks WHERE scope = %s", scope):
            m.tasks[tid] = TaskRow(parent, status, text, updated)
        for bid, parent, state, text in await _rows(
                conn, "SELECT id, parent_session_id, state, row FROM outbox WHERE scope = %s", scope):
            m.outbox[bid] = BoxRow.stored(parent, state, text)
        for kind, key, text, updated in await _rows(
                conn, "SELECT kind, key, row, updated FROM pending WHERE scope = %s", scope):
            m.pending[(kind, key)] = PendingRow(text, updated)
        for model, until, reason, updated, source in await _rows(
                conn, "SELECT model, until, reason, updated, source FROM model_health", ()):
            m.cooldowns[model] = Cooldown(until, reason, updated, source)

    async def aclose(self) -> None:
        """Write what is queued (bounded), then close the pool."""
        if self._pool is None:
            return
        with anyio.move_on_after(CONNECT_TIMEOUT_S):
            await self.flush()
            if self._lease_s is not None and self._lost is None:
                async with self._pool.connection(timeout=CONNECT_TIMEOUT_S) as conn:
                    await release(conn, self.scope, self.instance)
        if self.problem is not None:
            log.warning("store: closing with state the database has not taken", problem=self.problem,
                        url=shown_url(self.url))
        await self._pool.close()
        self._pool = None

    # --- health ----------------------------------------------------------------------------

    @property
    def problem(self) -> str | None:
        """None while writes go through and the announcements are heard; else what is wrong."""
        problems = [p for p in (self._write_problem, self._listen_problem) if p is not None]
        if self._lost is not None:
            problems.insert(0, str(self._lost))
        return "; ".join(problems) if problems else None

    def watch_cooldowns(self, on_cooldown: Callable[[CoolingRow], object]) -> None:
        self._on_cooldown = on_cooldown

    # --- background work -------------------------------------------------------------------

    async def run(self) -> None:
        """The writer and the cooldown listener, until cancelled."""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._write_loop)
                tg.start_soon(self._listen_loop)
                if self._lease_s is not None:
                    tg.start_soon(self._keep_lease, self._lease_s)
        except BaseExceptionGroup as group:
            if self._lost is not None and group.subgroup(LeaseLost) is not None:
                raise self._lost from None
            raise

    async def fleet(self) -> dict[str, Any] | None:
        """This baton's instance, who drives each opencode server (lease seconds left), and every
        server's tasks by status, from the database (bounded; an error is reported, not raised)."""
        view: dict[str, Any] = {"instance": self.instance, "scope": self.scope, "database": shown_url(self.url)}
        if self._pool is None:
            return {**view, "error": "not connected"}
        try:
            with anyio.fail_after(CONNECT_TIMEOUT_S):
                async with self._pool.connection(timeout=CONNECT_TIMEOUT_S) as conn:
                    leases = await _rows(conn, "SELECT scope, holder, EXTRACT(EPOCH FROM expires_at - now())::float8 "
                                               "FROM leases ORDER BY scope", ())
                    counts = await _rows(conn, "SELECT scope, status, count(*) FROM tasks GROUP BY scope, status "
                                               "ORDER BY scope, status", ())
        except (psycopg.Error, PoolTimeout, TimeoutError) as exc:
            return {**view, "error": self._say(exc)}
        servers: dict[str, dict[str, Any]] = {}
        for scope, holder, left in leases:
            servers[scope] = {"opencode": scope, "driver": holder, "lease_left_s": round(left, 1), "tasks": {}}
        for scope, status, n in counts:
            servers.setdefault(scope, {"opencode": scope, "driver": None, "lease_left_s": None, "tasks": {}})
            servers[scope]["tasks"][status] = n
        return {**view, "servers": list(servers.values())}

    async def _keep_lease(self, seconds: float) -> None:
        """Renew the lease every third of its length; raise :class:`LeaseLost` once another holds it."""
        while True:
            await anyio.sleep(seconds / 3)
            assert self._pool is not None
            try:
                async with self._pool.connection(timeout=CONNECT_TIMEOUT_S) as conn:
                    held = await take(conn, self.scope, self.instance, seconds)
            except (psycopg.Error, PoolTimeout):
                continue  # the writer says the database is lost; nobody can take the lease meanwhile
            if not held:
                self._lost = LeaseLost(f"another baton drives {self.scope} now; this one stops deciding for it")
                raise self._lost

    async def _write_loop(self) -> None:
        delay = RETRY_FIRST_S
        while True:
            await self._wake.wait()
            self._wake.clear()
            if await self.flush():
                delay = RETRY_FIRST_S
                continue
            if self._lost is not None:
                raise self._lost
            await anyio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
            self._wake.set()

    async def flush(self) -> bool:
        """Send what is queued (the whole mirror after a loss) in one transaction; False on failure."""
        if self._pool is None:
            return False
        ops, self._ops = self._ops, []
        rows, self._journal = self._journal, []
        resync = self._resync
        try:
            async with self._pool.connection(timeout=CONNECT_TIMEOUT_S) as conn, conn.transaction():
                if self._lease_s is not None:
                    await fence(conn, self.scope, self.instance)
                if resync:
                    await self._write_all(conn)
                for op in ops:
                    await op(conn)
                if rows:
                    await _many(conn, INSERT_JOURNAL, [(self.scope, self.instance, *row) for row in rows])
        except LeaseLost as exc:
            self._lost = exc
            log.error("store: this baton lost its lease; its writes are refused", scope=self.scope)
            return False
        except (psycopg.Error, PoolTimeout) as exc:
            self._mirror.buffer_journal(rows)
            self._resync = True  # the mirror holds what the dropped statements would have written
            if self._write_problem is None:
                log.warning("store: the database is not taking writes; deciding from what is known and "
                            "keeping every write until it does", url=shown_url(self.url), error=self._say(exc))
            self._write_problem = f"database write failed: {self._say(exc)}"
            return False
        self._mirror.quarantine.clear()  # every row set aside was in this transaction or an earlier one
        if resync:
            log.info("store: the database takes writes again; baton's state is written back",
                     url=shown_url(self.url), tasks=len(self._mirror.tasks), journal_lost=self._mirror.journal_dropped)
            self._mirror.written()
            self._resync = False
        self._write_problem = None
        return True

    async def _write_all(self, conn: Conn) -> None:
        """The database's rows of this scope become the mirror's; cooldowns and journal are added."""
        m, scope = self._mirror, self.scope
        for table, keep in (("tasks", list(m.tasks)), ("outbox", list(m.outbox))):
            await conn.execute(f"DELETE FROM {table} WHERE scope = %s AND NOT (id = ANY(%s))", (scope, keep))
        await conn.execute("DELETE FROM pending WHERE scope = %s", (scope,))
        await _many(conn, UPSERT_TASK, [(scope, *r.params(k)) for k, r in m.tasks.items()])
        await _many(conn, UPSERT_BOX, [(scope, *r.params(k), r.task_id) for k, r in m.outbox.items()])
        await _many(conn, UPSERT_PENDING, [(scope, *r.params(k)) for k, r in m.pending.items()])
        now = self._clock.time()
        for model, c in m.cooldowns.items():
            if c.until > now:
                await self._upsert_cooldown(conn, model, c)
        await _many(conn, INSERT_JOURNAL, [(scope, self.instance, *row) for row in m.journal])
        await _many(conn, INSERT_QUARANTINE, [(scope, *row) for row in m.quarantine])

    def _queue(self, op: Op) -> None:
        self._ops.append(op)
        self._wake.set()

    # --- the cooldown listener -------------------------------------------------------------

    async def _listen_loop(self) -> None:
        delay = RETRY_FIRST_S
        while True:
            try:
                async with await self._connect() as conn:
                    await conn.execute(f"LISTEN {COOLDOWN_CHANNEL}")
                    await self._catch_up(conn)
                    if self._listen_problem is not None:
                        log.info("store: hearing other batons' cooldowns again", url=shown_url(self.url))
                    self._listen_problem, delay = None, RETRY_FIRST_S
                    while True:
                        async for note in conn.notifies(timeout=LISTEN_PING_S):
                            self._heard(note.payload)
                        with anyio.fail_after(LISTEN_PING_S):
                            await conn.execute("SELECT 1")
            except (psycopg.Error, StoreError, TimeoutError) as exc:
                if self._listen_problem is None:
                    log.warning("store: lost the database's cooldown announcements; reconnecting",
                                url=shown_url(self.url), error=self._say(exc))
                self._listen_problem = f"not hearing other batons' cooldowns: {self._say(exc)}"
            await anyio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    async def _catch_up(self, conn: Conn) -> None:
        """Cooldowns written while this baton was not listening (at start, after a loss)."""
        rows = await _rows(conn, "SELECT model, until, reason, source, origin FROM model_health WHERE until > %s",
                           (self._clock.time(),))
        for model, until, reason, source, origin in rows:
            self._apply(CoolingRow(model, until, reason, source), origin)

    def _heard(self, payload: str) -> None:
        try:
            data = json_object(payload)
            row = CoolingRow(str(data["model"]), float(data["until"]), str(data["reason"]), str(data["source"]))
            origin = str(data.get("origin", ""))
        except SHAPE_ERRORS as exc:
            log.warning("store: ignored a cooldown announcement that does not parse", payload=payload[:200],
                        error=str(exc))
            return
        self._apply(row, origin)

    def _apply(self, row: CoolingRow, origin: str) -> None:
        if origin == self.instance:
            return
        old = self._mirror.cooldowns.get(row.model)
        if old is not None and old.until >= row.until:
            return
        self.heard += 1
        self._mirror.cooldowns[row.model] = Cooldown(row.until, row.reason, self._clock.time(), row.source)
        if self._on_cooldown is not None:
            self._on_cooldown(row)

    # --- model health ----------------------------------------------------------------------

    def cooldowns(self, now: float) -> list[tuple[str, float, str]]:
        """Models still cooling at ``now``: (model, until, reason), soonest end first."""
        return [(row.model, row.until, row.reason) for row in self.cooling(now)]

    def cooling(self, now: float) -> list[CoolingRow]:
        """Models still cooling at ``now`` (learnt here or by any baton of the fleet), soonest end first."""
        rows = [CoolingRow(k, c.until, c.reason, c.source) for k, c in self._mirror.cooldowns.items() if c.until > now]
        return sorted(rows, key=lambda row: row.until)

    def save_cooldown(self, model: str, until: float, reason: str, now: float, source: str = "configured") -> None:
        """Enter or extend ``model``'s cooldown for the whole fleet (never shortened)."""
        entry = self._mirror.save_cooldown(model, until, reason, now, source)

        async def op(conn: Conn) -> None:
            await self._upsert_cooldown(conn, model, entry)

        self._queue(op)

    async def _upsert_cooldown(self, conn: Conn, model: str, entry: Cooldown) -> None:
        """Write a cooldown and announce the row as it now stands (sent when the transaction commits)."""
        cur = await conn.execute(UPSERT_COOLDOWN, (*entry.params(model)[:4], entry.source, self.instance))
        stored = await cur.fetchone()
        if stored is None:
            return
        payload = dict(zip(("model", "until", "reason", "source", "origin"), stored, strict=True))
        await conn.execute("SELECT pg_notify(%s, %s)", (COOLDOWN_CHANNEL, json.dumps(payload)))

    # --- tasks, outbox, pending ------------------------------------------------------------

    def save_tasks(
        self, rows: Iterable[tuple[str, dict[str, Any]]], outbox: Iterable[dict[str, Any]], now: float
    ) -> None:
        """Upsert task rows and outbox rows in one transaction: the scheduler's durable state."""
        tasks = [(tid, TaskRow.of(row, now)) for tid, row in rows]
        boxes = [(str(row["id"]), BoxRow.of(row)) for row in outbox]
        self._mirror.save_tasks(tasks, boxes)
        scope = self.scope

        async def op(conn: Conn) -> None:
            await _many(conn, UPSERT_TASK, [(scope, *r.params(k)) for k, r in tasks])
            await _many(conn, UPSERT_BOX, [(scope, *r.params(k), r.task_id) for k, r in boxes])

        self._queue(op)

    def forget_tasks(self, task_ids: Iterable[str]) -> None:
        """Drop ended tasks and their notification rows (the scheduler's history cap)."""
        ids = list(task_ids)
        boxes = self._mirror.forget(ids)
        scope = self.scope

        async def op(conn: Conn) -> None:
            await _many(conn, DELETE_TASK, [(scope, tid) for tid in ids])
            await _many(conn, DELETE_BOX, [(scope, bid) for bid in boxes])

        self._queue(op)

    @overload
    def load_tasks(self) -> list[dict[str, Any]]: ...
    @overload
    def load_tasks(self, parse: Callable[[dict[str, Any]], T]) -> list[T]: ...
    def load_tasks(self, parse: Callable[[dict[str, Any]], Any] = dict) -> list[Any]:
        """Task rows through ``parse`` (e.g. ``Task.from_row``); a row it rejects is set aside."""
        return self._parse("tasks", [(k, r.row) for k, r in self._mirror.tasks.items()], parse)

    @overload
    def load_outbox(self, *, include_done: bool = False) -> list[dict[str, Any]]: ...
    @overload
    def load_outbox(self, parse: Callable[[dict[str, Any]], T], *, include_done: bool = False) -> list[T]: ...
    def load_outbox(self, parse: Callable[[dict[str, Any]], Any] = dict, *, include_done: bool = False) -> list[Any]:
        """Rows not yet delivered or dropped (the ones a restart must still send), or all of them."""
        done = () if include_done else ("delivered", "dropped")
        rows = [(k, r.row) for k, r in self._mirror.outbox.items() if r.state not in done]
        return self._parse("outbox", rows, parse)

    def put_pending(self, kind: str, key: str, row: dict[str, Any] | None, now: float | None = None) -> None:
        """Record ``row`` as the pending intent ``(kind, key)``, or forget it (None). Never raises."""
        entry = self._mirror.put_pending(kind, key, row, self._clock.time() if now is None else now)
        scope = self.scope

        async def op(conn: Conn) -> None:
            if entry is None:
                await conn.execute(DELETE_PENDING, (scope, kind, key))
            else:
                await conn.execute(UPSERT_PENDING, (scope, *entry.params((kind, key))))

        self._queue(op)

    def load_pending(self, kind: str, parse: Callable[[dict[str, Any]], T]) -> list[T]:
        """The pending rows of ``kind`` through ``parse``; a row it rejects is set aside."""
        rows = [(f"{k}:{key}", r.row) for (k, key), r in self._mirror.pending.items() if k == kind]
        return self._parse("pending", rows, parse)

    def _parse(self, table: str, rows: Iterable[tuple[str, str]], parse: Callable[[dict[str, Any]], T]) -> list[T]:
        out: list[T] = []
        for row_id, text in rows:
            try:
                out.append(parse(json_object(text)))
            except SHAPE_ERRORS as exc:
                self._set_aside(table, row_id, text, f"{type(exc).__name__}: {exc}")
        return out

    def _set_aside(self, table: str, row_id: str, text: str, reason: str) -> None:
        """A row that cannot be read leaves the mirror and moves into ``quarantine``."""
        log.warning("store: skipped an unreadable row", table=table, id=row_id, reason=reason, kept_in="quarantine")
        self._mirror.drop(table, row_id)
        row = (table, row_id, text, reason, self._clock.time())
        self._mirror.quarantine.append(row)
        scope = self.scope
        kind, _, key = row_id.partition(":")
        delete = {"tasks": (DELETE_TASK, (scope, row_id)), "outbox": (DELETE_BOX, (scope, row_id)),
                  "pending": (DELETE_PENDING, (scope, kind, key))}.get(table)

        async def op(conn: Conn) -> None:
            await conn.execute(INSERT_QUARANTINE, (scope, *row))
            if delete is not None:
                await conn.execute(delete[0], delete[1])

        self._queue(op)

    # --- journal ---------------------------------------------------------------------------

    def journal(self, entries: Iterable[JournalEntry]) -> None:
        """Append decisions; while the database cannot take them they wait in a bounded buffer."""
        rows = [(e.ts, e.session_id, e.kind, e.text, json.dumps(e.data, default=str)) for e in entries]
        if rows:
            self._journal.extend(rows)
            self._wake.set()


async def _rows(conn: Conn, query: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    cur = await conn.execute(query, args)
    return await cur.fetchall()


async def _many(conn: Conn, query: str, params: list[tuple[Any, ...]]) -> None:
    if params:
        async with conn.cursor() as cur:
            await cur.executemany(query, params)

