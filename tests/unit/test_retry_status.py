"""Retry-status helpers (spec §5): attempt, model in text, normalised class, dedupe keys."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from baton.fallback.errors import classify_error
from baton.fallback.retry_status import (
    dedupe_key,
    model_in_text,
    normalized_class,
    retry_attempt,
    retry_key,
)

COOLING = "All credentials for model gpt-5-mini are cooling down [retrying in {wait} attempt #{n}]"
NAN = float("nan")


def retry_status(message: object, attempt: object = None, **extra: object) -> dict[str, object]:
    """A ``session.status`` retry payload; ``attempt=None`` leaves the field out."""
    status: dict[str, object] = {"type": "retry", "message": message, "next": 1_700_000_004_000, **extra}
    if attempt is not None:
        status["attempt"] = attempt
    return status


# --- the worked-example table of §5 ---------------------------------------------------------------

WORKED_EXAMPLES: list[tuple[object, str, str, str | None, str]] = [
    # (status.attempt, message, attempt, model from text, class)
    (2, COOLING.format(wait="4m 2s", n=2), "2", "gpt-5-mini", "cooldown"),
    (2, COOLING.format(wait="4m 1s", n=2), "2", "gpt-5-mini", "cooldown"),
    (3, COOLING.format(wait="4m 2s", n=3), "3", "gpt-5-mini", "cooldown"),
    (None, "Rate limit hit, slow down [retrying in 12s attempt #4]", "4", None, "rate-limit"),
    (NAN, "Upstream provider overloaded", "?", None, "service-unavailable"),
    (1, "Model Acme/Large-2 is temporarily unavailable", "1", "acme/large-2", "service-unavailable"),
    (1, "Too many requests: quota exceeded", "1", None, "too-many-requests"),
    (1, "Your quota will reset after 2h", "1", None, "quota"),
    (1, "rate_limit_error", "1", None, "rate_limit_error"),
    (1, "Gateway said 502 [retrying in 5s attempt #1]", "1", None, "gateway said 502"),
    (1, "Gateway said 502 [retrying in 4s attempt #1]", "1", None, "gateway said 502"),
    (1, "[retrying in 9s attempt #1]", "1", None, "retry"),
    (
        1,
        'unknown provider for model big-thinking"}}',
        "1",
        None,
        'unknown provider for model big-thinking"}}',
    ),
]


@pytest.mark.parametrize(("attempt", "message", "want_attempt", "want_model", "want_class"), WORKED_EXAMPLES)
def test_worked_examples(
    attempt: object, message: str, want_attempt: str, want_model: str | None, want_class: str
) -> None:
    """Each row of the §5 table yields its attempt, model-in-text and class."""
    status = retry_status(message, attempt)
    assert retry_attempt(status) == want_attempt
    assert model_in_text(message) == want_model
    assert normalized_class(message) == want_class


@pytest.mark.parametrize(("attempt", "message", "want_attempt", "want_model", "want_class"), WORKED_EXAMPLES)
def test_worked_examples_keys(
    attempt: object, message: str, want_attempt: str, want_model: str | None, want_class: str
) -> None:
    """Untracked, the key uses the model in the text (or unknown-model); tracked, the failing model wins."""
    status = retry_status(message, attempt)
    untracked = f"{want_attempt}:{want_model or 'unknown-model'}:{want_class}"
    assert retry_key(status, None) == untracked
    assert retry_key(status, "acme/tracked") == f"{want_attempt}:acme/tracked:{want_class}"


def test_cooldown_countdown_tick_gives_same_key() -> None:
    """Rows 1-2: a new countdown of the same attempt is the same key (ignored); row 3's attempt is new."""
    first = retry_key(retry_status(COOLING.format(wait="4m 2s", n=2), 2), None)
    tick = retry_key(retry_status(COOLING.format(wait="4m 1s", n=2), 2), None)
    third = retry_key(retry_status(COOLING.format(wait="4m 2s", n=3), 3), None)
    assert first == tick == "2:gpt-5-mini:cooldown"
    assert third == "3:gpt-5-mini:cooldown"


def test_gateway_countdowns_give_same_key() -> None:
    """The two Gateway 502 rows differ only in countdown and share one key."""
    a = retry_key(retry_status("Gateway said 502 [retrying in 5s attempt #1]", 1), "p/m")
    b = retry_key(retry_status("Gateway said 502 [retrying in 4s attempt #1]", 1), "p/m")
    assert a == b == "1:p/m:gateway said 502"


@pytest.mark.parametrize(
    ("message", "retryable"),
    [
        (COOLING.format(wait="4m 2s", n=2), True),
        ("Rate limit hit, slow down [retrying in 12s attempt #4]", True),
        ("Upstream provider overloaded", True),
        ("Model Acme/Large-2 is temporarily unavailable", True),
        ("Too many requests: quota exceeded", True),
        ("Your quota will reset after 2h", True),
        ("rate_limit_error", True),
        ("Gateway said 502 [retrying in 5s attempt #1]", True),
        ("[retrying in 9s attempt #1]", False),
        ('unknown provider for model big-thinking"}}', False),
    ],
)
def test_worked_examples_retryability(message: str, retryable: bool) -> None:
    """The table's notes hold: §4.3 on ``{message}`` says which rows are retried at all."""
    assert classify_error({"message": message}).retryable is retryable


