"""The store's schema: its tables, the migrations that build them, and the statements that write them.

Apart from :mod:`baton.store` so that the shape of the file reads in one place, and because two
write paths share these statements: each write as it happens, and a heal's rewrite of the whole
mirror. Migrations are numbered by position and tracked in ``PRAGMA user_version``: append one,
never edit or reorder one a released baton has run.
"""

from __future__ import annotations

import sqlite3

from baton.store_mirror import QuarantineRow
from baton.store_pending import PENDING_KEY, PENDING_MIGRATION

__all__ = [
    "INSERT_JOURNAL", "MIGRATIONS", "SCHEMA_VERSION", "UPSERT_BOX", "UPSERT_COOLDOWN", "UPSERT_TASK", "migrate",
    "quarantine",
]

MIGRATIONS: tuple[str, ...] = (
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
    # Rows that could not be read, moved aside so that one bad row neither stops a start nor is lost.
    """
    CREATE TABLE quarantine (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        table_name TEXT NOT NULL,
        row_id TEXT NOT NULL,
        row TEXT NOT NULL,
        reason TEXT NOT NULL,
        ts REAL NOT NULL
    );
    """,
    PENDING_MIGRATION,  # durable intents, e.g. a re-send to finish after a restart (store_pending.py)
    # Where a cooldown's end came from (the provider's reset time, or the configured cooldown).
    "ALTER TABLE model_health ADD COLUMN source TEXT NOT NULL DEFAULT 'configured'",
)
SCHEMA_VERSION = len(MIGRATIONS)
"""The ``user_version`` of a file this baton has migrated; a higher one was written by a newer baton."""


def migrate(db: sqlite3.Connection) -> None:
    """Run the migrations ``db`` has not had yet, each in its own transaction with its version number."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")


UPSERT_TASK = (
    "INSERT INTO tasks(id, parent_session_id, status, row, updated) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT(id) DO UPDATE SET status = excluded.status, row = excluded.row, updated = excluded.updated"
)
UPSERT_BOX = (
    "INSERT INTO outbox(id, parent_session_id, state, row) VALUES (?, ?, ?, ?) "
    "ON CONFLICT(id) DO UPDATE SET state = excluded.state, row = excluded.row"
)
UPSERT_COOLDOWN = (
    "INSERT INTO model_health(model, until, reason, updated, source) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT(model) DO UPDATE SET until = max(until, excluded.until), "
    "reason = excluded.reason, updated = excluded.updated, source = excluded.source"
)
INSERT_JOURNAL = "INSERT INTO journal(ts, session_id, kind, text, data) VALUES (?, ?, ?, ?, ?)"
# The column that identifies a row of each table a bad row can come from.
_KEYS = {"tasks": "id", "outbox": "id", "journal": "id", "model_health": "model", "pending": PENDING_KEY}


def quarantine(db: sqlite3.Connection, rows: list[QuarantineRow], *, delete: bool) -> None:
    """Copy bad rows into ``quarantine`` and (``delete``) remove them from where they were."""
    db.executemany("INSERT INTO quarantine(table_name, row_id, row, reason, ts) VALUES (?, ?, ?, ?, ?)", rows)
    if delete:
        for table, row_id, *_ in rows:
            db.execute(f"DELETE FROM {table} WHERE {_KEYS[table]} = ?", (row_id,))
