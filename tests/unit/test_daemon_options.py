"""``baton serve``'s start-up decisions that need no opencode: listen address, credentials, MCP address."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from baton.daemon import ServeOptions, StartupError, host_names, mcp_address, serve, split_credentials


def test_credentials_are_taken_out_of_the_url() -> None:
    assert split_credentials("http://127.0.0.1:4096") == ("http://127.0.0.1:4096", None)
    assert split_credentials("http://me:p%40ss@127.0.0.1:4096/x") == ("http://127.0.0.1:4096/x", ("me", "p@ss"))
    assert split_credentials("http://:pw@[::1]:4096") == ("http://[::1]:4096", ("opencode", "pw"))


def test_a_non_loopback_listen_needs_allow_remote(tmp_path: Path) -> None:
    options = ServeOptions(opencode_url="http://127.0.0.1:9", listen="0.0.0.0:0", state_dir=tmp_path)
    with pytest.raises(StartupError, match="--allow-remote") as caught:
        anyio.run(serve, options)
    assert caught.value.exit_code == 2
    assert not (tmp_path / "token").exists()


def test_the_mcp_address_is_one_opencode_can_reach() -> None:
    assert mcp_address("127.0.0.1", 4097, "http://127.0.0.1:4096") == "127.0.0.1:4097"
    assert mcp_address("0.0.0.0", 4097, "http://127.0.0.1:4096") == "127.0.0.1:4097"
    assert mcp_address("::", 4097, "http://localhost:4096") == "[::1]:4097"
    assert mcp_address("192.0.2.7", 4097, "http://127.0.0.1:4096") == "192.0.2.7:4097"


def test_host_names_for_a_wildcard_listen_include_the_machine() -> None:
    import socket

    assert socket.gethostname().lower() in host_names("0.0.0.0")
    assert host_names("127.0.0.1") == frozenset()
    assert host_names("devbox.lan") == frozenset({"devbox.lan"})


def test_a_store_from_a_newer_baton_is_refused_before_any_network_wait(tmp_path: Path) -> None:
    import sqlite3

    from baton.store import StoreTooNew

    with sqlite3.connect(tmp_path / "baton.db") as db:
        db.execute("PRAGMA user_version = 999")
    options = ServeOptions(opencode_url="http://127.0.0.1:9", state_dir=tmp_path, listen="127.0.0.1:0",
                           connect_timeout=30)
    started = time.monotonic()
    with pytest.raises(StoreTooNew, match="newer baton"):
        anyio.run(serve, options)
    assert time.monotonic() - started < 5, "the store is checked before waiting for opencode"


def test_a_state_dir_that_cannot_be_created_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    options = ServeOptions(opencode_url="http://127.0.0.1:9", state_dir=tmp_path / "file" / "state",
                           listen="127.0.0.1:0")
    with pytest.raises(StartupError, match="cannot create") as caught:
        anyio.run(serve, options)
    assert caught.value.exit_code == 2


def test_a_heartbeat_timeout_below_opencode_s_beat_is_refused(tmp_path: Path) -> None:
    options = ServeOptions(opencode_url="http://127.0.0.1:9", state_dir=tmp_path, heartbeat_timeout=3)
    with pytest.raises(StartupError, match="at least 15 s") as caught:
        anyio.run(serve, options)
    assert caught.value.exit_code == 2
