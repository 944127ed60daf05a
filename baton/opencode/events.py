"""opencode SSE payloads → typed core events.

One function per event type, chosen by a dict lookup. Unknown types and malformed payloads
yield None: the stream carries ~90 event types and baton needs a dozen. Shapes follow the
server's ``GET /doc`` (opencode 1.18); ``sessionID`` is read flat or nested alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeGuard

from baton.events import (
    AssistantMessage,
    Event,
    PartDelta,
    PartUpdated,
    SessionCreated,
    SessionDeleted,
    SessionError,
    SessionIdle,
    SessionStatus,
    StatusType,
    UserMessage,
)
from baton.fallback.errors import error_parts_text, retry_signal_text
from baton.models import normalize_model
from baton.tasks.events import ParentCompacted, PermissionPending, SchedulerEvent

__all__ = ["STREAM_EVENTS", "message_events", "parse_event", "parse_status"]

# Events about the stream itself, handled by the engine rather than the core.
STREAM_EVENTS = frozenset({"server.connected", "server.heartbeat"})

_Props = Mapping[str, Any]


def parse_event(payload: object) -> Event | SchedulerEvent | None:
    """Turn one decoded ``data:`` payload into a core event, or None if baton ignores it."""
    if not isinstance(payload, Mapping):
        return None
    parser = _PARSERS.get(payload.get("type"))
    props = payload.get("properties")
    if parser is None or not isinstance(props, Mapping):
        return None
    try:
        return parser(props)
    except (KeyError, TypeError, AttributeError):
        return None


def _delta(props: _Props) -> Event | None:
    delta = props["delta"]
    return PartDelta(props["sessionID"], props["messageID"], props["partID"], props.get("field", ""),
                     delta if isinstance(delta, str) else "")


def _part(props: _Props) -> Event | None:
    part = props["part"]
    text = part.get("text")
    return PartUpdated(
        session_id=part.get("sessionID") or props["sessionID"],
        message_id=part["messageID"],
        part_id=part["id"],
        type=part.get("type", ""),
        text=text if isinstance(text, str) else None,
        part=part,
    )


def _message(props: _Props) -> Event | None:
    return message_from_info(props["info"])


def message_from_info(info: _Props, parts: list[Any] | None = None) -> Event | None:
    """A user or assistant message; ``parts`` is given when the message was fetched, not streamed."""
    session_id = info.get("sessionID")
    message_id = info.get("id")
    if not isinstance(session_id, str) or not isinstance(message_id, str):
        return None
    agent = info.get("agent")
    agent = agent if isinstance(agent, str) and agent else None
    role = info.get("role")
    if role == "user":
        model = info.get("model")
        variant = model.get("variant") if isinstance(model, Mapping) else None
        return UserMessage(
            session_id=session_id,
            message_id=message_id,
            model=normalize_model(model),
            agent=agent,
            parts=tuple(p for p in parts if isinstance(p, dict)) if parts is not None else None,
            variant=variant if isinstance(variant, str) and variant else None,
        )
    if role != "assistant":
        return None
    time = info.get("time")
    completed = isinstance(time, Mapping) and bool(time.get("completed"))
    error = info.get("error")
    if error is None and parts:
        error = error_parts_text(parts)
    parent = info.get("parentID")
    finish = info.get("finish")
    return AssistantMessage(
        session_id=session_id,
        message_id=message_id,
        parent_id=parent if isinstance(parent, str) else None,
        model=normalize_model({"providerID": info.get("providerID"), "modelID": info.get("modelID")}),
        agent=agent,
        error=error,
        completed=completed,
        finish=finish if isinstance(finish, str) else None,
        retry_text=retry_signal_text(info),
        has_output=bool(parts) and any(_is_output(p) for p in parts),  # type: ignore[union-attr]
        tokens=_tokens(info.get("tokens")),
    )


def _tokens(tokens: object) -> int | None:
    """A message's size in tokens: ``total``, else input + output + reasoning + cache; None when 0 or absent."""
    if not isinstance(tokens, Mapping):
        return None
    total = tokens.get("total")
    if _count(total):
        return total
    cache = tokens.get("cache")
    counts = [tokens.get(k) for k in ("input", "output", "reasoning")]
    counts += [cache.get(k) for k in ("read", "write")] if isinstance(cache, Mapping) else []
    size = sum(c for c in counts if _count(c))
    return size or None


