"""Run ``baton serve`` as a real subprocess, for tests, the demo and the benchmarks.

Readiness is a handshake: :meth:`BatonProcess.start` returns once baton printed its one
"attached" line on stdout, so a test never sleeps hoping it is ready.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx2

from baton.auth import read_token
from baton.store import Store
from baton.testing.opencode import free_port

__all__ = ["BatonProcess"]


class BatonProcess:
    """One ``baton serve`` attached to ``opencode_url``, with its own state dir and port."""

    def __init__(
        self,
        opencode_url: str,
        state_dir: Path,
        *,
        config: Path | None = None,
        settings: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.opencode_url = opencode_url
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        if settings is not None:
            config = state_dir / "oh-my-opencode.json"
            config.write_text(json.dumps(settings), encoding="utf-8")
        self.config = config
        self.port = free_port()
        self.env = {**os.environ, **(env or {})}
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen[str] | None = None
        self.stdout: list[str] = []
        self._attached = threading.Event()
        self._standing_by = threading.Event()
        self._reader: threading.Thread | None = None
        self.log_path = state_dir / "baton.log"

    @property
    def listen(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def command(self) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "baton",
            "serve",
            "--opencode-url",
            self.opencode_url,
            "--listen",
            self.listen,
            "--state-dir",
            str(self.state_dir),
        ]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        return cmd + self.extra_args

    def start(self, timeout: float = 30.0, *, standby: bool = False) -> Self:
        """Start and wait for the "attached" line (``standby``: the "standing by" line of a baton
        whose shared store says another drives this opencode server); raises with baton's log
        when it does not come."""
        self._attached.clear()
        self._standing_by.clear()
        self.stdout = []
        log = self.log_path.open("a", encoding="utf-8")
        self.proc = subprocess.Popen(
            self.command(),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=self.env,
        )
        log.close()
        self._reader = threading.Thread(target=self._read_stdout, args=(self.proc,), daemon=True)
        self._reader.start()
        if not (self._standing_by if standby else self._attached).wait(timeout):
            code = self.proc.poll()
            self.kill()
            raise RuntimeError(f"baton did not attach within {timeout}s (exit {code}):\n{self.log_tail()}")
        return self

    def _read_stdout(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                self.stdout.append(line.rstrip("\n"))
                if "attached to" in line:
                    self._attached.set()
                if "standing by for" in line:
                    self._standing_by.set()

    @property
    def token(self) -> str:
        """baton's bearer token: BATON_TOKEN from its environment, else the one it wrote at start."""
        token = read_token(self.state_dir, self.env)
        if token is None:
            raise RuntimeError(f"baton has no token yet in {self.state_dir}")
        return token

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, *, authed: bool = True, timeout: float = 5.0) -> httpx2.Response:
        """A GET on baton's HTTP face, with its token unless ``authed`` is false."""
        return httpx2.get(f"http://{self.listen}{path}", timeout=timeout, headers=self.headers if authed else {})

    def status(self) -> dict[str, Any]:
        """baton's ``/status`` JSON: sessions, cooldowns, counters."""
        response = self.get("/status")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def healthz(self, *, authed: bool = True) -> tuple[int, dict[str, Any]]:
        """``/healthz``: with the token the details (state, reason, tools, store), else ``attached`` only."""
        response = self.get("/healthz", authed=authed)
        return response.status_code, response.json()

    def wait_attached(self, timeout: float = 30.0) -> float:
        """Wait for the "attached" line (a standby that took over); returns the seconds waited."""
        started = time.monotonic()
        if not self._attached.wait(timeout):
            raise TimeoutError(f"baton did not attach within {timeout}s:\n{self.log_tail()}")
        return time.monotonic() - started

    def wait_attached_again(self, after_connects: int, timeout: float = 30.0) -> None:
        """Wait until baton has (re)connected more than ``after_connects`` times and is attached."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                code, _ = self.healthz()
                if code == 200 and self.status()["connects"] > after_connects:
                    return
            except httpx2.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"baton did not re-attach within {timeout}s:\n{self.log_tail()}")

    def _store(self) -> Store:
        return Store(self.state_dir / "baton.db", readonly=True)

    def journal(self) -> list[dict[str, Any]]:
        """Every decision baton journaled, oldest first (read from its store)."""
        with self._store() as store:
            entries = store.read_journal(limit=1_000_000)
        return [{"ts": e.ts, "session": e.session_id, "kind": e.kind, "text": e.text, "data": e.data} for e in entries]

    def task_rows(self) -> list[dict[str, Any]]:
        """Every task as the store holds it."""
        with self._store() as store:
            return store.load_tasks()

    def outbox_rows(self) -> list[dict[str, Any]]:
        """Every notification row, delivered or not."""
        with self._store() as store:
            return store.load_outbox(include_done=True)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM and wait; returns the exit code (None if it had to be killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        self._join_reader()
        return code

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(5)

    def kill(self) -> None:
        """``kill -9``: no chance to clean up, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._join_reader()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
