"""Concurrency keys, limits, FIFO queues and every other derived view of the task table.

Spec §4.2: slots in use, queue order, outstanding(P), batch(P) and live descendants per root
are derived from task states, never counted separately. :class:`TaskIndex` is that
derivation kept incrementally: each view is a dict of sets (or insertion-ordered dicts)
updated in one place, :meth:`TaskIndex.move`, from a task's status before and after a
transition. So a view can never disagree with the statuses, every event costs O(1), and a
restart rebuilds the same views from the rows (queues ordered by ``queue_seq``).
"""

from __future__ import annotations

from collections.abc import Iterable

from baton.settings import BackgroundTaskConfig
from baton.tasks.model import LIVE, SLOT_HOLDING, TERMINAL, WAITING, Mode, Task, TaskEvent, TaskStatus, transition

__all__ = ["TaskIndex", "concurrency_key", "limit_for", "provider_of"]


def concurrency_key(model: str | None, agent: str) -> str:
    """``provider/model`` trimmed and lower-cased; the agent name when no model resolved (§5.3)."""
    return (model if model else agent).strip().lower()


def provider_of(key: str) -> str:
    """Text before the first ``/``; a key without one (an agent name) is its own provider."""
    return key.partition("/")[0]


def limit_for(settings: BackgroundTaskConfig, key: str) -> int:
    """Slots for ``key``: model entry, else provider entry, else the default; 0 = unlimited.

    The config already stores its map keys trimmed and lower-cased, like ``key``.
    """
    found = settings.model_concurrency.get(key)
    if found is None:
        found = settings.provider_concurrency.get(provider_of(key))
    return settings.default_concurrency if found is None else found


def _add(index: dict[str, set[str]], key: str, task_id: str) -> None:
    bucket = index.get(key)
    if bucket is None:
        index[key] = {task_id}
    else:
        bucket.add(task_id)


def _discard(index: dict[str, set[str]], key: str, task_id: str) -> None:
    bucket = index.get(key)
    if bucket is not None:
        bucket.discard(task_id)
        if not bucket:
            del index[key]


