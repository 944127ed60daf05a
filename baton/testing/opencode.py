"""Harness that runs the real `opencode serve` against a FakeProvider, isolated and reproducible.

Every instance gets its own HOME and XDG dirs (opencode keeps its database in
~/.local/share/opencode) and an `opencode.json` in its project directory that
defines one OpenAI-compatible provider pointing at the fake provider.

The work is split by job: `opencode_install` finds or installs the pinned binary,
`opencode_home` warms the shared plugin install once per machine and seeds homes
from it, `opencode_process` writes the config and environment and runs one child;
this module is the `OpencodeServer` object tests hold, a few client conveniences,
and `python -m baton.testing.opencode --prepare`.  Its names stay importable here.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx2

from baton.testing.opencode_home import seed_home, warm_template
from baton.testing.opencode_install import OPENCODE_VERSION, baton_cache_dir, find_opencode
from baton.testing.opencode_process import OpencodeProcess, base_env, free_port, opencode_config, port_taken

__all__ = [
    "OPENCODE_VERSION",
    "OpencodeServer",
    "baton_cache_dir",
    "create_session",
    "find_opencode",
    "free_port",
    "opencode_config",
    "prompt_async",
    "warm_template",
]

_log = logging.getLogger(__name__)


class OpencodeServer:
    """A real `opencode serve` on a free local port, wired to a fake provider; a context manager.

    `project_dir` and `home` default to fresh temp dirs, removed by `close()`.
    The home is seeded from `warm_template()` unless `warm=False`.
    """

    def __init__(
        self,
        provider_url: str,
        models: Sequence[str] = ("primary", "backup"),
        *,
        project_dir: Path | None = None,
        home: Path | None = None,
        provider_id: str = "fake",
        default_model: str | None = None,
        extra_config: Mapping[str, Any] | None = None,
        password: str | None = None,
        env: Mapping[str, str] | None = None,
        binary: Path | None = None,
        port: int | None = None,
        warm: bool = True,
        startup_timeout: float = 60.0,
    ) -> None:
        self.provider_url = provider_url
        self.models = tuple(models)
        self.provider_id = provider_id
        self.default_model = default_model or self.models[0]
        self.password = password
        self.startup_timeout = startup_timeout
        self._binary = binary
        self._warm = warm
        self._owned: list[Path] = []
        self.project_dir = project_dir if project_dir is not None else self._tempdir("baton-oc-project-")
        self.home = home if home is not None else self._tempdir("baton-oc-home-")
        self._fixed_port = port is not None
        self.port = port or free_port()
        self.config = opencode_config(
            provider_url, self.models, provider_id=provider_id, default_model=default_model, extra=extra_config
        )
        extra_env = dict(env or {})
        if password:
            extra_env["OPENCODE_SERVER_PASSWORD"] = password
        self._extra_env = extra_env
        self._process: OpencodeProcess | None = None
        self.start_seconds: float | None = None
        """How long the last start() took until /global/health answered."""

    def _tempdir(self, prefix: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=prefix))
        self._owned.append(path)
        return path

    # -- lifecycle

    @property
    def url(self) -> str:
        """Base URL of the HTTP API, e.g. http://127.0.0.1:41234 (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth(self) -> tuple[str, str] | None:
        """Basic-auth credentials when a password was set (username `opencode` unless env says otherwise)."""
        if not self.password:
            return None
        return (self._extra_env.get("OPENCODE_SERVER_USERNAME", "opencode"), self.password)

    @property
    def pid(self) -> int:
        """PID (and process group id) of the running opencode."""
        if self._process is None or self._process.proc is None:
            raise RuntimeError("opencode is not running")
        return self._process.proc.pid

    @property
    def log_path(self) -> Path:
        """opencode's stdout/stderr; its own log is under home/.local/share/opencode/log."""
        return self.home / "opencode-serve.log"

    def running(self) -> bool:
        """Whether the opencode process is alive."""
        return self._process is not None and self._process.alive()

    def start(self) -> Self:
        """Write the config, seed the home, start opencode and wait until it is healthy."""
        if self.running():
            return self
        binary = self._binary or find_opencode()
        self._binary = binary
        if self._warm:
            try:
                # Plugins in the config make opencode install more into node_modules: not into the template.
                seed_home(self.home, warm_template(binary), symlink="plugin" not in self.config)
            except (OSError, RuntimeError, TimeoutError) as exc:  # still works, just installs itself
                _log.warning("could not warm opencode's plugin install, it will install per instance: %s", exc)
        (self.project_dir / "opencode.json").write_text(json.dumps(self.config, indent=2), encoding="utf-8")
        env = base_env(self.home, self._extra_env)
        t0 = time.monotonic()
        for attempt in range(3):
            self._process = OpencodeProcess(binary, self.project_dir, self.home, self.port, env, self.log_path)
            try:
                self._process.start(self.startup_timeout)
                break
            except RuntimeError as exc:
                # A port picked by free_port() can be taken by someone else before opencode binds it.
                self._process = None
                # opencode then only says "ServeError", so look at the port itself.
                if self._fixed_port or attempt == 2 or not port_taken(self.port):
                    raise
                _log.info("port %s was taken before opencode could bind it, retrying: %s", self.port, exc)
                self.port = free_port()
        self.start_seconds = time.monotonic() - t0
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM opencode's process group, SIGKILL it after `timeout` seconds."""
        if self._process is not None:
            self._process.stop(timeout)
            self._process = None

    def restart(self) -> Self:
        """Stop and start again on the same port, home and project (sessions persist)."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop opencode and remove the temp dirs this object created."""
        self.stop()
        for path in self._owned:
            shutil.rmtree(path, ignore_errors=True)
        self._owned.clear()

    def log_tail(self, lines: int = 40) -> str:
        """The end of opencode's output, for assertion messages."""
        proc = self._process or OpencodeProcess(Path(), self.project_dir, self.home, 0, {}, self.log_path)
        return proc.log_tail(lines)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- minimal client conveniences (tests only; baton has its own client)

    def client(self, timeout: float = 30.0) -> httpx2.Client:
        """A sync httpx2 client for this server (caller closes it)."""
        return httpx2.Client(base_url=self.url, auth=self.auth, timeout=timeout)

    def create_session(self, title: str = "baton test") -> dict[str, Any]:
        """Create a session with a title (so opencode does not ask the model for one)."""
        with self.client() as c:
            return create_session(c, title)

    def prompt_async(
        self,
        session_id: str,
        text: str | None = None,
        *,
        parts: Sequence[Mapping[str, Any]] | None = None,
        model: str | None = None,
        message_id: str | None = None,
        agent: str | None = None,
    ) -> None:
        """Send a prompt without waiting for the answer; `model` is a model id of this provider."""
        with self.client() as c:
            prompt_async(
                c,
                session_id,
                text,
                parts=parts,
                model=(self.provider_id, model) if model else None,
                message_id=message_id,
                agent=agent,
            )

    def messages(self, session_id: str) -> list[dict[str, Any]]:
        """`GET /session/{id}/message`: [{"info": ..., "parts": [...]}, ...]."""
        with self.client() as c:
            r = c.get(f"/session/{session_id}/message")
            r.raise_for_status()
            result: list[dict[str, Any]] = r.json()
            return result

    def session_status(self) -> dict[str, Any]:
        """`GET /session/status` (idle sessions are absent from it)."""
        with self.client() as c:
            r = c.get("/session/status")
            r.raise_for_status()
            result: dict[str, Any] = r.json()
            return result

    def abort(self, session_id: str) -> None:
        """`POST /session/{id}/abort`."""
        with self.client() as c:
            c.post(f"/session/{session_id}/abort").raise_for_status()

    def wait_idle(self, session_id: str, timeout: float = 30.0) -> None:
        """Poll /session/status until the session is no longer listed (opencode omits idle sessions).

        Right after prompt_async the session may not be listed as busy yet; to wait
        for the end of a turn just started, wait for its `session.idle` event instead.
        """
        deadline = time.monotonic() + timeout
        with self.client() as c:
            while True:
                r = c.get("/session/status")
                r.raise_for_status()
                if session_id not in r.json():
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"session {session_id} still busy after {timeout}s: {r.json()}")
                time.sleep(0.05)


