"""What the engine needs of a store, whichever database is behind it.

Two stores implement it: :class:`baton.store.Store` (SQLite in the state directory, the default)
and :class:`baton.store_pg.PgStore` (PostgreSQL, shared by a fleet of batons). Both answer every
read from an in-memory copy and never raise on a write: a write the database does not take is
kept and written back later, and ``problem`` says why meanwhile (``/healthz``). ``run`` is the
store's own background work while ``baton serve`` runs (healing, writing, listening).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypeVar, overload

from baton.errors import BatonError

__all__ = ["CoolingRow", "JournalEntry", "StoreError", "StorePort", "StoreTooNew", "StoreUnreachable"]

T = TypeVar("T")


class StoreError(BatonError):
    """The store could not be opened, read or written."""

    exit_code = 2


class StoreTooNew(StoreError):
    """The store was written by a newer baton: reading it could misread rows, writing could break them."""


class StoreUnreachable(StoreError):
    """The database server did not answer at start (its URL is shown without the password)."""

    exit_code = 3


@dataclass(frozen=True, slots=True)
class JournalEntry:
    ts: float
    session_id: str | None
    kind: str
    text: str
    data: dict[str, Any]


class CoolingRow(NamedTuple):
    """A model cooling down, as the store keeps it."""

    model: str
    until: float
    reason: str
    source: str


class StorePort(Protocol):
    """baton's durable state, as the engine, the executors and the attach sequence use it."""

    @property
    def problem(self) -> str | None:
        """None while every write is taken; else why not (the data is kept meanwhile)."""
        ...

    def cooling(self, now: float) -> list[CoolingRow]: ...

    def save_cooldown(self, model: str, until: float, reason: str, now: float, source: str = "configured") -> None: ...

    def save_tasks(
        self, rows: Iterable[tuple[str, dict[str, Any]]], outbox: Iterable[dict[str, Any]], now: float
    ) -> None: ...

    def forget_tasks(self, task_ids: Iterable[str]) -> None: ...

    @overload
    def load_tasks(self) -> list[dict[str, Any]]: ...
    @overload
    def load_tasks(self, parse: Callable[[dict[str, Any]], T]) -> list[T]: ...

    @overload
    def load_outbox(self, *, include_done: bool = False) -> list[dict[str, Any]]: ...
    @overload
    def load_outbox(self, parse: Callable[[dict[str, Any]], T], *, include_done: bool = False) -> list[T]: ...

    def journal(self, entries: Iterable[JournalEntry]) -> None: ...

    def put_pending(self, kind: str, key: str, row: dict[str, Any] | None, now: float | None = None) -> None: ...

    def load_pending(self, kind: str, parse: Callable[[dict[str, Any]], T]) -> list[T]: ...

    def watch_cooldowns(self, on_cooldown: Callable[[CoolingRow], object]) -> None:
        """Call ``on_cooldown`` for each cooldown another baton writes (a single baton: never)."""
        ...

    async def run(self) -> None:
        """The store's background work while serve runs; returns only when cancelled."""
        ...

    async def fleet(self) -> dict[str, Any] | None:
        """For ``baton status``: this baton's instance, who drives each opencode server, and each
        one's tasks by status; None for a store only this baton uses."""
        ...
