"""Hearing other batons: one ``LISTEN`` connection per baton, kept open and re-opened when lost.

Each channel has a handler for its payloads; ``on_connect`` runs after every (re)connect, once
the channels are listened to, so whatever was announced while this baton was not listening is
caught up from the tables (a notification is never queued for a connection that is gone).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import psycopg
import structlog

from baton.store_pg_conn import Conn, connect, say, shown_url
from baton.store_port import StoreError

__all__ = ["LISTEN_PING_S", "RETRY_FIRST_S", "RETRY_MAX_S", "Listener"]

log = structlog.get_logger("baton")

# A silent listener connection is pinged this often, so a server that went away is noticed.
LISTEN_PING_S = 5.0
# Pause before retrying a failed write or a lost listener (doubling up to the max).
RETRY_FIRST_S, RETRY_MAX_S = 0.25, 4.0


class Listener:
    """Calls ``handlers[channel](payload)`` for each notification, until cancelled."""

    def __init__(self, url: str, handlers: dict[str, Callable[[str], None]],
                 on_connect: Callable[[Conn], Awaitable[None]]) -> None:
        self.url = url
        self.handlers = handlers
        self.on_connect = on_connect
        self.problem: str | None = None

    async def run(self) -> None:
        delay = RETRY_FIRST_S
        while True:
            try:
                async with await connect(self.url) as conn:
                    for channel in self.handlers:
                        await conn.execute(f"LISTEN {channel}")
                    await self.on_connect(conn)
                    if self.problem is not None:
                        log.info("store: hearing other batons again", url=shown_url(self.url))
                    self.problem, delay = None, RETRY_FIRST_S
                    await self._hear(conn)
            except (psycopg.Error, StoreError, TimeoutError) as exc:
                if self.problem is None:
                    log.warning("store: lost the database's announcements; reconnecting", url=shown_url(self.url),
                                error=say(self.url, exc))
                self.problem = f"not hearing other batons: {say(self.url, exc)}"
            await anyio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    async def _hear(self, conn: Conn) -> None:
        while True:
            async for note in conn.notifies(timeout=LISTEN_PING_S):
                handler = self.handlers.get(note.channel)
                if handler is not None:
                    handler(note.payload)
            with anyio.fail_after(LISTEN_PING_S):
                await conn.execute("SELECT 1")
