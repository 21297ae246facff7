"""The store's tables as Arrow, for the engine (architecture.md: "data read from the store as Arrow").

Rows are read in batches with SQLAlchemy Core and turned into Arrow record batches column by column,
so memory holds one batch of Python rows at a time. Timestamps come out as UTC microseconds,
decimals as their exact strings, JSON as its text: the engine parses what it needs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import pyarrow as pa
import sqlalchemy as sa

from upsell.columns import TIMESTAMP, input_schema
from upsell.store.db import IN_CHUNK
from upsell.store.schema import accounts, contacts, events, refusals, subscription_items

BATCH_ROWS = 50_000
#: The store's tables in the shapes of the input files (`upsell.columns`): accounts without the
#: name and email the engine never reads, events with their arrival number instead of message_id.
ACCOUNT_SCHEMA = input_schema("accounts", without=("name", "email"))
SUBSCRIPTION_SCHEMA = input_schema("subscriptions")
EVENT_SCHEMA = pa.schema([("seq", pa.int64()), *input_schema("events", without=("message_id",))])


def _utc(value: datetime | None) -> datetime | None:
    """The database gives naive UTC (the raw column, read without UTCDateTime's processing)."""
    return None if value is None else value.replace(tzinfo=UTC)


def _batches(
    conn: sa.Connection, query: sa.Executable, schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    times = {f.name for f in schema if pa.types.is_timestamp(f.type)}
    result = conn.execution_options(yield_per=BATCH_ROWS).execute(query)
    for rows in result.partitions():
        columns = list(zip(*rows, strict=True))
        arrays = []
        for field, values in zip(schema, columns, strict=True):
            if field.name in times:
                values = tuple(_utc(v) for v in values)
            arrays.append(pa.array(values, field.type))
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def _read(conn: sa.Connection, query: sa.Executable, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_batches(list(_batches(conn, query, schema)), schema=schema)


def _raw(column: sa.ColumnElement[object]) -> sa.ColumnElement[object]:
    """The stored value without the column type's Python-side processing (much faster)."""
    if isinstance(column.type, sa.JSON):
        return sa.cast(column, sa.Text)
    return sa.type_coerce(column, column.type.impl if hasattr(column.type, "impl") else column.type)


def accounts_table(*, conn: sa.Connection, account_ids: Sequence[str] | None = None) -> pa.Table:
    """Every account, or those of `account_ids` (a trigger's few: at most `IN_CHUNK`)."""
    c = accounts.c
    cols = [c.account_id, c.created_at, c.industry, c.employees, c.country, c.currency]
    query = sa.select(*(_raw(x) for x in [*cols, c.language, c.traits])).order_by(c.account_id)
    if account_ids is not None:
        query = query.where(c.account_id.in_(_few(account_ids)))
    return _read(conn, query, ACCOUNT_SCHEMA)


def subscriptions_table(
    *, conn: sa.Connection, account_ids: Sequence[str] | None = None
) -> pa.Table:
    """Every subscription row, or those of `account_ids`."""
    c = subscription_items.c
    cols = [c.account_id, c.item_id, c.started_at, c.ended_at, c.quantity, c.interval]
    query = sa.select(*(_raw(x) for x in [*cols, c.unit_price, c.currency, c.status])).order_by(
        c.account_id, c.started_at, c.item_id
    )
    if account_ids is not None:
        query = query.where(c.account_id.in_(_few(account_ids)))
    return _read(conn, query, SUBSCRIPTION_SCHEMA)


def event_batches(
    *,
    conn: sa.Connection,
    after_seq: int = 0,
    upto_seq: int | None = None,
    account_ids: Sequence[str] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Events stored after `after_seq` and up to `upto_seq` (the store's arrival order), of every
    account or of `account_ids`."""
    c = events.c
    cols = [c.seq, c.account_id, c.user_id, c.event, c.timestamp, c.properties]
    query = sa.select(*(_raw(x) for x in cols)).where(c.seq > after_seq).order_by(c.seq)
    if upto_seq is not None:
        query = query.where(c.seq <= upto_seq)
    if account_ids is not None:
        query = query.where(c.account_id.in_(_few(account_ids)))
    yield from _batches(conn, query, EVENT_SCHEMA)


def _few(account_ids: Sequence[str]) -> list[str]:
    if len(account_ids) > IN_CHUNK:
        raise ValueError(f"at most {IN_CHUNK} accounts at a time, not {len(account_ids)}")
    return list(account_ids)


def last_event_seq(*, conn: sa.Connection) -> int:
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.seq), 0))).scalar_one())


CONTACT_SCHEMA = pa.schema(
    [
        ("account_id", pa.string()),
        ("as_of", TIMESTAMP),
        ("kind", pa.string()),
        ("offer_id", pa.string()),
        ("item_id", pa.string()),
        ("channel", pa.string()),
        ("placement", pa.string()),
        ("playbook", pa.string()),
        ("experiment", pa.string()),
        ("variant", pa.string()),
        ("held_out", pa.bool_()),
        ("status", pa.string()),
        ("decision", pa.string()),
    ]
)
REFUSAL_SCHEMA = pa.schema(
    [("as_of", TIMESTAMP), ("account_id", pa.string()), ("playbook", pa.string())]
)
RESPONSE_SCHEMA = input_schema("events", without=("user_id", "message_id"))


def contacts_arrow(*, conn: sa.Connection) -> pa.Table:
    """Every contact (held out ones included), without its message; ``decision`` is the decision
    line as JSON text."""
    c = contacts.c
    cols = [c[f.name] for f in CONTACT_SCHEMA]
    return _read(conn, sa.select(*(_raw(x) for x in cols)).order_by(c.contact_id), CONTACT_SCHEMA)


def refusals_arrow(*, conn: sa.Connection) -> pa.Table:
    c = refusals.c
    query = sa.select(_raw(c.as_of), c.account_id, c.playbook).order_by(c.id)
    return _read(conn, query, REFUSAL_SCHEMA)


def events_named(*, conn: sa.Connection, names: Sequence[str]) -> pa.Table:
    """The events of the given names (properties as JSON text), oldest first."""
    c = events.c
    cols = [c.account_id, c.event, c.timestamp, c.properties]
    query = sa.select(*(_raw(x) for x in cols)).where(c.event.in_(names)).order_by(c.timestamp)
    return _read(conn, query, RESPONSE_SCHEMA)
