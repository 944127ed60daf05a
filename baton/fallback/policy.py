"""The runtime-fallback policy: a pure state machine, ``handle(event, now) -> actions``.

Theory of operation (rules: ``docs/behaviour/runtime-fallback.md``, cited as §n):

* Tracking (:mod:`baton.fallback.tracking`). Every event updates a session: its status, its
  current *turn* (the newest user message with its parts) and the assistant messages answering it.
* Signals (:mod:`baton.fallback.signals`). A ``retry`` status, ``session.error`` and an assistant
  message with an error or auto-retry text say a model failed; each goes through one decision per
  failure, with its guards (dedupe, stale, in flight, baton's own abort), so one failure yields at
  most one switch.
* Switch (:mod:`baton.fallback.switching`). Choose the next usable model *before* touching the
  session. Only then abort and re-send the user's own message, same id, every part. The choice is
  tentative until the executor reports the prompt accepted (``ResendResult``); a refusal rolls it
  back.
* Timers (:mod:`baton.fallback.timers`). After a switch, a watchdog (an action, not a sleep) moves
  on when the new model shows no output within ``timeout_seconds``; sessions unseen for 30
  minutes are forgotten.
* Parking (:mod:`baton.fallback.parking`). With no usable model left, the turn is parked: opencode's
  retry stopped, the message re-sent when the first model of the chain resets.
* Recovery (:mod:`baton.fallback.recovery`). A re-send a killed baton had decided is finished
  after its restart, exactly once; a park is kept.

Composition: :class:`FallbackPolicy` is a facade (the event dispatch and the views) over those
parts, which share one :class:`baton.fallback.state.PolicyState` and hold no state of their own.
Classifying a failure, the shared cooldown and the chain walk are the fallback core tasks use too
(:mod:`baton.fallback.core`).

Nothing here performs I/O, reads a clock or sleeps: time arrives as ``now`` (epoch seconds).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from baton.actions import Action
from baton.cooldowns import Cooldowns
from baton.events import (
    COMPACTION_AGENT,
    AssistantMessage,
    CatalogSeen,
    Event,
    PartDelta,
    PartUpdated,
    RecoveredResend,
    ResendResult,
    SessionCreated,
    SessionDeleted,
    SessionError,
    SessionIdle,
    SessionStatus,
    StatusType,
    TimerFired,
    UserMessage,
)
from baton.fallback.core import FallbackCore
from baton.fallback.parking import Parker
from baton.fallback.recovery import Recovery
from baton.fallback.signals import Signals
from baton.fallback.state import PolicyState, Session, SessionSnapshot
from baton.fallback.switching import NO_ACTIONS, Switcher
from baton.fallback.timers import Timers
from baton.fallback.tracking import Tracker
from baton.settings import Config, RuntimeFallbackConfig

__all__ = ["FallbackPolicy"]


class FallbackPolicy:
    """Decides, per session, when to leave a failing model and which model to take next."""

    def __init__(
        self,
        config: Config,
        cooldowns: Cooldowns,
        *,
        owned_elsewhere: Callable[[str], bool] = lambda _session_id: False,
    ) -> None:
        self.state = state = PolicyState(config, cooldowns)
        self.parker = parker = Parker(state)
        self.switcher = switcher = Switcher(state, parker)
        self.tracker = tracker = Tracker(state, switcher, parker, owned_elsewhere)
        self.signals = signals = Signals(state, switcher, tracker)
        self.timers = timers = Timers(state, switcher, parker)
        self.recovery = recovery = Recovery(state, switcher)
        # Set while another fallback (oh-my-opencode's own) would act on the same failures (§10.3).
        self.passive_reason: str | None = None
        self._handlers: dict[type, Callable[[Any, float], Sequence[Action]]] = {
            PartDelta: tracker.on_delta,
            PartUpdated: tracker.on_part,
            AssistantMessage: self._on_assistant,
            UserMessage: tracker.on_user,
            SessionStatus: self._on_status,
            SessionIdle: self._on_idle,
            SessionError: signals.on_session_error,
            SessionCreated: tracker.on_created,
            SessionDeleted: timers.on_deleted,
            TimerFired: timers.on_timer,
            ResendResult: switcher.on_resend_result,
            RecoveredResend: recovery.on_recovered,
            CatalogSeen: self._on_catalog,
        }

    # ------------------------------------------------------------------ the shared state

    @property
    def config(self) -> Config:
        return self.state.config

    @property
    def settings(self) -> RuntimeFallbackConfig:
        return self.state.settings

    @property
    def cooldowns(self) -> Cooldowns:
        return self.state.cooldowns

    @property
    def sessions(self) -> dict[str, Session]:
        return self.state.sessions

    @property
    def core(self) -> FallbackCore:
        return self.state.core

    # ------------------------------------------------------------------ entry point

    def handle(self, event: Event, now: float) -> Sequence[Action]:
        """Feed one event; return what the engine must do (read-only: often the shared empty
        :data:`NO_ACTIONS`). Cheap for the common events."""
        if not self.settings.enabled or self.passive_reason is not None:
            return NO_ACTIONS
        actions = self._handlers[type(event)](event, now)
        if self.state.next_sweep is None or now >= self.state.next_sweep:
            actions = [*actions, *self.timers.sweep(now)]
        return actions

    def snapshot(self, now: float) -> list[SessionSnapshot]:
        """Frozen view of the sessions that have fallback state, newest activity first."""
        rows = [
            SessionSnapshot(
                session_id=s.id,
                status=s.status.value,
                agent=s.agent_raw,
                original=s.fb.original if s.fb else None,
                current=s.fb.current if s.fb else None,
                attempts=s.fb.attempts if s.fb else 0,
                max_attempts=self.settings.max_fallback_attempts,
                chain=s.fb.chain if s.fb else (),
                awaiting=bool(s.fb and s.fb.awaiting),
                last_seen=s.last_seen,
                parked_until=s.fb.parked_until if s.fb else None,
                park_model=s.fb.park_model if s.fb else None,
            )
            for s in self.sessions.values()
            if s.fb is not None
        ]
        rows.sort(key=lambda row: row.last_seen, reverse=True)
        return rows

    # ------------------------------------------------------------------ events two parts read

    def _on_catalog(self, event: CatalogSeen, now: float) -> Sequence[Action]:
        self.state.catalog = event.catalog
        return NO_ACTIONS

    def _on_status(self, event: SessionStatus, now: float) -> Sequence[Action]:
        session = self.tracker.session(event.session_id, now)
        if session is None:
            return NO_ACTIONS
        if event.type is StatusType.IDLE:
            return self.tracker.idle(session, now)
        session.status = event.type
        if event.type is StatusType.BUSY:
            return self.tracker.turn_started(session, now)
        return [*self.tracker.turn_started(session, now), *self.signals.on_retry_status(session, event, now)]

    def _on_idle(self, event: SessionIdle, now: float) -> Sequence[Action]:
        session = self.tracker.session(event.session_id, now)
        return NO_ACTIONS if session is None else self.tracker.idle(session, now)

    def _on_assistant(self, event: AssistantMessage, now: float) -> Sequence[Action]:
        if event.agent == COMPACTION_AGENT:
            return NO_ACTIONS
        session = self.tracker.session(event.session_id, now)
        if session is None:
            return NO_ACTIONS
        return [*self.tracker.on_assistant(session, event, now), *self.signals.on_assistant(session, event, now)]
