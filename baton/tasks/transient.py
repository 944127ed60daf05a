"""Bounded retries of the calls that start a child, when opencode failed for a passing reason.

A child session created, or a child prompted, while opencode restarts fails with no connection,
a timeout or a 5xx. Such a failure is not the task's: the scheduler tries the same call again
after a backoff (0.5 s doubling, at most 8 s apart) for as long as the next try still falls
within 30 s of the first failure, and journals every retry. A 4xx, or the budget spent, ends
the task as before (§6.6). The retry is the same action made safe to repeat: a create first
looks for a child holding the task id (the failed call may have created it), a first prompt
first looks for its anchor (the failed call may have delivered it).
"""

from __future__ import annotations

from dataclasses import dataclass

from baton.tasks.actions import PromptChild

__all__ = ["HOST_RETRY_BUDGET_S", "HOST_RETRY_FIRST_S", "HOST_RETRY_MAX_S", "HostRetry", "host_retry_timer"]

HOST_RETRY_FIRST_S = 0.5
HOST_RETRY_MAX_S = 8.0
HOST_RETRY_BUDGET_S = 30.0
_PREFIX = "tasks:host-retry:"


def host_retry_timer(task_id: str) -> str:
    """Timer key of a task's next retry; the empty id gives the prefix."""
    return f"{_PREFIX}{task_id}"


@dataclass(slots=True)
class HostRetry:
    """One task's run of transient failures: since when, how many calls, the last backoff."""

    first_at: float
    calls: int = 1
    delay: float = 0.0
    prompt: PromptChild | None = None
    """The prompt to send again (None: the create is retried)."""

    def next_delay(self, now: float) -> float | None:
        """The backoff before the next call, or None when it would end past the budget."""
        delay = HOST_RETRY_FIRST_S if self.delay == 0 else min(self.delay * 2, HOST_RETRY_MAX_S)
        if now + delay - self.first_at > HOST_RETRY_BUDGET_S:
            return None
        return delay
