"""Logging set-up: structlog to stderr, readable on a terminal, JSON lines otherwise.

Libraries that log through the standard library (uvicorn) are routed through the
same renderer, so a log on a pipe is pure JSON, one object a line.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TextIO

import structlog

__all__ = ["configure_logging"]


class _ToStructlog(logging.Handler):
    """Hands standard-library records to structlog, with the logger's name."""

    def emit(self, record: logging.LogRecord) -> None:
        if _is_shutdown_noise(record):
            return
        logger = structlog.get_logger(record.name)
        fields: dict[str, object] = {"logger": record.name}
        if record.exc_info and record.exc_info[1] is not None:
            fields["exc_info"] = record.exc_info
        try:
            logger.log(record.levelno, record.getMessage(), **fields)
        except Exception:  # a broken record must not break the caller
            self.handleError(record)


def _is_shutdown_noise(record: logging.LogRecord) -> bool:
    """uvicorn reports a request cancelled by baton's own stop as an ASGI error: it is not one."""
    exc = record.exc_info[1] if record.exc_info else None
    return isinstance(exc, asyncio.CancelledError | KeyboardInterrupt)


def configure_logging(level: int = logging.INFO) -> None:
    """Configure structlog once for the process (the CLI calls it; library code never does)."""
    renderer: structlog.typing.Processor
    if sys.stderr.isatty():
        renderer = structlog.dev.ConsoleRenderer(colors=True, exception_formatter=_rich_traceback)
    else:
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info if not sys.stderr.isatty() else _identity,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    root.handlers[:] = [_ToStructlog()]
    root.setLevel(max(level, logging.WARNING))
    for name in ("uvicorn", "uvicorn.error"):
        library = logging.getLogger(name)
        library.handlers[:] = []
        library.propagate = True


def _rich_traceback(sio: TextIO, exc_info: structlog.typing.ExcInfo) -> None:
    """structlog's rich traceback on a terminal, rich imported at the first one (see ``baton/__init__``)."""
    from rich.console import Console
    from rich.traceback import Traceback

    sio.write("\n")
    # structlog's own rich formatter's settings: the terminal's width, long lines wrapped.
    traceback = Traceback.from_exception(*exc_info, show_locals=True, width=None, word_wrap=True)
    Console(file=sio, color_system="truecolor").print(traceback)


def _identity(
    _logger: object, _name: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    return event_dict
