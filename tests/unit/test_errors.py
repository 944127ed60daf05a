"""Error classification (spec §4): reading, typing, deciding, Retry-After and retry text."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from baton.fallback import errors
from baton.fallback.errors import (
    DEFAULT_RETRY_ON_ERRORS,
    ErrorInfo,
    ErrorType,
    classify_error,
    error_parts_text,
    retry_signal_text,
)
from baton.fallback.reset_times import retry_after_ms

NOW_MS = 1_700_000_000_000


def api_error(message: str, status: object = None, **data: object) -> dict[str, object]:
    """An opencode ``APIError`` payload as ``session.error`` carries it."""
    payload: dict[str, object] = {"message": message, **data}
    if status is not None:
        payload["statusCode"] = status
    return {"name": "APIError", "data": payload}


# --- constants and types ----------------------------------------------------------------------


def test_default_retry_on_errors() -> None:
    """The shared default list is exactly 429, 500, 502, 503, 504 (as a tuple)."""
    assert DEFAULT_RETRY_ON_ERRORS == (429, 500, 502, 503, 504)
    assert isinstance(DEFAULT_RETRY_ON_ERRORS, tuple)


def test_error_type_values() -> None:
    """ErrorType's values are the snake_case names of §4.2."""
    assert [t.value for t in ErrorType] == [
        "abort",
        "context_overflow",
        "missing_api_key",
        "model_not_found",
        "invalid_api_key",
    ]
    assert str(ErrorType.ABORT) == "abort"


def test_error_info_is_frozen() -> None:
    """ErrorInfo cannot be mutated after classification."""
    info = classify_error("boom")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.retryable = True  # type: ignore[misc]


# --- §4.1 message -----------------------------------------------------------------------------


def test_none_error() -> None:
    """A missing error has an empty message, no code, no name, no type and is not retryable."""
    expected = ErrorInfo(message="", status_code=None, name="", type=None, retryable=False)
    assert classify_error(None) == expected


def test_string_error_is_its_own_message() -> None:
    """A string error is its own (lower-cased) message and is classified from it."""
    info = classify_error("Rate Limit Exceeded")
    assert info.message == "rate limit exceeded"
    assert info.name == ""
    assert info.retryable


def test_empty_string_error() -> None:
    """An empty string error is not retryable."""
    assert not classify_error("").retryable


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"data": {"message": "A"}, "error": {"message": "B"}, "message": "C"}, "a"),
        ({"data": {"message": ""}, "error": {"message": "B"}, "message": "C"}, "b"),
        ({"error": {"message": 7}, "message": "C", "data": {"error": {"message": "D"}}}, "c"),
        ({"data": {"error": {"message": "D"}}}, "d"),
        ({"data": "not an object", "message": "E"}, "e"),
    ],
)
def test_message_lookup_order(error: Mapping[str, object], expected: str) -> None:
    """Message = first non-empty string of data.message, error.message, message, data.error.message."""
    assert classify_error(error).message == expected


def test_message_falls_back_to_json_text() -> None:
    """An object without a message string is read as its compact JSON text, lower-cased."""
    info = classify_error({"Code": "Overloaded", "n": 1})
    assert info.message == '{"code":"overloaded","n":1}'
    assert info.retryable


def test_message_json_fallback_survives_odd_values() -> None:
    """Values JSON cannot encode do not crash the JSON fallback."""
    info = classify_error({"when": datetime(2024, 1, 1, tzinfo=UTC), "ids": {1, 2}})
    assert info.message.startswith('{"when":"2024-01-01')
    assert not info.retryable


def test_json_fallback_keeps_non_ascii_and_reads_any_mapping() -> None:
    """The JSON text is JavaScript's (non-ASCII kept), and a mapping that is not a dict is an object too."""
    from types import MappingProxyType

    info = classify_error({"detail": MappingProxyType({"grund": "Überlastet"})})
    assert info.message == '{"detail":{"grund":"überlastet"}}'
    assert classify_error(MappingProxyType({"message": "Rate limit reached"})).message == "rate limit reached"


def test_a_non_object_error_is_its_json_text() -> None:
    """A list (neither string, object nor exception) is read as its JSON text."""
    info = classify_error(["Rate limit reached"])
    assert info.message == '["rate limit reached"]' and info.retryable


