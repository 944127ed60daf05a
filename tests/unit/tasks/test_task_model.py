"""The task record, its transition table, and the id scheme."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from baton.tasks.ids import IdSource
from baton.tasks.model import (
    LIVE,
    TERMINAL,
    TRANSITIONS,
    Attempt,
    EndReason,
    IllegalTransition,
    Mode,
    NotifyState,
    OutboxRow,
    RowKind,
    RowState,
    Task,
    TaskEvent,
    TaskStatus,
    transition,
)

S = TaskStatus
E = TaskEvent

LEGAL = [
    (S.QUEUED, E.GRANT, S.STARTING),
    (S.STARTING, E.STARTED, S.RUNNING),
    (S.STARTING, E.CREATE_FAILED, S.FAILED),
    (S.STARTING, E.PROMPT_REJECTED, S.INTERRUPTED),
    (S.RUNNING, E.COMPLETE, S.COMPLETED),
    (S.RUNNING, E.RETRY, S.RETRYING),
    (S.RUNNING, E.FAIL, S.FAILED),
    (S.RUNNING, E.TIMEOUT, S.CANCELLED),
    (S.RETRYING, E.GRANT, S.STARTING),
    (S.QUEUED, E.QUEUE_TIMEOUT, S.CANCELLED),
    (S.RETRYING, E.QUEUE_TIMEOUT, S.CANCELLED),
    (S.QUEUED, E.CANCEL, S.CANCELLED),
    (S.STARTING, E.CANCEL, S.CANCELLED),
    (S.RUNNING, E.CANCEL, S.CANCELLED),
    (S.RETRYING, E.CANCEL, S.CANCELLED),
]


def make_task(status: TaskStatus = TaskStatus.QUEUED) -> Task:
    return Task(id="bg_00000001", parent_session_id="ses_p", description="d", prompt="p", agent="explore",
                model="prov/m", key="prov/m", queue_seq=1, queued_at=1.0, status=status)


def test_table_is_exactly_the_spec_rows() -> None:
    """The transition table holds the spec's §4.3 rows and nothing else."""
    assert {(f, e): t for f, e, t in LEGAL} == TRANSITIONS


@pytest.mark.parametrize(("start", "event", "end"), LEGAL)
def test_legal_transitions_move_the_task(start: TaskStatus, event: TaskEvent, end: TaskStatus) -> None:
    """Each legal (status, event) moves the task to the table's target and reports the old status."""
    task = make_task(start)
    assert transition(task, event) is start
    assert task.status is end


@pytest.mark.parametrize("start", list(TaskStatus))
@pytest.mark.parametrize("event", list(TaskEvent))
def test_illegal_transitions_raise_and_change_nothing(start: TaskStatus, event: TaskEvent) -> None:
    """A pair outside the table raises IllegalTransition, which names the task, its status and the
    event (the bug report the log shows), and leaves the status as it was."""
    if (start, event) in TRANSITIONS:
        return
    task = make_task(start)
    with pytest.raises(IllegalTransition) as raised:
        transition(task, event)
    assert str(raised.value) == f"task bg_00000001: no transition from {start.value} on {event.value}"
    assert (raised.value.task_id, raised.value.status, raised.value.event) == ("bg_00000001", start, event)
    assert task.status is start


def test_terminal_states_have_no_way_out_and_live_states_can_always_be_cancelled() -> None:
    """Terminal statuses accept no event at all; every live status accepts a cancel."""
    assert all(f not in TERMINAL for f, _ in TRANSITIONS)
    assert all((status, E.CANCEL) in TRANSITIONS for status in LIVE)
    assert set(TaskStatus) == LIVE | TERMINAL and not LIVE & TERMINAL


_text = st.text(max_size=20)
_opt = st.none() | _text


@given(
    status=st.sampled_from(TaskStatus), mode=st.sampled_from(Mode), notify=st.sampled_from(NotifyState),
    reason=st.none() | st.sampled_from(EndReason), tools=st.dictionaries(_text, st.booleans(), max_size=3),
    chain=st.lists(_text, max_size=3), session=_opt, result=_opt, calls=st.integers(0, 10_000),
    started=st.none() | st.floats(0, 2e9), attempts=st.lists(st.builds(Attempt, _text, st.none(), st.none(), _opt),
                                                            max_size=3),
)
def test_task_rows_round_trip_through_json(
    status: TaskStatus, mode: Mode, notify: NotifyState, reason: EndReason | None, tools: dict[str, bool],
    chain: list[str], session: str | None, result: str | None, calls: int, started: float | None,
    attempts: list[Attempt],
) -> None:
    """``to_row`` gives plain JSON values and ``from_row`` rebuilds an equal task from them."""
    task = make_task(status)
    task.mode, task.notify, task.end_reason, task.stop_reason = mode, notify, reason, reason
    task.tools, task.chain, task.session_id, task.result = tools, chain, session, result
    task.tool_calls, task.started_at, task.attempts = calls, started, attempts
    row = json.loads(json.dumps(task.to_row()))
    assert Task.from_row(row) == task


