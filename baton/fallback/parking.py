"""Parking a turn no model can answer now, and resuming it when a model resets (runtime-fallback §6.10).

When a failure leaves no usable model in a session's chain (every model cooling, or the
fallbacks used up), opencode's own retry loop can only end in an error. With
``baton.park_when_exhausted`` (on by default) baton *parks* the turn instead: it stops opencode's
retry loop, keeps the user's message, and re-sends it on the first model of the chain whose
cooldown ends (the provider's reset time when it said one), the primary first on a tie.

* A park is a re-send intent with a not-before time (``ResendIntent.park_until``): the store
  holds it, so it survives a restart of baton (:mod:`baton.fallback.recovery`).
* A new prompt or a manual model change cancels it (:mod:`baton.fallback.tracking`), a deleted
  session drops it.
* When the time comes (:meth:`Parker.resume`) the first usable model of ``[primary, *chain]`` is
  taken — not necessarily the one waited for, if another reset meanwhile. If none is usable yet
  (the provider extended its limit), the turn waits again, within the cap.
* A park that would end more than ``baton.max_park_seconds`` after it began is not made (or not
  extended): the journal and a toast say why, and opencode's own retry is left to end the turn.
"""

from __future__ import annotations

from datetime import datetime

from baton.actions import AbortTurn, Action, CancelTimer, Note, ResendIntent, SaveIntent, Schedule, Toast
from baton.events import StatusType
from baton.fallback.core import NoCandidate
from baton.fallback.state import OWN_ABORT_GRACE_S, FallbackState, PolicyState, Session
from baton.models import same_model

__all__ = ["PARK_GRACE_S", "Parker", "clock_time", "park_key"]

PARK_GRACE_S = 0.0
"""How long after a model's reset time the re-send goes out (its cooldown has ended by then)."""


def park_key(session_id: str) -> str:
    return f"park:{session_id}"


def clock_time(at: float, now: float) -> str:
    """``at`` as a person reads it: ``14:32`` today, ``Tue 14:32`` on another day (local time)."""
    when, today = datetime.fromtimestamp(at), datetime.fromtimestamp(now)
    return when.strftime("%H:%M" if when.date() == today.date() else "%a %H:%M")


def _seconds(value: float) -> str:
    hours, rest = divmod(round(value), 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Parker:
    """Parks turns and chooses where a park resumes; the re-send itself is the switcher's."""

    def __init__(self, state: PolicyState) -> None:
        self.state = state

    # ------------------------------------------------------------------ which model, when

    def candidates(self, fb: FallbackState) -> list[tuple[int, str]]:
        """``[primary, *chain]`` with their chain indexes (the primary is -1), spellings merged."""
        found: list[tuple[int, str]] = [(-1, fb.original)]
        for index, model in enumerate(fb.chain):
            if not any(same_model(model, other) for _, other in found):
                found.append((index, model))
        return found

    def _allowed(self, session: Session, model: str) -> bool:
        fb = session.fb
        assert fb is not None
        connected = self.state.catalog.is_connected(model)
        if connected is False:
            return False
        # The spend guard compares with the primary: waiting must not end on a pricier model.
        return self.state.guard(session, fb.original).refusal(model) is None

    def usable_now(self, session: Session, now: float) -> tuple[int, str] | None:
        """The first candidate not cooling and allowed, primary first."""
        fb = session.fb
        assert fb is not None
        for index, model in self.candidates(fb):
            if not self.state.core.cooling(model, now) and self._allowed(session, model):
                return index, model
        return None

    def earliest_reset(self, session: Session, now: float) -> tuple[int, str, float] | None:
        """The candidate whose cooldown ends first, and when; None when none is cooling."""
        fb = session.fb
        assert fb is not None
        allowed = ((index, model) for index, model in self.candidates(fb) if self._allowed(session, model))
        return self.state.core.soonest_reset(allowed, now)

    # ------------------------------------------------------------------ parking

    def park(self, session: Session, failing: str, why: NoCandidate, now: float, actions: list[Action]) -> bool:
        """Park the session's turn if parking applies; False leaves opencode's own retry running."""
        fb, turn = session.fb, session.turn
        rules = self.state.config.baton
        if fb is None or turn is None or not rules.park_when_exhausted or self.state.settings.cooldown_seconds <= 0:
            return False
        if why is NoCandidate.DISABLED:
            return False
        target = self.earliest_reset(session, now)
        if target is None:
            return False
        index, model, until = target
        started = fb.parked_at if fb.parked_at is not None else now
        if until - started > rules.max_park_seconds:
            actions.append(Note(
                session.id, "park_refused",
                f"not parking: {model} resets at {clock_time(until, now)}, more than baton.max_park_seconds "
                f"({_seconds(rules.max_park_seconds)}) away; leaving opencode's own retry running",
                {"model": model, "until": until},
            ))
            self.unpark(fb, actions, session.id)
            return False
        sid = session.id
        if session.status in (StatusType.BUSY, StatusType.RETRY):
            actions.append(AbortTurn(sid, session.directory))
            fb.own_abort_until = now + OWN_ABORT_GRACE_S
        fb.awaiting = False
        fb.pending = None
        fb.retry_key = None
        was_parked = fb.parked_until is not None
        fb.parked_until, fb.park_model, fb.parked_at = until, model, started
        agent = turn.agent or session.agent_raw
        fb.intent_saved = True
        actions.append(SaveIntent(ResendIntent(
            session_id=sid, message_id=turn.user_id, model=model, agent=agent, directory=session.directory,
            original=fb.original, current=fb.current, failing=failing, reason=why.text, chain=fb.chain,
            chain_source=fb.chain_source, index=index, from_index=fb.index, attempts=fb.attempts, retry=0,
            seen=tuple(turn.assistants), decided_at=started, park_until=until,
        )))
        actions.append(Schedule(park_key(sid), until + PARK_GRACE_S))
        at = clock_time(until, now)
        again = "still " if was_parked else ""
        actions.append(Note(
            sid, "parked", f"{failing} failed and {why.text}; {again}parked until {at}, when {model} resets",
            {"model": model, "until": until, "failing": failing, "reason": why.value},
        ))
        actions.append(Toast("baton: turn parked", f"Parked until {at}, when {model} resets; "
                             "a new prompt cancels it", "warning", session.directory))
        return True

    def unpark(self, fb: FallbackState, actions: list[Action], session_id: str, why: str | None = None) -> bool:
        """Forget the park (its timer with it); the caller clears the intent. True if there was one."""
        if fb.parked_until is None:
            fb.parked_at = None
            return False
        model = fb.park_model
        fb.parked_until = fb.park_model = fb.parked_at = None
        actions.append(CancelTimer(park_key(session_id)))
        if why is not None:
            actions.append(Note(session_id, "unparked", f"park on {model} cancelled: {why}", {"model": model}))
        return True
