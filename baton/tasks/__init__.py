"""Background subagent tasks: the pure scheduler and its contract with the engine.

Import from here: :class:`Scheduler` (the state machine), the request/result types of its
tool methods, the events it consumes (:mod:`baton.tasks.events`) and the actions it emits
(:mod:`baton.tasks.actions`). Nothing in this package performs I/O.
"""

from __future__ import annotations

from baton.tasks.ids import IdSource
from baton.tasks.launch import KnownAgent, LaunchRequest, LaunchResult, ToolError
from baton.tasks.model import (
    LIVE,
    TERMINAL,
    TRANSITIONS,
    EndReason,
    IllegalTransition,
    Mode,
    NotifyState,
    OutboxRow,
    Task,
    TaskEvent,
    TaskStatus,
    transition,
)
from baton.tasks.scheduler import CancelledTask, CancelReport, CancelRequest, Scheduler, TaskView

__all__ = [
    "LIVE",
    "TERMINAL",
    "TRANSITIONS",
    "CancelReport",
    "CancelRequest",
    "CancelledTask",
    "EndReason",
    "IdSource",
    "IllegalTransition",
    "KnownAgent",
    "LaunchRequest",
    "LaunchResult",
    "Mode",
    "NotifyState",
    "OutboxRow",
    "Scheduler",
    "Task",
    "TaskEvent",
    "TaskStatus",
    "TaskView",
    "ToolError",
    "transition",
]