def test_message_of_circular_object() -> None:
    """A self-referencing object falls back to its str() instead of raising."""
    error: dict[str, object] = {}
    error["self"] = error
    assert classify_error(error).message == "{'self': {...}}"


def test_exception_error_uses_its_text() -> None:
    """A Python exception contributes its own message (decision: str(exc))."""
    info = classify_error(RuntimeError("Service Unavailable"))
    assert info.message == "service unavailable"
    assert info.retryable


# --- §4.1 status code -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"statusCode": 429}, 429),
        ({"statusCode": "503"}, 503),
        ({"status": 502, "message": "bad gateway"}, 502),
        ({"statusCode": 400, "status": 429}, 400),
        ({"data": {"statusCode": 500}}, 500),
        ({"error": {"statusCode": 504}, "message": "upstream timed out"}, 504),
        ({"cause": {"statusCode": "429"}, "message": "slow down"}, 429),
        ({"status": "error", "error": {"statusCode": 429}}, 429),
        ({"status": "error", "cause": {"statusCode": 429}}, 429),
        ({"status": "error", "data": {"statusCode": 429}}, 429),
        ({"statusCode": None, "status": "x", "data": {"statusCode": "?"}, "cause": {"statusCode": 503},
          "message": "no"}, 503),
        ({"statusCode": True, "data": {"statusCode": 401}}, 401),
        ({"statusCode": "42 9", "data": {"statusCode": 418}}, 418),
        ({"statusCode": 429.0, "data": {"statusCode": 418}}, 418),
    ],
)
def test_status_code_first_numeric_field(error: Mapping[str, object], expected: int) -> None:
    """The status is the first int or digit string among statusCode, status, data/error/cause.statusCode.

    Each error has a message of its own where the code is read from a field: without one the
    message is the object's JSON text, in which the code of a retryable status would be found too.
    """
    assert classify_error(error).status_code == expected


@pytest.mark.parametrize(
    "error",
    [
        {"status": "error", "error": {"statusCode": 429}},
        {"status": "error", "cause": {"statusCode": 429}},
        {"status": "error", "data": {"statusCode": 429, "message": "upstream said no"}},
    ],
)
def test_nested_429_behind_non_numeric_status_is_retryable(error: Mapping[str, object]) -> None:
    """A non-numeric ``status: "error"`` does not hide a nested 429: the error is retryable."""
    info = classify_error(error)
    assert info.status_code == 429
    assert info.retryable


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("upstream returned 502 bad gateway", 502),
        ("http error (429)", 429),
        ("status 503: down", 503),
        ("code=504", 504),
        ("error 4290 occurred", None),
        ("id 1429 seen", None),
        ("returned 418", None),
        ("first 500 then 429", 500),
    ],
)
def test_status_code_from_message_whole_word(message: str, expected: int | None) -> None:
    """Without a numeric field, a configured code found as a whole word in the message is the status."""
    assert classify_error({"message": message}).status_code == expected


def test_status_field_wins_over_code_in_message() -> None:
    """A numeric field is used even when the message names another code."""
    info = classify_error(api_error("Bad request (see code 429)", 400))
    assert info.status_code == 400
    assert not info.retryable


def test_bare_code_in_text_still_counts_with_other_status() -> None:
    """A 400 whose text has a bare 429 between spaces is retryable through the message class."""
    info = classify_error(api_error("upstream 429 too eager", 400))
    assert info.status_code == 400
    assert info.retryable


def test_code_in_message_uses_configured_list() -> None:
    """The message search only knows the configured codes."""
    info = classify_error({"message": "got 418 from upstream"}, retry_on_errors=[418])
    assert info.status_code == 418
    assert info.retryable


def test_empty_retry_on_errors_matches_no_code() -> None:
    """An empty retry_on_errors finds no code in the message and makes no status retryable."""
    info = classify_error({"message": "upstream returned 502 bad gateway"}, retry_on_errors=())
    assert info.status_code is None
    assert not info.retryable
    assert not classify_error(api_error("Bad Gateway", 502), retry_on_errors=[]).retryable


def test_empty_retry_on_errors_keeps_message_classes() -> None:
    """An empty retry_on_errors still lets a retryable message class through."""
    assert classify_error(api_error("Too Many Requests", 429), retry_on_errors=()).retryable


