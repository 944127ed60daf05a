"""baton's own credential, and who may talk to its HTTP face.

One bearer token guards every endpoint but a minimal ``/healthz``. It comes from
``BATON_TOKEN`` or from ``<state dir>/token`` (created at first start, mode 0600), so the CLI
on the same machine finds it the way the daemon does, and opencode gets it as a header of
baton's MCP registration. The ``Host`` and ``Origin`` rules stop what a token cannot: a web
page reaching the port through DNS rebinding or a cross-site request.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from baton.errors import BatonError

__all__ = [
    "TOKEN_ENV",
    "TokenError",
    "bearer_matches",
    "dashboard_cookie",
    "dashboard_cookie_matches",
    "host_allowed",
    "is_loopback",
    "load_token",
    "origin_allowed",
    "read_token",
    "token_matches",
]

TOKEN_ENV = "BATON_TOKEN"
TOKEN_FILE = "token"


class TokenError(BatonError):
    """The token file could not be read or created."""


def read_token(state_dir: Path, env: Mapping[str, str]) -> str | None:
    """The token a client should present: ``BATON_TOKEN``, else the state dir's file, else None."""
    if env.get(TOKEN_ENV):
        return env[TOKEN_ENV]
    try:
        return (state_dir / TOKEN_FILE).read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def load_token(state_dir: Path, env: Mapping[str, str]) -> str:
    """The daemon's token: ``BATON_TOKEN``, else the state dir's file, created at first start."""
    if env.get(TOKEN_ENV):
        return env[TOKEN_ENV]
    path = state_dir / TOKEN_FILE
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        token = read_token(state_dir, {})
        if token is None:
            raise TokenError(f"{path} is empty or unreadable; delete it to get a new token") from None
        return token
    except OSError as exc:
        raise TokenError(f"cannot create the token file {path}: {exc.strerror or exc}") from exc
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(token + "\n")
    return token


def bearer_matches(header: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time."""
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    return scheme.lower() == "bearer" and token_matches(value.strip(), token)


def token_matches(given: str, token: str) -> bool:
    """``given`` is the token, compared in constant time (a header's, or the dashboard link's)."""
    return hmac.compare_digest(given.encode(), token.encode())


def dashboard_cookie(token: str) -> str:
    """The dashboard's cookie value: derived from the token, so the cookie opens the page but is
    no bearer token (a copy of it cannot call the API or the tools)."""
    return hmac.new(token.encode(), b"baton dashboard", hashlib.sha256).hexdigest()


def dashboard_cookie_matches(cookie_header: str | None, name: str, token: str) -> bool:
    """Whether the ``Cookie`` header carries cookie ``name`` with the token's dashboard value."""
    expected = dashboard_cookie(token).encode()
    for pair in (cookie_header or "").split(";"):
        key, _, value = pair.strip().partition("=")
        if key == name and hmac.compare_digest(value.encode(), expected):
            return True
    return False


def _hostname(netloc: str) -> str:
    """``host`` of ``host:port`` / ``[v6]:port``, lower case, without brackets."""
    return (urlsplit(f"//{netloc}").hostname or "").lower()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (the default, private listen)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_allowed(host_header: str | None, names: frozenset[str]) -> bool:
    """A ``Host`` that cannot be a DNS-rebinding name: an IP literal, ``localhost``, or a name
    baton was told it is reached by (``names``). A rebinding page always sends its own domain."""
    if not host_header:
        return False
    host = _hostname(host_header)
    return bool(host) and (host == "localhost" or _is_ip(host) or host in names)


def origin_allowed(origin: str | None, host_header: str | None) -> bool:
    """No ``Origin`` (not a browser), or the page's own origin: a cross-site request is refused."""
    if origin is None:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and bool(host_header) and parts.netloc.lower() == str(host_header).lower()
