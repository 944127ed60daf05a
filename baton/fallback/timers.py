"""The policy's timers and its forgetting: the watchdog, the re-send retry, the end of a park,
deleted and unseen sessions.

A part of :class:`baton.fallback.policy.FallbackPolicy`. Timers are ``Schedule`` actions whose
firing comes back as ``TimerFired``: the watchdog moves on from a model that shows no output
within ``timeout_seconds`` of its re-send (§6.6); the re-send retry is the backoff of
:meth:`baton.fallback.switching.Switcher.resend_failed`. A deleted session is dropped at once and
a session unseen for :data:`~baton.fallback.switching.SESSION_TTL_S` at the next sweep (§6.9),
their timers and re-send intents with them.
"""

from __future__ import annotations

from collections.abc import Sequence

from baton.actions import Action, CancelTimer, Note, Toast
from baton.events import SessionDeleted, TimerFired
from baton.fallback.core import NoCandidate
from baton.fallback.parking import Parker
from baton.fallback.state import PolicyState, Session
from baton.fallback.switching import (
    NO_ACTIONS,
    SESSION_TTL_S,
    SWEEP_EVERY_S,
    Switcher,
    answered,
    resend_retry_key,
    watchdog_key,
)

__all__ = ["Timers"]


class Timers:
    """``TimerFired`` and ``SessionDeleted`` for the policy, and the periodic sweep."""

    def __init__(self, state: PolicyState, switcher: Switcher, parker: Parker) -> None:
        self.state = state
        self.switcher = switcher
        self.parker = parker

    def on_deleted(self, event: SessionDeleted, now: float) -> Sequence[Action]:
        session = self.state.sessions.pop(event.session_id, None)
        if session is None or session.fb is None:
            return NO_ACTIONS
        actions: list[Action] = []
        if session.fb.watchdog_at is not None:
            actions.append(CancelTimer(watchdog_key(session.id)))
        if session.fb.resend_retry_at is not None:
            actions.append(CancelTimer(resend_retry_key(session.id)))
        self.parker.unpark(session.fb, actions, session.id)
        self.switcher.clear_intent(session.fb, actions, session.id)
        return actions

    def sweep(self, now: float) -> list[Action]:
        """Forget sessions unseen for 30 minutes, keys, id sets and re-send intents included (§6.9);
        a parked session waits in silence, so it is kept."""
        self.state.next_sweep = now + SWEEP_EVERY_S
        stale = [sid for sid, s in self.state.sessions.items()
                 if now - s.last_seen > SESSION_TTL_S and not (s.fb is not None and s.fb.parked_until is not None)]
        actions: list[Action] = []
        for sid in stale:
            fb = self.state.sessions.pop(sid).fb
            if fb is not None:
                self.switcher.clear_intent(fb, actions, sid)
        return actions

    def on_timer(self, event: TimerFired, now: float) -> Sequence[Action]:
        kind, _, sid = event.key.partition(":")
        session = self.state.sessions.get(sid)
        if session is None or session.fb is None:
            return NO_ACTIONS
        if kind == "resend-retry":
            return self.switcher.on_resend_retry(session, now)
        if kind == "park":
            return self._on_park_ended(session, now)
        if kind != "watchdog":
            return NO_ACTIONS
        fb = session.fb
        fb.watchdog_at = None
        if not fb.awaiting or fb.in_flight is not None:
            return NO_ACTIONS
        turn = session.turn
        if answered(turn, fb.current):
            self.switcher.clear_switch(fb, [], sid)
            return NO_ACTIONS
        actions: list[Action] = []
        hung = fb.current
        cooldown = self.state.core.record_failure(hung, now, why="no answer before the watchdog fired")
        if cooldown is not None:
            actions.append(cooldown)
        message_id = next(reversed(turn.assistants)) if turn is not None and turn.assistants else None
        before = len(actions)
        self.switcher.switch(
            session, hung, message_id, now, actions,
            reason=f"no answer within {self.state.settings.timeout_seconds:g}s", cause="timeout",
        )
        if fb.in_flight is None:
            fb.awaiting = False
            fb.pending = None
            actions.insert(before, Note(session.id, "watchdog", f"{hung} gave no answer in time"))
        return actions

    def _on_park_ended(self, session: Session, now: float) -> Sequence[Action]:
        """The park's time came: re-send on the first usable model, or wait again within the cap."""
        fb, turn = session.fb, session.turn
        if fb is None or fb.parked_until is None or turn is None:
            return NO_ACTIONS
        sid = session.id
        actions: list[Action] = []
        usable = self.parker.usable_now(session, now)
        if usable is None:
            if self.parker.park(session, fb.current, NoCandidate.NO_CANDIDATE, now, actions):
                return actions
            self.parker.unpark(fb, actions, sid)
            self.switcher.clear_intent(fb, actions, sid)
            actions.append(Note(sid, "park_gave_up", "the park ended and no model of the chain is usable; "
                                "the turn stays stopped until a new prompt"))
            actions.append(Toast("baton: park ended", "No model of the chain is usable yet; send the prompt again "
                                 "later", "error", session.directory))
            return actions
        index, model = usable
        waited = fb.park_model
        self.parker.unpark(fb, actions, sid)
        actions.append(Note(sid, "resumed", f"the park ended: re-sending the message on {model}",
                            {"model": model, "waited_for": waited}))
        self.switcher.send(session, index, model, fb.current, "resumed after the park", 0, now, actions, restart=True)
        return actions
