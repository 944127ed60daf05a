"""Parent notifications: outbox rows, per-parent serial delivery, coalescing, retry (§12).

Theory of operation. Ending a task writes its outbox row (``SaveOutbox``) in the same step
as the end itself; nothing is sent yet. Each parent P has one :class:`Parent` mailbox:

* rows wait in ``rows`` until P is *ready*: its status is known to be idle, no user message
  reached it in the last 2 s, any delivery backoff has passed, and the 50 ms coalescing
  window since the first waiting row has closed;
* then all waiting rows become one message: a fresh ascending message id is chosen, the
  rows and the message's frozen *envelope* (text, noReply, agent, model, tools) are saved,
  and only then is ``Deliver`` emitted — at most one per parent in flight;
* a 2xx marks the rows delivered; a retryable failure re-sends the *same* envelope under the
  *same* id after a backoff (0.5 s doubling to 30 s); "busy" waits for P's next idle; a 404
  drops P's rows. After a restart, frozen messages are re-sent with ``check_first``.

Whether a message wakes P is decided when it is composed (§12.2): some covered row is
waking, outstanding(P) is empty, the batch holds a task P did not cancel itself, and the user
has not stopped P since the batch began. The batch is closed (its tasks get
``batch_closed``) whenever a waking row goes out while nothing is outstanding.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from baton.actions import Note, Schedule
from baton.events import StatusType
from baton.models import same_model
from baton.tasks import texts
from baton.tasks.actions import Deliver, SaveOutbox, SaveTask, TaskAction
from baton.tasks.events import DeliveryOutcome
from baton.tasks.ids import IdSource
from baton.tasks.model import SILENT_REASONS, NotifyState, OutboxRow, RowKind, RowState, Task
from baton.tasks.queues import TaskIndex

__all__ = ["BACKOFF_FIRST_S", "BACKOFF_MAX_S", "COALESCE_S", "QUIET_S", "Frozen", "Notifier", "Parent",
           "deliver_timer"]

COALESCE_S = 0.05
QUIET_S = 2.0
PROMPTS_KEPT = 4096
"""Sessions whose newest prompt id is remembered (the least recently prompted go first)."""
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
_NEG = float("-inf")


def deliver_timer(parent: str) -> str:
    return f"tasks:deliver:{parent}"


@dataclass(slots=True)
class Frozen:
    """A composed message: its rows are saved with ``message_id``; only this envelope is ever sent."""

    message_id: str
    rows: list[OutboxRow]
    envelope: dict[str, Any]
    check_first: bool = False


@dataclass(slots=True)
class Parent:
    """In-memory mailbox and readiness of one parent session."""

    id: str
    status: StatusType | None = None
    last_user_at: float = _NEG
    user_answered: bool = True
    """Whether an assistant message answers P's newest user message: until one does, the user has
    just started a turn that P may not have begun yet, and nothing is sent for :data:`QUIET_S`."""
    user_aborted_at: float = _NEG
    agent: str | None = None
    model: str | None = None
    variant: str | None = None
    """The variant of ``model`` as P's newest message chose it (None: the model's default)."""
    rows: dict[str, OutboxRow] = field(default_factory=dict)
    frozen: deque[Frozen] = field(default_factory=deque)
    sending: bool = False
    window_until: float | None = None
    retry_at: float = _NEG
    backoff: float = 0.0
    timer_at: float | None = None
    own_ids: deque[str] = field(default_factory=lambda: deque(maxlen=16))

    @property
    def pending(self) -> bool:
        return bool(self.rows or self.frozen)


class Notifier:
    """All parents' mailboxes; the scheduler owns one and forwards the parent-side events."""

    def __init__(
        self,
        index: TaskIndex,
        ids: IdSource,
        request_poll: Callable[[list[TaskAction]], None],
        wake_child: Callable[[str, str, str, float, list[TaskAction]], None],
        rows: Iterable[OutboxRow] = (),
    ) -> None:
        self.index = index
        self.ids = ids
        self._request_poll = request_poll
        self._wake_child = wake_child
        self.parents: dict[str, Parent] = {}
        # The newest prompt seen in each session, mailbox or not: a mailbox opened at a launch knows
        # which prompt the launching turn answers, so that prompt's later updates are not a new one.
        self._prompts: OrderedDict[str, str] = OrderedDict()
        self.seq = 0
        frozen: dict[str, list[OutboxRow]] = {}
        for row in sorted(rows, key=lambda r: r.seq):
            self.seq = max(self.seq, row.seq)
            if row.state is not RowState.PENDING:
                continue
            parent = self.ensure(row.parent_session_id)
            if row.message_id is None:
                parent.rows[row.id] = row
            else:
                frozen.setdefault(row.message_id, []).append(row)
        for message_id, group in sorted(frozen.items()):
            envelope = next((r.envelope for r in group if r.envelope is not None), None)
            parent = self.ensure(group[0].parent_session_id)
            if envelope is None:  # the lead row was lost: re-compose as context only, same id
                envelope = self._envelope(parent, self._text(group, summary=False, batch=[]), True)
            parent.frozen.append(Frozen(message_id, group, envelope, check_first=True))

    # ------------------------------------------------------------------ bookkeeping

    def ensure(self, parent_id: str, status: StatusType | None = None) -> Parent:
        parent = self.parents.get(parent_id)
        if parent is None:
            parent = self.parents[parent_id] = Parent(parent_id, status=status)
        elif status is not None:
            parent.status = status
        return parent

    def forget_if_idle(self, parent_id: str) -> None:
        """Drop a mailbox that has nothing to send and no live task to track readiness for."""
        parent = self.parents.get(parent_id)
        if parent is not None and not parent.pending and not parent.sending and (
            parent_id not in self.index.live_by_parent
        ):
            del self.parents[parent_id]

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def add(self, row: OutboxRow, now: float) -> None:
        parent = self.ensure(row.parent_session_id)
        if not parent.rows:
            parent.window_until = now + COALESCE_S
        parent.rows[row.id] = row

    def has_waking(self, parent_id: str) -> bool:
        parent = self.parents.get(parent_id)
        return parent is not None and any(r.waking for r in parent.rows.values())

    def pending_for(self, parent_id: str) -> bool:
        parent = self.parents.get(parent_id)
        return parent is not None and (parent.pending or parent.sending)

    # ------------------------------------------------------------------ readiness

    def on_status(self, parent_id: str, status: StatusType, now: float, actions: list[TaskAction]) -> None:
        parent = self.parents.get(parent_id)
        if parent is None:
            return
        parent.status = status
        if status is StatusType.IDLE:
            self.pump(parent_id, now, actions)

    def on_user(self, parent_id: str, message_id: str, agent: str | None, model: str | None, now: float,
                actions: list[TaskAction], variant: str | None = None) -> None:
        parent = self.parents.get(parent_id)
        if parent is not None and (message_id in parent.own_ids
                                   or any(f.message_id == message_id for f in parent.frozen)):
            return  # baton's own notification
        previous = self._prompts.get(parent_id)
        self._prompts[parent_id] = message_id
        self._prompts.move_to_end(parent_id)
        while len(self._prompts) > PROMPTS_KEPT:
            self._prompts.popitem(last=False)
        if parent is None:
            return
        if message_id != previous:  # not opencode updating a prompt again (its summary at the turn's end)
            parent.last_user_at, parent.user_answered = now, False
        parent.agent = agent or parent.agent
        if model and variant is not None:
            parent.model, parent.variant = model, variant
        elif model:
            self.on_assistant_model(parent, model)  # no variant said: the one known for the same model
        if parent.pending:
            self.pump(parent_id, now, actions)

    # ------------------------------------------------------------------ sending

    def pump(self, parent_id: str, now: float, actions: list[TaskAction]) -> None:
        """Send P's next message if P is ready; otherwise arrange to be called when it may be."""
        parent = self.parents.get(parent_id)
        if parent is None or parent.sending or not parent.pending:
            return
        if parent.status is None:
            self._request_poll(actions)
            return
        if parent.status is not StatusType.IDLE:
            return
        quiet_until = _NEG if parent.user_answered else parent.last_user_at + QUIET_S
        due = max(parent.retry_at, quiet_until)
        if not parent.frozen and parent.window_until is not None:
            due = max(due, parent.window_until)
        if now < due:
            if parent.timer_at != due:
                parent.timer_at = due
                actions.append(Schedule(deliver_timer(parent_id), due))
            return
        parent.timer_at = None
        if not parent.frozen:
            parent.frozen.append(self._compose(parent, now, actions))
        message = parent.frozen[0]
        env = message.envelope
        parent.sending = True
        actions.append(Deliver(
            parent_session_id=parent_id, message_id=message.message_id, text=env["text"],
            no_reply=bool(env["no_reply"]), agent=env.get("agent"), model=env.get("model"),
            variant=env.get("variant"), tools=env.get("tools"), directory=env.get("directory"),
            check_first=message.check_first, ended_at=self._ended_at(message.rows),
        ))

    def _ended_at(self, rows: list[OutboxRow]) -> float | None:
        ends = [task.ended_at for r in rows if r.kind is RowKind.END and r.task_id is not None
                and (task := self.index.tasks.get(r.task_id)) is not None and task.ended_at is not None]
        return min(ends, default=None)

    def _text(self, rows: list[OutboxRow], *, summary: bool, batch: list[Task], waking: bool = False,
              outstanding: int = 0) -> str:
        updates = [self.index.tasks[r.task_id] for r in rows
                   if r.kind is RowKind.END and r.task_id is not None and r.task_id in self.index.tasks]
        extra = [r.text for r in rows if r.kind is RowKind.COMPACTION and r.text]
        return texts.notification(updates, summary=summary, waking=waking, batch=batch,
                                  outstanding=outstanding, extra=extra)

    def _newest_launch(self, parent: Parent) -> Task | None:
        launched = self.index.children.get(parent.id, ())
        return max((self.index.tasks[t] for t in launched), key=lambda t: (t.created_at, t.queue_seq), default=None)

    def _model_of(self, parent: Parent) -> tuple[str | None, str | None]:
        """P's model and its variant as last seen, else as recorded at P's newest launch."""
        if parent.model:
            return parent.model, parent.variant
        newest = self._newest_launch(parent)
        return (newest.parent_model, newest.parent_variant) if newest is not None else (None, None)

    def on_answer(self, parent: Parent, answers: str | None) -> None:
        """An assistant message of P, answering the user message ``answers``: once it answers P's
        newest, the user's turn is under way or over, and a notification need not wait for quiet."""
        if answers is not None and answers == self._prompts.get(parent.id):
            parent.user_answered = True

    def on_assistant_model(self, parent: Parent, model: str) -> None:
        """P used ``model`` without saying its variant: the variant known for that model stays, else none."""
        known, variant = self._model_of(parent)
        parent.model, parent.variant = model, variant if same_model(model, known) else None

    def _envelope(self, parent: Parent, text: str, no_reply: bool) -> dict[str, Any]:
        """P's current agent/model/variant, else those captured at launch; tools only if P is a baton child."""
        newest = self._newest_launch(parent)
        own = self.index.task_on(parent.id)
        model, variant = self._model_of(parent)
        return {
            "text": text, "no_reply": no_reply,
            "agent": parent.agent or (newest.parent_agent if newest else None),
            "model": model,
            "variant": variant,
            "tools": dict(own.tools) if own is not None else None,
            "directory": own.directory if own is not None else (newest.directory if newest else None),
        }

    def _compose(self, parent: Parent, now: float, actions: list[TaskAction]) -> Frozen:
        rows = sorted(parent.rows.values(), key=lambda r: r.seq)
        parent.rows.clear()
        parent.window_until = None
        outstanding = self.index.outstanding_count(parent.id)
        batch = self.index.batch_of(parent.id)
        close = outstanding == 0 and any(r.waking for r in rows)
        began = min((t.ended_at or now for t in batch), default=now)
        wanted = any(t.end_reason not in SILENT_REASONS for t in batch)
        waking = close and wanted and parent.user_aborted_at < began
        message_id = self.ids.message_id(now)
        text = self._text(rows, summary=close and wanted, batch=batch, waking=waking, outstanding=outstanding)
        if close:
            for task in batch:
                task.batch_closed = message_id
                self.index.unbatch(task)
                actions.append(SaveTask(task.id, task.to_row()))
        envelope = self._envelope(parent, text, not waking)
        for row in rows:
            row.message_id = message_id
        rows[0].envelope = envelope
        actions.append(SaveOutbox(tuple(r.to_row() for r in rows)))
        if waking:
            self._wake_child(parent.id, message_id, text, now, actions)
        return Frozen(message_id, rows, envelope)

    # ------------------------------------------------------------------ outcomes

    def on_result(self, parent_id: str, message_id: str, outcome: DeliveryOutcome, detail: str, now: float,
                  actions: list[TaskAction]) -> bool:
        """Apply a ``DeliveryResult``; True when P's mailbox just became empty (quiescence may now hold)."""
        parent = self.parents.get(parent_id)
        if parent is None or not parent.sending or not parent.frozen or parent.frozen[0].message_id != message_id:
            return False
        parent.sending = False
        message = parent.frozen[0]
        if outcome is DeliveryOutcome.DELIVERED:
            parent.frozen.popleft()
            parent.own_ids.append(message_id)
            parent.backoff, parent.retry_at = 0.0, _NEG
            self._settle(message.rows, RowState.DELIVERED, NotifyState.DELIVERED, actions)
            self.pump(parent_id, now, actions)
            return not parent.pending
        if outcome is DeliveryOutcome.PARENT_GONE:
            rows = [r for f in parent.frozen for r in f.rows] + list(parent.rows.values())
            parent.frozen.clear()
            parent.rows.clear()
            self._settle(rows, RowState.DROPPED, NotifyState.SUPPRESSED, actions)
            actions.append(Note(parent_id, "parent_gone",
                                f"parent {parent_id} is gone; {len(rows)} notification(s) dropped"))
            return True
        if outcome is DeliveryOutcome.BUSY:
            parent.status = StatusType.BUSY
            return False
        parent.backoff = BACKOFF_FIRST_S if parent.backoff == 0 else min(parent.backoff * 2, BACKOFF_MAX_S)
        parent.retry_at = now + parent.backoff
        actions.append(Note(parent_id, "delivery_retry",
                            f"delivery to {parent_id} failed ({detail[:200]}); retrying in {parent.backoff:g}s"))
        self.pump(parent_id, now, actions)
        return False

    def drop(self, parent_id: str, actions: list[TaskAction]) -> None:
        """P was deleted: nothing is sent to it any more (§12.5)."""
        parent = self.parents.pop(parent_id, None)
        if parent is None:
            return
        rows = [r for f in parent.frozen for r in f.rows] + list(parent.rows.values())
        self._settle(rows, RowState.DROPPED, NotifyState.SUPPRESSED, actions)

    def _settle(self, rows: list[OutboxRow], state: RowState, notify: NotifyState,
                actions: list[TaskAction]) -> None:
        if not rows:
            return
        for row in rows:
            row.state = state
        actions.append(SaveOutbox(tuple(r.to_row() for r in rows)))
        for row in rows:
            task = self.index.tasks.get(row.task_id) if row.task_id is not None else None
            if task is not None and task.notify is NotifyState.PENDING:
                task.notify = notify
                actions.append(SaveTask(task.id, task.to_row()))
