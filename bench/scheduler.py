"""The task scheduler alone: N tasks over 20 keys, launch → queued → starting → running → completed.

A fake host answers every action at once (child created, prompt accepted, the child answers
and goes idle, notifications delivered) and fires timers on a fake clock, so the figure is
the pure decision core's cost. Prints tasks/s, transitions/s and peak memory for three sizes,
so that linear memory shows as a constant bytes-per-task figure.

    .venv/bin/python bench/scheduler.py [--tasks 10000]
"""

from __future__ import annotations

import argparse
import heapq
import json
import platform
import tempfile
import time
import tracemalloc
from collections import deque
from pathlib import Path
from typing import Any

from baton.actions import CancelTimer, Schedule
from baton.config import load_config
from baton.cooldowns import Cooldowns
from baton.events import AssistantMessage, PartUpdated, SessionIdle, TimerFired
from baton.tasks.actions import AbortChild, CreateChild, Deliver, PollStatus, PromptChild, SaveTask
from baton.tasks.events import AbortDone, ChildCreated, DeliveryOutcome, DeliveryResult, PromptAccepted, StatusPolled
from baton.tasks.ids import IdSource
from baton.tasks.launch import LaunchRequest, LaunchResult
from baton.tasks.scheduler import Scheduler

KEYS = 20
PARENTS = 100


def scheduler(tmp: Path) -> Scheduler:
    settings = {
        "categories": {f"c{k}": {"model": f"prov{k % 4}/model-{k}"} for k in range(KEYS)},
        # The spawn limit is not what is measured here: every task is launched up front.
        "background_task": {"maxDescendants": 1_000_000},
    }
    path = tmp / "bench.json"
    path.write_text(json.dumps(settings))
    return Scheduler(load_config(None, explicit=path, env={}, home=tmp), Cooldowns(), ids=IdSource(7))


class FakeHost:
    """Answers every action immediately; the clock only moves when nothing else is left to do."""

    def __init__(self, sched: Scheduler) -> None:
        self.sched = sched
        self.now = 1_800_000_000.0
        self.queue: deque[Any] = deque()
        self.timers: list[tuple[float, str]] = []
        self.live_timers: dict[str, float] = {}
        self.saves = 0
        self.opencode_ids = IdSource(11)

    def take(self, actions: list[Any]) -> None:
        self.queue.extend(actions)

    def feed(self, event: Any) -> None:
        self.take(self.sched.handle(event, self.now))

    def run(self) -> None:
        while self.queue or self.live_timers:
            while self.queue:
                self.act(self.queue.popleft())
            if self.live_timers:
                at, key = heapq.heappop(self.timers)
                if self.live_timers.get(key) != at:
                    continue
                del self.live_timers[key]
                self.now = max(self.now, at)
                self.feed(TimerFired(key))
                if not any(self.sched.is_live(t) for t in self.sched.index.tasks) and key == "tasks:tick":
                    continue

    def act(self, action: Any) -> None:
        if isinstance(action, SaveTask):
            self.saves += 1
        elif isinstance(action, CreateChild):
            self.feed(ChildCreated(action.task_id, "ses_" + action.task_id))
        elif isinstance(action, PromptChild):
            self.feed(PromptAccepted(action.task_id, action.attempt))
            self.answer(action)
        elif isinstance(action, Deliver):
            self.feed(DeliveryResult(action.parent_session_id, action.message_id, DeliveryOutcome.DELIVERED))
        elif isinstance(action, PollStatus):
            self.feed(StatusPolled({}))
        elif isinstance(action, AbortChild):
            self.feed(AbortDone(action.task_id, True))
        elif isinstance(action, Schedule):
            self.live_timers[action.key] = action.at
            heapq.heappush(self.timers, (action.at, action.key))
        elif isinstance(action, CancelTimer):
            self.live_timers.pop(action.key, None)

    def answer(self, prompt: PromptChild) -> None:
        sid = prompt.session_id
        mid = self.opencode_ids.ascending("msg", self.now + 0.001)
        part = {"id": "prt_" + mid[4:], "sessionID": sid, "messageID": mid, "type": "text", "text": "done"}
        self.feed(PartUpdated(sid, mid, part["id"], "text", "done", part))
        self.feed(AssistantMessage(sid, mid, prompt.message_id, prompt.model, prompt.agent, completed=True,
                                   finish="stop"))
        self.feed(SessionIdle(sid))


def run(n: int, tmp: Path, *, trace: bool) -> tuple[float, int, int]:
    """(seconds, transitions, peak bytes) for ``n`` tasks from launch to delivered notification."""
    if trace:
        tracemalloc.start()
    sched = scheduler(tmp)
    host = FakeHost(sched)
    start = time.perf_counter()
    for i in range(n):
        parent = f"ses_parent{i % PARENTS}"
        request = LaunchRequest(parent_session_id=parent, description=f"job {i}", prompt=f"do job {i}",
                                category=f"c{i % KEYS}", root_session_id=parent, parent_agent="build",
                                parent_model="prov0/model-0")
        result, actions = sched.launch(request, host.now)
        assert isinstance(result, LaunchResult), result
        host.take(actions)
    host.run()
    elapsed = time.perf_counter() - start
    peak = 0
    if trace:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    ended = sum(1 for t in sched.index.tasks.values() if t.status.value == "completed")
    assert ended == n, f"{ended} of {n} completed"
    return elapsed, n * 4, peak  # launch→queued, →starting, →running, →completed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000)
    args = parser.parse_args()
    print(f"machine: {platform.machine()} · Python {platform.python_version()} · {KEYS} keys · {PARENTS} parents")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (args.tasks // 4, args.tasks // 2, args.tasks):
            elapsed, transitions, _ = run(n, Path(tmp), trace=False)
            _, _, peak = run(n, Path(tmp), trace=True)  # memory in a second, traced run
            print(f"{n:>6} tasks: {n / elapsed:>9,.0f} tasks/s · {transitions / elapsed:>9,.0f} transitions/s · "
                  f"peak {peak / 2**20:6.1f} MiB ({peak / n:,.0f} B/task)")
    print("target: ≥ 20,000 transitions/s at 10,000 tasks; memory linear (constant B/task)")


if __name__ == "__main__":
    main()
