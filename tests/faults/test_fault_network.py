"""Fault classes on the wire between baton and opencode, through the fault proxy: a silent peer,
a stalled stream, and a misbehaving event stream (duplicated, reordered, truncated events)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_helpers import (
    CHAIN,
    FaultTable,
    Trials,
    _opencode,  # noqa: F401 - the fixture
    _provider,  # noqa: F401 - the fixture
    attached,
    check_fallback,
    detached,
    start_fallback,
    wait_until,
)

from baton.testing.baton_process import BatonProcess
from baton.testing.fake_provider import FakeProvider
from baton.testing.fault_proxy import FaultProxy
from baton.testing.opencode import OpencodeServer

pytestmark = pytest.mark.integration

REATTACH_S = 2.0
SILENT_S = 3.0
HEARTBEAT_S = 15.0  # the smallest --heartbeat-timeout baton accepts (opencode beats every 10 s)


@pytest.fixture(name="proxy")
def _proxy(opencode: OpencodeServer) -> Iterator[FaultProxy]:
    with FaultProxy(opencode.port) as proxy:
        yield proxy


def reattach_after_release(baton: BatonProcess, proxy: FaultProxy, connects: int, what: str) -> float:
    """Release the proxy; seconds until baton is attached again (a new connection), at most REATTACH_S."""
    proxy.release()
    released = time.monotonic()
    wait_until(lambda: attached(baton, connects), 15, f"{what}: re-attach")
    latency = time.monotonic() - released
    assert latency <= REATTACH_S, f"{what}: re-attached {latency:.2f}s after release"
    return latency


@pytest.mark.timeout(180)
def test_silent_peer(fault_table: FaultTable, proxy: FaultProxy, tmp_path: Path) -> None:
    """opencode's connections reset, then new ones accepted but never answered for 3 s: baton is
    detached meanwhile and attached again within 2 s of the release."""
    with BatonProcess(proxy.url, tmp_path / "state", settings=CHAIN) as baton:

        def trial(i: int) -> str:
            connects = baton.status()["connects"]
            held = proxy.stats["held"]
            proxy.hold(drop_existing=True)
            silent_from = time.monotonic()
            wait_until(lambda: detached(baton), SILENT_S, f"silent {i}: detach")
            proxy.wait_stat("held", held + 1, SILENT_S)  # baton tried again and met silence
            time.sleep(max(0.0, SILENT_S - (time.monotonic() - silent_from)))  # the fault lasts 3 s
            return f"{reattach_after_release(baton, proxy, connects, f'silent {i}'):.2f}s"

        trials = Trials("silent peer")
        for i in range(5):
            trials.run(i, trial)
    print(f"\nsilent peer: re-attach after release {trials.notes}")
    fault_table.record("silent peer (reset, then silent 3 s)", trials.runs, trials.survived, trials.detail())


@pytest.mark.timeout(240)
def test_stalled_stream(fault_table: FaultTable, proxy: FaultProxy, tmp_path: Path) -> None:
    """With --heartbeat-timeout 15: baton stays attached while opencode is idle (it beats every 10 s),
    detaches when the open stream goes silent past the timeout, and is back within 2 s of the release."""
    args = ["--heartbeat-timeout", f"{HEARTBEAT_S:g}"]
    with BatonProcess(proxy.url, tmp_path / "state", settings=CHAIN, extra_args=args) as baton:
        quiet = Trials("idle, no false detach")
        stalled = Trials("stalled stream")

        def idle(i: int) -> None:
            """20 s of an idle opencode (two beats at most): no detach, no reconnect."""
            connects = baton.status()["connects"]
            lapses = 0
            deadline = time.monotonic() + 20.0
            while time.monotonic() < deadline:
                lapses += not attached(baton, connects - 1)
                time.sleep(0.1)
            again = baton.status()["connects"] - connects
            assert again == 0 and lapses == 0, (
                f"idle {i}: {again} reconnects, {lapses} polls detached in 20 s while opencode was idle "
                f"(it beats every 10 s)")

        def stall(i: int) -> str:
            connects = baton.status()["connects"]
            proxy.hold()  # the open stream stops delivering; new connections are never answered
            held_at = time.monotonic()
            wait_until(lambda: detached(baton), HEARTBEAT_S + 3.0, f"stall {i}: detach")
            after = time.monotonic() - held_at
            _, health = baton.healthz()
            assert after >= HEARTBEAT_S - 0.5, f"stall {i}: detached after {after:.1f}s, before the timeout"
            assert "heartbeat" in str(health.get("reason")), f"stall {i}: reason {health.get('reason')!r}"
            return f"detached after {after:.1f}s, back {reattach_after_release(baton, proxy, connects, 'stall'):.2f}s"

        for i in range(2):
            stalled.run(i, stall)
        quiet.run(0, idle)
    print(f"\nstalled stream: {stalled.notes}")
    fault_table.record("stalled stream (past the heartbeat timeout)", stalled.runs, stalled.survived,
                       stalled.detail())
    fault_table.record("idle opencode, --heartbeat-timeout 15: no false detach", quiet.runs, quiet.survived,
                       quiet.detail())


STREAM_FAULTS: list[tuple[str, str, str | None]] = [
    ("stream: duplicated events", "duplicate", None),
    ("stream: duplicated events", "duplicate", '"session.status"'),
    ("stream: duplicated events", "duplicate", '"message.updated"'),
    ("stream: reordered events", "reorder", None),
    ("stream: reordered events", "reorder", '"session.status"'),
    ("stream: reordered events", "reorder", '"message.'),
    ("stream: truncated mid-event", "truncate", '"type":"retry"'),
    ("stream: truncated mid-event", "truncate", '"modelID":"backup"'),
    ("stream: truncated mid-event", "truncate", '"type":"session.idle"'),
]


@pytest.mark.timeout(240)
def test_stream_faults(
    fault_table: FaultTable, proxy: FaultProxy, provider: FakeProvider, opencode: OpencodeServer, tmp_path: Path
) -> None:
    """A fallback while the event stream duplicates, reorders or truncates events: the backup is
    asked exactly once, the session gets one answer, baton's journal one switch and one re-send."""
    with BatonProcess(proxy.url, tmp_path / "state", settings=CHAIN) as baton:
        results: dict[str, Trials] = {}
        for i, (row, mode, match) in enumerate(STREAM_FAULTS):

            def trial(i: int, mode: str = mode, match: str | None = match) -> None:
                counter = {"duplicate": "duplicated", "reorder": "reordered", "truncate": "truncated"}[mode]
                fired = proxy.stats[counter]
                wait_until(lambda: attached(baton), 15, f"stream {i}: attached before the trial")
                proxy.set_mode(mode, match=match)
                marker = f"<stream-{i:02d}-{mode}>"
                try:
                    session_id = start_fallback(opencode, provider, marker)
                    check_fallback(opencode, provider, baton, session_id, marker)
                finally:
                    proxy.release()
                assert proxy.stats[counter] > fired, f"{marker} ({match}): the fault never fired: {proxy.stats}"

            results.setdefault(row, Trials(row)).run(i, trial)
    for row, trials in results.items():
        fault_table.record(row, trials.runs, trials.survived, trials.detail())