def test_rows_tolerate_unknown_and_missing_keys() -> None:
    """A row from a newer or older baton loads: unknown keys are ignored, missing ones default."""
    row = make_task().to_row()
    row["from_the_future"] = 1
    del row["cascaded"]
    loaded = Task.from_row(row)
    assert loaded.cascaded == 0 and loaded.id == "bg_00000001"


def test_outbox_rows_round_trip() -> None:
    """Outbox rows survive a JSON round trip, envelope included."""
    row = OutboxRow("nt_bg_1", "ses_p", RowKind.END, 3, 5.0, task_id="bg_1", waking=True, state=RowState.PENDING,
                    message_id="msg_1", envelope={"text": "hi", "no_reply": False, "tools": None})
    assert OutboxRow.from_row(json.loads(json.dumps(row.to_row()))) == row


def test_ids_have_the_documented_shapes_and_are_reproducible() -> None:
    """Task ids are bg_ + 8 hex; a seeded source repeats its ids; message ids use opencode's layout."""
    a, b = IdSource(5), IdSource(5)
    tid = a.task_id()
    assert tid == b.task_id() and tid.startswith("bg_") and len(tid) == 11
    int(tid[3:], 16)
    mid = a.message_id(1_700_000_000.0)
    assert mid.startswith("msg_") and len(mid) == 4 + 26
    int(mid[4:16], 16)


def test_message_ids_ascend_even_within_one_millisecond_and_if_the_clock_goes_back() -> None:
    """Ids from one source always sort after the previous one, like opencode's ascending ids."""
    ids = IdSource(1)
    seen = [ids.message_id(t) for t in (100.0, 100.0, 100.0005, 99.0, 101.0)]
    assert seen == sorted(seen) and len(set(seen)) == len(seen)


def test_every_task_id_is_bg_and_eight_hex_characters() -> None:
    """§4.1: ``bg_`` followed by 8 random hex characters, whatever the draw."""
    ids = IdSource(7)
    drawn = [ids.task_id() for _ in range(200)]
    assert all(len(t) == 11 and t.startswith("bg_") and int(t[3:], 16) >= 0 for t in drawn)


def test_a_message_id_carries_its_millisecond_like_opencode_s() -> None:
    """Message ids sort with opencode's by time: the 12 hex characters are the low 48 bits of
    ``ms * 0x1000 + counter`` (the counter counts from 1 within a millisecond), so an id baton makes
    at a millisecond sorts after opencode's of the millisecond before and before the next one's."""
    ms = 1_800_000_000_123
    ids = IdSource(3)
    first, second = ids.message_id(ms / 1000), ids.message_id(ms / 1000)
    low48 = (1 << 48) - 1
    assert [int(m[4:16], 16) for m in (first, second)] == [(ms * 0x1000 + 1) & low48, (ms * 0x1000 + 2) & low48]
    opencode_before = f"msg_{((ms - 1) * 0x1000 + 0xFFF) & low48:012x}zzzzzzzzzzzzzz"
    opencode_after = f"msg_{((ms + 1) * 0x1000 + 1) & low48:012x}00000000000000"
    assert opencode_before < first < second < opencode_after


def test_a_row_keeps_every_field_of_the_record() -> None:
    """§4.1, §15.2: the store row is the whole record; a task rebuilt from it after a restart equals
    the task that was saved, every field set to something other than its default."""
    task = Task(
        id="bg_0000abcd", parent_session_id="ses_p", description="d", prompt="p", agent="explore",
        model="prov/b", key="prov/b", queue_seq=7, queued_at=1.5, mode=Mode.FOREGROUND,
        parent_message_id="msg_parent", root_session_id="ses_root", depth=2, category="quick", system="Be brief.",
        tools={"task": False}, variant="low", chain=["prov/a", "prov/b"], attempt=1,
        attempts=[Attempt("prov/a", 2.0, 3.0, "rate limit"), Attempt("prov/b", 4.0, None, None)],
        status=TaskStatus.CANCELLED, end_reason=EndReason.STALE, error="no activity", session_id="ses_c",
        anchor_message_id="msg_anchor", continues="bg_00000001", directory="/work/p", parent_agent="build",
        parent_model="prov/parent", created_at=1.25, started_at=2.0, last_activity_at=5.0, ended_at=6.0,
        tool_calls=3, last_tool="grep", result="half", notify=NotifyState.PENDING, stop_reason=EndReason.STALE,
        batch_closed="msg_wake", cascaded=2, prompt_resends=1, anchor_text="wake text", not_before=9.0,
    )
    assert Task.from_row(json.loads(json.dumps(task.to_row()))) == task
