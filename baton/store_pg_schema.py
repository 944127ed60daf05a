"""The PostgreSQL store's schema: tables, numbered migrations, and the statements that write them.

The tables hold what the SQLite file holds, for a fleet: model health (the cooldowns) is one table
for every baton, so a cooldown one instance learns holds for all; tasks, outbox, pending intents,
the journal and quarantined rows carry a ``scope`` — the opencode server they belong to — so
batons driving different servers share the database without seeing each other's sessions.

Migrations are numbered by position and the number kept in ``baton_meta``; they run in one
transaction under an advisory lock, so two batons starting at once migrate once. Append a
migration, never edit or reorder one a released baton has run.
"""

from __future__ import annotations

from typing import Any

import psycopg

from baton.store_pg_lease import LEASE_MIGRATION
from baton.store_pg_slots import SLOTS_MIGRATION
from baton.store_port import StoreTooNew

__all__ = [
    "COOLDOWN_CHANNEL", "DELETE_BOX", "DELETE_PENDING", "DELETE_TASK", "INSERT_JOURNAL", "INSERT_QUARANTINE",
    "MIGRATIONS", "SCHEMA_VERSION", "UPSERT_BOX", "UPSERT_COOLDOWN", "UPSERT_PENDING", "UPSERT_TASK",
    "migrate", "schema_version",
]

# NOTIFY channel on which every cooldown written is announced to the other batons.
COOLDOWN_CHANNEL = "baton_cooldown"
# pg_advisory_xact_lock key: one migration at a time across the fleet ("baton" in ASCII).
_MIGRATION_LOCK = 0x626174_6F6E

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE model_health (
        model TEXT PRIMARY KEY,
        until DOUBLE PRECISION NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        updated DOUBLE PRECISION NOT NULL,
        source TEXT NOT NULL DEFAULT 'configured',
        origin TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE journal (
        id BIGSERIAL PRIMARY KEY,
        scope TEXT NOT NULL,
        origin TEXT NOT NULL DEFAULT '',
        ts DOUBLE PRECISION NOT NULL,
        session_id TEXT,
        kind TEXT NOT NULL,
        text TEXT NOT NULL,
        data TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX journal_session ON journal(scope, session_id, id);
    CREATE TABLE tasks (
        scope TEXT NOT NULL,
        id TEXT NOT NULL,
        parent_session_id TEXT NOT NULL,
        status TEXT NOT NULL,
        row TEXT NOT NULL,
        updated DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (scope, id)
    );
    CREATE TABLE outbox (
        scope TEXT NOT NULL,
        id TEXT NOT NULL,
        parent_session_id TEXT NOT NULL,
        state TEXT NOT NULL,
        row TEXT NOT NULL,
        task_id TEXT,
        PRIMARY KEY (scope, id)
    );
    CREATE TABLE pending (
        scope TEXT NOT NULL,
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        row TEXT NOT NULL,
        updated DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (scope, kind, key)
    );
    CREATE TABLE quarantine (
        id BIGSERIAL PRIMARY KEY,
        scope TEXT NOT NULL,
        table_name TEXT NOT NULL,
        row_id TEXT NOT NULL,
        row TEXT NOT NULL,
        reason TEXT NOT NULL,
        ts DOUBLE PRECISION NOT NULL
    );
    """,
    LEASE_MIGRATION,  # who drives each opencode server (store_pg_lease.py)
    SLOTS_MIGRATION,  # task slots counted for the whole fleet (store_pg_slots.py)
    "CREATE INDEX journal_by_scope ON journal(scope, id)",  # the journal's pruning, per opencode server
)
SCHEMA_VERSION = len(MIGRATIONS)
"""The schema number of a database this baton has migrated; a higher one was written by a newer baton."""

UPSERT_TASK = (
    "INSERT INTO tasks(scope, id, parent_session_id, status, row, updated) VALUES (%s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (scope, id) DO UPDATE SET status = excluded.status, row = excluded.row, updated = excluded.updated"
)
UPSERT_BOX = (
    "INSERT INTO outbox(scope, id, parent_session_id, state, row, task_id) VALUES (%s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (scope, id) DO UPDATE SET state = excluded.state, row = excluded.row"
)
UPSERT_PENDING = (
    "INSERT INTO pending(scope, kind, key, row, updated) VALUES (%s, %s, %s, %s, %s) "
    "ON CONFLICT (scope, kind, key) DO UPDATE SET row = excluded.row, updated = excluded.updated"
)
# A cooldown never shortens: the reason and source follow the end that wins. The statement returns
# the row as it now stands, which is what the NOTIFY announces.
UPSERT_COOLDOWN = (
    "INSERT INTO model_health AS h(model, until, reason, updated, source, origin) VALUES (%s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (model) DO UPDATE SET "
    "until = GREATEST(h.until, excluded.until), "
    "reason = CASE WHEN excluded.until >= h.until THEN excluded.reason ELSE h.reason END, "
    "source = CASE WHEN excluded.until >= h.until THEN excluded.source ELSE h.source END, "
    "origin = CASE WHEN excluded.until >= h.until THEN excluded.origin ELSE h.origin END, "
    "updated = excluded.updated "
    "RETURNING model, until, reason, source, origin"
)
INSERT_JOURNAL = (
    "INSERT INTO journal(scope, origin, ts, session_id, kind, text, data) VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
INSERT_QUARANTINE = (
    "INSERT INTO quarantine(scope, table_name, row_id, row, reason, ts) VALUES (%s, %s, %s, %s, %s, %s)"
)
DELETE_TASK = "DELETE FROM tasks WHERE scope = %s AND id = %s"
DELETE_BOX = "DELETE FROM outbox WHERE scope = %s AND id = %s"
DELETE_PENDING = "DELETE FROM pending WHERE scope = %s AND kind = %s AND key = %s"


async def schema_version(conn: psycopg.AsyncConnection[Any]) -> int:
    """The database's schema number; 0 for a database baton has never used."""
    cur = await conn.execute("SELECT to_regclass('baton_meta') IS NOT NULL")
    row = await cur.fetchone()
    if not row or not row[0]:
        return 0
    cur = await conn.execute("SELECT value FROM baton_meta WHERE key = 'schema'")
    found = await cur.fetchone()
    return int(found[0]) if found else 0


async def migrate(conn: psycopg.AsyncConnection[Any], shown: str, known: int = SCHEMA_VERSION) -> tuple[int, int]:
    """Run the migrations the database has not had, in one transaction under the fleet's migration
    lock; returns (version before, version after). A database newer than ``known`` is refused
    (:class:`StoreTooNew`; ``shown`` is its URL without the password)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        await conn.execute("CREATE TABLE IF NOT EXISTS baton_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        before = await schema_version(conn)
        if before > known:
            raise StoreTooNew(f"the database at {shown} was written by a newer baton (schema {before}, this baton "
                              f"knows {known}); upgrade baton or use another database")
        if before == known:
            return before, before
        for script in MIGRATIONS[before:known]:
            await conn.execute(script)
        await conn.execute(
            "INSERT INTO baton_meta(key, value) VALUES ('schema', %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(known),))
        return before, known
