"""Every module under baton/, for the tests that check all of them (exceptions, public surface)."""

from __future__ import annotations

import pkgutil
from pathlib import Path

import baton

__all__ = ["baton_modules"]


def baton_modules(*, main: bool = False) -> list[str]:
    """Dotted names of all modules under baton/, packages included, sorted.

    Namespace packages (a directory without ``__init__.py``, like ``baton/opencode``) are
    included: ``pkgutil.walk_packages`` alone does not enter them. ``__main__`` (importing it
    runs the CLI) only when ``main`` is true.
    """
    names = {info.name for info in pkgutil.walk_packages(baton.__path__, "baton.")} | {"baton"}
    root = Path(baton.__file__).parent
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        names.add(".".join(("baton", *(parts[:-1] if parts[-1] == "__init__" else parts))))
    return sorted(name for name in names if main or name.rpartition(".")[2] != "__main__")
