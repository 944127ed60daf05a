"""Connecting to PostgreSQL: bounded waits, the URL shown without its password, small query helpers.

Shared by the store (:mod:`baton.store_pg`), its listener, the fleet's leases and slots, and
``baton store migrate``: one place that decides how baton connects and what it prints of a URL.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import anyio
import psycopg
from psycopg_pool import AsyncConnectionPool

from baton.store_port import StoreUnreachable

__all__ = [
    "CONNECT_TIMEOUT_S", "Conn", "connect", "is_database_url", "many", "fetch", "open_pool", "say", "shown_url",
]

Conn = psycopg.AsyncConnection[Any]

# Every wait on the database is bounded: connecting, taking a pooled connection, a listener's ping.
CONNECT_TIMEOUT_S = 5.0
# How long the pool retries a lost connection (1, 2, 4 s...) before the next request starts afresh.
POOL_RECONNECT_S = 8.0
# A dead server behind a live-looking TCP connection is noticed within about 25 s.
_KEEPALIVES: dict[str, Any] = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}


def is_database_url(target: str) -> bool:
    """True for a PostgreSQL URL (``postgresql://`` or ``postgres://``)."""
    return target.startswith(("postgresql://", "postgres://"))


def shown_url(url: str) -> str:
    """``url`` without its password (in the user part or the query): what logs and errors print."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}@{host}"
    query = "&".join(item for item in parts.query.split("&") if item.partition("=")[0] != "password")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def say(url: str, exc: BaseException) -> str:
    """An error's first line, with the URL's password (should a driver echo it) blanked."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    parts = urlsplit(url)
    secret = parts.password or dict(parse_qsl(parts.query)).get("password") or ""
    return text.replace(secret, "***") if secret else text


async def connect(url: str) -> Conn:
    """One autocommit connection; :class:`StoreUnreachable` (exit 3) when the server does not answer."""
    try:
        with anyio.fail_after(CONNECT_TIMEOUT_S + 1):
            return await psycopg.AsyncConnection.connect(
                url, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT_S), **_KEEPALIVES)
    except (psycopg.Error, TimeoutError) as exc:
        raise StoreUnreachable(f"cannot reach the database at {shown_url(url)}: {say(url, exc)}") from exc


async def open_pool(url: str) -> AsyncConnectionPool[Conn]:
    """The writer's pool: connections checked before use. The pool's own reconnect backoff doubles
    without a cap, so its attempts are kept short (:data:`POOL_RECONNECT_S`): once they give up, the
    next write asks again from a fresh 1 s backoff, and a database back after a long outage is used
    within seconds, not after the last doubled wait."""
    pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
        url, min_size=1, max_size=3, open=False, timeout=CONNECT_TIMEOUT_S, reconnect_timeout=POOL_RECONNECT_S,
        kwargs={"autocommit": True, "connect_timeout": int(CONNECT_TIMEOUT_S), **_KEEPALIVES},
        check=AsyncConnectionPool.check_connection, name="baton")
    await pool.open(wait=False)
    return pool


async def fetch(conn: Conn, query: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    cur = await conn.execute(query, args)
    return await cur.fetchall()


async def many(conn: Conn, query: str, params: list[tuple[Any, ...]]) -> None:
    if params:
        async with conn.cursor() as cur:
            await cur.executemany(query, params)
