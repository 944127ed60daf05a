"""Finishing a re-send that a killed baton had decided (spec §7 rule 8).

Every re-send is recorded in the store before its I/O starts and forgotten once its outcome is
known (:mod:`baton.fallback.switching`). A ``kill -9`` in between (after the abort, before the
prompt) leaves opencode's session idle on an aborted turn, which a resync alone reads as nothing
to do. So at start the engine feeds each intent the store still holds as a ``RecoveredResend``,
after the first resync has replayed the session's latest turn and status, and this part of the
policy decides, exactly once per intent:

* the user's message is still the latest, still on the model the switch left, and unanswered:
  re-send it on the intent's model (aborting only a turn opencode still runs), journaled;
* the re-send had reached opencode (the message now names the intent's model, or a new
  assistant message of that model exists) and the session still runs it: adopt the switch as
  accepted and watch it, without asking the model again;
* otherwise (answered, a newer prompt, another model chosen, the session gone, baton already
  acting on the turn since its start, older than :data:`RECOVERY_MAX_AGE_S`): forget the intent,
  journaled.

A parked turn's intent (``park_until`` set, :mod:`baton.fallback.parking`) is kept as a park:
its timer is set again (at once, if its time passed while baton was down), unless the turn
moved on meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence

from baton.actions import Action, ClearIntent, Note, ResendIntent, SaveIntent, Schedule
from baton.events import RecoveredResend, StatusType
from baton.fallback.core import Choice
from baton.fallback.parking import clock_time, park_key
from baton.fallback.state import FallbackState, PolicyState, Session
from baton.fallback.switching import Switcher, watchdog_key
from baton.models import same_model

__all__ = ["RECOVERY_MAX_AGE_S", "Recovery"]

RECOVERY_MAX_AGE_S = 10 * 60.0
"""An intent older than this is forgotten, not acted on: the user has long moved on or given up."""


class Recovery:
    """The ``RecoveredResend`` handler of the policy."""

    def __init__(self, state: PolicyState, switcher: Switcher) -> None:
        self.state = state
        self.switcher = switcher

    def on_recovered(self, event: RecoveredResend, now: float) -> Sequence[Action]:
        intent = event.intent
        sid = intent.session_id
        session = self.state.sessions.get(sid)
        fb = session.fb if session is not None else None
        if intent.park_until is not None and (fb is None or fb.in_flight is None):
            # A park wins over one this baton made from the resync alone: the intent knows the
            # chain as it was (the re-sent message now names the fallback model, not the primary).
            return self._repark(session, intent, now)
        if fb is not None and fb.intent_saved:
            # The resync showed the turn still failing and this baton switched it itself: that
            # switch's intent replaced this one in the store.
            return [Note(sid, "recovery_skipped", "a re-send from before baton's restart was found, but baton "
                         "already re-sends this turn since its restart")]
        why = self._moot(session, intent, now)
        if why is not None:
            return [ClearIntent(sid), Note(sid, "recovery_skipped", f"a re-send on {intent.model} from before "
                                           f"baton's restart was dropped: {why}", {"model": intent.model})]
        assert session is not None and session.turn is not None
        turn = session.turn
        ran = any(mid not in intent.seen and same_model(model, intent.model) for mid, model in turn.assistants.items())
        reached = ran or (not intent.retry and same_model(turn.model, intent.model))
        if reached and session.status in (StatusType.BUSY, StatusType.RETRY):
            return self._adopt(session, intent, now)
        if ran:
            why = f"the re-sent turn on {intent.model} ran and ended before the restart"
        elif not reached and turn.model is not None and not same_model(turn.model, intent.current):
            why = f"the message's model was changed to {turn.model}"
        if why is not None:
            return [ClearIntent(sid), Note(sid, "recovery_skipped", f"a re-send on {intent.model} from before "
                                           f"baton's restart was dropped: {why}", {"model": intent.model})]
        return self._resend_recovered(session, intent, now)

    def _repark(self, session: Session | None, intent: ResendIntent, now: float) -> list[Action]:
        """A park from before the restart: keep waiting (or resume now, if its time has come)."""
        sid = intent.session_id
        why = self._moot(session, intent, now)
        if why is None and session is not None and session.turn is not None:
            turn = session.turn
            if any(mid not in intent.seen for mid in turn.assistants):
                why = "the turn ran again since it was parked"
        if why is not None:
            return [ClearIntent(sid), Note(sid, "recovery_skipped", f"a park from before baton's restart was "
                                           f"dropped: {why}", {"model": intent.model})]
        assert session is not None and intent.park_until is not None
        fb = self._rebuilt(session, intent, set(intent.seen))
        fb.parked_until, fb.park_model, fb.parked_at = intent.park_until, intent.model, intent.decided_at
        fb.intent_saved = True
        at = max(now, intent.park_until)
        return [
            SaveIntent(intent),  # the store holds this park again, not one made since the restart
            Note(sid, "recovered", f"a park from before baton's restart is kept: re-sending on {intent.model} "
                 f"at {clock_time(at, now)}", {"model": intent.model, "until": intent.park_until}),
            Schedule(park_key(sid), at),
        ]

    def _moot(self, session: Session | None, intent: ResendIntent, now: float) -> str | None:
        """Why the intent needs nothing done, judged on what the resync showed; None: it may."""
        # A park's age counts from its end: it may rightly wait for hours.
        age = now - max(intent.decided_at, intent.park_until or 0.0)
        if age > RECOVERY_MAX_AGE_S:
            return f"it was decided {age / 60:.0f} min ago"
        turn = session.turn if session is not None else None
        if session is None or turn is None:
            return "opencode shows no such session or message"
        if intent.message_id is not None and turn.user_id != intent.message_id:
            return "a newer prompt was sent"
        if intent.message_id is None and turn.outputs:
            return "the session's latest turn has an answer"
        fb = session.fb
        if fb is not None and (fb.in_flight is not None or fb.awaiting or fb.attempts or fb.resend_retry_at):
            return "baton already acted on the turn since its restart"
        if any(same_model(turn.assistants.get(mid), intent.model) for mid in turn.outputs):
            return f"{intent.model} answered before the restart"
        return None

    def _rebuilt(self, session: Session, intent: ResendIntent, replaced: set[str]) -> FallbackState:
        """The fallback state as it was when the switch was decided (the intent holds it)."""
        old = session.fb
        fb = FallbackState(
            original=intent.original, current=intent.current, chain=intent.chain, chain_source=intent.chain_source,
            index=intent.from_index, attempts=intent.attempts, resend_tries=max(1, intent.retry),
        )
        if old is not None:
            fb.replaced |= old.replaced
            fb.decided |= old.decided
        fb.replaced |= replaced
        session.fb = fb
        session.directory = session.directory or intent.directory
        session.agent_raw = session.agent_raw or intent.agent
        return fb

    def _resend_recovered(self, session: Session, intent: ResendIntent, now: float) -> list[Action]:
        """The message never reached the intent's model: send it now, once, as the switch would have."""
        turn = session.turn
        assert turn is not None
        fb = self._rebuilt(session, intent, set(turn.assistants))  # none of them is the intent's model answering
        index, model, retry, also = intent.index, intent.model, intent.retry, ""
        if self.state.core.cooling(model, now):
            # Cooling since the decision: choose again as the switch would now. With nothing else
            # left it still goes there: no retry of opencode's runs for an aborted turn.
            choice = self.switcher.prepare(session, intent.failing, now)
            if isinstance(choice, Choice):
                index, model, retry, also = choice.index, choice.model, 0, f" ({intent.model} is cooling down now)"
                fb.resend_tries = 1
        actions: list[Action] = [
            Note(session.id, "recovered", f"re-send after a restart of baton: the message is unanswered; "
                 f"re-sending it on {model}{also}", {"model": model, "decided_at": intent.decided_at})
        ]
        self.switcher.send(session, index, model, intent.failing, intent.reason, retry, now, actions, recovered=True)
        return actions

    def _adopt(self, session: Session, intent: ResendIntent, now: float) -> list[Action]:
        """The re-send reached opencode before the kill and runs: commit it, watch it, ask nothing again."""
        fb = self._rebuilt(session, intent, set(intent.seen))
        fb.index = intent.index
        fb.attempts = intent.attempts + (0 if intent.retry else 1)
        fb.current = fb.pending = intent.model
        fb.awaiting = True
        actions: list[Action] = [
            ClearIntent(session.id),
            Note(session.id, "recovered", f"the re-send on {intent.model} reached opencode before baton's restart "
                 "and runs; watching it", {"model": intent.model, "attempt": fb.attempts}),
        ]
        if self.state.settings.timeout_seconds > 0:
            fb.watchdog_at = now + self.state.settings.timeout_seconds
            actions.append(Schedule(watchdog_key(session.id), fb.watchdog_at))
        return actions
