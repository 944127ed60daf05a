"""The plain words baton gives a model about a task's end (background-tasks §12.3), pinned as a
table: each end reason's wording, the limit a timeout names and how to raise it, and the
duration format. Written against the mutants mutation testing left alive in ``texts``
(``scripts/mutation.py``); a deliberate rewording updates this table."""

from __future__ import annotations

import pytest

from baton.tasks import EndReason, Task, TaskStatus
from baton.tasks.texts import duration, outcome, reason

FINAL = ("; raise background_task.{key} to allow more. This end is final: do not re-launch the same work "
         "blindly; continue its session if it made progress")


def ended(why: EndReason | None, error: str | None = None, status: TaskStatus = TaskStatus.CANCELLED) -> Task:
    task = Task(id="bg_0000abcd", parent_session_id="ses_p", description="look around", prompt="p",
                agent="explore", model="prov/m", key="prov/m", queue_seq=1, queued_at=0.0)
    task.status, task.end_reason, task.error = status, why, error
    return task


@pytest.mark.parametrize(
    ("why", "words"),
    [
        (EndReason.CREATE_FAILED, "baton could not create its session"),
        (EndReason.PROMPT_REJECTED, "opencode refused its prompt"),
        (EndReason.AGENT_UNKNOWN, "opencode does not know the agent explore"),
        (EndReason.ERROR, "the model failed with an error a different model would not fix"),
        (EndReason.CHAIN_EXHAUSTED, "the model failed and no fallback model was left to try"),
        (EndReason.SESSION_GONE, "its session no longer exists in opencode"),
        (EndReason.CANCELLED_BY_PARENT, "cancelled by its parent session"),
        (EndReason.CANCELLED_BY_USER, "cancelled by the user"),
        (EndReason.CHILD_DELETED, "its session was deleted in opencode"),
        (EndReason.CHILD_ABORTED, "its session was stopped in opencode, not by baton"),
        (EndReason.PARENT_DELETED, "its parent session was deleted"),
        (EndReason.ANCESTOR_ENDED, "a task above it ended"),
        (EndReason.HOST_RESTARTED, "opencode restarted twice while it ran and its prompt was lost"),
    ],
)
def test_each_end_reason_in_plain_words(why: EndReason, words: str) -> None:
    assert reason(ended(why)) == words
    assert reason(ended(why, "HTTP 500:  upstream\nfailed")) == f"{words} (HTTP 500: upstream failed)"


@pytest.mark.parametrize(
    ("why", "words", "key"),
    [
        (EndReason.STALE, "it showed no activity for too long", "staleTimeoutMs"),
        (EndReason.NO_PROGRESS, "it stayed busy without any progress for too long", "messageStalenessTimeoutMs"),
        (EndReason.QUEUE_STUCK, "its queue made no progress for too long", "taskTtlMs"),
        (EndReason.RUNAWAY, "it made too many tool calls", "maxToolCalls / circuitBreaker"),
    ],
)
def test_a_timeout_names_the_key_that_raises_it_and_says_the_end_is_final(why: EndReason, words: str,
                                                                           key: str) -> None:
    assert reason(ended(why, "no activity for 3m 1s")) == f"{words} (no activity for 3m 1s)" + FINAL.format(key=key)


def test_a_long_error_is_cut_to_240_characters_with_an_ellipsis() -> None:
    assert reason(ended(EndReason.ERROR, "e" * 240)).endswith(f"({'e' * 240})")
    assert reason(ended(EndReason.ERROR, "e" * 241)).endswith(f"({'e' * 239}…)")


def test_completed_and_the_outcome_line() -> None:
    assert reason(ended(EndReason.COMPLETED, status=TaskStatus.COMPLETED)) == "completed"
    assert reason(ended(None)) == "completed"
    assert outcome(ended(EndReason.COMPLETED, status=TaskStatus.COMPLETED)) == "completed"
    assert outcome(ended(EndReason.CHILD_DELETED)) == "cancelled: its session was deleted in opencode"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "unknown"), (-3, "0.0s"), (0.04, "0.0s"), (9.94, "9.9s"), (10, "10s"), (59.9, "59s"), (60, "1m 0s"),
     (61, "1m 1s"), (3599, "59m 59s"), (3600, "1h 0m"), (3661, "1h 1m"), (90061, "25h 1m")],
)
def test_durations_read_like_a_person_would_say_them(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text