def test_code_pattern_is_cached_per_tuple() -> None:
    """The whole-word code regex is built once per retry_on_errors tuple; lists reuse it."""
    pattern = errors._code_pattern((429, 503))
    assert errors._code_pattern((429, 503)) is pattern
    assert errors._code_pattern(()) is None
    classify_error({"message": "x 503 y"}, retry_on_errors=[429, 503])
    assert errors._code_pattern((429, 503)) is pattern


# --- §4.1 name --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"name": "APIError", "error": {"name": "B"}}, "APIError"),
        ({"name": "", "error": {"name": "TypeError"}}, "TypeError"),
        ({"data": {"error": {"name": "AbortError"}}}, "AbortError"),
        ({"name": 3, "data": {"message": "x"}}, ""),
    ],
)
def test_name_lookup_order(error: Mapping[str, object], expected: str) -> None:
    """The name is the first non-empty string of name, error.name, data.error.name, kept as spelled."""
    assert classify_error(error).name == expected


# --- §4.2 types -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"name": "MessageAbortedError", "data": {"message": "The operation was aborted."}}, ErrorType.ABORT),
        ({"name": "AbortError", "message": "aborted"}, ErrorType.ABORT),
        ({"error": {"name": "AbortError"}}, ErrorType.ABORT),
        ({"name": "ContextOverflowError", "data": {"message": "too big"}}, ErrorType.CONTEXT_OVERFLOW),
        (api_error("This model's maximum context length is 128000 tokens", 400), ErrorType.CONTEXT_OVERFLOW),
        (api_error("input exceeds the context window", 400), ErrorType.CONTEXT_OVERFLOW),
        (api_error("prompt is too long: 210000 tokens > 200000 maximum", 400), ErrorType.CONTEXT_OVERFLOW),
        (api_error("Context-Length exceeded"), ErrorType.CONTEXT_OVERFLOW),
        ({"name": "AI_LoadAPIKeyError", "data": {"message": "no key"}}, ErrorType.MISSING_API_KEY),
        (
            {
                "name": "UnknownError",
                "data": {
                    "message": "OpenAI API key is missing. Pass it using the 'apiKey' parameter "
                    "or the OPENAI_API_KEY environment variable."
                },
            },
            ErrorType.MISSING_API_KEY,
        ),
        ({"name": "UnknownError", "data": {"message": "Model not found: fake/x"}}, ErrorType.MODEL_NOT_FOUND),
        ({"name": "ProviderModelNotFoundError", "data": {"message": "x"}}, ErrorType.MODEL_NOT_FOUND),
        ({"name": "ModelNotFoundError", "data": {"message": "x"}}, ErrorType.MODEL_NOT_FOUND),
        (api_error("API key must be a string"), ErrorType.INVALID_API_KEY),
        (api_error("Internal error", 500), None),
    ],
)
def test_error_types(error: Mapping[str, object], expected: ErrorType | None) -> None:
    """Each §4.2 rule yields its type, on lower-cased name and message."""
    assert classify_error(error).type is expected


def test_missing_api_key_needs_environment_variable() -> None:
    """``API key is missing`` without ``environment variable`` is not the missing-key type."""
    info = classify_error({"name": "UnknownError", "data": {"message": "API key is missing"}})
    assert info.type is None
    assert not info.retryable


def test_model_not_found_needs_unknown_error_name() -> None:
    """``Model not found`` under another name is not the model-not-found type (and not retryable)."""
    info = classify_error(api_error("Model not found: fake/x", 404))
    assert info.type is None
    assert not info.retryable


def test_abort_wins_over_context_overflow() -> None:
    """When several types match, the first row of the table wins."""
    info = classify_error({"name": "MessageAbortedError", "data": {"message": "context window exceeded"}})
    assert info.type is ErrorType.ABORT


