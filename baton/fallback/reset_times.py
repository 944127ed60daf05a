"""Reset times: when a failing model can be used again, from everything the provider said (issue 8 §2).

Four sources, most trusted first (the order :meth:`baton.fallback.core.FallbackCore.decide` applies):

* ``opencode retry`` — a retry status's ``next`` outside opencode's own backoff band
  (:func:`baton.fallback.retry_status.provider_retry_at`);
* ``retry-after header`` — ``retry-after-ms`` / ``retry-after`` among the error's response headers;
* ``rate-limit header`` — a rate-limit reset header: ``x-ratelimit-reset`` (seconds, or a unix
  time), OpenAI's ``x-ratelimit-reset-requests: 1m30s``, Anthropic's
  ``anthropic-ratelimit-tokens-reset`` (RFC 3339). With several, the buckets whose
  ``…remaining…`` header says 0 decide; the latest of them wins;
* ``provider text`` — a reset phrase in the error's text: "try again in 20 minutes", "quota will
  reset after 3h12m", "resets at 2026-11-29T14:32Z", "reset at 14:32 UTC", or a field of the
  body such as ``"resets_in_seconds": 602705`` or ``"retryDelay": "38s"``.

Without any of them the configured ``cooldown_seconds`` applies (``configured``). Decisions: a
time without a zone is UTC; a bare time of day already past today is tomorrow's; a date in the
past, a zone baton does not know ("8pm PT") or anything more than :data:`MAX_AHEAD_S` ahead
gives None, so the next source is tried. Pure: time arrives as ``now`` (epoch seconds).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from email.utils import parsedate_to_datetime
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "MAX_AHEAD_S",
    "ResetSource",
    "ResetTime",
    "reset_from_headers",
    "reset_from_text",
    "retry_after_ms",
]

MAX_AHEAD_S = 366 * 86_400
"""A reset further ahead than a year is nonsense, not a reset time."""


class ResetSource(StrEnum):
    """Where a cooldown's end came from (persisted, and shown by ``baton status``)."""

    OPENCODE_RETRY = "opencode retry"
    RETRY_AFTER_HEADER = "retry-after header"
    RATE_LIMIT_HEADER = "rate-limit header"
    PROVIDER_TEXT = "provider text"
    CONFIGURED = "configured"


@dataclass(frozen=True, slots=True)
class ResetTime:
    """When a model is usable again (epoch seconds), where that came from, and the words it came in."""

    at: float
    source: ResetSource
    detail: str = ""


# --- durations: "20 minutes", "3h12m", "1m30s", "6.5s", "6ms", "5 days 22 hours 11 minutes" -------

_NUMBER = r"[0-9]{1,9}(?:\.[0-9]{1,9})?"
_UNIT = (r"(?:ms|msecs?|milliseconds?|s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|w|wks?|weeks?)"
         r"(?![a-z])")
_PART_RE = re.compile(rf"({_NUMBER})\s*({_UNIT})", re.IGNORECASE)
_DURATION = rf"{_NUMBER}\s*{_UNIT}(?:[\s,]*(?:and\s+)?{_NUMBER}\s*{_UNIT})*"
_COMPACT_DURATION_RE = re.compile(rf"(?:{_NUMBER}{_UNIT})+", re.IGNORECASE)  # a header's "1m30s"
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}

# --- phrases -------------------------------------------------------------------------------------

# "try again in 20 minutes", "retry after 30 seconds", "quota will reset after 3h12m", "resets in
# 2 days 3 hours", "Please wait 8 hours 24 minutes", "come back in 3h 47m". Not "retrying in …":
# that is a client's own countdown (opencode's "[retrying in 4m 2s attempt #2]"), not the provider's.
_RELATIVE_RE = re.compile(
    rf"\b(?:(?:re)?try(?:\s+again)?|resets?|wait|come\s+back)\s+(?:in\s+|after\s+|for\s+)?(?P<duration>{_DURATION})",
    re.IGNORECASE,
)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
# "resets at 2026-11-29T14:32Z", "reset at 14:32 UTC", "resets 7:30pm (Asia/Nicosia)", "try again at
# Jul 5th, 2026 8:19 PM". A trailing zone abbreviation baton cannot place ("PT", "EST") rejects it.
_ABSOLUTE_RE = re.compile(
    r"\b(?:resets?|(?:re)?try(?:\s+again)?|available(?:\s+again)?)\s+(?:at\s+|on\s+)?"
    r"(?:(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})[t ]"
    rf"|(?P<month_name>{'|'.join(_MONTHS)})[a-z]*\.?\s+(?P<month_day>[0-9]{{1,2}})(?:st|nd|rd|th)?,?\s+"
    r"(?P<month_year>[0-9]{4}),?\s+(?:at\s+)?)?"
    r"(?P<hour>[0-9]{1,2})(?::(?P<minute>[0-9]{2}))?(?::(?P<second>[0-9]{2})(?:\.[0-9]+)?)?"
    r"\s*(?P<ampm>[ap]\.?m\b\.?)?"
    r"\s*(?P<zone>z\b|utc\b|gmt\b|[+-][0-9]{2}:?[0-9]{2}\b|\([a-z]+/[a-z_+-]+(?:/[a-z_+-]+)?\))?"
    r"(?!\s*(?-i:[A-Z]{1,4}T)\b)",
    re.IGNORECASE,
)
# A machine-written field of the body: Codex's "resets_at"/"resets_in_seconds", Google's
# "retryDelay"/"quotaResetDelay"/"quotaResetTimeStamp" (quotes may be JSON-escaped inside a message).
_FIELD_RE = re.compile(
    r"\b(?P<name>resets?_?at|resets?_?in_?seconds|retry_?delay|quota_?reset_?(?:delay|time_?stamp))"
    r"\\?[\"']?\s*[:=]\s*\\?[\"']?(?P<value>[^\"'\\,}\s]+)",
    re.IGNORECASE,
)

