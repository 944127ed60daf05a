"""baton keeps opencode sessions running when model providers fail."""

import sys

__all__ = ["__version__"]

__version__ = "0.1.0"


def _structlog_without_rich() -> None:
    """Import structlog with rich hidden from it: when rich is installed, ``structlog.dev`` imports it
    (and pygments) for its terminal tracebacks, ~1.5 MB of every ``baton serve`` that mostly logs to a
    pipe. :mod:`baton.logs` loads rich itself at the first traceback shown on a terminal. Every baton
    module imports structlog, and this package's ``__init__`` runs before any of them."""
    if "structlog" in sys.modules or "rich" in sys.modules:
        return
    sys.modules["rich"] = None  # type: ignore[assignment]  # "import rich" raises ImportError
    try:
        import structlog  # noqa: F401
    finally:
        del sys.modules["rich"]


_structlog_without_rich()
