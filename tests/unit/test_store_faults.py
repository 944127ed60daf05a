"""The store degrades instead of dying: real SQLite files and real filesystem faults.

A full disk is a tiny tmpfs filled to the brim (or, where mounting is not allowed, a file-size
limit: CPython ignores SIGXFSZ, so a write past it fails with EFBIG); a deleted or replaced
file is a real unlink or rename under a running store.
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
import sys
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog

from baton.store import HEAL_RETRY_S, JournalEntry, Store, StoreError, StoreTooNew
from baton.tasks.model import OutboxRow, RowKind, RowState, Task

NOW = 1_000_000.0


# --- a disk that can be filled and freed ---------------------------------------------------------


class Disk:
    """A directory whose free space a test takes away (``fill``) and gives back (``free``)."""

    def __init__(self, root: Path, how: str) -> None:
        self.root, self.how = root, how
        self._limit: tuple[int, int] | None = None

    def fill(self) -> None:
        if self.how == "tmpfs":
            fd = os.open(self.root / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            try:
                while True:
                    os.write(fd, b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
            finally:
                os.close(fd)
        else:
            # No file in the directory may grow past the smallest of them; SQLite appends to its WAL.
            self._limit = resource.getrlimit(resource.RLIMIT_FSIZE)
            smallest = min(p.stat().st_size for p in self.root.iterdir() if p.stat().st_size > 0)
            resource.setrlimit(resource.RLIMIT_FSIZE, (smallest, self._limit[1]))

    def free(self) -> None:
        if self.how == "tmpfs":
            (self.root / "filler").unlink(missing_ok=True)
        elif self._limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, self._limit)
            self._limit = None


def _mount(root: Path, options: str) -> bool:
    try:
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(root)], capture_output=True)
    except OSError:  # no mount command at all
        return False
    return result.returncode == 0


@contextlib.contextmanager
def small_disk(base: Path, how: str, size: str = "1m") -> Iterator[Disk]:
    """``how`` = "tmpfs" (falls back to the file-size limit when mounting fails) or "fsize"."""
    root = base / "disk"
    root.mkdir()
    mounted = how == "tmpfs" and _mount(root, f"size={size}")
    disk = Disk(root, "tmpfs" if mounted else "fsize")
    try:
        yield disk
    finally:
        disk.free()
        if mounted:
            subprocess.run(["umount", "-l", str(root)], check=True)


@pytest.fixture(params=["tmpfs", "fsize"])
def disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Disk]:
    with small_disk(tmp_path, request.param) as d:
        yield d


# --- rows -------------------------------------------------------------------------------------------


def task(tid: str, parent: str = "ses_parent") -> dict[str, Any]:
    return Task(id=tid, parent_session_id=parent, description="d", prompt="p", agent="build", model="a/b",
                key="a/b", queue_seq=1, queued_at=NOW).to_row()


def box(bid: str, task_id: str, state: RowState = RowState.PENDING) -> dict[str, Any]:
    return OutboxRow(id=bid, parent_session_id="ses_parent", kind=RowKind.END, seq=1, created_at=NOW,
                     task_id=task_id, state=state).to_row()


def raw(path: Path) -> contextlib.closing[sqlite3.Connection]:
    """The file behind the store's back (autocommit)."""
    return contextlib.closing(sqlite3.connect(path, isolation_level=None))


def note(text: str, session: str = "ses_a") -> JournalEntry:
    return JournalEntry(NOW, session, "fallback", text, {"n": text})


def contents(path: Path) -> dict[str, Any]:
    """What a second (readonly) store reads from the file."""
    with Store(path, readonly=True) as reader:
        return {
            "tasks": sorted(r["id"] for r in reader.load_tasks()),
            "outbox": sorted(r["id"] for r in reader.load_outbox(include_done=True)),
            "cooldowns": sorted((m, u) for m, u, _ in reader.cooldowns(NOW)),
            "journal": [e.text for e in reader.read_journal(limit=1000)],
        }


def events(logs: list[MutableMapping[str, Any]], level: str) -> list[str]:
    return [str(e["event"]) for e in logs if e["log_level"] == level]


