"""baton's HTTP face: the token, and the Host/Origin rules that a token alone cannot give."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from baton.auth import (
    TokenError,
    bearer_matches,
    dashboard_cookie,
    dashboard_cookie_matches,
    host_allowed,
    load_token,
    origin_allowed,
    read_token,
)
from baton.server import Guard, standby_app

TOKEN = "s3cret-token"


def _app() -> TestClient:
    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"authenticated": request.state.authenticated})

    async def secret(_: Request) -> JSONResponse:
        return JSONResponse({"secret": "task results"})

    async def page(_: Request) -> JSONResponse:
        return JSONResponse({"page": "dashboard"})

    app = Starlette(routes=[Route("/healthz", healthz), Route("/tasks", secret, methods=["GET", "POST"]),
                            Route("/", page), Route("/dashboard/stream", page, methods=["GET", "POST"])])
    return TestClient(Guard(app, TOKEN, frozenset({"devbox"})), base_url="http://127.0.0.1:4097")


def test_token_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    first = load_token(tmp_path / "state", {})
    assert load_token(tmp_path / "state", {}) == first and len(first) >= 32
    assert stat.S_IMODE(os.stat(tmp_path / "state" / "token").st_mode) == 0o600
    assert read_token(tmp_path / "state", {}) == first


def test_env_token_wins_and_writes_nothing(tmp_path: Path) -> None:
    assert load_token(tmp_path, {"BATON_TOKEN": "from-env"}) == "from-env"
    assert not (tmp_path / "token").exists()
    assert read_token(tmp_path, {"BATON_TOKEN": "from-env"}) == "from-env"


def test_an_empty_token_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("")
    with pytest.raises(TokenError, match="empty or unreadable"):
        load_token(tmp_path, {})


def test_a_state_dir_that_cannot_exist_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(TokenError, match="cannot create the token file"):
        load_token(tmp_path / "file" / "state", {})


def test_bearer_matching() -> None:
    assert bearer_matches(f"Bearer {TOKEN}", TOKEN) and bearer_matches(f"bearer {TOKEN}", TOKEN)
    assert not bearer_matches(None, TOKEN) and not bearer_matches(TOKEN, TOKEN)
    assert not bearer_matches("Bearer wrong", TOKEN) and not bearer_matches(f"Basic {TOKEN}", TOKEN)


@pytest.mark.parametrize("host", ["127.0.0.1:4097", "localhost:4097", "[::1]:4097", "0.0.0.0:4097",
                                  "10.1.2.3:4097", "devbox:4097", "LOCALHOST"])
def test_hosts_that_cannot_be_rebound_are_allowed(host: str) -> None:
    assert host_allowed(host, frozenset({"devbox"}))


@pytest.mark.parametrize("host", [None, "", "evil.example:4097", "localhost.evil.example", "127.0.0.1.nip.io:4097"])
def test_foreign_hosts_are_refused(host: str | None) -> None:
    assert not host_allowed(host, frozenset({"devbox"}))


def test_origin_rules() -> None:
    assert origin_allowed(None, "127.0.0.1:4097")
    assert origin_allowed("http://127.0.0.1:4097", "127.0.0.1:4097")
    assert not origin_allowed("http://evil.example", "127.0.0.1:4097")
    assert not origin_allowed("http://localhost:3000", "127.0.0.1:4097")
    assert not origin_allowed("null", "127.0.0.1:4097")


def test_every_endpoint_but_healthz_needs_the_token() -> None:
    client = _app()
    refused = client.get("/tasks")
    assert refused.status_code == 401 and "secret" not in refused.text
    assert refused.headers["www-authenticate"] == "Bearer"
    assert client.post("/tasks", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/tasks", headers={"Authorization": f"Bearer {TOKEN}"}).json() == {"secret": "task results"}
    assert client.get("/healthz").json() == {"authenticated": False}
    assert client.get("/healthz", headers={"Authorization": f"Bearer {TOKEN}"}).json() == {"authenticated": True}


def test_foreign_host_and_cross_site_origin_are_refused_even_with_the_token() -> None:
    client = _app()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/tasks", headers={**auth, "Host": "evil.example:4097"}).status_code == 421
    assert client.get("/healthz", headers={"Host": "evil.example:4097"}).status_code == 421
    cross = client.post("/tasks", headers={**auth, "Origin": "http://evil.example"})
    assert cross.status_code == 403 and "secret" not in cross.text
    same = client.get("/tasks", headers={**auth, "Origin": "http://127.0.0.1:4097"})
    assert same.status_code == 200


def test_the_dashboard_link_trades_the_token_for_a_cookie_that_opens_only_the_dashboard() -> None:
    client = _app()
    login = client.get(f"/?token={TOKEN}", follow_redirects=False)
    assert login.status_code == 303 and login.headers["location"] == "/"
    cookie = login.headers["set-cookie"]
    assert cookie.startswith("baton_dashboard_4097=") and TOKEN not in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age" not in cookie
    jar = {"Cookie": f"baton_dashboard_4097={dashboard_cookie(TOKEN)}"}
    assert client.get("/", headers=jar).json() == {"page": "dashboard"}
    assert client.get("/dashboard/stream", headers=jar).status_code == 200
    assert client.post("/dashboard/stream", headers=jar).status_code == 401  # read-only: GET alone
    assert client.get("/tasks", headers=jar).status_code == 401  # not the API
    assert client.get("/", headers={"Cookie": f"baton_dashboard_9999={dashboard_cookie(TOKEN)}"}).status_code == 401


def test_a_wrong_token_in_the_link_sets_no_cookie() -> None:
    refused = _app().get("/?token=guess", follow_redirects=False)
    assert refused.status_code == 401 and "set-cookie" not in refused.headers


def test_dashboard_cookie_matching() -> None:
    value = dashboard_cookie(TOKEN)
    assert value != TOKEN and value == dashboard_cookie(TOKEN) and value != dashboard_cookie("other")
    assert dashboard_cookie_matches(f"a=1; baton_dashboard_1={value}", "baton_dashboard_1", TOKEN)
    assert not dashboard_cookie_matches(f"baton_dashboard_1={value}x", "baton_dashboard_1", TOKEN)
    assert not dashboard_cookie_matches(f"baton_dashboard_2={value}", "baton_dashboard_1", TOKEN)
    assert not dashboard_cookie_matches(None, "baton_dashboard_1", TOKEN)


def test_a_standby_s_dashboard_address_says_who_drives() -> None:
    health: dict[str, object] = {"state": "standby", "driver": "devbox:4097", "opencode": "http://127.0.0.1:4096"}
    client = TestClient(standby_app(lambda: health, token=TOKEN), base_url="http://127.0.0.1:4097")
    assert client.get("/").status_code == 401
    login = client.get(f"/?token={TOKEN}", follow_redirects=False)
    assert login.status_code == 303
    page = client.get("/", headers={"Cookie": login.headers["set-cookie"].split(";")[0]})
    assert page.status_code == 503 and "stands by" in page.text and "devbox:4097" in page.text
