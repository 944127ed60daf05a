"""What baton has seen of one child session since its anchor (spec §7, §8).

A :class:`ChildWatch` lives in memory next to a live task that has a session. It answers
three questions cheaply, event by event, so an idle needs no fetch:

* *idle* — was an idle (event, status or absence from a successful poll) seen since the
  latest prompt? A busy/retry status clears it.
* *visible answer* — is the newest assistant message after the anchor finished (completed,
  ``finish`` not ``tool-calls``), free of errors, and holding a non-empty non-synthetic
  ``text`` part? Reasoning, tool parts and aborted messages never count.
* *progress* — tool calls (each part id once), the last tool, and the run of identical calls.

Message ids sort by time (:mod:`baton.tasks.ids`), so "after the anchor" and "newest" are
string comparisons. Only the newest message's text is kept, capped at :data:`RESULT_CAP`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from baton.events import AssistantMessage, PartDelta, PartUpdated, StatusType

__all__ = ["RESULT_CAP", "ChildWatch", "call_signature"]

RESULT_CAP = 256 * 1024
"""Captured answer limit in characters (spec §3 fixed values: 256 KiB)."""
_CUT_NOTE = "\n\n[baton: the answer was cut at 256 KiB]"
_COUNTED_STATES = frozenset({"running", "completed", "error"})


def call_signature(part: dict[str, Any]) -> str | None:
    """Tool name + canonical JSON input, once the input is known; None while still pending."""
    state = part.get("state")
    if not isinstance(state, dict) or state.get("status") not in _COUNTED_STATES:
        return None
    try:
        text = json.dumps(state.get("input"), sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, ValueError, RecursionError):
        text = repr(state.get("input"))
    return f"{part.get('tool')}\x00{text}"


@dataclass(slots=True)
class ChildWatch:
    """Per-task observations of its child; rebuilt from the stream (and resync) after a restart."""

    status: StatusType | None = None
    idle_seen: bool = False
    absent: bool = False
    msg_id: str | None = None
    msg_done: bool = False
    msg_error: bool = False
    msg_finish: str | None = None
    text_msg: str | None = None
    text_parts: dict[str, list[str]] = field(default_factory=dict)
    text_len: int = 0
    text_cut: bool = False
    tool_parts: set[str] = field(default_factory=set)
    signed_parts: set[str] = field(default_factory=set)
    last_sig: str | None = None
    same_calls: int = 0
    gone_since: float | None = None
    lookup_in_flight: bool = False
    refreshing: bool = False
    permission: bool = False
    own_abort_until: float = 0.0
    host_restart: bool = False
    early_error: object = None
    """A failure seen before the prompt was confirmed accepted; decided at acceptance."""

    # ------------------------------------------------------------------ status

    @property
    def working(self) -> bool:
        """Only ``busy`` and ``retry`` protect a task (§7.3)."""
        return self.status is StatusType.BUSY or self.status is StatusType.RETRY

    def set_status(self, status: StatusType) -> bool:
        """Record a status; True when it changed to busy/retry (activity, §7.2)."""
        changed = status is not self.status
        self.status = status
        if status is StatusType.IDLE:
            self.idle_seen = True
            return False
        self.idle_seen = False
        self.absent = False
        return changed

    def new_turn(self) -> None:
        """A prompt went out (or a waking message): earlier idles and answers no longer count."""
        self.idle_seen = False
        self.status = None  # unknown until opencode says (the next poll at the latest)
        self.msg_id = None
        self.msg_done = self.msg_error = False
        self.msg_finish = None

    # ------------------------------------------------------------------ messages and parts

    @staticmethod
    def after(message_id: str, parent_id: str | None, anchor: str | None) -> bool:
        return anchor is None or parent_id == anchor or message_id > anchor

    def on_assistant(self, event: AssistantMessage, anchor: str | None) -> bool:
        """Track the newest assistant message after the anchor; True if this one is it."""
        if not self.after(event.message_id, event.parent_id, anchor):
            return False
        if self.msg_id is not None and event.message_id < self.msg_id:
            return False
        if event.message_id != self.msg_id:
            self.msg_id = event.message_id
        self.msg_done = event.completed
        self.msg_error = event.error is not None
        self.msg_finish = event.finish
        return True

    def _newer_message(self, message_id: str) -> None:
        if self.msg_id is None or message_id > self.msg_id:
            self.msg_id = message_id
            self.msg_done = self.msg_error = False
            self.msg_finish = None

    def on_text(self, event: PartUpdated, anchor: str | None) -> None:
        if event.part.get("synthetic"):
            return
        if event.message_id != self.msg_id and anchor is not None and event.message_id <= anchor:
            return  # before the anchor, unless its message is known to answer it (parent = anchor)
        if self.text_msg is None or event.message_id > self.text_msg:
            self.text_msg = event.message_id
            self.text_parts = {}
            self.text_len = 0
            self.text_cut = False
        elif event.message_id < self.text_msg:
            return
        self._newer_message(event.message_id)
        text = event.text or ""
        old = self.text_parts.get(event.part_id)
        self.text_len -= sum(map(len, old)) if old else 0
        room = max(0, RESULT_CAP - self.text_len)
        if len(text) > room:
            text, self.text_cut = text[:room], True
        self.text_parts[event.part_id] = [text]
        self.text_len += len(text)

    def on_delta(self, event: PartDelta) -> None:
        if event.message_id != self.text_msg or event.field != "text" or not event.delta:
            return
        chunks = self.text_parts.get(event.part_id)
        if chunks is None:
            return
        room = RESULT_CAP - self.text_len
        delta = event.delta
        if len(delta) > room:
            delta, self.text_cut = delta[: max(0, room)], True
        if delta:
            chunks.append(delta)
            self.text_len += len(delta)

    def on_tool(self, event: PartUpdated) -> tuple[bool, bool]:
        """(new call, repeats the previous call) for a tool part; each part id counts once."""
        new = event.part_id not in self.tool_parts
        if new:
            self.tool_parts.add(event.part_id)
        repeat = False
        if event.part_id not in self.signed_parts:
            sig = call_signature(event.part)
            if sig is not None:
                self.signed_parts.add(event.part_id)
                if sig == self.last_sig:
                    self.same_calls += 1
                else:
                    self.last_sig, self.same_calls = sig, 1
                repeat = True
        return new, repeat

    # ------------------------------------------------------------------ verdicts

    def has_text(self) -> bool:
        return self.text_msg is not None and any(c for chunks in self.text_parts.values() for c in chunks)

    @property
    def answered(self) -> bool:
        """A visible answer after the anchor (§8.2)."""
        return (
            self.msg_id is not None
            and self.msg_done
            and not self.msg_error
            and self.msg_finish != "tool-calls"
            and self.text_msg == self.msg_id
            and self.has_text()
        )

    def result_text(self) -> str | None:
        """The newest message's visible text (the answer when answered), or None."""
        if not self.has_text():
            return None
        text = "".join(chunk for chunks in self.text_parts.values() for chunk in chunks)
        return text + _CUT_NOTE if self.text_cut else text
