"""Actions the scheduler asks the engine to carry out (besides :mod:`baton.actions`).

Contract with the engine:

* ``SaveTask`` / ``SaveOutbox`` are *durable writes*. The engine executes them synchronously
  and in list order, and commits them before it starts any later action of the same list
  (it may group consecutive saves into one transaction). That is how "durable before
  visible" holds: the scheduler always emits the save before the I/O that depends on it.
* Every other action here is I/O the engine runs concurrently, each bounded in time, and
  reports back with the event named in its docstring (:mod:`baton.tasks.events`).
* ``Schedule``/``CancelTimer``/``Note``/``SaveCooldown``/``Toast`` keep their meaning from
  :mod:`baton.actions`; timer keys of the scheduler start with ``tasks:``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from baton.actions import Action

__all__ = [
    "AbortChild",
    "CreateChild",
    "ForgetTasks",
    "Deliver",
    "LookupSession",
    "PollStatus",
    "PromptChild",
    "RefreshActivity",
    "SaveOutbox",
    "SaveTask",
    "TaskAction",
]


@dataclass(frozen=True, slots=True)
class SaveTask:
    """Upsert the task row ``row`` (from ``Task.to_row``) under ``task_id``."""

    task_id: str
    row: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class SaveOutbox:
    """Upsert outbox rows (``OutboxRow.to_row``) by their ``id``.

    Rows in state ``delivered`` or ``dropped`` are never read again by the scheduler; the
    engine may delete them whenever it likes (or keep them for history).
    """

    rows: tuple[dict[str, Any], ...] = field(repr=False)


@dataclass(frozen=True, slots=True)
class ForgetTasks:
    """Delete these ended tasks and their notification rows from the store (history cap, §16)."""

    task_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CreateChild:
    """``POST /session?directory=`` with ``{parentID, title}`` (no ``permission``).

    ``directory`` None: read the parent's (``GET /session/{P}``), else baton's project dir.
    ``adopt``: after a restart, first look among ``GET /session/{P}/children`` for a title
    containing ``task_id`` and report that one instead of creating (§15.3).
    Reports ``ChildCreated`` or ``ChildCreateFailed``.
    """

    task_id: str
    parent_session_id: str
    title: str
    directory: str | None = None
    adopt: bool = False


@dataclass(frozen=True, slots=True)
class PromptChild:
    """``POST /session/{session_id}/prompt_async`` with exactly these fields (§6.3).

    ``model`` is ``"provider/model"`` (send it as ``{providerID, modelID}``; None only when no
    model could be resolved at all, then omit it); ``variant`` and ``system`` only when not
    None; ``parts: [{type: "text", text}]``. ``only_if_absent``:
    first look for ``message_id`` among the child's newest messages; if present report
    ``PromptAccepted`` without sending (restart reconciliation, §15.3). Reports
    ``PromptAccepted`` or ``PromptRejected`` with the same ``attempt``.
    """

    task_id: str
    attempt: int
    session_id: str
    message_id: str
    agent: str
    model: str | None
    variant: str | None
    system: str | None
    tools: dict[str, bool]
    text: str = field(repr=False)
    directory: str | None = None
    only_if_absent: bool = False


@dataclass(frozen=True, slots=True)
class AbortChild:
    """``POST /session/{session_id}/abort``, bounded (5 s). Reports ``AbortDone``."""

    task_id: str
    session_id: str
    directory: str | None = None


@dataclass(frozen=True, slots=True)
class Deliver:
    """``POST /session/{P}/prompt_async`` with ``messageID``, ``noReply``, agent, model, tools.

    ``agent``/``model``/``variant``: send when not None. ``tools``: send only when not None
    (P is itself a baton child). ``check_first``: before sending, look for ``message_id``
    among P's newest messages (bounded fetch) and report ``delivered`` if it is there
    (redelivery after a restart, §12.4 rule 7). Reports ``DeliveryResult``.
    """

    parent_session_id: str
    message_id: str
    text: str = field(repr=False)
    no_reply: bool = True
    agent: str | None = None
    model: str | None = None
    variant: str | None = None
    tools: dict[str, bool] | None = None
    directory: str | None = None
    check_first: bool = False
    ended_at: float | None = None
    """When the earliest task this message reports ended: the notification-latency metric's start."""


@dataclass(frozen=True, slots=True)
class PollStatus:
    """``GET /session/status`` (all sessions). Reports ``StatusPolled``; at most one in flight."""


@dataclass(frozen=True, slots=True)
class LookupSession:
    """``GET /session/{session_id}``: only whether it exists (§9 T4). Reports ``SessionLookup``."""

    session_id: str
    directory: str | None = None


@dataclass(frozen=True, slots=True)
class RefreshActivity:
    """Fetch the child's newest messages (bounded) and report the newest message or part time
    as ``ActivityRefreshed`` (§9 rule 3, before T2 fires)."""

    task_id: str
    session_id: str
    directory: str | None = None


TaskAction = (
    Action
    | SaveTask
    | SaveOutbox
    | ForgetTasks
    | CreateChild
    | PromptChild
    | AbortChild
    | Deliver
    | PollStatus
    | LookupSession
    | RefreshActivity
)
