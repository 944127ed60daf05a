"""``baton store``: the store's own commands (``baton store migrate``).

Apart from :mod:`baton.cli` so that the CLI module stays one screenful per job. ``serve``
applies migrations at start anyway; running them alone lets an operator upgrade a fleet's
database once, before the batons restart, and see what changed.
"""

from __future__ import annotations

import os
import sys

import anyio
import cyclopts

from baton.store_pg_conn import connect, is_database_url, shown_url
from baton.store_pg_schema import SCHEMA_VERSION, migrate
from baton.store_port import StoreError, StoreTooNew

__all__ = ["migrate_database", "store_app"]

store_app = cyclopts.App(name="store", help="The store: PostgreSQL schema migrations.")


async def migrate_database(url: str) -> tuple[int, int]:
    """Bring the database at ``url`` to this baton's schema; returns (before, after)."""
    if not is_database_url(url):
        raise StoreError(f"not a postgresql:// URL: {shown_url(url)!r}")
    async with await connect(url) as conn:
        before, after = await migrate(conn)
    if before > SCHEMA_VERSION:
        raise StoreTooNew(f"the database at {shown_url(url)} was written by a newer baton (schema {before}, this "
                          f"baton knows {SCHEMA_VERSION}); upgrade baton")
    return before, after


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
    before, after = anyio.run(migrate_database, target)
    where = shown_url(target)
    line = f"{where}: schema {after} (was {before})" if after != before else f"{where}: already at schema {after}"
    sys.stdout.write(line + "\n")
    return 0
