"""A real PostgreSQL server for tests and benchmarks, with nothing to install by hand.

``BATON_TEST_DATABASE_URL`` (a server the user runs) is used when set; otherwise a private
server is started from the PostgreSQL binaries of the ``pgserver`` package, in a directory of
its own, listening on a Unix socket only (no TCP port). Each caller gets a fresh database, so
tests never see each other's rows. A private server can be stopped and started again under a
running fleet (the "database restarted" fault).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import psycopg

if TYPE_CHECKING:
    from pgserver.postgres_server import PostgresServer

__all__ = ["TestPostgres"]


class TestPostgres:
    """The server; :meth:`new_database` gives each test its own database URL."""

    __test__ = False  # not a pytest test class

    def __init__(self, root: Path | None = None, *, env: dict[str, str] | None = None) -> None:
        given = (env if env is not None else dict(os.environ)).get("BATON_TEST_DATABASE_URL")
        self._names = itertools.count(1)
        self._server: PostgresServer | None = None
        self._owned_root: Path | None = None
        if given:
            self.admin_url = given
            return
        if root is None:
            root = self._owned_root = Path(tempfile.mkdtemp(prefix="baton-pg-"))
        root.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset (CI): harmless
            warnings.simplefilter("ignore")
            from pgserver.postgres_server import get_server  # only when baton starts its own server

            self._server = get_server(root / "pgdata", cleanup_mode="stop")
        self.admin_url = self._server.get_uri()

    @property
    def owned(self) -> bool:
        """True when this process started the server (so it may stop and start it)."""
        return self._server is not None

    def new_database(self, prefix: str = "baton_test") -> str:
        """A fresh, empty database on the server; returns its URL."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        parts = urlsplit(self.admin_url)
        return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))

    def stop(self) -> None:
        """Stop the private server (fast shutdown: open connections are cut)."""
        from pgserver.postgres_server import pg_ctl  # type: ignore[attr-defined]  # re-exported by the module
        server = self._require()
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=30)

    def start(self) -> None:
        """Start the private server again, on the same socket."""
        self._require().ensure_postgres_running()

    def _require(self) -> PostgresServer:
        if self._server is None:
            raise RuntimeError("BATON_TEST_DATABASE_URL is a server this process did not start")
        return self._server

    def close(self) -> None:
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._server.cleanup()
            self._server = None
        if self._owned_root is not None:
            shutil.rmtree(self._owned_root, ignore_errors=True)
