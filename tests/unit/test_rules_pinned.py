"""Fallback rules that no other unit test pinned: each test here fails when its rule is broken.

Every test drives the pure policy through ``handle(event, now)`` (via :mod:`policy_sim`) and
asserts only on the actions it returns, so the tests survive the policy's internals moving.
Each was checked by breaking its rule in the code, seeing the test fail, and restoring the code.
Spec references (§n) are to ``docs/behaviour/runtime-fallback.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from policy_sim import (
    COOLDOWN_TEXT,
    T0,
    Sim,
    cancels,
    cooldowns_saved,
    make_config,
    notes,
    resends,
    schedules,
    toasts,
)

from baton.cooldowns import Cooldowns
from baton.events import PartUpdated
from baton.opencode.events import parse_event

S = "ses_1"
CHAIN = {"agents": {"build": {"fallback_models": ["fake/backup", "fake/third"]}}}
RATE_LIMIT = {"name": "APIError", "data": {"message": "Too many requests", "statusCode": 429}}


def sim(tmp_path: Path, extra: dict[str, Any] | None = None, cooldowns: Cooldowns | None = None) -> Sim:
    return Sim(make_config(tmp_path, {**CHAIN, **(extra or {})}), cooldowns)


def switch_accepted(s: Sim) -> str:
    """primary fails with a retry status, the re-send on fake/backup is accepted: the watchdog's key."""
    s.start_turn(S)
    (resend,) = resends(s.retry(S))
    assert resend.model == "fake/backup"
    (watchdog,) = schedules(s.result(S, resend.token))
    return watchdog.key


def test_a_late_error_of_the_model_the_session_left_moves_nothing(tmp_path: Path) -> None:
    """§6.4.7, pitfall 20: after primary → backup, a late primary error in the same turn is stale.

    The error arrives on an assistant message the switch did not replace, in the current turn,
    so only the "model neither current nor pending" guard can tell it is stale. The same error
    from backup, the model in use, is live and moves the chain on.
    """
    s = sim(tmp_path)
    switch_accepted(s)
    late = s.assistant(S, "msg_u1_a2", "msg_u1", "fake/primary", error=RATE_LIMIT)
    assert resends(late) == []
    live = s.assistant(S, "msg_u1_a3", "msg_u1", "fake/backup", error=RATE_LIMIT)
    assert [r.model for r in resends(live)] == ["fake/third"]


def test_a_resend_outcome_after_a_manual_model_change_commits_nothing(tmp_path: Path) -> None:
    """§6.8, NOTES "bugs the property tests found": the user picks a model while the re-send runs.

    The call's acceptance then arrives: it arms no watchdog, shows no toast, and leaves the
    session on the user's model with a fresh chain, so that model's own failure moves to the
    chain's first entry (a committed switch would have made that failure look stale).
    """
    s = sim(tmp_path)
    s.start_turn(S)
    (resend,) = resends(s.retry(S))
    s.user(S, "msg_u2", "fake/other")
    outcome = s.result(S, resend.token)
    assert schedules(outcome) == []
    assert toasts(outcome) == []
    s.busy(S)
    s.assistant(S, "msg_u2_a1", "msg_u2", "fake/other")
    (second,) = resends(s.retry(S, 1, "Rate limit exceeded [retrying in 2s attempt #1]"))
    assert (second.message_id, second.model) == ("msg_u2", "fake/backup")


def test_the_resend_carries_opencode_s_agent_name_not_the_config_key(tmp_path: Path) -> None:
    """§2.5.1, §7 step 4, pitfall 16: the chain comes from the key, the re-send names the raw agent."""
    s = Sim(make_config(tmp_path, {"agents": {"sisyphus": {"fallback_models": ["fake/backup"]}}}))
    s.start_turn(S, agent="Sisyphus - ultraworker")
    (resend,) = resends(s.retry(S))
    assert resend.model == "fake/backup"  # the raw name mapped to the key's chain
    assert resend.agent == "Sisyphus - ultraworker"


