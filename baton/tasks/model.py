"""The task record and its one transition table (spec §4).

A task is one row in the store. :class:`Task` is a plain mutable dataclass whose
:meth:`Task.to_row` gives a dict of JSON-able values (str, int, float, bool, None, lists and
dicts of those) and :meth:`Task.from_row` reads it back, so the engine can keep it as a JSON
blob or as columns. Only the scheduler mutates tasks, and only :func:`transition` changes
``status``: every status change in baton goes through :data:`TRANSITIONS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from baton.errors import BatonError

__all__ = [
    "LIVE",
    "SLOT_HOLDING",
    "TERMINAL",
    "TRANSITIONS",
    "WAITING",
    "Attempt",
    "EndReason",
    "IllegalTransition",
    "Mode",
    "NotifyState",
    "OutboxRow",
    "RowKind",
    "RowState",
    "SILENT_REASONS",
    "TIMEOUT_REASONS",
    "Task",
    "TaskEvent",
    "TaskStatus",
    "transition",
]


class TaskStatus(StrEnum):
    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


LIVE = frozenset({TaskStatus.QUEUED, TaskStatus.STARTING, TaskStatus.RUNNING, TaskStatus.RETRYING})
TERMINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.INTERRUPTED})
SLOT_HOLDING = frozenset({TaskStatus.STARTING, TaskStatus.RUNNING})
"""A task holds a slot of its key exactly while in one of these (spec §4.3 invariant)."""
WAITING = frozenset({TaskStatus.QUEUED, TaskStatus.RETRYING})
"""A task is in exactly one key queue exactly while in one of these."""


class TaskEvent(StrEnum):
    """What moves a task; the row labels of the spec's §4.3 table."""

    GRANT = "grant"
    """A slot of the task's key was granted."""
    STARTED = "started"
    """The child exists and accepted the prompt."""
    CREATE_FAILED = "create_failed"
    PROMPT_REJECTED = "prompt_rejected"
    COMPLETE = "complete"
    """Idle + visible answer + quiescent (§8)."""
    RETRY = "retry"
    """Retryable error and a next model exists (§10)."""
    FAIL = "fail"
    """Non-retryable error, chain exhausted, or the child is confirmed gone (T4)."""
    TIMEOUT = "timeout"
    """T1, T2 or T5, once the abort of the child is confirmed."""
    QUEUE_TIMEOUT = "queue_timeout"
    """T3."""
    CANCEL = "cancel"
    """Tool/CLI cancel; child deleted or aborted outside baton; parent deleted; ancestor ended."""


_Q, _S, _R, _RT = TaskStatus.QUEUED, TaskStatus.STARTING, TaskStatus.RUNNING, TaskStatus.RETRYING
TRANSITIONS: dict[tuple[TaskStatus, TaskEvent], TaskStatus] = {
    (_Q, TaskEvent.GRANT): _S,
    (_RT, TaskEvent.GRANT): _S,
    (_S, TaskEvent.STARTED): _R,
    (_S, TaskEvent.CREATE_FAILED): TaskStatus.FAILED,
    (_S, TaskEvent.PROMPT_REJECTED): TaskStatus.INTERRUPTED,
    (_R, TaskEvent.COMPLETE): TaskStatus.COMPLETED,
    (_R, TaskEvent.RETRY): _RT,
    (_R, TaskEvent.FAIL): TaskStatus.FAILED,
    (_R, TaskEvent.TIMEOUT): TaskStatus.CANCELLED,
    (_Q, TaskEvent.QUEUE_TIMEOUT): TaskStatus.CANCELLED,
    (_RT, TaskEvent.QUEUE_TIMEOUT): TaskStatus.CANCELLED,
    **{(status, TaskEvent.CANCEL): TaskStatus.CANCELLED for status in (_Q, _S, _R, _RT)},
}
"""The only legal moves (spec §4.3). A terminal status has no entry: it never changes again."""


class IllegalTransition(BatonError):
    """A (status, event) pair the table does not allow: a bug in the caller, never user input."""

    def __init__(self, task_id: str, status: TaskStatus, event: TaskEvent) -> None:
        super().__init__(f"task {task_id}: no transition from {status.value} on {event.value}")
        self.task_id = task_id
        self.status = status
        self.event = event


class Mode(StrEnum):
    BACKGROUND = "background"
    FOREGROUND = "foreground"


class NotifyState(StrEnum):
    """Whether the parent is told about the task's end (spec §4.1 ``notify``)."""

    NONE = "none"
    """Not ended yet, or a foreground task whose waiting tool call has not returned yet."""
    PENDING = "pending"
    """An outbox row exists and is not delivered yet."""
    DELIVERED = "delivered"
    SUPPRESSED = "suppressed"
    """No notification is due (§12.1), or the parent is gone."""


