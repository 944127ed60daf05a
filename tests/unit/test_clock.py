"""One Clock port: the system clock, the fake one tests move, and where baton reads it."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from baton.clock import Clock, SystemClock
from baton.daemon import ServeOptions
from baton.store import Store
from baton.testing.clock import FakeClock


def test_system_clock_is_wall_time() -> None:
    before = time.time()
    assert before <= SystemClock().time() <= time.time()


def test_fake_clock_stands_still_until_moved() -> None:
    fake = FakeClock(1000.0)
    clock: Clock = fake
    assert clock.time() == clock.time() == 1000.0
    fake.advance(30.5)
    assert clock.time() == 1030.5
    fake.now = 5.0
    assert clock.time() == 5.0
    assert abs(FakeClock().time() - time.time()) < 60  # by default it starts at the real time


def test_serve_uses_the_system_clock_unless_given_one() -> None:
    assert isinstance(ServeOptions(opencode_url="http://x").clock, SystemClock)
    fake = FakeClock(7.0)
    assert ServeOptions(opencode_url="http://x", clock=fake).clock is fake


def test_the_store_dates_what_no_caller_dates_by_its_clock(tmp_path: Path) -> None:
    """A quarantined row and a pending intent written without ``now`` get the store's clock's time."""
    path = tmp_path / "baton.db"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO tasks VALUES ('bg_bad', 'p', 'queued', '{not json', 0)")
    db.close()
    with Store(path, clock=FakeClock(1234.0)) as store:
        store.load_tasks()
        store.put_pending("kind", "key", {"a": 1})
    with sqlite3.connect(path) as db:
        ((ts,),) = db.execute("SELECT ts FROM quarantine WHERE row_id = 'bg_bad'").fetchall()
        pending = db.execute("SELECT * FROM pending").fetchall()
    db.close()
    assert ts == 1234.0
    assert any(1234.0 in row for row in pending), json.dumps(pending)
