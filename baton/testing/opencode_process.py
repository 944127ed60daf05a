"""What one `opencode serve` is started with (config, environment, port) and the child process itself.

The process knows nothing of templates or providers: the harness (`baton.testing.opencode`)
and the template warmer (`baton.testing.opencode_home`) both start opencode through it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx2

__all__ = ["OpencodeProcess", "base_env", "free_port", "opencode_config", "port_taken"]

_LISTENING = b"server listening on"


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the OS may hand it out again; good enough for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_taken(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something is bound to `port` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def opencode_config(
    provider_url: str,
    models: Sequence[str] = ("primary", "backup"),
    *,
    provider_id: str = "fake",
    default_model: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The `opencode.json` for a project whose only provider is the fake one at `provider_url`.

    `extra` is merged in recursively (dicts merge, anything else replaces).
    """
    if not models:
        raise ValueError("opencode_config needs at least one model id")
    default = default_model or models[0]
    config: dict[str, Any] = {
        "$schema": "https://opencode.ai/config.json",
        "provider": {
            provider_id: {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Fake",
                "options": {"baseURL": provider_url, "apiKey": "fake-key"},
                "models": {m: {"name": m} for m in models},
            }
        },
        "enabled_providers": [provider_id],
        "model": f"{provider_id}/{default}",
        "small_model": f"{provider_id}/{default}",
        "autoupdate": False,
        "share": "disabled",
    }
    return _merge(config, extra or {})


def _xdg_env(home: Path) -> dict[str, str]:
    return {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
    }


def base_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The parent environment (proxies, CA certs) minus its OPENCODE_* settings, with an isolated home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCODE_")}
    env.update(_xdg_env(home))
    env["OPENCODE_DISABLE_AUTOUPDATE"] = "1"
    env["OPENCODE_DISABLE_MODELS_FETCH"] = "1"
    env.update(extra or {})
    return env


class OpencodeProcess:
    """One `opencode serve` child in its own process group."""

    def __init__(self, binary: Path, project: Path, home: Path, port: int, env: dict[str, str], log_path: Path) -> None:
        self.binary, self.project, self.home, self.port = binary, project, home, port
        self.env, self.log_path = env, log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self.auth: tuple[str, str] | None = None
        if env.get("OPENCODE_SERVER_PASSWORD"):
            self.auth = (env.get("OPENCODE_SERVER_USERNAME", "opencode"), env["OPENCODE_SERVER_PASSWORD"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "--- opencode output (tail) ---\n" + "\n".join(text.splitlines()[-lines:])

    def start(self, timeout: float) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        cmd = [str(self.binary), "serve", "--hostname", "127.0.0.1", "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()  # a restart appends; look for "listening" after this
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.project,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() kills whatever it spawned
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _listening(self) -> bool:
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(self._log_offset)
                return _LISTENING in fh.read()
        except OSError:
            return False

    def _wait_ready(self, timeout: float) -> None:
        """Poll /global/health until it answers.

        A request that reaches opencode after it bound the port but before it printed
        "server listening" is never answered, so until that line shows up in its
        output each try gets a short timeout and a fresh connection.
        """
        deadline = time.monotonic() + timeout
        last: str = "no answer yet"
        while True:
            if not self.alive():
                code = self.proc.returncode if self.proc else None
                raise RuntimeError(f"opencode exited with code {code} during startup\n{self.log_tail()}")
            listening = self._listening()
            try:
                with httpx2.Client(base_url=self.url, auth=self.auth, timeout=5.0 if listening else 0.3) as c:
                    r = c.get("/global/health")
                if r.status_code == 200 and r.json().get("healthy"):
                    return
                last = f"HTTP {r.status_code}: {r.text[:200]}"
            except httpx2.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                raise TimeoutError(f"opencode on {self.url} not healthy after {timeout}s ({last})\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)  # the group we created with start_new_session
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # The leader may be gone while children linger; clear out the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
