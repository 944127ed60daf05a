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
missed. The URL's password is never shown (:func:`baton.store_pg_conn.shown_url`).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar, overload

import anyio
import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from baton import store_pg_slots as slots
from baton.clock import Clock
from baton.store_mirror import (
    SHAPE_ERRORS,
    BoxRow,
    Cooldown,
    JournalRow,
    Mirror,
    PendingRow,
    TaskRow,
    json_object,
    parse_rows,
)
from baton.store_pg_conn import (
    CONNECT_TIMEOUT_S,
    Conn,
    connect,
    fetch,
    many,
    open_pool,
    say,
    shown_url,
)
from baton.store_pg_lease import LeaseLost, fence, release, take, wait_for_lease
from baton.store_pg_listen import RETRY_FIRST_S, RETRY_MAX_S, Listener
from baton.store_pg_schema import (
    COOLDOWN_CHANNEL,
    DELETE_BOX,
    DELETE_PENDING,
    DELETE_TASK,
    INSERT_JOURNAL,
    INSERT_QUARANTINE,
    UPSERT_BOX,
    UPSERT_COOLDOWN,
    UPSERT_PENDING,
    UPSERT_TASK,
    migrate,
)
from baton.store_port import CoolingRow, JournalEntry, StoreError

__all__ = ["PgStore"]

log = structlog.get_logger("baton")

T = TypeVar("T")
# The journal explains recent decisions; each opencode server keeps its newest entries, like SQLite.
JOURNAL_KEEP = 20_000
Op = Callable[[Conn], Awaitable[None]]

