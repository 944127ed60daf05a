"""baton serve's contract with the user: readiness, health, auth, a clean and quick stop."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from baton.testing.baton_process import BatonProcess
from baton.testing.fake_provider import FakeProvider
from baton.testing.opencode import OpencodeServer

pytestmark = pytest.mark.integration


def test_health_and_clean_stop(opencode: OpencodeServer, tmp_path: Path) -> None:
    """Attached: /healthz answers 200 with attached true; SIGTERM ends with exit 0 within 5 s."""
    baton = BatonProcess(opencode.url, tmp_path / "state", settings={}).start()
    code, body = baton.healthz()
    assert code == 200 and body["attached"] is True and body["fallback"] == "active"
    assert any(line.startswith("baton: attached to") for line in baton.stdout)
    view = subprocess.run([sys.executable, "-m", "baton", "status", "--listen", baton.listen,
                           "--state-dir", str(baton.state_dir)], capture_output=True, text=True, timeout=30)
    assert view.returncode == 0 and "attached" in view.stdout and "background tasks" in view.stdout
    doctor = subprocess.run([sys.executable, "-m", "baton", "doctor", "--opencode-url", opencode.url, "--listen",
                             baton.listen, "--state-dir", str(baton.state_dir)], capture_output=True, text=True,
                            timeout=30)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "MCP tools in opencode: connected" in doctor.stdout and "FAIL" not in doctor.stdout
    started = time.monotonic()
    assert baton.stop(timeout=5) == 0
    assert time.monotonic() - started < 5


def test_password_protected_opencode(provider: FakeProvider, tmp_path: Path) -> None:
    """With OPENCODE_SERVER_PASSWORD baton attaches; with a wrong one it exits 3 naming the refusal."""
    with OpencodeServer(provider.url, ("primary", "backup"), password="s3cret") as guarded:
        ok = BatonProcess(guarded.url, tmp_path / "ok", settings={}, env={"OPENCODE_SERVER_PASSWORD": "s3cret"})
        with ok:
            assert ok.healthz()[0] == 200
        wrong = BatonProcess(guarded.url, tmp_path / "wrong", settings={},
                             env={"OPENCODE_SERVER_PASSWORD": "nope"}, extra_args=["--connect-timeout", "2"])
        with pytest.raises(RuntimeError, match="401"):
            wrong.start(timeout=10)
        assert wrong.proc is not None and wrong.proc.returncode == 3


def test_stands_down_when_the_plugin_fallback_is_on(provider: FakeProvider, tmp_path: Path) -> None:
    """oh-my-opencode loaded with its own runtime_fallback on: baton stays passive and says why."""
    plugin = {"plugin": ["oh-my-opencode@4.19.4"]}
    with OpencodeServer(provider.url, ("primary", "backup"), extra_config=plugin, warm=True) as with_plugin:
        # opencode installs the plugin (about 480 MB from npm) at its first request: a minute or more
        # on a loaded machine. Wait for that here, so the bound below is baton's attach alone.
        with with_plugin.client(timeout=240) as client:
            client.get("/path").raise_for_status()
        baton = BatonProcess(with_plugin.url, tmp_path / "state",
                             settings={"runtime_fallback": {"enabled": True}}).start()
        try:
            _, body = baton.healthz()
            assert body["fallback"].startswith("passive")
        finally:
            baton.stop()


def test_sighup_reloads_the_config_and_checks_the_chains_again(opencode: OpencodeServer, tmp_path: Path) -> None:
    """kill -HUP: the new file is read and its chains checked against opencode (/healthz); a broken
    file is reported with its line and column and the running config stays."""
    baton = BatonProcess(opencode.url, tmp_path / "state", settings={}).start()
    try:
        assert baton.healthz()[1]["chain_warnings"] == []
        assert baton.config is not None and baton.proc is not None
        baton.config.write_text('{"agents": {"build": {"fallback_models": ["fake/bakcup"]}}}', encoding="utf-8")
        baton.proc.send_signal(signal.SIGHUP)

        def warned() -> list[dict[str, str]]:
            return [w for w in baton.healthz()[1]["chain_warnings"] if w["model"] == "fake/bakcup"]

        deadline = time.monotonic() + 20
        while not warned() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert warned(), baton.log_tail()
        baton.config.write_text('{"agents": {"build": {"fallback_models": [1]}}}', encoding="utf-8")
        baton.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while "config not reloaded" not in baton.log_tail() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert f"{baton.config}:1:" in baton.log_tail()
        assert baton.proc.poll() is None and warned()  # still running, on the last good config
    finally:
        baton.stop()
