"""Error classification: would another model fix this failure? (spec §4)

The payload's ``isRetryable`` flag is ignored on purpose. Providers set it on 401, 403 and 404
as well, and trusting it would walk a session through its whole chain over an auth problem
that the next model cannot fix either.

Aborts and context overflows are decided before any status code or message pattern. An abort
is a stop (the user's, or baton's own), and a context overflow is what opencode's compaction
deals with; both may well mention "429" or "rate limit" in passing, and falling back on them
would cancel that compaction or undo the user's stop.

Everything here runs for every error and retry signal of every session, so the regexes are
compiled once and the happy path allocates little beyond the returned :class:`ErrorInfo`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from baton.settings import DEFAULT_RETRY_ON_ERRORS

__all__ = [
    "DEFAULT_RETRY_ON_ERRORS",
    "ErrorInfo",
    "ErrorType",
    "classify_error",
    "error_parts_text",
    "error_text",
    "retry_signal_text",
]


class ErrorType(StrEnum):
    """Error kinds that decide before (or label alongside) the status/message rules of §4.3."""

    ABORT = "abort"
    CONTEXT_OVERFLOW = "context_overflow"
    MISSING_API_KEY = "missing_api_key"
    MODEL_NOT_FOUND = "model_not_found"
    INVALID_API_KEY = "invalid_api_key"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """What baton read from an error object, and whether a fallback may act on it."""

    message: str
    """Lower-cased message (§4.1 rule 1); ``""`` for a missing error."""
    status_code: int | None
    """First numeric status field, else a configured code found in the message."""
    name: str
    """Error name as the payload spelled it (not lower-cased, for the journal); ``""`` if none."""
    type: ErrorType | None
    retryable: bool


# --- patterns (all applied to lower-cased text) ---------------------------------------------

_CONTEXT_OVERFLOW_RE = re.compile(r"context.?length|context.?window|prompt is too long|maximum context")
_MISSING_API_KEY_RE = re.compile(r"api.?key.?is.?missing")

# §4.3 table, one alternative per fact.
_RETRYABLE_CLASS_PATTERNS: tuple[str, ...] = (
    r"rate.?limit",
    r"too.?many.?requests",
    r"quota.?exceeded",
    r"quota\s+will\s+reset\s+after",
    r"all\s+credentials\s+for\s+model",
    r"cool(?:ing)?\s+down",
    r"cooldown",
    r"exhausted\s+your\s+capacity",
    r"usage\s+limit\s+has\s+been\s+reached",
    r"service.?unavailable",
    r"temporarily.?unavailable",
    r"overloaded",
    r"try.?again",
    r"credit.*balance.*too.*low",
    r"insufficient.?(?:credits?|funds?|balance)",
)
# The bare-code class is kept apart: its leading ``(?:^|\s)`` would cost the big alternation its
# first-character prefilter (about 3x slower); it runs only when one of the codes occurs at all.
_RETRYABLE_CLASS_RE = re.compile("|".join(_RETRYABLE_CLASS_PATTERNS))
_BARE_CODE_RE = re.compile(r"(?:^|\s)(?:429|503|529)(?:\s|$)")  # "bare 429/503/529" row

# §4.4: the reference phrases plus every class of §4.3.
_RETRYING_IN_RE = re.compile(r"retrying\s+in")
_SIGNAL_PHRASE_RE = re.compile(
    "|".join((*_RETRYABLE_CLASS_PATTERNS, r"quota\s*exceeded", r"usage limit", r"limit reached"))
)

_ABORT_NAMES = frozenset({"messageabortederror", "aborterror"})
_MODEL_NOT_FOUND_NAMES = frozenset({"providermodelnotfounderror", "modelnotfounderror"})

_SIGNAL_FIELDS: tuple[str, ...] = ("status", "summary", "message", "details")


# --- reading an error object (§4.1) ---------------------------------------------------------


_Obj = Mapping[object, object]


def _as_mapping(value: object) -> _Obj | None:
    # ``type(...) is dict`` first: decoded JSON is always a dict, and the ABC check is slower.
    if type(value) is dict or isinstance(value, Mapping):
        return value
    return None


def _text(obj: _Obj | None, key: str) -> str | None:
    """``obj[key]`` if it is a non-empty string."""
    if obj is None:
        return None
    value = obj.get(key)
    return value if isinstance(value, str) and value else None


def _as_status(value: object) -> int | None:
    """An int (bools excluded) or a string of ASCII digits; anything else is not a status code."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        try:
            return int(value)
        except ValueError:  # beyond Python's int-from-string digit limit: not a status code
            return None
    return None


