"""The gate between a granted task and its child: with a shared store, a slot of the fleet first.

The scheduler grants a task a slot of its key by its own count (its limits, its FIFO queues). With
one baton that count is the whole truth (:class:`LocalSlots`). With several batons sharing a
PostgreSQL store it is only this baton's share, so :class:`FleetSlots` claims the slot in the
database (:mod:`baton.store_pg_slots`) when a task starts holding one — seen in the task rows the
scheduler saves — and the job that creates or prompts the child waits until the claim is granted
(:meth:`FleetSlots.admit`). A task that stops holding its slot (ended, or retried on another key)
releases the claim, which grants the next one in the fleet at once.

Degrading: while the database cannot be reached, a waiting task is admitted by the local count
alone (logged, and in ``/healthz``), and its claim is made once the database answers again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import anyio
import structlog

from baton.store_port import StoreError

__all__ = ["SLOT_POLL_S", "FleetSlots", "LocalSlots", "SlotGate", "SlotLedger"]

log = structlog.get_logger("baton")

SLOT_POLL_S = 2.0
"""A waiting claim is checked at least this often (a notification missed while reconnecting)."""
_HOLDING = frozenset({"starting", "running"})  # TaskStatus values of SLOT_HOLDING, as the rows hold them


class SlotGate(Protocol):
    @property
    def problem(self) -> str | None:
        """None while slots are counted as they should be; else why not."""

    def note(self, task_id: str, row: Mapping[str, Any]) -> None:
        """A task row the scheduler saved: claim or release the task's slot."""

    async def admit(self, task_id: str, key: str | None) -> bool:
        """Wait until the task may use its slot; False when it stopped holding one meanwhile."""

    async def run(self) -> None:
        """Its own background work while serve runs (none for one baton)."""


class SlotLedger(Protocol):
    """The database side (:class:`baton.store_pg.PgStore`); each call raises StoreError on failure."""

    def listen(self, channel: str, handler: Callable[[str], None]) -> None: ...

    async def claim_slot(self, task_id: str, key: str, limit: int) -> bool: ...

    async def slot_granted(self, task_id: str) -> bool | None: ...

    async def release_slot(self, task_id: str) -> None: ...

    async def regrant_slots(self, key: str) -> None: ...


class LocalSlots:
    """One baton: the scheduler's own count is the fleet's."""

    problem: str | None = None

    def note(self, task_id: str, row: Mapping[str, Any]) -> None:
        return None

    async def admit(self, task_id: str, key: str | None) -> bool:
        return True

    async def run(self) -> None:
        return None


class FleetSlots:
    """Claims, waits for and releases fleet slots, in the order the scheduler granted them."""

    def __init__(self, ledger: SlotLedger, limit_of: Callable[[str], int], channel: str) -> None:
        self._ledger = ledger
        self._limit_of = limit_of
        self._held: dict[str, str] = {}  # task → key: claimed, granted or not
        self._ready: dict[str, asyncio.Event] = {}  # set once granted (or released)
        self._ops: deque[tuple[str, str, str]] = deque()  # ("claim" | "release", task, key), in order
        self._wake = asyncio.Event()
        self.problem: str | None = None
        ledger.listen(channel, self._announced)

    def note(self, task_id: str, row: Mapping[str, Any]) -> None:
        key, holding = row.get("key"), row.get("status") in _HOLDING
        current = self._held.get(task_id)
        if holding and isinstance(key, str) and key:
            if current == key:
                return
            if current is not None:
                self._ops.append(("release", task_id, current))
            self._claim(task_id, key)
        elif current is not None:
            del self._held[task_id]
            self._ready.pop(task_id, asyncio.Event()).set()  # a waiting admit returns False
            self._ops.append(("release", task_id, current))
        self._wake.set()

    def _claim(self, task_id: str, key: str) -> None:
        self._held[task_id] = key
        self._ready[task_id] = asyncio.Event()
        self._ops.append(("claim", task_id, key))
        self._wake.set()

    async def admit(self, task_id: str, key: str | None) -> bool:
        if task_id not in self._held:
            if key is None:
                return True
            self._claim(task_id, key)  # a task resumed after a restart or a takeover: its claim may exist
        ready = self._ready.get(task_id)
        if ready is not None:
            await ready.wait()
        return task_id in self._held

    def _announced(self, key: str) -> None:
        if any(k == key for t, k in self._held.items() if not self._ready[t].is_set()):
            self._wake.set()

    async def run(self) -> None:
        """Carry out claims and releases in order; re-check waiting claims on each announcement."""
        while True:
            with anyio.move_on_after(SLOT_POLL_S):
                await self._wake.wait()
            self._wake.clear()
            try:
                await self._work()
            except StoreError as exc:
                self._degrade(exc)
                await anyio.sleep(SLOT_POLL_S)
                self._wake.set()

    async def _work(self) -> None:
        while self._ops:
            kind, task_id, key = self._ops[0]
            if kind == "claim":
                if self._held.get(task_id) == key and await self._ledger.claim_slot(task_id, key, self._limit_of(key)):
                    self._granted(task_id)
            else:
                await self._ledger.release_slot(task_id)
            self._ops.popleft()
        waiting = {t: k for t, k in self._held.items() if not self._ready[t].is_set()}
        for key in set(waiting.values()):
            await self._ledger.regrant_slots(key)
        for task_id in waiting:
            if await self._ledger.slot_granted(task_id):
                self._granted(task_id)
        if self.problem is not None:
            log.info("fleet slots: the database answers again; slots are counted for the fleet")
            self.problem = None

    def _granted(self, task_id: str) -> None:
        ready = self._ready.get(task_id)
        if ready is not None:
            ready.set()

    def _degrade(self, exc: StoreError) -> None:
        """No database: admit every waiting task by this baton's own count; claims are retried."""
        if self.problem is None:
            log.warning("fleet slots: the database is not answering; tasks start by this baton's own limits "
                        "until it does", error=str(exc))
        self.problem = f"fleet slots not counted: {exc}"
        for ready in self._ready.values():
            ready.set()
