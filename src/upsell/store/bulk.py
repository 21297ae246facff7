"""The bulk writes of live ingestion, through the driver with values already in the driver's form.

SQLAlchemy's per-value bind processing (a timestamp through `UTCDateTime` and the dialect's
DATETIME, a JSON value through the serializer) costs as much as SQLite's own work on an insert of
events; here each statement is compiled by SQLAlchemy once per dialect and its values converted
once per row, in the same forms SQLAlchemy would give them (so reading them back through the
tables' types is unchanged).

On SQLite the rows go through the driver's executemany (a loop in C, in process). On PostgreSQL
psycopg's executemany costs about 15 µs of Python, a message and a statement execution per row,
and its array parameters are escaped in Python (30 µs a row for an event); there the rows go as
one JSON array (serialized by pydantic-core) in a single ``INSERT … SELECT … FROM
json_to_recordset(%s)`` with the statement's own ``ON CONFLICT`` clause: one round trip and one
set-based statement, the same text every time (so psycopg prepares it once).
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


#: Instants already converted, per dialect: an ingested event's instant is written up to four times
#: (the event, its user's first and last seen, its new account's creation) and formatting one for
#: SQLite costs 1.5 µs. Emptied when it reaches `_CONVERTED_MAX` entries.
_CONVERTED: dict[str, dict[datetime, Any]] = {}
_CONVERTED_MAX = 100_000


def instants(conn: sa.Connection) -> Callable[[datetime], Any]:
    """A function that turns an aware datetime into what a `UTCDateTime` column's driver takes."""
    name = conn.dialect.name
    convert = _sqlite_text if name == "sqlite" else _naive
    done = _CONVERTED.setdefault(name, {})
    if len(done) >= _CONVERTED_MAX:
        done.clear()

    def instant(at: datetime) -> Any:
        found = done.get(at)
        if found is None:
            found = done[at] = convert(at)
        return found

    return instant


_SQL: dict[tuple[str, str], tuple[str, tuple[str, ...] | None]] = {}


def execute_many(
    conn: sa.Connection,
    key: str,
    build: Callable[[sa.Connection], Any],
    columns: tuple[str, ...],
    rows: Sequence[tuple[Any, ...]],
) -> int:
    """Run the INSERT `build(conn)` makes (compiled once per dialect, cached under `key`) for
    every row of `rows`, whose values are in `columns`' order and in the driver's form; returns how
    many rows it changed. On PostgreSQL the rows must not repeat a key of an ``ON CONFLICT DO
    UPDATE`` (one statement cannot update a row twice)."""
    if not rows:
        return 0
    if conn.dialect.name == "postgresql":
        return _recordset(conn, key, build, columns, rows)
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


def _recordset_sql(conn: sa.Connection, statement: Any, columns: tuple[str, ...]) -> str:
    """PostgreSQL: `statement` (an INSERT of one row of `columns`, maybe with ON CONFLICT) as
    ``INSERT INTO t (columns) SELECT … FROM json_to_recordset(%s::json) AS v(column type, …) ON
    CONFLICT …``. A JSON column's value comes as its text (the driver's form) and is cast back."""
    table: sa.Table = statement.table
    compiled = str(statement.compile(dialect=conn.dialect, column_keys=list(columns)))
    _, found, conflict = compiled.partition(" ON CONFLICT ")
    if "%(" in conflict:
        raise ValueError(f"the ON CONFLICT clause of {table.name} binds values: {conflict}")
    quote = conn.dialect.identifier_preparer.quote
    defined, selected = [], []
    for name in columns:
        kind = table.c[name].type.compile(dialect=conn.dialect)
        if kind in ("JSON", "JSONB"):
            defined.append(f"{quote(name)} TEXT")
            selected.append(f"v.{quote(name)}::{kind}")
        else:
            defined.append(f"{quote(name)} {kind}")
            selected.append(f"v.{quote(name)}")
    names = ", ".join(quote(n) for n in columns)
    target = conn.dialect.identifier_preparer.format_table(table)
    return (
        f"INSERT INTO {target} ({names}) SELECT {', '.join(selected)} "
        f"FROM json_to_recordset(%s::JSON) AS v({', '.join(defined)})"
        + (found + conflict if found else "")
    )


def _recordset(
    conn: sa.Connection,
    key: str,
    build: Callable[[sa.Connection], Any],
    columns: tuple[str, ...],
    rows: Sequence[tuple[Any, ...]],
) -> int:
    entry = _SQL.get(("postgresql", key))
    if entry is None:
        entry = _SQL[("postgresql", key)] = (_recordset_sql(conn, build(conn), columns), columns)
    sql, order = entry
    if order != columns:
        raise ValueError(f"{key}: compiled for columns {order}, called with {columns}")
    payload = pydantic_core.to_json([dict(zip(columns, row, strict=True)) for row in rows])
    result = conn.exec_driver_sql(
        sql, (payload.decode(),), execution_options={"preserve_rowcount": True}
    )
    return max(result.rowcount, 0)
