"""Background subagent tasks: the pure scheduler and its contract with the engine.

Import from here: :class:`Scheduler` (the state machine), the request/result types of its
tool methods, the events it consumes (:mod:`baton.tasks.events`) and the actions it emits
(:mod:`baton.tasks.actions`). Nothing in this package performs I/O.

The engine's side of the contract, in short:

1. Start: load task rows (``Task.from_row``) and outbox rows (``OutboxRow.from_row``), build
   ``Scheduler(config, cooldowns, tasks, outbox)``, execute ``resume(now)`` once attached.
2. Feed every parsed opencode event and every action result to ``handle(event, now)``; give
   the session-level fallback policy ``owned_elsewhere=scheduler.owns``.
3. Execute the returned actions in order: ``SaveTask``/``SaveOutbox`` synchronously (commit
   before starting any later action of the list), everything else as bounded I/O reported
   back as the event its docstring names; ``Schedule``/``CancelTimer`` as timers.
4. On a resync (start or SSE reconnect) replay fetched child messages as ``AssistantMessage``
   *and* ``PartUpdated`` events for their text parts (an answer is only recognised from its
   text part), then feed ``StatusPolled`` from ``GET /session/status``; bracket a lost
   stream with ``Detached``/``Attached``.
5. Tools: ``launch``, ``cancel``, ``output``; for foreground calls poll ``foreground_result``
   on each ``SaveTask`` of the task, and call ``to_background`` when the budget is spent.
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
