"""End to end: a background child finishes → its parent receives baton's notification.

Real opencode, baton serve, the fake provider. Each run: a parent's model calls
``baton_task``; the child answers; the time from the child's answer completing to the
parent's notification message being stored is read from opencode's own timestamps (one
clock). Also counts notification messages per task: it must be exactly one.

    .venv/bin/python bench/notify.py [--runs 20] [--child-delay 0]

``--child-delay`` is how long the child takes to answer: 0 (an instant child, the hardest case,
ending right after the parent's own prompt) by default; issue 10's target is ≤ 300 ms median in
every case.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
from pathlib import Path

from baton.testing.baton_process import BatonProcess
from baton.testing.fake_provider import Answer, FakeProvider, ToolCall
from baton.testing.opencode import OpencodeServer
from baton.testing.waiting import wait_until


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--child-delay", type=float, default=0.0, help="seconds the child takes to answer")
    args = parser.parse_args()
    settings = {"categories": {"quick": {"model": "fake/backup"}}}
    latencies: list[float] = []
    notices: list[int] = []
    with FakeProvider() as provider, OpencodeServer(provider.url, ("primary", "backup")) as opencode, \
            BatonProcess(opencode.url, Path(tempfile.mkdtemp(prefix="baton-bench-")), settings=settings) as baton:
        for run in range(args.runs):
            call = {"description": f"bench {run}", "prompt": "answer briefly", "category": "quick",
                    "run_in_background": True}
            provider.script("primary", ToolCall("baton_task", call), Answer("waiting"), Answer("woken"))
            provider.script("backup", Answer(f"child answer {run}", delay=args.child_delay))
            parent = opencode.create_session(f"parent {run}")["id"]
            opencode.prompt_async(parent, "delegate")
            task = wait_until(lambda r=run: next((t for t in baton.task_rows() if t["description"] == f"bench {r}"
                                                  and t["status"] == "completed"), None),
                              30, "the task's end", every=0.02)
            notice = wait_until(lambda p=parent, t=task: [m for m in opencode.messages(p) if m["info"]["role"] == "user"
                                                          and any(t["id"] in x.get("text", "") for x in m["parts"])],
                                30, "the parent's notice", every=0.02)
            child = opencode.messages(task["session_id"])
            done = max(m["info"]["time"].get("completed", 0) for m in child if m["info"]["role"] == "assistant")
            latencies.append(notice[0]["info"]["time"]["created"] - done)
            opencode.wait_idle(parent)
            notices.append(len([m for m in opencode.messages(parent) if m["info"]["role"] == "user"
                                and any(task["id"] in x.get("text", "") for x in m["parts"])]))
    print(f"machine: {platform.machine()} · {os.cpu_count()} cores · Python {platform.python_version()}")
    print(f"tasks: {len(latencies)} · child answers after {args.child_delay:g} s · "
          f"notification messages per task: {sorted(set(notices))}")
    print(f"child answer completed → parent notified: median {statistics.median(latencies):.0f} ms, "
          f"max {max(latencies):.0f} ms (target ≤ 300 ms)")


if __name__ == "__main__":
    main()