class EndReason(StrEnum):
    """Why a task ended (spec §11); texts for the parent are in :mod:`baton.tasks.texts`."""

    COMPLETED = "completed"
    CREATE_FAILED = "create_failed"
    PROMPT_REJECTED = "prompt_rejected"
    AGENT_UNKNOWN = "agent_unknown"
    ERROR = "error"
    """A provider error that another model would not fix."""
    CHAIN_EXHAUSTED = "chain_exhausted"
    SESSION_GONE = "session_gone"
    STALE = "stale"
    NO_PROGRESS = "no_progress"
    QUEUE_STUCK = "queue_stuck"
    RUNAWAY = "runaway"
    CANCELLED_BY_PARENT = "cancelled_by_parent"
    CANCELLED_BY_USER = "cancelled_by_user"
    CHILD_DELETED = "child_deleted"
    CHILD_ABORTED = "child_aborted"
    PARENT_DELETED = "parent_deleted"
    ANCESTOR_ENDED = "ancestor_ended"
    HOST_RESTARTED = "host_restarted"


SILENT_REASONS = frozenset({EndReason.CANCELLED_BY_PARENT, EndReason.PARENT_DELETED, EndReason.ANCESTOR_ENDED})
"""Ends the parent is not notified about (spec §12.1)."""
TIMEOUT_REASONS = frozenset({EndReason.STALE, EndReason.NO_PROGRESS, EndReason.RUNAWAY})
"""Ends recorded only once the child's abort is confirmed (spec §9 rule 5)."""


def transition(task: Task, event: TaskEvent) -> TaskStatus:
    """Move ``task`` by ``event`` per :data:`TRANSITIONS`; returns the previous status."""
    new = TRANSITIONS.get((task.status, event))
    if new is None:
        raise IllegalTransition(task.id, task.status, event)
    old = task.status
    task.status = new
    return old


@dataclass(slots=True)
class Attempt:
    """One try of a task on one model (spec §4.1 ``attempts[]``)."""

    model: str
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None

    def to_row(self) -> dict[str, Any]:
        return {"model": self.model, "started_at": self.started_at, "ended_at": self.ended_at, "error": self.error}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Attempt:
        return cls(str(row["model"]), row.get("started_at"), row.get("ended_at"), row.get("error"))


