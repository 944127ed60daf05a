"""The warm home template: opencode's plugin SDK installed once per machine, seeded into every home.

At its first boot of a project, opencode 1.18.33 installs `@opencode-ai/plugin`
(about 64 MB, 3,600 files) with its built-in npm into `$XDG_CONFIG_HOME/opencode`
(package.json, package-lock.json, node_modules, .gitignore), in the background,
using `~/.npm` as cache.  To pay that once per machine, `warm_template()` lets one
opencode do the install into baton's cache, and every instance's config dir is
seeded from it: node_modules is symlinked (3 ms, against 140 ms for a copy) and
the three small files copied, after which opencode installs nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import httpx2

from baton.testing.opencode_install import OPENCODE_VERSION, baton_cache_dir, file_lock, find_opencode
from baton.testing.opencode_process import OpencodeProcess, base_env, free_port

__all__ = ["seed_home", "warm_template"]

# What opencode writes into $XDG_CONFIG_HOME/opencode when it installs its plugin SDK.
_CONFIG_SEED_FILES = ("package.json", "package-lock.json", ".gitignore")
_PLUGIN_MARKER = Path("node_modules/@opencode-ai/plugin/package.json")
_TEMPLATE_DONE = ".baton-template-complete"


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
    with file_lock(template.parent / f"{template.name}.lock"):
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
    server = OpencodeProcess(binary, project, home, free_port(), base_env(home), home / "opencode.log")
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


def seed_home(home: Path, template: Path, *, symlink: bool = True) -> None:
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