# --- §4.3 decision ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        "Rate limit exceeded",
        "rate_limit_error",
        "ratelimited",
        "Too Many Requests",
        "too_many_requests",
        "Quota exceeded for metric",
        "quota_exceeded",
        "Your quota will reset after 3h12m",
        "All credentials for model gpt-5-mini are cooling down",
        "model is cooling down",
        "please cool down",
        "provider cooldown active",
        "You have exhausted your capacity on this model",
        "Your usage limit has been reached",
        "Service Unavailable",
        "service_unavailable",
        "The model is temporarily unavailable",
        "Overloaded",
        "Please try again later",
        "try-again",
        "Your credit balance is too low to access the API",
        "Insufficient credits",
        "insufficient_funds",
        "insufficient balance",
        "429",
        "error 529 from upstream",
        "got 503",
    ],
)
def test_retryable_message_classes(message: str) -> None:
    """Every retryable class of §4.3 makes an error without a status code retryable."""
    info = classify_error({"name": "UnknownError", "data": {"message": message}}, retry_on_errors=())
    assert info.retryable, message


@pytest.mark.parametrize("message", ["error (529)", "code 529: overload-ish", "e529", "529x"])
def test_bare_code_class_needs_spaces_or_ends(message: str) -> None:
    """The bare 429/503/529 class does not match ``(529)``, ``529:`` or a code inside a word."""
    assert not classify_error({"message": message}, retry_on_errors=()).retryable


@pytest.mark.parametrize("code", DEFAULT_RETRY_ON_ERRORS)
def test_configured_status_codes_are_retryable(code: int) -> None:
    """A status code in retry_on_errors makes an otherwise plain error retryable."""
    assert classify_error(api_error("Something went wrong", code)).retryable


def test_400_exhausted_capacity_is_retryable() -> None:
    """A 400 whose message says the capacity is exhausted still moves on (rule 4)."""
    assert classify_error(api_error("You have exhausted your capacity on this model.", 400)).retryable


@pytest.mark.parametrize(
    "error",
    [
        api_error("Bad request: invalid tool schema", 400, isRetryable=False),
        api_error("Output blocked by content filter", 400),
        api_error("Unauthorized", 401, isRetryable=True),
        api_error("Forbidden: organization disabled", 403, isRetryable=True),
        api_error("Not Found", 404, isRetryable=True),
        {"name": "ProviderAuthError", "data": {"providerID": "x", "message": "Invalid API key provided"}},
        {"name": "UnknownError", "data": {"message": "something odd happened"}},
        api_error("API key must be a string"),
    ],
)
def test_non_retryable_errors(error: Mapping[str, object]) -> None:
    """Bad request, content filter, auth (even if isRetryable) and unknown errors are left to opencode."""
    assert not classify_error(error).retryable


def test_is_retryable_flag_is_ignored() -> None:
    """``isRetryable: false`` does not stop a 429, and ``true`` does not make a 401 retryable."""
    assert classify_error(api_error("Too many requests", 429, isRetryable=False)).retryable
    assert not classify_error(api_error("Unauthorized", 401, isRetryable=True)).retryable


@pytest.mark.parametrize(
    "error",
    [
        {"name": "MessageAbortedError", "data": {"message": "Aborted after 429 rate limit, try again"}},
        {"name": "AbortError", "statusCode": 503},
    ],
)
def test_abort_is_never_retryable(error: Mapping[str, object]) -> None:
    """An abort is not retryable even with a retryable code or phrase."""
    info = classify_error(error)
    assert info.type is ErrorType.ABORT
    assert not info.retryable


@pytest.mark.parametrize(
    "error",
    [
        api_error("prompt is too long; rate limit 429 applies", 429),
        {"name": "ContextOverflowError", "data": {"message": "Too many requests", "statusCode": 503}},
        "429 maximum context length exceeded, try again",
    ],
)
def test_context_overflow_is_never_retryable(error: object) -> None:
    """A context overflow is not retryable even with 429 in its status or text."""
    info = classify_error(error)
    assert info.type is ErrorType.CONTEXT_OVERFLOW
    assert not info.retryable


@pytest.mark.parametrize(
    "error",
    [
        {"name": "UnknownError", "data": {"message": "Model not found: fake/x"}},
        {"name": "ProviderModelNotFoundError", "data": {"providerID": "fake", "modelID": "x"}},
        {"name": "LoadAPIKeyError", "data": {"message": "key?"}, "statusCode": 401},
    ],
)
def test_missing_key_and_unknown_model_are_retryable(error: Mapping[str, object]) -> None:
    """Missing API keys and unknown models move on regardless of status code."""
    assert classify_error(error).retryable


