"""The runtime-fallback policy: a pure state machine, ``handle(event, now) -> actions``.

Theory of operation (rules: ``docs/behaviour/runtime-fallback.md``, cited as §n):

* Tracking. Every event updates a :class:`Session`: its status, its current *turn* (the
  newest user message with its parts) and the assistant messages answering that turn.
* Signals. Three events say a model failed: a ``retry`` status (opencode's own retry
  countdown, the earliest signal), ``session.error``, and an assistant message carrying an
  error or auto-retry text. All three go through :meth:`FallbackPolicy._on_failure`, one
  decision function over one per-session state, so one failure yields at most one switch.
* Guards, in order: classify and learn the cooldown; dedupe (terminal errors by assistant
  message id, retry signals by ``attempt:model:class``); drop stale signals (messages already
  replaced, older turns, models the session has left); drop signals while a re-send is in
  flight; tell baton's own aborts from the user's.
* Switch. Choose the next usable model *before* touching the session. Only then abort and
  re-send the user's own message, same id, every part. The choice is tentative until the
  executor reports the prompt accepted (``ResendResult``); a refusal rolls it back.
* Watchdog. After a switch, a timer (an action, not a sleep) moves on when the new model
  shows no output within ``timeout_seconds``.

This module holds the tracking and the signals; the mechanics of a switch (choose, re-send,
commit or roll back, watchdog) are in :mod:`baton.fallback.switching`, and finishing a re-send
a killed baton had decided in :mod:`baton.fallback.recovery`: its base classes. Classifying a
failure, the shared cooldown and the chain walk are the fallback core tasks use too
(:mod:`baton.fallback.core`).

Nothing here performs I/O, reads a clock or sleeps: time arrives as ``now`` (epoch seconds).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from baton.actions import Action, CancelTimer, Note
from baton.chains import agent_key_for, agent_primary_model
from baton.cooldowns import Cooldowns
from baton.events import (
    COMPACTION_AGENT,
    AssistantMessage,
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
from baton.fallback.core import Verdict
from baton.fallback.recovery import Recovery
from baton.fallback.retry_status import provider_retry_at, retry_key
from baton.fallback.state import Session, SessionSnapshot, Turn, parts_by_id
from baton.fallback.switching import NO_ACTIONS, watchdog_key
from baton.models import same_model
from baton.settings import Config

__all__ = ["FallbackPolicy"]

OUTPUT_PART_TYPES = frozenset({"text", "reasoning", "tool"})


class FallbackPolicy(Recovery):
    """Decides, per session, when to leave a failing model and which model to take next."""

    def __init__(
        self,
        config: Config,
        cooldowns: Cooldowns,
        *,
        owned_elsewhere: Callable[[str], bool] = lambda _session_id: False,
    ) -> None:
        super().__init__(config, cooldowns)
        # Task children belong to the scheduler: one owner per session (§1).
        self._owned_elsewhere = owned_elsewhere
        # Set while another fallback (oh-my-opencode's own) would act on the same failures (§10.3).
        self.passive_reason: str | None = None
        self._handlers: dict[type, Callable[[Any, float], Sequence[Action]]] = {
            PartDelta: self._on_delta,
            PartUpdated: self._on_part,
            AssistantMessage: self._on_assistant,
            UserMessage: self._on_user,
            SessionStatus: self._on_status,
            SessionIdle: self._on_idle,
            SessionError: self._on_session_error,
            SessionCreated: self._on_created,
            SessionDeleted: self._on_deleted,
            TimerFired: self._on_timer,
            ResendResult: self._on_resend_result,
            RecoveredResend: self._on_recovered,
        }

    # ------------------------------------------------------------------ entry point

    def handle(self, event: Event, now: float) -> Sequence[Action]:
        """Feed one event; return what the engine must do (read-only: often the shared empty
        :data:`NO_ACTIONS`). Cheap for the common events."""
        if not self.settings.enabled or self.passive_reason is not None:
            return NO_ACTIONS
        actions = self._handlers[type(event)](event, now)
        if self._next_sweep is None or now >= self._next_sweep:
            actions = [*actions, *self._sweep(now)]
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
            )
            for s in self.sessions.values()
            if s.fb is not None
        ]
        rows.sort(key=lambda row: row.last_seen, reverse=True)
        return rows

    # ------------------------------------------------------------------ tracking

    def _session(self, session_id: str, now: float) -> Session | None:
        if self._owned_elsewhere(session_id):
            return None
        session = self.sessions.get(session_id)
        if session is None:
            session = self.sessions[session_id] = Session(id=session_id, last_seen=now)
        else:
            session.last_seen = now
        return session

    def _on_created(self, event: SessionCreated, now: float) -> Sequence[Action]:
        session = self._session(event.session_id, now)
        if session is not None:
            session.directory = event.directory or session.directory
            session.parent_id = event.parent_id
        return NO_ACTIONS

    def _on_part(self, event: PartUpdated, now: float) -> Sequence[Action]:
        session = self.sessions.get(event.session_id)
        if session is None or session.turn is None:
            return NO_ACTIONS
        turn = session.turn
        if event.message_id == turn.user_id:
            turn.parts[event.part_id] = event.part
            return NO_ACTIONS
        is_output = event.type in OUTPUT_PART_TYPES and (event.type != "text" or bool(event.text))
        if is_output and event.message_id in turn.assistants:
            return self._on_output(session, event.message_id, now)
        return NO_ACTIONS

    def _on_delta(self, event: PartDelta, now: float) -> Sequence[Action]:
        # The hot path: most deltas belong to sessions with nothing to decide.
        session = self.sessions.get(event.session_id)
        if session is None or session.turn is None or not event.delta:
            return NO_ACTIONS
        turn = session.turn
        if event.message_id in turn.outputs or event.message_id not in turn.assistants:
            return NO_ACTIONS
        return self._on_output(session, event.message_id, now)

    def _on_output(self, session: Session, message_id: str, now: float) -> Sequence[Action]:
        """Visible output in the current turn: an answer when it comes from the model in use (§6.6)."""
        session.last_seen = now
        turn = session.turn
        assert turn is not None
        turn.outputs.add(message_id)
        fb = session.fb
        if fb is None:
            return NO_ACTIONS
        model = turn.assistants.get(message_id)
        in_use = (fb.current, fb.pending, fb.in_flight.model if fb.in_flight else None)
        if not any(same_model(model, m) for m in in_use):
            return NO_ACTIONS
        fb.retry_key = None
        if not fb.awaiting or fb.in_flight is not None:
            return NO_ACTIONS
        actions: list[Action] = [
            Note(session.id, "answered", f"{model} answered; the switch is confirmed", {"model": model})
        ]
        self._clear_switch(fb, actions, session.id)
        return actions

    # ------------------------------------------------------------------ user turns (§8)

    def _on_user(self, event: UserMessage, now: float) -> Sequence[Action]:
        if event.agent == COMPACTION_AGENT:
            return NO_ACTIONS
        session = self._session(event.session_id, now)
        if session is None:
            return NO_ACTIONS
        if event.agent:
            session.agent_raw = event.agent
            session.agent_key = agent_key_for(self.config, event.agent)
        model = event.model
        turn = session.turn
        actions: list[Action] = []
        if turn is not None and turn.user_id == event.message_id:
            if event.parts is not None:
                turn.parts = parts_by_id(event.parts)
            if model is None or same_model(model, turn.model) or self._is_own_model(session, model):
                turn.model = model or turn.model
                return actions
            turn.model = model
            self._manual_change(session, model, now, actions, "the message's model was changed")
            return actions
        # A new turn: the keys and id sets of the old one no longer apply (§8.2).
        session.turn = turn = Turn(user_id=event.message_id, model=model, agent=event.agent)
        if event.parts is not None:
            turn.parts = parts_by_id(event.parts)
        fb = session.fb
        if model is None:
            return actions
        if fb is None:
            session.fb = self._new_state(session, model)
        else:
            fb.retry_key = None
            fb.replaced.clear()
            fb.decided.clear()
            self._drop_resend_retry(fb, actions, session.id)  # a retry re-sends the turn it was for only
            self._clear_intent(fb, actions, session.id)  # a newer prompt: the re-send is moot (§7 rule 8)
            if not self._is_own_model(session, model):
                self._manual_change(session, model, now, actions, "a prompt chose another model")
        if self.core.cooling(model, now):
            turn.reroute = True
        return actions

    def _is_own_model(self, session: Session, model: str) -> bool:
        fb = session.fb
        if fb is None:
            return False
        prepared = fb.in_flight.model if fb.in_flight else None
        return any(same_model(model, m) for m in (fb.current, fb.pending, prepared))

    def _manual_change(
        self, session: Session, model: str, now: float, actions: list[Action], why: str
    ) -> None:
        """The user picked a model: a fresh chain for it, counters dropped (§8.4)."""
        old = session.fb
        if old is not None and old.watchdog_at is not None:
            actions.append(CancelTimer(watchdog_key(session.id)))
        if old is not None:
            self._drop_resend_retry(old, actions, session.id)
            self._clear_intent(old, actions, session.id)
        session.fb = self._new_state(session, model)
        if old is not None and old.in_flight is not None:
            # The re-send still runs: no second switch may start before it reports (§6.8).
            session.fb.in_flight = replace(old.in_flight, stale=True)
            session.fb.own_abort_until = old.own_abort_until
        actions.append(
            Note(session.id, "reset", f"{why}: now on {model}, fallback chain restarted", {"model": model})
        )

    def _turn_started(self, session: Session, now: float) -> Sequence[Action]:
        """First sign the turn runs: carry out a pending proactive reroute (§8.6)."""
        turn = session.turn
        if turn is None or turn.started:
            return NO_ACTIONS
        turn.started = True
        if not turn.reroute or session.fb is None or turn.model is None:
            return NO_ACTIONS
        turn.reroute = False
        if not self.core.cooling(turn.model, now):
            return NO_ACTIONS
        actions: list[Action] = []
        self._switch(session, turn.model, None, now, actions, reason=f"{turn.model} is cooling down")
        return actions

    # ------------------------------------------------------------------ status and idle

    def _on_status(self, event: SessionStatus, now: float) -> Sequence[Action]:
        session = self._session(event.session_id, now)
        if session is None:
            return NO_ACTIONS
        if event.type is StatusType.IDLE:
            return self._idle(session, now)
        session.status = event.type
        if event.type is StatusType.BUSY:
            return self._turn_started(session, now)
        actions = list(self._turn_started(session, now))
        actions += self._on_retry_status(session, event, now)
        return actions

    def _on_idle(self, event: SessionIdle, now: float) -> Sequence[Action]:
        session = self._session(event.session_id, now)
        return NO_ACTIONS if session is None else self._idle(session, now)

    def _idle(self, session: Session, now: float) -> Sequence[Action]:
        """Idle also follows every abort, so it never means "answered" (§6.7.3)."""
        was_idle = session.status is StatusType.IDLE
        session.status = StatusType.IDLE
        fb = session.fb
        if was_idle or fb is None:
            return NO_ACTIONS
        if fb.awaiting:
            return NO_ACTIONS
        fb.pending = None
        fb.retry_key = None
        if fb.watchdog_at is not None:
            fb.watchdog_at = None
            return [CancelTimer(watchdog_key(session.id))]
        return NO_ACTIONS

    # ------------------------------------------------------------------ failure signals (§6.4)

    def _on_retry_status(self, session: Session, event: SessionStatus, now: float) -> Sequence[Action]:
        if self.settings.timeout_seconds <= 0 or not event.message:
            return NO_ACTIONS
        info = self.core.classify(event.message)
        if not info.retryable:
            return NO_ACTIONS
        message_id, failing = self._attribute(session, None)
        key = retry_key({"attempt": event.attempt, "message": event.message}, failing)
        fb = session.fb
        if fb is not None:
            if key == fb.retry_key:
                return NO_ACTIONS
            fb.retry_key = key
        until = provider_retry_at(event.next_ms, event.attempt, now)
        return self._on_failure(
            session, now, error=event.message, message_id=message_id, failing=failing,
            terminal=False, provider_until=until, key=key,
        )

    def _on_session_error(self, event: SessionError, now: float) -> Sequence[Action]:
        if event.session_id is None:
            return [Note(None, "ignored", "an error event without a session id was ignored")]
        session = self._session(event.session_id, now)
        if session is None:
            return NO_ACTIONS
        message_id, failing = self._attribute(session, None)
        return self._on_failure(
            session, now, error=event.error, message_id=message_id, failing=failing, terminal=True, named=False
        )

    def _on_assistant(self, event: AssistantMessage, now: float) -> Sequence[Action]:
        if event.agent == COMPACTION_AGENT:
            return NO_ACTIONS
        session = self._session(event.session_id, now)
        if session is None:
            return NO_ACTIONS
        turn = session.turn
        actions: list[Action] = []
        if turn is not None and (event.parent_id == turn.user_id or event.parent_id is None):
            if event.message_id not in turn.assistants:
                turn.assistants[event.message_id] = event.model
                actions += self._turn_started(session, now)
            elif event.model is not None:
                turn.assistants[event.message_id] = event.model
            if event.has_output and event.message_id not in turn.outputs:
                actions += self._on_output(session, event.message_id, now)
        if event.error is not None:
            _, failing = self._attribute(session, event.message_id, event.model)
            actions += self._on_failure(
                session, now, error=event.error, message_id=event.message_id, failing=failing,
                terminal=True, parent_id=event.parent_id,
            )
        elif event.retry_text is not None:
            actions += self._on_retry_text(session, event, now)
        elif event.completed:
            actions += self._on_completed_empty(session, event, now)
        return actions

    def _on_retry_text(self, session: Session, event: AssistantMessage, now: float) -> Sequence[Action]:
        if self.settings.timeout_seconds <= 0 or event.retry_text is None:
            return NO_ACTIONS
        _, failing = self._attribute(session, event.message_id, event.model)
        key = retry_key({"message": event.retry_text}, failing)
        fb = session.fb
        if fb is not None:
            if key == fb.retry_key:
                return NO_ACTIONS
            fb.retry_key = key
        return self._on_failure(
            session, now, error=event.retry_text, message_id=event.message_id, failing=failing,
            terminal=False, parent_id=event.parent_id, key=key, signal=True,
        )

    def _on_completed_empty(self, session: Session, event: AssistantMessage, now: float) -> Sequence[Action]:
        """An assistant message that ended with no output and no error: an abort (§6.7)."""
        fb, turn = session.fb, session.turn
        if fb is None or turn is None or event.message_id in turn.outputs:
            return NO_ACTIONS
        if event.message_id in fb.replaced or fb.own_abort_until > now:
            return NO_ACTIONS
        if fb.awaiting and fb.in_flight is None and same_model(event.model, fb.current):
            return self._user_stopped(session)
        return NO_ACTIONS

    def _attribute(
        self, session: Session, message_id: str | None, model: str | None = None
    ) -> tuple[str | None, str | None]:
        """The assistant message a failure belongs to, and the failing model (§6.4 rule 4)."""
        turn = session.turn
        if message_id is None and turn is not None and turn.assistants:
            message_id = next(reversed(turn.assistants))
        if model is None and turn is not None and message_id is not None:
            model = turn.assistants.get(message_id)
        if model is None and turn is not None:
            model = turn.model
        if model is None and session.fb is not None:
            model = session.fb.current
        if model is None and session.agent_key is not None:
            model = agent_primary_model(self.config, session.agent_key)
        return message_id, model

    def _on_failure(
        self,
        session: Session,
        now: float,
        *,
        error: object,
        message_id: str | None,
        failing: str | None,
        terminal: bool,
        provider_until: float | None = None,
        key: str | None = None,
        parent_id: str | None = None,
        signal: bool = False,
        named: bool = True,
    ) -> list[Action]:
        """One decision per failure (§6.4 rules 4–11).

        ``signal``: auto-retry text is retryable by definition (§4.4 rule 3), even when its
        phrase ("usage limit", "limit reached") is not one of the §4.3 classes. ``named``: the
        failure came with its assistant message; False for a ``session.error``, whose
        ``message_id`` is only the newest message of the turn.
        """
        actions: list[Action] = []
        sid = session.id
        if failing is None:
            actions.append(Note(sid, "ignored", "a failure arrived but the failing model is unknown"))
            return actions
        fb = session.fb
        if fb is None:
            fb = session.fb = self._new_state(session, failing)
            if key is not None:
                fb.retry_key = key
        # Classify, learn the cooldown (shared by every session and task) and walk the chain once;
        # what follows is what a session does with the decision.
        decision = self.core.decide(error, failing, now, chain=fb.chain, after=fb.index, attempts=fb.attempts,
                                    avoid=(fb.current,), provider_until=provider_until, assume_retryable=signal)
        if decision.cooldown is not None:
            actions.append(decision.cooldown)
        info, retryable = decision.info, decision.retryable
        # opencode failing baton's own re-send at once is retried before any other reading (§6.3).
        if terminal and not retryable and self._resend_failed(session, info, message_id, named, now, actions):
            return actions
        turn = session.turn
        if terminal:
            dedupe_id = message_id or (f"turn:{turn.user_id}" if turn else None)
            if dedupe_id is not None:
                if dedupe_id in fb.decided:
                    return actions
                fb.decided.add(dedupe_id)
        # Stale: a replaced message, an older turn, or a model the session already left (§6.4.7).
        if message_id is not None and message_id in fb.replaced:
            return actions
        if parent_id is not None and turn is not None and parent_id != turn.user_id:
            return actions
        if not (same_model(failing, fb.current) or same_model(failing, fb.pending)):
            return actions
        if fb.in_flight is not None:
            return actions
        if decision.verdict is Verdict.STOP:
            if fb.own_abort_until > now:
                fb.own_abort_until = 0.0
                return actions
            if fb.awaiting:
                actions += self._user_stopped(session)
            return actions
        if terminal:
            fb.awaiting = False
            if fb.watchdog_at is not None:
                fb.watchdog_at = None
                actions.append(CancelTimer(watchdog_key(sid)))
        if not retryable:
            actions.append(
                Note(sid, "not_retryable", f"{failing} failed with an error that is not retryable: "
                     f"{info.message[:200]}", {"model": failing, "status": info.status_code})
            )
            return actions
        self._switch(session, failing, message_id, now, actions, reason=info.message[:200], choice=decision.next)
        return actions

