"""Actions the decision core asks the engine to carry out.

The core never performs I/O: it returns these, the engine executes them, and anything
whose outcome matters comes back as an event (:class:`baton.events.ResendResult`,
:class:`baton.events.TimerFired`). A re-send is recorded durably (:class:`SaveIntent`) before
its I/O starts, so that a baton killed mid-fallback finishes it after its restart
(:class:`baton.events.RecoveredResend`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

__all__ = [
    "RESEND_INTENT",
    "AbortTurn",
    "Action",
    "CancelTimer",
    "ClearIntent",
    "Note",
    "Resend",
    "ResendIntent",
    "SaveCooldown",
    "SaveIntent",
    "Schedule",
    "Toast",
]

RESEND_INTENT = "resend"
"""The store's ``pending`` kind of re-send intents (keyed by session id)."""


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
class ResendIntent:
    """A re-send decided and not yet known to have reached opencode: enough to finish it, or to
    see that it did, after a restart of baton (spec §7 rule 8).

    The fallback state as it was at the decision (``original``, ``current``, ``chain``,
    ``from_index``, ``attempts``) and the tentative choice (``index``, ``model``): a recovered
    re-send commits like the original would have. ``seen``: the turn's assistant messages at
    the decision, so that one the re-send produced can be told from the failed ones.
    """

    session_id: str
    message_id: str | None
    model: str
    agent: str | None
    directory: str | None
    original: str
    current: str
    failing: str
    reason: str
    chain: tuple[str, ...]
    chain_source: str
    index: int
    from_index: int
    attempts: int
    retry: int
    seen: tuple[str, ...]
    decided_at: float
    park_until: float | None = None
    """Set for a parked turn (:mod:`baton.fallback.parking`): the re-send waits until then."""

    def to_row(self) -> dict[str, Any]:
        """The JSON object the store keeps."""
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**row, "chain": list(self.chain), "seen": list(self.seen)}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ResendIntent:
        """The intent a stored row holds; KeyError or TypeError when it is not one."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "park_until":
                value = row.get(f.name)
                if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
                    raise TypeError(f"park_until: {value!r} is not a time")
                values[f.name] = value
                continue
            value = row[f.name]
            if f.name in _INT_FIELDS:
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif f.name in ("chain", "seen"):
                ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
                value = tuple(value) if ok else value
            elif f.name == "decided_at":
                ok = isinstance(value, int | float) and not isinstance(value, bool)
            elif f.name in ("message_id", "agent", "directory"):
                ok = value is None or isinstance(value, str)
            else:
                ok = isinstance(value, str)
            if not ok:
                raise TypeError(f"{f.name}: {value!r} is not what a re-send intent holds")
            values[f.name] = value
        return cls(**values)


_INT_FIELDS = frozenset({"index", "from_index", "attempts", "retry"})


@dataclass(frozen=True, slots=True)
class AbortTurn:
    """Stop the session's running turn and nothing more (a park stops opencode's hopeless retry loop)."""

    session_id: str
    directory: str | None


@dataclass(frozen=True, slots=True)
class SaveIntent:
    """Record a re-send intent in the store, before the ``Resend`` that follows it starts."""

    intent: ResendIntent


@dataclass(frozen=True, slots=True)
class ClearIntent:
    """The session's re-send intent is settled (its outcome known, or moot): forget it."""

    session_id: str


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
    source: str = "configured"
    """Where ``until`` came from (:class:`baton.fallback.reset_times.ResetSource`'s values)."""


@dataclass(frozen=True, slots=True)
class Note:
    """A journal entry: why the core did (or did not do) something."""

    session_id: str | None
    kind: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)


Action = Resend | AbortTurn | Toast | Schedule | CancelTimer | SaveCooldown | Note | SaveIntent | ClearIntent
