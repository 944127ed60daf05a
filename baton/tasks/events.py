"""Events the engine feeds the scheduler besides opencode's own (:mod:`baton.events`).

Most report the outcome of an action the scheduler asked for; each names the action. The
engine must report every I/O action it was given exactly once (a timeout is an outcome too),
except :class:`~baton.tasks.actions.AbortChild` after a task ended, whose report is optional.
A few carry facts the engine learns elsewhere (attach state, compaction, permissions).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from baton.events import Event, SessionStatus

__all__ = [
    "AbortDone",
    "ActivityRefreshed",
    "Attached",
    "ChildCreateFailed",
    "ChildCreated",
    "DeliveryOutcome",
    "DeliveryResult",
    "Detached",
    "HostRestarted",
    "ParentCompacted",
    "PermissionPending",
    "PromptAccepted",
    "PromptRejected",
    "SchedulerEvent",
    "SessionLookup",
    "StatusPolled",
]


@dataclass(frozen=True, slots=True)
class ChildCreated:
    """``CreateChild`` succeeded (or, with ``adopt``, an existing child with the task's title was found)."""

    task_id: str
    session_id: str


@dataclass(frozen=True, slots=True)
class ChildCreateFailed:
    """``CreateChild`` failed: any HTTP error, timeout or missing body.

    ``transient``: no connection, a timeout or a 5xx (opencode restarting or overloaded): the
    scheduler tries again, bounded. A 4xx or a missing body is final.
    """

    task_id: str
    error: str
    transient: bool = False


@dataclass(frozen=True, slots=True)
class PromptAccepted:
    """``PromptChild`` got a 2xx (or, with ``only_if_absent``, the anchor was already there).

    ``attempt`` echoes the action's, so an answer for an earlier try is recognised as stale.
    """

    task_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class PromptRejected:
    """``PromptChild`` failed. ``unknown_agent`` must come from the error's type or name (§6.6).

    ``transient`` as for :class:`ChildCreateFailed`: no connection, a timeout or a 5xx.
    """

    task_id: str
    attempt: int
    error: str
    unknown_agent: bool = False
    transient: bool = False


@dataclass(frozen=True, slots=True)
class AbortDone:
    """``AbortChild`` finished within its bound (``ok``) or not (error or timeout)."""

    task_id: str
    ok: bool


@dataclass(frozen=True, slots=True)
class StatusPolled:
    """``PollStatus`` result: ``GET /session/status`` parsed with ``parse_status`` per entry.

    None means the call failed: it tells nothing (spec §8.1). A session absent from a
    successful map is idle.
    """

    statuses: Mapping[str, SessionStatus] | None


@dataclass(frozen=True, slots=True)
class SessionLookup:
    """``LookupSession`` result: ``found`` False only for a 404; None for any other failure (§9 T4)."""

    session_id: str
    found: bool | None


class DeliveryOutcome(StrEnum):
    DELIVERED = "delivered"
    """2xx, or (with ``check_first``) the message id was already among the parent's messages."""
    RETRY = "retry"
    """Network error, timeout or 5xx: try again after a backoff."""
    BUSY = "busy"
    """opencode said the parent is busy: try again at its next idle."""
    PARENT_GONE = "parent_gone"
    """404 for the parent: drop its notifications."""


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What became of a ``Deliver`` action."""

    parent_session_id: str
    message_id: str
    outcome: DeliveryOutcome
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ActivityRefreshed:
    """``RefreshActivity`` result: the newest message/part time of the child (epoch s), None on failure."""

    task_id: str
    at: float | None


@dataclass(frozen=True, slots=True)
class ParentCompacted:
    """opencode's ``session.compacted`` for a session (spec §12.5)."""

    session_id: str


@dataclass(frozen=True, slots=True)
class PermissionPending:
    """A permission request of a session was asked (True) or answered (False); pauses T2 (§9 rule 3)."""

    session_id: str
    pending: bool


@dataclass(frozen=True, slots=True)
class Detached:
    """The event stream is lost: nothing is evaluated and the time does not count (§9 rule 4)."""


@dataclass(frozen=True, slots=True)
class Attached:
    """The stream is back and the resync is done; detached time is credited to every running task."""


@dataclass(frozen=True, slots=True)
class HostRestarted:
    """opencode itself restarted (its instance changed): running children may have lost their turn (§15.5)."""


SchedulerEvent = (
    Event
    | ChildCreated
    | ChildCreateFailed
    | PromptAccepted
    | PromptRejected
    | AbortDone
    | StatusPolled
    | SessionLookup
    | DeliveryResult
    | ActivityRefreshed
    | ParentCompacted
    | PermissionPending
    | Detached
    | Attached
    | HostRestarted
)
