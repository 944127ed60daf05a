"""A driver for the pure task scheduler: a fake clock, opencode-shaped events, action filters.

``Sim`` plays opencode and the engine by hand; helpers such as :meth:`Sim.start` and
:meth:`Sim.answer` run the usual exchanges so each test states only what it is about.
"""

from __future__ import annotations

from typing import Any, TypeVar

from baton.actions import Note, Schedule, Toast
from baton.config import Config
from baton.cooldowns import Cooldowns
from baton.events import (
    AssistantMessage,
    PartDelta,
    PartUpdated,
    SessionDeleted,
    SessionIdle,
    SessionStatus,
    StatusType,
    TimerFired,
    UserMessage,
)
from baton.tasks import KnownAgent, LaunchRequest, LaunchResult, Scheduler, Task, ToolError
from baton.tasks.actions import (
    AbortChild,
    CreateChild,
    Deliver,
    LookupSession,
    PollStatus,
    PromptChild,
    SaveOutbox,
    SaveTask,
    TaskAction,
)
from baton.tasks.events import (
    AbortDone,
    ChildCreated,
    DeliveryOutcome,
    DeliveryResult,
    PromptAccepted,
    SchedulerEvent,
    StatusPolled,
)
from baton.tasks.ids import IdSource
from baton.tasks.lifecycle import TICK_KEY
from baton.tasks.model import OutboxRow
from baton.tasks.notify import deliver_timer

T0 = 1_800_000_000.0
P = "ses_parent"
ROOT = "ses_root"
AGENTS = (
    KnownAgent("explore", "subagent"),
    KnownAgent("oracle", "subagent"),
    KnownAgent("build", "primary"),
    KnownAgent("general", "subagent"),
)
A = TypeVar("A")


def make_config(settings: dict[str, Any] | None = None) -> Config:
    return Config.model_validate(settings or {})


def of(actions: list[TaskAction], kind: type[A]) -> list[A]:
    return [a for a in actions if isinstance(a, kind)]


