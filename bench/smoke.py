"""Every benchmark in its smoke mode: small enough for CI, real all the same.

Each benchmark runs as its own process with the fewest runs that still exercise its whole path
(real opencode, baton serve, PostgreSQL where it uses them). A smoke run asserts only that the
benchmark completes and prints its figures — the figures of so small a run are not reported.
Exit status 1 names every benchmark that failed.

    .venv/bin/python bench/smoke.py
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SMOKE: dict[str, list[str]] = {
    "reaction.py": ["--runs", "2"],
    "notify.py": ["--runs", "1"],
    "park.py": ["--runs", "1"],
    "mcp_call_limit.py": ["--seconds", "3"],
    "scheduler.py": ["--tasks", "200"],
    "throughput.py": ["--events", "5000", "--rounds", "1"],
    "fleet_cooldown.py": ["--samples", "5"],
    "fleet_throughput.py": ["--tasks", "20"],
    "fleet_failover.py": ["--runs", "1", "--lease-seconds", "2"],
    "daemon_idle.py": ["--sessions", "3", "--settle", "1", "--window", "3"],
    "compare.py": ["--runs", "1", "--cold-runs", "1", "--npm-timeout", "90"],
}
TIMEOUT_S = 300
_FIGURE = re.compile(r"\d")


def main() -> int:
    missing = sorted(p.name for p in BENCH.glob("*.py") if p.name not in SMOKE and p.name != "smoke.py")
    if missing:
        print(f"benchmarks without a smoke mode here: {', '.join(missing)}")
        return 1
    failed: list[str] = []
    for script, args in SMOKE.items():
        started = time.monotonic()
        try:
            done = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                                  timeout=TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            failed.append(f"{script}: no result within {TIMEOUT_S} s")
            continue
        took = time.monotonic() - started
        figures = [line for line in done.stdout.splitlines()
                   if _FIGURE.search(line) and not line.startswith("machine")]
        if done.returncode != 0 or not figures:
            failed.append(f"{script}: exit {done.returncode}, {len(figures)} figure lines\n{done.stderr[-2000:]}")
            continue
        print(f"ok   {script:<20} {took:5.1f} s  {figures[-1].strip()[:110]}")
    for failure in failed:
        print(f"FAIL {failure}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
