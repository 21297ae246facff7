"""Opening the database and bringing its schema up to date.

The embedded default is a SQLite file in the workspace, opened in WAL mode so that the CLI and a
running server can share it; production is PostgreSQL. Schema changes go through the Alembic
migrations shipped inside this package, so no alembic.ini is needed at run time.

SQLite transactions: Python's sqlite3 driver normally opens a transaction only before the first
INSERT/UPDATE/DELETE, which breaks SAVEPOINT and makes earlier SELECTs run outside the transaction.
`connect` turns that off and emits BEGIN itself, so a SQLAlchemy transaction is a real SQLite
transaction on both databases. A transaction that will write after reading should be started with
``conn.execution_options(sqlite_begin="IMMEDIATE")`` (ignored on PostgreSQL): it then waits for the
write lock up front (busy_timeout) instead of failing with "database is locked" when another process
wrote in between its read and its write.

Waiting for other writers (docs/operations.md, "Concurrency"): a connection waits up to the
engine's `lock_timeout` for SQLite's write lock (busy_timeout), and an IMMEDIATE transaction waits
for it in steps of a second, calling the engine's `on_wait` after each, so that a command can say
that it waits; past the timeout it raises WorkspaceBusy. Imports on PostgreSQL wait for each other
the same way (`store.locks.wait_xact_lock`).
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from upsell.errors import WorkspaceBusy, WorkspaceError

DATABASE_FILE = "upsell.db"
MIGRATIONS = Path(__file__).parent / "migrations"

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA synchronous=NORMAL",
    # Live ingestion commits often: checkpoint the WAL every ~40 MB instead of every 4 MB, and give
    # each connection a 32 MB page cache (the message-id index is written at random places).
    "PRAGMA wal_autocheckpoint=10000",
    "PRAGMA cache_size=-32768",
)
_BEGIN_MODES = ("DEFERRED", "IMMEDIATE", "EXCLUSIVE")

# At most this many bound values in one IN (...): old SQLite builds allow 999 variables in total.
IN_CHUNK = 900

# PostgreSQL refuses NaN and Infinity in JSON while SQLite would store them: refuse them everywhere.
_json_dumps = functools.partial(json.dumps, allow_nan=False)

T = TypeVar("T")

#: Seconds a command waits for another process's writes by default (UPSELL_LOCK_TIMEOUT_SECONDS).
LOCK_TIMEOUT = 300.0
#: The step of an IMMEDIATE transaction's wait for SQLite's write lock, in seconds.
_WAIT_STEP = 1.0

OnWait = Callable[[float, float], None]
"""Told, while a transaction waits for another process's writes, how long it has waited and how
long it will wait at most (seconds)."""


@dataclass(frozen=True)
class Waiting:
    """How an engine's transactions wait for other writers: at most `timeout` seconds, calling
    `on_wait` (None: silently)."""

    timeout: float = LOCK_TIMEOUT
    on_wait: OnWait | None = None

    def wait(self, what: Callable[[], bool], step: float = 0.5) -> None:
        """Call `what` until it says True, telling `on_wait` between calls; WorkspaceBusy once
        `timeout` has passed."""
        start = time.monotonic()
        while not what():
            waited = time.monotonic() - start
            if waited >= self.timeout:
                raise WorkspaceBusy(waited, self.timeout)
            if self.on_wait is not None:
                self.on_wait(waited, self.timeout)
            time.sleep(min(step, max(self.timeout - waited, 0)))


_WAITING: weakref.WeakKeyDictionary[sa.Engine, Waiting] = weakref.WeakKeyDictionary()


def waiting(db: sa.Engine) -> Waiting:
    """How `db`'s transactions wait for other writers (`connect`'s `lock_timeout`, `on_wait`)."""
    return _WAITING.get(db) or Waiting()


def in_chunks(values: Iterable[T], size: int = IN_CHUNK) -> Iterator[list[T]]:
    """Split `values` into lists of at most `size`, for IN queries that stay under every limit."""
    chunk: list[T] = []
    for value in values:
        chunk.append(value)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


_WRITERS: weakref.WeakKeyDictionary[sa.Engine, threading.Lock] = weakref.WeakKeyDictionary()
_WRITERS_LOCK = threading.Lock()


def sqlite_writer(db: sa.Engine) -> threading.Lock:
    """One writer at a time per SQLite database in this process (live ingestion, the trigger
    worker): SQLite has one write lock, and threads waiting on it in-process are woken at once
    instead of sleeping in its busy handler."""
    with _WRITERS_LOCK:
        lock = _WRITERS.get(db)
        if lock is None:
            lock = _WRITERS[db] = threading.Lock()
        return lock


def sqlite_url(folder: Path) -> str:
    """The URL of a workspace's embedded database, ``folder/upsell.db`` (absolute)."""
    path = (Path(folder) / DATABASE_FILE).resolve()
    return f"sqlite+pysqlite:///{path}"


