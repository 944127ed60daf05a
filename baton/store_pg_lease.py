"""Who drives an opencode server: a lease in the database, renewed while its baton lives.

Several batons may point at one opencode server; exactly one drives it (decides, re-sends, runs
its tasks) and the others stand by. The lease is a row per scope (the opencode server's URL)
holding the driver's instance name and an expiry in the database's own time, so the machines'
clocks do not matter. The driver renews it every third of its length; a standby tries to take it
as often, and succeeds once it has lapsed (the driver was ``kill -9``-ed, its machine is gone) or
was released (a clean stop). Every write of the driver is fenced by the lease (:func:`fence`):
a baton that lost it cannot commit a decision the new driver also makes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import psycopg
import structlog

from baton.store_port import StoreError

__all__ = ["LEASE_MIGRATION", "LeaseLost", "fence", "holder_of", "release", "take", "wait_for_lease"]

log = structlog.get_logger("baton")

LEASE_MIGRATION = """
    CREATE TABLE leases (
        scope TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL,
        since TIMESTAMPTZ NOT NULL
    );
"""
# Taken when free, lapsed or already ours (then renewed); ``since`` moves only with a new holder.
_TAKE = (
    "INSERT INTO leases AS l(scope, holder, expires_at, since) "
    "VALUES (%s, %s, now() + make_interval(secs => %s), now()) "
    "ON CONFLICT (scope) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at, "
    "since = CASE WHEN l.holder = excluded.holder THEN l.since ELSE excluded.since END "
    "WHERE l.holder = excluded.holder OR l.expires_at < now() "
    "RETURNING holder"
)

Conn = psycopg.AsyncConnection[Any]


class LeaseLost(StoreError):
    """Another baton drives this opencode server now: this one must stop deciding for it."""

    exit_code = 4


async def take(conn: Conn, scope: str, instance: str, seconds: float) -> bool:
    """Take or renew the lease of ``scope`` for ``seconds``; False while another baton holds it."""
    cur = await conn.execute(_TAKE, (scope, instance, seconds))
    return await cur.fetchone() is not None


async def holder_of(conn: Conn, scope: str) -> tuple[str, float] | None:
    """The driver of ``scope`` and the seconds its lease has left (negative: lapsed); None: nobody."""
    cur = await conn.execute(
        "SELECT holder, EXTRACT(EPOCH FROM expires_at - now())::float8 FROM leases WHERE scope = %s", (scope,))
    row = await cur.fetchone()
    return None if row is None else (str(row[0]), float(row[1]))


async def fence(conn: Conn, scope: str, instance: str) -> None:
    """Inside a write transaction: raise :class:`LeaseLost` unless ``instance`` still holds the lease.
    ``FOR SHARE`` keeps a standby from taking it until the transaction ends."""
    cur = await conn.execute(
        "SELECT 1 FROM leases WHERE scope = %s AND holder = %s FOR SHARE", (scope, instance))
    if await cur.fetchone() is None:
        raise LeaseLost(f"another baton drives {scope} now; this one stops deciding for it")


async def release(conn: Conn, scope: str, instance: str) -> None:
    """A clean stop: the lease is free at once for a standby."""
    await conn.execute("DELETE FROM leases WHERE scope = %s AND holder = %s", (scope, instance))


async def wait_for_lease(conn: Conn, scope: str, instance: str, seconds: float,
                         on_standby: Callable[[str], object] | None = None) -> None:
    """Stand by until this baton holds the lease of ``scope`` (tried every third of ``seconds``)."""
    announced = False
    while not await take(conn, scope, instance, seconds):
        if not announced:
            found = await holder_of(conn, scope)
            who = found[0] if found else "another baton"
            log.info("standby: another baton drives this opencode server", scope=scope, driver=who,
                     takeover_within_s=seconds)
            if on_standby is not None:
                on_standby(who)
            announced = True
        await anyio.sleep(seconds / 3)