def test_invalid_api_key_is_a_label_only() -> None:
    """The invalid-API-key type does not decide: a retryable status still counts."""
    info = classify_error(api_error("API key must be a string", 503))
    assert info.type is ErrorType.INVALID_API_KEY
    assert info.retryable


def test_realistic_rate_limit_error() -> None:
    """A typical opencode 429 APIError is fully read and retryable."""
    error = api_error(
        "Rate limit reached for requests", 429, isRetryable=True, responseHeaders={"retry-after": "5"}
    )
    assert classify_error(error) == ErrorInfo(
        message="rate limit reached for requests",
        status_code=429,
        name="APIError",
        type=None,
        retryable=True,
    )


# --- Retry-After ------------------------------------------------------------------------------


def with_headers(headers: object) -> dict[str, object]:
    """An APIError whose data carries ``headers`` as responseHeaders."""
    return api_error("Too many requests", 429, responseHeaders=headers)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "5"}, NOW_MS + 5_000),
        ({"Retry-After": " 12 "}, NOW_MS + 12_000),
        ({"retry-after": "1.5"}, NOW_MS + 1_500),
        ({"retry-after": "0.0001"}, NOW_MS + 1),
        ({"retry-after": "0"}, NOW_MS),
        ({"retry-after": 7}, NOW_MS + 7_000),
        ({"retry-after": 2.25}, NOW_MS + 2_250),
        ({"retry-after": 0}, NOW_MS),
        ({"retry-after": 0.0}, NOW_MS),
        ({"retry-after": -3}, None),
        ({"retry-after": -0.5}, None),
        ({"retry-after": float("inf")}, None),
        ({"retry-after-ms": "1500"}, NOW_MS + 1_500),
        ({"RETRY-AFTER-MS": "250.4"}, NOW_MS + 251),
        ({"retry-after": "30", "retry-after-ms": "1234"}, NOW_MS + 1_234),
        ({"retry-after-ms": "soon", "retry-after": "3"}, NOW_MS + 3_000),
        ({"retry-after": "-5"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "1e3"}, None),
        ({"retry-after": float("nan")}, None),
        ({"retry-after": True}, None),
        ({"retry-after": ""}, None),
        ({"retry-after": "tomorrow"}, None),
        ({"content-type": "application/json"}, None),
        ({}, None),
        ("retry-after: 5", None),
    ],
)
def test_retry_after_values(headers: object, expected: int | None) -> None:
    """retry-after-ms (ms) wins over retry-after (s); names are case-insensitive; bad values are absent."""
    assert retry_after_ms(with_headers(headers), NOW_MS) == expected


def test_retry_after_http_date() -> None:
    """An HTTP-date Retry-After is returned as its own epoch-ms time."""
    when = datetime(2030, 5, 17, 8, 30, 0, tzinfo=UTC)
    headers = {"Retry-After": format_datetime(when, usegmt=True)}
    assert retry_after_ms(with_headers(headers), NOW_MS) == int(when.timestamp()) * 1000


def test_retry_after_http_date_minus_zero_zone() -> None:
    """An HTTP date with the ``-0000`` zone is read as UTC."""
    headers = {"retry-after": "Fri, 17 May 2030 08:30:00 -0000"}
    expected = int(datetime(2030, 5, 17, 8, 30, tzinfo=UTC).timestamp()) * 1000
    assert retry_after_ms(with_headers(headers), NOW_MS) == expected


