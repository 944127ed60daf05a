"""Reset times from the provider (issue 8 §2): the wordings providers use, headers, precedence and cap.

The wordings below are real ones, shortened to the part that carries the reset time, each with
the provider (or client) it was seen from in public issue threads. ``NOW`` is fixed: Sunday
2026-11-29 12:00:00 UTC; no test reads the clock.
"""

from __future__ import annotations

import re
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from baton import cli
from baton.actions import SaveCooldown
from baton.cooldowns import Cooldowns
from baton.fallback.core import FallbackCore
from baton.fallback.reset_times import MAX_AHEAD_S, ResetSource, ResetTime, reset_from_headers, reset_from_text
from baton.fallback.retry_status import provider_retry_at
from baton.settings import RuntimeFallbackConfig
from baton.store import Store
from baton.testing.clock import FakeClock

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC).timestamp()
HOUR, DAY = 3600, 86_400


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    """Seconds from NOW to a UTC time."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp() - NOW


# (wording, seconds from NOW, or None for "no reset time in it")
WORDINGS: list[tuple[str, float | None]] = [
    # Google Antigravity / cloudcode-pa (Gemini CLI), RESOURCE_EXHAUSTED
    ("You have exhausted your capacity on this model. Your quota will reset after 3h12m45s.", 3 * HOUR + 765),
    # same, a weekly window
    ("Your quota will reset after 161h39m41s.", 161 * HOUR + 39 * 60 + 41),
    # Gemini API, QuotaFailure message
    ("Quota exceeded for metric: generate_content_paid_tier_input_token_count, limit: 4000000\n"
     "Please retry in 47.434392449s.", 47.435),
    # Gemini API, google.rpc.RetryInfo in the body (JSON-escaped inside the message)
    ('{\\"@type\\": \\"type.googleapis.com/google.rpc.RetryInfo\\", \\"retryDelay\\": \\"38s\\"}', 38),
    # Antigravity ErrorInfo metadata
    ('"metadata": {"quotaResetTimeStamp": "2026-11-30T09:06:26Z"}', at(2026, 11, 30, 9, 6, 26)),
    # OpenAI, tokens per minute
    ("Rate limit reached for gpt-4 in organization org-x on tokens per min. Limit: 10000 / min. "
     "Please try again in 6ms.", 0.006),
    # OpenAI, requests per day
    ("Rate limit reached for gpt-4o-mini on requests per day (RPD): Limit 200, Used 200. "
     "Please try again in 7m12s.", 432),
    # OpenAI, seconds with a fraction
    ("Rate limit reached for o3 on tokens per min (TPM). Please try again in 6.5s.", 6.5),
    # Codex CLI, ChatGPT plan weekly limit
    ("You've hit your usage limit. Upgrade to Pro or try again in 5 days 22 hours 11\nminutes.",
     5 * DAY + 22 * HOUR + 11 * 60),
    # Codex app, an absolute time (no zone: read as UTC)
    ("You've hit your usage limit. Upgrade to Plus to continue, or try again at Dec 5th, 2026 8:19 PM.",
     at(2026, 12, 5, 20, 19)),
    # Codex backend usage_limit_reached body
    ('{"error":{"type":"usage_limit_reached","message":"The usage limit has been reached",'
     '"resets_in_seconds":602705}}', 602705),
    # same, the unix time field
    ('{"type":"usage_limit_reached","resets_at":1796000000}', 1796000000 - NOW),
    # GitHub Copilot CLI
    ("Sorry, you've hit a rate limit that restricts the number of Copilot model requests you can make "
     "within a specific time period. Please try again in 58 hours.", 58 * HOUR),
    # GitHub Copilot Chat
    ("Sorry, your request was rate-limited. Please wait 71 minutes before trying again.", 71 * 60),
    # GitHub Copilot Chat, hours and minutes
    ("Sorry, your request is rate-limited. Please wait 8 hours 24 minutes and try again", 8 * HOUR + 24 * 60),
    # GitHub Copilot Chat, no time given
    ("Sorry, you have been rate-limited. Please wait a moment before trying again.", None),
    # OpenCode Go, weekly window with day counts
    ("Weekly usage limit reached. It will reset in 5 days 10 hours.", 5 * DAY + 10 * HOUR),
    # OpenCode Go, monthly window
    ("Monthly usage limit reached. It will reset in 10 days 19 hours.", 10 * DAY + 19 * HOUR),
    # LiteLLM router, all deployments cooling
    ("No deployments available for selected model, Try again in 60 seconds.", 60),
    # Moonshot
    ("Your account request reached max request: 3, please try again after 1 seconds", 1),
    # Moonshot / Kimi, no time given
    ("We're receiving too many requests at the moment. Please wait a moment and try again.", None),
    # Kimi for Coding console
    ("Weekly usage: 22%. Resets in 111 hours", 111 * HOUR),
    # Z.ai GLM Coding Plan, weekly limit (code 1310)
    ("Weekly/Monthly Limit Exhausted. Your limit will reset at 2026-12-14T00:00:00Z", at(2026, 12, 14)),
    # Z.ai GLM Coding Plan, 5-hour window (code 1316), minutes only
    ("Usage limit reached for 5 hour. Resets at 2026-11-29T14:32Z", 2 * HOUR + 32 * 60),
    # Anthropic API rate_limit_error, no time given
    ("This request would exceed your account's rate limit. Please try again later.", None),
    # Claude Code plan limit, IANA zone (20:00 EST is 01:00 UTC)
    ("You've hit your limit · resets 8pm (America/New_York)", 13 * HOUR),
    # Claude Code, a zone abbreviation baton cannot place
    ("Sonnet quota resets 7pm PT", None),
    # Freebuff (GLM), relative before a vague absolute
    ("Come back in 3h 47m — your free usage resets automatically at midnight Pacific.", 3 * HOUR + 47 * 60),
    # OpenRouter free tier, no time in the text (it is in X-RateLimit-Reset)
    ("Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day", None),
    # opencode's own retry countdown is not the provider's reset
    ("All credentials for model gpt-5-mini are cooling down [retrying in 4m 2s attempt #2]", None),
    # Gemini CLI's own backoff is not the provider's reset
    ("Attempt 1 failed: Resource exhausted. Retrying after 6173ms...", None),
    # Vertex AI, no time given
    ("429 Resource exhausted. Please try again later.", None),
    # issue 8 wordings: a time of day with a zone, later today and already past (tomorrow's)
    ("Your quota will reset at 14:32 UTC", 2 * HOUR + 32 * 60),
    ("Your quota will reset at 11:32 UTC", 23 * HOUR + 32 * 60),
    ("rate limit exceeded, reset in 1 hour", HOUR),
    ("retry after 30 seconds", 30),
    ("5-hour limit reached; resets in 2 days 3 hours", 2 * DAY + 3 * HOUR),
    ("reset at 2026-12-01T09:00:00+02:00", at(2026, 12, 1, 7)),
    # nonsense: too far, in the past, impossible
    ("try again in 9999 days", None),
    ("quota resets at 2019-01-01T00:00Z", None),
    ("reset at 25:00 UTC", None),
    ("please retry 3 times", None),
]


def _ascii_id(text: str) -> str:
    """A test id of plain letters and digits: mutmut passes node ids back to pytest, which cannot
    find one holding non-ASCII characters or backslashes (exit 4)."""
    return re.sub(r"[^A-Za-z0-9]+", "_", text[:40]).strip("_")


@pytest.mark.parametrize(("text", "seconds"), WORDINGS, ids=[_ascii_id(w[0]) for w in WORDINGS])
def test_provider_wordings(text: str, seconds: float | None) -> None:
    reset = reset_from_text(text, NOW)
    if seconds is None:
        assert reset is None
        return
    assert reset is not None, text
    assert reset.at - NOW == pytest.approx(seconds, abs=0.002)
    assert reset.source is ResetSource.PROVIDER_TEXT and reset.detail


def test_the_table_is_long_enough() -> None:
    assert len(WORDINGS) >= 25 and sum(s is None for _, s in WORDINGS) >= 8


def test_the_detail_is_the_phrase_itself() -> None:
    reset = reset_from_text("Your quota will reset after 3h12m. Contact support.", NOW)
    assert reset is not None and reset.detail == "reset after 3h12m"


# ---------------------------------------------------------------------- headers


def with_headers(headers: dict[str, Any], message: str = "Too many requests") -> dict[str, Any]:
    return {"name": "APIError", "data": {"message": message, "statusCode": 429, "responseHeaders": headers}}


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        # OpenAI: the exhausted bucket decides
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1m30s",
          "x-ratelimit-remaining-tokens": "5000", "x-ratelimit-reset-tokens": "6m0s"}, 90),
        # OpenAI, none said to be exhausted: the latest
        ({"x-ratelimit-reset-requests": "20ms", "x-ratelimit-reset-tokens": "6m0s"}, 360),
        # Anthropic, RFC 3339
        ({"anthropic-ratelimit-tokens-remaining": "0", "anthropic-ratelimit-tokens-reset": "2026-11-29T12:01:00Z"}, 60),
        # X-RateLimit-Reset as a unix time (OpenRouter sends milliseconds)
        ({"X-RateLimit-Reset": str(int(NOW) + 120)}, 120),
        ({"X-RateLimit-Reset": str(int(NOW * 1000) + 5_000)}, 5),
        # ... and as seconds from now
        ({"ratelimit-reset": "30"}, 30),
        # unreadable, negative, in the past or absurd: no reset time
        ({"x-ratelimit-reset": "soon"}, None),
        ({"x-ratelimit-reset": "-5"}, None),
        ({"x-ratelimit-reset": str(int(NOW) - 60)}, None),
        ({"x-ratelimit-reset": str(MAX_AHEAD_S + 1)}, None),
        ({"x-ratelimit-limit": "50"}, None),
    ],
)
def test_rate_limit_reset_headers(headers: dict[str, Any], seconds: float | None) -> None:
    reset = reset_from_headers(with_headers(headers), NOW)
    if seconds is None:
        assert reset is None
        return
    assert reset is not None and reset.source is ResetSource.RATE_LIMIT_HEADER
    assert reset.at - NOW == pytest.approx(seconds)


@pytest.mark.parametrize("local_zone", ["UTC", "America/New_York", "Asia/Tokyo"])
def test_a_reset_header_time_without_a_zone_is_utc_and_one_with_an_offset_keeps_it(
    local_zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§6.1.3: "A time without a zone is UTC", whatever zone baton's machine is in; an RFC 3339
    offset is honoured (12:01+02:00 is 10:01 UTC, in the past: no reset time)."""
    monkeypatch.setenv("TZ", local_zone)
    time.tzset()
    try:
        naive = reset_from_headers(with_headers({"anthropic-ratelimit-tokens-reset": "2026-11-29T12:01:00"}), NOW)
        offset = reset_from_headers(with_headers({"anthropic-ratelimit-tokens-reset": "2026-11-29T14:05:00+02:00"}),
                                    NOW)
        past = reset_from_headers(with_headers({"anthropic-ratelimit-tokens-reset": "2026-11-29T12:01:00+02:00"}),
                                  NOW)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert naive is not None and naive.at - NOW == pytest.approx(60)
    assert offset is not None and offset.at - NOW == pytest.approx(5 * 60)
    assert past is None


