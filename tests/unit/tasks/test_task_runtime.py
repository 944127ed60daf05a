"""The tools' task service (``baton.runtime.task_tools``) against a mocked opencode: lineage, ownership of
continued sessions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import pytest
from task_sim import Sim

from baton.opencode.client import OpencodeClient
from baton.runtime.calls import CallMatcher
from baton.runtime.task_tools import TaskTools
from baton.runtime.tasks import SessionTree, TaskChanges
from baton.tasks.actions import TaskAction
from baton.tasks.service import CallContext, ToolFailure
from baton.testing.clock import FakeClock

pytestmark = pytest.mark.anyio

# opencode's sessions: two trees, ses_root → ses_parent (the test Sim's P) and ses_stranger alone.
SESSIONS = {"ses_root": None, "ses_parent": "ses_root", "ses_stranger": None, "ses_kept": "ses_parent"}


@pytest.fixture(name="anyio_backend")
def _anyio_backend() -> str:
    return "asyncio"


def _handler(request: httpx2.Request) -> httpx2.Response:
    path = request.url.path
    if path == "/agent":
        return httpx2.Response(200, json=[{"name": "explore", "mode": "subagent"}])
    if path == "/provider":
        return httpx2.Response(200, json={"connected": ["prov"]})
    sid = path.removeprefix("/session/")
    if request.method == "GET" and sid in SESSIONS:
        return httpx2.Response(200, json={"id": sid, "parentID": SESSIONS[sid], "directory": "/p"})
    return httpx2.Response(404, text="not found")


_R = TypeVar("_R")


class Steps:
    """The router's part in a tool step: take it at the sim's time; the actions are the scheduler
    tests' business, not run here."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim

    def run_step(self, step: Callable[[float], tuple[_R, Sequence[TaskAction]]]) -> _R:
        return step(self.sim.now)[0]


def _runtime(tmp_path: Path, sim: Sim) -> TaskTools:
    client = OpencodeClient("http://opencode.test", transport=httpx2.MockTransport(_handler))
    clock = FakeClock(sim.now)
    return TaskTools(client, sim.config, sim.sched, Steps(sim), matcher=CallMatcher(clock=clock),
                     tree=SessionTree(client, "/p"), changes=TaskChanges(), clock=clock)


def _context(session: str) -> CallContext:
    return CallContext(session_id=session, message_id="msg_call", part_id="prt_call", agent="build",
                       model="prov/parent-model")


def _arguments(**kw: Any) -> dict[str, Any]:
    return {"description": "more", "prompt": "Go on.", "run_in_background": True, **kw}


async def test_a_session_of_another_tree_cannot_be_continued_through_the_tool(tmp_path: Path) -> None:
    """The caller's lineage is walked through opencode; a task child of another root is refused."""
    sim = Sim()
    old = sim.launch()  # under ses_parent, root ses_root (as the walk below finds too)
    sim.start(old, "ses_kept")
    sim.answer(old)
    runtime = _runtime(tmp_path, sim)
    with pytest.raises(ToolFailure, match="does not belong to the session tree of the caller"):
        await runtime.launch(_context("ses_stranger"), "task", _arguments(session_id="ses_kept"))
    text = await runtime.launch(_context("ses_parent"), "task", _arguments(session_id="ses_kept"))
    assert "ses_kept" in text
