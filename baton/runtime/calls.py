"""Which opencode tool call an MCP call belongs to (spec §14.1 rule 2).

An MCP ``tools/call`` from opencode carries no session id. The only link back to the calling
session is the ``message.part.updated`` tool part opencode publishes for the same call: tool
name ``baton_<tool>``, state pending or running, and the arguments the model wrote as its
``state.input``. :class:`CallMatcher` keeps those parts (and the agent and model of each
assistant message) in memory and pairs an MCP call with exactly one of them, or refuses: a
wrong guess would attach a task to someone else's session.

**Argument comparison.** The call's arguments, as the MCP server received them, are compared
with the part's ``state.input`` as JSON values: the same keys, strings equal, numbers equal
by value (``1 == 1.0``, as JSON has one number type), booleans only equal to booleans (Python's
``True == 1`` is not JSON equality), arrays element by element. One leniency: a key whose value
is ``null`` counts as absent, because clients differ in whether they drop nulls before
sending. Nothing else is normalised, and no defaults are filled in; the tool schemas carry no
``default`` keywords, so no layer between the model and baton adds values to either side.

**Limits of matching.** Two identical calls in flight at once cannot be told apart; when both
parts are visible the call is refused ("several identical calls"). If the second part has not
yet arrived when the first MCP call is matched, the first call takes the only part it sees;
with identical arguments that pairing can be crossed. Asking the model for a distinguishing
description is the remedy the refusal text gives.

No I/O here: the router feeds events in (:meth:`CallMatcher.observe`); :meth:`CallMatcher.match` only waits on an
:class:`anyio.Event` that every new relevant part sets.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from baton.clock import Clock, SystemClock
from baton.events import AssistantMessage, Event, PartUpdated, UserMessage
from baton.tasks.service import CallContext, ToolFailure

__all__ = [
    "MATCH_WAIT_S",
    "TOOL_PREFIX",
    "CallMatcher",
    "json_equal",
]

MATCH_WAIT_S = 2.0
"""How long a call waits for its tool part to show up on the event stream (spec §3 fixed values)."""

TOOL_PREFIX = "baton_"
"""opencode names an MCP tool ``<server>_<tool>``; baton registers itself as ``baton``."""

MAX_PARTS = 512
"""Unclaimed pending/running parts kept; beyond that the least recently updated go first."""

MAX_CLAIMED = 2048
"""Claimed part ids remembered (so a later ``running`` update does not offer them again)."""

MAX_MESSAGES = 2048
"""Assistant messages whose agent and model are remembered."""

MAX_AGE_S = 3600.0
"""A part not updated for this long is no longer offered: opencode may have died mid-call. Generous,
because a permission prompt can hold a tool part in ``running`` for minutes before the MCP call."""

_LIVE = frozenset({"pending", "running"})
_ENDED = frozenset({"completed", "error"})


@dataclass(slots=True)
class _Part:
    """A baton tool part not yet claimed."""

    tool: str
    session_id: str
    message_id: str
    part_id: str
    input: Mapping[str, Any]
    seen_at: float


class CallMatcher:
    """Pairs MCP tool calls with the opencode tool parts that made them.

    ``observe_part`` and ``observe_message`` are on the event hot path and do O(1) work;
    ``match`` scans the few baton parts in flight. ``clock`` must be the clock whose readings the
    router passes as ``now`` to ``observe`` (the system clock by default).
    """

    def __init__(self, *, clock: Clock | None = None, max_age_s: float = MAX_AGE_S) -> None:
        self._clock: Clock = clock or SystemClock()
        self._max_age_s = max_age_s
        self._parts: OrderedDict[str, _Part] = OrderedDict()
        self._claimed: OrderedDict[str, None] = OrderedDict()
        self._messages: OrderedDict[str, tuple[str | None, str | None]] = OrderedDict()
        # Per session, the model and variant its newest prompt chose (a variant goes with its model).
        self._prompts: OrderedDict[str, tuple[str | None, str]] = OrderedDict()
        # Set (and dropped) when a baton part arrives; created only while some call waits.
        self._arrived: anyio.Event | None = None

    def __len__(self) -> int:
        """Unclaimed parts held; for tests and ``/status``."""
        return len(self._parts)

    # ------------------------------------------------------------------ feeding

    def observe(self, event: Event, now: float) -> None:
        """Keep baton's tool parts, who wrote each assistant message and the variant of each session's newest
        prompt; other events are ignored."""
        if isinstance(event, PartUpdated):
            if event.type == "tool":
                self.observe_part(event, now)
        elif isinstance(event, AssistantMessage):
            self.observe_message(event)
        elif isinstance(event, UserMessage):
            self.observe_prompt(event)

    def observe_part(self, event: PartUpdated, now: float) -> None:
        """Record, update or forget a tool part; wakes waiting calls when a baton part changes."""
        part = event.part
        tool = part.get("tool")
        if event.type != "tool" or not isinstance(tool, str) or not tool.startswith(TOOL_PREFIX):
            return
        state = part.get("state")
        if not isinstance(state, Mapping):
            return
        status = state.get("status")
        part_id = event.part_id
        if status in _ENDED:
            self._parts.pop(part_id, None)
            self._claimed.pop(part_id, None)
            return
        if status not in _LIVE or part_id in self._claimed:
            return
        raw_input = state.get("input")
        entry = _Part(
            tool=tool,
            session_id=event.session_id,
            message_id=event.message_id,
            part_id=part_id,
            input=raw_input if isinstance(raw_input, Mapping) else {},
            seen_at=now,
        )
        self._parts[part_id] = entry
        self._parts.move_to_end(part_id)
        while len(self._parts) > MAX_PARTS:
            self._parts.popitem(last=False)
        if self._arrived is not None:
            self._arrived.set()
            self._arrived = None

    def observe_message(self, event: AssistantMessage) -> None:
        """Remember which agent and model wrote an assistant message (the caller's, for a match)."""
        known = self._messages.get(event.message_id)
        agent = event.agent if event.agent is not None else (known[0] if known else None)
        model = event.model if event.model is not None else (known[1] if known else None)
        self._messages[event.message_id] = (agent, model)
        self._messages.move_to_end(event.message_id)
        while len(self._messages) > MAX_MESSAGES:
            self._messages.popitem(last=False)

    def observe_prompt(self, event: UserMessage) -> None:
        """Remember the variant a session's newest prompt chose, with the model it chose it for."""
        if event.variant is None:
            self._prompts.pop(event.session_id, None)
            return
        self._prompts[event.session_id] = (event.model, event.variant)
        self._prompts.move_to_end(event.session_id)
        while len(self._prompts) > MAX_MESSAGES:
            self._prompts.popitem(last=False)

    # ------------------------------------------------------------------ matching

    async def match(self, tool: str, arguments: Mapping[str, Any], *, wait: float = MATCH_WAIT_S) -> CallContext:
        """Claim the one tool part that made this call, waiting up to ``wait`` seconds for it.

        Raises :class:`ToolFailure` when no part matches within the wait, or when several do.
        """
        name = TOOL_PREFIX + tool
        with anyio.move_on_after(wait):
            while True:
                found = self._candidates(name, arguments)
                if len(found) == 1:
                    return self._claim(found[0])
                if len(found) > 1:
                    raise ToolFailure(
                        f"[baton] Several identical {name} calls are running at the same time, so baton could "
                        "not tell which session made this one. Nothing was done. Retry with arguments (for "
                        "example the description) that differ from your other calls."
                    )
                if self._arrived is None:
                    self._arrived = anyio.Event()
                await self._arrived.wait()
        raise ToolFailure(
            f"[baton] Could not tell which session made this {name} call: opencode did not report a "
            f"matching running tool call within {_seconds(wait)}. Nothing was done. Retry the call once; if "
            "it fails again, do the work without this tool."
        )

    def _candidates(self, name: str, arguments: Mapping[str, Any]) -> list[_Part]:
        oldest = self._clock.time() - self._max_age_s
        found: list[_Part] = []
        stale: list[str] = []
        for entry in self._parts.values():
            if entry.seen_at < oldest:
                stale.append(entry.part_id)
            elif entry.tool == name and json_equal(entry.input, arguments):
                found.append(entry)
        for part_id in stale:
            del self._parts[part_id]
        return found

    def _claim(self, entry: _Part) -> CallContext:
        del self._parts[entry.part_id]
        self._claimed[entry.part_id] = None
        while len(self._claimed) > MAX_CLAIMED:
            self._claimed.popitem(last=False)
        agent, model = self._messages.get(entry.message_id, (None, None))
        prompt_model, variant = self._prompts.get(entry.session_id, (None, None))
        return CallContext(
            session_id=entry.session_id,
            message_id=entry.message_id,
            part_id=entry.part_id,
            agent=agent,
            model=model,
            variant=variant if model is not None and prompt_model == model else None,
        )


def json_equal(a: object, b: object) -> bool:
    """Equality of two JSON values (see the module docstring): null keys count as absent, bools are not numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        keys = {k for k, v in a.items() if v is not None} | {k for k, v in b.items() if v is not None}
        return all(json_equal(a.get(k), b.get(k)) for k in keys)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return False


def _seconds(value: float) -> str:
    return f"{value:g} s" if math.isfinite(value) else "the wait"
