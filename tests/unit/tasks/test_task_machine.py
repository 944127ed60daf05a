"""Random launches, results, failures, cancels and restarts never break the scheduler's promises.

The machine plays opencode and the engine: it keeps the I/O actions the scheduler emitted and
resolves them in random order and with random outcomes, runs the timers the scheduler set,
and now and then kills baton and rebuilds it from the rows its saves wrote. opencode's own
state (children that exist, messages received) survives those restarts, as it would.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from task_sim import Sim

from baton.actions import CancelTimer, Schedule
from baton.events import SessionError, StatusType, TimerFired
from baton.tasks import CancelRequest, Mode, Task, TaskStatus
from baton.tasks.actions import (
    AbortChild,
    CreateChild,
    Deliver,
    LookupSession,
    PollStatus,
    PromptChild,
    RefreshActivity,
    SaveOutbox,
    TaskAction,
)
from baton.tasks.events import (
    AbortDone,
    ActivityRefreshed,
    ChildCreated,
    ChildCreateFailed,
    DeliveryOutcome,
    DeliveryResult,
    PromptAccepted,
    PromptRejected,
    SessionLookup,
    StatusPolled,
)
from baton.tasks.model import LIVE, SILENT_REASONS, SLOT_HOLDING, TERMINAL, WAITING, NotifyState

CONFIG = {
    "agents": {"explore": {"fallback_models": ["prov/b", "other/c"]}},
    "background_task": {"defaultConcurrency": 2, "modelConcurrency": {"prov/b": 1}, "maxDescendants": 7},
}
PARENTS = ("ses_p1", "ses_p2")
MODELS = ("prov/a", "prov/x", "prov/b")
RATE_LIMIT = {"name": "APIError", "data": {"message": "Rate limit exceeded", "statusCode": 429}}
BAD_REQUEST = {"name": "APIError", "data": {"message": "Bad request", "statusCode": 400}}
_IO = (CreateChild, PromptChild, AbortChild, Deliver, PollStatus, LookupSession, RefreshActivity)


class SchedulerMachine(RuleBasedStateMachine):
    """The scheduler against a randomly behaving opencode and engine."""

    @initialize()
    def setup(self) -> None:
        self.sim = Sim(CONFIG)
        self.pending: list[TaskAction] = []
        self.timers: dict[str, float] = {}
        self.children: dict[str, str] = {}  # task id → child session (opencode state)
        self.received: dict[str, set[str]] = {}  # task id → message ids opencode got that cover it
        self.message_tasks: dict[str, set[str]] = {}  # message id → task ids of its rows
        self.row_creations: dict[str, int] = {}
        self.sessions = 0

    # ------------------------------------------------------------------ plumbing

    def take(self, actions: list[TaskAction]) -> None:
        for action in actions:
            if isinstance(action, _IO):
                self.pending.append(action)
            elif isinstance(action, Schedule):
                self.timers[action.key] = action.at
            elif isinstance(action, CancelTimer):
                self.timers.pop(action.key, None)
            elif isinstance(action, SaveOutbox):
                for row in action.rows:
                    if row["message_id"] is None and row["state"] == "pending" and row["task_id"]:
                        self.row_creations[row["task_id"]] = self.row_creations.get(row["task_id"], 0) + 1
                    if row["message_id"] and row["task_id"]:
                        self.message_tasks.setdefault(row["message_id"], set()).add(row["task_id"])

    def feed(self, event: Any) -> None:
        self.take(self.sim.feed(event))

    def tasks(self, *statuses: TaskStatus) -> list[Task]:
        return sorted((t for t in self.sim.sched.index.tasks.values() if t.status in statuses), key=lambda t: t.id)

    def pick(self, items: list[Any], i: int) -> Any:
        return items[i % len(items)]

    def of_pending(self, kind: type) -> list[Any]:
        return [a for a in self.pending if isinstance(a, kind)]

    # ------------------------------------------------------------------ tool calls

    @rule(parent=st.sampled_from(PARENTS), model=st.sampled_from(MODELS), background=st.booleans(),
          category=st.booleans())
    def launch(self, parent: str, model: str, background: bool, category: bool) -> None:
        kw: dict[str, Any] = {"parent_session_id": parent, "parent_model": model, "background": background}
        if category:
            kw.update(category="deep", subagent_type=None)
        _, actions = self.sim.launch_raw(**kw)
        self.take(actions)

    @precondition(lambda self: any(t.status in LIVE for t in self.sim.sched.index.tasks.values()))
    @rule(i=st.integers(0, 99), by_user=st.booleans(), rare=st.integers(0, 3))
    def cancel(self, i: int, by_user: bool, rare: int) -> None:
        if rare:  # cancels are rarer than the other steps, so tasks get to run and end on their own
            return
        task = self.pick(self.tasks(*LIVE), i)
        request = CancelRequest(task_id=task.id, by="user") if by_user else CancelRequest(
            task_id=task.id, caller_session_id=task.parent_session_id)
        _, actions = self.sim.sched.cancel(request, self.sim.now)
        self.sim._record(actions)
        self.take(actions)

    @precondition(lambda self: any(t.mode is Mode.FOREGROUND for t in self.sim.sched.index.tasks.values()))
    @rule(i=st.integers(0, 99), expire=st.booleans())
    def foreground_call_returns(self, i: int, expire: bool) -> None:
        fg = [t for t in self.tasks(*TaskStatus) if t.mode is Mode.FOREGROUND]
        task = self.pick(fg, i)
        if task.status in LIVE and expire:
            _, actions = self.sim.sched.to_background(task.id, self.sim.now)
        else:
            _, actions = self.sim.sched.foreground_result(task.id, self.sim.now)
        self.sim._record(actions)
        self.take(actions)

    # ------------------------------------------------------------------ engine results

    @precondition(lambda self: bool(self.pending))
    @rule(i=st.integers(0, 999), ok=st.integers(0, 3), transient=st.booleans(), happened=st.booleans())
    def resolve_io(self, i: int, ok: int, transient: bool = False, happened: bool = False) -> None:
        """Mostly success (3 in 4), so tasks get far enough to complete and notify. A transient
        failure (opencode restarting) may have happened at opencode all the same (a timed-out call)."""
        action = self.pending.pop(i % len(self.pending))
        if isinstance(action, CreateChild):
            if action.adopt and action.task_id in self.children:
                self.feed(ChildCreated(action.task_id, self.children[action.task_id]))
            elif ok or action.task_id in self.children:
                self.sessions += 1
                session = self.children.setdefault(action.task_id, f"ses_c{self.sessions}")
                self.feed(ChildCreated(action.task_id, session))
            else:
                if transient and happened:
                    self.sessions += 1
                    self.children.setdefault(action.task_id, f"ses_c{self.sessions}")
                error = "POST /session failed: ConnectError" if transient else "answered 400"
                self.feed(ChildCreateFailed(action.task_id, error, transient=transient))
        elif isinstance(action, PromptChild):
            self.feed(PromptAccepted(action.task_id, action.attempt) if ok or action.only_if_absent
                      else PromptRejected(action.task_id, action.attempt, "refused", transient=transient))
        elif isinstance(action, AbortChild):
            self.feed(AbortDone(action.task_id, bool(ok)))
        elif isinstance(action, Deliver):
            covered = self.message_tasks.get(action.message_id, set())
            if ok:
                for tid in covered:
                    self.received.setdefault(tid, set()).add(action.message_id)
            outcome = DeliveryOutcome.DELIVERED if ok else DeliveryOutcome.RETRY
            self.feed(DeliveryResult(action.parent_session_id, action.message_id, outcome))
        elif isinstance(action, PollStatus):
            self.feed(StatusPolled({} if ok else None))
        elif isinstance(action, LookupSession):
            self.feed(SessionLookup(action.session_id, True))
        elif isinstance(action, RefreshActivity):
            self.feed(ActivityRefreshed(action.task_id, self.sim.now if ok else None))

    @precondition(lambda self: bool(self.pending))
    @rule()
    def engine_catches_up(self) -> None:
        """A healthy engine: every pending call succeeds, including those the results cause."""
        for _ in range(30):
            if not self.pending:
                break
            self.resolve_io(0, 1)

    # ------------------------------------------------------------------ opencode events

    @precondition(lambda self: any(t.status is TaskStatus.RUNNING for t in self.sim.sched.index.tasks.values()))
    @rule(i=st.integers(0, 99), idle=st.booleans())
    def child_answers(self, i: int, idle: bool) -> None:
        self.take(self.sim.answer(self.pick(self.tasks(TaskStatus.RUNNING), i), idle=idle))

    @precondition(lambda self: any(t.status is TaskStatus.RUNNING for t in self.sim.sched.index.tasks.values()))
    @rule(i=st.integers(0, 99), retryable=st.booleans())
    def child_fails(self, i: int, retryable: bool) -> None:
        task = self.pick(self.tasks(TaskStatus.RUNNING), i)
        self.feed(SessionError(task.session_id, RATE_LIMIT if retryable else BAD_REQUEST))

    @rule(parent=st.sampled_from(PARENTS), busy=st.booleans())
    def parent_status(self, parent: str, busy: bool) -> None:
        self.take(self.sim.status(parent, StatusType.BUSY if busy else StatusType.IDLE))

    @rule(dt=st.sampled_from([0.06, 1.0, 3.0, 200.0]))
    def time_passes(self, dt: float) -> None:
        self.sim.advance(dt)
        for _ in range(20):
            due = sorted((at, key) for key, at in self.timers.items() if at <= self.sim.now)
            if not due:
                break
            for _, key in due:
                self.timers.pop(key, None)
                self.feed(TimerFired(key))

    @rule(created=st.booleans(), rare=st.integers(0, 2))
    def restart(self, created: bool, rare: int) -> None:
        """kill -9: in-flight I/O is lost (a create may still have happened at opencode), then rebuild."""
        if rare:
            return
        before = {tid: t.status for tid, t in self.sim.sched.index.tasks.items()}
        for action in self.pending:
            if isinstance(action, CreateChild) and created:
                self.sessions += 1
                self.children.setdefault(action.task_id, f"ses_c{self.sessions}")
        self.pending.clear()
        self.timers.clear()
        self.take(self.sim.restart())
        after = {tid: t.status for tid, t in self.sim.sched.index.tasks.items()}
        assert after.keys() == before.keys(), "a task was lost across the restart"
        for tid, status in before.items():
            assert after[tid] == status or (status in WAITING and after[tid] is TaskStatus.STARTING), tid

    def teardown(self) -> None:
        """Never lost: once opencode and the parents cooperate, every pending notification goes out."""
        if not hasattr(self, "sim"):
            return
        # Rounds of 31 s until nothing is pending (tasks queued behind each other, or waiting out a
        # cooldown, end one stale timeout after another); 40 rounds bound it.
        stuck: list[str] = []
        for _ in range(40):
            for parent in PARENTS:
                self.parent_status(parent, busy=False)
            self.engine_catches_up()
            self.time_passes(31.0)
            self.engine_catches_up()
            stuck = [r["id"] for r in self.sim.outbox.values() if r["state"] == "pending"]
            if not stuck and not self.tasks(*LIVE):
                break
        assert not stuck, f"undelivered after quiescence: {stuck}"

    # ------------------------------------------------------------------ invariants

    @invariant()
    def slots_within_limits_and_each_task_in_one_place(self) -> None:
        index = self.sim.sched.index
        for key, holders in index.active.items():
            limit = index.limit(key)
            assert limit == 0 or len(holders) <= limit, (key, holders)
        placed: dict[str, str] = {}
        for key, queue in index.queues.items():
            for tid in queue:
                assert tid not in placed and index.tasks[tid].status in WAITING and index.tasks[tid].key == key
                placed[tid] = key
        for key, holders in index.active.items():
            for tid in holders:
                assert tid not in placed and index.tasks[tid].status in SLOT_HOLDING and index.tasks[tid].key == key
                placed[tid] = key
        for tid, task in index.tasks.items():
            assert (tid in placed) == (task.status in WAITING | SLOT_HOLDING), (tid, task.status)

    @invariant()
    def derived_counts_match_statuses(self) -> None:
        index = self.sim.sched.index
        for root, live in index.live_by_root.items():
            assert live == {t.id for t in index.tasks.values() if t.root_session_id == root and t.status in LIVE}
            assert len(live) <= 7
        for parent, outstanding in index.outstanding.items():
            assert outstanding == {t.id for t in index.tasks.values() if t.parent_session_id == parent
                                   and t.status in LIVE and t.mode is Mode.BACKGROUND}

    @invariant()
    def notified_at_most_once_and_never_lost(self) -> None:
        assert all(n <= 1 for n in self.row_creations.values()), self.row_creations
        assert all(len(ids) <= 1 for ids in self.received.values()), self.received
        outbox = self.sim.outbox
        for task in self.sim.sched.index.tasks.values():
            if task.status in TERMINAL and task.mode is Mode.BACKGROUND and task.end_reason not in SILENT_REASONS:
                row = outbox.get(f"nt_{task.id}")
                assert row is not None, f"{task.id} ended without a notification row"
                if task.notify is NotifyState.DELIVERED:
                    assert row["state"] == "delivered"
            if task.status in LIVE:
                assert task.notify is NotifyState.NONE

    @invariant()
    def no_task_runs_twice(self) -> None:
        for task in self.sim.sched.index.tasks.values():
            if task.session_id is not None and task.continues is None:
                assert self.children.get(task.id, task.session_id) == task.session_id


def _machine_settings(_: object) -> settings:
    """80 examples under the ci profile, 20 times as many under BATON_HYPOTHESIS_PROFILE=deep
    (tests/conftest.py). Under mutmut (scripts/mutation.py names the mutant in MUTANT_UNDER_TEST
    when the test runs) only the verdict counts: a failure is not shrunk, which would take tens of
    seconds per mutant and tell nothing more."""
    mutating = bool(os.environ.get("MUTANT_UNDER_TEST"))
    return settings(
        max_examples=80 * settings().max_examples // 100, stateful_step_count=50, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        phases=[p for p in settings().phases if not (mutating and p is Phase.shrink)],
    )


TestSchedulerMachine = SchedulerMachine.TestCase
TestSchedulerMachine.settings = property(_machine_settings)  # type: ignore[assignment]  # read at run time
