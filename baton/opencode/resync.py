"""Reading opencode's stored sessions back: the resync after a (re)connect, and the message rows
the executors look into.

The event stream has no replay: what happened while baton was detached is only in
``GET /session/status`` and the sessions' messages. :func:`resync` replays, for every session
baton tracks or that is busy now, its latest turn and its status as typed events. Decisions are
keyed, so replays decide nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from baton.events import Event, UserMessage
from baton.opencode.client import OpencodeClient, OpencodeHTTPError, resend_parts
from baton.opencode.events import message_events, parse_status
from baton.opencode.stream import Feed

__all__ = ["RESYNC_MESSAGE_LIMIT", "has_message", "latest_turn", "newest_time", "resend_message", "resync"]

RESYNC_MESSAGE_LIMIT = 30


async def resync(client: OpencodeClient, tracked: Iterable[str], directory_of: Callable[[str], str | None],
                 feed: Feed) -> None:
    """Feed the latest turn and the live status of each session in ``tracked`` or busy now.

    ``directory_of`` names the directory a session's messages are asked in (None: opencode's own).
    A session opencode no longer has (404) is skipped; any other failure raises ``OpencodeError``.
    """
    statuses = await client.session_status()
    for sid in sorted(set(tracked) | set(statuses)):
        try:
            rows = await client.messages(sid, directory_of(sid), limit=RESYNC_MESSAGE_LIMIT)
        except OpencodeHTTPError as exc:
            if exc.status == 404:
                continue
            raise
        for event in latest_turn(message_events(rows)):
            feed.feed(event)
        feed.feed(parse_status(sid, statuses.get(sid)))


def latest_turn(events: list[Event]) -> list[Event]:
    """The newest user message and what followed it; older turns are history, not news."""
    last_user = max((i for i, e in enumerate(events) if isinstance(e, UserMessage)), default=None)
    return events if last_user is None else events[last_user:]


def resend_message(rows: Iterable[Any], message_id: str | None) -> tuple[str | None, list[dict[str, Any]]]:
    """The user message to re-send from fetched rows (``message_id``, else the newest user message):
    its id and its parts in input form; no parts when there is no such message."""
    raw: tuple[dict[str, Any], ...] = ()
    for row in reversed(list(rows)):
        info = row.get("info") if isinstance(row, dict) else None
        if not isinstance(info, dict) or info.get("role") != "user":
            continue
        if message_id is None or info.get("id") == message_id:
            message_id = info.get("id")
            raw = tuple(p for p in row.get("parts") or () if isinstance(p, dict))
            break
    return message_id, resend_parts(raw)


def has_message(rows: Iterable[Any], message_id: str) -> bool:
    """Whether fetched rows hold the message ``message_id``."""
    return any(isinstance(r, dict) and r.get("info", {}).get("id") == message_id for r in rows)


def newest_time(row: Any) -> float:
    """Newest creation/completion/part time of a fetched message, in epoch seconds (0 when none)."""
    if not isinstance(row, dict):
        return 0.0
    holders: list[Mapping[str, Any]] = [row.get("info") or {},
                                        *(p for p in row.get("parts") or () if isinstance(p, dict))]
    stamps = [float(v) for h in holders for v in (h.get("time") or {}).values() if isinstance(v, int | float)]
    return max(stamps, default=0.0) / 1000.0
