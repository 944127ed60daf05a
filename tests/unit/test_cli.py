"""The command line: exit codes and messages a user or a script relies on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def baton(*args: str, home: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_STATE_HOME": str(home / "state")}
    env.pop("OPENCODE_CONFIG_DIR", None)
    return subprocess.run([sys.executable, "-m", "baton", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=home)


def test_config_check_prints_resolved_chains(tmp_path: Path) -> None:
    """A valid file: exit 0 and the chain of each agent."""
    path = tmp_path / "omo.jsonc"
    path.write_text('{ // comment\n "agents": {"build": {"fallback_models": ["a/b", "c/d"]}},\n}')
    result = baton("config", "check", str(path), home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "a/b" in result.stdout and "c/d" in result.stdout and "build" in result.stdout


def test_config_check_reports_file_line_column_and_key(tmp_path: Path) -> None:
    """A wrong value: exit 2 and one line naming file, line, column and key, no traceback."""
    path = tmp_path / "omo.jsonc"
    path.write_text('{\n  "runtime_fallback": {\n    "max_fallback_attempts": 50\n  }\n}\n')
    result = baton("config", "check", str(path), home=tmp_path)
    assert result.returncode == 2
    assert f"{path}:3:" in result.stderr
    assert "runtime_fallback.max_fallback_attempts" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_schema_is_json_schema(tmp_path: Path) -> None:
    """The schema command prints a JSON Schema that documents runtime_fallback."""
    result = baton("config", "schema", home=tmp_path)
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert "runtime_fallback" in schema["properties"]


def test_serve_with_bad_config_exits_2(tmp_path: Path) -> None:
    """A malformed --config file stops serve before any network wait, with exit code 2."""
    path = tmp_path / "bad.json"
    path.write_text('{"runtime_fallback": {"enabled": "yes"}}')
    result = baton("serve", "--opencode-url", "http://127.0.0.1:9", "--config", str(path), home=tmp_path)
    assert result.returncode == 2
    assert "runtime_fallback.enabled" in result.stderr and "Traceback" not in result.stderr


def test_serve_without_opencode_exits_3(tmp_path: Path) -> None:
    """An unreachable opencode ends serve with exit code 3 after --connect-timeout."""
    result = baton("serve", "--opencode-url", "http://127.0.0.1:9", "--connect-timeout", "0.5", home=tmp_path)
    assert result.returncode == 3
    assert "not reachable" in result.stderr


@pytest.mark.parametrize("listen", ["nonsense", "127.0.0.1:99999", ":80"])
def test_serve_rejects_a_bad_listen_address(tmp_path: Path, listen: str) -> None:
    """--listen must be HOST:PORT; anything else is an argument error (exit 2)."""
    result = baton("serve", "--listen", listen, home=tmp_path)
    assert result.returncode == 2
    assert "--listen" in result.stderr


def test_explain_without_a_store_says_so(tmp_path: Path) -> None:
    """explain before any serve ran: a clear message, exit 2."""
    result = baton("explain", home=tmp_path)
    assert result.returncode == 2
    assert "no store" in result.stderr


def test_doctor_without_opencode_says_what_to_do(tmp_path: Path) -> None:
    """doctor with nothing running: exit 1, and each failing line carries a hint."""
    result = baton("doctor", "--opencode-url", "http://127.0.0.1:9", "--listen", "127.0.0.1:9", home=tmp_path)
    assert result.returncode == 1
    assert "FAIL opencode at http://127.0.0.1:9" in result.stdout and "opencode serve --port 4096" in result.stdout


@pytest.mark.parametrize("command", [("tasks",), ("explain",), ("status",), ("tasks", "show", "bg_1")])
def test_a_store_from_a_newer_baton_is_a_clear_error_in_every_reader(tmp_path: Path, command: tuple[str, ...]) -> None:
    import sqlite3

    state = tmp_path / "state"
    state.mkdir()
    with sqlite3.connect(state / "baton.db") as db:
        db.execute("PRAGMA user_version = 999")
    result = baton(*command, "--state-dir", str(state), home=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "newer baton" in result.stderr and "Traceback" not in result.stderr
