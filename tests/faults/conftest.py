"""The fault-injection suite: every fault class records its trials, and the run prints one table.

A test calls ``fault_table.record(fault_class, trials, survived)`` once it has run its trials;
the table (fault class, trials, survived) is printed at the end of the run and written to
``$BATON_FAULT_TABLE`` when that is set. Any trial that did not survive fails the test that
recorded it, so CI fails on any loss.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class FaultTable:
    rows: dict[str, tuple[int, int]] = field(default_factory=dict)

    def record(self, fault_class: str, trials: int, survived: int, detail: str = "") -> None:
        """Add one fault class's result; fails the calling test when any trial was lost."""
        old_trials, old_survived = self.rows.get(fault_class, (0, 0))
        self.rows[fault_class] = (old_trials + trials, old_survived + survived)
        assert survived == trials, f"{fault_class}: {trials - survived} of {trials} trials lost. {detail}"

    def render(self) -> str:
        width = max([len("fault class"), *(len(name) for name in self.rows)])
        lines = [f"{'fault class':<{width}}  trials  survived", f"{'-' * width}  ------  --------"]
        lines += [f"{name:<{width}}  {t:>6}  {s:>8}" for name, (t, s) in sorted(self.rows.items())]
        return "\n".join(lines)


_TABLE = FaultTable()


@pytest.fixture(name="fault_table", scope="session")
def _fault_table() -> Iterator[FaultTable]:
    yield _TABLE


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _TABLE.rows:
        return
    terminalreporter.section("fault-injection suite")
    terminalreporter.write_line(_TABLE.render())
    target = os.environ.get("BATON_FAULT_TABLE")
    if target:
        Path(target).write_text(_TABLE.render() + "\n", encoding="utf-8")