def _count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_output(part: object) -> bool:
    if not isinstance(part, Mapping):
        return False
    kind = part.get("type")
    if kind == "text":
        return bool(part.get("text")) and not part.get("synthetic")
    return kind in ("reasoning", "tool")


def parse_status(session_id: str, status: object) -> SessionStatus:
    """A ``SessionStatus`` from a status object (stream or ``GET /session/status``)."""
    if not isinstance(status, Mapping):
        return SessionStatus(session_id, StatusType.IDLE)
    kind = status.get("type")
    if kind == "busy":
        return SessionStatus(session_id, StatusType.BUSY)
    if kind != "retry":
        # Unknown values are not "working" (background-tasks spec §7.3).
        return SessionStatus(session_id, StatusType.IDLE)
    message = status.get("message")
    nxt = status.get("next")
    return SessionStatus(
        session_id,
        StatusType.RETRY,
        attempt=status.get("attempt"),
        message=message if isinstance(message, str) else "",
        next_ms=int(nxt) if isinstance(nxt, int | float) and not isinstance(nxt, bool) else None,
    )


def _status(props: _Props) -> Event | None:
    return parse_status(props["sessionID"], props.get("status"))


def _idle(props: _Props) -> Event | None:
    return SessionIdle(props["sessionID"])


def _error(props: _Props) -> Event | None:
    sid = props.get("sessionID")
    return SessionError(sid if isinstance(sid, str) else None, props.get("error"))


def _created(props: _Props) -> Event | None:
    info = props["info"]
    parent = info.get("parentID")
    directory = info.get("directory")
    return SessionCreated(
        info["id"],
        parent if isinstance(parent, str) else None,
        directory if isinstance(directory, str) else None,
    )


def _deleted(props: _Props) -> Event | None:
    return SessionDeleted(props["info"]["id"])


def message_events(messages: list[Any]) -> list[Event]:
    """Events replaying fetched ``GET /session/{id}/message`` rows (for a resync), oldest first."""
    out: list[Event] = []
    for row in messages:
        if not isinstance(row, Mapping) or not isinstance(row.get("info"), Mapping):
            continue
        parts = row.get("parts")
        event = message_from_info(row["info"], parts if isinstance(parts, list) else [])
        if event is None:
            continue
        out.append(event)
        if isinstance(event, AssistantMessage) and isinstance(parts, list):
            # Answers are recognised from their parts, as on the stream.
            for part in parts:
                replayed = _replayed_part(event.session_id, part)
                if replayed is not None:
                    out.append(replayed)
    return out


def _replayed_part(session_id: str, part: object) -> Event | None:
    if not isinstance(part, Mapping):
        return None
    try:
        return _part({"sessionID": session_id, "part": part})
    except (KeyError, TypeError, AttributeError):
        return None


def _compacted(props: _Props) -> SchedulerEvent | None:
    return ParentCompacted(props["sessionID"])


def _permission(pending: bool) -> Callable[[_Props], SchedulerEvent | None]:
    return lambda props: PermissionPending(props["sessionID"], pending)


_PARSERS: dict[object, Callable[[_Props], Event | SchedulerEvent | None]] = {
    "message.part.delta": _delta,
    "message.part.updated": _part,
    "message.updated": _message,
    "session.status": _status,
    "session.idle": _idle,
    "session.error": _error,
    "session.created": _created,
    "session.updated": _created,
    "session.deleted": _deleted,
    # For the task scheduler only (a compacted parent is reminded of its tasks; a pending
    # permission pauses a child's no-progress timeout).
    "session.compacted": _compacted,
    "permission.asked": _permission(True),
    "permission.replied": _permission(False),
}