def test_retry_after_comes_before_the_rate_limit_headers() -> None:
    reset = reset_from_headers(with_headers({"x-ratelimit-reset": "600", "Retry-After": "20"}), NOW)
    assert reset == ResetTime(NOW + 20, ResetSource.RETRY_AFTER_HEADER, "retry-after")


# ---------------------------------------------------------------------- the core: precedence and cap


def core(cooldowns: Cooldowns | None = None, *, max_cooldown: float = 24 * HOUR) -> FallbackCore:
    rules = RuntimeFallbackConfig.model_validate({"cooldown_seconds": 60})
    return FallbackCore(rules, cooldowns or Cooldowns(), max_cooldown)


def decide(error: object, provider_until: float | None = None, **kw: Any) -> SaveCooldown | None:
    decision = core(**kw).decide(error, "prov/a", NOW, chain=("prov/a", "prov/b"), after=0, attempts=0,
                                 provider_until=provider_until)
    return decision.cooldown


BOTH = with_headers({"retry-after": "120"}, "Rate limit reached. Please try again in 20 minutes.")
TEXT_ONLY = with_headers({}, "Rate limit reached. Please try again in 20 minutes.")


@pytest.mark.parametrize(
    ("error", "provider_until", "until", "source"),
    [
        (BOTH, NOW + 5, NOW + 120, ResetSource.RETRY_AFTER_HEADER),
        (BOTH, None, NOW + 120, ResetSource.RETRY_AFTER_HEADER),
        (TEXT_ONLY, NOW + 5, NOW + 1200, ResetSource.PROVIDER_TEXT),
        (with_headers({}, "Rate limit exceeded"), NOW + 5, NOW + 5, ResetSource.OPENCODE_RETRY),
        (with_headers({"x-ratelimit-reset": "300"}, "Too many requests. Try again in 20 minutes."), None,
         NOW + 300, ResetSource.RATE_LIMIT_HEADER),
        (TEXT_ONLY, None, NOW + 1200, ResetSource.PROVIDER_TEXT),
        ("Rate limit reached. Please try again in 20 minutes.", None, NOW + 1200, ResetSource.PROVIDER_TEXT),
        (with_headers({}, "Rate limit exceeded"), None, NOW + 60, ResetSource.CONFIGURED),
    ],
)
def test_precedence_headers_then_text_then_opencode_then_configured(
    error: object, provider_until: float | None, until: float, source: ResetSource
) -> None:
    cooldown = decide(error, provider_until)
    assert cooldown is not None and (cooldown.until, cooldown.source) == (until, source)


