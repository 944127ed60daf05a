"""Switching a session to another model: choose, re-send, commit or roll back, and the watchdog.

A part of :class:`baton.fallback.policy.FallbackPolicy`, over its shared
:class:`baton.fallback.state.PolicyState`; the policy decides when to switch. A switch is
tentative from the decision to the executor's report (``ResendResult``): the chosen model is
held in ``in_flight`` and committed only when opencode accepted the prompt (spec §6.3, §7). The
watchdog is a ``Schedule`` action; firing it is an event like any other (§6.6).

A re-send opencode fails right away is tried again (:meth:`Switcher.resend_failed`). Right
after opencode restarts, baton's abort can land while opencode is still initialising, and the
re-sent message then dies inside opencode (seen with 1.18.33: ``All fibers interrupted without
error``, a ``session.error`` at ``sessionprompt.getmodel``) although the fallback model is fine. So an
error that is not one a fallback acts on, arriving while the re-send is in flight or within
:data:`RESEND_ERROR_WINDOW_S` of its commit and before the new model answered, re-sends the
same message on the same model after a backoff, up to :data:`RESEND_TRIES` calls in all, each
journaled. Past the bound the error is classified as usual.

Every re-send is recorded durably before its I/O starts (``SaveIntent``, then ``Resend``) and
forgotten once its outcome is known or it became moot (``ClearIntent``), so that a baton killed
in between finishes it after its restart (:mod:`baton.fallback.recovery`, §7 rule 8).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from baton.actions import (
    Action,
    CancelTimer,
    ClearIntent,
    Note,
    Resend,
    ResendIntent,
    SaveIntent,
    Schedule,
    Toast,
)
from baton.events import ResendOutcome, ResendResult, StatusType
from baton.fallback.core import Choice, NoCandidate
from baton.fallback.errors import ErrorInfo, ErrorType
from baton.fallback.guards import Guard
from baton.fallback.parking import Parker
from baton.fallback.state import OWN_ABORT_GRACE_S, FallbackState, PolicyState, Prepared, Session, Turn
from baton.models import same_model

__all__ = [
    "NO_ACTIONS",
    "OWN_ABORT_GRACE_S",
    "RESEND_ERROR_WINDOW_S",
    "RESEND_RETRY_FIRST_S",
    "RESEND_TRIES",
    "SESSION_TTL_S",
    "SWEEP_EVERY_S",
    "SWITCH_CAUSES",
    "Switcher",
    "answered",
    "resend_retry_key",
    "watchdog_key",
]

# Returned when an event needs nothing done: no list built per event, and immutable, so no caller
# can add to what every other caller gets.
NO_ACTIONS: Final[tuple[Action, ...]] = ()
# A re-send opencode failed at once: calls in all (the switch's own is the first), the backoff
# before the second (doubling), and how long after its commit an error still counts as "at once".
RESEND_TRIES = 3
RESEND_RETRY_FIRST_S = 0.5
RESEND_ERROR_WINDOW_S = 10.0
# Sessions unseen this long are forgotten, looked for this often (§6.9).
SESSION_TTL_S = 30 * 60.0
SWEEP_EVERY_S = 5 * 60.0
SWITCH_CAUSES: Final = ("retry_status", "error", "timeout", "cooling", "context_overflow")
"""What made a session switch: opencode's retry status, an error event, the watchdog, a model
found cooling when the turn was (re)sent, a context overflow with a larger model in the chain."""
# Errors no re-send can help: a stop, and an overflow that opencode's compaction handles.
_NOT_RESENT = frozenset({ErrorType.ABORT, ErrorType.CONTEXT_OVERFLOW})


def watchdog_key(session_id: str) -> str:
    return f"watchdog:{session_id}"


def resend_retry_key(session_id: str) -> str:
    return f"resend-retry:{session_id}"


def answered(turn: Turn | None, model: str) -> bool:
    """Visible output of ``model`` in the turn."""
    return turn is not None and any(same_model(turn.assistants.get(mid), model) for mid in turn.outputs)


def _short(model: str) -> str:
    """The model ID after the last ``/``, as a toast shows it."""
    return model.rsplit("/", 1)[-1]


class Switcher:
    """The steps of a switch and of its re-send (commit, roll back, retry once opencode failed it)."""

    def __init__(self, state: PolicyState, parker: Parker) -> None:
        self.state = state
        self.parker = parker

    def user_stopped(self, session: Session) -> list[Action]:
        """The user stopped the turn: no fallback, and attempts are not reset (§6.7.2)."""
        fb = session.fb
        assert fb is not None
        actions: list[Action] = [Note(session.id, "user_stop", "the user stopped the turn; no fallback")]
        self.clear_switch(fb, actions, session.id)
        return actions

    def prepare(self, session: Session, failing: str, now: float, guard: Guard | None = None) -> Choice | NoCandidate:
        """Choose the next usable model without changing anything (§6.3); a reason on failure."""
        fb = session.fb
        assert fb is not None
        return self.state.core.next_model(fb.chain, after=fb.index, attempts=fb.attempts, avoid=(fb.current, failing),
                                          now=now, connected=self.state.catalog.connected,
                                          guard=guard or self.state.guard(session, failing))

    def switch(
        self,
        session: Session,
        failing: str,
        message_id: str | None,
        now: float,
        actions: list[Action],
        *,
        reason: str,
        cause: str,
        choice: Choice | NoCandidate | None = None,
    ) -> None:
        """Switch away from ``failing``: to ``choice`` when the caller's decision already walked the
        chain, else to the next usable model. ``reason`` is the words the journal shows; ``cause``
        one of :data:`SWITCH_CAUSES`, a bounded label for the metrics."""
        fb = session.fb
        assert fb is not None
        sid = session.id
        if fb.in_flight is not None:
            # One switch at a time, whatever path asked (§6.8): a failure of the new turn will
            # still arrive once opencode runs it.
            actions.append(Note(sid, "ignored", f"{failing} failed while a re-send is in flight; not switching twice"))
            return
        if fb.parked_until is not None:
            actions.append(Note(sid, "ignored", f"{failing} failed while the turn is parked; it waits as it is"))
            return
        if not fb.chain:
            actions.append(
                Note(sid, "no_chain", f"{failing} failed but this session has no fallback chain "
                     "(configure agents.<name>.fallback_models or baton.fallback_models)")
            )
            return
        guard = self.state.guard(session, failing)
        if choice is None:
            choice = self.prepare(session, failing, now, guard)
        upto = choice.index if isinstance(choice, Choice) else None
        refused = self.state.core.refusals(fb.chain, after=fb.index, upto=upto, guard=guard)
        if refused:
            actions.append(Note(sid, "guard", "passed over: " + "; ".join(r.text for r in refused),
                                {"refused": [r.model for r in refused]}))
        if isinstance(choice, NoCandidate):
            if self.parker.park(session, failing, choice, now, actions):
                return
            actions.append(
                Note(sid, "no_fallback", f"{failing} failed and {choice.text}; leaving opencode's own retry running",
                     {"reason": choice.value, "attempts": fb.attempts, "chain": list(fb.chain)})
            )
            return
        index, model = choice.index, choice.model
        if message_id is not None:
            fb.replaced.add(message_id)
        self.drop_resend_retry(fb, actions, sid)
        fb.resend_tries = 1
        actions.append(
            Note(sid, "switch", f"{failing} failed ({reason}); switching to {model}",
                 {"from": failing, "to": model, "attempt": fb.attempts + 1, "chain_source": fb.chain_source,
                  "cause": cause})
        )
        self.send(session, index, model, failing, reason, 0, now, actions,
                  passed=tuple(f"{_short(r.model)}: {r.brief}" for r in refused))

    def send(self, session: Session, index: int, model: str, failing: str, reason: str, retry: int, now: float,
              actions: list[Action], *, recovered: bool = False, restart: bool = False,
              passed: tuple[str, ...] = ()) -> None:
        """Hold the tentative choice in ``in_flight``, record the intent, and ask for the abort (if
        running) and re-send: the intent is in the store before the re-send's I/O starts."""
        fb = session.fb
        assert fb is not None
        sid = session.id
        turn = session.turn
        abort = session.status in (StatusType.BUSY, StatusType.RETRY)
        self.state.token += 1
        fb.in_flight = Prepared(self.state.token, index, model, failing, reason, retry=retry, abort=abort,
                                recovered=recovered, restart=restart, passed=passed)
        fb.awaiting = True
        fb.failed_in_flight = None
        if fb.watchdog_at is not None:
            fb.watchdog_at = None
            actions.append(CancelTimer(watchdog_key(sid)))
        if abort:
            fb.own_abort_until = now + OWN_ABORT_GRACE_S
        message_id = turn.user_id if turn is not None else None
        agent = turn.agent if turn is not None and turn.agent else session.agent_raw
        fb.intent_saved = True
        actions.append(SaveIntent(ResendIntent(
            session_id=sid, message_id=message_id, model=model, agent=agent, directory=session.directory,
            original=fb.original, current=fb.current, failing=failing, reason=reason, chain=fb.chain,
            chain_source=fb.chain_source, index=index, from_index=fb.index, attempts=fb.attempts, retry=retry,
            seen=tuple(turn.assistants) if turn is not None else (), decided_at=now,
        )))
        parts = tuple(turn.parts.values()) if turn is not None and turn.parts else None
        actions.append(
            Resend(
                session_id=sid,
                token=self.state.token,
                message_id=message_id,
                model=model,
                agent=agent,
                parts=parts,
                abort=abort,
                directory=session.directory,
            )
        )

    @staticmethod
    def clear_intent(fb: FallbackState, actions: list[Action], session_id: str) -> None:
        """The re-send's outcome is known, or it is moot: the store forgets the intent (§7 rule 8)."""
        if fb.intent_saved:
            fb.intent_saved = False
            actions.append(ClearIntent(session_id))

    def on_resend_result(self, event: ResendResult, now: float) -> Sequence[Action]:
        session = self.state.sessions.get(event.session_id)
        fb = session.fb if session is not None else None
        if session is None or fb is None or fb.in_flight is None or fb.in_flight.token != event.token:
            return NO_ACTIONS
        prepared = fb.in_flight
        fb.in_flight = None
        sid = session.id
        actions: list[Action] = []
        self.clear_intent(fb, actions, sid)
        if prepared.stale:
            actions.append(Note(sid, "resent", f"re-send on {prepared.model} ended ({event.outcome.value}) after "
                                "the user changed model; nothing to commit"))
            return actions
        if event.outcome is ResendOutcome.REFUSED:
            actions.append(
                Note(sid, "resend_failed", f"re-sending on {prepared.model} failed: {event.detail}",
                     {"model": prepared.model})
            )
            self.clear_switch(fb, actions, sid)
            actions.append(
                Toast("baton: fallback failed", f"Could not re-send on {_short(prepared.model)}: {event.detail}"[:300],
                      "error", session.directory)
            )
            return actions
        fb.resent_at, fb.resend_aborted = now, prepared.abort
        after = " after a restart of baton" if prepared.recovered else ""
        if prepared.retry:
            fb.pending = prepared.model
            actions.append(
                Note(sid, "resent", f"message re-sent again on {prepared.model}{after} "
                     f"(try {prepared.retry}/{RESEND_TRIES}, {event.outcome.value})",
                     {"model": prepared.model, "attempt": fb.attempts, "try": prepared.retry})
            )
        elif prepared.restart:
            # A fresh start, not a step down the chain: the park ended, or the primary is back.
            fb.index, fb.attempts = prepared.index, 0
            fb.current = fb.pending = prepared.model
            actions.append(
                Note(sid, "resent", f"message re-sent on {prepared.model}{after} ({event.outcome.value}): "
                     f"{prepared.reason}", {"model": prepared.model, "attempt": 0})
            )
        else:
            fb.index = prepared.index
            fb.attempts += 1
            fb.current = fb.pending = prepared.model
            actions.append(
                Note(sid, "resent", f"message re-sent on {prepared.model}{after} ({event.outcome.value})",
                     {"model": prepared.model, "attempt": fb.attempts})
            )
        if answered(session.turn, prepared.model):
            fb.awaiting = False
        elif self.state.settings.timeout_seconds > 0:
            fb.watchdog_at = now + self.state.settings.timeout_seconds
            actions.append(Schedule(watchdog_key(sid), fb.watchdog_at))
        if self.state.settings.notify_on_fallback and prepared.restart:
            actions.append(Toast(f"baton: {prepared.reason}", f"Continuing on {_short(prepared.model)}", "info",
                                 session.directory))
        elif self.state.settings.notify_on_fallback and not prepared.retry:
            actions.append(
                Toast("baton: model switched",
                      f"{_short(prepared.failing)} is unavailable; continuing on {_short(prepared.model)}"
                      + (f" (passed over {', '.join(prepared.passed)})" if prepared.passed else ""),
                      "warning", session.directory)
            )
        failed, fb.failed_in_flight = fb.failed_in_flight, None
        if failed is not None and fb.awaiting:
            # opencode failed the turn while the call still ran: decide it now it is known accepted.
            self._failed_in_flight(session, failed, now, actions)
        return actions

    def clear_switch(self, fb: FallbackState, actions: list[Action], session_id: str) -> None:
        self.clear_intent(fb, actions, session_id)
        fb.awaiting = False
        fb.pending = None
        fb.retry_key = None
        if fb.watchdog_at is not None:
            fb.watchdog_at = None
            actions.append(CancelTimer(watchdog_key(session_id)))
        self.drop_resend_retry(fb, actions, session_id)

    def drop_resend_retry(self, fb: FallbackState, actions: list[Action], session_id: str) -> None:
        fb.failed_in_flight = None
        if fb.resend_retry_at is not None:
            fb.resend_retry_at = None
            actions.append(CancelTimer(resend_retry_key(session_id)))

    # ------------------------------------------------------------------ a re-send that failed at once

    def resend_failed(
        self, session: Session, info: ErrorInfo, message_id: str | None, named: bool, now: float,
        actions: list[Action],
    ) -> bool:
        """A turn's error that may be opencode failing baton's own re-send: True when handled here.

        Applies to errors a fallback would not act on (the caller checked), other than a stop or
        a context overflow, that arrive while the re-send is in flight or just committed and before
        the new model answered. ``named``: the error came in an assistant message (``message_id``),
        which must then be one of the re-sent model's; a ``session.error`` names none. Returns False
        past :data:`RESEND_TRIES` calls, or when the rule does not apply: normal classification.
        """
        fb, turn = session.fb, session.turn
        if fb is None or turn is None or info.type in _NOT_RESENT:
            return False
        prepared = fb.in_flight
        if prepared is not None:
            target: str | None = None if prepared.stale else prepared.model
        elif fb.resend_retry_at is not None:
            target = fb.current  # a retry is already due: this is the same failure again
        elif fb.awaiting and fb.resent_at is not None and now - fb.resent_at <= RESEND_ERROR_WINDOW_S:
            target = fb.current
        else:
            target = None
        if target is None or answered(turn, target):
            return False
        if named and (message_id in fb.replaced or not same_model(turn.assistants.get(message_id or ""), target)):
            return False
        text = info.message[:200] or info.name or "an error without a message"
        if fb.resend_retry_at is not None:
            actions.append(Note(session.id, "ignored", f"{target} failed again ({text}) before the retry was due"))
            return True
        if prepared is not None:
            fb.failed_in_flight = text  # decided once the call reports (a refusal makes it moot)
            return True
        if fb.resend_tries >= RESEND_TRIES:
            actions.append(self._gave_up(session.id, target, text, fb.resend_tries))
            return False
        self._retry_resend(session, text, message_id, now, actions)
        return True

    @staticmethod
    def _gave_up(sid: str, model: str, text: str, tries: int) -> Note:
        return Note(sid, "resend_gave_up", f"re-send on {model} failed again with {text} after {tries} tries; "
                    "no more retries", {"model": model, "tries": tries})

    def _retry_resend(self, session: Session, text: str, message_id: str | None, now: float,
                      actions: list[Action]) -> None:
        """Schedule the next try of the re-send after a backoff (the caller checked the bound)."""
        fb, turn = session.fb, session.turn
        assert fb is not None and turn is not None
        sid = session.id
        upcoming = fb.resend_tries + 1
        delay = RESEND_RETRY_FIRST_S * 2 ** (upcoming - 2)
        if message_id is not None:
            fb.replaced.add(message_id)
        fb.decided.discard(f"turn:{turn.user_id}")  # the next failure of the re-send is a new one
        if fb.watchdog_at is not None:
            fb.watchdog_at = None
            actions.append(CancelTimer(watchdog_key(sid)))
        fb.resend_retry_at = now + delay
        after = "baton's abort" if fb.resend_aborted else "baton's re-send"
        actions.append(
            Note(sid, "resend_retry", f"re-send on {fb.current} failed with {text} right after {after}; "
                 f"retrying ({upcoming}/{RESEND_TRIES}) in {delay:g}s",
                 {"model": fb.current, "try": upcoming, "tries": RESEND_TRIES, "delay": delay})
        )
        actions.append(Schedule(resend_retry_key(sid), fb.resend_retry_at))

    def _failed_in_flight(self, session: Session, text: str, now: float, actions: list[Action]) -> None:
        """An error that arrived while the (now accepted) re-send ran: retry, or classify it as usual."""
        fb = session.fb
        assert fb is not None
        if fb.resend_tries < RESEND_TRIES:
            self._retry_resend(session, text, None, now, actions)
            return
        actions.append(self._gave_up(session.id, fb.current, text, fb.resend_tries))
        actions.append(Note(session.id, "not_retryable",
                            f"{fb.current} failed with an error that is not retryable: {text}", {"model": fb.current}))
        self.clear_switch(fb, actions, session.id)

    def on_resend_retry(self, session: Session, now: float) -> Sequence[Action]:
        """The backoff passed: the same message once more on the same model, unless that is moot now."""
        fb, turn = session.fb, session.turn
        if fb is None or fb.resend_retry_at is None:
            return NO_ACTIONS
        fb.resend_retry_at = None
        if turn is None or fb.in_flight is not None or not fb.awaiting:
            return NO_ACTIONS
        sid, model = session.id, fb.current
        actions: list[Action] = []
        if answered(turn, model):
            self.clear_switch(fb, actions, sid)
            return actions
        if session.status in (StatusType.BUSY, StatusType.RETRY):
            # The turn runs after all (the error was the old turn's): let the watchdog judge it.
            actions.append(Note(sid, "resend_running", f"the re-send on {model} is running after all; not retrying"))
            if self.state.settings.timeout_seconds > 0:
                fb.watchdog_at = now + self.state.settings.timeout_seconds
                actions.append(Schedule(watchdog_key(sid), fb.watchdog_at))
            return actions
        if self.state.core.cooling(model, now):
            self.switch(session, model, None, now, actions, reason=f"{model} is cooling down", cause="cooling")
            if fb.in_flight is None:
                fb.awaiting = False
                fb.pending = None
            return actions
        fb.resend_tries += 1
        self.send(session, fb.index, model, fb.original, "re-send failed at once", fb.resend_tries, now, actions)
        return actions
