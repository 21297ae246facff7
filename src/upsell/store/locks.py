"""Named locks: at most one holder at a time among every process on one database (the daily job's
lock, docs/service.md "Scheduler").

On PostgreSQL a lock is a session advisory lock (``pg_try_advisory_lock``) on a connection kept
for as long as the lock is held: the server frees it when that connection ends, so a process that
dies frees its locks at once. Its key is a hash of the name and the schema, so that workspaces in
other schemas of the same database do not share locks.

Elsewhere (SQLite) a lock is a row of the ``locks`` table, taken in an IMMEDIATE transaction (no
two processes can both find it free). A row past its ``expires_at`` is free: the holder renews it
every third of `ttl` from a thread of its own, so a lock held by a process that died is free again
within `ttl` seconds, and at once when that process ran on this host (its pid is gone).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import uuid
from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta
from types import TracebackType

import sqlalchemy as sa

from upsell.store.db import waiting
from upsell.store.schema import locks as locks_table

log = logging.getLogger("upsell.store.locks")

#: Seconds a lock row stays taken without a renewal (SQLite).
LOCK_TTL = 60.0


def holder_id() -> str:
    """Who takes a lock: host, process and a random part (two locks in one process differ)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_alive(holder: str) -> bool | None:
    """Whether the process of `holder` (a `holder_id`) still runs: False when it ran on this host
    and has ended, True when it runs here, None when it runs elsewhere (who can tell?)."""
    host, _, rest = holder.rpartition(":")[0].rpartition(":")
    if host != socket.gethostname() or not rest.isdigit():
        return None
    pid = int(rest)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def advisory_key(schema: str, name: str) -> int:
    """The signed 64-bit key of lock `name` in `schema` (PostgreSQL advisory locks)."""
    digest = hashlib.sha256(f"upsell:{schema}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class HeldLock(ABC):
    """A lock this process holds; `release` (or leaving the `with` block) frees it."""

    def __init__(self, db: sa.Engine, name: str, holder: str) -> None:
        self.db = db
        self.name = name
        self.holder = holder
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._free()

    @abstractmethod
    def _free(self) -> None:
        """Give the lock back (each kind of lock its own way)."""

    def __enter__(self) -> HeldLock:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


class _AdvisoryLock(HeldLock):
    def __init__(self, db: sa.Engine, name: str, holder: str, conn: sa.Connection, key: int):
        super().__init__(db, name, holder)
        self._conn = conn
        self._key = key

    def _free(self) -> None:
        try:
            self._conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
            self._conn.close()
        except sa.exc.DBAPIError:
            # The session is gone, and its locks with it; never pool a connection that may hold one.
            self._conn.invalidate()
            self._conn.close()


class _RowLock(HeldLock):
    def __init__(self, db: sa.Engine, name: str, holder: str, ttl: float) -> None:
        super().__init__(db, name, holder)
        self.ttl = ttl
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew, name=f"lock-{name}", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        t = locks_table.c
        while not self._stop.wait(self.ttl / 3):
            try:
                with self.db.begin() as conn:
                    kept = conn.execute(
                        sa.update(locks_table)
                        .where(t.name == self.name, t.holder == self.holder)
                        .values(expires_at=datetime.now(UTC) + timedelta(seconds=self.ttl))
                    ).rowcount
            except sa.exc.DBAPIError as exc:
                log.warning("could not renew lock %s: %s", self.name, exc)
                continue
            if not kept:
                log.error("lock %s was lost: another process took it after it expired", self.name)
                return

    def _free(self) -> None:
        self._stop.set()
        self._renewer.join()
        t = locks_table.c
        with self.db.begin() as conn:
            conn.execute(sa.delete(locks_table).where(t.name == self.name, t.holder == self.holder))


def try_lock(db: sa.Engine, name: str, *, ttl: float = LOCK_TTL) -> HeldLock | None:
    """Take lock `name` if no one holds it; None when someone does. Never waits."""
    holder = holder_id()
    if db.dialect.name == "postgresql":
        conn = db.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
            key = advisory_key(str(schema), name)
            query = sa.text("SELECT pg_try_advisory_lock(:key)")
            taken = conn.execute(query, {"key": key}).scalar_one()
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        if not taken:
            conn.close()
            return None
        return _AdvisoryLock(db, name, holder, conn, key)
    now = datetime.now(UTC)
    t = locks_table.c
    with db.connect() as conn:
        conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            row = conn.execute(sa.select(locks_table).where(t.name == name)).first()
            # A row left by a process of this host that has ended is free at once.
            if row is not None and row.expires_at > now and holder_alive(row.holder) is not False:
                return None
            conn.execute(sa.delete(locks_table).where(t.name == name))
            conn.execute(
                sa.insert(locks_table).values(
                    name=name,
                    holder=holder,
                    acquired_at=now,
                    expires_at=now + timedelta(seconds=ttl),
                )
            )
    return _RowLock(db, name, holder, ttl)


def wait_xact_lock(conn: sa.Connection, name: str) -> None:
    """Hold lock `name` until `conn`'s transaction ends, waiting for another holder as the
    engine's transactions wait (`store.db.waiting`: saying so, WorkspaceBusy past the timeout).

    PostgreSQL only (``pg_try_advisory_xact_lock``): two imports there would otherwise write the
    same rows in two orders and deadlock, or both insert one new user. On SQLite, whose IMMEDIATE
    transactions already have the one write lock, it does nothing."""
    if conn.dialect.name != "postgresql":
        return
    schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
    query = sa.text("SELECT pg_try_advisory_xact_lock(:key)")
    key = {"key": advisory_key(str(schema), name)}
    waiting(conn.engine).wait(lambda: bool(conn.execute(query, key).scalar_one()))
