"""The fallback core: the mechanics a session's fallback and a task's fallback share.

When a model fails, the session policy (:mod:`baton.fallback.policy`) and the task scheduler
(:mod:`baton.tasks`) ask the same three questions, and both ask them here:

* **Which model comes next?** (:meth:`FallbackCore.next_model`) The first chain entry after the
  one in use that is not a model to avoid (the failing and the current one, in any spelling
  :func:`baton.models.same_model` equates), not cooling (while cooldowns are on), on a provider
  opencode has connected (when that is known), and only while fallbacks remain
  (``max_fallback_attempts``). A launch's first model (:meth:`FallbackCore.start_model`) uses
  the same notion of usable, but must always start somewhere.
* **What does the failure teach everyone?** (:meth:`FallbackCore.record_failure`) The failed
  model enters, or extends, the cooldown every session and task shares, until its reset time
  (:meth:`FallbackCore.reset_time`: opencode's retry time, else the response headers, else the
  error's text, else ``cooldown_seconds``; never past ``max_cooldown_seconds``); a
  ``SaveCooldown`` carrying that time's source when the table changed, so the store keeps it.
* **What to do about this failure?** (:meth:`FallbackCore.decide`) Classify it once (§4), learn
  the cooldown, and return a :class:`Decision`: a stop, not retryable, switch to a model, or
  stay (no candidate, attempts used up, fallback disabled — with the reason).

Sessions and tasks differ only in what they do with a decision: a session aborts and re-sends
the user's message on the chosen model (:mod:`baton.fallback.switching`), a task re-queues on
the chosen model's key (:mod:`baton.tasks.children`). Pure: no I/O, no clock (time arrives as
``now``), no config loading.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from baton.actions import SaveCooldown
from baton.cooldowns import Cooldowns
from baton.fallback.errors import ErrorInfo, ErrorType, classify_error, error_text
from baton.fallback.guards import NO_GUARD, Guard, Refusal
from baton.fallback.reset_times import ResetSource, ResetTime, reset_from_headers, reset_from_text
from baton.models import same_model, split_model
from baton.settings import RuntimeFallbackConfig

__all__ = [
    "DEFAULT_MAX_COOLDOWN_S", "Choice", "Decision", "FallbackCore", "NoCandidate", "Verdict", "on_connected_provider",
]

DEFAULT_MAX_COOLDOWN_S = 24 * 3600.0
"""``baton.max_cooldown_seconds``'s default: the longest cooldown a reset time may set."""


class NoCandidate(StrEnum):
    """Why no model comes next (the values are the journal's ``reason``)."""

    DISABLED = "disabled"
    MAX_ATTEMPTS = "max_attempts"
    NO_CANDIDATE = "no_candidate"

    @property
    def text(self) -> str:
        """The reason as a journal line says it."""
        return _NO_CANDIDATE_TEXT[self]


_NO_CANDIDATE_TEXT = {
    NoCandidate.DISABLED: "runtime fallback is disabled",
    NoCandidate.MAX_ATTEMPTS: "the fallback attempts are used up",
    NoCandidate.NO_CANDIDATE: "no model of the chain is usable now",
}


@dataclass(frozen=True, slots=True)
class Choice:
    """The next model: ``chain[index] == model``."""

    index: int
    model: str


class Verdict(StrEnum):
    """What a failure calls for."""

    STOP = "stop"
    """An abort: no fallback. The caller tells its own abort's echo from the user's stop."""
    NOT_RETRYABLE = "not_retryable"
    """Another model would not fix it (a bad request, an overflow, a missing key...)."""
    SWITCH = "switch"
    """Move to :attr:`Decision.choice`."""
    STAY = "stay"
    """Retryable, but no model comes next (:attr:`Decision.reason`)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """One failure, decided: the verdict, what the error was, and what to persist."""

    verdict: Verdict
    info: ErrorInfo
    retryable: bool
    cooldown: SaveCooldown | None = None
    """The failed model's cooldown, entered or extended (only for a retryable failure)."""
    reset: ResetTime | None = None
    """When the failed model is usable again, and why then (retryable failures of a known model)."""
    choice: Choice | None = None
    """Set exactly when the verdict is ``SWITCH``."""
    reason: NoCandidate | None = None
    """Set exactly when the verdict is ``STAY``."""

    @property
    def next(self) -> Choice | NoCandidate:
        """The chain walk's answer, for a caller that acts on a retryable failure."""
        if self.choice is not None:
            return self.choice
        return self.reason if self.reason is not None else NoCandidate.NO_CANDIDATE


