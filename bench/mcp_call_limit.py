"""Does opencode keep an MCP tool call open past its 60 s limit when the tool sends progress?

Runs baton's MCP server with a stand-in service whose ``task`` takes ``--seconds`` (default 80),
registers it with a real opencode, lets the fake model call ``baton_task`` twice — once with
MCP progress every 10 s, once without — and prints how each call ended. On 1.18.33: with
progress the call completed after 80 s; without, opencode gave up at 60 s (MCP error -32001).
baton relies on this for foreground tasks (``TaskRuntime._wait_limit``). Takes ~3 minutes.

    .venv/bin/python bench/mcp_call_limit.py [--seconds 80]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from typing import Any

import anyio
import httpx2
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route

import baton.tools as tools
from baton.mcp_wire import McpEndpoint
from baton.tasks.service import CallContext
from baton.testing.fake_provider import Answer, FakeProvider, ToolCall
from baton.testing.opencode import OpencodeServer, free_port

CALL = {"description": "d", "prompt": "p", "category": "quick", "run_in_background": False}


class SlowService:
    """A TaskService whose launch just takes a while."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def known_categories(self) -> list[str]:
        return []

    async def call_context(self, tool: str, arguments: dict[str, Any]) -> CallContext:
        return CallContext("ses_probe", None, "prt_probe", None, None)

    async def launch(self, context: CallContext, tool: str, arguments: dict[str, Any]) -> str:
        await anyio.sleep(self.seconds)
        return f"finished after {self.seconds:g} s"

    async def output(self, context: CallContext, task_id: str, block: bool, timeout_ms: int | None) -> str:
        return ""

    async def cancel(self, context: CallContext, task_id: str | None, cancel_all: bool) -> str:
        return ""


def drive(port: int, label: str) -> None:
    with FakeProvider() as provider, OpencodeServer(provider.url, ("primary",)) as opencode:
        provider.script("primary", ToolCall("baton_task", CALL), Answer("after the tool"))
        body = {"name": "baton", "config": {"type": "remote", "url": f"http://127.0.0.1:{port}/mcp"}}
        httpx2.post(opencode.url + "/mcp", json=body, timeout=30).raise_for_status()
        session = opencode.create_session("probe")["id"]
        started = time.monotonic()
        opencode.prompt_async(session, "go")
        while True:
            time.sleep(1)
            parts = [p for m in opencode.messages(session) for p in m["parts"] if p["type"] == "tool"]
            state = parts[0]["state"] if parts else {}
            if state.get("status") in ("completed", "error"):
                result = str(state.get("output") or state.get("error"))[:100]
                print(f"{label}: call ended after {time.monotonic() - started:.1f} s: {state['status']}: {result}")
                return


async def run(seconds: float, progress: bool) -> None:
    server = tools.build_server(SlowService(seconds))
    if not progress:  # the call is served as if opencode had asked for no progress
        call = server.call_tool
        server = replace(server, call_tool=lambda name, arguments, _progress: call(name, arguments, None))
    app = McpEndpoint(server)
    running = app.running
    port = free_port()
    config = uvicorn.Config(Starlette(routes=[Route("/mcp", endpoint=app)]), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="off")
    http = uvicorn.Server(config)
    async with running(), anyio.create_task_group() as tg:
        tg.start_soon(http.serve)
        while not http.started:  # noqa: ASYNC110 - uvicorn exposes readiness only as this flag
            await anyio.sleep(0.05)
        await anyio.to_thread.run_sync(drive, port, "with progress" if progress else "without progress")
        http.should_exit = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=80.0)
    args = parser.parse_args()
    anyio.run(run, args.seconds, True)
    anyio.run(run, args.seconds, False)


if __name__ == "__main__":
    main()