class TaskIndex:
    """All tasks by id plus the derived views; the only place that changes a task's status."""

    def __init__(self, settings: BackgroundTaskConfig, tasks: Iterable[Task] = ()) -> None:
        self.settings = settings
        self.tasks: dict[str, Task] = {}
        self.queues: dict[str, dict[str, None]] = {}
        """key → waiting task ids in FIFO order (insertion order = ``queue_seq`` order)."""
        self.active: dict[str, set[str]] = {}
        """key → tasks holding a slot (``starting``/``running``)."""
        self.live_by_parent: dict[str, set[str]] = {}
        self.outstanding: dict[str, set[str]] = {}
        """parent → live *background* tasks (spec §2 outstanding(P))."""
        self.live_by_root: dict[str, set[str]] = {}
        self.batch: dict[str, dict[str, None]] = {}
        """parent → ended background tasks not yet summarised by a waking message, in end order."""
        self.by_session: dict[str, str] = {}
        """child session → newest task on it (continuations share a session)."""
        self.children: dict[str, set[str]] = {}
        """parent session → all its tasks, live or not (cancel scope, §14.4)."""
        self.slot_holders: set[str] = set()
        self.key_progress: dict[str, float] = {}
        """key → last grant or activity of a slot holder (T3 backstop)."""
        self.seq = 0
        ordered = sorted(tasks, key=lambda t: (t.queue_seq, t.created_at))
        for task in ordered:
            self.add(task)

    # ------------------------------------------------------------------ membership

    def add(self, task: Task) -> None:
        """Insert a new (or loaded) task into every view its status implies."""
        self.tasks[task.id] = task
        self.seq = max(self.seq, task.queue_seq)
        _add(self.children, task.parent_session_id, task.id)
        if task.session_id is not None:
            self._claim_session(task)
        self._index(task)

    def remove(self, task: Task) -> None:
        """Forget an ended task entirely (history cap, spec §16); live tasks are never removed."""
        assert task.status not in LIVE
        self._unindex(task)
        del self.tasks[task.id]
        _discard(self.children, task.parent_session_id, task.id)
        if task.session_id is not None and self.by_session.get(task.session_id) == task.id:
            del self.by_session[task.session_id]

    def _claim_session(self, task: Task) -> None:
        assert task.session_id is not None
        current = self.tasks.get(self.by_session.get(task.session_id, ""))
        if current is None or (current.created_at, current.queue_seq) <= (task.created_at, task.queue_seq):
            self.by_session[task.session_id] = task.id

    def set_session(self, task: Task, session_id: str) -> None:
        task.session_id = session_id
        self._claim_session(task)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _index(self, task: Task) -> None:
        status, tid = task.status, task.id
        if status in WAITING:
            self.queues.setdefault(task.key, {})[tid] = None
        elif status in SLOT_HOLDING:
            _add(self.active, task.key, tid)
            self.slot_holders.add(tid)
        if status in LIVE:
            _add(self.live_by_parent, task.parent_session_id, tid)
            _add(self.live_by_root, task.root_session_id, tid)
            if task.mode is Mode.BACKGROUND:
                _add(self.outstanding, task.parent_session_id, tid)
        elif status in TERMINAL and task.mode is Mode.BACKGROUND and task.batch_closed is None:
            self.batch.setdefault(task.parent_session_id, {})[tid] = None

    def _unindex(self, task: Task) -> None:
        status, tid = task.status, task.id
        if status in WAITING:
            queue = self.queues.get(task.key)
            if queue is not None:
                queue.pop(tid, None)
                if not queue:
                    del self.queues[task.key]
        elif status in SLOT_HOLDING:
            _discard(self.active, task.key, tid)
            self.slot_holders.discard(tid)
        if status in LIVE:
            _discard(self.live_by_parent, task.parent_session_id, tid)
            _discard(self.live_by_root, task.root_session_id, tid)
            _discard(self.outstanding, task.parent_session_id, tid)
        else:
            self.unbatch(task)

    def unbatch(self, task: Task) -> None:
        batch = self.batch.get(task.parent_session_id)
        if batch is not None:
            batch.pop(task.id, None)
            if not batch:
                del self.batch[task.parent_session_id]

    def move(self, task: Task, event: TaskEvent, *, requeue: tuple[str, float] | None = None) -> TaskStatus:
        """Apply ``event`` (raises ``IllegalTransition``) and update every view; returns the old status.

        ``requeue`` = (new key, now): the task joins the new key's tail with a new
        ``queue_seq`` (a fallback retry, §10.4).
        """
        self._unindex(task)
        try:
            old = transition(task, event)
        finally:
            if requeue is not None and task.status in WAITING:
                task.key = requeue[0]
                task.queue_seq = self.next_seq()
                task.queued_at = requeue[1]
            self._index(task)
        return old

    def set_mode(self, task: Task, mode: Mode) -> None:
        self._unindex(task)
        task.mode = mode
        self._index(task)

    # ------------------------------------------------------------------ queries

    def limit(self, key: str) -> int:
        return limit_for(self.settings, key)

    def has_slot(self, key: str) -> bool:
        limit = limit_for(self.settings, key)
        return limit == 0 or len(self.active.get(key, ())) < limit

    def head(self, key: str) -> Task | None:
        queue = self.queues.get(key)
        if not queue:
            return None
        return self.tasks[next(iter(queue))]

    def position(self, task: Task) -> int | None:
        """1-based place in its key's queue; O(queue length), for tool texts and views only."""
        queue = self.queues.get(task.key)
        if queue is None or task.id not in queue:
            return None
        for place, tid in enumerate(queue, start=1):
            if tid == task.id:
                return place
        return None  # pragma: no cover - membership was checked

    def outstanding_count(self, parent: str) -> int:
        return len(self.outstanding.get(parent, ()))

    def live_under_root(self, root: str) -> int:
        return len(self.live_by_root.get(root, ()))

    def live_children(self, session_id: str) -> list[Task]:
        return [self.tasks[tid] for tid in sorted(self.live_by_parent.get(session_id, ()))]

    def batch_of(self, parent: str) -> list[Task]:
        return [self.tasks[tid] for tid in self.batch.get(parent, ())]

    def task_on(self, session_id: str) -> Task | None:
        tid = self.by_session.get(session_id)
        return self.tasks.get(tid) if tid is not None else None

    def live_on(self, session_id: str) -> Task | None:
        """The live task whose child is ``session_id``, if any."""
        task = self.task_on(session_id)
        return task if task is not None and task.status in LIVE else None
