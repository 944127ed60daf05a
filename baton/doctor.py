"""``baton doctor``: what stands between the user and a working baton, one check per line.

Each check says what it found and, when something is wrong, what to do. It reads the same
things ``baton serve`` reads (opencode's API, the config files, the store, the running serve)
and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2

from baton.auth import read_token
from baton.clock import SystemClock
from baton.config import ConfigError, load_config
from baton.opencode.client import OpencodeClient, OpencodeError, auth_from_env
from baton.store import Store, StoreError
from baton.testing.opencode import OPENCODE_VERSION

__all__ = ["Check", "run_checks"]


@dataclass(frozen=True, slots=True)
class Check:
    ok: bool
    what: str
    hint: str = ""


def run_checks(opencode_url: str, listen: str, state_dir: Path, env: Mapping[str, str]) -> Iterator[Check]:
    """Run every check in order; later ones are skipped when they need what an earlier one lacked."""
    facts = anyio.run(_opencode_facts, opencode_url, env)
    if "error" in facts:
        yield Check(False, f"opencode at {opencode_url}: {facts['error']}",
                    "start it with `opencode serve --port 4096`, or pass --opencode-url")
    else:
        version = facts["health"].get("version", "?")
        yield Check(True, f"opencode {version} at {opencode_url}, serving {facts['path'].get('directory')}")
        if version != OPENCODE_VERSION:
            yield Check(True, f"note: baton is tested against opencode {OPENCODE_VERSION}")
    directory = facts.get("path", {}).get("directory")
    project = Path(directory) if isinstance(directory, str) else None
    try:
        config = load_config(project, env=env)
    except ConfigError as exc:
        yield Check(False, f"config: {exc}", "fix that value; `baton config check` shows the resolved chains")
        config = None
    if config is not None:
        read = ", ".join(str(p) for p in config.sources) or "none (defaults)"
        yield Check(True, f"config files read: {read}")
        for warning in config.warnings:
            yield Check(True, f"config warning: {warning}")
        if not config.runtime_fallback.enabled:
            yield Check(False, "runtime fallback is disabled", "set runtime_fallback.enabled to true")
        plugins = [p[0] if isinstance(p, list) and p else p for p in facts.get("config", {}).get("plugin") or []]
        if any(isinstance(p, str) and "oh-my-open" in p for p in plugins) and (
            config.runtime_fallback_explicit or config.model_fallback
        ):
            yield Check(False, "oh-my-opencode's own fallback is on: baton stays passive (two handlers would "
                               "abort and re-send twice)",
                        "turn off runtime_fallback/model_fallback for the plugin, or remove the plugin")
    yield from _serve_checks(listen, facts, read_token(state_dir, env))
    yield from _store_checks(state_dir)


async def _opencode_facts(url: str, env: Mapping[str, str]) -> dict[str, Any]:
    async with OpencodeClient(url, auth=auth_from_env(env), timeout=5.0) as client:
        try:
            return {
                "health": await client.get_json("/global/health"),
                "path": await client.path(),
                "config": await client.config(),
                "mcp": await client.get_json("/mcp"),
            }
        except OpencodeError as exc:
            return {"error": str(exc)}


def _serve_checks(listen: str, facts: Mapping[str, Any], token: str | None) -> Iterator[Check]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        health = httpx2.get(f"http://{listen}/healthz", timeout=3.0, headers=headers).json()
    except (httpx2.HTTPError, ValueError):
        yield Check(False, f"no baton serve answers at {listen}",
                    "run `baton serve --opencode-url URL` (or pass --listen where it runs)")
        return
    attached = health.get("attached")
    if "state" not in health:
        yield Check(False, f"baton serve at {listen} did not accept the token (attached: {attached})",
                    "pass the same --state-dir as serve, or set BATON_TOKEN")
        return
    yield Check(bool(attached), f"baton serve at {listen}: {health.get('state')} to {health.get('opencode')}, "
                                f"fallback {health.get('fallback')}",
                "" if attached else f"not ready: {health.get('reason')}; see its log")
    if health.get("store"):
        yield Check(False, f"baton's store is degraded: {health['store']}",
                    "free disk space or fix the state dir; baton keeps deciding from memory meanwhile")
    mcp = facts.get("mcp") or {}
    status = (mcp.get("baton") or {}).get("status") if isinstance(mcp, dict) else None
    yield Check(status == "connected", f"baton's MCP tools in opencode: {status or 'not registered'}",
                "" if status == "connected" else "serve registers them on attach unless --no-register-mcp")


def _store_checks(state_dir: Path) -> Iterator[Check]:
    path = state_dir / "baton.db"
    if not path.exists():
        yield Check(True, f"store: none yet at {path} (serve creates it)")
        return
    try:
        with Store(path, readonly=True) as store:
            cooling = store.cooldowns(SystemClock().time())
    except StoreError as exc:
        yield Check(False, f"store at {path}: {exc}", "check the permissions of --state-dir")
        return
    names = ", ".join(model for model, _, _ in cooling) or "none"
    yield Check(True, f"store at {path}; models cooling down now: {names}")
