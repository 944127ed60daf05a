"""Fault class "disk full": baton's state dir on a 1 MB tmpfs filled to the brim while it runs.

baton must stay up, keep falling back, say on ``/healthz`` (with the token) that its store is in
trouble, and recover once space is back: the decisions it took meanwhile reach the journal.
Without the right to mount, the state files get a file-size limit instead (``prlimit --fsize``).
"""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_helpers import (
    CHAIN,
    FaultTable,
    Trials,
    _opencode,  # noqa: F401 - the fixture
    _provider,  # noqa: F401 - the fixture
    check_fallback,
    kinds,
    start_fallback,
    wait_until,
)

from baton.testing.baton_process import BatonProcess
from baton.testing.fake_provider import FakeProvider
from baton.testing.opencode import OpencodeServer

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def tiny_disk(path: Path) -> Iterator[bool]:
    """A 1 MB tmpfs at ``path`` (True), or nothing mounted (False) when mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)],
                          capture_output=True, text=True, check=False)
    try:
        yield done.returncode == 0
    finally:
        if done.returncode == 0:
            subprocess.run(["umount", str(path)], check=False, capture_output=True)
            with contextlib.suppress(OSError):
                path.rmdir()
            if path.is_mount():
                subprocess.run(["umount", "-l", str(path)], check=True)


def fill(filler: Path) -> int:
    """Write ``filler`` until the file system refuses even one more byte; its size."""
    with filler.open("wb", buffering=0) as fh:
        for size in (1 << 16, 1 << 12, 1):
            block = b"\0" * size
            while True:
                try:
                    fh.write(block)
                except OSError as exc:
                    if exc.errno not in (errno.ENOSPC, errno.EFBIG):
                        raise
                    break
    return filler.stat().st_size


def limit_file_size(pid: int, state: Path) -> None:
    """No file of ``pid`` may grow past the state files' current sizes (writes beyond get EFBIG)."""
    largest = max(p.stat().st_size for p in state.iterdir() if p.is_file())
    subprocess.run(["prlimit", "--pid", str(pid), f"--fsize={largest}:"], check=True)  # the soft limit only


def unlimit_file_size(pid: int) -> None:
    subprocess.run(["prlimit", "--pid", str(pid), "--fsize=unlimited:"], check=True)


@pytest.mark.timeout(180)
def test_disk_full(fault_table: FaultTable, opencode: OpencodeServer, provider: FakeProvider, tmp_path: Path) -> None:
    state = tmp_path / "state"
    with tiny_disk(state) as mounted:
        log = tmp_path / "baton.log"
        log.touch()
        (state / "baton.log").symlink_to(log)  # the harness's log of baton's stderr: not on the tiny disk
        baton = BatonProcess(opencode.url, state, settings=CHAIN).start()
        try:

            def trial(i: int) -> str:
                filler = state / "filler"
                if mounted:
                    how = f"tmpfs filled with {fill(filler)} bytes"
                else:
                    limit_file_size(baton.pid, state)
                    how = "prlimit --fsize at the state files' sizes"
                full = f"<disk-full-{i}>"
                full_session = start_fallback(opencode, provider, full)
                check_fallback(opencode, provider, None, full_session, full)
                assert baton.proc is not None and baton.proc.poll() is None, f"{full}: baton exited\n{baton.log_tail()}"
                problem = wait_until(lambda: baton.healthz()[1].get("store"), 10, f"{full}: /healthz naming the store")
                if mounted:
                    filler.unlink()
                else:
                    unlimit_file_size(baton.pid)
                wait_until(lambda: baton.healthz()[1].get("store", "absent") is None, 10, f"{full}: store healed")
                wait_until(lambda: "resent" in kinds(baton, full_session), 10, f"{full}: journal written on heal")
                after = f"<disk-back-{i}>"
                check_fallback(opencode, provider, baton, start_fallback(opencode, provider, after), after)
                return f"{how}; /healthz store: {problem}"

            trials = Trials("disk full")
            for i in range(2):
                trials.run(i, trial)
            assert baton.proc is not None and baton.proc.poll() is None, "baton exited"
        finally:
            baton.stop()
    print(f"\ndisk full: {trials.notes}")
    fault_table.record("disk full (state dir)", trials.runs, trials.survived, trials.detail())

