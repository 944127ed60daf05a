"""The tools map a child is prompted with (background-tasks §6.4), agent by agent: never opencode's
own task tool or questions; no spawning at the deepest depth; read-only agents lose writing and
spawning, metis and momus lose writing, multimodal-looker gets read. Names match exactly first,
then without case.

Written against the mutants mutation testing left alive in ``launch.tools_for`` (``scripts/mutation.py``).
"""

from __future__ import annotations

import pytest

from baton.tasks.launch import tools_for

BASE = {"task": False, "question": False}
NO_SPAWN = {"baton_task": False, "baton_call_agent": False}
READ_ONLY = {**BASE, "write": False, "edit": False, **NO_SPAWN}
NO_WRITE = {**BASE, "write": False, "edit": False}


@pytest.mark.parametrize(
    ("agent", "tools"),
    [
        ("general", BASE),
        ("explore", READ_ONLY),
        ("librarian", READ_ONLY),
        ("oracle", READ_ONLY),
        ("Oracle", READ_ONLY),
        (" EXPLORE ", READ_ONLY),
        ("metis", NO_WRITE),
        ("Momus", NO_WRITE),
        ("multimodal-looker", {**BASE, "read": True}),
        ("Multimodal-Looker", {**BASE, "read": True}),
    ],
)
def test_each_agent_s_tools_below_the_deepest_depth(agent: str, tools: dict[str, bool]) -> None:
    assert tools_for(agent, 1, 3) == tools


@pytest.mark.parametrize(
    ("agent", "tools"),
    [("general", {**BASE, **NO_SPAWN}), ("metis", {**NO_WRITE, **NO_SPAWN}), ("oracle", READ_ONLY),
     ("multimodal-looker", {**BASE, **NO_SPAWN, "read": True})],
)
def test_at_the_deepest_depth_no_agent_may_spawn(agent: str, tools: dict[str, bool]) -> None:
    assert tools_for(agent, 3, 3) == tools
