"""Parsing real opencode 1.18.33 event streams (recorded in tests/data/events) into core events."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from baton.events import AssistantMessage, PartDelta, SessionError, SessionStatus, StatusType, UserMessage
from baton.opencode.events import message_events, parse_event, parse_status

DATA = Path(__file__).resolve().parent.parent / "data" / "events"
RECORDINGS = sorted(DATA.glob("*.jsonl"))


def load(name: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines()]


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.stem)
def test_every_recorded_payload_parses_without_error(path: Path) -> None:
    """Each recorded frame yields an event or None, never an exception."""
    for payload in load(path.name):
        parse_event(payload)


def test_recordings_are_present() -> None:
    """The recorded streams the parser and benchmarks rely on are in the repo."""
    assert {p.stem for p in RECORDINGS} >= {"answer", "cooldown_retry", "long_answer", "bad_request_capacity"}


def test_cooldown_recording_yields_retry_statuses_with_attempts() -> None:
    """opencode's retry countdown arrives as retry statuses carrying attempt, message and next."""
    statuses = [e for e in map(parse_event, load("cooldown_retry.jsonl"))
                if isinstance(e, SessionStatus) and e.type is StatusType.RETRY]
    assert [s.attempt for s in statuses][:2] == [1, 2]
    assert all("cooling down" in s.message.lower() and s.next_ms for s in statuses)


def test_models_are_normalised_on_user_and_assistant_messages() -> None:
    """User and assistant messages both carry the model as provider/model."""
    events = [e for e in map(parse_event, load("answer.jsonl")) if isinstance(e, UserMessage | AssistantMessage)]
    assert {e.model for e in events} == {"fake/primary"}


def test_long_answer_is_mostly_deltas() -> None:
    """A streamed answer is one delta per provider chunk: the hot path of the engine."""
    kinds = Counter(type(e).__name__ for e in map(parse_event, load("long_answer.jsonl")) if e is not None)
    assert kinds[PartDelta.__name__] >= 300


def test_bad_request_surfaces_as_session_error_with_status() -> None:
    """A 400 the provider gave arrives as session.error with its status code in data."""
    (error, *_) = [e for e in map(parse_event, load("bad_request_capacity.jsonl")) if isinstance(e, SessionError)]
    assert isinstance(error.error, dict) and error.error["data"]["statusCode"] == 400


def test_unknown_status_is_not_working() -> None:
    """A status opencode may add later is treated as idle, never as busy."""
    assert parse_status("ses_1", {"type": "compacting"}).type is StatusType.IDLE


def test_fetched_messages_replay_parts_and_outputs() -> None:
    """A resync replays a fetched assistant message with its parts, so answers are seen after a restart."""
    rows = [
        {"info": {"id": "msg_1", "sessionID": "ses_1", "role": "user", "agent": "build",
                  "model": {"providerID": "p", "modelID": "m"}},
         "parts": [{"id": "prt_1", "sessionID": "ses_1", "messageID": "msg_1", "type": "text", "text": "hi"}]},
        {"info": {"id": "msg_2", "sessionID": "ses_1", "role": "assistant", "parentID": "msg_1",
                  "providerID": "p", "modelID": "m", "time": {"created": 1, "completed": 2}},
         "parts": [{"id": "prt_2", "sessionID": "ses_1", "messageID": "msg_2", "type": "text", "text": "yo"}]},
    ]
    events = message_events(rows)
    user, assistant, part = events
    assert isinstance(user, UserMessage) and user.parts is not None and user.parts[0]["text"] == "hi"
    assert isinstance(assistant, AssistantMessage) and assistant.has_output and assistant.completed
    assert part.message_id == "msg_2"  # type: ignore[union-attr]


@pytest.mark.parametrize("payload", [None, 3, "x", {"type": "message.part.delta"}, {"type": "session.status",
                                                                                   "properties": {}}])
def test_malformed_payloads_are_ignored(payload: object) -> None:
    """Garbage on the stream yields None instead of crashing the engine."""
    assert parse_event(payload) is None


def test_a_user_message_s_variant_is_read_from_its_model() -> None:
    """opencode's UserMessage schema (GET /doc) puts the variant a prompt chose in ``model.variant``."""
    info = {"id": "msg_1", "sessionID": "ses_1", "role": "user", "agent": "build", "time": {"created": 1},
            "model": {"providerID": "anthropic", "modelID": "claude-sonnet-4-5", "variant": "high"}}
    event = parse_event({"type": "message.updated", "properties": {"sessionID": "ses_1", "info": info}})
    assert event == UserMessage("ses_1", "msg_1", "anthropic/claude-sonnet-4-5", "build", variant="high")
    del info["model"]["variant"]  # type: ignore[attr-defined]
    plain = parse_event({"type": "message.updated", "properties": {"sessionID": "ses_1", "info": info}})
    assert isinstance(plain, UserMessage) and plain.variant is None
