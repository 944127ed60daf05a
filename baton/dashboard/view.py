"""The dashboard's picture of baton at one moment, as JSON for the page (pure: no I/O, no clock).

Every text the page shows comes from here, in the words the CLI uses: a journal entry reads as
``baton explain`` prints it, a task's status as ``baton tasks`` does. Nothing secret is in it —
no token, no prompt, no task output (the page links to a task's result instead).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from baton.chains import NamedChain
from baton.store_port import JournalEntry
from baton.tasks.model import LIVE
from baton.tasks.scheduler import TaskView

__all__ = ["JOURNAL_SHOWN", "Picture", "picture"]

JOURNAL_SHOWN = 60
"""How many of the newest decisions the timeline shows."""

ENDED_SHOWN = 40
"""How many ended tasks stay in the tree, newest first (the live ones are always there)."""

_LIVE_TASK_STATES = frozenset(status.value for status in LIVE)


@dataclass(frozen=True, slots=True)
class Picture:
    """What the engine knows, gathered by the route for :func:`picture`."""

    health: Mapping[str, Any]
    sessions: Sequence[Mapping[str, Any]]
    cooldowns: Sequence[Mapping[str, Any]]
    chains: Sequence[NamedChain]
    tasks: Sequence[TaskView]
    journal: Sequence[JournalEntry]
    fallbacks: int
    events: int
    fleet: Mapping[str, Any] | None = None
    """The shared store's view (``StorePort.fleet``); None on SQLite."""


def picture(p: Picture) -> dict[str, Any]:
    """The page's JSON. Times are epoch seconds; the page counts down from them itself."""
    return {
        "baton": {key: p.health.get(key) for key in ("attached", "state", "reason", "opencode", "fallback", "store")}
                 | {"fallbacks": p.fallbacks, "events": p.events},
        "sessions": [_session(s) for s in p.sessions],
        "models": _models(p.chains, p.sessions, p.cooldowns),
        "tasks": _task_tree(p.tasks),
        "journal": [{"ts": e.ts, "session": e.session_id, "kind": e.kind, "text": e.text}
                    for e in reversed(list(p.journal)[-JOURNAL_SHOWN:])],
        "fleet": None if p.fleet is None else dict(p.fleet),
    }


def _session(s: Mapping[str, Any]) -> dict[str, Any]:
    return {key: s.get(key) for key in ("id", "agent", "status", "original", "current", "attempts", "max_attempts",
                                        "awaiting", "parked_until", "park_model")}


def _models(chains: Iterable[NamedChain], sessions: Iterable[Mapping[str, Any]],
            cooldowns: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every model in any chain (configured, or a session's), each with the chains naming it and
    its cooldown, if any; cooling models first, soonest reset first, then in config order."""
    owners: dict[str, list[str]] = {}
    for chain in chains:
        for model in (chain.primary, *chain.fallbacks):
            if model is not None and chain.owner not in owners.setdefault(model, []):
                owners[model].append(chain.owner)
    for session in sessions:
        for model in (session.get("original"), *session.get("chain", ())):
            if model:
                owners.setdefault(str(model), [])
    cooling = {str(c["model"]): c for c in cooldowns}
    rows = []
    for model in [*owners, *(m for m in cooling if m not in owners)]:
        c = cooling.get(model)
        rows.append({"model": model, "chains": owners.get(model, []),
                     "until": c["until"] if c else None, "source": c.get("source") if c else None})
    order = {model: i for i, model in enumerate(owners)}
    rows.sort(key=lambda r: (r["until"] is None, r["until"] or 0.0, order.get(str(r["model"]), len(order))))
    return rows


def _task_tree(views: Sequence[TaskView]) -> list[dict[str, Any]]:
    """Tasks under the session that started them; a task a subagent started sits under that
    subagent's task. Roots are grouped by their parent session."""
    live = [v for v in views if v.status in _LIVE_TASK_STATES]
    ended = sorted((v for v in views if v.status not in _LIVE_TASK_STATES), key=lambda v: v.age_s)[:ENDED_SHOWN]
    shown = sorted([*live, *ended], key=lambda v: -v.age_s)  # oldest first: launch order
    nodes = {v.id: _task(v) for v in shown}
    by_child_session = {v.session_id: nodes[v.id] for v in shown if v.session_id}
    roots: dict[str, list[dict[str, Any]]] = {}
    for v in shown:
        holder = by_child_session.get(v.parent_session_id)
        if holder is not None and holder is not nodes[v.id]:
            holder["children"].append(nodes[v.id])
        else:
            roots.setdefault(v.parent_session_id, []).append(nodes[v.id])
    return [{"session": session, "tasks": tasks} for session, tasks in roots.items()]


def _task(v: TaskView) -> dict[str, Any]:
    return {"id": v.id, "description": v.description, "agent": v.agent, "category": v.category, "model": v.model,
            "status": v.status, "mode": v.mode, "age_s": round(v.age_s, 1),
            "run_s": None if v.run_s is None else round(v.run_s, 1), "queue_position": v.queue_position,
            "end_reason": v.end_reason, "notify": v.notify, "waiting_until": v.waiting_until,
            "session": v.session_id, "children": []}
