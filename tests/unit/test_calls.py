"""Matching an MCP tool call to the opencode tool part that made it (spec §14.1 rule 2)."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from baton.events import AssistantMessage, PartUpdated, SessionIdle, UserMessage
from baton.runtime import calls
from baton.runtime.calls import CallMatcher, json_equal
from baton.tasks.service import ToolFailure
from baton.testing.clock import FakeClock

pytestmark = pytest.mark.anyio

ARGS: dict[str, Any] = {"description": "read the docs", "prompt": "summarise README", "run_in_background": True}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def part(
    part_id: str = "prt_1",
    *,
    tool: str = "baton_task",
    status: str = "running",
    args: dict[str, Any] | None = None,
    session: str = "ses_parent",
    message: str = "msg_1",
    kind: str = "tool",
) -> PartUpdated:
    body = {
        "id": part_id,
        "sessionID": session,
        "messageID": message,
        "type": kind,
        "callID": f"call_{part_id}",
        "tool": tool,
        "state": {"status": status, "input": ARGS if args is None else args},
    }
    return PartUpdated(session_id=session, message_id=message, part_id=part_id, type=kind, text=None, part=body)


def assistant(message: str = "msg_1", *, agent: str | None = "build",
              model: str | None = "prov/big") -> AssistantMessage:
    return AssistantMessage(session_id="ses_parent", message_id=message, parent_id="msg_0", model=model, agent=agent)


async def test_exactly_one_match_gives_session_message_part_agent_and_model() -> None:
    """One running part with equal input yields its session, message, part, and the message's agent and model."""
    matcher = CallMatcher()
    matcher.observe_message(assistant())
    matcher.observe_part(part(), time.time())
    context = await matcher.match("task", dict(ARGS), wait=0.1)
    assert (context.session_id, context.message_id, context.part_id) == ("ses_parent", "msg_1", "prt_1")
    assert (context.agent, context.model) == ("build", "prov/big")


async def test_unknown_message_leaves_agent_and_model_empty() -> None:
    """Without the assistant message the match still succeeds, with no agent or model."""
    matcher = CallMatcher()
    matcher.observe_part(part(), time.time())
    context = await matcher.match("task", ARGS, wait=0.1)
    assert context.agent is None and context.model is None


async def test_message_update_without_model_keeps_the_earlier_one() -> None:
    """A later message update lacking agent or model does not erase what was known."""
    matcher = CallMatcher()
    matcher.observe_message(assistant())
    matcher.observe_message(assistant(agent=None, model=None))
    matcher.observe_part(part(), time.time())
    context = await matcher.match("task", ARGS, wait=0.1)
    assert (context.agent, context.model) == ("build", "prov/big")


async def test_trailing_event_within_the_wait_is_matched() -> None:
    """A part that arrives after the call, within the wait, is found without polling."""
    matcher = CallMatcher()
    result: list[str] = []

    async def call() -> None:
        result.append((await matcher.match("task", ARGS, wait=2.0)).part_id)

    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await anyio.sleep(0.05)
        matcher.observe_part(part("prt_other", args={"x": 1}), time.time())  # wakes the waiter, no match
        await anyio.sleep(0.05)
        matcher.observe_part(part("prt_late"), time.time())
    assert result == ["prt_late"]
    assert time.monotonic() - started < 1.0


async def test_no_match_fails_after_the_wait() -> None:
    """With no matching part the call fails once the wait has passed, saying the session is unknown."""
    matcher = CallMatcher()
    matcher.observe_part(part(args={**ARGS, "prompt": "something else"}), time.time())
    started = time.monotonic()
    with pytest.raises(ToolFailure, match="Could not tell which session") as caught:
        await matcher.match("task", ARGS, wait=0.1)
    assert 0.09 <= time.monotonic() - started < 1.0
    assert "baton_task" in caught.value.text


async def test_two_identical_running_calls_are_refused() -> None:
    """Two unclaimed parts with the same tool and input: refuse rather than guess."""
    matcher = CallMatcher()
    matcher.observe_part(part("prt_1", session="ses_a"), time.time())
    matcher.observe_part(part("prt_2", session="ses_b"), time.time())
    with pytest.raises(ToolFailure, match="Several identical") as caught:
        await matcher.match("task", ARGS, wait=0.1)
    assert "description" in caught.value.text


async def test_claimed_part_is_not_reused() -> None:
    """A claimed part is not offered again, even when opencode republishes it as running."""
    matcher = CallMatcher()
    matcher.observe_part(part(), time.time())
    await matcher.match("task", ARGS, wait=0.1)
    matcher.observe_part(part(), time.time())  # a metadata update of the same running part
    assert len(matcher) == 0
    with pytest.raises(ToolFailure):
        await matcher.match("task", ARGS, wait=0.05)


async def test_second_identical_call_gets_the_other_part_after_the_first_claimed() -> None:
    """Once the first call has claimed its part, an identical later part is the only candidate."""
    matcher = CallMatcher()
    matcher.observe_part(part("prt_1", session="ses_a"), time.time())
    first = await matcher.match("task", ARGS, wait=0.1)
    matcher.observe_part(part("prt_2", session="ses_b"), time.time())
    second = await matcher.match("task", ARGS, wait=0.1)
    assert (first.session_id, second.session_id) == ("ses_a", "ses_b")


