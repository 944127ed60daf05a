"""The in-memory copy of what the store was asked to keep.

It exists so that a store whose writes fail (full disk) or whose file went away (deleted,
replaced) loses nothing: :class:`~baton.store.Store` updates the mirror on every write and
rewrites the file from it once writing works again. Rows are kept as the JSON text the file
holds, so a rewrite costs no serialisation and the copy is no bigger than the file's rows.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from baton.store_port import CoolingRow

__all__ = [
    "JOURNAL_BUFFER", "SHAPE_ERRORS", "BoxRow", "Cooldown", "JournalRow", "Mirror", "PendingRow", "QuarantineRow",
    "TaskRow", "json_object", "parse_rows",
]

T = TypeVar("T")

# Journal entries kept while the file cannot take them; the oldest go first beyond this.
JOURNAL_BUFFER = 10_000

# What a parser raises for a row of the wrong shape (AttributeError: a list where a dict belongs).
SHAPE_ERRORS = (KeyError, TypeError, ValueError, AttributeError)

# (ts, session_id, kind, text, data as JSON): a journal row as inserted.
JournalRow = tuple[float, str | None, str, str, str]
# (table_name, row_id, row, reason, ts): a row set aside, not yet written to ``quarantine``.
QuarantineRow = tuple[str, str, str, str, float]


@dataclass(frozen=True, slots=True)
class TaskRow:
    parent_session_id: str
    status: str
    row: str
    updated: float

    @classmethod
    def of(cls, row: dict[str, Any], now: float) -> TaskRow:
        return cls(str(row.get("parent_session_id", "")), str(row.get("status", "")), _dumps(row), now)

    def params(self, task_id: str) -> tuple[str, str, str, str, float]:
        """Values for the ``tasks`` upsert."""
        return task_id, self.parent_session_id, self.status, self.row, self.updated


@dataclass(frozen=True, slots=True)
class BoxRow:
    parent_session_id: str
    state: str
    row: str
    task_id: str | None
    """Kept apart so that forgetting a task finds its notification rows without parsing them."""

    @classmethod
    def of(cls, row: dict[str, Any]) -> BoxRow:
        task_id = row.get("task_id")
        return cls(str(row.get("parent_session_id", "")), str(row.get("state", "")), _dumps(row),
                   None if task_id is None else str(task_id))

    @classmethod
    def stored(cls, parent_session_id: str, state: str, text: str) -> BoxRow:
        """A row read from the file (one that does not parse belongs to no task: it is set aside later)."""
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        task_id = data.get("task_id") if isinstance(data, dict) else None
        return cls(parent_session_id, state, text, None if task_id is None else str(task_id))

    def params(self, box_id: str) -> tuple[str, str, str, str]:
        """Values for the ``outbox`` upsert."""
        return box_id, self.parent_session_id, self.state, self.row


@dataclass(frozen=True, slots=True)
class Cooldown:
    until: float
    reason: str
    updated: float
    source: str = "configured"
    """Where ``until`` came from (the provider's reset time, or the configured cooldown)."""

    def params(self, model: str) -> tuple[str, float, str, float, str]:
        """Values for the ``model_health`` upsert."""
        return model, self.until, self.reason, self.updated, self.source


@dataclass(frozen=True, slots=True)
class PendingRow:
    """A durable intent (``pending`` table): what baton must finish after a restart, as JSON."""

    row: str
    updated: float

    def params(self, key: tuple[str, str]) -> tuple[str, str, str, float]:
        """Values for the ``pending`` upsert; ``key`` is (kind, key)."""
        return key[0], key[1], self.row, self.updated


def parse_rows(table: str, rows: Iterable[tuple[Any, Any]], parse: Callable[[dict[str, Any]], T],
               set_aside: Callable[[str, str, str, str], None]) -> list[T]:
    """Each row's JSON through ``parse``; a row that does not parse goes to ``set_aside`` (table, id, text, why)."""
    out: list[T] = []
    for row_id, text in rows:
        try:
            out.append(parse(json_object(text)))
        except SHAPE_ERRORS as exc:
            set_aside(table, str(row_id), str(text), f"{type(exc).__name__}: {exc}")
    return out


def json_object(text: Any) -> dict[str, Any]:
    """A row's JSON, which must be an object: raises ValueError or TypeError otherwise."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise TypeError(f"a JSON {type(data).__name__} where an object belongs")
    return data


def _dumps(row: dict[str, Any]) -> str:
    return json.dumps(row, separators=(",", ":"))


@dataclass
class Mirror:
    """Tasks, outbox rows, cooldowns and pending intents by key, plus the writes the file has not taken yet."""

    tasks: dict[str, TaskRow] = field(default_factory=dict)
    outbox: dict[str, BoxRow] = field(default_factory=dict)
    cooldowns: dict[str, Cooldown] = field(default_factory=dict)
    pending: dict[tuple[str, str], PendingRow] = field(default_factory=dict)
    journal: deque[JournalRow] = field(default_factory=lambda: deque(maxlen=JOURNAL_BUFFER))
    quarantine: list[QuarantineRow] = field(default_factory=list)
    journal_dropped: int = 0
    """Journal entries that fell out of the full buffer since the last successful rewrite."""

    def save_cooldown(self, model: str, until: float, reason: str, now: float, source: str = "configured") -> Cooldown:
        """Same rule as the SQL upsert: a cooldown never shortens."""
        old = self.cooldowns.get(model)
        entry = Cooldown(max(until, old.until) if old is not None else until, reason, now, source)
        self.cooldowns[model] = entry
        return entry

    def save_tasks(
        self, rows: Iterable[tuple[str, dict[str, Any]]], outbox: Iterable[dict[str, Any]], now: float
    ) -> tuple[list[tuple[str, TaskRow]], list[tuple[str, BoxRow]]]:
        """Keep task and outbox rows (as the scheduler wrote them); returns them as the tables hold them."""
        tasks = [(tid, TaskRow.of(row, now)) for tid, row in rows]
        boxes = [(str(row["id"]), BoxRow.of(row)) for row in outbox]
        self.tasks.update(tasks)
        self.outbox.update(boxes)
        return tasks, boxes

    def cooling(self, now: float) -> list[CoolingRow]:
        """Models still cooling at ``now``, soonest end first."""
        rows = [CoolingRow(k, c.until, c.reason, c.source) for k, c in self.cooldowns.items() if c.until > now]
        return sorted(rows, key=lambda row: row.until)

    def task_texts(self) -> list[tuple[str, str]]:
        """(id, JSON) of every task row."""
        return [(k, r.row) for k, r in self.tasks.items()]

    def outbox_texts(self, *, include_done: bool) -> list[tuple[str, str]]:
        """(id, JSON) of the outbox rows still to deliver, or of all of them."""
        done = () if include_done else ("delivered", "dropped")
        return [(k, r.row) for k, r in self.outbox.items() if r.state not in done]

    def pending_texts(self, kind: str) -> list[tuple[str, str]]:
        """(``kind:key``, JSON) of the pending intents of ``kind``."""
        return [(f"{k}:{key}", r.row) for (k, key), r in self.pending.items() if k == kind]

    def forget(self, task_ids: Iterable[str]) -> list[str]:
        """Drop tasks and their notification rows; returns the ids of the outbox rows dropped."""
        ids = set(task_ids)
        for task_id in ids:
            self.tasks.pop(task_id, None)
        gone = [box_id for box_id, box in self.outbox.items() if box.task_id in ids]
        for box_id in gone:
            del self.outbox[box_id]
        return gone

    def put_pending(self, kind: str, key: str, row: dict[str, Any] | None, now: float) -> PendingRow | None:
        """Record (or, with None, forget) one intent; returns what the file must now hold."""
        if row is None:
            self.pending.pop((kind, key), None)
            return None
        entry = self.pending[(kind, key)] = PendingRow(_dumps(row), now)
        return entry

    def drop(self, table: str, key: str) -> None:
        """Forget a row that was set aside (``table`` as named in the file)."""
        if table == "tasks":
            self.tasks.pop(key, None)
        elif table == "outbox":
            self.outbox.pop(key, None)
        elif table == "model_health":
            self.cooldowns.pop(key, None)
        elif table == "pending":
            kind, _, name = key.partition(":")
            self.pending.pop((kind, name), None)

    def buffer_journal(self, rows: list[JournalRow]) -> None:
        assert self.journal.maxlen is not None
        self.journal_dropped += max(0, len(self.journal) + len(rows) - self.journal.maxlen)
        self.journal.extend(rows)

    def written(self) -> None:
        """The file now holds everything: the pending journal and quarantine rows are done."""
        self.journal.clear()
        self.quarantine.clear()
        self.journal_dropped = 0
