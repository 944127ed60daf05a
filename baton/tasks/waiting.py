"""Tasks whose whole chain is cooling wait in their queue instead of failing (background-tasks §5.2 rule 5, §10).

The task half of parking (:mod:`baton.fallback.parking` is the session half): when a launch or a
fallback finds every model of a task's chain cooling, the task is queued on the model whose
cooldown ends first with a not-before time (``Task.not_before``, saved with the task, so a restart
keeps it). The key's queue does not grant it before then (:meth:`baton.tasks.lifecycle.Lifecycle.grant`);
a wake timer grants it on time, and the queue timeout (T3) counts from then. A wait longer than
``baton.max_park_seconds`` is not made: the task fails as before, ``chain_exhausted``.
"""

from __future__ import annotations

from dataclasses import dataclass

from baton.actions import Schedule
from baton.fallback.core import on_connected_provider
from baton.tasks.actions import TaskAction
from baton.tasks.model import Task
from baton.tasks.state import SchedulerState

__all__ = ["WAKE_PREFIX", "Wait", "Waiting", "wake_timer"]

WAKE_PREFIX = "tasks:wake:"


def wake_timer(task_id: str) -> str:
    return f"{WAKE_PREFIX}{task_id}"


@dataclass(frozen=True, slots=True)
class Wait:
    """Where and until when a task waits: ``chain[index] == model``, cooling until ``until``."""

    position: int
    model: str
    until: float


class Waiting:
    """Decides whether a task waits for a reset, and arms its wake-up."""

    def __init__(self, state: SchedulerState) -> None:
        self.state = state

    def reset_wait(self, task: Task, now: float) -> Wait | None:
        """The model of ``task.chain`` back first, when every connected one is cooling and parking
        applies (on, cooldowns on, within the cap); None otherwise."""
        config = self.state.config
        if not config.baton.park_when_exhausted or config.runtime_fallback.cooldown_seconds <= 0:
            return None
        connected = [(i, m) for i, m in enumerate(task.chain) if on_connected_provider(m, self.state.connected)]
        if any(not self.state.cooldowns.is_cooling(model, now) for _, model in connected):
            return None  # one is usable now: nothing to wait for
        soonest = self.state.core.soonest_reset(connected, now)
        if soonest is None or soonest[2] - now > config.baton.max_park_seconds:
            return None
        return Wait(*soonest)

    def hold(self, task: Task, until: float, actions: list[TaskAction]) -> None:
        """Keep ``task`` from being granted before ``until``; the wake timer grants it then."""
        task.not_before = until
        actions.append(Schedule(wake_timer(task.id), until))