def create_session(client: httpx2.Client, title: str) -> dict[str, Any]:
    """`POST /session {title}` and return the session; a title avoids a model call to make one."""
    r = client.post("/session", json={"title": title})
    r.raise_for_status()
    session: dict[str, Any] = r.json()
    return session


def prompt_async(
    client: httpx2.Client,
    session_id: str,
    text: str | None = None,
    *,
    parts: Sequence[Mapping[str, Any]] | None = None,
    model: tuple[str, str] | None = None,
    message_id: str | None = None,
    agent: str | None = None,
) -> None:
    """`POST /session/{id}/prompt_async` (204, returns at once); give `text` or explicit `parts`.

    `model` is (providerID, modelID); `message_id` re-sends under an existing message id.
    """
    if (text is None) == (parts is None):
        raise ValueError("give exactly one of text or parts")
    body: dict[str, Any] = {"parts": [dict(p) for p in parts] if parts else [{"type": "text", "text": text}]}
    if model:
        body["model"] = {"providerID": model[0], "modelID": model[1]}
    if message_id:
        body["messageID"] = message_id
    if agent:
        body["agent"] = agent
    r = client.post(f"/session/{session_id}/prompt_async", json=body)
    r.raise_for_status()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m baton.testing.opencode --prepare``: install the pinned opencode and warm its home once.

    CI runs it before the tests so that no test pays for the npm install or the plugin install.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m baton.testing.opencode", description=main.__doc__)
    parser.add_argument("--prepare", action="store_true", help="install opencode and warm the template home")
    args = parser.parse_args(argv)
    if not args.prepare:
        parser.print_help()
        return 2
    binary = find_opencode()
    template = warm_template(binary)
    print(f"opencode {OPENCODE_VERSION}: {binary}\nwarm home template: {template}")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
