"""The dashboard's picture of baton (pure): which models, which tree, which decisions."""

from __future__ import annotations

from typing import Any

from baton.chains import NamedChain
from baton.dashboard.view import ENDED_SHOWN, JOURNAL_SHOWN, Picture, picture
from baton.store_port import JournalEntry
from baton.tasks.scheduler import TaskView

HEALTH = {"attached": True, "state": "attached", "reason": None, "opencode": "http://127.0.0.1:4096",
          "fallback": "active", "store": None, "internal_errors": 3}


def view(task_id: str, parent: str, child: str | None, status: str = "running", age: float = 1.0) -> TaskView:
    return TaskView(id=task_id, parent_session_id=parent, session_id=child, description=f"do {task_id}",
                    agent="general", category="quick", model="p/b", status=status, mode="background",
                    age_s=age, queue_position=None, end_reason=None, notify="none")


def draw(**parts: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"health": HEALTH, "sessions": [], "cooldowns": [], "chains": [], "tasks": [],
                            "journal": [], "fallbacks": 0, "events": 0}
    return picture(Picture(**{**base, **parts}))


def test_every_chain_model_is_listed_once_with_its_owners_cooling_first() -> None:
    chains = [NamedChain("agents.build", "p/a", ("p/b", "p/c")), NamedChain("categories.quick", "p/b", ("p/c",))]
    sessions = [{"id": "ses_1", "original": "p/z", "chain": ("p/a", "p/y")}]
    cooldowns = [{"model": "p/c", "until": 200.0, "source": "reset header"},
                 {"model": "p/b", "until": 100.0, "source": "configured"},
                 {"model": "p/gone", "until": 300.0, "source": "configured"}]
    models = draw(chains=chains, sessions=sessions, cooldowns=cooldowns)["models"]
    assert [m["model"] for m in models] == ["p/b", "p/c", "p/gone", "p/a", "p/z", "p/y"]
    by_name = {m["model"]: m for m in models}
    assert by_name["p/c"]["chains"] == ["agents.build", "categories.quick"]
    assert by_name["p/c"]["until"] == 200.0 and by_name["p/c"]["source"] == "reset header"
    assert by_name["p/a"]["until"] is None and by_name["p/z"]["chains"] == []


def test_a_task_started_by_a_subagent_sits_under_that_subagents_task() -> None:
    tasks = [view("bg_1", "ses_p", "ses_c1", age=5), view("bg_2", "ses_c1", "ses_c2", age=3),
             view("bg_3", "ses_p", None, status="queued", age=1), view("bg_4", "ses_q", "ses_c4", age=2)]
    tree = draw(tasks=tasks)["tasks"]
    assert [g["session"] for g in tree] == ["ses_p", "ses_q"]
    top = tree[0]["tasks"]
    assert [t["id"] for t in top] == ["bg_1", "bg_3"]  # launch order
    assert [t["id"] for t in top[0]["children"]] == ["bg_2"]
    assert "prompt" not in top[0]  # the page never carries what the agent wrote


def test_ended_tasks_are_capped_live_ones_never() -> None:
    ended = [view(f"bg_e{i}", "ses_p", f"ses_e{i}", status="completed", age=100 + i) for i in range(ENDED_SHOWN + 5)]
    live = [view(f"bg_l{i}", "ses_p", f"ses_l{i}", age=1000 + i) for i in range(3)]
    shown = draw(tasks=[*ended, *live])["tasks"][0]["tasks"]
    ids = {t["id"] for t in shown}
    assert {"bg_l0", "bg_l1", "bg_l2"} <= ids and len(ids) == ENDED_SHOWN + 3
    assert "bg_e0" in ids and f"bg_e{ENDED_SHOWN + 4}" not in ids  # the newest ended stay


def test_the_timeline_is_newest_first_in_explains_words_and_capped() -> None:
    entries = [JournalEntry(float(i), "ses_1", "switch", f"decision {i}", {"secret": "data"})
               for i in range(JOURNAL_SHOWN + 10)]
    journal = draw(journal=entries)["journal"]
    assert len(journal) == JOURNAL_SHOWN
    assert journal[0] == {"ts": float(JOURNAL_SHOWN + 9), "session": "ses_1", "kind": "switch",
                          "text": f"decision {JOURNAL_SHOWN + 9}"}


def test_the_header_says_whether_baton_is_attached_and_shows_no_internals() -> None:
    detached = {**HEALTH, "attached": False, "state": "reconnecting", "reason": "opencode refused the stream"}
    head = draw(health=detached, fallbacks=2, events=40)["baton"]
    assert head == {"attached": False, "state": "reconnecting", "reason": "opencode refused the stream",
                    "opencode": "http://127.0.0.1:4096", "fallback": "active", "store": None,
                    "fallbacks": 2, "events": 40}


def test_the_fleet_view_is_passed_on_and_absent_without_a_shared_store() -> None:
    fleet = {"instance": "host:1", "database": "postgresql://db/baton", "servers": []}
    assert draw(fleet=fleet)["fleet"] == fleet
    assert draw()["fleet"] is None
