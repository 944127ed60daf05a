"""Fault classes of the SQLite store: full disk, deleted file, replaced file, unreadable rows.

A trial survives when no exception escapes the store and, once it has healed, a second
(readonly) store finds every row the writer was given. No opencode needed: real SQLite, a real
tmpfs filled to the brim (or a file-size limit where mounting is not allowed).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from baton.store import HEAL_RETRY_S, JournalEntry, Store
from baton.tasks.model import OutboxRow, RowKind, Task

TRIALS = 10
NOW = 1_000_000.0


class FaultTable(Protocol):
    def record(self, fault_class: str, trials: int, survived: int, detail: str = "") -> None: ...


def run_trials(fault_table: FaultTable, fault_class: str, trial: Callable[[int], None]) -> None:
    """Run every trial to its end; one that raises (from the store or a lost row) did not survive."""
    failures: list[str] = []
    for i in range(TRIALS):
        try:
            trial(i)
        except Exception:  # any escape is a lost trial, recorded with its traceback
            failures.append(f"trial {i}: {traceback.format_exc(limit=3)}")
    fault_table.record(fault_class, TRIALS, TRIALS - len(failures), "\n".join(failures))


# --- what the writer was given, and what a reader finds ----------------------------------------------


@dataclass
class Expected:
    tasks: set[str] = field(default_factory=set)
    outbox: set[str] = field(default_factory=set)
    cooldowns: dict[str, float] = field(default_factory=dict)
    journal: list[str] = field(default_factory=list)

    def write(self, store: Store, tag: str, forget: str | None = None) -> None:
        """Two tasks with a notification each, a cooldown, a journal entry; forget an older task."""
        ids = [f"bg_{tag}_a", f"bg_{tag}_b"]
        store.save_tasks([(t, task_row(t)) for t in ids], [box_row(f"nt_{t}", t) for t in ids], NOW)
        store.save_cooldown(f"m/{tag}", NOW + 100, "rate limit", NOW)
        store.journal([JournalEntry(NOW, "ses_a", "fallback", tag, {})])
        self.tasks |= set(ids)
        self.outbox |= {f"nt_{t}" for t in ids}
        self.cooldowns[f"m/{tag}"] = NOW + 100
        self.journal.append(tag)
        if forget is not None:
            store.forget_tasks([forget])
            self.tasks.discard(forget)
            self.outbox.discard(f"nt_{forget}")

    def check(self, path: Path, *, journal: bool = True) -> None:
        with Store(path, readonly=True) as reader:
            assert {t["id"] for t in reader.load_tasks()} == self.tasks
            assert {r["id"] for r in reader.load_outbox(include_done=True)} == self.outbox
            assert {m: u for m, u, _ in reader.cooldowns(NOW)} == self.cooldowns
            if journal:
                assert [e.text for e in reader.read_journal(limit=10_000)] == self.journal


def task_row(tid: str) -> dict[str, Any]:
    return Task(id=tid, parent_session_id="ses_p", description="d", prompt="p", agent="build", model="a/b",
                key="a/b", queue_seq=1, queued_at=NOW).to_row()


def box_row(bid: str, task_id: str) -> dict[str, Any]:
    return OutboxRow(id=bid, parent_session_id="ses_p", kind=RowKind.END, seq=1, created_at=NOW,
                     task_id=task_id).to_row()


# --- a disk that fills ---------------------------------------------------------------------------------


@contextlib.contextmanager
def filling_disk(base: Path) -> Iterator[tuple[Path, Callable[[], None], Callable[[], None]]]:
    """(dir, fill, free): a 4 MB tmpfs, or where mounting fails a file-size limit (writes fail with EFBIG)."""
    root = base / "disk"
    root.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(root)],
                                 capture_output=True).returncode == 0
    except OSError:  # no mount command at all
        mounted = False
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)

    def fill() -> None:
        if not mounted:
            smallest = min(p.stat().st_size for p in root.iterdir() if p.stat().st_size > 0)
            resource.setrlimit(resource.RLIMIT_FSIZE, (smallest, limit[1]))
            return
        fd = os.open(root / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
        finally:
            os.close(fd)

    def free() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        (root / "filler").unlink(missing_ok=True)

    try:
        yield root, fill, free
    finally:
        free()
        if mounted:
            subprocess.run(["umount", "-l", str(root)], check=True)


# --- the fault classes -------------------------------------------------------------------------------


def test_store_disk_full(fault_table: FaultTable, tmp_path: Path) -> None:
    """10 cycles on one store: fill the disk, write, heal in vain, free it, heal: every row is in the file."""
    with filling_disk(tmp_path) as (root, fill, free), Store(root / "baton.db") as store:
        expected = Expected()
        expected.write(store, "start")
        clock = [NOW]

        def trial(i: int) -> None:
            fill()
            try:
                expected.write(store, f"c{i}", forget=f"bg_c{i - 1}_a" if i else "bg_start_a")
                assert store.problem is not None, "a write on a full disk did not fail"
                store.heal(clock[0])
                assert store.problem is not None, "healed on a full disk"
            finally:
                free()
            clock[0] += HEAL_RETRY_S
            store.heal(clock[0])
            assert store.problem is None, store.problem
            expected.check(root / "baton.db")

        run_trials(fault_table, "store: disk full", trial)


def test_store_file_deleted(fault_table: FaultTable, tmp_path: Path) -> None:
    """The file (even trials) or the whole state dir (odd ones) deleted under a running store, then written to."""
    path = tmp_path / "state" / "baton.db"
    with Store(path) as store:
        expected = Expected()

        def trial(i: int) -> None:
            expected.write(store, f"before{i}")
            if i % 2:
                shutil.rmtree(path.parent)
            else:
                path.unlink()
            expected.write(store, f"after{i}", forget=f"bg_before{i}_b")
            store.heal(NOW + i)
            assert store.problem is None, store.problem
            expected.check(path, journal=False)  # the journal's history goes with the file: it is not state

        run_trials(fault_table, "store: file deleted", trial)


def test_store_file_replaced(fault_table: FaultTable, tmp_path: Path) -> None:
    """Another store moved over the file: detected, and rewritten with the running store's rows."""
    path = tmp_path / "baton.db"
    with Store(path) as store:
        expected = Expected()

        def trial(i: int) -> None:
            expected.write(store, f"r{i}")
            other = tmp_path / f"other{i}.db"
            with Store(other) as stranger:
                stranger.save_tasks([(f"bg_x{i}", task_row(f"bg_x{i}"))], (), NOW)
            os.replace(other, path)
            store.heal(NOW + i)
            assert store.problem is None, store.problem
            expected.check(path, journal=False)

        run_trials(fault_table, "store: file replaced", trial)


