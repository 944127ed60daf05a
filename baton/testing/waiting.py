"""The one readiness wait of the tests and benchmarks: poll a condition, bounded, never a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["wait_until"]


def wait_until(condition: Callable[..., Any], timeout: float = 20.0, what: str = "condition", *,
               every: float = 0.05) -> Any:
    """``condition()``'s first truthy value, polled every ``every`` seconds; TimeoutError naming
    ``what`` when ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(every)
    return value
