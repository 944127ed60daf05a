"""``baton config check``'s account of the chains (baton/chains.py), in the words the user reads."""

from __future__ import annotations

from pathlib import Path

from policy_sim import make_config

from baton.chains import describe


def test_timeout_zero_is_explained_in_full(tmp_path: Path) -> None:
    """runtime-fallback §9: timeout_seconds 0 turns off the watchdog and retry statuses; the warning
    says both and what it means for a failure opencode retries."""
    lines = describe(make_config(tmp_path, {"runtime_fallback": {"timeout_seconds": 0}}))
    assert ("warning: runtime_fallback.timeout_seconds is 0: no watchdog after a re-send, and retry statuses "
            "are not acted on, so a failure opencode retries waits until it gives up") in lines
