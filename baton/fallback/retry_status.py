"""Dedupe keys for opencode's ``retry`` statuses (spec §5).

opencode repeats a retry status (and resyncs replay it) with a fresh countdown each time. The
key is built from what identifies one failure — the attempt, the failing model and a
normalised class of the message — and never from ``next`` or countdown text, which change on
every repeat (the upstream bug where every tick re-aborted the session).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

__all__ = [
    "UNKNOWN_MODEL",
    "dedupe_key",
    "model_in_text",
    "normalized_class",
    "provider_retry_at",
    "retry_attempt",
    "retry_key",
]

UNKNOWN_MODEL = "unknown-model"
# opencode 1.18 waits 2 s * 2^(attempt-1) (+ up to ~25 % jitter) between its own retries; a
# `next` inside that band is opencode's schedule, not a retry time the provider gave (§6.1).
OPENCODE_BACKOFF_BASE_S = 2.0

# ``[0-9]`` rather than ``\d``: ASCII digits only, as JavaScript's ``\d`` (Python's also takes other scripts).
_ATTEMPT_RE = re.compile(r"attempt\s*#\s*([0-9]+)", re.IGNORECASE)
_MODEL_RE = re.compile(r"model\s+([a-z0-9._/-]+)\s+(?:are|is)\b", re.IGNORECASE)
_RETRY_SEGMENT_RE = re.compile(r"\[\s*retrying\s+in[^\]]*\]")  # applied to lower-cased text

# First match wins, in this order; patterns see lower-cased, whitespace-collapsed text.
_CLASSES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("cooldown", re.compile(r"all credentials for model|cool(?:ing)? down|cooldown|exhausted your capacity")),
    ("too-many-requests", re.compile(r"too many requests")),
    ("quota", re.compile(r"quota will reset after|quota ?exceeded")),
    ("usage-limit", re.compile(r"usage limit has been reached|limit reached")),
    ("rate-limit", re.compile(r"rate limit")),
    ("service-unavailable", re.compile(r"service.?unavailable|temporarily.?unavailable|overloaded")),
)


def _message(status: Mapping[str, object]) -> str:
    value = status.get("message")
    return value if isinstance(value, str) else ""


def retry_attempt(status: Mapping[str, object]) -> str:
    """The attempt as text: a finite ``status.attempt``, else ``attempt #N`` in the message, else ``?``.

    An integral float is written without its ``.0`` so that ``2`` and ``2.0`` give one key.
    """
    attempt = status.get("attempt")
    if isinstance(attempt, int) and not isinstance(attempt, bool):
        return str(attempt)
    if isinstance(attempt, float) and math.isfinite(attempt):
        return str(int(attempt)) if attempt.is_integer() else str(attempt)
    match = _ATTEMPT_RE.search(_message(status))
    if match is None:
        return "?"
    return match.group(1).lstrip("0") or "0"  # "#02" and "#2" are one attempt; no int() of huge input


def model_in_text(message: str) -> str | None:
    """The lower-cased model named as ``model X is/are …`` in ``message``, or None."""
    match = _MODEL_RE.search(message)
    return match.group(1).lower() if match is not None else None


def normalized_class(message: str) -> str:
    """A stable class for ``message``: countdown segments removed, then a known class or the text itself.

    An empty remainder is ``retry``. The fallback to the normalised text keeps unknown
    messages apart from each other while still ignoring their countdowns.
    """
    text = message.lower()
    if "[" in text:
        text = _RETRY_SEGMENT_RE.sub(" ", text)
    text = " ".join(text.split())
    if not text:
        return "retry"
    for name, pattern in _CLASSES:
        if pattern.search(text):
            return name
    return text


def dedupe_key(attempt: str, model: str | None, cls: str) -> str:
    """``<attempt>:<model>:<class>``; a missing (or empty) model is ``unknown-model``."""
    return f"{attempt}:{model or UNKNOWN_MODEL}:{cls}"


def retry_key(
    status: Mapping[str, object], failing_model: str | None, *, current_model: str | None = None
) -> str:
    """The dedupe key of a retry status (§5 rule 4).

    The model is the tracked failing model if known, else the model named in the message, else
    ``current_model`` (the state's current model, when the caller has one), else
    ``unknown-model``.
    """
    message = _message(status)
    model = failing_model or model_in_text(message) or current_model
    return dedupe_key(retry_attempt(status), model, normalized_class(message))


def provider_retry_at(next_ms: int | None, attempt: object, now: float) -> float | None:
    """A retry status's ``next`` (epoch ms) as the provider's retry time (epoch s), or None when
    there is none or it falls inside opencode's own backoff band for ``attempt`` (spec §6.1.3)."""
    if next_ms is None:
        return None
    delay = next_ms / 1000.0 - now
    attempt = attempt if isinstance(attempt, int) and attempt > 0 else 1
    base = OPENCODE_BACKOFF_BASE_S * 2 ** (attempt - 1)
    if base * 0.8 <= delay <= base * 1.3 + 0.5:
        return None
    return next_ms / 1000.0