# --- headers -------------------------------------------------------------------------------------

_DELAY_RE = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,9})?")  # a plain non-negative decimal, length-capped
# x-ratelimit-reset, x-ratelimit-reset-requests, anthropic-ratelimit-tokens-reset, ratelimit-reset...
_RESET_HEADER_RE = re.compile(r"(?:^|-)rate-?limit-(?:[a-z0-9-]+-)?reset(?:-[a-z0-9-]+)?$")
_EPOCH_S = Decimal(1_000_000_000)  # a number this large is a unix time, not a delay (2001-09-09)
_EPOCH_MS = Decimal(1_000_000_000_000)


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def _duration_ms(text: str) -> int | None:
    """The sum of the number-unit parts of ``text`` in milliseconds; None beyond :data:`MAX_AHEAD_S`."""
    total = Decimal(0)
    for number, unit in _PART_RE.findall(text):
        unit = unit.lower()
        scale = 1 if unit.startswith(("ms", "msec", "milli")) else _UNIT_MS[unit[0]]
        total += Decimal(number) * scale
    return math.ceil(total) if total <= MAX_AHEAD_S * 1000 else None


def _delay(value: object) -> Decimal | None:
    """A non-negative, finite number from a header value (string or number), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value) if value >= 0 else None
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) and value >= 0 else None
    if isinstance(value, str):
        text = value.strip()
        return Decimal(text) if _DELAY_RE.fullmatch(text) else None
    return None


def _iso_ms(text: str) -> int | None:
    """An ISO 8601 / RFC 3339 time (no zone: UTC) in epoch ms, else None."""
    try:
        moment = datetime.fromisoformat(text.strip().upper())
    except ValueError:
        return None
    return _ms(moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC))


def _value_ms(value: object, now_ms: int) -> int | None:
    """A reset value as header or body write it: a number of seconds, or a unix time in s or ms when
    that large; a duration ("1m30s", "38s"); an RFC 3339 time. Epoch ms; None when unreadable."""
    number = _delay(value)
    if number is not None:
        if number >= _EPOCH_MS:
            return math.ceil(number)
        if number >= _EPOCH_S:
            return math.ceil(number * 1000)
        return now_ms + math.ceil(number * 1000)
    if not isinstance(value, str):
        return None
    if _COMPACT_DURATION_RE.fullmatch(value.strip()):
        delay = _duration_ms(value)
        return None if delay is None else now_ms + delay
    return _iso_ms(value)


def _sane(at_ms: int | None, now_ms: int) -> bool:
    return at_ms is not None and now_ms <= at_ms <= now_ms + MAX_AHEAD_S * 1000


# --- text ----------------------------------------------------------------------------------------


def _zone(text: str | None) -> tzinfo | None:
    """The zone a phrase named: UTC when none; None when baton cannot place it."""
    if text is None or text.lower() in ("z", "utc", "gmt"):
        return UTC
    if text.startswith("("):
        try:
            return ZoneInfo(text.strip("()"))
        except (ZoneInfoNotFoundError, ValueError):
            return None
    digits = text.replace(":", "")
    offset = timedelta(hours=int(digits[1:3]), minutes=int(digits[3:5]))
    return timezone(-offset if digits[0] == "-" else offset) if offset < timedelta(hours=24) else None


def _absolute_ms(match: re.Match[str], now: float) -> int | None:
    """The moment an absolute phrase names, or None when it names none (or an impossible one)."""
    zone = _zone(match["zone"])
    hour, minute, second = int(match["hour"]), int(match["minute"] or 0), int(match["second"] or 0)
    dated = match["year"] is not None or match["month_name"] is not None
    if zone is None or not (dated or match["minute"] is not None or match["ampm"]):
        return None  # "retry 3 times" is no time of day
    if match["ampm"]:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if match["ampm"][0].lower() == "p" else 0)
    try:
        if match["year"] is not None:
            date = datetime(int(match["year"]), int(match["month"]), int(match["day"]), tzinfo=zone)
        elif match["month_name"] is not None:
            month = _MONTHS.index(match["month_name"].lower()) + 1
            date = datetime(int(match["month_year"]), month, int(match["month_day"]), tzinfo=zone)
        else:
            date = datetime.fromtimestamp(now, zone).replace(hour=0, minute=0, second=0, microsecond=0)
        moment = date.replace(hour=hour, minute=minute, second=second)
    except ValueError:  # month 13, hour 25...
        return None
    if not dated and moment.timestamp() <= now:
        moment += timedelta(days=1)  # "14:32 UTC" when it is 15:00 already: tomorrow's
    return _ms(moment)


def reset_from_text(text: str, now: float) -> ResetTime | None:
    """The reset time a provider's error text gives, or None when it gives none baton can read.

    Looked for in this order, the first that reads wins: a body field (``"resets_in_seconds"``,
    ``"retryDelay"``...), a relative phrase ("try again in 20 minutes"), an absolute one ("resets
    at 14:32 UTC").
    """
    now_ms = math.floor(now * 1000)
    for match in _FIELD_RE.finditer(text):
        at_ms = _value_ms(match["value"], now_ms)
        if _sane(at_ms, now_ms):
            return _text_reset(at_ms, match)
    for match in _RELATIVE_RE.finditer(text):
        delay = _duration_ms(match["duration"])
        if delay is not None:
            return _text_reset(now_ms + delay, match)
    for match in _ABSOLUTE_RE.finditer(text):
        at_ms = _absolute_ms(match, now)
        if _sane(at_ms, now_ms):
            return _text_reset(at_ms, match)
    return None


def _text_reset(at_ms: int | None, match: re.Match[str]) -> ResetTime:
    assert at_ms is not None
    return ResetTime(at_ms / 1000.0, ResetSource.PROVIDER_TEXT, " ".join(match[0].split())[:80])


# --- headers -------------------------------------------------------------------------------------


def _http_date_ms(value: object) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        moment = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:  # "-0000": the RFC's "UTC, origin unknown"
        moment = moment.replace(tzinfo=UTC)
    return _ms(moment)


def _lowered(headers: Mapping[object, object]) -> dict[str, object]:
    return {key.lower(): value for key, value in headers.items() if isinstance(key, str)}


def _retry_after(headers: dict[str, object], now_ms: int) -> int | None:
    """``retry-after-ms`` (ms) wins over ``retry-after`` (seconds or an HTTP date; a past date is now)."""
    delay = _delay(headers.get("retry-after-ms"))
    if delay is not None:
        return now_ms + math.ceil(delay)
    delay = _delay(headers.get("retry-after"))
    if delay is not None:
        return now_ms + math.ceil(delay * 1000)
    date_ms = _http_date_ms(headers.get("retry-after"))
    return None if date_ms is None else max(date_ms, now_ms)


def _is_zero(value: object) -> bool:
    return _delay(value) == 0


def _rate_limit_reset(headers: dict[str, object], now_ms: int) -> tuple[int, str] | None:
    """The latest reset among the exhausted buckets (all of them when none says so), and its header."""
    resets = {name: value for name, value in headers.items() if _RESET_HEADER_RE.search(name)}
    exhausted = [name for name in resets if _is_zero(headers.get(name.replace("reset", "remaining")))]
    found = [(at_ms, name) for name in exhausted or resets
             if _sane(at_ms := _value_ms(resets[name], now_ms), now_ms) and at_ms is not None]
    return max(found) if found else None


def _response_headers(error: object) -> Iterator[dict[str, object]]:
    """``data.responseHeaders``, then a top-level ``responseHeaders`` (names lower-cased)."""
    if not isinstance(error, Mapping):
        return
    data = error.get("data")
    nested = data.get("responseHeaders") if isinstance(data, Mapping) else None
    for headers in (nested, error.get("responseHeaders")):
        if isinstance(headers, Mapping):
            yield _lowered(headers)


def retry_after_ms(error: object, now_ms: int) -> int | None:
    """The provider's Retry-After as an absolute epoch-ms deadline, or None when it gave none.

    Headers come from ``data.responseHeaders``, else a top-level ``responseHeaders``; names are
    case-insensitive. ``retry-after-ms`` (milliseconds) wins over ``retry-after`` (seconds or an
    HTTP date). Decisions: fractions round up to the next millisecond; a date in the past means
    "now" (``now_ms``); a negative, non-finite or unparsable value counts as absent, so the
    next source is tried.
    """
    for headers in _response_headers(error):
        deadline = _retry_after(headers, now_ms)
        if deadline is not None:
            return deadline
    return None


def reset_from_headers(error: object, now: float) -> ResetTime | None:
    """The reset time the error's response headers give: Retry-After first, then rate-limit resets."""
    now_ms = math.floor(now * 1000)
    deadline = retry_after_ms(error, now_ms)
    if deadline is not None and deadline <= now_ms + MAX_AHEAD_S * 1000:
        return ResetTime(deadline / 1000.0, ResetSource.RETRY_AFTER_HEADER, "retry-after")
    for headers in _response_headers(error):
        found = _rate_limit_reset(headers, now_ms)
        if found is not None:
            return ResetTime(found[0] / 1000.0, ResetSource.RATE_LIMIT_HEADER, f"{found[1]}: {headers[found[1]]}"[:80])
    return None
