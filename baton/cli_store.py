"""The commands that read the store directly: ``baton explain`` (the journal) and ``baton store migrate``.

Apart from :mod:`baton.cli` so that the CLI module stays one screenful per job. ``explain`` reads
the SQLite file under ``--state-dir``, or the PostgreSQL journal (``--store``/``BATON_STORE_URL``)
a fleet shares. ``serve`` applies migrations at start anyway; running them alone lets an operator
upgrade a fleet's database once, before the batons restart, and see what changed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import cyclopts

from baton.daemon import default_state_dir
from baton.store import Store
from baton.store_mirror import SHAPE_ERRORS, json_object
from baton.store_port import JournalEntry, StoreError

__all__ = ["explain", "migrate_database", "read_journal", "store_app"]

store_app = cyclopts.App(name="store", help="The store: PostgreSQL schema migrations.")


async def migrate_database(url: str) -> tuple[int, int]:
    """Bring the database at ``url`` to this baton's schema; returns (before, after)."""
    from baton.store_pg_conn import connect, is_database_url, shown_url  # psycopg: only when asked for
    from baton.store_pg_schema import migrate

    if not is_database_url(url):
        raise StoreError(f"not a postgresql:// URL: {shown_url(url)!r}")
    async with await connect(url) as conn:
        return await migrate(conn, shown_url(url))


@store_app.command(name="migrate")
def migrate_cmd(url: str | None = None) -> int:
    """Apply the PostgreSQL store's migrations and exit (``baton serve --store`` applies them too).

    Parameters
    ----------
    url
        The database, ``postgresql://user:password@host/db`` (default: BATON_STORE_URL). Its
        password is never printed.
    """
    target = url or os.environ.get("BATON_STORE_URL")
    if not target:
        raise StoreError("give the database: baton store migrate URL, or set BATON_STORE_URL")
    from baton.store_pg_conn import shown_url

    before, after = anyio.run(migrate_database, target)
    where = shown_url(target)
    line = f"{where}: schema {after} (was {before})" if after != before else f"{where}: already at schema {after}"
    sys.stdout.write(line + "\n")
    return 0


async def read_journal(url: str, session: str | None, limit: int) -> list[JournalEntry]:
    """The newest ``limit`` entries of a PostgreSQL store's journal (of one session, or all), oldest first."""
    from baton.store_pg_conn import connect, fetch

    query = "SELECT ts, session_id, kind, text, data FROM journal"
    args: tuple[Any, ...] = ()
    if session is not None:
        query += " WHERE session_id = %s"
        args = (session,)
    async with await connect(url) as conn:
        rows = await fetch(conn, query + " ORDER BY id DESC LIMIT %s", (*args, limit))
    entries = []
    for ts, sid, kind, text, data in reversed(rows):
        try:
            details = json_object(data)
        except SHAPE_ERRORS:
            details = {}
        entries.append(JournalEntry(float(ts), sid, str(kind), str(text), details))
    return entries


def explain(session: str | None = None, *, state_dir: Path | None = None, store: str | None = None,
            limit: int = 50) -> int:
    """Explain baton's decisions: the journal of one session, or of all.

    Parameters
    ----------
    session
        A session id (``ses_...``); omit for every session.
    state_dir
        The store to read.
    store
        A ``postgresql://`` URL: read the journal a fleet shares there (default BATON_STORE_URL).
    limit
        How many entries to show.
    """
    url = store or os.environ.get("BATON_STORE_URL")
    if url:
        entries = anyio.run(read_journal, url, session, limit)
    else:
        path = (state_dir or default_state_dir(dict(os.environ))) / "baton.db"
        if not path.exists():
            raise StoreError(f"no store at {path}: has `baton serve` run with this --state-dir?")
        entries = Store(path, readonly=True).read_journal(session, limit)
    if not entries:
        sys.stdout.write("nothing journaled" + (f" for {session}" if session else "") + "\n")
    for e in entries:
        stamp = time.strftime("%H:%M:%S", time.localtime(e.ts))
        who = f" {e.session_id}" if session is None and e.session_id else ""
        sys.stdout.write(f"{stamp}{who} [{e.kind}] {e.text}\n")
    return 0
