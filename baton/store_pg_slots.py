"""Task slots for the whole fleet: a concurrency limit of 2 means 2 running across every baton.

Each baton's scheduler still queues and grants its own tasks (its limits hold locally, and it
keeps FIFO order per key); before a granted task's child is created or prompted, the baton claims
a slot of the task's key here and waits until the claim is granted. Claims are rows; granting is
one transaction per key under an advisory lock: count the granted claims, grant the oldest waiting
ones (``seq`` order: FIFO per key across the fleet) up to the limit, ``NOTIFY`` the key. Nothing is
coordinated in memory. Claims belong to a scope (an opencode server): a standby that takes over
inherits them; those of a scope whose lease lapsed more than :data:`DEAD_DRIVER_GRACE_S` ago with
nobody taking over stop counting (their tasks are unwatched, and the slots must not leak).
"""

from __future__ import annotations

from baton.store_pg_conn import Conn, fetch

__all__ = ["DEAD_DRIVER_GRACE_S", "SLOTS_MIGRATION", "SLOT_CHANNEL", "claim", "is_granted", "regrant", "release"]

SLOT_CHANNEL = "baton_slots"
DEAD_DRIVER_GRACE_S = 60.0

SLOTS_MIGRATION = """
    CREATE TABLE slot_claims (
        seq BIGSERIAL NOT NULL,
        scope TEXT NOT NULL,
        task_id TEXT NOT NULL,
        key TEXT NOT NULL,
        lim INTEGER NOT NULL,
        claimed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        granted_at TIMESTAMPTZ,
        PRIMARY KEY (scope, task_id)
    );
    CREATE INDEX slot_claims_by_key ON slot_claims(key, seq);
"""


async def claim(conn: Conn, scope: str, task_id: str, key: str, limit: int) -> bool:
    """Ask for a slot of ``key`` for ``task_id`` (kept if already asked); True once granted."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO slot_claims(scope, task_id, key, lim) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (scope, task_id) DO NOTHING", (scope, task_id, key, limit))
        await _grant(conn, key)
    return await is_granted(conn, scope, task_id) is True


async def is_granted(conn: Conn, scope: str, task_id: str) -> bool | None:
    """Whether the task's claim is granted; None when it has none."""
    found = await fetch(conn, "SELECT granted_at IS NOT NULL FROM slot_claims WHERE scope = %s AND task_id = %s",
                        (scope, task_id))
    return None if not found else bool(found[0][0])


async def release(conn: Conn, scope: str, task_id: str) -> None:
    """The task no longer holds (or waits for) a slot: the next claim of its key is granted at once."""
    async with conn.transaction():
        gone = await fetch(conn, "DELETE FROM slot_claims WHERE scope = %s AND task_id = %s RETURNING key",
                           (scope, task_id))
        if gone:
            await _grant(conn, str(gone[0][0]))


async def regrant(conn: Conn, key: str) -> None:
    """Grant what can be granted for ``key`` (a lapsed driver's claims stop counting with time)."""
    async with conn.transaction():
        await _grant(conn, key)


async def _grant(conn: Conn, key: str) -> None:
    """Inside a transaction: grant the oldest waiting claims of ``key`` up to its limit, then announce."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"baton:slot:{key}",))
    claims = await fetch(
        conn,
        "SELECT c.scope, c.task_id, c.lim, c.granted_at IS NOT NULL FROM slot_claims c "
        "JOIN leases l ON l.scope = c.scope "
        "WHERE c.key = %s AND l.expires_at > now() - make_interval(secs => %s) ORDER BY c.seq",
        (key, DEAD_DRIVER_GRACE_S))
    held = sum(1 for *_, granted in claims if granted)
    chosen: list[tuple[str, str]] = []
    for scope, task_id, limit, granted in claims:
        if granted:
            continue
        if limit and held >= limit:
            break  # FIFO: nobody overtakes the oldest waiting claim
        chosen.append((scope, task_id))
        held += 1
    for scope, task_id in chosen:
        await conn.execute("UPDATE slot_claims SET granted_at = now() WHERE scope = %s AND task_id = %s",
                           (scope, task_id))
    if chosen:
        await conn.execute("SELECT pg_notify(%s, %s)", (SLOT_CHANNEL, key))
