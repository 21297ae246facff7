"""The bulk writes of live ingestion, through the driver's executemany with values already in the
driver's form.

SQLAlchemy's per-value bind processing (a timestamp through `UTCDateTime` and the dialect's
DATETIME, a JSON value through the serializer) costs as much as SQLite's own work on an insert of
events; here each statement is compiled by SQLAlchemy once per dialect and its values converted
once per row, in the same forms SQLAlchemy would give them (so reading them back through the
tables' types is unchanged).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pydantic_core
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite


def upsert(conn: sa.Connection, table: sa.Table) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def json_text(value: Any) -> str:
    """A JSON column's value as the driver takes it. The service's parser refuses NaN and
    Infinity, which PostgreSQL would refuse; callers of other origins check for them first."""
    return pydantic_core.to_json(value).decode()


def _naive(at: datetime) -> datetime:
    return at.replace(tzinfo=None) if at.tzinfo is UTC else at.astimezone(UTC).replace(tzinfo=None)


def _sqlite_text(at: datetime) -> str:
    # SQLAlchemy's SQLite DATETIME storage format, YYYY-MM-DD HH:MM:SS.ffffff (compared as text).
    if at.tzinfo is UTC:  # the common case, without a copy: the first 26 characters, no offset
        return at.isoformat(" ", "microseconds")[:26]
    return _naive(at).isoformat(" ", "microseconds")


def instants(conn: sa.Connection) -> Callable[[datetime], Any]:
    """A function that turns an aware datetime into what a `UTCDateTime` column's driver takes."""
    return _sqlite_text if conn.dialect.name == "sqlite" else _naive


_SQL: dict[tuple[str, str], tuple[str, tuple[str, ...] | None]] = {}


def execute_many(
    conn: sa.Connection,
    key: str,
    build: Callable[[sa.Connection], Any],
    columns: tuple[str, ...],
    rows: Sequence[tuple[Any, ...]],
) -> int:
    """Run the statement `build(conn)` makes (compiled once per dialect, cached under `key`) once
    per row of `rows`, whose values are in `columns`' order and in the driver's form; returns how
    many rows it changed."""
    if not rows:
        return 0
    entry = _SQL.get((conn.dialect.name, key))
    if entry is None:
        compiled = build(conn).compile(dialect=conn.dialect, column_keys=list(columns))
        order = tuple(compiled.positiontup) if compiled.positional else None
        entry = _SQL[(conn.dialect.name, key)] = (str(compiled), order)
    sql, order = entry
    params: list[Any]
    if order is None:
        params = [dict(zip(columns, row, strict=True)) for row in rows]
    elif order == columns:
        params = list(rows)
    else:
        index = [columns.index(name) for name in order]
        params = [tuple(row[i] for i in index) for row in rows]
    result = conn.exec_driver_sql(sql, params, execution_options={"preserve_rowcount": True})
    return max(result.rowcount, 0)


#: From this many rows, PostgreSQL inserts go through COPY (`copy_new`): below it, the extra
#: statements of the staging table cost more than executemany's per-row work saves.
COPY_MIN_ROWS = 50


def copy_new(
    conn: sa.Connection,
    table: str,
    columns: tuple[str, ...],
    rows: Sequence[tuple[Any, ...]],
    *,
    unique: str,
) -> int:
    """PostgreSQL: store the rows of `rows` (in `columns`' order, in the driver's form) whose
    `unique` column is new, through COPY into a temporary twin of `table` and one INSERT …
    SELECT … ON CONFLICT DO NOTHING; returns how many were inserted.

    psycopg's executemany spends about 15 µs of Python per row; COPY's rows are written by its C
    code. The twin lives as long as the connection, and is emptied after each use (in the same
    transaction, so a rollback undoes both).
    """
    cols = ", ".join(f'"{c}"' for c in columns)
    staging = f'"upsell_{table}_in"'
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {staging} AS "
            f'SELECT {cols} FROM "{table}" WITH NO DATA'
        )
        with cur.copy(f"COPY {staging} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(
            f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM {staging} '
            f'ON CONFLICT ("{unique}") DO NOTHING'
        )
        inserted = int(max(cur.rowcount, 0))
        cur.execute(f"DELETE FROM {staging}")
    return inserted