@pytest.mark.parametrize("status", ["completed", "error"])
async def test_ended_parts_are_forgotten(status: str) -> None:
    """A part that completed or errored is dropped and never matched."""
    matcher = CallMatcher()
    matcher.observe_part(part(), time.time())
    matcher.observe_part(part(status=status), time.time())
    assert len(matcher) == 0
    with pytest.raises(ToolFailure):
        await matcher.match("task", ARGS, wait=0.05)


async def test_ending_a_claimed_part_forgets_the_claim() -> None:
    """The claimed-id memory is released when the claimed part ends."""
    matcher = CallMatcher()
    matcher.observe_part(part(), time.time())
    await matcher.match("task", ARGS, wait=0.1)
    matcher.observe_part(part(status="completed"), time.time())
    assert not matcher._claimed


async def test_pending_part_that_gains_its_input_matches() -> None:
    """A pending part with empty input is updated in place when it turns running with the arguments."""
    matcher = CallMatcher()
    matcher.observe_part(part(status="pending", args={}), time.time())
    matcher.observe_part(part(status="running"), time.time())
    assert len(matcher) == 1
    assert (await matcher.match("task", ARGS, wait=0.1)).part_id == "prt_1"


async def test_other_tools_and_part_types_are_ignored() -> None:
    """Only tool parts named baton_<tool> are kept, and the tool name must be the called one."""
    matcher = CallMatcher()
    matcher.observe_part(part("p1", tool="bash"), time.time())
    matcher.observe_part(part("p2", kind="text"), time.time())
    matcher.observe_part(part("p3", tool="baton_call_agent"), time.time())
    assert len(matcher) == 1
    with pytest.raises(ToolFailure):
        await matcher.match("task", ARGS, wait=0.05)
    assert (await matcher.match("call_agent", ARGS, wait=0.05)).part_id == "p3"


async def test_null_argument_equals_a_missing_one() -> None:
    """A null optional argument on either side counts as absent."""
    matcher = CallMatcher()
    matcher.observe_part(part(args={**ARGS, "session_id": None}), time.time())
    assert (await matcher.match("task", {**ARGS, "category": None}, wait=0.1)).part_id == "prt_1"


async def test_stale_parts_are_not_offered() -> None:
    """A part not updated for longer than the age limit is dropped instead of matched."""
    clock = FakeClock(1000.0)
    matcher = CallMatcher(clock=clock, max_age_s=60.0)
    matcher.observe_part(part(), clock.time())
    clock.advance(61.0)
    with pytest.raises(ToolFailure):
        await matcher.match("task", ARGS, wait=0.05)
    assert len(matcher) == 0


async def test_memory_is_bounded() -> None:
    """Unclaimed parts beyond the cap push out the least recently updated ones."""
    matcher = CallMatcher()
    for i in range(calls.MAX_PARTS + 10):
        matcher.observe_part(part(f"prt_{i}", args={"n": i}), time.time())
    assert len(matcher) == calls.MAX_PARTS
    with pytest.raises(ToolFailure):
        await matcher.match("task", {"n": 0}, wait=0.01)
    last = calls.MAX_PARTS + 9
    assert (await matcher.match("task", {"n": last}, wait=0.01)).part_id == f"prt_{last}"


async def test_the_router_s_observe_keeps_baton_tool_parts_and_callers_messages() -> None:
    """``observe`` (what the router calls for every stream event) records tool parts and assistant
    messages and ignores the rest: the match then names the caller's agent and model."""
    matcher = CallMatcher()
    now = time.time()
    for event in (assistant(), part("p2", kind="text"), SessionIdle("ses_parent"), part()):
        matcher.observe(event, now)
    assert len(matcher) == 1
    context = await matcher.match("task", ARGS, wait=0.1)
    assert (context.part_id, context.agent, context.model) == ("prt_1", "build", "prov/big")


def test_json_equality_rules() -> None:
    """JSON equality: bools are not numbers, 1 equals 1.0, nulls count as absent, order of keys is irrelevant."""
    assert json_equal({"a": 1, "b": [1, {"c": None}]}, {"b": [1.0, {}], "a": 1})
    assert not json_equal({"block": True}, {"block": 1})
    assert not json_equal({"a": "1"}, {"a": 1})
    assert not json_equal({"a": [1, 2]}, {"a": [2, 1]})
    assert not json_equal({"a": [1]}, {"a": [1, None]})
    assert not json_equal({"a": {}}, {"a": None})
    assert not json_equal({"a": 1}, {})


async def test_the_call_carries_the_variant_the_caller_s_prompt_chose_for_its_model() -> None:
    """A variant goes with the model it was chosen for (background-tasks §12.4 rule 5): the launch records it."""
    matcher = CallMatcher()
    matcher.observe(UserMessage("ses_parent", "msg_0", "prov/big", "build", variant="high"), time.time())
    matcher.observe_message(assistant())
    matcher.observe_part(part(), time.time())
    assert (await matcher.match("task", ARGS, wait=0.1)).variant == "high"
    matcher.observe_message(assistant("msg_2", model="prov/fallback"))  # the session's fallback moved it
    matcher.observe_part(part("prt_2", message="msg_2"), time.time())
    assert (await matcher.match("task", ARGS, wait=0.1)).variant is None
    matcher.observe(UserMessage("ses_parent", "msg_3", "prov/big", "build"), time.time())  # a prompt without one
    matcher.observe_message(assistant("msg_4"))
    matcher.observe_part(part("prt_4", message="msg_4"), time.time())
    assert (await matcher.match("task", ARGS, wait=0.1)).variant is None
