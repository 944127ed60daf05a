"""A headless Chromium for the dashboard's browser test, installed by the test set-up itself.

Playwright cannot download its own browsers here (only the PyPI, npm and Debian registries are
reachable), so the test drives Debian's ``chromium`` package. ``BATON_CHROMIUM`` names another
binary; otherwise ``/usr/bin/chromium`` is used and, when missing, installed with apt-get (as
root, or through sudo), once, with a bounded wait. Chromium runs with ``--no-sandbox``: its
sandbox cannot start as root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from baton.errors import BatonError

__all__ = ["CHROMIUM_ARGS", "BrowserMissing", "chromium"]

DEFAULT = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox"]
INSTALL_TIMEOUT_S = 600.0


class BrowserMissing(BatonError):
    """No Chromium, and none could be installed."""


def chromium() -> Path:
    """The Chromium binary to drive, installed from Debian's archive first when absent."""
    named = os.environ.get("BATON_CHROMIUM")
    if named:
        if not Path(named).is_file():
            raise BrowserMissing(f"BATON_CHROMIUM={named} is not a file")
        return Path(named)
    if not DEFAULT.is_file():
        _install()
    return DEFAULT


def _install() -> None:
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    if prefix and shutil.which("sudo") is None:
        raise BrowserMissing(f"no Chromium at {DEFAULT}: install Debian's chromium (apt-get install chromium) "
                             "or set BATON_CHROMIUM")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        try:
            done = subprocess.run([*prefix, *step], env=env, capture_output=True, text=True,
                                  timeout=INSTALL_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise BrowserMissing(f"{' '.join(step)} took over {INSTALL_TIMEOUT_S:g} s") from None
        if done.returncode != 0:
            raise BrowserMissing(f"{' '.join(step)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    if not DEFAULT.is_file():
        raise BrowserMissing(f"apt-get installed chromium but {DEFAULT} is not there")
