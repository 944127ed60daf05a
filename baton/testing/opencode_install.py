"""Finding the pinned opencode binary, and installing it with npm into baton's cache once per machine.

A job of its own, done once per machine under a file lock and remembered: the harness
only asks for a binary, and `--prepare` (CI) does this ahead of any test.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["OPENCODE_VERSION", "baton_cache_dir", "file_lock", "find_opencode", "npm_install"]

OPENCODE_VERSION = "1.18.33"
"""The opencode release baton is tested against."""

_log = logging.getLogger(__name__)


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
def file_lock(path: Path) -> Iterator[None]:
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
    with file_lock(cache.parent / f"{cache.name}.lock"):
        if binary.exists() and _version_of(binary) == OPENCODE_VERSION:
            return binary  # another process installed it while we waited
        npm_install(cache, f"opencode-ai@{OPENCODE_VERSION}", fix=(
            f"Install Node.js and npm, or point BATON_OPENCODE_BIN at an opencode binary {OPENCODE_VERSION}."))
    version = _version_of(binary)
    if version != OPENCODE_VERSION:
        raise RuntimeError(f"installed opencode at {binary} reports version {version!r}, not {OPENCODE_VERSION}")
    return binary


def npm_install(root: Path, spec: str, *, extra_args: Sequence[str] = (), timeout: float = 900.0,
                fix: str = "Install Node.js and npm.") -> None:
    """``npm install spec`` into ``root``, bounded; RuntimeError with npm's last words when it fails.

    ``root`` gets a package.json of its own first, so npm never adopts one further up the tree.
    """
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(f"cannot install {spec}: npm is not on PATH. {fix}")
    root.mkdir(parents=True, exist_ok=True)
    manifest = root / "package.json"
    if not manifest.exists():
        manifest.write_text('{"name": "baton-npm-cache", "private": true}\n', encoding="utf-8")
    cmd = [npm, "install", "--no-audit", "--no-fund", *extra_args, spec]
    _log.info("installing %s into %s", spec, root)
    try:
        done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"`{' '.join(cmd)}` in {root} timed out after {exc.timeout}s "
                           "(is the npm registry reachable?)") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-20:])
        raise RuntimeError(f"`{' '.join(cmd)}` in {root} failed with exit code {done.returncode}:\n{tail}")
