"""Chain checks against a real opencode 1.18.33 (fake provider: fake/primary, fake/backup,
fake/third): a misspelt chain model is flagged at attach (``/healthz``), by ``baton doctor`` and
by ``baton config check --opencode-url``; the findings are warnings, never a failing exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from baton.testing.baton_process import BatonProcess
from baton.testing.opencode import OpencodeServer, free_port

pytestmark = pytest.mark.integration

TYPO: dict[str, object] = {
    "agents": {"build": {"model": "fake/backup", "fallback_models": ["fake/primray", "fake/third"]}}}
FLAGGED = "agents.build: fake/primray is not a model opencode knows (did you mean fake/primary?)"


def _config(tmp_path: Path, settings: Mapping[str, object]) -> Path:
    """An oh-my-opencode file in a directory of its own, found through OPENCODE_CONFIG_DIR."""
    directory = tmp_path / "opencode-config"
    directory.mkdir(exist_ok=True)
    path = directory / "oh-my-opencode.json"
    path.write_text(json.dumps(settings), encoding="utf-8")
    return path


def _baton(*args: str, config: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "OPENCODE_CONFIG_DIR": str(config.parent)}
    env.pop("BATON_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "baton", *args], capture_output=True, text=True, env=env,
                          timeout=60, cwd=home)


def test_doctor_and_healthz_flag_an_unknown_chain_model(opencode: OpencodeServer, tmp_path: Path) -> None:
    config = _config(tmp_path, TYPO)
    baton = BatonProcess(opencode.url, tmp_path / "state", config=config).start()
    try:
        code, body = baton.healthz()
        assert code == 200, body
        assert [(w["owner"], w["model"], w["kind"]) for w in body["chain_warnings"]] == [
            ("agents.build", "fake/primray", "unknown-model")]
        doctor = _baton("doctor", "--opencode-url", opencode.url, "--listen", baton.listen,
                        "--state-dir", str(baton.state_dir), config=config, home=tmp_path)
    finally:
        baton.stop()
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    warned = [line for line in doctor.stdout.splitlines() if line.startswith("warn ")]
    assert len(warned) == 1 and FLAGGED in warned[0], doctor.stdout
    assert "FAIL" not in doctor.stdout


def test_doctor_says_all_chain_models_are_known(opencode: OpencodeServer, tmp_path: Path) -> None:
    config = _config(tmp_path, {"agents": {"build": {"model": "fake/primary", "fallback_models": ["fake/backup"]}}})
    doctor = _baton("doctor", "--opencode-url", opencode.url, "--listen", f"127.0.0.1:{free_port()}",
                    "--state-dir", str(tmp_path / "state"), config=config, home=tmp_path)
    assert "ok   chains: all 2 models known and connected" in doctor.stdout, doctor.stdout
    assert "warn " not in doctor.stdout


def test_config_check_with_opencode_url_lists_the_unknown_model(opencode: OpencodeServer, tmp_path: Path) -> None:
    config = _config(tmp_path, TYPO)
    result = _baton("config", "check", str(config), "--opencode-url", opencode.url, config=config, home=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    chain_line = next(i for i, line in enumerate(lines) if line.startswith("chain agents.build:"))
    warnings = [(i, line) for i, line in enumerate(lines) if line.startswith("chain warning:")]
    assert [line for _, line in warnings] == [f"chain warning: {FLAGGED}; fix the name "
                                              "(`opencode models fake` lists the provider's models)"]
    assert warnings[0][0] > chain_line