def _status_field(error: _Obj, data: _Obj | None, inner: _Obj | None) -> int | None:
    """First *numeric* status field: a non-numeric ``status: "error"`` must not hide a nested 429.

    Order: ``statusCode``, ``status``, ``data.statusCode``, ``error.statusCode``, ``cause.statusCode``.
    """
    code = _as_status(error.get("statusCode"))
    if code is None:
        code = _as_status(error.get("status"))
    if code is None and data is not None:
        code = _as_status(data.get("statusCode"))
    if code is None and inner is not None:
        code = _as_status(inner.get("statusCode"))
    if code is None:
        cause = _as_mapping(error.get("cause"))
        if cause is not None:
            code = _as_status(cause.get("statusCode"))
    return code


def _read_mapping(error: _Obj) -> tuple[str, int | None, str]:
    """(raw message, status field, name) of an error object, per §4.1 with each child read once."""
    data = _as_mapping(error.get("data"))
    inner = _as_mapping(error.get("error"))
    data_error = _as_mapping(data.get("error")) if data is not None else None
    message = (
        _text(data, "message")
        or _text(inner, "message")
        or _text(error, "message")
        or _text(data_error, "message")
        or _json_text(error)
    )
    name = _text(error, "name") or _text(inner, "name") or _text(data_error, "name") or ""
    return message, _status_field(error, data, inner), name


def _json_default(value: object) -> object:
    return dict(value) if isinstance(value, Mapping) else str(value)


