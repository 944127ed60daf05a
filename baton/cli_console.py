"""Where the CLI prints: rich consoles made at their first use, and the one way a command fails.

``baton serve`` runs through :mod:`baton.cli` and never prints through rich; made lazily, the
consoles keep rich (about 2 MB resident) out of the daemon (issue 10 §5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["err", "fail", "out"]


class _LazyConsole:
    """A rich ``Console`` made at the first attribute asked of it."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(highlight=False, soft_wrap=True, **self._options)
        return getattr(self._console, name)


out = cast("Console", _LazyConsole())
err = cast("Console", _LazyConsole(stderr=True))


def fail(message: str, code: int) -> int:
    """Say why a command failed, on stderr, and return its exit code."""
    from rich.text import Text

    from baton.config import printable

    # The message may quote a user's key, value or path: printed as Text, "[/x]" in it is no markup.
    err.print(Text.assemble(("baton:", "bold red"), " ", printable(message)))
    return code