# One bad row per trial: (table, id, row) written behind the store's back.
BAD_ROWS: list[tuple[str, str, str]] = [
    ("tasks", "bg_bad", "{not json"),
    ("tasks", "bg_bad", '{"id": "bg_bad", "status": "queu'),
    ("tasks", "bg_bad", "[1, 2, 3]"),
    ("tasks", "bg_bad", '"a string"'),
    ("tasks", "bg_bad", json.dumps({"id": "bg_bad"})),
    ("tasks", "bg_bad", json.dumps({**task_row("bg_bad"), "status": "exploded"})),
    ("tasks", "bg_bad", json.dumps({**task_row("bg_bad"), "attempts": ["not an attempt"]})),
    ("outbox", "nt_bad", json.dumps({"id": "nt_bad", "parent_session_id": "p"})),
    ("outbox", "nt_bad", json.dumps({**box_row("nt_bad", "bg_0"), "seq": "first"})),
    ("journal", "", "{oops"),
]


def test_store_corrupt_rows(fault_table: FaultTable, tmp_path: Path) -> None:
    """A store with good rows and one bad one: the good ones load, the bad one is quarantined, nothing raises."""
    assert len(BAD_ROWS) == TRIALS

    def trial(i: int) -> None:
        path = tmp_path / f"corrupt{i}" / "baton.db"
        expected = Expected()
        with Store(path) as store:
            for n in range(3):
                expected.write(store, f"g{n}")
        table, row_id, row = BAD_ROWS[i]
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
            if table == "tasks":
                db.execute("INSERT INTO tasks VALUES (?, 'p', 'queued', ?, 0)", (row_id, row))
            elif table == "outbox":
                db.execute("INSERT INTO outbox VALUES (?, 'p', 'pending', ?)", (row_id, row))
            else:
                db.execute("INSERT INTO journal(ts, session_id, kind, text, data) VALUES (1, 's', 'k', 't', ?)", (row,))
        with Store(path) as store:
            assert {t.id for t in store.load_tasks(Task.from_row)} == expected.tasks
            assert {r.id for r in store.load_outbox(OutboxRow.from_row)} == expected.outbox
            assert [e.text for e in store.read_journal(limit=100)] == expected.journal
        expected.check(path)
        with contextlib.closing(sqlite3.connect(path)) as db:
            assert db.execute("SELECT table_name, row FROM quarantine").fetchall() == [(table, row)]

    run_trials(fault_table, "store: corrupt rows", trial)
