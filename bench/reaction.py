"""Reaction time of a real fallback: opencode's retry status → first request for the fallback model.

Real opencode, baton serve as a subprocess, the fake provider; N sessions each hit a
cooling-down primary. For each fallback it prints where the time went (baton's decision, the
abort + prompt round trips, opencode's own start of the new run) and the median overall.

    .venv/bin/python bench/reaction.py [--runs 20]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from baton.testing.baton_process import BatonProcess
from baton.testing.fake_provider import Answer, FakeProvider, Refuse
from baton.testing.opencode import OpencodeServer
from baton.testing.recorder import EventRecorder

REFUSAL = "All credentials for model primary are cooling down"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="baton-bench-"))
    # cooldown 0: every session meets the failing primary itself instead of being rerouted.
    settings = {"agents": {"build": {"fallback_models": ["fake/backup"]}}, "runtime_fallback": {"cooldown_seconds": 0}}
    totals: list[float] = []
    decide: list[float] = []
    send: list[float] = []
    with FakeProvider() as provider, OpencodeServer(provider.url, ("primary", "backup")) as opencode, \
            BatonProcess(opencode.url, work / "state", settings=settings) as baton:
        provider.script("primary", Refuse(429, REFUSAL))
        provider.script("backup", Answer("ok"))
        for run in range(args.runs):
            provider.clear_requests()
            wall0 = time.time()
            with EventRecorder(opencode.url) as events:
                session = opencode.create_session(f"bench {run}")["id"]
                opencode.prompt_async(session, "hello")
                def is_retry(e: dict[str, Any], s: str = session) -> bool:
                    return bool(e.get("type") == "session.status" and e["properties"].get("sessionID") == s
                                and e["properties"]["status"].get("type") == "retry")

                retry = events.wait_for(is_retry, 30)
                (request,) = provider.wait_for_requests("backup", 1, timeout=30)
                events.wait_type("session.idle", session, 30)
            retry_at = wall0 + retry["_t"]
            journal = {e["kind"]: e["ts"] for e in baton.journal() if e["session"] == session}
            totals.append((request.wall - retry_at) * 1000)
            decide.append((journal["switch"] - retry_at) * 1000)
            send.append((journal["resent"] - journal["switch"]) * 1000)
            opencode.wait_idle(session)
    print(f"machine: {platform.machine()} · {os.cpu_count()} cores · Python {platform.python_version()}")
    print(f"fallbacks measured: {len(totals)}")
    print(f"retry status → baton's decision (journal): median {statistics.median(decide):.1f} ms "
          "(clocks of two processes; ±1 ms)")
    print(f"decision → prompt accepted (abort + prompt_async): median {statistics.median(send):.1f} ms")
    print(f"retry status → first request for the fallback model: median {statistics.median(totals):.1f} ms, "
          f"p90 {sorted(totals)[math.ceil(len(totals) * 0.9) - 1]:.1f} ms, min {min(totals):.1f} ms "
          "(target ≤ 60 ms)")


if __name__ == "__main__":
    main()
