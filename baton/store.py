"""The SQLite store: model health (shared cooldowns) and the decision journal.

One writer (the engine loop), WAL so that ``baton status`` / ``baton explain`` can read
while ``baton serve`` writes. Migrations are numbered and tracked in ``PRAGMA
user_version``. sqlite3 errors are translated to :class:`StoreError` at this boundary.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["JournalEntry", "Store", "StoreError"]

_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE model_health (
        model TEXT PRIMARY KEY,
        until REAL NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        updated REAL NOT NULL
    );
    CREATE TABLE journal (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        session_id TEXT,
        kind TEXT NOT NULL,
        text TEXT NOT NULL,
        data TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX journal_session ON journal(session_id, id);
    """,
    # Background tasks and their notification outbox: whole rows as JSON (the scheduler's
    # ``to_row``), with the columns the CLI filters on pulled out.
    """
    CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        parent_session_id TEXT NOT NULL,
        status TEXT NOT NULL,
        row TEXT NOT NULL,
        updated REAL NOT NULL
    );
    CREATE TABLE outbox (
        id TEXT PRIMARY KEY,
        parent_session_id TEXT NOT NULL,
        state TEXT NOT NULL,
        row TEXT NOT NULL
    );
    """,
)
# The journal is for explaining recent decisions, not an archive.
JOURNAL_KEEP = 20_000


class StoreError(Exception):
    """The state directory could not be opened, read or written."""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    ts: float
    session_id: str | None
    kind: str
    text: str
    data: dict[str, Any]


@contextmanager
def _translate(what: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"{what}: {exc}") from exc


class Store:
    """baton's durable state under ``--state-dir``."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        with _translate(f"cannot open the store at {path}"):
            if readonly:
                self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(path, timeout=5.0, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._migrate()
        self._writes = 0

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
            self._db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- model health ----------------------------------------------------------------------

    def cooldowns(self, now: float) -> list[tuple[str, float, str]]:
        """Models still cooling at ``now``: (model, until, reason), soonest end first."""
        with _translate("reading cooldowns"):
            rows = self._db.execute(
                "SELECT model, until, reason FROM model_health WHERE until > ? ORDER BY until", (now,)
            ).fetchall()
        return [(str(m), float(u), str(r)) for m, u, r in rows]

    def save_cooldown(self, model: str, until: float, reason: str, now: float) -> None:
        with _translate("saving a cooldown"):
            self._db.execute(
                "INSERT INTO model_health(model, until, reason, updated) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(model) DO UPDATE SET until = max(until, excluded.until), "
                "reason = excluded.reason, updated = excluded.updated",
                (model, until, reason, now),
            )

    # --- tasks and outbox ------------------------------------------------------------------

    def save_tasks(
        self, rows: Iterable[tuple[str, dict[str, Any]]], outbox: Iterable[dict[str, Any]], now: float
    ) -> None:
        """Upsert task rows and outbox rows in one transaction: the scheduler's durable state."""
        tasks = [(tid, str(row.get("parent_session_id", "")), str(row.get("status", "")),
                  json.dumps(row, separators=(",", ":")), now) for tid, row in rows]
        boxes = [(str(row["id"]), str(row.get("parent_session_id", "")), str(row.get("state", "")),
                  json.dumps(row, separators=(",", ":"))) for row in outbox]
        with _translate("saving tasks"):
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT INTO tasks(id, parent_session_id, status, row, updated) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT(id) DO UPDATE SET status = excluded.status, row = excluded.row, "
                    "updated = excluded.updated", tasks)
                self._db.executemany(
                    "INSERT INTO outbox(id, parent_session_id, state, row) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(id) DO UPDATE SET state = excluded.state, row = excluded.row", boxes)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def forget_tasks(self, task_ids: Iterable[str]) -> None:
        """Drop ended tasks and their notification rows (the scheduler's history cap)."""
        ids = [(tid,) for tid in task_ids]
        with _translate("forgetting tasks"):
            self._db.executemany("DELETE FROM tasks WHERE id = ?", ids)
            self._db.executemany("DELETE FROM outbox WHERE json_extract(row, '$.task_id') = ?", ids)

    def load_tasks(self) -> list[dict[str, Any]]:
        with _translate("reading tasks"):
            rows = self._db.execute("SELECT row FROM tasks").fetchall()
        return [json.loads(r) for (r,) in rows]

    def load_outbox(self, *, include_done: bool = False) -> list[dict[str, Any]]:
        """Rows not yet delivered or dropped (the ones a restart must still send), or all of them."""
        query = "SELECT row FROM outbox"
        if not include_done:
            query += " WHERE state NOT IN ('delivered', 'dropped')"
        with _translate("reading the outbox"):
            rows = self._db.execute(query).fetchall()
        return [json.loads(r) for (r,) in rows]

    # --- journal ---------------------------------------------------------------------------

    def journal(self, entries: Iterable[JournalEntry]) -> None:
        rows = [(e.ts, e.session_id, e.kind, e.text, json.dumps(e.data, default=str)) for e in entries]
        if not rows:
            return
        with _translate("writing the journal"):
            self._db.executemany(
                "INSERT INTO journal(ts, session_id, kind, text, data) VALUES (?, ?, ?, ?, ?)", rows
            )
            self._writes += len(rows)
            if self._writes >= 1000:
                self._writes = 0
                self._db.execute(
                    "DELETE FROM journal WHERE id <= (SELECT max(id) FROM journal) - ?", (JOURNAL_KEEP,)
                )

    def read_journal(self, session_id: str | None = None, limit: int = 200) -> list[JournalEntry]:
        """The newest ``limit`` entries (of one session, or all), oldest first."""
        query = "SELECT ts, session_id, kind, text, data FROM journal"
        args: tuple[Any, ...] = ()
        if session_id is not None:
            query += " WHERE session_id = ?"
            args = (session_id,)
        query += " ORDER BY id DESC LIMIT ?"
        with _translate("reading the journal"):
            rows = self._db.execute(query, (*args, limit)).fetchall()
        return [JournalEntry(ts, sid, kind, text, json.loads(data)) for ts, sid, kind, text, data in rows[::-1]]
