"""Fault class "opencode restarted": baton must re-attach after every restart and fall back as before."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest
from fault_helpers import CHAIN, MODELS, FaultTable, Trials, attached, check_fallback, start_fallback, wait_until

from baton.testing.baton_process import BatonProcess
from baton.testing.fake_provider import FakeProvider
from baton.testing.opencode import OpencodeServer

pytestmark = pytest.mark.integration

RESTARTS = 20
REATTACH_S = 2.0
"""baton re-attaches within 2 s of opencode answering again (the hardening issue's bound)."""


@pytest.mark.timeout(420)
def test_opencode_restarted(fault_table: FaultTable, tmp_path: Path) -> None:
    """20 restarts of opencode under baton: after each, baton is attached again within 2 s of opencode
    answering, and a cooling-down primary is answered by the backup, asked once."""
    latencies: list[float] = []
    with FakeProvider() as provider, OpencodeServer(provider.url, MODELS) as opencode, \
            BatonProcess(opencode.url, tmp_path / "state", settings=CHAIN) as baton:

        def trial(i: int) -> str:
            connects = baton.status()["connects"]
            opencode.restart()  # returns once opencode answers /global/health
            answering = time.monotonic()
            wait_until(lambda: attached(baton, connects), 15, f"restart {i}: re-attach")
            latency = time.monotonic() - answering
            latencies.append(latency)
            assert latency <= REATTACH_S, f"restart {i}: re-attached {latency:.2f}s after opencode answered"
            marker = f"<restart-{i:02d}>"
            check_fallback(opencode, provider, baton, start_fallback(opencode, provider, marker), marker)
            return f"{latency:.2f}s"

        trials = Trials("opencode restarted")
        for i in range(RESTARTS):
            trials.run(i, trial)
    summary = (f"re-attach after opencode answered: median {statistics.median(latencies):.2f}s, "
               f"max {max(latencies):.2f}s" if latencies else "")
    print(f"\nopencode restarted: {summary}")
    fault_table.record("opencode restarted", trials.runs, trials.survived, f"{summary}\n{trials.detail()}")