# --- full disk ----------------------------------------------------------------------------------------


def test_disk_full_writes_do_not_raise_and_heal_writes_them_once_space_returns(disk: Disk) -> None:
    path = disk.root / "baton.db"
    with Store(path) as store, structlog.testing.capture_logs() as logs:
        store.save_tasks([("bg_1", task("bg_1")), ("bg_2", task("bg_2"))], [box("nt_bg_1", "bg_1")], NOW)
        store.save_cooldown("a/b", NOW + 60, "rate limit", NOW)
        store.journal([note("before")])
        disk.fill()

        store.save_tasks([("bg_3", task("bg_3"))], [box("nt_bg_3", "bg_3")], NOW)
        store.save_cooldown("c/d", NOW + 90, "overloaded", NOW)
        store.journal([note("during")])
        store.forget_tasks(["bg_1"])
        assert store.problem is not None and store.problem.startswith("store write failed: ")
        # The mirror has every write, the file none of those made while full.
        assert sorted(t["id"] for t in store.load_tasks()) == ["bg_2", "bg_3"]
        assert [m for m, _, _ in store.cooldowns(NOW)] == ["a/b", "c/d"]
        assert [e.text for e in store.read_journal()] == ["before", "during"]

        store.heal(NOW)  # the disk is still full: stays degraded, nothing raised
        assert store.problem is not None
        disk.free()
        store.heal(NOW + HEAL_RETRY_S)
        assert store.problem is None
        assert contents(path) == {"tasks": ["bg_2", "bg_3"], "outbox": ["nt_bg_3"],
                                  "cooldowns": [("a/b", NOW + 60), ("c/d", NOW + 90)], "journal": ["before", "during"]}
    assert events(logs, "warning") == ["store degraded: keeping its state in memory until the file takes it again"]
    assert events(logs, "info") == ["store recovered"]


def test_degraded_store_leaves_the_file_alone_until_heal(disk: Disk) -> None:
    """While degraded a write only updates the mirror: no I/O per event on a full disk."""
    path = disk.root / "baton.db"
    with Store(path) as store:
        store.save_tasks([("bg_1", task("bg_1"))], (), NOW)
        disk.fill()
        store.save_tasks([("bg_2", task("bg_2"))], (), NOW)
        disk.free()
        store.save_tasks([("bg_3", task("bg_3"))], (), NOW)  # would fit now, but is not tried
        assert store.problem is not None
        assert contents(path)["tasks"] == ["bg_1"]
        store.heal(NOW)
        assert contents(path)["tasks"] == ["bg_1", "bg_2", "bg_3"]


def test_failed_heal_is_retried_after_the_pause_not_at_every_call(disk: Disk) -> None:
    path = disk.root / "baton.db"
    with Store(path) as store:
        disk.fill()
        store.save_tasks([("bg_1", task("bg_1"))], (), NOW)
        store.heal(NOW)
        disk.free()
        store.heal(NOW + HEAL_RETRY_S / 2)
        assert store.problem is not None
        store.heal(NOW + HEAL_RETRY_S)
        assert store.problem is None
        assert contents(path)["tasks"] == ["bg_1"]