class Sim:
    """One scheduler plus the durable rows the engine would have written from its saves."""

    def __init__(self, settings: dict[str, Any] | None = None, *, cooldowns: Cooldowns | None = None,
                 seed: int = 1) -> None:
        self.config = make_config(settings)
        self.cooldowns = cooldowns or Cooldowns()
        self.now = T0
        self.seed = seed
        self.sched = Scheduler(self.config, self.cooldowns, ids=IdSource(seed))
        self.log: list[TaskAction] = []
        self.rows: dict[str, dict[str, Any]] = {}
        self.outbox: dict[str, dict[str, Any]] = {}
        self._opencode_ids = IdSource(seed + 1000)
        self._sessions = 0

    # --- plumbing --------------------------------------------------------------------------

    def _record(self, actions: list[TaskAction]) -> list[TaskAction]:
        for action in actions:
            if isinstance(action, SaveTask):
                self.rows[action.task_id] = action.row
            elif isinstance(action, SaveOutbox):
                for row in action.rows:
                    self.outbox[row["id"]] = row
        self.log.extend(actions)
        return actions

    def feed(self, event: SchedulerEvent) -> list[TaskAction]:
        return self._record(self.sched.handle(event, self.now))

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def restart(self) -> list[TaskAction]:
        """A new scheduler from the saved rows only (as after ``kill -9``), resumed."""
        tasks = [Task.from_row(row) for row in self.rows.values()]
        outbox = [OutboxRow.from_row(row) for row in self.outbox.values()]
        self.seed += 7
        self.sched = Scheduler(self.config, self.cooldowns, tasks, outbox, ids=IdSource(self.seed))
        return self._record(self.sched.resume(self.now))

    def next_id(self, prefix: str = "msg") -> str:
        """An opencode id: opencode creates its messages at least a millisecond after baton's prompt."""
        return self._opencode_ids.ascending(prefix, self.now + 0.001)

    # --- tool calls ------------------------------------------------------------------------

    def request(self, **kw: Any) -> LaunchRequest:
        fields: dict[str, Any] = {
            "parent_session_id": P, "description": "look around", "prompt": "Find the config loader.",
            "subagent_type": "explore", "root_session_id": ROOT, "depth_of_parent": 0, "known_agents": AGENTS,
            "parent_agent": "build", "parent_model": "prov/parent-model",
        }
        if "category" in kw and "subagent_type" not in kw:
            fields.pop("subagent_type")
        fields.update(kw)
        return LaunchRequest(**fields)

    def launch_raw(self, **kw: Any) -> tuple[LaunchResult | ToolError, list[TaskAction]]:
        result, actions = self.sched.launch(self.request(**kw), self.now)
        self._record(actions)
        return result, actions

    def launch(self, **kw: Any) -> Task:
        result, _ = self.launch_raw(**kw)
        assert isinstance(result, LaunchResult), result
        task = self.sched.task(result.task_id)
        assert task is not None
        return task

    # --- engine results --------------------------------------------------------------------

    def created(self, task: Task, session: str | None = None) -> list[TaskAction]:
        self._sessions += 1
        return self.feed(ChildCreated(task.id, session or f"ses_child{self._sessions}"))

    def accepted(self, task: Task) -> list[TaskAction]:
        return self.feed(PromptAccepted(task.id, task.attempt))

    def start(self, task: Task, session: str | None = None) -> list[TaskAction]:
        """Child created and prompt accepted: the task runs."""
        out = self.created(task, session)
        return out + self.accepted(task)

    def delivered(self, deliver: Deliver, outcome: DeliveryOutcome = DeliveryOutcome.DELIVERED) -> list[TaskAction]:
        return self.feed(DeliveryResult(deliver.parent_session_id, deliver.message_id, outcome))

    def polled(self, statuses: dict[str, StatusType] | None) -> list[TaskAction]:
        if statuses is None:
            return self.feed(StatusPolled(None))
        return self.feed(StatusPolled({sid: SessionStatus(sid, kind) for sid, kind in statuses.items()}))

    def abort_done(self, task: Task, ok: bool = True) -> list[TaskAction]:
        return self.feed(AbortDone(task.id, ok))

    def fire(self, key: str) -> list[TaskAction]:
        return self.feed(TimerFired(key))

    def tick(self) -> list[TaskAction]:
        return self.fire(TICK_KEY)

    def fire_delivery(self, parent: str = P) -> list[TaskAction]:
        return self.fire(deliver_timer(parent))

    # --- opencode events -------------------------------------------------------------------

    def status(self, sid: str, kind: StatusType, message: str = "") -> list[TaskAction]:
        return self.feed(SessionStatus(sid, kind, message=message))

    def idle(self, sid: str) -> list[TaskAction]:
        return self.feed(SessionIdle(sid))

    def text(self, sid: str, mid: str, text: str = "The loader is in config.py.") -> list[TaskAction]:
        pid = self.next_id("prt")
        part = {"id": pid, "sessionID": sid, "messageID": mid, "type": "text", "text": ""}
        out = self.feed(PartUpdated(sid, mid, pid, "text", "", part))
        return out + self.feed(PartDelta(sid, mid, pid, "text", text))

    def assistant(self, task: Task, mid: str, **kw: Any) -> list[TaskAction]:
        assert task.session_id is not None
        kw.setdefault("model", task.model)
        return self.feed(AssistantMessage(task.session_id, mid, task.anchor_message_id, kw.pop("model"),
                                          task.agent, **kw))

    def answer(self, task: Task, text: str = "The loader is in config.py.", *, idle: bool = True) -> list[TaskAction]:
        """The child writes a visible answer and (by default) goes idle."""
        assert task.session_id is not None
        mid = self.next_id()
        out = self.assistant(task, mid)
        out += self.text(task.session_id, mid, text)
        out += self.assistant(task, mid, completed=True, finish="stop")
        if idle:
            out += self.idle(task.session_id)
        return out

    def tool(self, task: Task, tool: str = "read", inp: dict[str, Any] | None = None) -> list[TaskAction]:
        assert task.session_id is not None
        mid, pid = self.next_id(), self.next_id("prt")
        part = {"id": pid, "sessionID": task.session_id, "messageID": mid, "type": "tool", "tool": tool,
                "state": {"status": "completed", "input": inp if inp is not None else {"path": pid}}}
        return self.feed(PartUpdated(task.session_id, mid, pid, "tool", None, part))

    def user(self, sid: str, mid: str | None = None) -> list[TaskAction]:
        return self.feed(UserMessage(sid, mid or self.next_id(), "prov/parent-model", "build"))

    def deleted(self, sid: str) -> list[TaskAction]:
        return self.feed(SessionDeleted(sid))

    def parent_idle_and_flush(self, parent: str = P) -> list[Deliver]:
        """P goes idle and the coalescing window passes: the deliveries that go out."""
        out = self.status(parent, StatusType.IDLE)
        self.advance(0.06)
        out += self.fire_delivery(parent)
        return of(out, Deliver)


__all__ = [
    "AGENTS", "P", "ROOT", "T0", "AbortChild", "CreateChild", "Deliver", "LookupSession", "Note", "PollStatus",
    "PromptChild", "SaveOutbox", "SaveTask", "Schedule", "Sim", "Toast", "make_config", "of",
]