def test_a_reset_time_is_capped_at_the_max_cooldown() -> None:
    shared = Cooldowns()
    decision = core(shared, max_cooldown=HOUR).decide(
        "You've hit your usage limit. Try again in 5 days 22 hours.", "prov/a", NOW,
        chain=("prov/a", "prov/b"), after=0, attempts=0)
    assert decision.cooldown is not None and decision.cooldown.until == NOW + HOUR
    assert decision.cooldown.source == ResetSource.PROVIDER_TEXT
    assert decision.reset is not None and "capped" in decision.reset.detail
    assert shared.until("prov/a") == NOW + HOUR and shared.source("prov/a") == "provider text"
    opencode = core(max_cooldown=HOUR).decide("Rate limit exceeded", "prov/a", NOW, chain=("prov/a",), after=0,
                                              attempts=0, provider_until=NOW + 7 * DAY)
    assert opencode.cooldown is not None and opencode.cooldown.until == NOW + HOUR


def test_the_decision_carries_the_reset_time() -> None:
    decision = core().decide(TEXT_ONLY, "prov/a", NOW, chain=("prov/a", "prov/b"), after=0, attempts=0)
    assert decision.reset == ResetTime(NOW + 1200, ResetSource.PROVIDER_TEXT, "try again in 20 minutes")


