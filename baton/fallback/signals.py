"""Failure signals for the fallback policy: one decision per failure (spec §6.4).

A part of :class:`baton.fallback.policy.FallbackPolicy`. Three events say a model failed: a
``retry`` status (opencode's own retry countdown, the earliest signal), ``session.error``, and an
assistant message carrying an error or auto-retry text. All three go through
:meth:`Signals._on_failure`, one decision over one per-session state, so one failure yields at
most one switch. Guards, in order: classify and learn the cooldown; dedupe (terminal errors by
assistant message id, retry signals by ``attempt:model:class``); drop stale signals (messages
already replaced, older turns, models the session has left); drop signals while a re-send is in
flight; tell baton's own aborts from the user's. What a switch then does is
:class:`baton.fallback.switching.Switcher`'s.
"""

from __future__ import annotations

from collections.abc import Sequence

from baton.actions import Action, CancelTimer, Note
from baton.chains import agent_primary_model
from baton.events import AssistantMessage, SessionError, SessionStatus
from baton.fallback.core import Choice, Verdict
from baton.fallback.errors import ErrorType
from baton.fallback.retry_status import provider_retry_at, retry_key
from baton.fallback.state import PolicyState, Session
from baton.fallback.switching import NO_ACTIONS, Switcher, watchdog_key
from baton.fallback.tracking import Tracker
from baton.models import same_model

__all__ = ["Signals"]


class Signals:
    """The three failure signals, attributed to a model and decided once."""

    def __init__(self, state: PolicyState, switcher: Switcher, tracker: Tracker) -> None:
        self.state = state
        self.switcher = switcher
        self.tracker = tracker

    def on_retry_status(self, session: Session, event: SessionStatus, now: float) -> Sequence[Action]:
        if self.state.settings.timeout_seconds <= 0 or not event.message:
            return NO_ACTIONS
        info = self.state.core.classify(event.message, now)
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

    def on_session_error(self, event: SessionError, now: float) -> Sequence[Action]:
        if event.session_id is None:
            return [Note(None, "ignored", "an error event without a session id was ignored")]
        session = self.tracker.session(event.session_id, now)
        if session is None:
            return NO_ACTIONS
        message_id, failing = self._attribute(session, None)
        return self._on_failure(
            session, now, error=event.error, message_id=message_id, failing=failing, terminal=True, named=False
        )

    def on_assistant(self, session: Session, event: AssistantMessage, now: float) -> Sequence[Action]:
        """An assistant message's error, retry text, or empty completion (an abort, §6.7)."""
        if event.error is not None:
            _, failing = self._attribute(session, event.message_id, event.model)
            return self._on_failure(
                session, now, error=event.error, message_id=event.message_id, failing=failing,
                terminal=True, parent_id=event.parent_id,
            )
        if event.retry_text is not None:
            return self._on_retry_text(session, event, now)
        if event.completed:
            return self._on_completed_empty(session, event, now)
        return NO_ACTIONS

    def _on_retry_text(self, session: Session, event: AssistantMessage, now: float) -> Sequence[Action]:
        if self.state.settings.timeout_seconds <= 0 or event.retry_text is None:
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
            return self.switcher.user_stopped(session)
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
            model = agent_primary_model(self.state.config, session.agent_key)
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
            fb = session.fb = self.state.new_state(session, failing)
            if key is not None:
                fb.retry_key = key
        # Classify, learn the cooldown (shared by every session and task) and walk the chain once;
        # what follows is what a session does with the decision.
        decision = self.state.core.decide(
            error, failing, now, chain=fb.chain, after=fb.index, attempts=fb.attempts, avoid=(fb.current,),
            provider_until=provider_until, assume_retryable=signal, connected=self.state.catalog.connected,
            guard=self.state.guard(session, failing),
        )
        if decision.cooldown is not None:
            actions.append(decision.cooldown)
        info, retryable = decision.info, decision.retryable
        # opencode failing baton's own re-send at once is retried before any other reading (§6.3).
        if terminal and not retryable and self.switcher.resend_failed(session, info, message_id, named, now, actions):
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
                actions += self.switcher.user_stopped(session)
            return actions
        if terminal:
            fb.awaiting = False
            if fb.watchdog_at is not None:
                fb.watchdog_at = None
                actions.append(CancelTimer(watchdog_key(sid)))
        if not retryable and info.type is ErrorType.CONTEXT_OVERFLOW and self._larger_model(session, failing, now,
                                                                                             actions):
            return actions
        if not retryable:
            actions.append(
                Note(sid, "not_retryable", f"{failing} failed with an error that is not retryable: "
                     f"{info.message[:200]}", {"model": failing, "status": info.status_code})
            )
            return actions
        self.switcher.switch(session, failing, message_id, now, actions, reason=info.message[:200],
                             cause="error" if terminal else "retry_status", choice=decision.next)
        return actions

    def _larger_model(self, session: Session, failing: str, now: float, actions: list[Action]) -> bool:
        """``baton.on_context_overflow: larger-model``: a context overflow moves the session to the
        next chain model whose window is larger than the failing model's (and than the session).
        The failing model does not cool: it is fine for smaller sessions. True when switching."""
        fb = session.fb
        catalog = self.state.catalog
        window = catalog.context(failing)
        if self.state.config.baton.on_context_overflow != "larger-model" or fb is None or window is None:
            return False
        need = max(window, session.context_tokens or 0)
        guard = self.state.guard(session, failing)
        for index in range(max(fb.index + 1, 0), len(fb.chain)):
            model = fb.chain[index]
            larger = catalog.context(model)
            if larger is None or larger <= need or self.state.core.cooling(model, now):
                continue
            if catalog.is_connected(model) is False or guard.refusal(model) is not None:
                continue
            self.switcher.switch(session, failing, None, now, actions,
                                 reason=f"context overflow ({window:,} tokens); {model} holds {larger:,}",
                                 cause="context_overflow",
                                 choice=Choice(index, model))
            return True
        actions.append(Note(session.id, "no_fallback", f"{failing} overflowed its context and no chain model has "
                            "a larger window", {"model": failing}))
        return True
