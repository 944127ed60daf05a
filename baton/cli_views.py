"""The tables ``baton status`` and ``baton tasks`` print, apart from the commands that fetch their data.

Pure rendering: a view takes the serve's JSON, the store's rows and ``now`` and returns rich
renderables; it reads no clock, file or socket, so a test renders it at any time it likes, and
the commands in :mod:`baton.cli` stay about arguments, where the data comes from and exit codes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from baton.store import CoolingRow

__all__ = ["status_view", "tasks_table"]


def _cells(*values: object) -> list[Text]:
    """Table cells as plain text: ids, models and provider errors are never read as markup."""
    return [Text(str(v)) for v in values]


def status_view(data: dict[str, Any] | None, cooling_rows: Iterable[CoolingRow], now: float) -> Group:
    """``baton status``: the serve's sessions, parked turns and tasks (``data``; None when no serve
    answers) and the models cooling down, the store's ``cooling_rows`` giving sources and reasons."""
    parts: list[Any] = []
    if data is None:
        parts.append("[yellow]baton serve is not running here[/] (showing the store only)")
    else:
        parts.append(
            f"[bold]{data['state']}[/] to {escape(data['opencode_url'])} · {data['events']} events · "
            f"{data['fallbacks']} fallbacks · {data['connects']} connects"
        )
        sessions = Table("session", "status", "agent", "model", "original", "attempts", "awaiting",
                         title="sessions with fallback state")
        for s in data["sessions"]:
            sessions.add_row(*_cells(s["id"], s["status"], s["agent"] or "-", s["current"] or "-",
                                     s["original"] or "-", f"{s['attempts']}/{s['max_attempts']}",
                                     "yes" if s["awaiting"] else ""))
        parts.append(sessions)
        parked = [s for s in data["sessions"] if s.get("parked_until")]
        if parked:
            table = Table("session", "resumes at", "on model", "waiting for", title="parked turns")
            for s in parked:
                table.add_row(*_cells(s["id"], _resets_at(s["parked_until"], now), s["park_model"] or "-",
                                      f"{max(0.0, s['parked_until'] - now):.0f}s"))
            parts.append(table)
        parts.append(tasks_table(data.get("tasks", []), title="background tasks (live)", now=now))
        if data.get("fleet"):
            parts.append(_fleet_table(data["fleet"]))
    cooling = Table("model", "cooling for", "resets at", "source", "reason", title="models cooling down")
    stored = {row.model: row for row in cooling_rows}
    rows = (
        [(c["model"], c["until"], c.get("source") or (stored[c["model"]].source if c["model"] in stored else "-"),
          stored[c["model"]].reason if c["model"] in stored else "") for c in data["cooldowns"]]
        if data else [(row.model, row.until, row.source, row.reason) for row in stored.values()]
    )
    for model, until, source, reason in rows:
        cooling.add_row(*_cells(model, f"{until - now:.0f}s", _resets_at(until, now), source, reason[:60]))
    parts.append(cooling)
    return Group(*parts)


def _fleet_table(fleet: dict[str, Any]) -> Table | str:
    """A shared store's view: which baton drives which opencode server, and each one's tasks."""
    title = f"fleet on {fleet['database']} (this baton: {fleet['instance']})"
    if fleet.get("error"):
        return f"[yellow]{escape(title)}: {escape(fleet['error'])}[/]"
    table = Table("opencode server", "driven by", "lease left", "tasks", title=title)
    for server in fleet.get("servers", []):
        left = server["lease_left_s"]
        lease = "-" if left is None else ("lapsed" if left < 0 else f"{left:.0f}s")
        tasks = ", ".join(f"{n} {status}" for status, n in server["tasks"].items()) or "-"
        table.add_row(*_cells(server["opencode"], server["driver"] or "nobody", lease, tasks))
    return table


def _resets_at(until: float, now: float) -> str:
    """A cooldown's end in local time: ``HH:MM`` today, else with its date."""
    end = time.localtime(until)
    same_day = end[:3] == time.localtime(now)[:3]
    return time.strftime("%H:%M" if same_day else "%Y-%m-%d %H:%M", end)


def tasks_table(rows: list[dict[str, Any]], title: str | None = None, now: float | None = None) -> Table:
    """Task rows (the serve's ``/tasks`` JSON or the scheduler's snapshot) as one table."""
    table = Table("id", "parent", "agent/category", "model", "status", "age", "queue", title=title)
    for r in rows:
        who = f"{r['category']} ({r['agent']})" if r["category"] else r["agent"]
        queue = "" if r["queue_position"] is None else str(r["queue_position"])
        if r.get("waiting_until") is not None and now is not None:
            queue = f"{queue} waits for the reset at {_resets_at(r['waiting_until'], now)}".strip()
        table.add_row(*_cells(r["id"], r["parent_session_id"], who, r["model"] or "-", r["status"],
                              f"{r['age_s']:.0f}s", queue))
    return table
