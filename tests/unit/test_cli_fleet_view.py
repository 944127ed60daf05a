"""``baton status`` with a shared store: which baton drives which opencode server, and its tasks."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from baton.cli_views import status_view

NOW = 1_800_000_000.0


def rendered(data: dict[str, Any]) -> str:
    console = Console(record=True, width=160, color_system=None)
    console.print(status_view(data, (), NOW))
    return console.export_text()


def serve_status(fleet: dict[str, Any]) -> dict[str, Any]:
    return {"state": "attached", "opencode_url": "http://127.0.0.1:4096", "events": 3, "fallbacks": 0,
            "connects": 1, "sessions": [], "tasks": [], "cooldowns": [], "fleet": fleet}


def test_the_fleet_table_names_each_server_s_driver_its_lease_and_its_tasks() -> None:
    text = rendered(serve_status({
        "instance": "box-a:41", "scope": "http://a:4096", "database": "postgresql://baton@db/baton",
        "servers": [
            {"opencode": "http://a:4096", "driver": "box-a:41", "lease_left_s": 5.2,
             "tasks": {"completed": 3, "running": 2}},
            {"opencode": "http://b:4096", "driver": "box-b:7", "lease_left_s": -1.0, "tasks": {}},
            {"opencode": "http://c:4096", "driver": None, "lease_left_s": None, "tasks": {"queued": 1}},
        ]}))
    assert "fleet on postgresql://baton@db/baton (this baton: box-a:41)" in text
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert "│ http://a:4096 │ box-a:41 │ 5s │ 3 completed, 2 running │" in lines
    assert "│ http://b:4096 │ box-b:7 │ lapsed │ - │" in lines
    assert "│ http://c:4096 │ nobody │ - │ 1 queued │" in lines


def test_a_fleet_the_database_cannot_show_says_why() -> None:
    text = rendered(serve_status({"instance": "box-a:41", "scope": "http://a:4096",
                                  "database": "postgresql://baton@db/baton", "error": "connection refused"}))
    assert "fleet on postgresql://baton@db/baton (this baton: box-a:41): connection refused" in text
