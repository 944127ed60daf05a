"""Switching a session to another model: choose, re-send, commit or roll back, and the watchdog.

The mechanics under :class:`baton.fallback.policy.FallbackPolicy` (its base class). A switch is
tentative from the decision to the executor's report (``ResendResult``): the chosen model is
held in ``in_flight`` and committed only when opencode accepted the prompt (spec §6.3, §7). The
watchdog is a ``Schedule`` action; firing it is an event like any other (§6.6).
"""

from __future__ import annotations

from baton.actions import Action, CancelTimer, Note, Resend, SaveCooldown, Schedule, Toast
from baton.chains import resolve_chain
from baton.config import Config
from baton.cooldowns import Cooldowns
from baton.events import ResendOutcome, ResendResult, StatusType, TimerFired
from baton.fallback.state import FallbackState, Prepared, Session
from baton.models import same_model

__all__ = ["NO_ACTIONS", "OWN_ABORT_GRACE_S", "Switcher", "watchdog_key"]

# How long an abort baton sent is expected to echo back (an abort error, an empty completion, idle).
OWN_ABORT_GRACE_S = 5.0
# Returned (never mutated) when an event needs nothing done: no list built per event.
NO_ACTIONS: list[Action] = []


def watchdog_key(session_id: str) -> str:
    return f"watchdog:{session_id}"


def _short(model: str) -> str:
    """The model ID after the last ``/``, as a toast shows it."""
    return model.rsplit("/", 1)[-1]