def _json_text(value: object) -> str:
    """Compact JSON text (as JavaScript's ``JSON.stringify`` writes it); ``str()`` if not encodable."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    except (TypeError, ValueError, RecursionError):
        return str(value)


def _raw_message(error: object) -> str:
    """Message of anything but an error object, before lower-casing.

    Decision (the spec only names strings and objects): an exception contributes ``str(exc)``,
    any other non-mapping value its JSON text, like an object without a message field.
    """
    if error is None:
        return ""
    if isinstance(error, str):
        return error
    if isinstance(error, BaseException):
        return str(error)
    return _json_text(error)


@lru_cache(maxsize=64)
def _code_pattern(codes: tuple[int, ...]) -> re.Pattern[str] | None:
    """Whole-word regex for the configured codes; None for an empty list, which matches nothing."""
    if not codes:
        return None
    alternatives = "|".join(re.escape(str(code)) for code in dict.fromkeys(codes))
    return re.compile(rf"\b(?:{alternatives})\b")


def _code_in_text(message: str, retry_on_errors: Sequence[int]) -> int | None:
    codes = retry_on_errors if isinstance(retry_on_errors, tuple) else tuple(retry_on_errors)
    pattern = _code_pattern(codes)
    if pattern is None:
        return None
    match = pattern.search(message)
    return int(match.group()) if match is not None else None


# --- types and decision (§4.2, §4.3) --------------------------------------------------------


def _error_type(name: str, message: str) -> ErrorType | None:
    """Type from the lower-cased name and message; table order of §4.2, first match wins."""
    if name in _ABORT_NAMES:
        return ErrorType.ABORT
    if name == "contextoverflowerror" or _CONTEXT_OVERFLOW_RE.search(message):
        return ErrorType.CONTEXT_OVERFLOW
    if "loadapi" in name or ("environment variable" in message and _MISSING_API_KEY_RE.search(message)):
        return ErrorType.MISSING_API_KEY
    if ("unknownerror" in name and "model not found" in message) or name in _MODEL_NOT_FOUND_NAMES:
        return ErrorType.MODEL_NOT_FOUND
    if "api key" in message and "must be a string" in message:
        return ErrorType.INVALID_API_KEY
    return None


def _has_bare_code(text: str) -> bool:
    if "429" not in text and "503" not in text and "529" not in text:
        return False
    return _BARE_CODE_RE.search(text) is not None


def _matches_class(text: str) -> bool:
    """Rule 4: ``text`` (lower-cased) names a retryable class of the §4.3 table."""
    return _RETRYABLE_CLASS_RE.search(text) is not None or _has_bare_code(text)


def _decide(kind: ErrorType | None, status: int | None, message: str, retry_on_errors: Sequence[int]) -> bool:
    """§4.3, first match wins."""
    if kind is ErrorType.ABORT or kind is ErrorType.CONTEXT_OVERFLOW:
        return False
    if kind is ErrorType.MISSING_API_KEY or kind is ErrorType.MODEL_NOT_FOUND:
        return True
    if status is not None and status in retry_on_errors:
        return True
    return _matches_class(message)


def classify_error(error: object, retry_on_errors: Sequence[int] = DEFAULT_RETRY_ON_ERRORS) -> ErrorInfo:
    """Read ``error`` (§4.1), type it (§4.2) and decide whether a fallback may act (§4.3).

    ``error`` may be an opencode error object, a plain string, None, or anything else (see
    :func:`_raw_message`). ``invalid_api_key`` is a label only: such an error still goes
    through the status-code and message rules, like an untyped one.
    """
    mapping = _as_mapping(error)
    if mapping is not None:
        raw, status, name = _read_mapping(mapping)
    else:
        raw, status, name = _raw_message(error), None, ""
    message = raw.lower()
    if status is None and message:
        status = _code_in_text(message, retry_on_errors)

    kind = _error_type(name.lower(), message)
    retryable = _decide(kind, status, message, retry_on_errors)
    return ErrorInfo(message=message, status_code=status, name=name, type=kind, retryable=retryable)


# --- the text a reset time is looked for in (issue 8 §2) -------------------------------------


def error_text(error: object) -> str:
    """The error's message as the provider wrote it (case kept), plus an APIError's
    ``data.responseBody``: where :func:`baton.fallback.reset_times.reset_from_text` looks."""
    mapping = _as_mapping(error)
    if mapping is None:
        return _raw_message(error)
    message = _read_mapping(mapping)[0]
    data = _as_mapping(mapping.get("data"))
    body = _text(data, "responseBody")
    return message if body is None or body in message else f"{message}\n{body}"


# --- assistant messages (§4.4) --------------------------------------------------------------


def retry_signal_text(info: Mapping[str, object]) -> str | None:
    """The auto-retry notice carried by an assistant message's ``info``, or None.

    The text joins (by newlines) the non-empty string values of ``status``, ``summary``,
    ``message`` and ``details``; part texts are the model's own words and are never read. It
    is a signal when it says ``retrying in`` and names a retryable phrase. The caller treats
    a signal as retryable as such (§4.4 rule 3): the reference phrases "usage limit" and
    "limit reached" are signals even though :func:`classify_error` alone would not retry them.
    A configured status code in the text does not make a signal (codes are not phrases); the
    bare 429/503/529 class does.
    """
    texts = [value for key in _SIGNAL_FIELDS if isinstance(value := info.get(key), str) and value]
    if not texts:
        return None
    text = "\n".join(texts)
    lowered = text.lower()
    if _RETRYING_IN_RE.search(lowered) and (_SIGNAL_PHRASE_RE.search(lowered) or _has_bare_code(lowered)):
        return text
    return None


def error_parts_text(parts: Iterable[object] | None) -> str | None:
    """Joined ``text`` of the parts whose ``type`` is ``"error"`` (§4.4 rule 4), or None if none.

    Decision: an error part without text still makes the message an error, so the result is
    ``""`` rather than None when error parts exist but none carries text.
    """
    if parts is None:
        return None
    texts: list[str] | None = None
    for part in parts:
        if isinstance(part, Mapping) and part.get("type") == "error":
            if texts is None:
                texts = []
            text = part.get("text")
            if isinstance(text, str) and text:
                texts.append(text)
    return None if texts is None else "\n".join(texts)