# ---------------------------------------------------------------------- persisted and shown


def test_the_source_survives_a_store_reopen(tmp_path: Path) -> None:
    path = tmp_path / "baton.db"
    with Store(path) as store:
        store.save_cooldown("prov/a", NOW + 600, "usage limit", NOW, source="provider text")
        store.save_cooldown("prov/b", NOW + 60, "overloaded", NOW)
    with Store(path) as store:
        rows = [(r.model, r.source) for r in store.cooling(NOW)]
        assert rows == [("prov/b", "configured"), ("prov/a", "provider text")]
    with Store(path, readonly=True) as reader:
        assert reader.cooling(NOW)[1].source == "provider text"
        assert reader.cooldowns(NOW)[1] == ("prov/a", NOW + 600, "usage limit")


def test_a_store_from_before_the_source_column_reads_as_configured(tmp_path: Path) -> None:
    path = tmp_path / "baton.db"
    with Store(path) as store:
        store.save_cooldown("prov/a", NOW + 600, "usage limit", NOW, source="provider text")
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE model_health DROP COLUMN source")
        db.execute("PRAGMA user_version = 4")
    with Store(path, readonly=True) as reader:
        assert reader.cooling(NOW)[0].source == "configured"
    with Store(path) as store:  # a writer migrates
        store.save_cooldown("prov/a", NOW + 900, "again", NOW, source="retry-after header")
    with Store(path, readonly=True) as reader:
        assert reader.cooling(NOW)[0].source == "retry-after header"


