"""baton's HTTP face against a real opencode: the token, readiness, credentials, a clean log."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import httpx2
import pytest

from baton.testing.baton_process import BatonProcess
from baton.testing.fake_provider import FakeProvider
from baton.testing.opencode import OpencodeServer

pytestmark = pytest.mark.integration


def test_only_healthz_answers_without_the_token(opencode: OpencodeServer, tmp_path: Path) -> None:
    """Every endpoint but /healthz refuses a request without the token; /healthz reveals only
    ``attached``; the token file is private; opencode's MCP calls carry the token."""
    with BatonProcess(opencode.url, tmp_path / "state", settings={}) as baton:
        token_file = baton.state_dir / "token"
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
        base = f"http://{baton.listen}"
        for method, path in [("GET", "/status"), ("GET", "/tasks"), ("GET", "/tasks/bg_x"),
                             ("POST", "/tasks/bg_x/cancel"), ("POST", "/mcp")]:
            response = httpx2.request(method, base + path, timeout=5)
            assert response.status_code == 401, (method, path, response.text)
        rebinding = httpx2.post(base + "/mcp", headers={**baton.headers, "Host": "evil.example"}, timeout=5)
        assert rebinding.status_code == 421  # also with the token: a rebinding page could not have it anyway
        code, minimal = baton.healthz(authed=False)
        assert code == 200 and minimal == {"attached": True}
        code, details = baton.healthz()
        assert details["tools"] == "connected" and details["store"] is None
        with opencode.client() as c:
            assert c.get("/mcp").json()["baton"]["status"] == "connected"


def test_ready_means_the_tools_are_connected(opencode: OpencodeServer, tmp_path: Path) -> None:
    """The "attached" line comes only once opencode has connected baton's tools: a prompt sent
    then reaches the model with them."""
    with BatonProcess(opencode.url, tmp_path / "state", settings={}) as baton:
        with opencode.client() as c:
            status = c.get("/mcp").json()["baton"]["status"]
        assert status == "connected"
        assert any("tools connected" in line for line in baton.stdout)


def test_credentials_in_the_url_are_used_and_never_shown(provider: FakeProvider, tmp_path: Path) -> None:
    with OpencodeServer(provider.url, ("primary", "backup"), password="pw-in-url") as guarded:
        url = guarded.url.replace("http://", "http://opencode:pw-in-url@")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCODE_SERVER_")}
        baton = BatonProcess(url, tmp_path / "state", settings={}, env=env)
        baton.env = env
        with baton:
            assert baton.healthz()[0] == 200
            assert baton.status()["opencode_url"] == guarded.url
        shown = "\n".join(baton.stdout) + baton.log_path.read_text(encoding="utf-8")
        assert "pw-in-url" not in shown


def test_the_log_on_a_pipe_is_pure_json_through_a_stop(opencode: OpencodeServer, tmp_path: Path) -> None:
    """Every stderr line is one JSON object, also the libraries' lines and a SIGTERM mid-request."""
    baton = BatonProcess(opencode.url, tmp_path / "state", settings={}).start()
    httpx2.get(f"http://{baton.listen}/status", headers={"Host": "evil.example"}, timeout=5)
    assert baton.stop(timeout=10) == 0
    lines = [line for line in baton.log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert lines
    for line in lines:
        assert isinstance(json.loads(line), dict), line
    assert "Traceback" not in baton.log_path.read_text(encoding="utf-8")
