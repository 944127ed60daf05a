"""The store's ``pending`` table: durable intents, what baton must finish after a restart.

A row is keyed by (``kind``, ``key``) and holds JSON, e.g. kind ``resend``, key a session id: a
re-send the fallback decided and had not seen reach opencode yet (spec §7 rule 8). Writing
``None`` forgets the row. Like every table, it goes through the store's mirror: a full disk or a
deleted file loses nothing, and :meth:`~baton.store.Store.heal` writes it back.

Mixed into :class:`~baton.store.Store` (the methods use its connection, mirror and write path).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

from baton.clock import Clock
from baton.store_mirror import Mirror, PendingRow

__all__ = ["PENDING_KEY", "PENDING_MIGRATION", "PendingTable", "persist_pending"]

PENDING_MIGRATION = """
    CREATE TABLE pending (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        row TEXT NOT NULL,
        updated REAL NOT NULL,
        PRIMARY KEY (kind, key)
    );
"""
# How a quarantined pending row is named (``kind:key``), as an SQL expression over the table.
PENDING_KEY = "kind || ':' || key"
_UPSERT_PENDING = (
    "INSERT INTO pending(kind, key, row, updated) VALUES (?, ?, ?, ?) "
    "ON CONFLICT(kind, key) DO UPDATE SET row = excluded.row, updated = excluded.updated"
)

T = TypeVar("T")


class _Host(Protocol):
    """What the mixin needs of :class:`~baton.store.Store`."""

    readonly: bool
    _clock: Clock
    _mirror: Mirror
    _db: sqlite3.Connection

    def _write(self, work: Callable[[sqlite3.Connection], object]) -> bool: ...

    def _set_aside(self, table: str, row_id: str, text: str, reason: str) -> None: ...

    def _parse(
        self, table: str, rows: Iterable[tuple[Any, Any]], parse: Callable[[dict[str, Any]], T]
    ) -> list[T]: ...


def persist_pending(db: sqlite3.Connection, mirror: Mirror) -> None:
    """The file's pending rows become the mirror's (a heal's rewrite)."""
    db.execute("DELETE FROM pending")
    db.executemany(_UPSERT_PENDING, [r.params(k) for k, r in mirror.pending.items()])


class PendingTable:
    """``put_pending`` / ``load_pending`` of the store."""

    def put_pending(self: _Host, kind: str, key: str, row: dict[str, Any] | None, now: float | None = None) -> None:
        """Record ``row`` as the pending intent ``(kind, key)``, or forget it (None). Never raises."""
        entry = self._mirror.put_pending(kind, key, row, self._clock.time() if now is None else now)
        if entry is None:
            self._write(lambda db: db.execute("DELETE FROM pending WHERE kind = ? AND key = ?", (kind, key)))
        else:
            self._write(lambda db: db.execute(_UPSERT_PENDING, entry.params((kind, key))))

    def load_pending(self: _Host, kind: str, parse: Callable[[dict[str, Any]], T]) -> list[T]:
        """The pending rows of ``kind`` through ``parse``; a row it rejects is set aside (quarantine)."""
        if not self.readonly:
            rows = self._mirror.pending_texts(kind)
        else:
            try:
                query = f"SELECT {PENDING_KEY}, row FROM pending WHERE kind = ?"
                rows = self._db.execute(query, (kind,)).fetchall()
            except sqlite3.OperationalError:
                return []  # a store from before the table, which a read-only store does not migrate
        return self._parse("pending", rows, parse)

    def _load_pending_mirror(self: _Host) -> None:
        """At open: the file's pending rows into the mirror (the caller translates sqlite3 errors)."""
        for kind, key, text, updated in self._db.execute("SELECT kind, key, row, updated FROM pending").fetchall():
            try:
                self._mirror.pending[(str(kind), str(key))] = PendingRow(str(text), float(updated))
            except (TypeError, ValueError) as exc:
                self._set_aside("pending", f"{kind}:{key}", str(text), f"bad column: {exc}")

