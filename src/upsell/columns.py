"""The columns of the tables that cross layers, defined once (data-contract.md, Inputs).

`COLUMNS` are the three input tables: `upsell.ingest` reads them from files, the simulator writes
them. Their Arrow types follow from the column types (`input_schema`): instants are UTC
microseconds, decimals their exact text, JSON its text. The store hands its own tables to the
engine in these shapes too (`upsell.store.arrow`), so the engine and every writer agree on them.
Like `upsell.errors`, this module serves every layer but the domain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

ColumnType = Literal["string", "timestamp", "integer", "decimal", "json"]
InputTable = Literal["accounts", "subscriptions", "events"]


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    required: bool = False


COLUMNS: Mapping[InputTable, tuple[Column, ...]] = {
    "accounts": (
        Column("account_id", "string", required=True),
        Column("created_at", "timestamp", required=True),
        Column("name", "string"),
        Column("industry", "string"),
        Column("employees", "integer"),
        Column("country", "string"),
        Column("currency", "string"),
        Column("language", "string"),
        Column("email", "string"),
        Column("traits", "json"),
    ),
    "subscriptions": (
        Column("account_id", "string", required=True),
        Column("item_id", "string", required=True),
        Column("started_at", "timestamp", required=True),
        Column("ended_at", "timestamp"),
        Column("quantity", "integer"),
        Column("interval", "string"),
        Column("unit_price", "decimal"),
        Column("currency", "string"),
        Column("status", "string"),
    ),
    "events": (
        Column("account_id", "string", required=True),
        Column("user_id", "string"),
        Column("event", "string", required=True),
        Column("timestamp", "timestamp", required=True),
        Column("properties", "json"),
        Column("message_id", "string"),
    ),
}

#: An instant in Arrow: UTC, microseconds.
TIMESTAMP = pa.timestamp("us", tz="UTC")
ARROW_TYPES: Mapping[ColumnType, pa.DataType] = {
    "string": pa.string(),
    "timestamp": TIMESTAMP,
    "integer": pa.int64(),
    "decimal": pa.string(),
    "json": pa.string(),
}


def input_schema(table: InputTable, *, without: tuple[str, ...] = ()) -> pa.Schema:
    """The Arrow schema of an input table, in `COLUMNS`' order, less the columns `without`."""
    return pa.schema(
        [(c.name, ARROW_TYPES[c.type]) for c in COLUMNS[table] if c.name not in without]
    )
