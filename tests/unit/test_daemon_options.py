"""``baton serve``'s start-up decisions that need no opencode: listen address, credentials, MCP address."""

from __future__ import annotations

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