@dataclass(slots=True)
class Task:
    """One background or foreground task: the fields of spec §4.1 plus what the engine needs.

    Times are epoch seconds (floats). ``model`` is ``"provider/model"``; ``key`` is its
    normalised concurrency key. ``batch_closed`` is the id of the waking message that
    summarised this task (spec §12.2): batch(P) = P's ended background tasks without one.
    """

    id: str
    parent_session_id: str
    description: str
    prompt: str
    agent: str
    model: str | None
    key: str
    queue_seq: int
    queued_at: float
    mode: Mode = Mode.BACKGROUND
    parent_message_id: str | None = None
    root_session_id: str = ""
    depth: int = 1
    category: str | None = None
    system: str | None = None
    tools: dict[str, bool] = field(default_factory=dict)
    variant: str | None = None
    chain: list[str] = field(default_factory=list)
    attempt: int = 0
    attempts: list[Attempt] = field(default_factory=list)
    status: TaskStatus = TaskStatus.QUEUED
    end_reason: EndReason | None = None
    error: str | None = None
    session_id: str | None = None
    anchor_message_id: str | None = None
    continues: str | None = None
    directory: str | None = None
    parent_agent: str | None = None
    parent_model: str | None = None
    parent_variant: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    last_activity_at: float | None = None
    ended_at: float | None = None
    tool_calls: int = 0
    last_tool: str | None = None
    result: str | None = None
    notify: NotifyState = NotifyState.NONE
    stop_reason: EndReason | None = None
    """A timeout decided to end the task; the end waits for the child's abort (§9 rule 5)."""
    batch_closed: str | None = None
    cascaded: int = 0
    """Descendant tasks cancelled because this one ended (§11 step 6)."""
    prompt_resends: int = 0
    """Prompts re-sent because opencode restarted (§15.5)."""
    anchor_text: str | None = None
    """Text of the anchor when it is a waking notification rather than the prompt (§8.3); a
    fallback re-send repeats the anchor, so it must repeat that text."""
    not_before: float | None = None
    """A waiting task is not granted before then: its whole chain was cooling (:mod:`baton.tasks.waiting`)."""

    @property
    def live(self) -> bool:
        return self.status in LIVE

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def to_row(self) -> dict[str, Any]:
        """A dict of JSON-able values that :meth:`from_row` turns back into an equal task.

        Written out field by field: it runs on every save, the hottest path of a busy
        scheduler (a generic ``dataclasses.fields`` walk was the main cost in benchmarks).
        """
        return {
            "id": self.id, "parent_session_id": self.parent_session_id, "description": self.description,
            "prompt": self.prompt, "agent": self.agent, "model": self.model, "key": self.key,
            "queue_seq": self.queue_seq, "queued_at": self.queued_at, "mode": self.mode.value,
            "parent_message_id": self.parent_message_id, "root_session_id": self.root_session_id,
            "depth": self.depth, "category": self.category, "system": self.system, "tools": dict(self.tools),
            "variant": self.variant, "chain": list(self.chain), "attempt": self.attempt,
            "attempts": [a.to_row() for a in self.attempts], "status": self.status.value,
            "end_reason": self.end_reason.value if self.end_reason is not None else None, "error": self.error,
            "session_id": self.session_id, "anchor_message_id": self.anchor_message_id,
            "continues": self.continues, "directory": self.directory, "parent_agent": self.parent_agent,
            "parent_model": self.parent_model,
            "parent_variant": self.parent_variant, "created_at": self.created_at, "started_at": self.started_at,
            "last_activity_at": self.last_activity_at, "ended_at": self.ended_at, "tool_calls": self.tool_calls,
            "last_tool": self.last_tool, "result": self.result, "notify": self.notify.value,
            "stop_reason": self.stop_reason.value if self.stop_reason is not None else None,
            "batch_closed": self.batch_closed, "cascaded": self.cascaded, "prompt_resends": self.prompt_resends,
            "anchor_text": self.anchor_text, "not_before": self.not_before,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Task:
        """Read a row written by :meth:`to_row`; unknown keys are ignored, missing ones default."""
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in row.items() if k in known}
        data["attempts"] = [Attempt.from_row(a) for a in data.get("attempts") or ()]
        data["tools"] = dict(data.get("tools") or {})
        data["chain"] = list(data.get("chain") or ())
        data["mode"] = Mode(data.get("mode", Mode.BACKGROUND))
        data["status"] = TaskStatus(data.get("status", TaskStatus.QUEUED))
        data["notify"] = NotifyState(data.get("notify", NotifyState.NONE))
        for name in ("end_reason", "stop_reason"):
            value = data.get(name)
            data[name] = EndReason(value) if value is not None else None
        return cls(**data)


class RowKind(StrEnum):
    END = "end"
    """One task ended (one row per task, id ``nt_<task id>``)."""
    SUMMARY = "summary"
    """P's last outstanding task ended without a notification of its own, yet the batch needs a wake."""
    COMPACTION = "compaction"
    """P was compacted: the list of its tasks, so it continues them (§12.5); text fixed at creation."""


class RowState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DROPPED = "dropped"


@dataclass(slots=True)
class OutboxRow:
    """One undelivered (or delivered) notification to a parent (spec §12.4).

    ``message_id`` is set, and saved, before the first ``Deliver`` that covers the row; from
    then on the row is only ever sent under that id, with the frozen ``envelope`` stored on
    the lead row (the first covered row) of that message. ``seq`` orders rows.
    """

    id: str
    parent_session_id: str
    kind: RowKind
    seq: int
    created_at: float
    task_id: str | None = None
    waking: bool = False
    text: str | None = None
    state: RowState = RowState.PENDING
    message_id: str | None = None
    envelope: dict[str, Any] | None = None

    def to_row(self) -> dict[str, Any]:
        return {
            "id": self.id, "parent_session_id": self.parent_session_id, "kind": self.kind.value,
            "seq": self.seq, "created_at": self.created_at, "task_id": self.task_id, "waking": self.waking,
            "text": self.text, "state": self.state.value, "message_id": self.message_id,
            "envelope": dict(self.envelope) if self.envelope is not None else None,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> OutboxRow:
        envelope = row.get("envelope")
        return cls(
            id=str(row["id"]), parent_session_id=str(row["parent_session_id"]), kind=RowKind(row["kind"]),
            seq=int(row["seq"]), created_at=float(row["created_at"]), task_id=row.get("task_id"),
            waking=bool(row.get("waking", False)), text=row.get("text"),
            state=RowState(row.get("state", RowState.PENDING)), message_id=row.get("message_id"),
            envelope=dict(envelope) if isinstance(envelope, dict) else None,
        )