def test_journal_buffer_is_bounded_and_keeps_the_newest(disk: Disk, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("baton.store_mirror.JOURNAL_BUFFER", 5)
    path = disk.root / "baton.db"
    with Store(path) as store, structlog.testing.capture_logs() as logs:
        disk.fill()
        store.journal([note(f"n{i}") for i in range(8)])
        disk.free()
        store.heal(NOW)
        assert store.problem is None
    assert contents(path)["journal"] == ["n3", "n4", "n5", "n6", "n7"]
    assert [e["journal_lost"] for e in logs if e["event"] == "store recovered"] == [3]


def test_close_makes_a_last_attempt_to_write_what_is_pending(disk: Disk) -> None:
    path = disk.root / "baton.db"
    store = Store(path)
    disk.fill()
    store.save_tasks([("bg_1", task("bg_1"))], (), NOW)
    disk.free()
    store.close()
    assert contents(path)["tasks"] == ["bg_1"]


def intent(session: str, model: str = "fake/backup") -> dict[str, Any]:
    return {"session_id": session, "message_id": "msg_u1", "model": model, "decided_at": NOW}


def pending(path: Path) -> dict[str, str]:
    """The re-send intents a second (readonly) store reads from the file: session -> model."""
    with Store(path, readonly=True) as reader:
        return {r["session_id"]: r["model"] for r in reader.load_pending("resend", dict)}


def test_pending_intents_survive_a_full_disk_and_heal_writes_them_back(disk: Disk) -> None:
    """Recorded, replaced and cleared while the disk is full: the mirror answers at once, the file
    gets exactly the mirror's rows once space returns (the cleared one gone, the replaced one new)."""
    path = disk.root / "baton.db"
    with Store(path) as store:
        store.put_pending("resend", "ses_a", intent("ses_a"), NOW)
        store.put_pending("resend", "ses_b", intent("ses_b"), NOW)
        store.put_pending("parked", "ses_a", {"session_id": "ses_a", "model": "other"}, NOW)
        disk.fill()
        store.put_pending("resend", "ses_c", intent("ses_c"), NOW)
        store.put_pending("resend", "ses_a", None, NOW)
        store.put_pending("resend", "ses_b", intent("ses_b", "fake/third"), NOW)
        assert store.problem is not None
        assert {r["session_id"]: r["model"] for r in store.load_pending("resend", dict)} == {
            "ses_b": "fake/third", "ses_c": "fake/backup"}
        assert pending(path) == {"ses_a": "fake/backup", "ses_b": "fake/backup"}
        disk.free()
        store.heal(NOW + HEAL_RETRY_S)
        assert store.problem is None
        assert pending(path) == {"ses_b": "fake/third", "ses_c": "fake/backup"}
    with Store(path) as reopened:  # a restart reads them back, the other kind untouched
        assert sorted(r["session_id"] for r in reopened.load_pending("resend", dict)) == ["ses_b", "ses_c"]
        assert [r["model"] for r in reopened.load_pending("parked", dict)] == ["other"]


def test_pending_intents_are_rewritten_into_a_deleted_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "baton.db"
    with Store(path) as store:
        store.put_pending("resend", "ses_a", intent("ses_a"), NOW)
        path.unlink()
        store.put_pending("resend", "ses_b", intent("ses_b"), NOW)  # into the unlinked file: the mirror keeps it
        store.heal(NOW)
        assert store.problem is None
        assert pending(path) == {"ses_a": "fake/backup", "ses_b": "fake/backup"}


def test_an_unreadable_pending_row_is_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "baton.db"
    with Store(path) as store:
        store.put_pending("resend", "ses_ok", intent("ses_ok"), NOW)
    with raw(path) as db:
        db.execute("INSERT INTO pending VALUES ('resend', 'ses_bad', '{oops', 0)")
    with Store(path) as store, structlog.testing.capture_logs() as logs:
        assert [r["session_id"] for r in store.load_pending("resend", dict)] == ["ses_ok"]
    assert [(e["table"], e["id"]) for e in logs if e["event"] == "store: skipped an unreadable row"] == [
        ("pending", "resend:ses_bad")]
    with raw(path) as db:
        assert db.execute("SELECT table_name, row_id FROM quarantine").fetchall() == [("pending", "resend:ses_bad")]
        assert db.execute("SELECT key FROM pending").fetchall() == [("ses_ok",)]


def test_a_store_from_before_the_pending_table_is_migrated(tmp_path: Path) -> None:
    """Schema 3 (no ``pending``): read-only readers find no intents, a writer adds the table."""
    path = tmp_path / "baton.db"
    Store(path).close()
    with raw(path) as db:
        db.execute("DROP TABLE pending")
        db.execute("ALTER TABLE model_health DROP COLUMN source")
        db.execute("PRAGMA user_version = 3")
    with Store(path, readonly=True) as reader:
        assert reader.load_pending("resend", dict) == []
    with Store(path) as store:
        store.put_pending("resend", "ses_a", intent("ses_a"), NOW)
    assert pending(path) == {"ses_a": "fake/backup"}


# --- deleted or replaced file --------------------------------------------------------------------------


def fill_some(store: Store) -> None:
    store.save_tasks([("bg_1", task("bg_1")), ("bg_2", task("bg_2"))],
                     [box("nt_bg_1", "bg_1"), box("nt_bg_2", "bg_2", RowState.DELIVERED)], NOW)
    store.save_cooldown("a/b", NOW + 60, "rate limit", NOW)
    store.journal([note("one")])


@pytest.mark.parametrize("what", ["the file", "the whole state dir"])
def test_deleted_file_is_recreated_with_every_row(tmp_path: Path, what: str) -> None:
    path = tmp_path / "state" / "baton.db"
    with Store(path) as store, structlog.testing.capture_logs() as logs:
        fill_some(store)
        if what == "the file":
            path.unlink()
        else:
            shutil.rmtree(path.parent)
        # Written into the unlinked file: only the mirror keeps it.
        store.save_tasks([("bg_3", task("bg_3"))], [box("nt_bg_3", "bg_3")], NOW)
        store.save_cooldown("c/d", NOW + 30, "overloaded", NOW)
        store.journal([note("two")])
        assert store.problem is None
        store.heal(NOW)
        assert store.problem is None
        found = contents(path)
        # The journal explains, it is not state: its history went with the deleted file.
        assert found == {"tasks": ["bg_1", "bg_2", "bg_3"], "outbox": ["nt_bg_1", "nt_bg_2", "nt_bg_3"],
                         "cooldowns": [("a/b", NOW + 60), ("c/d", NOW + 30)], "journal": []}
        store.save_tasks([("bg_4", task("bg_4"))], (), NOW)  # and the new file takes writes again
        store.journal([note("three")])
        assert contents(path)["tasks"] == ["bg_1", "bg_2", "bg_3", "bg_4"]
        assert contents(path)["journal"] == ["three"]
    assert events(logs, "warning") == ["store degraded: keeping its state in memory until the file takes it again"]
    assert [e["problem"] for e in logs if e["log_level"] == "warning"] == ["store file was deleted; recreating"]
    assert events(logs, "info") == ["store recovered: the deleted file was recreated and re-persisted"]


def test_file_deleted_on_a_full_disk_is_recreated_once_space_returns(disk: Disk) -> None:
    """Closing the deleted file frees its space, so the mirror holds more than that: the rewrite fails."""
    path = disk.root / "baton.db"
    big = [(f"bg_big{i}", {**task(f"bg_big{i}"), "prompt": "x" * 150_000}) for i in range(3)]
    with Store(path) as store:
        fill_some(store)
        path.unlink()
        disk.fill()
        store.save_tasks(big, (), NOW)
        store.heal(NOW)
        assert store.problem is not None and store.problem.startswith("store file was deleted; recreating it failed")
        disk.free()
        store.heal(NOW + HEAL_RETRY_S)
        assert store.problem is None
        assert contents(path)["tasks"] == ["bg_1", "bg_2", "bg_big0", "bg_big1", "bg_big2"]


def test_state_dir_that_cannot_be_recreated_keeps_the_store_degraded(tmp_path: Path) -> None:
    """The state dir replaced by a regular file: heal says why, raises nothing, and recovers later."""
    path = tmp_path / "state" / "baton.db"
    with Store(path) as store:
        fill_some(store)
        shutil.rmtree(path.parent)
        path.parent.write_text("not a directory")
        store.heal(NOW)
        assert store.problem is not None
        assert store.problem.startswith(
            "store file was deleted; recreating it failed: cannot create the state directory")
        store.save_tasks([("bg_3", task("bg_3"))], (), NOW)
        path.parent.unlink()
        store.heal(NOW + HEAL_RETRY_S)
        assert store.problem is None
        assert contents(path)["tasks"] == ["bg_1", "bg_2", "bg_3"]


def test_file_moved_back_after_a_failed_reopen_is_opened_again(tmp_path: Path) -> None:
    """The file back under its old inode while the store's connection is closed: same identity, new connection."""
    path = tmp_path / "state" / "baton.db"
    aside = tmp_path / "aside.db"
    with Store(path) as store:
        fill_some(store)
        os.rename(path, aside)
        shutil.rmtree(path.parent)
        path.parent.write_text("in the way")
        store.heal(NOW)
        assert store.problem is not None
        path.parent.unlink()
        path.parent.mkdir()
        os.rename(aside, path)
        store.heal(NOW + HEAL_RETRY_S)
        assert store.problem is None
        assert contents(path)["tasks"] == ["bg_1", "bg_2"]


def test_replaced_file_is_detected_and_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "baton.db"
    other = tmp_path / "other.db"
    with Store(other) as stranger:
        stranger.save_tasks([("bg_x", task("bg_x"))], (), NOW)
        stranger.save_cooldown("x/y", NOW + 10, "theirs", NOW)
    with Store(path) as store, structlog.testing.capture_logs() as logs:
        fill_some(store)
        os.replace(other, path)
        store.heal(NOW)
        assert store.problem is None
        found = contents(path)
    assert found["tasks"] == ["bg_1", "bg_2"] and found["outbox"] == ["nt_bg_1", "nt_bg_2"]
    assert found["cooldowns"] == [("a/b", NOW + 60), ("x/y", NOW + 10)]
    assert [e["problem"] for e in logs if e["log_level"] == "warning"] == ["store file was replaced; rewriting it"]
    assert events(logs, "info") == ["store recovered: the replaced file was rewritten with baton's state"]


def test_file_replaced_by_a_newer_baton_s_store_keeps_the_store_degraded(tmp_path: Path) -> None:
    path = tmp_path / "baton.db"
    other = tmp_path / "other.db"
    Store(other).close()
    with raw(other) as db:
        db.execute("PRAGMA user_version = 99")
    with Store(path) as store:
        fill_some(store)
        os.replace(other, path)
        store.heal(NOW)
        assert store.problem is not None and "written by a newer baton" in store.problem
        assert [t["id"] for t in store.load_tasks()] == ["bg_1", "bg_2"]


# --- unreadable rows ---------------------------------------------------------------------------------


def corrupt(path: Path) -> None:
    """Good rows and one bad row of each kind, written behind the store's back."""
    with Store(path) as store:
        store.save_tasks([("bg_ok", task("bg_ok"))], [box("nt_ok", "bg_ok")], NOW)
        store.save_cooldown("a/b", NOW + 60, "rate limit", NOW)
        store.journal([note("fine")])
    bad_tasks = {
        "bg_notjson": "{not json",
        "bg_list": "[1, 2]",
        "bg_missing": json.dumps({"id": "bg_missing"}),  # Task.from_row: TypeError (fields missing)
        "bg_status": json.dumps({**task("bg_status"), "status": "exploded"}),  # ValueError
    }
    with raw(path) as db:
        db.executemany("INSERT INTO tasks VALUES (?, 'p', 'queued', ?, 0)", bad_tasks.items())
        db.execute("INSERT INTO outbox VALUES ('nt_nokind', 'p', 'pending', ?)",
                   (json.dumps({"id": "nt_nokind", "parent_session_id": "p"}),))  # KeyError
        db.execute("INSERT INTO journal(ts, session_id, kind, text, data) VALUES (1, 'ses_a', 'k', 'bad', '{oops')")
        db.execute("INSERT INTO model_health(model, until, reason, updated) VALUES ('c/d', 'soon', '', 0)")


BAD = {("tasks", "bg_notjson"), ("tasks", "bg_list"), ("tasks", "bg_missing"), ("tasks", "bg_status"),
       ("outbox", "nt_nokind"), ("model_health", "c/d")}


def test_unreadable_rows_are_skipped_and_quarantined_and_the_rest_loads(tmp_path: Path) -> None:
    path = tmp_path / "baton.db"
    corrupt(path)
    with structlog.testing.capture_logs() as logs, Store(path) as store:
        assert [t.id for t in store.load_tasks(Task.from_row)] == ["bg_ok"]
        assert [r.id for r in store.load_outbox(OutboxRow.from_row)] == ["nt_ok"]
        assert [m for m, _, _ in store.cooldowns(NOW)] == ["a/b"]
        assert [e.text for e in store.read_journal()] == ["fine"]
        assert store.problem is None
    warned = {(e["table"], e["id"]) for e in logs if e["event"] == "store: skipped an unreadable row"}
    assert warned == BAD | {("journal", "2")}
    with raw(path) as db:
        kept = {(t, r) for t, r in db.execute("SELECT table_name, row_id FROM quarantine")}
        reasons = dict(db.execute("SELECT row_id, reason FROM quarantine"))
        left = db.execute("SELECT count(*) FROM tasks").fetchone()[0]
    assert kept == BAD | {("journal", "2")}
    assert left == 1
    assert "TypeError" in reasons["bg_missing"] and "ValueError" in reasons["bg_status"]
    # Moved aside once: the next start reads a clean store and warns about nothing.
    with Store(path) as store, structlog.testing.capture_logs() as logs:
        assert [t.id for t in store.load_tasks(Task.from_row)] == ["bg_ok"]
        assert store.read_journal() and not logs


def test_readonly_store_skips_unreadable_rows_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "baton.db"
    corrupt(path)
    with Store(path, readonly=True) as store, structlog.testing.capture_logs() as logs:
        assert [t.id for t in store.load_tasks(Task.from_row)] == ["bg_ok"]
        assert [r.id for r in store.load_outbox(OutboxRow.from_row)] == ["nt_ok"]
        assert [m for m, _, _ in store.cooldowns(NOW)] == ["a/b"]
        assert [e.text for e in store.read_journal()] == ["fine"]
        store.load_tasks(Task.from_row)  # a second read does not warn again
    assert len([e for e in logs if e["log_level"] == "warning"]) == len(BAD) + 1
    with raw(path) as db:
        assert db.execute("SELECT count(*) FROM tasks").fetchone()[0] == 5


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "baton", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HOME": str(home), "XDG_STATE_HOME": str(home / "xdg")}, cwd=home)


def test_cli_reads_a_store_with_bad_rows_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "state" / "baton.db"
    corrupt(path)
    explained = cli("explain", "--state-dir", str(path.parent), home=tmp_path)
    listed = cli("tasks", "--all", "--json", "--state-dir", str(path.parent), "--listen", "127.0.0.1:9",
                 home=tmp_path)
    assert explained.returncode == 0 and "Traceback" not in explained.stderr
    assert "fine" in explained.stdout
    assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in listed.stderr
    assert [t["id"] for t in json.loads(listed.stdout)] == ["bg_ok"]


# --- opening -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("readonly", [False, True])
def test_store_from_a_newer_baton_is_refused_at_open(tmp_path: Path, readonly: bool) -> None:
    path = tmp_path / "baton.db"
    Store(path).close()
    with raw(path) as db:
        db.execute("PRAGMA user_version = 42")
    with pytest.raises(StoreTooNew) as raised:
        Store(path, readonly=readonly)
    assert str(raised.value) == (f"{path} was written by a newer baton (schema 42, this baton knows 5); "
                                 "upgrade baton or use another --state-dir")
    assert isinstance(raised.value, StoreError)


def test_state_dir_under_a_regular_file_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot create the state directory .*/file/state: Not a directory"):
        Store(tmp_path / "file" / "state" / "baton.db")


def test_state_dir_on_a_read_only_filesystem_is_a_store_error(tmp_path: Path) -> None:
    """A read-only tmpfs; where mounting is not allowed, a read-only directory (enough without root)."""
    root = tmp_path / "ro"
    root.mkdir()
    mounted = _mount(root, "ro,size=64k")
    if not mounted:
        root.chmod(0o555)
    try:
        with pytest.raises(StoreError, match="cannot create the state directory"):
            Store(root / "state" / "baton.db")
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(root)], check=True)
        root.chmod(0o755)
