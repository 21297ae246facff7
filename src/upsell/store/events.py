"""Product usage events, de-duplicated on message_id."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from upsell.domain.events import Event
from upsell.store import bulk
from upsell.store.db import in_chunks
from upsell.store.schema import events as events_table


def insert_events(*, conn: sa.Connection, events: Sequence[Event]) -> tuple[int, int]:
    """Store events whose message_id is new; returns (new, duplicates).

    A duplicate is an event whose message_id is stored already or appeared earlier in `events` (the
    first one is kept). Stored message_ids are looked up before inserting, so the counts are exact
    on every database; two writers racing on the same message_id get an IntegrityError instead.
    """
    fresh: dict[str, Event] = {}
    for event in events:
        fresh.setdefault(event.message_id, event)
    for chunk in in_chunks(list(fresh)):
        query = sa.select(events_table.c.message_id).where(events_table.c.message_id.in_(chunk))
        for message_id in conn.execute(query).scalars():
            del fresh[message_id]
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = [
        {
            "message_id": event.message_id,
            "account_id": event.account_id,
            "user_id": event.user_id,
            "event": event.event,
            "timestamp": event.timestamp,
            "properties": dict(event.properties),
            "received_at": now,
        }
        for event in fresh.values()
    ]
    if rows:
        conn.execute(sa.insert(events_table), rows)
    return len(rows), len(events) - len(rows)


_COLUMNS = (
    "message_id",
    "account_id",
    "user_id",
    "event",
    "timestamp",
    "properties",
    "received_at",
)


def add_events(*, conn: sa.Connection, events: Sequence[Event], now: datetime) -> int:
    """Store events whose message_id is new, in one INSERT … ON CONFLICT DO NOTHING (safe when
    two writers race on a message_id; `bulk.execute_many`); returns how many were new."""
    instant = bulk.instants(conn)
    received = instant(now)
    rows = [
        (
            e.message_id,
            e.account_id,
            e.user_id,
            e.event,
            instant(e.timestamp),
            bulk.json_text(e.properties),
            received,
        )
        for e in events
    ]
    return bulk.execute_many(conn, "events", _insert, _COLUMNS, rows)


def _insert(conn: sa.Connection) -> Any:
    return bulk.upsert(conn, events_table).on_conflict_do_nothing()


def stored_event_ids(*, conn: sa.Connection, ids: Iterable[str]) -> set[str]:
    """The subset of message ids `ids` that `events` holds."""
    found: set[str] = set()
    for chunk in in_chunks(set(ids)):
        query = sa.select(events_table.c.message_id).where(events_table.c.message_id.in_(chunk))
        found.update(conn.execute(query).scalars())
    return found


def count_events(*, conn: sa.Connection) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(events_table)).scalar_one()


def events_for(*, conn: sa.Connection, account_id: str) -> list[Event]:
    """An account's events in the order they happened (ties in the order they were stored)."""
    query = (
        sa.select(events_table)
        .where(events_table.c.account_id == account_id)
        .order_by(events_table.c.timestamp, events_table.c.seq)
    )
    return [
        Event(
            message_id=row.message_id,
            account_id=row.account_id,
            event=row.event,
            timestamp=row.timestamp,
            user_id=row.user_id,
            properties=row.properties,
        )
        for row in conn.execute(query)
    ]