def test_retry_after_http_date_does_not_depend_on_the_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A date with an offset is that offset's time, and ``-0000`` is UTC, whatever the machine's zone."""
    import time

    monkeypatch.setenv("TZ", "XST-05:30")
    time.tzset()
    try:
        utc = int(datetime(2030, 5, 17, 8, 30, tzinfo=UTC).timestamp()) * 1000
        assert retry_after_ms(with_headers({"retry-after": "Fri, 17 May 2030 08:30:00 -0000"}), NOW_MS) == utc
        assert retry_after_ms(with_headers({"retry-after": "Fri, 17 May 2030 10:30:00 +0200"}), NOW_MS) == utc
    finally:
        monkeypatch.undo()
        time.tzset()


def test_retry_after_past_date_means_now() -> None:
    """An HTTP date in the past yields ``now_ms`` (decision: retry now, never a past deadline)."""
    headers = {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}
    assert retry_after_ms(with_headers(headers), NOW_MS) == NOW_MS


def test_retry_after_top_level_headers() -> None:
    """Headers at the top level of the error are accepted too."""
    error = {"name": "APIError", "responseHeaders": {"retry-after": "2"}, "data": {"message": "x"}}
    assert retry_after_ms(error, NOW_MS) == NOW_MS + 2_000


def test_retry_after_prefers_data_headers() -> None:
    """``data.responseHeaders`` is read before the top-level headers."""
    error = {"responseHeaders": {"retry-after": "2"}, "data": {"responseHeaders": {"retry-after": "9"}}}
    assert retry_after_ms(error, NOW_MS) == NOW_MS + 9_000


def test_retry_after_falls_back_to_top_level_when_data_has_none() -> None:
    """Data headers without a retry time do not hide a top-level one."""
    error = {"responseHeaders": {"retry-after": "2"}, "data": {"responseHeaders": {"x-request-id": "abc"}}}
    assert retry_after_ms(error, NOW_MS) == NOW_MS + 2_000


@pytest.mark.parametrize("error", [None, "rate limited", 429, {"data": {"message": "x"}}, {"data": "x"}])
def test_retry_after_absent(error: object) -> None:
    """Errors without response headers give no provider retry time."""
    assert retry_after_ms(error, NOW_MS) is None


# --- §4.4 retry text and error parts ----------------------------------------------------------


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        (
            {"role": "assistant", "status": "Too many requests, retrying in 5s"},
            "Too many requests, retrying in 5s",
        ),
        ({"message": "Quota  exceeded. Retrying in 1m"}, "Quota  exceeded. Retrying in 1m"),
        ({"details": "Usage limit hit - retrying in 30s"}, "Usage limit hit - retrying in 30s"),
        ({"summary": "Limit reached; retrying   in 10s"}, "Limit reached; retrying   in 10s"),
        ({"status": "rate limit", "details": "Retrying in 3s"}, "rate limit\nRetrying in 3s"),
        (
            {"message": "All credentials for model x are cooling down [retrying in 4m 2s attempt #2]"},
            "All credentials for model x are cooling down [retrying in 4m 2s attempt #2]",
        ),
        ({"message": "Model overloaded, retrying in 2s"}, "Model overloaded, retrying in 2s"),
        ({"message": "upstream 503 retrying in 2s"}, "upstream 503 retrying in 2s"),
        ({"message": "Too many requests"}, None),
        ({"message": "retrying in 5s"}, None),
        ({"message": "Bad gateway 502, retrying in 5s"}, None),
        ({"status": {"type": "retry"}, "summary": True, "message": None}, None),
        ({}, None),
    ],
)
def test_retry_signal_text(info: Mapping[str, object], expected: str | None) -> None:
    """A signal needs ``retrying in`` plus a retryable phrase in status/summary/message/details."""
    assert retry_signal_text(info) == expected


def test_retry_signal_ignores_other_fields() -> None:
    """Fields other than status, summary, message and details (such as part text) are not read."""
    info = {"text": "rate limit, retrying in 5s", "parts": [{"type": "text", "text": "retrying in 5s"}]}
    assert retry_signal_text(info) is None


def test_retry_signal_text_classifies_as_retryable() -> None:
    """A signal made of a §4.3 class is retryable when classified as a message."""
    text = retry_signal_text({"status": "Service unavailable. Retrying in 8s"})
    assert text is not None
    assert classify_error({"message": text}).retryable


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ([{"type": "error", "text": "Rate limited"}], "Rate limited"),
        (
            [{"type": "text", "text": "hi"}, {"type": "error", "text": "a"}, {"type": "error", "text": "b"}],
            "a\nb",
        ),
        ([{"type": "error"}], ""),
        ([{"type": "error", "text": 3}, {"type": "error", "text": "b"}], "b"),
        ([{"type": "text", "text": "rate limit"}], None),
        (["error", None, 3], None),
        ([], None),
        (None, None),
    ],
)
def test_error_parts_text(parts: list[object] | None, expected: str | None) -> None:
    """Texts of ``error`` parts are joined by newlines; no error part gives None, a textless one ``""``."""
    assert error_parts_text(parts) == expected
