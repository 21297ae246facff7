"""The named lock that keeps the daily job to one runner (store/locks.py), between threads and
between processes, on SQLite and on PostgreSQL; and `upsell run` under it."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from cli_runner import run
from upsell.flows.runs import JOB_LOCK
from upsell.store.db import connect
from upsell.store.locks import HeldLock, try_lock
from upsell.store.runs import list_runs

HOLDER = """
import sys
from upsell.store.db import connect
from upsell.store.locks import try_lock
lock = try_lock(connect(sys.argv[1]), "job", ttl=float(sys.argv[2]))
print("held" if lock else "busy", flush=True)
sys.stdin.readline()
"""


def test_of_threads_racing_for_a_lock_exactly_one_gets_it(db: sa.Engine) -> None:
    got: list[HeldLock | None] = []
    start = threading.Barrier(8)

    def take() -> None:
        start.wait()
        got.append(try_lock(db, "job"))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    held = [lock for lock in got if lock is not None]
    assert len(got) == 8 and len(held) == 1
    other = try_lock(db, "other")
    assert other is not None, "another name is another lock"
    other.release()
    held[0].release()
    again = try_lock(db, "job")
    assert again is not None
    again.release()


def _holder(url: str, ttl: float) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, str(ttl)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "held"
    return child


def test_a_lock_held_by_another_process_is_refused_until_it_ends(
    db: sa.Engine, database_url: str
) -> None:
    """The holder keeps its lock past the time-to-live (it renews it); when it is killed, the lock
    is free at once on PostgreSQL (the session ends) and after the time-to-live on SQLite."""
    ttl = 1.0
    child = _holder(database_url, ttl)
    try:
        deadline = time.monotonic() + 2.5 * ttl
        while time.monotonic() < deadline:
            assert try_lock(db, "job") is None, "the holder renews its lock"
            time.sleep(0.2)
        child.send_signal(signal.SIGKILL)
        child.wait()
        killed = time.monotonic()
        lock = None
        while lock is None and time.monotonic() < killed + 3 * ttl:
            lock = try_lock(db, "job")
            time.sleep(0.05)
        assert lock is not None, "a lock of a dead process is free again"
        if db.dialect.name == "postgresql":
            assert time.monotonic() - killed < ttl
        lock.release()
        second = _holder(database_url, ttl)
        second.communicate("\n", timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()  # closes its pipes


def test_upsell_run_is_recorded_and_stops_while_another_run_holds_the_lock(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path  # where database_url's SQLite file is
    if not database_url.startswith("sqlite"):
        monkeypatch.setenv("UPSELL_DATABASE_URL", database_url)
    else:
        monkeypatch.delenv("UPSELL_DATABASE_URL", raising=False)
    assert run("init", folder).exit_code == 0
    db = connect(database_url)
    try:
        lock = try_lock(db, JOB_LOCK)
        assert lock is not None
        busy = run("run", "-w", folder, "--as-of", "2026-04-15")
        assert busy.exit_code == 2
        assert "another run of the daily job is in progress" in busy.stderr
        lock.release()
        failed = run("run", "-w", folder, "--as-of", "2026-04-15")
        assert failed.exit_code == 2 and "has no catalog yet" in failed.stderr
        with db.connect() as conn:
            (recorded,) = list_runs(conn=conn)
        assert (recorded.trigger, recorded.status) == ("cli", "failed")
        assert recorded.error is not None and "has no catalog yet" in recorded.error
        freed = try_lock(db, JOB_LOCK)
        assert freed is not None, "the failed run freed the lock"
        freed.release()
    finally:
        db.dispose()
