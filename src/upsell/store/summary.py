"""What a workspace holds, counted in SQL: the dates its data spans and its most used events."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import sqlalchemy as sa

from upsell.store.schema import events, subscription_items

#: How far back `top_events` counts.
USAGE_WINDOW = timedelta(days=30)


def data_span(*, conn: sa.Connection) -> tuple[date, date] | None:
    """The first and last day the store has data for (subscriptions and events); None without any
    subscription."""
    s = subscription_items.c
    first = conn.execute(sa.select(sa.func.min(s.started_at))).scalar_one()
    if first is None:
        return None
    last = max(
        x
        for x in (
            conn.execute(sa.select(sa.func.max(s.started_at))).scalar_one(),
            conn.execute(sa.select(sa.func.max(s.ended_at))).scalar_one(),
            conn.execute(sa.select(sa.func.max(events.c.timestamp))).scalar_one(),
        )
        if x is not None
    )
    return first.date(), last.date()


def latest_event_at(*, conn: sa.Connection) -> datetime | None:
    """The instant of the latest event stored, or None without events."""
    latest: datetime | None = conn.execute(sa.select(sa.func.max(events.c.timestamp))).scalar_one()
    return latest


def top_events(*, conn: sa.Connection, until: datetime, limit: int) -> list[tuple[str, int]]:
    """The `limit` most frequent events of the `USAGE_WINDOW` up to `until` (included), with their
    counts, most frequent first (ties by name)."""
    count = sa.func.count().label("n")
    rows = conn.execute(
        sa.select(events.c.event, count)
        .where(events.c.timestamp > until - USAGE_WINDOW, events.c.timestamp <= until)
        .group_by(events.c.event)
        .order_by(count.desc(), events.c.event)
        .limit(limit)
    ).all()
    return [(name, n) for name, n in rows]