class PgStore:
    """baton's durable state in PostgreSQL; open it with :meth:`open`, run :meth:`run` while serving."""

    def __init__(self, url: str, *, scope: str, clock: Clock, instance: str | None = None) -> None:
        self.url = url
        self.scope = scope
        self.instance = instance or f"{socket.gethostname()}:{os.getpid()}"
        self._clock = clock
        self._mirror = Mirror()
        self._write_problem: str | None = None
        self._listener = Listener(url, {COOLDOWN_CHANNEL: self._heard}, self._catch_up)
        self._ops: list[Op] = []
        self._journal: list[JournalRow] = []
        self._wake = asyncio.Event()
        self._resync = False  # the database missed writes: the next flush writes the whole mirror
        self._on_cooldown: Callable[[CoolingRow], object] | None = None
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._lease_s: float | None = None  # set: this baton drives ``scope`` under a lease
        self._lost: LeaseLost | None = None
        self._journal_writes = 0
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
        async with await connect(url) as conn:
            try:
                await migrate(conn, shown_url(url))
                if lease_seconds is not None:
                    await wait_for_lease(conn, scope, store.instance, lease_seconds, on_standby)
                    store._lease_s = lease_seconds
                await store._load(conn)
            except psycopg.Error as exc:
                raise StoreError(f"cannot set up the database at {shown_url(url)}: {say(url, exc)}") from exc
        store._pool = await open_pool(url)
        return store

    async def _load(self, conn: Conn) -> None:
        m, scope = self._mirror, (self.scope,)
        for tid, parent, status, text, updated in await fetch(
                conn, "SELECT id, parent_session_id, status, row, updated FROM tasks WHERE scope = %s", scope):
            m.tasks[tid] = TaskRow(parent, status, text, updated)
        for bid, parent, state, text in await fetch(
                conn, "SELECT id, parent_session_id, state, row FROM outbox WHERE scope = %s", scope):
            m.outbox[bid] = BoxRow.stored(parent, state, text)
        for kind, key, text, updated in await fetch(
                conn, "SELECT kind, key, row, updated FROM pending WHERE scope = %s", scope):
            m.pending[(kind, key)] = PendingRow(text, updated)
        for model, until, reason, updated, source in await fetch(
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
        problems = [p for p in (self._write_problem, self._listener.problem) if p is not None]
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
                tg.start_soon(self._listener.run)
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
                    leases = await fetch(conn, "SELECT scope, holder, EXTRACT(EPOCH FROM expires_at - now())::float8 "
                                               "FROM leases ORDER BY scope", ())
                    counts = await fetch(conn, "SELECT scope, status, count(*) FROM tasks GROUP BY scope, status "
                                               "ORDER BY scope, status", ())
        except (psycopg.Error, PoolTimeout, TimeoutError) as exc:
            return {**view, "error": say(self.url, exc)}
        servers: dict[str, dict[str, Any]] = {}
        for scope, holder, left in leases:
            servers[scope] = {"opencode": scope, "driver": holder, "lease_left_s": round(left, 1), "tasks": {}}
        for scope, status, n in counts:
            servers.setdefault(scope, {"opencode": scope, "driver": None, "lease_left_s": None, "tasks": {}})
            servers[scope]["tasks"][status] = n
        return {**view, "servers": list(servers.values())}

    # --- the fleet's task slots (baton.store_pg_slots), for baton.runtime.fleet_slots ------------

    def listen(self, channel: str, handler: Callable[[str], None]) -> None:
        """Hear ``channel``'s notifications (register before :meth:`run`)."""
        self._listener.handlers[channel] = handler

    async def claim_slot(self, task_id: str, key: str, limit: int) -> bool:
        return await self._slots(lambda conn: slots.claim(conn, self.scope, task_id, key, limit))

    async def slot_granted(self, task_id: str) -> bool | None:
        return await self._slots(lambda conn: slots.is_granted(conn, self.scope, task_id))

    async def release_slot(self, task_id: str) -> None:
        await self._slots(lambda conn: slots.release(conn, self.scope, task_id))

    async def regrant_slots(self, key: str) -> None:
        await self._slots(lambda conn: slots.regrant(conn, key))

    async def _slots(self, work: Callable[[Conn], Awaitable[T]]) -> T:
        """One slot operation on a pooled connection; any failure is a :class:`StoreError`."""
        if self._pool is None:
            raise StoreError("the store is closed")
        try:
            async with self._pool.connection(timeout=CONNECT_TIMEOUT_S) as conn:
                return await work(conn)
        except (psycopg.Error, PoolTimeout) as exc:
            raise StoreError(f"task slots: {say(self.url, exc)}") from exc

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
        journal, self._journal = self._journal, []
        resync = self._resync
        try:
            async with self._pool.connection(timeout=CONNECT_TIMEOUT_S) as conn, conn.transaction():
                if self._lease_s is not None:
                    await fence(conn, self.scope, self.instance)
                if resync:
                    await self._write_all(conn)
                for op in ops:
                    await op(conn)
                if journal:
                    await many(conn, INSERT_JOURNAL, [(self.scope, self.instance, *row) for row in journal])
                    await self._prune_journal(conn, len(journal))
        except LeaseLost as exc:
            self._lost = exc
            log.error("store: this baton lost its lease; its writes are refused", scope=self.scope)
            return False
        except (psycopg.Error, PoolTimeout) as exc:
            self._mirror.buffer_journal(journal)
            self._resync = True  # the mirror holds what the dropped statements would have written
            if self._write_problem is None:
                log.warning("store: the database is not taking writes; deciding from what is known and "
                            "keeping every write until it does", url=shown_url(self.url), error=say(self.url, exc))
            self._write_problem = f"database write failed: {say(self.url, exc)}"
            return False
        self._mirror.quarantine.clear()  # every row set aside was in this transaction or an earlier one
        if resync:
            log.info("store: the database takes writes again; baton's state is written back",
                     url=shown_url(self.url), tasks=len(self._mirror.tasks), journal_lost=self._mirror.journal_dropped)
            self._mirror.written()
            self._resync = False
        self._write_problem = None
        return True

    async def _prune_journal(self, conn: Conn, added: int) -> None:
        """Every thousand entries: keep this scope's newest :data:`JOURNAL_KEEP` (as the SQLite store does)."""
        self._journal_writes += added
        if self._journal_writes < 1000:
            return
        self._journal_writes = 0
        await conn.execute(
            "DELETE FROM journal WHERE scope = %s AND id <= (SELECT id FROM journal WHERE scope = %s "
            "ORDER BY id DESC OFFSET %s LIMIT 1)", (self.scope, self.scope, JOURNAL_KEEP))

    async def _write_all(self, conn: Conn) -> None:
        """The database's rows of this scope become the mirror's; cooldowns and journal are added."""
        m, scope = self._mirror, self.scope
        for table, keep in (("tasks", list(m.tasks)), ("outbox", list(m.outbox))):
            await conn.execute(f"DELETE FROM {table} WHERE scope = %s AND NOT (id = ANY(%s))", (scope, keep))
        await conn.execute("DELETE FROM pending WHERE scope = %s", (scope,))
        await many(conn, UPSERT_TASK, [(scope, *r.params(k)) for k, r in m.tasks.items()])
        await many(conn, UPSERT_BOX, [(scope, *r.params(k), r.task_id) for k, r in m.outbox.items()])
        await many(conn, UPSERT_PENDING, [(scope, *r.params(k)) for k, r in m.pending.items()])
        now = self._clock.time()
        for model, c in m.cooldowns.items():
            if c.until > now:
                await self._upsert_cooldown(conn, model, c)
        await many(conn, INSERT_JOURNAL, [(scope, self.instance, *row) for row in m.journal])
        await many(conn, INSERT_QUARANTINE, [(scope, *row) for row in m.quarantine])

    def _queue(self, op: Op) -> None:
        self._ops.append(op)
        self._wake.set()

    # --- the cooldown listener -------------------------------------------------------------

    async def _catch_up(self, conn: Conn) -> None:
        """Cooldowns written while this baton was not listening (at start, after a loss)."""
        found = await fetch(conn, "SELECT model, until, reason, source, origin FROM model_health WHERE until > %s",
                           (self._clock.time(),))
        for model, until, reason, source, origin in found:
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

    def cooling(self, now: float) -> list[CoolingRow]:
        """Models still cooling at ``now`` (learnt here or by any baton of the fleet), soonest end first."""
        return self._mirror.cooling(now)

    def save_cooldown(self, model: str, until: float, reason: str, now: float, source: str = "configured") -> None:
        """Enter or extend ``model``'s cooldown for the whole fleet (never shortened)."""
        entry = self._mirror.save_cooldown(model, until, reason, now, source)

        async def op(conn: Conn) -> None:
            await self._upsert_cooldown(conn, model, entry)

        self._queue(op)

    async def _upsert_cooldown(self, conn: Conn, model: str, entry: Cooldown) -> None:
        """Write a cooldown and announce the row as it now stands (sent when the transaction commits)."""
        cur = await conn.execute(UPSERT_COOLDOWN, (*entry.params(model), self.instance))
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
        tasks, boxes = self._mirror.save_tasks(rows, outbox, now)
        scope = self.scope

        async def op(conn: Conn) -> None:
            await many(conn, UPSERT_TASK, [(scope, *r.params(k)) for k, r in tasks])
            await many(conn, UPSERT_BOX, [(scope, *r.params(k), r.task_id) for k, r in boxes])

        self._queue(op)

    def forget_tasks(self, task_ids: Iterable[str]) -> None:
        """Drop ended tasks and their notification rows (the scheduler's history cap)."""
        ids = list(task_ids)
        boxes = self._mirror.forget(ids)
        scope = self.scope

        async def op(conn: Conn) -> None:
            await many(conn, DELETE_TASK, [(scope, tid) for tid in ids])
            await many(conn, DELETE_BOX, [(scope, bid) for bid in boxes])

        self._queue(op)

    @overload
    def load_tasks(self) -> list[dict[str, Any]]: ...
    @overload
    def load_tasks(self, parse: Callable[[dict[str, Any]], T]) -> list[T]: ...
    def load_tasks(self, parse: Callable[[dict[str, Any]], Any] = dict) -> list[Any]:
        """Task rows through ``parse`` (e.g. ``Task.from_row``); a row it rejects is set aside."""
        return self._parse("tasks", self._mirror.task_texts(), parse)

    @overload
    def load_outbox(self, *, include_done: bool = False) -> list[dict[str, Any]]: ...
    @overload
    def load_outbox(self, parse: Callable[[dict[str, Any]], T], *, include_done: bool = False) -> list[T]: ...
    def load_outbox(self, parse: Callable[[dict[str, Any]], Any] = dict, *, include_done: bool = False) -> list[Any]:
        """Rows not yet delivered or dropped (the ones a restart must still send), or all of them."""
        return self._parse("outbox", self._mirror.outbox_texts(include_done=include_done), parse)

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
        return self._parse("pending", self._mirror.pending_texts(kind), parse)

    def _parse(self, table: str, rows: Iterable[tuple[str, str]], parse: Callable[[dict[str, Any]], T]) -> list[T]:
        return parse_rows(table, rows, parse, self._set_aside)

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

