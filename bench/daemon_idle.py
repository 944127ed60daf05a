"""An idle ``baton serve``: resident memory and CPU with sessions tracked and nothing happening.

Real opencode, baton serve, the fake provider. ``--sessions`` sessions each get one prompt (answered
at once), so baton tracks them; once they are all idle and listed in ``/status``, baton is left
alone for ``--settle`` seconds, then measured over ``--window`` seconds: resident memory from
``/proc/PID/status`` (VmRSS, and the peak VmHWM) and the CPU share of one core from
``/proc/PID/stat`` (utime + stime over the window's wall time). Also the resident memory of a bare
``import baton.daemon``, which is most of what an idle serve holds. Issue 10 §5's targets:
≤ 50 MB and ≤ 0.5 % of a core with 20 sessions.

    .venv/bin/python bench/daemon_idle.py [--sessions 20] [--settle 10] [--window 60]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from baton.testing.baton_process import BatonProcess
from baton.testing.fake_provider import Answer, FakeProvider
from baton.testing.opencode import OpencodeServer
from baton.testing.waiting import wait_until

TARGET_MB = 50.0
TARGET_CPU_PERCENT = 0.5
_IMPORT_RSS = "import baton.daemon, resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of ``pid``, in MB (MiB, as /proc counts kB)."""
    figures: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            figures[key] = int(value.split()[0]) / 1024
    return figures


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (its own threads, not its children), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": field 3 is fields[0]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def import_rss_mb() -> float:
    """Peak resident memory of a fresh interpreter that only imports ``baton.daemon``."""
    done = subprocess.run([sys.executable, "-c", _IMPORT_RSS], capture_output=True, text=True, check=True)
    return int(done.stdout.strip()) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--settle", type=float, default=10.0, help="seconds left alone before measuring")
    parser.add_argument("--window", type=float, default=60.0, help="seconds the CPU share is measured over")
    args = parser.parse_args()
    with FakeProvider() as provider, OpencodeServer(provider.url, ("primary", "backup")) as opencode, \
            BatonProcess(opencode.url, Path(tempfile.mkdtemp(prefix="baton-bench-")), settings={}) as baton:
        provider.script("primary", *(Answer(f"hello {n}") for n in range(args.sessions)))
        sessions = [opencode.create_session(f"idle {n}")["id"] for n in range(args.sessions)]
        for session in sessions:
            opencode.prompt_async(session, "say hello")
        for session in sessions:
            wait_until(lambda s=session: any(m["info"]["role"] == "assistant" and m["info"]["time"].get("completed")
                                             for m in opencode.messages(s)), 60, "a session's answer", every=0.02)
        wait_until(lambda: not opencode.session_status(), 60, "every session idle", every=0.02)
        wanted = set(sessions)
        wait_until(lambda: wanted <= {s["id"] for s in baton.status()["sessions"]}, 60,
                   "every session tracked by baton", every=0.02)
        time.sleep(args.settle)
        before = memory_mb(baton.pid)
        cpu_start, wall_start = cpu_seconds(baton.pid), time.monotonic()
        time.sleep(args.window)
        cpu_used, wall = cpu_seconds(baton.pid) - cpu_start, time.monotonic() - wall_start
        after = memory_mb(baton.pid)
        still = len({s["id"] for s in baton.status()["sessions"]} & wanted)
    cpu_percent = 100.0 * cpu_used / wall
    rss = max(before["VmRSS"], after["VmRSS"])
    print(f"machine: {platform.machine()} · {os.cpu_count()} cores · Python {platform.python_version()}")
    print(f"sessions tracked: {len(wanted)} (still {still} after the window) · "
          f"settle {args.settle:g} s · window {wall:.1f} s")
    print(f"import baton.daemon alone: {import_rss_mb():.1f} MB resident")
    print(f"idle serve resident memory: {rss:.1f} MB (peak {after['VmHWM']:.1f} MB; "
          f"{before['VmRSS']:.1f} → {after['VmRSS']:.1f} over the window) (target ≤ {TARGET_MB:g} MB)")
    print(f"idle serve CPU: {cpu_percent:.2f} % of one core ({cpu_used * 1000:.0f} ms in {wall:.1f} s) "
          f"(target ≤ {TARGET_CPU_PERCENT:g} %)")


if __name__ == "__main__":
    main()