def _safe(url: str | sa.URL) -> str:
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable database URL>"


def _busy_timeout(dbapi_connection: Any, seconds: float) -> None:
    dbapi_connection.execute(f"PRAGMA busy_timeout={int(seconds * 1000)}")


def _on_sqlite_connect(timeout: float) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN instead of the driver (module docstring).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in _SQLITE_PRAGMAS:
                cursor.execute(pragma)
        finally:
            cursor.close()
        _busy_timeout(dbapi_connection, timeout)

    return on_connect


def is_locked(exc: BaseException) -> bool:
    """Whether `exc` is SQLite's "database is locked": another process kept the write lock."""
    orig = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    return isinstance(orig, sqlite3.OperationalError) and "locked" in str(orig)


def _on_sqlite_begin(conn: sa.Connection) -> None:
    mode = str(conn.get_execution_options().get("sqlite_begin", "DEFERRED")).upper()
    if mode not in _BEGIN_MODES:
        raise ValueError(f"sqlite_begin must be one of {', '.join(_BEGIN_MODES)}, got {mode!r}")
    if mode == "DEFERRED":
        conn.exec_driver_sql("BEGIN DEFERRED")
        return
    # Wait for the write lock a step at a time, to say so between steps (module docstring).
    how = waiting(conn.engine)
    raw = conn.connection.driver_connection
    assert raw is not None
    _busy_timeout(raw, min(_WAIT_STEP, how.timeout))

    def begin() -> bool:
        try:
            raw.execute(f"BEGIN {mode}")
        except sqlite3.OperationalError as exc:
            if is_locked(exc):
                return False
            raise
        return True

    try:
        how.wait(begin, step=0)
    finally:
        _busy_timeout(raw, how.timeout)


def connect(
    url: str, *, lock_timeout: float = LOCK_TIMEOUT, on_wait: OnWait | None = None
) -> sa.Engine:
    """An engine for `url`, checked by opening one connection; its transactions wait up to
    `lock_timeout` seconds for other processes' writes, telling `on_wait` (module docstring).

    Raises WorkspaceError, naming the URL with its password hidden, when the URL is malformed, its
    driver is missing or the database cannot be reached.
    """
    try:
        parsed = sa.make_url(url)
        engine = sa.create_engine(
            parsed,
            json_serializer=_json_dumps,
            pool_pre_ping=parsed.get_backend_name() != "sqlite",
        )
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise WorkspaceError(f"cannot use database {_safe(url)}: {exc}") from exc
    _WAITING[engine] = Waiting(lock_timeout, on_wait)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _on_sqlite_connect(lock_timeout))
        sa.event.listen(engine, "begin", _on_sqlite_begin)
    try:
        with engine.connect():
            pass
    except sa.exc.DBAPIError as exc:
        engine.dispose()
        reason = str(exc.orig).strip() if exc.orig is not None else str(exc)
        raise WorkspaceError(f"cannot open database {_safe(url)}: {reason}") from exc
    return engine


def _config() -> Config:
    config = Config()
    # ConfigParser interpolates '%', which may appear in a path.
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    return config


def migrate(engine: sa.Engine) -> None:
    """Upgrade the database to the newest migration, in one transaction; a no-op when current."""
    config = _config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def current_revision(engine: sa.Engine) -> str | None:
    """The migration the database is at; None for a database never migrated."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    """The newest migration this version of upsell ships."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS}")
    return head


def is_current(engine: sa.Engine) -> bool:
    """True when the database's schema is the one this version of upsell expects."""
    return current_revision(engine) == head_revision()
