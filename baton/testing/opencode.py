"""Harness that runs the real `opencode serve` against a FakeProvider, isolated and reproducible.

Every instance gets its own HOME and XDG dirs (opencode keeps its database in
~/.local/share/opencode) and an `opencode.json` in its project directory that
defines one OpenAI-compatible provider pointing at the fake provider.

At its first boot of a project, opencode 1.18.33 installs `@opencode-ai/plugin`
(about 64 MB, 3,600 files) with its built-in npm into `$XDG_CONFIG_HOME/opencode`
(package.json, package-lock.json, node_modules, .gitignore), in the background,
using `~/.npm` as cache.  To pay that once per machine, `warm_template()` lets one
opencode do the install into baton's cache, and every instance's config dir is
seeded from it: node_modules is symlinked (3 ms, against 140 ms for a copy) and
the three small files copied, after which opencode installs nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx2

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

OPENCODE_VERSION = "1.18.33"
"""The opencode release baton is tested against."""

_log = logging.getLogger(__name__)

# What opencode writes into $XDG_CONFIG_HOME/opencode when it installs its plugin SDK.
_CONFIG_SEED_FILES = ("package.json", "package-lock.json", ".gitignore")
_PLUGIN_MARKER = Path("node_modules/@opencode-ai/plugin/package.json")
_TEMPLATE_DONE = ".baton-template-complete"
_LISTENING = b"server listening on"


# -- finding / installing the binary --------------------------------------------------------------


def baton_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/baton`, or `~/.cache/baton`."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "baton"


def _version_of(binary: Path) -> str | None:
    """`binary --version` (about 0.5 s, so remembered per file identity)."""
    try:
        st = binary.stat()
    except OSError:
        return None
    return _version_cached(str(binary.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=16)
def _version_cached(binary: str, mtime_ns: int, size: int) -> str | None:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[-1].strip() if out.returncode == 0 and lines else None


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive lock so parallel test processes install or warm things only once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def find_opencode(cache_dir: Path | None = None, install: bool = True) -> Path:
    """Locate the pinned opencode binary, installing it with npm into baton's cache if needed.

    Order: `$BATON_OPENCODE_BIN`; an `opencode` on PATH reporting OPENCODE_VERSION;
    `<cache_dir>/node_modules/.bin/opencode` (cache_dir defaults to
    `baton_cache_dir()/"opencode"`), installed there once when missing.
    """
    override = os.environ.get("BATON_OPENCODE_BIN")
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise FileNotFoundError(f"BATON_OPENCODE_BIN={override} is not an executable file")
        return path
    on_path = shutil.which("opencode")
    if on_path and _version_of(Path(on_path)) == OPENCODE_VERSION:
        return Path(on_path)
    cache = cache_dir if cache_dir is not None else baton_cache_dir() / "opencode"
    binary = cache / "node_modules" / ".bin" / "opencode"
    if binary.exists() and _version_of(binary) == OPENCODE_VERSION:
        return binary
    if not install:
        raise FileNotFoundError(
            f"opencode {OPENCODE_VERSION} not found (no BATON_OPENCODE_BIN, none on PATH, none in {cache})"
        )
    with _file_lock(cache.parent / f"{cache.name}.lock"):
        if binary.exists() and _version_of(binary) == OPENCODE_VERSION:
            return binary  # another process installed it while we waited
        _npm_install_opencode(cache)
    version = _version_of(binary)
    if version != OPENCODE_VERSION:
        raise RuntimeError(f"installed opencode at {binary} reports version {version!r}, not {OPENCODE_VERSION}")
    return binary


def _npm_install_opencode(cache: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            f"cannot install opencode {OPENCODE_VERSION}: npm is not on PATH. Install Node.js and npm, "
            "or point BATON_OPENCODE_BIN at an opencode binary."
        )
    cache.mkdir(parents=True, exist_ok=True)
    manifest = cache / "package.json"
    if not manifest.exists():  # keeps npm from adopting a package.json further up the tree
        manifest.write_text('{"name": "baton-opencode", "private": true}\n', encoding="utf-8")
    cmd = [npm, "install", "--no-audit", "--no-fund", f"opencode-ai@{OPENCODE_VERSION}"]
    _log.info("installing opencode %s into %s", OPENCODE_VERSION, cache)
    try:
        done = subprocess.run(cmd, cwd=cache, capture_output=True, text=True, timeout=900, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"`{' '.join(cmd)}` in {cache} timed out after {exc.timeout}s") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-20:])
        raise RuntimeError(f"`{' '.join(cmd)}` in {cache} failed with exit code {done.returncode}:\n{tail}")


# -- config, ports, isolated homes -----------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the OS may hand it out again; good enough for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_taken(port: int, host: str = "127.0.0.1") -> bool:
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


def _base_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The parent environment (proxies, CA certs) minus its OPENCODE_* settings, with an isolated home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCODE_")}
    env.update(_xdg_env(home))
    env["OPENCODE_DISABLE_AUTOUPDATE"] = "1"
    env["OPENCODE_DISABLE_MODELS_FETCH"] = "1"
    env.update(extra or {})
    return env


def _template_dir(cache_dir: Path | None) -> Path:
    root = cache_dir if cache_dir is not None else baton_cache_dir()
    return root / f"opencode-home-{OPENCODE_VERSION}"


def _template_ready(template: Path) -> bool:
    return (template / _TEMPLATE_DONE).exists()


_warm_failures: dict[Path, BaseException] = {}


def warm_template(binary: Path | None = None, cache_dir: Path | None = None, timeout: float = 180) -> Path:
    """Return a home dir holding opencode's installed plugin SDK, creating it once per machine.

    The template is made by a real opencode booting a throwaway project, so it holds
    exactly what opencode itself installs; a lock serialises parallel callers.  A
    failure (say, no npm registry) is remembered for the rest of the process.
    """
    template = _template_dir(cache_dir)
    if _template_ready(template):
        return template
    if template in _warm_failures:
        raise RuntimeError(f"warming {template} already failed in this process") from _warm_failures[template]
    try:
        return _build_template(template, binary or find_opencode(), timeout)
    except BaseException as exc:
        _warm_failures[template] = exc
        raise


def _build_template(template: Path, binary: Path, timeout: float) -> Path:
    with _file_lock(template.parent / f"{template.name}.lock"):
        if _template_ready(template):
            return template
        staging = Path(tempfile.mkdtemp(prefix=f"{template.name}.staging-", dir=template.parent))
        try:
            _install_into(binary, staging, timeout)
            for child in list(staging.iterdir()):  # keep only the shareable install
                if child.name != ".config":
                    _rmtree(child)
            config_dir = staging / ".config" / "opencode"
            for child in list(config_dir.iterdir()):
                if child.name not in (*_CONFIG_SEED_FILES, "node_modules"):
                    _rmtree(child)
            (staging / _TEMPLATE_DONE).write_text(OPENCODE_VERSION + "\n", encoding="utf-8")
            if template.exists():
                _rmtree(template)
            staging.rename(template)
        finally:
            if staging.exists():
                _rmtree(staging)
    return template


def _install_into(binary: Path, home: Path, timeout: float) -> None:
    """Boot opencode on `home` and wait until its background plugin install has finished."""
    project = home / "project"
    project.mkdir()
    (project / "opencode.json").write_text(
        json.dumps({"$schema": "https://opencode.ai/config.json", "autoupdate": False, "share": "disabled"}),
        encoding="utf-8",
    )
    config_dir = home / ".config" / "opencode"
    server = _Process(binary, project, home, free_port(), _base_env(home), home / "opencode.log")
    try:
        server.start(timeout=min(timeout, 120))
        # Any project-scoped request boots the instance, which starts the install.
        with httpx2.Client(base_url=server.url, timeout=30) as client:
            client.get("/session")
        deadline = time.monotonic() + timeout
        while not all((config_dir / p).exists() for p in (_PLUGIN_MARKER, *_CONFIG_SEED_FILES)):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"opencode did not install @opencode-ai/plugin into {config_dir} within {timeout}s "
                    f"(is the npm registry reachable?)\n{server.log_tail()}"
                )
            if not server.alive():
                raise RuntimeError(f"opencode exited while warming the template\n{server.log_tail()}")
            time.sleep(0.2)
    finally:
        server.stop()


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem
        shutil.copy2(src, dst)


def _seed_home(home: Path, template: Path, *, symlink: bool = True) -> None:
    """Give `home` opencode's installed plugin SDK, so opencode installs nothing at boot.

    node_modules is symlinked to the template (3 ms), or with `symlink=False`
    hard-linked file by file (~0.1 s), for configs that make opencode install more
    packages and so must not write into the shared template.
    """
    src = template / ".config" / "opencode"
    dst = home / ".config" / "opencode"
    dst.mkdir(parents=True, exist_ok=True)
    modules = dst / "node_modules"
    if not modules.exists() and not modules.is_symlink():
        if symlink:
            modules.symlink_to(src / "node_modules", target_is_directory=True)
        else:
            shutil.copytree(src / "node_modules", modules, symlinks=True, copy_function=_link_or_copy)
    for name in _CONFIG_SEED_FILES:
        if (src / name).exists() and not (dst / name).exists():
            shutil.copy2(src / name, dst / name)


def _rmtree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


# -- the process ------------------------------------------------------------------------------------


class _Process:
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
        self._process: _Process | None = None
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
                _seed_home(self.home, warm_template(binary), symlink="plugin" not in self.config)
            except (OSError, RuntimeError, TimeoutError) as exc:  # still works, just installs itself
                _log.warning("could not warm opencode's plugin install, it will install per instance: %s", exc)
        (self.project_dir / "opencode.json").write_text(json.dumps(self.config, indent=2), encoding="utf-8")
        env = _base_env(self.home, self._extra_env)
        t0 = time.monotonic()
        for attempt in range(3):
            self._process = _Process(binary, self.project_dir, self.home, self.port, env, self.log_path)
            try:
                self._process.start(self.startup_timeout)
                break
            except RuntimeError as exc:
                # A port picked by free_port() can be taken by someone else before opencode binds it.
                self._process = None
                # opencode then only says "ServeError", so look at the port itself.
                if self._fixed_port or attempt == 2 or not _port_taken(self.port):
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
        proc = self._process or _Process(Path(), self.project_dir, self.home, 0, {}, self.log_path)
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
