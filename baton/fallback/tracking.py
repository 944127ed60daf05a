"""Tracking for the fallback policy: what each session is doing, turn by turn (spec §3.4, §8).

A part of :class:`baton.fallback.policy.FallbackPolicy`. Every event updates a
:class:`~baton.fallback.state.Session`: its status, its current *turn* (the newest user message
with its parts) and the assistant messages answering that turn. Visible output of the model in
use confirms a switch (§6.6); a new prompt or a changed model resets the fallback state (§8.2,
§8.4); a turn sent to a model that is cooling is moved once it starts (§8.6).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from baton.actions import Action, CancelTimer, Note
from baton.chains import agent_key_for
from baton.events import (
    COMPACTION_AGENT,
    AssistantMessage,
    PartDelta,
    PartUpdated,
    SessionCreated,
    StatusType,
    UserMessage,
)
from baton.fallback.parking import Parker
from baton.fallback.state import PolicyState, Session, Turn, parts_by_id
from baton.fallback.switching import NO_ACTIONS, Switcher, watchdog_key
from baton.models import same_model

__all__ = ["OUTPUT_PART_TYPES", "Tracker"]

OUTPUT_PART_TYPES = frozenset({"text", "reasoning", "tool"})
"""Parts that count as a visible answer (a text part only with text in it)."""


class Tracker:
    """Sessions, turns and output; a manual model change; the proactive reroute."""

    def __init__(self, state: PolicyState, switcher: Switcher, parker: Parker,
                 owned_elsewhere: Callable[[str], bool]) -> None:
        self.state = state
        self.switcher = switcher
        self.parker = parker
        # Task children belong to the scheduler: one owner per session (§1).
        self.owned_elsewhere = owned_elsewhere

    def session(self, session_id: str, now: float) -> Session | None:
        if self.owned_elsewhere(session_id):
            return None
        session = self.state.sessions.get(session_id)
        if session is None:
            session = self.state.sessions[session_id] = Session(id=session_id, last_seen=now)
        else:
            session.last_seen = now
        return session

    def on_created(self, event: SessionCreated, now: float) -> Sequence[Action]:
        session = self.session(event.session_id, now)
        if session is not None:
            session.directory = event.directory or session.directory
            session.parent_id = event.parent_id
        return NO_ACTIONS

    def on_part(self, event: PartUpdated, now: float) -> Sequence[Action]:
        session = self.state.sessions.get(event.session_id)
        if session is None or session.turn is None:
            return NO_ACTIONS
        turn = session.turn
        if event.message_id == turn.user_id:
            turn.parts[event.part_id] = event.part
            return NO_ACTIONS
        is_output = event.type in OUTPUT_PART_TYPES and (event.type != "text" or bool(event.text))
        if is_output and event.message_id in turn.assistants:
            return self.on_output(session, event.message_id, now)
        return NO_ACTIONS

    def on_delta(self, event: PartDelta, now: float) -> Sequence[Action]:
        # The hot path: most deltas belong to sessions with nothing to decide.
        session = self.state.sessions.get(event.session_id)
        if session is None or session.turn is None or not event.delta:
            return NO_ACTIONS
        turn = session.turn
        if event.message_id in turn.outputs or event.message_id not in turn.assistants:
            return NO_ACTIONS
        return self.on_output(session, event.message_id, now)

    def on_output(self, session: Session, message_id: str, now: float) -> Sequence[Action]:
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
        self.switcher.clear_switch(fb, actions, session.id)
        return actions

    # ------------------------------------------------------------------ user turns (§8)

    def on_user(self, event: UserMessage, now: float) -> Sequence[Action]:
        if event.agent == COMPACTION_AGENT:
            return NO_ACTIONS
        session = self.session(event.session_id, now)
        if session is None:
            return NO_ACTIONS
        if event.agent:
            session.agent_raw = event.agent
            session.agent_key = agent_key_for(self.state.config, event.agent)
        model = event.model
        turn = session.turn
        actions: list[Action] = []
        if turn is not None and turn.user_id == event.message_id:
            if event.parts is not None:
                turn.parts = parts_by_id(event.parts)
            if model is None or same_model(model, turn.model) or self.is_own_model(session, model):
                turn.model = model or turn.model
                return actions
            turn.model = model
            self.manual_change(session, model, now, actions, "the message's model was changed")
            return actions
        # A new turn: the keys and id sets of the old one no longer apply (§8.2).
        session.turn = turn = Turn(user_id=event.message_id, model=model, agent=event.agent)
        if event.parts is not None:
            turn.parts = parts_by_id(event.parts)
        fb = session.fb
        if fb is not None and self.parker.unpark(fb, actions, session.id, "a new prompt was sent"):
            self.switcher.clear_intent(fb, actions, session.id)
        if model is None:
            return actions
        if fb is None:
            session.fb = self.state.new_state(session, model)
        else:
            fb.retry_key = None
            fb.replaced.clear()
            fb.decided.clear()
            self.switcher.drop_resend_retry(fb, actions, session.id)  # a retry re-sends the turn it was for only
            self.switcher.clear_intent(fb, actions, session.id)  # a newer prompt: the re-send is moot (§7 rule 8)
            if not self.is_own_model(session, model):
                self.manual_change(session, model, now, actions, "a prompt chose another model")
            elif self.state.settings.restore_primary_after_cooldown and not same_model(model, fb.original):
                turn.restore = True  # decided when the turn starts: the primary may cool meanwhile
        if self.state.core.cooling(model, now):
            turn.reroute = True
        return actions

    def is_own_model(self, session: Session, model: str) -> bool:
        fb = session.fb
        if fb is None:
            return False
        prepared = fb.in_flight.model if fb.in_flight else None
        return any(same_model(model, m) for m in (fb.current, fb.pending, prepared))

    def manual_change(
        self, session: Session, model: str, now: float, actions: list[Action], why: str
    ) -> None:
        """The user picked a model: a fresh chain for it, counters dropped (§8.4)."""
        old = session.fb
        if old is not None and old.watchdog_at is not None:
            actions.append(CancelTimer(watchdog_key(session.id)))
        if old is not None:
            self.parker.unpark(old, actions, session.id, "the model was changed")
            self.switcher.drop_resend_retry(old, actions, session.id)
            self.switcher.clear_intent(old, actions, session.id)
        session.fb = self.state.new_state(session, model)
        if old is not None and old.in_flight is not None:
            # The re-send still runs: no second switch may start before it reports (§6.8).
            session.fb.in_flight = replace(old.in_flight, stale=True)
            session.fb.own_abort_until = old.own_abort_until
        actions.append(
            Note(session.id, "reset", f"{why}: now on {model}, fallback chain restarted", {"model": model})
        )

    def turn_started(self, session: Session, now: float) -> Sequence[Action]:
        """First sign the turn runs: go back to the primary, or carry out a pending proactive reroute (§8.6)."""
        turn = session.turn
        if turn is None or turn.started:
            return NO_ACTIONS
        turn.started = True
        if turn.restore and session.fb is not None:
            turn.restore = False
            restored = self._restore_primary(session, now)
            if restored:
                return restored
        if not turn.reroute or session.fb is None or turn.model is None:
            return NO_ACTIONS
        turn.reroute = False
        if not self.state.core.cooling(turn.model, now):
            return NO_ACTIONS
        actions: list[Action] = []
        self.switcher.switch(session, turn.model, None, now, actions, reason=f"{turn.model} is cooling down",
                             cause="cooling")
        return actions

    def _restore_primary(self, session: Session, now: float) -> list[Action]:
        """A new turn of a session moved off its primary goes back to it once it has cooled: abort
        the turn on the fallback model and send it to the primary (a fresh start of the chain)."""
        fb, turn = session.fb, session.turn
        assert fb is not None and turn is not None
        primary = fb.original
        if fb.in_flight is not None or fb.parked_until is not None or same_model(fb.current, primary):
            return []
        if self.state.core.cooling(primary, now) or self.state.catalog.is_connected(primary) is False:
            return []
        actions: list[Action] = [Note(session.id, "switch_back", f"{primary} has cooled: this turn goes back to it "
                                      f"from {fb.current}", {"from": fb.current, "to": primary})]
        fb.replaced.update(turn.assistants)
        self.switcher.drop_resend_retry(fb, actions, session.id)
        fb.resend_tries = 1
        self.switcher.send(session, -1, primary, fb.current, "back on the primary", 0, now, actions, restart=True)
        return actions

    # ------------------------------------------------------------------ status and idle

    def idle(self, session: Session, now: float) -> Sequence[Action]:
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

    def on_assistant(self, session: Session, event: AssistantMessage, now: float) -> list[Action]:
        """An assistant message of the session: the turn started; its output (§6.6)."""
        if event.tokens:
            session.context_tokens = event.tokens
        turn = session.turn
        actions: list[Action] = []
        if turn is not None and (event.parent_id == turn.user_id or event.parent_id is None):
            if event.message_id not in turn.assistants:
                turn.assistants[event.message_id] = event.model
                actions += self.turn_started(session, now)
            elif event.model is not None:
                turn.assistants[event.message_id] = event.model
            if event.has_output and event.message_id not in turn.outputs:
                actions += self.on_output(session, event.message_id, now)
        return actions
