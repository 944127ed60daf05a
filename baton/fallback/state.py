"""Per-session records the fallback policy keeps (spec §3.4 tracking, §6.2 fallback state).

Plain mutable, slotted dataclasses: the policy is their only writer (one engine loop),
and observers get frozen snapshots (:class:`SessionSnapshot`), never these objects.
:class:`PolicyState` is everything the policy's parts share: the settings, the shared cooldown
table and the sessions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from baton.catalog import EMPTY_CATALOG, Catalog
from baton.chains import resolve_chain
from baton.cooldowns import Cooldowns
from baton.events import StatusType
from baton.fallback.core import FallbackCore
from baton.fallback.guards import Guard
from baton.settings import Config, RuntimeFallbackConfig

__all__ = [
    "OWN_ABORT_GRACE_S", "FallbackState", "PolicyState", "Prepared", "Session", "SessionSnapshot", "Turn",
    "parts_by_id",
]

OWN_ABORT_GRACE_S = 5.0
"""How long an abort baton sent is expected to echo back (an abort error, an empty completion, idle)."""


def parts_by_id(parts: tuple[dict[str, Any], ...]) -> dict[str, dict[str, Any]]:
    """A fetched message's parts in order, keyed like the stream's (by part id)."""
    return {p.get("id", str(i)): p for i, p in enumerate(parts)}


@dataclass(slots=True)
class Turn:
    """The newest user message of a session and the assistant messages answering it."""

    user_id: str
    model: str | None
    agent: str | None
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)
    # assistant message id -> its model; insertion order = arrival order
    assistants: dict[str, str | None] = field(default_factory=dict)
    # assistant messages that produced visible output (text, reasoning, tool)
    outputs: set[str] = field(default_factory=set)
    started: bool = False
    # set when the turn's model was cooling at arrival: switch once the turn starts (§8.6)
    reroute: bool = False
    # set when the turn went to a fallback model while restore_primary_after_cooldown is on:
    # back to the primary once the turn starts, if it has cooled
    restore: bool = False


@dataclass(frozen=True, slots=True)
class Prepared:
    """A tentative switch (§6.3.4): committed when the re-send is accepted, else dropped."""

    token: int
    index: int
    model: str
    failing: str
    reason: str
    # The state was reset (a manual model change) while the call ran: its outcome commits nothing.
    stale: bool = False
    # 0: a switch. n >= 2: try n of the same re-send on the same model, after opencode failed the
    # previous one right away (see ``Switcher.resend_failed``).
    retry: int = 0
    abort: bool = False
    # Finishes a re-send a killed baton had decided (spec §7 rule 8).
    recovered: bool = False
    # A fresh start on ``model`` rather than a step down the chain: a parked turn resumed, or the
    # primary restored; the commit resets the attempts.
    restart: bool = False
    # Chain models the guards passed over on the way (``backup: pricier``), for the toast.
    passed: tuple[str, ...] = ()


@dataclass(slots=True)
class FallbackState:
    """Where a session stands in its fallback chain (§6.2)."""

    original: str
    current: str
    chain: tuple[str, ...]
    chain_source: str
    index: int = -1
    attempts: int = 0
    pending: str | None = None
    awaiting: bool = False
    in_flight: Prepared | None = None
    # baton aborted this turn until then. Only an abort error consumes it; otherwise it lapses:
    # one abort can yield an empty completion, an idle AND a late abort error, and that error
    # (which names no message) must not read as the user's stop (seen under load, §6.7).
    own_abort_until: float = 0.0
    retry_key: str | None = None
    replaced: set[str] = field(default_factory=set)
    decided: set[str] = field(default_factory=set)
    watchdog_at: float | None = None
    # The latest switch's re-send: calls made (the switch's own is 1), when the newest was
    # committed, whether it aborted the turn, a retry due at, and an error that arrived while
    # it was in flight (decided once it commits).
    resend_tries: int = 0
    resent_at: float | None = None
    resend_aborted: bool = False
    resend_retry_at: float | None = None
    failed_in_flight: str | None = None
    # The store holds a re-send intent for this session (``SaveIntent`` emitted, not yet cleared).
    intent_saved: bool = False
    # A parked turn (:mod:`baton.fallback.parking`): the re-send of ``park_model`` waits until
    # ``parked_until``; ``parked_at`` bounds how long it may wait in all (``max_park_seconds``).
    parked_until: float | None = None
    park_model: str | None = None
    parked_at: float | None = None


@dataclass(slots=True)
class Session:
    """Everything the policy knows about one opencode session."""

    id: str
    last_seen: float
    directory: str | None = None
    parent_id: str | None = None
    status: StatusType = StatusType.IDLE
    turn: Turn | None = None
    agent_raw: str | None = None
    agent_key: str | None = None
    fb: FallbackState | None = None
    # The session's size in tokens, as its newest assistant message reported it (context guard).
    context_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class SessionSnapshot:
    """What the status view shows of a session."""

    session_id: str
    status: str
    agent: str | None
    original: str | None
    current: str | None
    attempts: int
    max_attempts: int
    chain: tuple[str, ...]
    awaiting: bool
    last_seen: float
    parked_until: float | None = None
    park_model: str | None = None


@dataclass(slots=True)
class PolicyState:
    """What the policy's parts share (:mod:`baton.fallback.policy`): they hold no state of their own."""

    config: Config
    cooldowns: Cooldowns
    sessions: dict[str, Session] = field(default_factory=dict)
    # The newest re-send's token: a ``ResendResult`` commits only the switch it answers.
    token: int = 0
    next_sweep: float | None = None
    catalog: Catalog = EMPTY_CATALOG
    """opencode's models as the newest attach found them (costs, context windows, connected)."""

    @property
    def settings(self) -> RuntimeFallbackConfig:
        return self.config.runtime_fallback

    @property
    def core(self) -> FallbackCore:
        """The mechanics sessions share with tasks (:mod:`baton.fallback.core`)."""
        return FallbackCore(self.settings, self.cooldowns, self.config.baton.max_cooldown_seconds)

    def guard(self, session: Session, reference: str | None) -> Guard:
        """The spend and context guards for a fallback of ``session`` away from ``reference``."""
        return Guard(self.catalog, max_cost_ratio=self.config.max_cost_ratio_for(session.agent_key),
                     reference=reference, context_tokens=session.context_tokens)

    def new_state(self, session: Session, model: str) -> FallbackState:
        """A fresh fallback state for ``session`` on ``model``: its chain resolved now."""
        chain = resolve_chain(self.config, agent_key=session.agent_key, category=None, model=model)
        return FallbackState(original=model, current=model, chain=chain.models, chain_source=chain.source)
