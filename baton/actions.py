"""Actions the decision core asks the engine to carry out.

The core never performs I/O: it returns these, the engine executes them, and anything
whose outcome matters comes back as an event (:class:`baton.events.ResendResult`,
:class:`baton.events.TimerFired`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Action", "CancelTimer", "Note", "Resend", "SaveCooldown", "Schedule", "Toast"]


@dataclass(frozen=True, slots=True)
class Resend:
    """Abort the turn (when ``abort``), then send the user's message again on ``model``.

    ``parts`` is None when the stream did not deliver them; the executor then fetches the
    message, and reports ``refused`` without touching the session if it has no parts.
    """

    session_id: str
    token: int
    # None: the newest user message of the session (the stream never showed the turn).
    message_id: str | None
    model: str
    agent: str | None
    parts: tuple[dict[str, Any], ...] | None
    abort: bool
    directory: str | None = None


@dataclass(frozen=True, slots=True)
class Toast:
    title: str
    message: str
    variant: str = "warning"
    directory: str | None = None


@dataclass(frozen=True, slots=True)
class Schedule:
    """Fire ``TimerFired(key)`` at ``at`` (epoch seconds); replaces a timer with the same key."""

    key: str
    at: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    key: str


@dataclass(frozen=True, slots=True)
class SaveCooldown:
    """Persist a model's cooldown so every session, and a restarted baton, skips it."""

    model: str
    until: float
    reason: str


@dataclass(frozen=True, slots=True)
class Note:
    """A journal entry: why the core did (or did not do) something."""

    session_id: str | None
    kind: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)


Action = Resend | Toast | Schedule | CancelTimer | SaveCooldown | Note
