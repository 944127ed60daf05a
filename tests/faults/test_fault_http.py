"""Fault class "endpoints answering without the token": every route of baton's HTTP face, asked
without the token, with a wrong one, from a foreign Host and from a foreign Origin, answers no data."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fault_helpers import (
    CHAIN,
    FaultTable,
    _opencode,  # noqa: F401 - the fixture
    _provider,  # noqa: F401 - the fixture
)

import baton
from baton.testing.baton_process import BatonProcess
from baton.testing.opencode import OpencodeServer

pytestmark = pytest.mark.integration

REFUSED = (401, 403, 421)
PUBLIC = "/healthz"
"""Reached without the token by design: its minimal answer, or a bare 405 for another method, is no data."""
_ROUTE = re.compile(r"""Route\(\s*["'](/[^"']*)["']""")
KNOWN = {"/healthz", "/status", "/tasks", "/tasks/{task_id}", "/tasks/{task_id}/cancel", "/mcp"}


def routes() -> set[str]:
    """Every path baton's modules declare a ``Route`` for: a route added later is covered without
    editing this test."""
    found: set[str] = set()
    for module in Path(baton.__file__).parent.rglob("*.py"):
        if "testing" not in module.parts:
            found |= set(_ROUTE.findall(module.read_text(encoding="utf-8")))
    return found


def variants(baton: BatonProcess) -> list[tuple[str, dict[str, str]]]:
    """The four ways in: no token, a wrong one, and the right one from a foreign Host or Origin."""
    token = {"Authorization": f"Bearer {baton.token}"}
    return [
        ("no token", {}),
        ("wrong token", {"Authorization": "Bearer " + "x" * len(baton.token)}),
        ("foreign Host", {**token, "Host": f"evil.example:{baton.port}"}),
        ("foreign Origin", {**token, "Origin": "http://evil.example"}),
    ]


def answered_with_data(path: str, how: str, response: httpx2.Response) -> str | None:
    """Why ``response`` gives something away, or None when it refuses (or is the minimal /healthz)."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    minimal = response.status_code in (200, 503) and isinstance(body, dict) and set(body) == {"attached"}
    if path == PUBLIC and how in ("no token", "wrong token") and minimal:
        return None
    refused = response.status_code in REFUSED or (path == PUBLIC and response.status_code == 405)
    if refused and (body in ("", "Method Not Allowed") or (isinstance(body, dict) and set(body) <= {"error"})):
        return None
    return f"{response.status_code} {str(body)[:200]}"


@pytest.mark.timeout(120)
def test_endpoints_without_the_token(fault_table: FaultTable, opencode: OpencodeServer, tmp_path: Path) -> None:
    declared = routes()
    assert declared >= KNOWN, f"routes not found in baton's modules: {KNOWN - declared}"
    leaks: list[str] = []
    requests = 0
    with BatonProcess(opencode.url, tmp_path / "state", settings=CHAIN) as baton:
        # With the token the same requests do answer: the refusals below are the guard's doing.
        assert baton.get("/status").status_code == 200 and baton.get("/tasks").status_code == 200
        assert {"state", "store", "tools"} <= set(baton.healthz()[1])
        base = f"http://{baton.listen}"
        mcp_body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        for path in sorted(declared):
            url = base + re.sub(r"\{[^}]+\}", "bg_fault0000", path)
            for method in ("GET", "POST", "DELETE") if path == "/mcp" else ("GET", "POST"):
                for how, headers in variants(baton):
                    extra = {"accept": "application/json, text/event-stream"} if path == "/mcp" else {}
                    response = httpx2.request(method, url, headers={**extra, **headers}, timeout=5,
                                              json=mcp_body if method == "POST" and path == "/mcp" else None)
                    requests += 1
                    why = answered_with_data(path, how, response)
                    if why is not None:
                        leaks.append(f"{method} {path} ({how}): {why}")
    print(f"\nendpoints: {requests} requests over {sorted(declared)}")
    fault_table.record("endpoints answering without the token", requests, requests - len(leaks), "\n".join(leaks))