def test_status_shows_each_cooling_model_with_its_reset_time_and_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "baton.db"
    with Store(path) as store:
        store.save_cooldown("prov/a", NOW + 3 * HOUR, "usage limit", NOW, source="provider text")
        store.save_cooldown("prov/b", NOW + 3 * DAY, "weekly limit", NOW, source="rate-limit header")
    monkeypatch.setattr(cli, "_clock", FakeClock(NOW))
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    console = Console(record=True, width=200)
    try:
        with Store(path, readonly=True) as reader:
            console.print(cli._status_view(None, reader))  # no serve: the store's rows
            live = {"state": "attached", "opencode_url": "http://x", "events": 0, "fallbacks": 0, "connects": 1,
                    "sessions": [], "tasks": [],
                    "cooldowns": [{"model": "prov/a", "until": NOW + 3 * HOUR, "seconds_left": 3 * HOUR,
                                   "source": "provider text"}]}
            console.print(cli._status_view(live, reader))  # a serve: its rows, the store's reasons
    finally:
        monkeypatch.undo()
        time.tzset()
    lines = console.export_text().splitlines()
    assert any("resets at" in line and "source" in line for line in lines)
    rows = [" ".join(line.replace("│", " ").split()) for line in lines if "prov/" in line]
    assert rows == [
        "prov/a 10800s 15:00 provider text usage limit",
        "prov/b 259200s 2026-12-02 12:00 rate-limit header weekly limit",
        "prov/a 10800s 15:00 provider text usage limit",
    ]


# ---------------------------------------------------------------------- the detail a reset time carries


def test_each_source_s_reset_time_says_where_it_came_from() -> None:
    """The detail shown with a reset time, per source, and the cap's note."""
    c = core(max_cooldown=HOUR)
    assert c.reset_time(with_headers({}, "Rate limit exceeded"), NOW, NOW + 5) == ResetTime(
        NOW + 5, ResetSource.OPENCODE_RETRY, "retry status next")
    assert c.reset_time(with_headers({}, "Rate limit exceeded"), NOW) == ResetTime(
        NOW + 60, ResetSource.CONFIGURED, "cooldown_seconds 60")
    assert c.reset_time(with_headers({"retry-after": "120"}), NOW) == ResetTime(
        NOW + 120, ResetSource.RETRY_AFTER_HEADER, "retry-after")
    assert c.reset_time(with_headers({"x-ratelimit-reset": "300"}), NOW) == ResetTime(
        NOW + 300, ResetSource.RATE_LIMIT_HEADER, "x-ratelimit-reset: 300")
    assert c.reset_time(with_headers({}, "Rate limit exceeded"), NOW, NOW + 2 * HOUR) == ResetTime(
        NOW + HOUR, ResetSource.OPENCODE_RETRY, "retry status next (capped at 3600s)")


def test_a_reset_time_right_at_the_cap_is_not_capped() -> None:
    assert core(max_cooldown=HOUR).reset_time("Rate limit exceeded", NOW, NOW + HOUR) == ResetTime(
        NOW + HOUR, ResetSource.OPENCODE_RETRY, "retry status next")


def test_a_rate_limit_header_s_detail_is_cut_at_80_characters() -> None:
    name = "x-ratelimit-reset-" + "t" * 70
    reset = reset_from_headers(with_headers({"x-ratelimit-remaining-tokens": "0", name: "300"}), NOW)
    assert reset is not None and reset.detail == f"{name}: 300"[:80] and len(reset.detail) == 80


def test_a_retry_after_a_year_ahead_is_still_a_reset_time_and_beyond_it_is_not() -> None:
    year = reset_from_headers(with_headers({"retry-after": str(MAX_AHEAD_S)}), NOW)
    assert year is not None and year.at == NOW + MAX_AHEAD_S and year.source is ResetSource.RETRY_AFTER_HEADER
    later = reset_from_headers(with_headers({"retry-after": str(MAX_AHEAD_S + 1)}), NOW)
    assert later is None or later.source is not ResetSource.RETRY_AFTER_HEADER


def test_the_provider_s_response_body_is_read_for_the_reset_time() -> None:
    """An APIError whose message says nothing of the reset, but whose response body does."""
    error = {"name": "APIError", "data": {"message": "Rate limited", "statusCode": 429,
                                          "responseBody": '{"error": "quota exceeded, try again in 20 minutes"}'}}
    assert core().reset_time(error, NOW) == ResetTime(NOW + 1200, ResetSource.PROVIDER_TEXT, "try again in 20 minutes")


def test_opencode_s_retry_next_inside_its_own_backoff_band_is_no_reset_time() -> None:
    """Attempt 1 waits 2 s: a ``next`` from 1.6 s to 3.1 s ahead (both ends in) is opencode's own
    backoff, which says nothing of the provider; just outside the band it is the provider's time."""
    assert provider_retry_at(1600, 1, 0.0) is None and provider_retry_at(3100, 1, 0.0) is None
    assert provider_retry_at(1599, 1, 0.0) == 1.599 and provider_retry_at(3101, 1, 0.0) == 3.101