def test_auto_retry_text_on_an_assistant_message_switches(tmp_path: Path) -> None:
    """§4.4: retry text in an assistant's ``info`` (as opencode streams it) is a retryable signal.

    "Usage limit hit" is a reference phrase but no §4.3 class: it counts only because a
    retry signal is retryable by definition (§4.4 rule 3).
    """
    s = sim(tmp_path)
    s.start_turn(S)
    event = parse_event({"type": "message.updated", "properties": {"info": {
        "id": "msg_u1_a1", "sessionID": S, "role": "assistant", "parentID": "msg_u1",
        "providerID": "fake", "modelID": "primary", "agent": "build", "time": {"created": 1},
        "status": "Usage limit hit - retrying in 30s",
    }}})
    assert event is not None
    actions = s.feed(event)  # type: ignore[arg-type]
    (resend,) = resends(actions)
    assert (resend.message_id, resend.model) == ("msg_u1", "fake/backup")
    assert [c.model for c in cooldowns_saved(actions)] == ["fake/primary"]


@pytest.mark.parametrize(("kind", "text"), [("tool", None), ("reasoning", "")])
def test_a_tool_or_reasoning_part_is_an_answer_for_the_watchdog(tmp_path: Path, kind: str, text: str | None) -> None:
    """§6.6 "what counts as an answer": a model that opens with a tool call or reasoning is at work.

    The part confirms the switch and disarms the watchdog; the timer firing later moves nothing.
    """
    s = sim(tmp_path)
    watchdog = switch_accepted(s)
    s.assistant(S, "msg_u1_b1", "msg_u1", "fake/backup")
    part: dict[str, Any] = {"id": "prt_b1", "sessionID": S, "messageID": "msg_u1_b1", "type": kind}
    if kind == "tool":
        part |= {"tool": "read", "state": {"status": "running", "input": {"path": "x"}}}
    else:
        part |= {"text": ""}
    actions = s.feed(PartUpdated(S, "msg_u1_b1", "prt_b1", kind, text, part))
    assert notes(actions, "answered")
    assert [c.key for c in cancels(actions)] == [watchdog]
    s.advance(31)
    assert resends(s.fire(watchdog)) == []


def test_cooldown_seconds_zero_records_no_cooldown_and_skips_no_cooling_model(tmp_path: Path) -> None:
    """§6.1.4: with ``cooldown_seconds: 0`` nothing enters the table, a cooling entry is not
    skipped, and a prompt on a cooling model is not rerouted."""
    cooldowns = Cooldowns([("fake/backup", T0 + 600)])  # e.g. learned before the config changed
    s = sim(tmp_path, {"runtime_fallback": {"cooldown_seconds": 0}}, cooldowns)
    s.start_turn(S)
    actions = s.retry(S, 1, COOLDOWN_TEXT, next_ms=int((s.now + 600) * 1000))  # a provider time, even
    assert cooldowns_saved(actions) == []
    assert not cooldowns.is_cooling("fake/primary", s.now)
    (resend,) = resends(actions)
    assert resend.model == "fake/backup"
    other = "ses_2"
    s.user(other, "msg_v1", "fake/backup")
    assert resends(s.busy(other)) == []
    assert resends(s.assistant(other, "msg_v1_a1", "msg_v1", "fake/backup")) == []


def test_the_same_retry_signal_in_a_new_turn_is_evaluated_again(tmp_path: Path) -> None:
    """§8.2, pitfall 2: a new turn drops the old turn's dedupe key.

    The session has no chain, so every evaluated signal says so (a note) and a repeat says
    nothing. The new turn's identical signal (same attempt, model and class) is evaluated again
    even with no idle in between (a prompt queued while opencode was retrying).
    """
    s = sim(tmp_path, {"agents": {"build": {"fallback_models": []}}})
    s.start_turn(S, "msg_u1")
    assert notes(s.retry(S, 1), "no_chain")
    assert s.retry(S, 1) == []
    s.start_turn(S, "msg_u2")
    assert notes(s.retry(S, 1), "no_chain")


def test_an_idle_drops_the_dedupe_key(tmp_path: Path) -> None:
    """§6.7.3: an idle (not awaiting a switch) drops the key, so the same turn run again by another
    client (same message id, same model) has its identical signal evaluated again."""
    s = sim(tmp_path, {"agents": {"build": {"fallback_models": []}}})
    s.start_turn(S, "msg_u1")
    assert notes(s.retry(S, 1), "no_chain")
    s.idle(S)
    s.user(S, "msg_u1", "fake/primary")
    s.busy(S)
    s.assistant(S, "msg_u1_a2", "msg_u1", "fake/primary")
    assert notes(s.retry(S, 1), "no_chain")
