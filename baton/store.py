"""The SQLite store: model health (shared cooldowns), the decision journal, tasks, outbox, pending intents.

One writer (the engine loop), WAL so that ``baton status`` / ``baton explain`` can read
while ``baton serve`` writes. The tables, their numbered migrations and the write statements
are :mod:`baton.store_schema`. Opening translates sqlite3 errors to :class:`StoreError`; after that the
store degrades instead of raising: writes that fail (full disk) or land in a file that was
deleted keep their data in a :class:`~baton.store_mirror.Mirror`, and :meth:`Store.heal`
writes it back once it can. A row that cannot be read is set aside, not fatal.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, overload

import anyio
import structlog

from baton.clock import Clock, SystemClock
from baton.store_mirror import SHAPE_ERRORS, BoxRow, JournalRow, Mirror, TaskRow, json_object, parse_rows
from baton.store_pending import PendingTable, persist_pending
from baton.store_port import CoolingRow, JournalEntry, StoreError, StoreTooNew
from baton.store_schema import (
    INSERT_JOURNAL,
    SCHEMA_VERSION,
    UPSERT_BOX,
    UPSERT_COOLDOWN,
    UPSERT_TASK,
    migrate,
    quarantine,
)

__all__ = ["CoolingRow", "JournalEntry", "Store", "StoreError", "StoreTooNew"]

log = structlog.get_logger("baton")

# The journal is for explaining recent decisions, not an archive.
JOURNAL_KEEP = 20_000
# How often serve checks the file (deleted, replaced) and retries failed writes.
HEAL_EVERY_S = 1.0
# A heal that failed (the disk is still full) is tried again this many seconds later.
HEAL_RETRY_S = 5.0
# What heal says of a file that went away: when it notices, when rewriting fails, when it worked.
_LOST = {
    "deleted": ("store file was deleted; recreating", "store file was deleted; recreating it failed",
                "the deleted file was recreated and re-persisted"),
    "replaced": ("store file was replaced; rewriting it", "store file was replaced; rewriting it failed",
                 "the replaced file was rewritten with baton's state"),
}

T = TypeVar("T")


@contextmanager
def _translate(what: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"{what}: {exc}") from exc


def _transaction(db: sqlite3.Connection, work: Callable[[sqlite3.Connection], object]) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        work(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise


class Store(PendingTable):
    """baton's durable state under ``--state-dir``.

    Write methods never raise. ``problem`` is None while the file takes every write, else
    why it does not; the daemon calls :meth:`heal` about once a second to notice a deleted or
    replaced file and to write the mirror back. A ``readonly`` store (the CLI) reads the file
    on every call and keeps no mirror.
    """

    def __init__(self, path: Path, *, readonly: bool = False, clock: Clock | None = None) -> None:
        self.path = path
        self.readonly = readonly
        self._clock: Clock = clock or SystemClock()
        """Read only where no caller gives ``now``: the last heal on close, a quarantined row's time."""
        self.problem: str | None = None
        self._mirror = Mirror()
        self._retry_at = 0.0
        self._lost: str | None = None  # "deleted" / "replaced" until the mirror is in the new file
        self._reopen_pending = False  # the connection is to a file that is gone
        self._warned: set[tuple[str, str]] = set()
        self._writes = 0
        self._db = self._connect()
        self._identity = self._stat()
        if not readonly:
            try:
                self._load_mirror()
            except StoreError:
                self._db.close()
                raise

    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            with _translate(f"cannot open the store at {self.path}"):
                db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5.0)
            self._check_version(db)
            return db
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the state directory {self.path.parent}: {exc.strerror or exc}") from exc
        with _translate(f"cannot open the store at {self.path}"):
            db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            try:
                self._check_version(db)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                migrate(db)
            except BaseException:
                db.close()
                raise
        return db

    def _check_version(self, db: sqlite3.Connection) -> None:
        with _translate(f"cannot read the store at {self.path}"):
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            db.close()
            raise StoreTooNew(
                f"{self.path} was written by a newer baton (schema {version}, this baton knows "
                f"{SCHEMA_VERSION}); upgrade baton or use another --state-dir"
            )

    def _stat(self) -> tuple[int, int] | None:
        """(device, inode) of the file, None when there is none: how a deleted or swapped file shows."""
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def _load_mirror(self) -> None:
        with _translate(f"cannot read the store at {self.path}"):
            tasks = self._db.execute("SELECT id, parent_session_id, status, row, updated FROM tasks").fetchall()
            boxes = self._db.execute("SELECT id, parent_session_id, state, row FROM outbox").fetchall()
            cools = self._db.execute("SELECT model, until, reason, updated, source FROM model_health").fetchall()
            self._load_pending_mirror()
        m = self._mirror
        for tid, parent, status, text, updated in tasks:
            try:
                m.tasks[str(tid)] = TaskRow(str(parent), str(status), str(text), float(updated))
            except (TypeError, ValueError) as exc:
                self._set_aside("tasks", str(tid), str(text), f"bad column: {exc}")
        for bid, parent, state, text in boxes:
            m.outbox[str(bid)] = BoxRow.stored(str(parent), str(state), str(text))
        for model, until, reason, updated, source in cools:
            try:
                m.save_cooldown(str(model), float(until), str(reason), float(updated), str(source))
            except (TypeError, ValueError) as exc:
                self._set_aside("model_health", str(model),
                                json.dumps([model, until, reason, updated, source], default=str), f"bad column: {exc}")

    def watch_cooldowns(self, on_cooldown: Callable[[CoolingRow], object]) -> None:
        """Nothing to watch: one baton writes this file."""

    async def fleet(self) -> dict[str, Any] | None:
        """A file only this baton uses: no fleet."""
        return None

    async def run(self) -> None:
        """Once a second: notice a deleted or replaced file, retry writes that failed."""
        while True:
            await anyio.sleep(HEAL_EVERY_S)
            self.heal(self._clock.time())

    def close(self) -> None:
        """Close the file, after one last try to write what it has not taken yet."""
        if self.problem is not None and not self.readonly:
            self._retry_at = 0.0
            self.heal(self._clock.time())
            if self.problem is not None:
                log.warning("store: closing with state that could not be written", problem=self.problem,
                            tasks=len(self._mirror.tasks), journal=len(self._mirror.journal))
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- degrading and healing -------------------------------------------------------------

    def _write(self, work: Callable[[sqlite3.Connection], object]) -> bool:
        """Run one write transaction; a failure degrades the store instead of raising. While
        degraded nothing touches the file (a full disk costs no I/O per event): :meth:`heal` retries."""
        if self.problem is not None:
            return False
        try:
            _transaction(self._db, work)
        except sqlite3.Error as exc:
            self._degrade(f"store write failed: {exc}")
            return False
        return True

    def _degrade(self, problem: str) -> None:
        if self.problem is None:
            log.warning("store degraded: keeping its state in memory until the file takes it again",
                        problem=problem, path=str(self.path))
            self._retry_at = 0.0
        self.problem = problem

    def heal(self, now: float) -> None:
        """Notice a deleted or replaced file, and write the whole mirror back when degraded.

        The daemon calls this about once a second; it never raises. A failed attempt is
        retried :data:`HEAL_RETRY_S` later; a file found gone is acted on at once.
        """
        if self.readonly:
            return
        identity = self._stat()
        if self._lost is None and identity != self._identity:
            self._lost = "deleted" if identity is None else "replaced"
            self._reopen_pending = True
            self._degrade(_LOST[self._lost][0])
            self._retry_at = now
        if self.problem is None or now < self._retry_at:
            return
        try:
            if self._reopen_pending:
                self._reopen()
            _transaction(self._db, self._persist_all)
        except (StoreError, sqlite3.Error) as exc:
            self._retry_at = now + HEAL_RETRY_S
            self.problem = f"{_LOST[self._lost][1] if self._lost else 'store write failed'}: {exc}"
            return
        log.info("store recovered" + (f": {_LOST[self._lost][2]}" if self._lost else ""), path=str(self.path),
                 tasks=len(self._mirror.tasks), journal_lost=self._mirror.journal_dropped)
        self._mirror.written()
        self.problem = None
        self._lost = None

    def _reopen(self) -> None:
        """Open whatever is at ``path`` now (a new file when there is none)."""
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        # The old file's WAL and index are still on disk, and SQLite would replay that WAL into the new file.
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.unlink(f"{self.path}{suffix}")
        self._db = self._connect()
        self._identity = self._stat()  # only now: a closed file's inode number may come back for the new one
        self._reopen_pending = False

    def _persist_all(self, db: sqlite3.Connection) -> None:
        """The file's tasks, outbox and pending become the mirror's; cooldowns, journal, quarantine are added."""
        m = self._mirror
        db.execute("DELETE FROM tasks")
        db.execute("DELETE FROM outbox")
        db.executemany(UPSERT_TASK, [r.params(k) for k, r in m.tasks.items()])
        db.executemany(UPSERT_BOX, [r.params(k) for k, r in m.outbox.items()])
        db.executemany(UPSERT_COOLDOWN, [c.params(k) for k, c in m.cooldowns.items()])
        persist_pending(db, m)
        self._insert_journal(db, list(m.journal))
        # Ids of a file that was replaced mean nothing in the new one: keep the copies, delete nothing.
        quarantine(db, m.quarantine, delete=self._lost is None)

    # --- unreadable rows -------------------------------------------------------------------

    def _set_aside(self, table: str, row_id: str, text: str, reason: str) -> None:
        """Skip a row that cannot be read; a writable store moves it into ``quarantine``."""
        if (table, row_id) in self._warned:
            return
        self._warned.add((table, row_id))
        log.warning("store: skipped an unreadable row", table=table, id=row_id, reason=reason,
                    kept_in=None if self.readonly else "quarantine")
        if self.readonly:
            return
        m = self._mirror
        m.drop(table, row_id)
        m.quarantine.append((table, row_id, text, reason, self._clock.time()))
        if self._write(lambda db: quarantine(db, m.quarantine, delete=True)):
            m.quarantine.clear()

    def _parse(self, table: str, rows: Iterable[tuple[Any, Any]], parse: Callable[[dict[str, Any]], T]) -> list[T]:
        return parse_rows(table, rows, parse, self._set_aside)

    # --- model health ----------------------------------------------------------------------

    def cooldowns(self, now: float) -> list[tuple[str, float, str]]:
        """Models still cooling at ``now``: (model, until, reason), soonest end first."""
        return [(row.model, row.until, row.reason) for row in self.cooling(now)]

    def cooling(self, now: float) -> list[CoolingRow]:
        """Models still cooling at ``now``, with where each end came from; soonest end first."""
        if not self.readonly:
            return self._mirror.cooling(now)
        with _translate("reading cooldowns"):
            # A file an older baton wrote (the CLI does not migrate) has no ``source`` column.
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(model_health)")}
            source = "source" if "source" in columns else "'configured'"
            rows = self._db.execute(
                f"SELECT model, until, reason, {source} FROM model_health WHERE until > ? ORDER BY until", (now,)
            ).fetchall()
        out: list[CoolingRow] = []
        for model, until, reason, origin in rows:
            try:
                out.append(CoolingRow(str(model), float(until), str(reason), str(origin)))
            except (TypeError, ValueError) as exc:
                self._set_aside("model_health", str(model), json.dumps([model, until, reason, origin]),
                                f"bad column: {exc}")
        return out

    def save_cooldown(self, model: str, until: float, reason: str, now: float, source: str = "configured") -> None:
        """Enter or extend ``model``'s cooldown (never shortened); ``source``: where ``until`` came from."""
        self._mirror.save_cooldown(model, until, reason, now, source)
        self._write(lambda db: db.execute(UPSERT_COOLDOWN, (model, until, reason, now, source)))

    # --- tasks and outbox ------------------------------------------------------------------

    def save_tasks(
        self, rows: Iterable[tuple[str, dict[str, Any]]], outbox: Iterable[dict[str, Any]], now: float
    ) -> None:
        """Upsert task rows and outbox rows in one transaction: the scheduler's durable state."""
        tasks, boxes = self._mirror.save_tasks(rows, outbox, now)

        def work(db: sqlite3.Connection) -> None:
            db.executemany(UPSERT_TASK, [r.params(k) for k, r in tasks])
            db.executemany(UPSERT_BOX, [r.params(k) for k, r in boxes])

        self._write(work)

    def forget_tasks(self, task_ids: Iterable[str]) -> None:
        """Drop ended tasks and their notification rows (the scheduler's history cap)."""
        ids = list(task_ids)
        boxes = self._mirror.forget(ids)

        def work(db: sqlite3.Connection) -> None:
            db.executemany("DELETE FROM tasks WHERE id = ?", [(tid,) for tid in ids])
            db.executemany("DELETE FROM outbox WHERE id = ?", [(bid,) for bid in boxes])

        self._write(work)

    @overload
    def load_tasks(self) -> list[dict[str, Any]]: ...
    @overload
    def load_tasks(self, parse: Callable[[dict[str, Any]], T]) -> list[T]: ...
    def load_tasks(self, parse: Callable[[dict[str, Any]], Any] = dict) -> list[Any]:
        """Task rows through ``parse`` (e.g. ``Task.from_row``); a row it rejects is set aside."""
        if not self.readonly:
            return self._parse("tasks", self._mirror.task_texts(), parse)
        with _translate("reading tasks"):
            rows = self._db.execute("SELECT id, row FROM tasks").fetchall()
        return self._parse("tasks", rows, parse)

    @overload
    def load_outbox(self, *, include_done: bool = False) -> list[dict[str, Any]]: ...
    @overload
    def load_outbox(self, parse: Callable[[dict[str, Any]], T], *, include_done: bool = False) -> list[T]: ...
    def load_outbox(self, parse: Callable[[dict[str, Any]], Any] = dict, *, include_done: bool = False) -> list[Any]:
        """Rows not yet delivered or dropped (the ones a restart must still send), or all of them."""
        if not self.readonly:
            return self._parse("outbox", self._mirror.outbox_texts(include_done=include_done), parse)
        query = "SELECT id, row FROM outbox"
        if not include_done:
            query += " WHERE state NOT IN ('delivered', 'dropped')"
        with _translate("reading the outbox"):
            rows = self._db.execute(query).fetchall()
        return self._parse("outbox", rows, parse)

    # --- journal ---------------------------------------------------------------------------

    def journal(self, entries: Iterable[JournalEntry]) -> None:
        """Append decisions; while the file cannot take them they wait in a bounded buffer."""
        rows = [(e.ts, e.session_id, e.kind, e.text, json.dumps(e.data, default=str)) for e in entries]
        if rows and not self._write(lambda db: self._insert_journal(db, rows)):
            self._mirror.buffer_journal(rows)

    def _insert_journal(self, db: sqlite3.Connection, rows: list[JournalRow]) -> None:
        db.executemany(INSERT_JOURNAL, rows)
        self._writes += len(rows)
        if self._writes >= 1000:
            self._writes = 0
            db.execute("DELETE FROM journal WHERE id <= (SELECT max(id) FROM journal) - ?", (JOURNAL_KEEP,))

    def read_journal(self, session_id: str | None = None, limit: int = 200) -> list[JournalEntry]:
        """The newest ``limit`` entries (of one session, or all), oldest first, buffered ones included."""
        query = "SELECT id, ts, session_id, kind, text, data FROM journal"
        args: tuple[Any, ...] = ()
        if session_id is not None:
            query += " WHERE session_id = ?"
            args = (session_id,)
        query += " ORDER BY id DESC LIMIT ?"
        with _translate("reading the journal"):
            rows = self._db.execute(query, (*args, limit)).fetchall()[::-1]
        rows += [(None, *r) for r in self._mirror.journal if session_id is None or r[1] == session_id]
        entries: list[JournalEntry] = []
        for jid, ts, sid, kind, text, data in rows[-limit:] if limit > 0 else ():
            try:
                entries.append(JournalEntry(ts, sid, kind, text, json_object(data)))
            except SHAPE_ERRORS as exc:
                self._set_aside("journal", str(jid), str(data), f"{type(exc).__name__}: {exc}")
        return entries