def on_connected_provider(model: str, connected: frozenset[str] | None) -> bool:
    """True when opencode can call ``model``'s provider; ``connected`` None: unknown, so yes."""
    return connected is None or split_model(model.lower())[0] in connected


@dataclass(frozen=True, slots=True)
class FallbackCore:
    """The fallback rules (``runtime_fallback``) over the shared cooldown table."""

    rules: RuntimeFallbackConfig
    cooldowns: Cooldowns
    max_cooldown_seconds: float = DEFAULT_MAX_COOLDOWN_S
    """``baton.max_cooldown_seconds``: a learnt reset time further out is cut to this."""

    def cooling(self, model: str, now: float) -> bool:
        """A model in cooldown is skipped, while cooldowns are on (``cooldown_seconds > 0``)."""
        return self.rules.cooldown_seconds > 0 and self.cooldowns.is_cooling(model, now)

    # ------------------------------------------------------------------ choosing a model

    def next_model(
        self,
        chain: Sequence[str],
        *,
        after: int,
        attempts: int,
        avoid: Iterable[str | None],
        now: float,
        connected: frozenset[str] | None = None,
        guard: Guard = NO_GUARD,
    ) -> Choice | NoCandidate:
        """The first usable entry of ``chain`` after index ``after`` (-1: before the chain).

        ``attempts``: fallbacks taken so far; ``avoid``: the failing and current models;
        ``connected``: opencode's connected providers, None when unknown; ``guard``: the spend
        and context guards (:mod:`baton.fallback.guards`).
        """
        if not self.rules.enabled:
            return NoCandidate.DISABLED
        if attempts >= self.rules.max_fallback_attempts:
            return NoCandidate.MAX_ATTEMPTS
        avoided = tuple(model for model in avoid if model is not None)
        for index in range(max(after + 1, 0), len(chain)):
            model = chain[index]
            if any(same_model(model, other) for other in avoided):
                continue
            if self.cooling(model, now) or not on_connected_provider(model, connected):
                continue
            if guard.refusal(model) is not None:
                continue
            return Choice(index, model)
        return NoCandidate.NO_CANDIDATE

    @staticmethod
    def refusals(chain: Sequence[str], *, after: int, upto: int | None, guard: Guard) -> tuple[Refusal, ...]:
        """Why the guard refused the entries of ``chain`` after ``after`` (and before ``upto``):
        what a journal line says was passed over."""
        stop = len(chain) if upto is None else upto
        found = (guard.refusal(chain[i]) for i in range(max(after + 1, 0), stop))
        return tuple(reason for reason in found if reason is not None)

    def start_model(self, chain: Sequence[str], start: int, now: float, connected: frozenset[str] | None) -> int:
        """Where a task starts in ``chain`` (§5.2.5): the first entry from ``start`` that is usable.

        It must start somewhere: with every connected entry cooling, the one whose cooldown ends
        first; with none connected, ``start``.
        """
        candidates = [i for i in range(start, len(chain)) if on_connected_provider(chain[i], connected)]
        for i in candidates:
            if not self.cooling(chain[i], now):
                return i
        soonest = self.soonest_reset(((i, chain[i]) for i in candidates), now)
        return soonest[0] if soonest is not None else start

    def soonest_reset(self, candidates: Iterable[tuple[int, str]], now: float) -> tuple[int, str, float] | None:
        """Of ``candidates`` (chain position, model), the one cooling at ``now`` whose cooldown ends
        first (the earlier candidate on a tie), with that end; None when none is cooling. Where a
        task starts, where a parked turn or a waiting task resumes (runtime-fallback §6.10)."""
        best: tuple[int, str, float] | None = None
        for index, model in candidates:
            until = self.cooldowns.until(model)
            if until is not None and until > now and (best is None or until < best[2]):
                best = (index, model, until)
        return best

    # ------------------------------------------------------------------ learning from a failure

    def reset_time(self, error: object, now: float, provider_until: float | None = None) -> ResetTime:
        """When a model that failed with ``error`` is usable again (issue 8 §2).

        Precedence: what the provider said — the response headers (Retry-After, then rate-limit
        resets), then the error's text ("resets after 3h12m") — then ``provider_until``
        (opencode's retry ``next``: a Retry-After it read, or only its own backoff), then the
        configured ``cooldown_seconds``; capped at ``max_cooldown_seconds``.
        """
        reset = (
            reset_from_headers(error, now)
            or reset_from_text(error_text(error), now)
            or (ResetTime(provider_until, ResetSource.OPENCODE_RETRY, "retry status next")
                if provider_until is not None else None)
            or ResetTime(now + self.rules.cooldown_seconds, ResetSource.CONFIGURED,
                         f"cooldown_seconds {self.rules.cooldown_seconds:g}")
        )
        cap = now + self.max_cooldown_seconds
        if reset.at > cap:
            return ResetTime(cap, reset.source, f"{reset.detail} (capped at {self.max_cooldown_seconds:g}s)")
        return reset

    def record_failure(
        self, model: str, now: float, *, why: str, reset: ResetTime | None = None
    ) -> SaveCooldown | None:
        """Enter (or extend) ``model``'s shared cooldown until ``reset`` (default: now +
        ``cooldown_seconds``); the ``SaveCooldown`` to persist, with ``reset``'s source; None when
        nothing changed or cooldowns are off."""
        if self.rules.cooldown_seconds <= 0:
            return None
        if reset is None:
            reset = ResetTime(now + self.rules.cooldown_seconds, ResetSource.CONFIGURED)
        if not self.cooldowns.extend(model, reset.at, reset.source):
            return None
        return SaveCooldown(model, reset.at, why[:200], reset.source)

    def classify(self, error: object, now: float) -> ErrorInfo:
        """The error as §4 reads it, under this config's ``retry_on_errors``; and a failure whose
        text names when the limit resets ("your quota will reset after 90s") is retryable, whatever
        its wording: the provider itself says it is temporary (issue 8 §2)."""
        info = classify_error(error, self.rules.retry_on_errors)
        if info.retryable or info.type in (ErrorType.ABORT, ErrorType.CONTEXT_OVERFLOW):
            return info
        if reset_from_text(error_text(error), now) is None:
            return info
        return replace(info, retryable=True)

    def decide(
        self,
        error: object,
        failing: str | None,
        now: float,
        *,
        chain: Sequence[str],
        after: int,
        attempts: int,
        avoid: Iterable[str | None] = (),
        connected: frozenset[str] | None = None,
        provider_until: float | None = None,
        assume_retryable: bool = False,
        guard: Guard = NO_GUARD,
    ) -> Decision:
        """One decision per failure of ``failing`` (§4, §6.1, §6.3; background-tasks §10).

        A retryable failure cools ``failing`` until its :meth:`reset_time` (``provider_until``,
        else the response headers, else the error's text, else the configured cooldown, capped)
        before the chain is walked, so the walk skips it; ``failing`` is always avoided.
        ``assume_retryable``: the signal is retryable by definition (auto-retry text, §4.4 rule 3).
        """
        info = self.classify(error, now)
        if info.type is ErrorType.ABORT:
            return Decision(Verdict.STOP, info, retryable=False)
        retryable = info.retryable or assume_retryable
        if not retryable:
            return Decision(Verdict.NOT_RETRYABLE, info, retryable=False)
        cooldown = reset = None
        if failing is not None:
            reset = self.reset_time(error, now, provider_until)
            cooldown = self.record_failure(failing, now, why=info.message or "unknown error", reset=reset)
        choice = self.next_model(chain, after=after, attempts=attempts, avoid=(failing, *avoid), now=now,
                                 connected=connected, guard=guard)
        if isinstance(choice, NoCandidate):
            return Decision(Verdict.STAY, info, retryable=True, cooldown=cooldown, reset=reset, reason=choice)
        return Decision(Verdict.SWITCH, info, retryable=True, cooldown=cooldown, reset=reset, choice=choice)
