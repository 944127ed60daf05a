"""Typed events the decision core consumes.

The opencode adapter turns each SSE frame into one of these (``baton/opencode/events.py``);
the engine adds its own: timers firing and the outcome of actions it executed. Every event
is a small frozen, slotted dataclass so that building one per ``message.part.delta`` stays
cheap. Models are already normalised to ``"provider/model"`` (:mod:`baton.models`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from baton.actions import ResendIntent
from baton.catalog import Catalog

__all__ = [
    "COMPACTION_AGENT",
    "AssistantMessage",
    "CatalogSeen",
    "Event",
    "PartDelta",
    "PartUpdated",
    "RecoveredResend",
    "ResendOutcome",
    "ResendResult",
    "SessionCreated",
    "SessionDeleted",
    "SessionError",
    "SessionIdle",
    "SessionStatus",
    "StatusType",
    "TimerFired",
    "UserMessage",
]


# opencode's summarising agent: its turns never change a session's agent or model.
COMPACTION_AGENT = "compaction"


class StatusType(StrEnum):
    """opencode's session status; anything else is normalised to ``idle`` by the adapter."""

    IDLE = "idle"
    BUSY = "busy"
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class SessionCreated:
    session_id: str
    parent_id: str | None = None
    directory: str | None = None


@dataclass(frozen=True, slots=True)
class SessionDeleted:
    session_id: str


@dataclass(frozen=True, slots=True)
class SessionStatus:
    """``session.status``; for ``retry`` opencode adds the attempt, its message and ``next`` (epoch ms)."""

    session_id: str
    type: StatusType
    attempt: object = None
    message: str = ""
    next_ms: int | None = None


@dataclass(frozen=True, slots=True)
class SessionIdle:
    session_id: str


@dataclass(frozen=True, slots=True)
class SessionError:
    """``session.error``: a turn ended in error. ``session_id`` is optional in opencode's schema."""

    session_id: str | None
    error: object


@dataclass(frozen=True, slots=True)
class UserMessage:
    """A user message as opencode stored it (``message.updated``, role user)."""

    session_id: str
    message_id: str
    model: str | None
    agent: str | None
    # Present when the message came from a fetch (resync) rather than the stream.
    parts: tuple[dict[str, Any], ...] | None = None
    # The model variant the prompt chose (``info.model.variant``); None when it named none.
    variant: str | None = None


@dataclass(frozen=True, slots=True)
class AssistantMessage:
    """An assistant message update (``message.updated``, role assistant)."""

    session_id: str
    message_id: str
    parent_id: str | None
    model: str | None
    agent: str | None
    error: object = None
    completed: bool = False
    finish: str | None = None
    # Auto-retry text found in the message's status fields (spec §4.4), if any.
    retry_text: str | None = None
    # True when the fetched message already holds visible output (resync only).
    has_output: bool = False
    # Tokens the message's request and answer took (opencode's ``tokens``): the session's size.
    tokens: int | None = None


@dataclass(frozen=True, slots=True)
class PartUpdated:
    """``message.part.updated``. ``part`` is opencode's whole part object, kept for a re-send."""

    session_id: str
    message_id: str
    part_id: str
    type: str
    text: str | None
    part: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class PartDelta:
    """``message.part.delta``: text streamed into a part; the busiest event by far."""

    session_id: str
    message_id: str
    part_id: str
    field: str
    delta: str


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer the core scheduled (``Schedule``) has come due."""

    key: str


class ResendOutcome(StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    # The prompt call timed out: it may have gone through (spec §7 step 6).
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ResendResult:
    """What became of a ``Resend`` action; the executor reports it back as an event."""

    session_id: str
    token: int
    outcome: ResendOutcome
    aborted: bool = False
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RecoveredResend:
    """A re-send intent the store still held when baton started (a kill -9 mid-fallback).

    Fed once, after the first attach's resync, so the policy knows the session's latest turn.
    """

    intent: ResendIntent


@dataclass(frozen=True, slots=True)
class CatalogSeen:
    """opencode's provider list as baton last fetched it (at each attach): costs, context windows,
    connected providers, for the guards and the chain walk (:mod:`baton.catalog`)."""

    catalog: Catalog


Event = (
    SessionCreated
    | SessionDeleted
    | SessionStatus
    | SessionIdle
    | SessionError
    | UserMessage
    | AssistantMessage
    | PartUpdated
    | PartDelta
    | TimerFired
    | ResendResult
    | RecoveredResend
    | CatalogSeen
)