class Switcher:
    """Per-session switching state and the steps of a switch; the policy decides when."""

    def __init__(self, config: Config, cooldowns: Cooldowns) -> None:
        self.config = config
        self.settings = config.runtime_fallback
        self.cooldowns = cooldowns
        self.sessions: dict[str, Session] = {}
        self._token = 0

    def _new_state(self, session: Session, model: str) -> FallbackState:
        chain = resolve_chain(self.config, agent_key=session.agent_key, category=None, model=model)
        return FallbackState(original=model, current=model, chain=chain.models, chain_source=chain.source)

    def _user_stopped(self, session: Session) -> list[Action]:
        """The user stopped the turn: no fallback, and attempts are not reset (§6.7.2)."""
        fb = session.fb
        assert fb is not None
        actions: list[Action] = [Note(session.id, "user_stop", "the user stopped the turn; no fallback")]
        self._clear_switch(fb, actions, session.id)
        return actions

    def _cool(self, model: str, now: float, provider_until: float | None, why: str, actions: list[Action]) -> None:
        """Enter (or extend) a model's cooldown, shared by every session (§6.1)."""
        if self.settings.cooldown_seconds <= 0:
            return
        until = provider_until if provider_until is not None else now + self.settings.cooldown_seconds
        if self.cooldowns.extend(model, until):
            actions.append(SaveCooldown(model, until, why[:200]))

    def _prepare(self, fb: FallbackState, failing: str, now: float) -> tuple[int, str] | str:
        """Choose the next usable model without changing anything (§6.3); a reason on failure."""
        if fb.attempts >= self.settings.max_fallback_attempts:
            return "max_attempts"
        for index in range(fb.index + 1, len(fb.chain)):
            model = fb.chain[index]
            if same_model(model, fb.current) or same_model(model, failing):
                continue
            if self.settings.cooldown_seconds > 0 and self.cooldowns.is_cooling(model, now):
                continue
            return index, model
        return "no_candidate"

    def _switch(
        self,
        session: Session,
        failing: str,
        message_id: str | None,
        now: float,
        actions: list[Action],
        *,
        reason: str,
    ) -> None:
        fb = session.fb
        assert fb is not None
        sid = session.id
        if fb.in_flight is not None:
            # One switch at a time, whatever path asked (§6.8): a failure of the new turn will
            # still arrive once opencode runs it.
            actions.append(Note(sid, "ignored", f"{failing} failed while a re-send is in flight; not switching twice"))
            return
        if not fb.chain:
            actions.append(
                Note(sid, "no_chain", f"{failing} failed but this session has no fallback chain "
                     "(configure agents.<name>.fallback_models or baton.fallback_models)")
            )
            return
        choice = self._prepare(fb, failing, now)
        if isinstance(choice, str):
            why = ("the fallback attempts are used up" if choice == "max_attempts"
                   else "no model of the chain is usable now")
            actions.append(
                Note(sid, "no_fallback", f"{failing} failed and {why}; leaving opencode's own retry running",
                     {"reason": choice, "attempts": fb.attempts, "chain": list(fb.chain)})
            )
            return
        index, model = choice
        self._token += 1
        fb.in_flight = Prepared(self._token, index, model, failing, reason)
        fb.awaiting = True
        if message_id is not None:
            fb.replaced.add(message_id)
        if fb.watchdog_at is not None:
            fb.watchdog_at = None
            actions.append(CancelTimer(watchdog_key(sid)))
        turn = session.turn
        abort = session.status in (StatusType.BUSY, StatusType.RETRY)
        if abort:
            fb.own_abort_until = now + OWN_ABORT_GRACE_S
        parts = tuple(turn.parts.values()) if turn is not None and turn.parts else None
        actions.append(
            Note(sid, "switch", f"{failing} failed ({reason}); switching to {model}",
                 {"from": failing, "to": model, "attempt": fb.attempts + 1, "chain_source": fb.chain_source})
        )
        actions.append(
            Resend(
                session_id=sid,
                token=self._token,
                message_id=turn.user_id if turn is not None else None,
                model=model,
                agent=(turn.agent if turn is not None and turn.agent else session.agent_raw),
                parts=parts,
                abort=abort,
                directory=session.directory,
            )
        )

    def _on_resend_result(self, event: ResendResult, now: float) -> list[Action]:
        session = self.sessions.get(event.session_id)
        fb = session.fb if session is not None else None
        if session is None or fb is None or fb.in_flight is None or fb.in_flight.token != event.token:
            return NO_ACTIONS
        prepared = fb.in_flight
        fb.in_flight = None
        sid = session.id
        if prepared.stale:
            return [Note(sid, "resent", f"re-send on {prepared.model} ended ({event.outcome.value}) after the user "
                                        "changed model; nothing to commit")]
        if event.outcome is ResendOutcome.REFUSED:
            actions: list[Action] = [
                Note(sid, "resend_failed", f"re-sending on {prepared.model} failed: {event.detail}",
                     {"model": prepared.model})
            ]
            self._clear_switch(fb, actions, sid)
            actions.append(
                Toast("baton: fallback failed", f"Could not re-send on {_short(prepared.model)}: {event.detail}"[:300],
                      "error", session.directory)
            )
            return actions
        fb.index = prepared.index
        fb.attempts += 1
        fb.current = fb.pending = prepared.model
        actions = [
            Note(sid, "resent", f"message re-sent on {prepared.model} ({event.outcome.value})",
                 {"model": prepared.model, "attempt": fb.attempts})
        ]
        turn = session.turn
        answered = turn is not None and any(
            same_model(turn.assistants.get(mid), prepared.model) for mid in turn.outputs
        )
        if answered:
            fb.awaiting = False
        elif self.settings.timeout_seconds > 0:
            fb.watchdog_at = now + self.settings.timeout_seconds
            actions.append(Schedule(watchdog_key(sid), fb.watchdog_at))
        if self.settings.notify_on_fallback:
            actions.append(
                Toast("baton: model switched",
                      f"{_short(prepared.failing)} is unavailable; continuing on {_short(prepared.model)}",
                      "warning", session.directory)
            )
        return actions

    def _clear_switch(self, fb: FallbackState, actions: list[Action], session_id: str) -> None:
        fb.awaiting = False
        fb.pending = None
        fb.retry_key = None
        if fb.watchdog_at is not None:
            fb.watchdog_at = None
            actions.append(CancelTimer(watchdog_key(session_id)))

    def _on_timer(self, event: TimerFired, now: float) -> list[Action]:
        kind, _, sid = event.key.partition(":")
        session = self.sessions.get(sid)
        if kind != "watchdog" or session is None or session.fb is None:
            return NO_ACTIONS
        fb = session.fb
        fb.watchdog_at = None
        if not fb.awaiting or fb.in_flight is not None:
            return NO_ACTIONS
        turn = session.turn
        if turn is not None and any(same_model(turn.assistants.get(m), fb.current) for m in turn.outputs):
            self._clear_switch(fb, [], sid)
            return NO_ACTIONS
        actions: list[Action] = []
        hung = fb.current
        self._cool(hung, now, None, "no answer before the watchdog fired", actions)
        message_id = next(reversed(turn.assistants)) if turn is not None and turn.assistants else None
        before = len(actions)
        self._switch(
            session, hung, message_id, now, actions,
            reason=f"no answer within {self.settings.timeout_seconds:g}s",
        )
        if fb.in_flight is None:
            fb.awaiting = False
            fb.pending = None
            actions.insert(before, Note(session.id, "watchdog", f"{hung} gave no answer in time"))
        return actions
