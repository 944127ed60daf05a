"""``baton config check`` and the chain checks: offline without ``--opencode-url``; with it and
nothing answering, exit 3 and one line that says the chains were not checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from baton.testing.opencode import free_port

SETTINGS = {"agents": {"build": {"model": "fake/backup", "fallback_models": ["fake/primray"]}}}


def baton(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    env.pop("OPENCODE_CONFIG_DIR", None)
    env.pop("OPENCODE_SERVER_PASSWORD", None)
    return subprocess.run([sys.executable, "-m", "baton", *args], capture_output=True, text=True,
                          env=env, timeout=60, cwd=home)


def test_config_check_without_opencode_url_checks_nothing_against_opencode(tmp_path: Path) -> None:
    path = tmp_path / "omo.json"
    path.write_text(json.dumps(SETTINGS), encoding="utf-8")
    result = baton("config", "check", str(path), home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "fake/primray" in result.stdout
    assert "chain warning" not in result.stdout and "chains:" not in result.stdout


def test_config_check_with_an_unreachable_opencode_exits_3_after_the_chains(tmp_path: Path) -> None:
    path = tmp_path / "omo.json"
    path.write_text(json.dumps(SETTINGS), encoding="utf-8")
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there: refused at once
    result = baton("config", "check", str(path), "--opencode-url", url, home=tmp_path)
    assert result.returncode == 3
    assert "chain agents.build:" in result.stdout
    assert f"opencode at {url}" in result.stderr and "were not checked" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_config_check_help_says_findings_keep_exit_code_0(tmp_path: Path) -> None:
    result = baton("config", "check", "--help", home=tmp_path)
    assert "--opencode-url" in result.stdout and "exit code stays 0" in " ".join(result.stdout.split())