# --- rule 1: attempt ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"attempt": 3, "message": "attempt #9"}, "3"),
        ({"attempt": 0}, "0"),
        ({"attempt": 2.0}, "2"),
        ({"attempt": 2.5}, "2.5"),
        ({"attempt": NAN, "message": "x [retrying in 1s attempt #6]"}, "6"),
        ({"attempt": float("inf"), "message": "Attempt # 7"}, "7"),
        ({"attempt": True, "message": "ATTEMPT#8"}, "8"),
        ({"attempt": "5", "message": "no number here"}, "?"),
        ({"message": "attempt #007"}, "7"),
        ({"message": "attempt #0"}, "0"),
        ({"message": "attempt 4"}, "?"),
        ({"message": None}, "?"),
        ({}, "?"),
    ],
)
def test_retry_attempt(status: Mapping[str, object], expected: str) -> None:
    """A finite numeric attempt wins, else ``attempt #N`` in the message, else ``?``."""
    assert retry_attempt(status) == expected


# --- rule 2: model in text ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("All credentials for model gpt-5-mini are cooling down", "gpt-5-mini"),
        ("Model Acme/Large-2 is temporarily unavailable", "acme/large-2"),
        ("MODEL openai/GPT-4.1-mini   IS overloaded", "openai/gpt-4.1-mini"),
        ("the model x is", "x"),
        ("model gpt-5 isn't available", None),
        ("model gpt-5 island", None),
        ('unknown provider for model big-thinking"}}', None),
        ("model  is busy", None),
        ("no model here", None),
        ("", None),
    ],
)
def test_model_in_text(message: str, expected: str | None) -> None:
    """``model <token> is/are`` yields the lower-cased token; anything else yields None."""
    assert model_in_text(message) == expected


# --- rule 3: normalised class ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("", "retry"),
        ("   ", "retry"),
        ("[ Retrying in 3s ] [RETRYING IN 2s attempt #2]", "retry"),
        ("All credentials for model x are busy", "cooldown"),
        ("cool down please", "cooldown"),
        ("Model is COOLING   DOWN", "cooldown"),
        ("cooldown active; rate limit too", "cooldown"),
        ("You have exhausted your capacity", "cooldown"),
        ("Too many requests; rate limit", "too-many-requests"),
        ("Quota will reset after 5m", "quota"),
        ("quotaexceeded", "quota"),
        ("quota exceeded", "quota"),
        ("Your usage limit has been reached", "usage-limit"),
        ("Daily limit reached", "usage-limit"),
        ("Rate limit", "rate-limit"),
        ("Rate\tlimit", "rate-limit"),
        ("Rate-limit exceeded", "rate-limit exceeded"),
        ("Service_Unavailable", "service-unavailable"),
        ("temporarily unavailable", "service-unavailable"),
        ("Overloaded", "service-unavailable"),
        ("  Weird   Upstream\nFailure  ", "weird upstream failure"),
        ("Boom [retrying in 5s", "boom [retrying in 5s"),
        ("Boom [note] [retrying in 5s attempt #1] tail", "boom [note] tail"),
    ],
)
def test_normalized_class(message: str, expected: str) -> None:
    """Countdown segments go, whitespace collapses, then the first class in table order (or the text)."""
    assert normalized_class(message) == expected


# --- rule 4: keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "model", "cls", "expected"),
    [
        ("2", "gpt-5-mini", "cooldown", "2:gpt-5-mini:cooldown"),
        ("?", "p/m", "retry", "?:p/m:retry"),
        ("1", None, "quota", "1:unknown-model:quota"),
        ("1", "", "quota", "1:unknown-model:quota"),
    ],
)
def test_dedupe_key(attempt: str, model: str | None, cls: str, expected: str) -> None:
    """The key is ``attempt:model:class``, with ``unknown-model`` when no model is known."""
    assert dedupe_key(attempt, model, cls) == expected


def test_retry_key_model_precedence() -> None:
    """Failing model, then model in text, then the current model, then ``unknown-model``."""
    named = retry_status("Model a/b is overloaded", 1)
    anonymous = retry_status("Overloaded", 1)
    assert retry_key(named, "p/failing", current_model="p/current") == "1:p/failing:service-unavailable"
    assert retry_key(named, None, current_model="p/current") == "1:a/b:service-unavailable"
    assert retry_key(anonymous, None, current_model="p/current") == "1:p/current:service-unavailable"
    assert retry_key(anonymous, None) == "1:unknown-model:service-unavailable"


def test_retry_key_ignores_next() -> None:
    """Two statuses that differ only in ``next`` share a key."""
    a = retry_key(retry_status("Rate limit", 1, next=1_000), "p/m")
    b = retry_key(retry_status("Rate limit", 1, next=9_999), "p/m")
    assert a == b == "1:p/m:rate-limit"


def test_retry_key_without_message() -> None:
    """A status without a string message keys as class ``retry``."""
    assert retry_key({"type": "retry", "attempt": 2}, "p/m") == "2:p/m:retry"
    assert retry_key(retry_status(None, 2), None) == "2:unknown-model:retry"
