"""Carries out the core actions of :mod:`baton.actions`, whichever decider asked for them.

``Note`` → the journal (and the log), ``SaveCooldown``/``SaveIntent``/``ClearIntent`` → the
store, at once and in order; ``Schedule``/``CancelTimer`` → :class:`~baton.runtime.timers.Timers`;
``Resend``, ``AbortTurn`` and ``Toast`` → opencode, as jobs. A ``Resend`` (spec §7) aborts the turn when asked,
then prompts again: a prompt opencode refused right after baton's own abort is tried
``PROMPT_RETRIES`` times in all, with backoff; a timed-out prompt may have gone through, so its
outcome is ``unknown``. Each ``Resend`` comes back as one ``ResendResult``.
"""

from __future__ import annotations

import contextlib
from collections import deque
from functools import partial
from typing import Any

import anyio
import structlog

from baton.actions import (
    RESEND_INTENT,
    AbortTurn,
    CancelTimer,
    ClearIntent,
    Note,
    Resend,
    SaveCooldown,
    SaveIntent,
    Schedule,
    Toast,
)
from baton.events import ResendOutcome, ResendResult
from baton.opencode.client import OpencodeClient, OpencodeError, OpencodeUnavailable, resend_parts
from baton.opencode.resync import RESYNC_MESSAGE_LIMIT, resend_message
from baton.runtime.jobs import Job
from baton.runtime.metrics import Metrics
from baton.runtime.timers import Timers
from baton.store_port import JournalEntry, StorePort
from baton.tasks.actions import TaskAction

__all__ = ["ABORT_TIMEOUT_S", "FALLBACK_ACTIONS", "PROMPT_RETRIES", "RECENT_KEPT", "FallbackExecutor"]

log = structlog.get_logger("baton")

ABORT_TIMEOUT_S = 5.0
PROMPT_RETRIES = 3
RECENT_KEPT = 100
FALLBACK_ACTIONS: tuple[type, ...] = (Note, Resend, AbortTurn, Schedule, CancelTimer, SaveIntent, ClearIntent,
                                      SaveCooldown, Toast)


class FallbackExecutor:
    """Executes :data:`FALLBACK_ACTIONS`; ``fallbacks`` counts the re-sends started (``/status``)."""

    def __init__(self, client: OpencodeClient, store: StorePort, timers: Timers,
                 metrics: Metrics | None = None) -> None:
        self.client = client
        self.store = store
        self.timers = timers
        self.fallbacks = 0
        self.metrics = metrics or Metrics()
        self.recent: deque[JournalEntry] = deque(maxlen=RECENT_KEPT)
        """The newest decisions journaled, oldest first: the dashboard's timeline."""

    def execute(self, action: TaskAction, now: float) -> Job | None:
        """Do what is done at once; return the I/O still to run, if any."""
        if isinstance(action, Note):
            entry = JournalEntry(now, action.session_id, action.kind, action.text, action.data)
            self.store.journal([entry])
            self.recent.append(entry)
            if action.kind == "switch":
                self.metrics.switched(action.data.get("cause"), action.data.get("from"), action.data.get("to"))
            log.info(action.text, session=action.session_id, decision=action.kind)
        elif isinstance(action, Resend):
            self.fallbacks += 1
            return partial(self._resend, action, now)
        elif isinstance(action, Schedule):
            return self.timers.schedule(action.key, action.at)
        elif isinstance(action, CancelTimer):
            self.timers.cancel(action.key)
        elif isinstance(action, SaveIntent):
            # Written before the Resend that follows it is even started (spec §7 rule 8).
            self.store.put_pending(RESEND_INTENT, action.intent.session_id, action.intent.to_row(), now)
        elif isinstance(action, ClearIntent):
            self.store.put_pending(RESEND_INTENT, action.session_id, None, now)
        elif isinstance(action, SaveCooldown):
            self.store.save_cooldown(action.model, action.until, action.reason, now, source=action.source)
            log.info("model cooling down", model=action.model, seconds=round(action.until - now, 1))
        elif isinstance(action, Toast):
            return partial(self._toast, action)
        elif isinstance(action, AbortTurn):
            return partial(self._abort, action)
        return None

    async def _resend(self, action: Resend, decided_at: float) -> ResendResult:
        """Abort (if needed) and re-send (spec §7); ``decided_at`` is when the failure was decided on."""
        aborted = False
        try:
            message_id, parts = await self._message_for(action)
            if not parts:
                return _result(action, ResendOutcome.REFUSED, False, "no user message to re-send")
            if action.abort:
                with anyio.fail_after(ABORT_TIMEOUT_S):
                    await self.client.abort(action.session_id, action.directory)
                aborted = True
        except (OpencodeError, TimeoutError) as exc:
            return _result(action, ResendOutcome.REFUSED, False, f"could not stop the turn: {exc}")
        delay = 0.2
        for attempt in range(1, PROMPT_RETRIES + 1):
            try:
                await self.client.prompt_async(
                    action.session_id, parts=parts, model=action.model, agent=action.agent,
                    message_id=message_id, directory=action.directory,
                )
            except OpencodeError as exc:
                if isinstance(exc, OpencodeUnavailable) and exc.timed_out:
                    # It may have reached opencode (spec §7 step 6).
                    return _result(action, ResendOutcome.UNKNOWN, aborted, str(exc))
                if not aborted or attempt == PROMPT_RETRIES:
                    return _result(action, ResendOutcome.REFUSED, aborted, str(exc))
            else:
                self.metrics.reaction_seconds.observe(max(0.0, self.timers.clock.time() - decided_at))
                return _result(action, ResendOutcome.ACCEPTED, aborted)
            await anyio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable: the last attempt returns")  # pragma: no cover

    async def _message_for(self, action: Resend) -> tuple[str | None, list[dict[str, Any]]]:
        """The message to re-send with every part in input form; fetched if the stream lacked it."""
        if action.parts is not None:
            return action.message_id, resend_parts(action.parts)
        rows = await self.client.messages(action.session_id, action.directory, limit=RESYNC_MESSAGE_LIMIT)
        return resend_message(rows, action.message_id)

    async def _abort(self, action: AbortTurn) -> None:
        """Stop a parked turn's retry loop. A failure is logged: the park stands either way, and
        opencode's own retry then ends the turn as it would have."""
        try:
            with anyio.fail_after(ABORT_TIMEOUT_S):
                await self.client.abort(action.session_id, action.directory)
        except (OpencodeError, TimeoutError) as exc:
            log.warning("could not stop a parked turn", session=action.session_id, error=str(exc) or "timed out")

    async def _toast(self, action: Toast) -> None:
        # No TUI attached, or it is busy: a toast is a courtesy (spec §7 step 5).
        with contextlib.suppress(OpencodeError):
            await self.client.show_toast(action.title, action.message, action.variant, action.directory)


def _result(action: Resend, outcome: ResendOutcome, aborted: bool, detail: str = "") -> ResendResult:
    return ResendResult(action.session_id, action.token, outcome, aborted, detail)
