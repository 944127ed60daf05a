"""The park path: from the provider's reset time to the resumed request.

Real opencode, baton serve as a subprocess, the fake provider. Each run: the primary answers 429
"Please try again in 3s." and the only fallback 429 with a reset minutes away, so baton parks the
turn until the primary's reset. The figure is the time from that reset (the ``until`` baton
journaled, learnt from the provider's words) to the fake provider receiving the resumed request.

    .venv/bin/python bench/park.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from baton.testing.baton_process import BatonProcess
from baton.testing.fake_provider import Answer, FakeProvider, Refuse
from baton.testing.opencode import OpencodeServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="baton-bench-"))
    settings = {"agents": {"build": {"fallback_models": ["fake/backup"]}}}
    lags: list[float] = []
    decide: list[float] = []
    with FakeProvider() as provider, OpencodeServer(provider.url, ("primary", "backup")) as opencode, \
            BatonProcess(opencode.url, work / "state", settings=settings) as baton:
        for run in range(args.runs):
            provider.script("primary", Refuse(429, "Rate limit reached. Please try again in 3s."), Answer("back"))
            provider.script("backup", Refuse(429, "Rate limit reached. Please try again in 10 minutes."))
            provider.clear_requests()
            session = opencode.create_session(f"park {run}")["id"]
            opencode.prompt_async(session, "hello")
            deadline = time.monotonic() + 30
            parked: list[dict[str, object]] = []
            while not parked and time.monotonic() < deadline:
                parked = [e for e in baton.journal() if e["session"] == session and e["kind"] == "parked"]
                time.sleep(0.05)
            if not parked:
                raise SystemExit(f"run {run}: no park within 30 s\n{baton.log_tail()}")
            until = float(parked[0]["data"]["until"])  # type: ignore[index]
            _, resumed = provider.wait_for_requests("primary", 2, timeout=30)
            lags.append((resumed.wall - until) * 1000)
            journal = {e["kind"]: e["ts"] for e in baton.journal() if e["session"] == session}
            decide.append((float(journal["resumed"]) - until) * 1000)
            opencode.wait_idle(session)
            # The next run must meet limited models again, not this run's cooldowns.
            baton.stop()
            (work / "state" / "baton.db").unlink(missing_ok=True)
            baton.start()
    print(f"machine: {platform.machine()} · {os.cpu_count()} cores · Python {platform.python_version()}")
    print(f"parks measured: {len(lags)}")
    print(f"provider's reset time → baton's re-send decision (journal): median {statistics.median(decide):.1f} ms")
    print(f"provider's reset time → resumed request: median {statistics.median(lags):.1f} ms, "
          f"max {max(lags):.1f} ms, min {min(lags):.1f} ms (target ≤ 100 ms)")


if __name__ == "__main__":
    main()
